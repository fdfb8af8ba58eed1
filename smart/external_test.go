package smart_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/fhirhub/fhirhub/smart"
)

// idp is an identity provider's JWKS on a real listener; its keys can change.
type idp struct {
	mu  sync.Mutex
	set jwk.Set
	srv *httptest.Server
}

func newIDP(t *testing.T) *idp {
	p := &idp{set: jwk.NewSet()}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		_ = json.NewEncoder(w).Encode(p.set)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *idp) newKey(t *testing.T, kid string) jwk.Key {
	raw, err := rsa.GenerateKey(rand.Reader, 2048)
	must(t, err)
	priv, _ := jwk.FromRaw(raw)
	_ = priv.Set(jwk.KeyIDKey, kid)
	pub, _ := jwk.PublicKeyOf(priv)
	p.mu.Lock()
	_ = p.set.AddKey(pub)
	p.mu.Unlock()
	return priv
}

func signIDP(t *testing.T, key jwk.Key, claims map[string]any) string {
	tok := jwt.New()
	for k, v := range claims {
		must(t, tok.Set(k, v))
	}
	b, err := jwt.Sign(tok, jwt.WithKey(jwa.RS256, key))
	must(t, err)
	return string(b)
}

func TestExternalVerifier(t *testing.T) {
	p := newIDP(t)
	k1 := p.newKey(t, "k1")
	v := &smart.ExternalVerifier{Issuer: "https://idp.test/realms/fhir", JWKSURL: p.srv.URL, Audience: "https://fhir.test/fhir", ScopeClaim: "scp"}
	ctx := context.Background()
	claims := func() map[string]any {
		return map[string]any{"iss": v.Issuer, "aud": v.Audience, "sub": "u1", "exp": time.Now().Add(time.Minute),
			"scp": []string{"user/Patient.rs", "openid"}, "azp": "portal", "fhirUser": "Practitioner/7", "patient": "p9"}
	}
	a, err := v.Verify(ctx, signIDP(t, k1, claims()))
	if err != nil {
		t.Fatal(err)
	}
	if a.ClientID != "portal" || a.Subject != "u1" || a.FHIRUser != "Practitioner/7" || a.Patient != "p9" ||
		!a.Allows("Patient", smart.PermRead) || a.Allows("Observation", smart.PermRead) || !a.HasOther("openid") {
		t.Errorf("got %+v", a)
	}
	t.Run("NewKeyFetched", func(t *testing.T) {
		k2 := p.newKey(t, "k2")
		if _, err := v.Verify(ctx, signIDP(t, k2, claims())); err != nil {
			t.Errorf("a token of a key added to the JWKS: %v", err)
		}
	})
	t.Run("ScopeString", func(t *testing.T) {
		v2 := &smart.ExternalVerifier{Issuer: v.Issuer, JWKSURL: p.srv.URL}
		c := claims()
		c["scope"] = "system/*.rs"
		a, err := v2.Verify(ctx, signIDP(t, k1, c))
		if err != nil || !a.Unrestricted("Observation", smart.PermSearch) {
			t.Errorf("got %+v, %v", a, err)
		}
	})
	for name, mod := range map[string]func(map[string]any){
		"WrongIssuer":   func(c map[string]any) { c["iss"] = "https://evil.test" },
		"WrongAudience": func(c map[string]any) { c["aud"] = "https://other.test/fhir" },
		"Expired":       func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour) },
	} {
		t.Run(name, func(t *testing.T) {
			c := claims()
			mod(c)
			if _, err := v.Verify(ctx, signIDP(t, k1, c)); err == nil {
				t.Error("accepted")
			}
		})
	}
	t.Run("UnknownKey", func(t *testing.T) {
		raw, _ := rsa.GenerateKey(rand.Reader, 2048)
		stray, _ := jwk.FromRaw(raw)
		_ = stray.Set(jwk.KeyIDKey, "k1")
		if _, err := v.Verify(ctx, signIDP(t, stray, claims())); err == nil {
			t.Error("a token signed by a key not in the JWKS was accepted")
		}
	})
}
