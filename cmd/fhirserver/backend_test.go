package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// TestBackendServicesEndToEnd: a backend service registered with the CLI
// signs client assertions with ES384 and RS384 keys, gets system/*.rs
// tokens from the running server and reads with them; it may not write,
// and replayed, expired and wrongly signed assertions get no token.
func TestBackendServicesEndToEnd(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.Auth = "smart"
	cfg.AccessLifetime, cfg.RefreshLifetime = time.Hour, 24*time.Hour
	m := NewMain(cfg, &syncBuffer{})
	if err := m.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer m.Close(t.Context())
	var conf struct {
		TokenEndpoint string   `json:"token_endpoint"`
		AuthMethods   []string `json:"token_endpoint_auth_methods_supported"`
		SigningAlgs   []string `json:"token_endpoint_auth_signing_alg_values_supported"`
	}
	getJSON(t, m.URL()+"/fhir/.well-known/smart-configuration", &conf)
	for _, want := range []string{"ES384", "RS384"} {
		if !strings.Contains(strings.Join(conf.SigningAlgs, " "), want) {
			t.Errorf("smart-configuration signing algorithms %v lack %s", conf.SigningAlgs, want)
		}
	}

	type service struct {
		id  string
		alg jwa.SignatureAlgorithm
		key jwk.Key
	}
	var services []service
	for _, alg := range []jwa.SignatureAlgorithm{jwa.ES384, jwa.RS384} {
		var raw any
		var err error
		if alg == jwa.ES384 {
			raw, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		} else {
			raw, err = rsa.GenerateKey(rand.Reader, 2048)
		}
		if err != nil {
			t.Fatal(err)
		}
		priv, err := jwk.FromRaw(raw)
		if err != nil {
			t.Fatal(err)
		}
		_ = priv.Set(jwk.KeyIDKey, "k-"+alg.String())
		pub, err := jwk.PublicKeyOf(priv)
		if err != nil {
			t.Fatal(err)
		}
		set := jwk.NewSet()
		_ = set.AddKey(pub)
		b, _ := json.Marshal(set)
		file := filepath.Join(t.TempDir(), "jwks.json")
		if err := os.WriteFile(file, b, 0o600); err != nil {
			t.Fatal(err)
		}
		id := "svc-" + strings.ToLower(alg.String())
		var out, errOut bytes.Buffer
		if err := runAuthCommand(t.Context(), "clients", []string{"add", "--id", id, "--type", "confidential-asymmetric",
			"--scope", "system/*.rs", "--jwks-file", file, "--data-dir", dir}, func(string) string { return "" }, strings.NewReader(""), &out, &errOut); err != nil {
			t.Fatalf("clients add %s: %v\n%s", id, err, errOut.String())
		}
		services = append(services, service{id, alg, priv})
	}
	assertion := func(s service, exp time.Duration) string {
		tok := jwt.New()
		_ = tok.Set(jwt.IssuerKey, s.id)
		_ = tok.Set(jwt.SubjectKey, s.id)
		_ = tok.Set(jwt.AudienceKey, conf.TokenEndpoint)
		_ = tok.Set(jwt.ExpirationKey, time.Now().Add(exp))
		_ = tok.Set(jwt.JwtIDKey, rand.Text())
		b, err := jwt.Sign(tok, jwt.WithKey(s.alg, s.key))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	token := func(a string) (int, map[string]any) {
		resp, err := http.PostForm(conf.TokenEndpoint, url.Values{"grant_type": {"client_credentials"}, "scope": {"system/*.rs"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&v)
		return resp.StatusCode, v
	}
	call := func(method, path, tok, body string) int {
		req, _ := http.NewRequest(method, m.URL()+"/fhir"+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		if body != "" {
			req.Header.Set("Content-Type", "application/fhir+json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, s := range services {
		t.Run(s.alg.String(), func(t *testing.T) {
			a := assertion(s, 4*time.Minute)
			st, v := token(a)
			if st != 200 || v["scope"] != "system/*.rs" {
				t.Fatalf("token: got %d %v, want 200 with scope system/*.rs", st, v)
			}
			tok, _ := v["access_token"].(string)
			if got := call("GET", "/Patient?_count=1", tok, ""); got != 200 {
				t.Errorf("search with the token: got %d, want 200", got)
			}
			if got := call("POST", "/Patient", tok, `{"resourceType":"Patient"}`); got != 403 {
				t.Errorf("create with a read-only token: got %d, want 403", got)
			}
			if st, v := token(a); st != 401 || v["error"] != "invalid_client" {
				t.Errorf("replayed assertion: got %d %v, want 401 invalid_client", st, v)
			}
			if st, v := token(assertion(s, -time.Minute)); st != 401 || v["error"] != "invalid_client" {
				t.Errorf("expired assertion: got %d %v, want 401 invalid_client", st, v)
			}
			o := services[0]
			if o.id == s.id {
				o = services[1]
			}
			// Signed with the other service's key (and algorithm) under this id.
			if st, v := token(assertion(service{s.id, o.alg, o.key}, 4*time.Minute)); st != 401 || v["error"] != "invalid_client" {
				t.Errorf("assertion signed by another key: got %d %v, want 401 invalid_client", st, v)
			}
		})
	}
}
