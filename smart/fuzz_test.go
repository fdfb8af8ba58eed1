package smart_test

import (
	"context"
	"encoding/base64"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/fhirhub/fhirhub/smart"
)

// FuzzVerify feeds the Verifier arbitrary bearer tokens. It must not panic;
// it must refuse with an error alone, one that does not echo the token; and
// it must accept no token but the one live token the server issued (its
// revoked sibling and every forgery are refused).
func FuzzVerify(f *testing.F) {
	e := newEnv(f, newSQLiteStore(f))
	ctx := context.Background()
	valid := e.adminToken("system/*.rs")
	revoked := e.adminToken("system/Patient.rs")
	if st, m := e.post("/auth/revoke", url.Values{"token": {revoked}}, smart.AdminClientID, e.admin); st != 200 {
		f.Fatalf("revoke: got %d %v", st, m)
	}
	a, err := e.srv.Verify(ctx, valid)
	if err != nil {
		f.Fatal(err)
	}
	jti := a.TokenID
	if _, err := e.srv.Verify(ctx, revoked); !errors.Is(err, smart.ErrTokenRevoked) {
		f.Fatalf("the revoked token: got %v, want ErrTokenRevoked", err)
	}

	p := strings.Split(valid, ".")
	r := strings.Split(revoked, ".")
	b64 := base64.RawURLEncoding.EncodeToString
	flip := func(s string, i int) string { // change one character
		c := byte('A')
		if s[i] == 'A' {
			c = 'B'
		}
		return s[:i] + string(c) + s[i+1:]
	}
	for _, seed := range []string{
		valid, revoked,
		"", ".", "..", "a.b.c", "Bearer " + valid, valid + " ", valid + ".",
		valid[:len(valid)/2], valid[:len(valid)-1], valid + "A",
		p[0] + "." + p[1] + ".", p[0] + "." + p[1], // no signature
		b64([]byte(`{"alg":"none","typ":"at+jwt"}`)) + "." + p[1] + ".", // alg none
		b64([]byte(`{"alg":"HS256","typ":"at+jwt"}`)) + "." + p[1] + "." + p[2],
		p[0] + "." + r[1] + "." + p[2], // the revoked token's claims, the valid one's signature
		r[0] + "." + p[1] + "." + r[2],
		flip(valid, len(p[0])+len(p[1])/2), // a claim changed
		flip(valid, len(valid)-10),         // the signature changed
		flip(valid, 5),                     // the header changed
		// The JSON serialization, of the valid token and of a forgery.
		`{"payload":"` + p[1] + `","protected":"` + p[0] + `","signature":"` + p[2] + `"}`,
		`{"payload":"` + r[1] + `","signatures":[{"protected":"` + p[0] + `","signature":"` + p[2] + `"}]}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		a, err := e.srv.Verify(ctx, token)
		if err != nil {
			if a != nil {
				t.Errorf("Verify returned an Access with the error %v", err)
			}
			if len(token) >= 16 && strings.Contains(err.Error(), token) {
				t.Errorf("the error %q echoes the token", err)
			}
			return
		}
		if a == nil || a.TokenID != jti {
			t.Errorf("Verify accepted a token the server did not issue: %q gave %+v", token, a)
		}
	})
}
