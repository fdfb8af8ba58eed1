package smart

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// readForm parses a POSTed form (at most 64 KiB), body parameters only.
func readForm(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	ct := r.Header.Get("Content-Type")
	if !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		return nil, invalidRequest("send the parameters as application/x-www-form-urlencoded")
	}
	if err := r.ParseForm(); err != nil {
		return nil, invalidRequest("the form cannot be read")
	}
	for k, v := range r.PostForm {
		if len(v) > 1 {
			return nil, invalidRequest("parameter " + k + " is repeated")
		}
	}
	return r.PostForm, nil
}

// handleToken is the token endpoint (RFC 6749 section 3.2).
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	resp, err := s.token(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) (*TokenResponse, error) {
	form, err := readForm(w, r)
	if err != nil {
		return nil, err
	}
	gt := form.Get("grant_type")
	switch gt {
	case "authorization_code", "refresh_token", "client_credentials":
	case "":
		return nil, invalidRequest("grant_type is missing")
	default:
		return nil, oauthErr("unsupported_grant_type", "grant_type "+gt+" is not supported")
	}
	c, authenticated, err := s.authenticateClient(r, form)
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	switch gt {
	case "authorization_code":
		return s.codeGrant(ctx, c, form)
	case "refresh_token":
		return s.refreshGrant(ctx, c, form)
	default:
		if !authenticated {
			return nil, unauthorizedClient("client_credentials is for confidential clients")
		}
		if form.Get("scope") == "" {
			return nil, invalidScope("scope is missing")
		}
		g, err := grantFor(c, form.Get("scope"), false)
		if err != nil {
			return nil, err
		}
		return s.issue(ctx, tokenGrant{ClientID: c.ID, Subject: c.ID, Scope: g, Audience: s.BaseURL})
	}
}

// s256 is the PKCE S256 transform (RFC 7636 section 4.2).
func s256(verifier string) string {
	h := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// validVerifier checks a code_verifier's form (RFC 7636 section 4.1).
func validVerifier(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	for i := range len(v) {
		c := v[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("-._~", c) >= 0) {
			return false
		}
	}
	return true
}

func (s *Server) codeGrant(ctx context.Context, c Client, form url.Values) (*TokenResponse, error) {
	code := form.Get("code")
	if code == "" {
		return nil, invalidRequest("code is missing")
	}
	rec, err := s.Store.TakeCode(ctx, hashSecret(code))
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, invalidGrant("the code is unknown or expired")
	case errors.Is(err, ErrUsed):
		// A code used twice may have been stolen: the tokens it gave lose
		// their refresh tokens (RFC 6749 section 4.1.2).
		_ = s.Store.Mark(ctx, MarkFamily, rec.Family, s.now().Add(s.RefreshTokenLifetime))
		return nil, invalidGrant("the code was already used")
	case err != nil:
		return nil, err
	}
	if rec.ClientID != c.ID {
		return nil, invalidGrant("the code was issued to another client")
	}
	if form.Get("redirect_uri") != rec.RedirectURI {
		return nil, invalidGrant("redirect_uri differs from the authorization request's")
	}
	verifier := form.Get("code_verifier")
	switch {
	case rec.Challenge == "" && verifier != "":
		return nil, invalidGrant("code_verifier given, but the authorization request had no code_challenge")
	case rec.Challenge != "" && verifier == "":
		return nil, invalidGrant("code_verifier is missing")
	case rec.Challenge != "" && (!validVerifier(verifier) || subtle.ConstantTimeCompare([]byte(s256(verifier)), []byte(rec.Challenge)) != 1):
		return nil, invalidGrant("code_verifier does not match the code_challenge")
	}
	g, _ := ParseGrant(rec.Scope)
	return s.issue(ctx, tokenGrant{
		ClientID: c.ID, Subject: rec.Username, FHIRUser: rec.FHIRUser, Scope: g, Audience: rec.Audience,
		Context: rec.Context, Nonce: rec.Nonce, AuthTime: rec.AuthTime, Family: rec.Family, User: true,
	})
}

func (s *Server) refreshGrant(ctx context.Context, c Client, form url.Values) (*TokenResponse, error) {
	rt := form.Get("refresh_token")
	if rt == "" {
		return nil, invalidRequest("refresh_token is missing")
	}
	rec, err := s.Store.Refresh(ctx, hashSecret(rt))
	if errors.Is(err, ErrNotFound) {
		return nil, invalidGrant("the refresh token is unknown or expired")
	}
	if err != nil {
		return nil, err
	}
	if rec.ClientID != c.ID {
		return nil, invalidGrant("the refresh token was issued to another client")
	}
	if revoked, err := s.Store.Marked(ctx, MarkFamily, rec.Family); err != nil {
		return nil, err
	} else if revoked {
		return nil, invalidGrant("the refresh token was revoked")
	}
	if err := s.Store.Mark(ctx, MarkRefresh, rec.ID, rec.Expires); err != nil {
		if errors.Is(err, ErrUsed) {
			// Reuse of a rotated token: someone else holds the family.
			if err := s.Store.Mark(ctx, MarkFamily, rec.Family, s.now().Add(s.RefreshTokenLifetime)); err != nil && !errors.Is(err, ErrUsed) {
				return nil, err
			}
			s.Logger.Warn("a rotated refresh token was used again; its family is revoked", "client_id", c.ID, "user", rec.Username)
			return nil, invalidGrant("the refresh token was already used; all tokens of this authorization are revoked")
		}
		return nil, err
	}
	if _, err := s.Store.User(ctx, rec.Username); errors.Is(err, ErrNotFound) {
		return nil, invalidGrant("the user no longer exists")
	} else if err != nil {
		return nil, err
	}
	g, _ := ParseGrant(rec.Scope)
	if sc := form.Get("scope"); sc != "" {
		want := strings.Fields(sc)
		have := strings.Fields(rec.Scope)
		for _, w := range want {
			if !slices.Contains(have, w) {
				return nil, invalidScope("scope " + w + " was not granted to this refresh token")
			}
		}
		g = narrow(g, want, nil)
	}
	return s.issue(ctx, tokenGrant{
		ClientID: c.ID, Subject: rec.Username, FHIRUser: rec.FHIRUser, Scope: g, Audience: rec.Audience,
		Context: rec.Context, Family: rec.Family, User: true,
	})
}

// handleIntrospect is RFC 7662 token introspection, for confidential
// clients (resource servers): access tokens of any client, refresh tokens
// of the caller only.
func (s *Server) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	form, err := readForm(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	c, authenticated, err := s.authenticateClient(r, form)
	if err == nil && !authenticated {
		err = invalidClient("introspection is for confidential clients")
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	resp, err := s.introspect(r.Context(), c, form.Get("token"), form.Get("token_type_hint"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) introspect(ctx context.Context, c Client, token, hint string) (map[string]any, error) {
	inactive := map[string]any{"active": false}
	if token == "" {
		return inactive, nil
	}
	if hint != "refresh_token" {
		if a, err := s.Verify(ctx, token); err == nil {
			out := map[string]any{
				"active": true, "token_type": "Bearer", "scope": a.Grant.String(), "client_id": a.ClientID,
				"sub": a.Subject, "exp": a.Expires.Unix(), "iss": s.Issuer(), "jti": a.TokenID,
			}
			if t, err := s.parseAccessToken(ctx, token); err == nil {
				out["aud"] = t.Audience()
				out["iat"] = t.IssuedAt().Unix()
			}
			for k, v := range map[string]string{"patient": a.Patient, "encounter": a.Encounter, "fhirUser": a.FHIRUser} {
				if v != "" {
					out[k] = v
				}
			}
			if a.Subject != a.ClientID {
				out["username"] = a.Subject
			}
			return out, nil
		} else if !errors.Is(err, ErrTokenMalformed) && !errors.Is(err, ErrTokenKey) && !errors.Is(err, ErrTokenInvalid) && !errors.Is(err, ErrTokenRevoked) {
			return nil, err
		}
	}
	rec, err := s.Store.Refresh(ctx, hashSecret(token))
	if errors.Is(err, ErrNotFound) || (err == nil && rec.ClientID != c.ID) {
		return inactive, nil
	}
	if err != nil {
		return nil, err
	}
	for _, m := range []struct {
		kind MarkKind
		id   string
	}{{MarkFamily, rec.Family}, {MarkRefresh, rec.ID}} {
		if used, err := s.Store.Marked(ctx, m.kind, m.id); err != nil {
			return nil, err
		} else if used {
			return inactive, nil
		}
	}
	return map[string]any{
		"active": true, "token_type": "refresh_token", "scope": rec.Scope, "client_id": rec.ClientID,
		"sub": rec.Username, "username": rec.Username, "exp": rec.Expires.Unix(), "iat": rec.Created.Unix(), "iss": s.Issuer(),
	}, nil
}

// handleRevoke is RFC 7009 revocation: an access token is revoked until it
// expires; a refresh token revokes its whole family. The answer is 200
// whatever the token was.
func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	form, err := readForm(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	c, _, err := s.authenticateClient(r, form)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	token := form.Get("token")
	if token == "" {
		s.fail(w, r, invalidRequest("token is missing"))
		return
	}
	if err := s.revoke(r.Context(), c, token); err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

func (s *Server) revoke(ctx context.Context, c Client, token string) error {
	if t, err := s.parseAccessToken(ctx, token); err == nil {
		a := accessOf(t, "scope")
		if a.ClientID != c.ID {
			return nil
		}
		err := s.Store.Mark(ctx, MarkRevoked, a.TokenID, a.Expires.Add(time.Minute))
		if errors.Is(err, ErrUsed) {
			return nil
		}
		return err
	}
	rec, err := s.Store.Refresh(ctx, hashSecret(token))
	if errors.Is(err, ErrNotFound) || (err == nil && rec.ClientID != c.ID) {
		return nil
	}
	if err != nil {
		return err
	}
	err = s.Store.Mark(ctx, MarkFamily, rec.Family, s.now().Add(s.RefreshTokenLifetime))
	if errors.Is(err, ErrUsed) {
		return nil
	}
	return err
}
