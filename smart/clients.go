package smart

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// RegisterClient validates c, gives it an id when it has none, stores it
// and returns its secret (confidential-symmetric clients only; shown once,
// stored hashed).
func RegisterClient(ctx context.Context, st Store, c *Client, now time.Time) (secret string, err error) {
	if c.ID == "" {
		c.ID = randomToken()[:16]
	}
	if err := c.validate(); err != nil {
		return "", err
	}
	c.SecretHash = ""
	if c.Type == ClientSymmetric {
		secret = randomToken()
		c.SecretHash = hashSecret(secret)
	}
	c.Created = now.UTC()
	if err := st.CreateClient(ctx, *c); err != nil {
		if errors.Is(err, ErrExists) {
			return "", fmt.Errorf("smart: register client: a client %q exists", c.ID)
		}
		return "", err
	}
	return secret, nil
}

func (c *Client) validate() error {
	if strings.ContainsAny(c.ID, " \t\r\n:") {
		return fmt.Errorf("smart: client id %q: no spaces or colons", c.ID)
	}
	switch c.Type {
	case ClientPublic, ClientSymmetric:
		if len(c.JWKS) > 0 || c.JWKSURI != "" {
			return fmt.Errorf("smart: client %s: keys are for confidential-asymmetric clients", c.ID)
		}
	case ClientAsymmetric:
		if (len(c.JWKS) > 0) == (c.JWKSURI != "") {
			return fmt.Errorf("smart: client %s: give either jwks or jwks_uri", c.ID)
		}
		if len(c.JWKS) > 0 {
			set, err := jwk.Parse(c.JWKS)
			if err != nil {
				return fmt.Errorf("smart: client %s: jwks: %w", c.ID, err)
			}
			if set.Len() == 0 {
				return fmt.Errorf("smart: client %s: jwks holds no key", c.ID)
			}
			for i := range set.Len() {
				k, _ := set.Key(i)
				if priv, _ := jwk.IsPrivateKey(k); priv {
					return fmt.Errorf("smart: client %s: jwks holds a private key; register the public keys only", c.ID)
				}
			}
		} else if u, err := url.Parse(c.JWKSURI); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("smart: client %s: jwks_uri %q is not an http(s) URL", c.ID, c.JWKSURI)
		}
	default:
		return fmt.Errorf("smart: client %s: type %q: use public, confidential-symmetric or confidential-asymmetric", c.ID, c.Type)
	}
	for _, r := range c.RedirectURIs {
		u, err := url.Parse(r)
		if err != nil || u.Scheme == "" || u.Fragment != "" {
			return fmt.Errorf("smart: client %s: redirect URI %q is not an absolute URI without fragment", c.ID, r)
		}
	}
	if c.Type == ClientPublic && len(c.RedirectURIs) == 0 {
		return fmt.Errorf("smart: client %s: a public client needs a redirect URI", c.ID)
	}
	for _, p := range c.Scopes {
		if _, ok := ParseScope(p); !ok && strings.Contains(p, "/") && !slices.Contains(contextScopes, p) {
			return fmt.Errorf("smart: client %s: scope pattern %q is malformed", c.ID, p)
		}
	}
	return nil
}

// RegisterUser stores a user with an argon2id hash of password. fhirUser
// is empty or a reference Practitioner/…, Patient/…, RelatedPerson/… or
// Person/….
func RegisterUser(ctx context.Context, st Store, username, password, fhirUser string, now time.Time) error {
	if username == "" || strings.ContainsAny(username, " \t\r\n/") {
		return fmt.Errorf("smart: user %q: a username without spaces or slashes", username)
	}
	if fhirUser != "" {
		typ, id, ok := strings.Cut(fhirUser, "/")
		if !ok || id == "" || strings.Contains(id, "/") || !slices.Contains([]string{"Practitioner", "PractitionerRole", "Patient", "RelatedPerson", "Person"}, typ) {
			return fmt.Errorf("smart: user %s: fhirUser %q: use Practitioner/<id> or Patient/<id> (or PractitionerRole, RelatedPerson, Person)", username, fhirUser)
		}
	}
	h, err := HashPassword(password)
	if err != nil {
		return err
	}
	err = st.CreateUser(ctx, User{Username: username, PasswordHash: h, FHIRUser: fhirUser, Created: now.UTC()})
	if errors.Is(err, ErrExists) {
		return fmt.Errorf("smart: register user: a user %q exists", username)
	}
	return err
}

// contextScopes are the identity, launch and refresh scopes: every client
// that goes through the authorize endpoint may ask for them.
var contextScopes = []string{"openid", "fhirUser", "profile", "launch", "launch/patient", "launch/encounter", "offline_access", "online_access"}

// requiredScopes are granted with the launch and cannot be unticked.
var requiredScopes = []string{"launch", "launch/patient", "launch/encounter"}

// allowedBy says whether a client's scope pattern covers a requested
// resource scope: the same context, the type or *, at least its
// permissions, and no filter or the same one.
func allowedBy(pattern string, s Scope) bool {
	p, ok := ParseScope(pattern)
	if !ok || p.Context != s.Context || (p.Type != "*" && p.Type != s.Type) || !p.Perms.Has(s.Perms) {
		return false
	}
	if p.Filter == nil {
		return true
	}
	return s.Filter != nil && p.Filter.Encode() == s.Filter.Encode()
}

// grantFor computes what a client may be granted of the scopes asked: for
// a user (authorize) patient/ and user/ scopes and the context scopes; for
// the client itself (client_credentials) system/ scopes and admin. What it
// may not have is left out; nothing left is invalid_scope.
func grantFor(c Client, requested string, forUser bool) (Grant, error) {
	asked, bad := ParseGrant(requested)
	if len(bad) > 0 {
		return Grant{}, invalidScope(fmt.Sprintf("malformed scope %q", bad[0]))
	}
	var g Grant
	seen := map[string]bool{}
	for _, sc := range asked.Scopes {
		if seen[sc.Raw] || (sc.Context == ContextSystem) == forUser {
			continue
		}
		if slices.ContainsFunc(c.Scopes, func(p string) bool { return allowedBy(p, sc) }) {
			seen[sc.Raw] = true
			g.Scopes = append(g.Scopes, sc)
		}
	}
	for _, o := range asked.Other {
		if seen[o] {
			continue
		}
		ok := false
		switch {
		case forUser:
			ok = slices.Contains(contextScopes, o)
		case o == AdminScope:
			ok = slices.Contains(c.Scopes, AdminScope)
		}
		if ok {
			seen[o] = true
			g.Other = append(g.Other, o)
		}
	}
	if len(g.Scopes) == 0 && len(g.Other) == 0 {
		return g, invalidScope("none of the scopes asked may be granted to this client")
	}
	return g, nil
}

// narrow keeps the scopes of g named in keep (and those in always).
func narrow(g Grant, keep []string, always []string) Grant {
	in := func(s string) bool { return slices.Contains(keep, s) || slices.Contains(always, s) }
	var out Grant
	for _, s := range g.Scopes {
		if in(s.Raw) {
			out.Scopes = append(out.Scopes, s)
		}
	}
	for _, o := range g.Other {
		if in(o) {
			out.Other = append(out.Other, o)
		}
	}
	return out
}

// forPatientUser drops the user/ scopes of a user who is a Patient: their
// access is their own compartment, through patient/ scopes.
func forPatientUser(g Grant) Grant {
	out := Grant{Other: g.Other}
	for _, s := range g.Scopes {
		if s.Context != ContextUser {
			out.Scopes = append(out.Scopes, s)
		}
	}
	return out
}

// clientView is a client as the admin API shows it: without the secret's hash.
type clientView struct {
	ID           string          `json:"id"`
	Name         string          `json:"name,omitempty"`
	Type         ClientType      `json:"type"`
	RedirectURIs []string        `json:"redirect_uris,omitempty"`
	Scopes       []string        `json:"scopes,omitempty"`
	JWKS         json.RawMessage `json:"jwks,omitempty"`
	JWKSURI      string          `json:"jwks_uri,omitempty"`
	Created      time.Time       `json:"created"`
	Secret       string          `json:"client_secret,omitempty"` // only when just created
}

func viewOf(c Client) clientView {
	return clientView{ID: c.ID, Name: c.Name, Type: c.Type, RedirectURIs: c.RedirectURIs, Scopes: c.Scopes,
		JWKS: c.JWKS, JWKSURI: c.JWKSURI, Created: c.Created}
}
