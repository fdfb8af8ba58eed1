package smart

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// AssertionType is the client_assertion_type of private_key_jwt (RFC 7523).
const AssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// authenticateClient finds the client a request to the token,
// introspection or revocation endpoint comes from: client_secret_basic
// (confidential symmetric), private_key_jwt (confidential asymmetric) or a
// bare client_id (public clients only). authenticated says whether it
// proved who it is.
func (s *Server) authenticateClient(r *http.Request, form url.Values) (c Client, authenticated bool, err error) {
	ctx := r.Context()
	if id, secret, ok := r.BasicAuth(); ok {
		// RFC 6749 section 2.3.1: both are form-encoded before Basic.
		if v, err := url.QueryUnescape(id); err == nil {
			id = v
		}
		if v, err := url.QueryUnescape(secret); err == nil {
			secret = v
		}
		c, err := s.Store.Client(ctx, id)
		if errors.Is(err, ErrNotFound) || (err == nil && (c.Type != ClientSymmetric || !checkSecret(c.SecretHash, secret))) {
			return c, false, invalidClient("unknown client or wrong secret")
		}
		if err != nil {
			return c, false, err
		}
		if fid := form.Get("client_id"); fid != "" && fid != c.ID {
			return c, false, invalidRequest("client_id differs from the authenticated client")
		}
		return c, true, nil
	}
	if at := form.Get("client_assertion_type"); at != "" || form.Get("client_assertion") != "" {
		if at != AssertionType {
			return c, false, invalidClient("client_assertion_type must be " + AssertionType)
		}
		c, err := s.verifyAssertion(ctx, form.Get("client_assertion"))
		if err != nil {
			return c, false, err
		}
		if fid := form.Get("client_id"); fid != "" && fid != c.ID {
			return c, false, invalidRequest("client_id differs from the assertion's client")
		}
		return c, true, nil
	}
	if form.Get("client_secret") != "" {
		return c, false, invalidClient("client_secret_post is not supported: use HTTP Basic (client_secret_basic)")
	}
	id := form.Get("client_id")
	if id == "" {
		return c, false, invalidClient("no client authentication and no client_id")
	}
	c, err = s.Store.Client(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return c, false, invalidClient("unknown client")
	}
	if err != nil {
		return c, false, err
	}
	if c.Type != ClientPublic {
		return c, false, invalidClient("this client must authenticate")
	}
	return c, false, nil
}

// verifyAssertion checks a private_key_jwt client assertion (RFC 7523 and
// SMART Backend Services): signed RS384 or ES384 by a key of the client's
// JWKS, iss = sub = client_id, aud = the token endpoint, exp in the
// future and at most five minutes ahead, a jti not seen before.
func (s *Server) verifyAssertion(ctx context.Context, assertion string) (Client, error) {
	var c Client
	msg, err := jws.Parse([]byte(assertion))
	if err != nil || len(msg.Signatures()) != 1 {
		return c, invalidClient("client_assertion is not a signed JWT")
	}
	h := msg.Signatures()[0].ProtectedHeaders()
	alg := h.Algorithm()
	if alg != jwa.RS384 && alg != jwa.ES384 {
		return c, invalidClient(fmt.Sprintf("client_assertion is signed with %s; use RS384 or ES384", alg))
	}
	unverified, err := jwt.Parse([]byte(assertion), jwt.WithVerify(false), jwt.WithValidate(false))
	if err != nil || unverified.Issuer() == "" {
		return c, invalidClient("client_assertion has no iss")
	}
	c, err = s.Store.Client(ctx, unverified.Issuer())
	if errors.Is(err, ErrNotFound) {
		return c, invalidClient("unknown client")
	}
	if err != nil {
		return c, err
	}
	if c.Type != ClientAsymmetric {
		return c, invalidClient("this client does not authenticate with private_key_jwt")
	}
	set, err := s.clientKeys(ctx, c, h.KeyID())
	if err != nil {
		s.Logger.Warn("a client's JWKS could not be read", "client_id", c.ID, "err", err)
		return c, invalidClient("the client's keys could not be read")
	}
	var candidates []jwk.Key
	if kid := h.KeyID(); kid != "" {
		if k, ok := set.LookupKeyID(kid); ok {
			candidates = append(candidates, k)
		}
	} else {
		for i := range set.Len() {
			k, _ := set.Key(i)
			candidates = append(candidates, k)
		}
	}
	var t jwt.Token
	verr := errors.New("no key")
	for _, k := range candidates {
		t, verr = jwt.Parse([]byte(assertion), jwt.WithKey(alg, k), jwt.WithValidate(false))
		if verr == nil {
			break
		}
	}
	if verr != nil {
		return c, invalidClient("client_assertion is not signed by a key registered for the client")
	}
	now := s.now()
	err = jwt.Validate(t, jwt.WithIssuer(c.ID), jwt.WithSubject(c.ID), jwt.WithAudience(s.Endpoints()["token"]),
		jwt.WithClock(jwt.ClockFunc(s.now)), jwt.WithRequiredClaim(jwt.ExpirationKey), jwt.WithRequiredClaim(jwt.JwtIDKey))
	if err != nil {
		return c, invalidClient("client_assertion claims: " + err.Error())
	}
	if t.Expiration().After(now.Add(maxAssertionLifetime + 5*time.Second)) {
		return c, invalidClient("client_assertion exp is more than 5 minutes ahead")
	}
	if err := s.Store.Mark(ctx, MarkAssertion, c.ID+"|"+t.JwtID(), t.Expiration().Add(time.Minute)); err != nil {
		if errors.Is(err, ErrUsed) {
			return c, invalidClient("client_assertion jti was already used")
		}
		return c, err
	}
	return c, nil
}

// clientKeys returns a client's public keys: registered inline or fetched
// from its JWKS URL (cached).
func (s *Server) clientKeys(ctx context.Context, c Client, kid string) (jwk.Set, error) {
	if len(c.JWKS) > 0 {
		return jwk.Parse(c.JWKS)
	}
	if c.JWKSURI == "" {
		return nil, errors.New("the client has neither jwks nor jwks_uri")
	}
	return s.jwks.keys(ctx, c.JWKSURI, kid)
}
