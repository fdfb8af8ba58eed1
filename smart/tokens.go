package smart

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// TokenResponse is the token endpoint's answer (SMART App Launch 2.x,
// "Response body" of the access token request).
type TokenResponse struct {
	AccessToken       string          `json:"access_token"`
	TokenType         string          `json:"token_type"`
	ExpiresIn         int64           `json:"expires_in"`
	Scope             string          `json:"scope"`
	RefreshToken      string          `json:"refresh_token,omitempty"`
	IDToken           string          `json:"id_token,omitempty"`
	Patient           string          `json:"patient,omitempty"`
	Encounter         string          `json:"encounter,omitempty"`
	FHIRContext       json.RawMessage `json:"fhirContext,omitempty"`
	NeedPatientBanner *bool           `json:"need_patient_banner,omitempty"`
}

// tokenGrant is what a token request was granted.
type tokenGrant struct {
	ClientID string
	Subject  string // the username, or the client for client_credentials
	FHIRUser string
	Scope    Grant
	Audience string
	Context  Context
	Nonce    string
	AuthTime time.Time
	Family   string // the refresh-token family (user grants)
	User     bool   // a user's grant: may carry id and refresh tokens
}

// accessTokenType is the typ header of access tokens (RFC 9068), which
// keeps them apart from id tokens.
const accessTokenType = "at+jwt"

// issue signs the tokens of a grant and stores its refresh token.
func (s *Server) issue(ctx context.Context, g tokenGrant) (*TokenResponse, error) {
	key, err := s.signingKey(ctx)
	if err != nil {
		return nil, err
	}
	now := s.now().Truncate(time.Second)
	scope := g.Scope.String()
	t := jwt.New()
	claims := map[string]any{
		jwt.IssuerKey:     s.Issuer(),
		jwt.SubjectKey:    g.Subject,
		jwt.AudienceKey:   []string{g.Audience},
		jwt.ExpirationKey: now.Add(s.AccessTokenLifetime),
		jwt.IssuedAtKey:   now,
		jwt.JwtIDKey:      randomToken(),
		"scope":           scope,
		"client_id":       g.ClientID,
	}
	if g.Context.Patient != "" {
		claims["patient"] = g.Context.Patient
	}
	if g.Context.Encounter != "" {
		claims["encounter"] = g.Context.Encounter
	}
	if g.FHIRUser != "" {
		claims["fhirUser"] = g.FHIRUser
	}
	for k, v := range claims {
		if err := t.Set(k, v); err != nil {
			return nil, fmt.Errorf("smart: issue: claim %s: %w", k, err)
		}
	}
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.TypeKey, accessTokenType)
	at, err := jwt.Sign(t, jwt.WithKey(signingAlg, key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return nil, fmt.Errorf("smart: sign access token: %w", err)
	}
	resp := &TokenResponse{
		AccessToken: string(at),
		TokenType:   "Bearer",
		ExpiresIn:   int64(s.AccessTokenLifetime / time.Second),
		Scope:       scope,
		Patient:     g.Context.Patient,
		Encounter:   g.Context.Encounter,
		FHIRContext: g.Context.FHIRContext,
	}
	if g.Context.Patient != "" || g.Context.NeedBanner {
		b := g.Context.NeedBanner
		resp.NeedPatientBanner = &b
	}
	if !g.User {
		return resp, nil
	}
	if g.Scope.HasOther("openid") && (g.Scope.HasOther("fhirUser") || g.Scope.HasOther("profile")) {
		it := jwt.New()
		idClaims := map[string]any{
			jwt.IssuerKey:     s.Issuer(),
			jwt.SubjectKey:    g.Subject,
			jwt.AudienceKey:   []string{g.ClientID},
			jwt.ExpirationKey: now.Add(s.AccessTokenLifetime),
			jwt.IssuedAtKey:   now,
		}
		if !g.AuthTime.IsZero() {
			idClaims["auth_time"] = g.AuthTime.Unix()
		}
		if g.FHIRUser != "" {
			idClaims["fhirUser"] = g.FHIRUser
		}
		if g.Nonce != "" {
			idClaims["nonce"] = g.Nonce
		}
		for k, v := range idClaims {
			if err := it.Set(k, v); err != nil {
				return nil, fmt.Errorf("smart: issue: claim %s: %w", k, err)
			}
		}
		idt, err := jwt.Sign(it, jwt.WithKey(signingAlg, key))
		if err != nil {
			return nil, fmt.Errorf("smart: sign id token: %w", err)
		}
		resp.IDToken = string(idt)
	}
	var life time.Duration
	switch {
	case g.Scope.HasOther("offline_access"):
		life = s.RefreshTokenLifetime
	case g.Scope.HasOther("online_access"):
		life = s.SessionLifetime
	}
	if life > 0 {
		rt := randomToken()
		err := s.Store.PutRefresh(ctx, Refresh{
			ID: hashSecret(rt), Family: g.Family, ClientID: g.ClientID, Scope: scope, Audience: g.Audience,
			Username: g.Subject, FHIRUser: g.FHIRUser, Context: g.Context, Created: now, Expires: now.Add(life),
		})
		if err != nil {
			return nil, err
		}
		resp.RefreshToken = rt
	}
	return resp, nil
}

// Errors of Verify; they never echo the token.
var (
	ErrTokenMalformed = errors.New("smart: the token is not a well-formed JWT")
	ErrTokenKey       = errors.New("smart: the token is not signed by a key of this server")
	ErrTokenInvalid   = errors.New("smart: the token is expired, not yet valid, or not issued for this server")
	ErrTokenRevoked   = errors.New("smart: the token was revoked")
)

// Verify checks an access token issued by this server: signature by kid
// against the current and retired keys, typ, iss, exp, aud (the FHIR base)
// and revocation; it returns what the token grants.
func (s *Server) Verify(ctx context.Context, token string) (*Access, error) {
	t, err := s.parseAccessToken(ctx, token)
	if err != nil {
		return nil, err
	}
	revoked, err := s.Store.Marked(ctx, MarkRevoked, t.JwtID())
	if err != nil {
		return nil, fmt.Errorf("smart: verify: check revocation: %w", err)
	}
	if revoked {
		return nil, ErrTokenRevoked
	}
	return accessOf(t, "scope"), nil
}

// parseAccessToken checks everything but revocation.
func (s *Server) parseAccessToken(ctx context.Context, token string) (jwt.Token, error) {
	msg, err := jws.Parse([]byte(token))
	if err != nil || len(msg.Signatures()) != 1 {
		return nil, ErrTokenMalformed
	}
	h := msg.Signatures()[0].ProtectedHeaders()
	if h.Algorithm() != signingAlg || h.Type() != accessTokenType {
		return nil, ErrTokenKey
	}
	key, ok := s.verificationKey(ctx, h.KeyID())
	if !ok {
		return nil, ErrTokenKey
	}
	t, err := jwt.Parse([]byte(token), jwt.WithKey(signingAlg, key), jwt.WithValidate(true),
		jwt.WithIssuer(s.Issuer()), jwt.WithClock(jwt.ClockFunc(s.now)), jwt.WithAcceptableSkew(30*time.Second),
		jwt.WithRequiredClaim(jwt.JwtIDKey), jwt.WithRequiredClaim(jwt.ExpirationKey))
	if err != nil {
		if jws.IsVerificationError(err) {
			return nil, ErrTokenKey
		}
		return nil, ErrTokenInvalid
	}
	if !slices.ContainsFunc(t.Audience(), func(a string) bool { return slices.Contains(s.audience, a) }) {
		return nil, ErrTokenInvalid
	}
	return t, nil
}

// accessOf reads what a verified token grants; scopeClaim names the claim
// holding the scopes (a space-separated string or an array).
func accessOf(t jwt.Token, scopeClaim string) *Access {
	str := func(name string) string {
		v, _ := t.Get(name)
		s, _ := v.(string)
		return s
	}
	var scope string
	if v, ok := t.Get(scopeClaim); ok {
		switch v := v.(type) {
		case string:
			scope = v
		case []any:
			for _, x := range v {
				if s, ok := x.(string); ok {
					if scope != "" {
						scope += " "
					}
					scope += s
				}
			}
		case []string:
			for _, s := range v {
				if scope != "" {
					scope += " "
				}
				scope += s
			}
		}
	}
	g, _ := ParseGrant(scope)
	client := str("client_id")
	if client == "" {
		client = str("azp")
	}
	return &Access{
		Grant:     g,
		ClientID:  client,
		Subject:   t.Subject(),
		FHIRUser:  str("fhirUser"),
		Patient:   str("patient"),
		Encounter: str("encounter"),
		TokenID:   t.JwtID(),
		Expires:   t.Expiration(),
	}
}
