package smart_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/fhirhub/fhirhub/smart"
)

// patients is a PatientLister over a fixed list.
type patients []smart.PatientSummary

func (ps patients) ListPatients(_ context.Context, q string, limit int) ([]smart.PatientSummary, error) {
	var out []smart.PatientSummary
	for _, p := range ps {
		if q == "" || strings.Contains(strings.ToLower(p.Name), strings.ToLower(q)) {
			out = append(out, p)
		}
	}
	return out, nil
}

func (ps patients) Patient(_ context.Context, id string) (smart.PatientSummary, error) {
	for _, p := range ps {
		if p.ID == id {
			return p, nil
		}
	}
	return smart.PatientSummary{}, smart.ErrNotFound
}

// testEnv is an authorization server on a real HTTP listener.
type testEnv struct {
	t       testing.TB
	srv     *smart.Server
	http    *httptest.Server
	base    string // the FHIR base
	admin   string // the admin client's secret
	bootOut *bytes.Buffer
}

const appRedirect = "http://app.test/callback"

func newEnv(t testing.TB, st smart.Store) *testEnv {
	t.Helper()
	var h http.Handler = http.NotFoundHandler()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(hs.Close)
	e := &testEnv{t: t, http: hs, base: hs.URL + "/fhir", bootOut: &bytes.Buffer{}}
	e.srv = &smart.Server{
		Store: st, BaseURL: e.base, Bootstrap: e.bootOut,
		Patients: patients{{ID: "p1", Name: "Peter Chalmers", BirthDate: "1974-12-25"}, {ID: "p2", Name: "Amy Shaw"}},
	}
	if err := e.srv.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.srv.Close(context.Background()) })
	h = e.srv.Handler()
	m := regexp.MustCompile(`client secret: (\S+)`).FindStringSubmatch(e.bootOut.String())
	if m == nil {
		t.Fatalf("no admin secret printed: %q", e.bootOut)
	}
	e.admin = m[1]
	ctx := context.Background()
	must(t, smart.RegisterUser(ctx, st, "doc", "doc-password", "Practitioner/d1", time.Now()))
	must(t, smart.RegisterUser(ctx, st, "pat", "pat-password", "Patient/p2", time.Now()))
	must2(t)(smart.RegisterClient(ctx, st, &smart.Client{ID: "app", Type: smart.ClientPublic, RedirectURIs: []string{appRedirect},
		Scopes: []string{"patient/*.cruds", "user/*.rs"}}, time.Now()))
	return e
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func must2(t testing.TB) func(string, error) string {
	return func(s string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

// browser is an HTTP client with cookies that stops at redirects leaving
// the server (to the app).
func (e *testEnv) browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if !strings.HasPrefix(req.URL.String(), e.http.URL) {
			return http.ErrUseLastResponse
		}
		return nil
	}}
}

func readBody(t testing.TB, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var (
	csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	reqRE  = regexp.MustCompile(`name="req" value="([^"]+)"`)
)

func formValues(t testing.TB, page string) (csrf, req string) {
	t.Helper()
	c, r := csrfRE.FindStringSubmatch(page), reqRE.FindStringSubmatch(page)
	if c == nil || r == nil {
		t.Fatalf("no csrf/req in page:\n%s", page)
	}
	return html.UnescapeString(c[1]), html.UnescapeString(r[1])
}

type authParams struct {
	clientID, scope, aud, redirect, verifier, method, launch string
	noPKCE                                                   bool
}

const testVerifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-0123456789"

func (e *testEnv) authorizeURL(p authParams) string {
	q := url.Values{"response_type": {"code"}, "client_id": {p.clientID}, "redirect_uri": {p.redirect},
		"scope": {p.scope}, "state": {"st-1"}, "aud": {p.aud}, "nonce": {"n-1"}}
	if !p.noPKCE {
		v := p.verifier
		if v == "" {
			v = testVerifier
		}
		q.Set("code_challenge", smart.S256(v))
		q.Set("code_challenge_method", "S256")
		if p.method != "" {
			q.Set("code_challenge_method", p.method)
		}
	}
	if p.launch != "" {
		q.Set("launch", p.launch)
	}
	return e.http.URL + "/auth/authorize?" + q.Encode()
}

func defaults(p authParams, e *testEnv) authParams {
	if p.clientID == "" {
		p.clientID = "app"
	}
	if p.aud == "" {
		p.aud = e.base
	}
	if p.redirect == "" {
		p.redirect = appRedirect
	}
	return p
}

// loginAndConsent drives the pages: login, the picker (choosing pick when
// it shows), consent (unticking untick); it returns the app's redirect.
func (e *testEnv) loginAndConsent(b *http.Client, p authParams, user, pass, pick string, untick ...string) *url.URL {
	t := e.t
	t.Helper()
	p = defaults(p, e)
	resp, err := b.Get(e.authorizeURL(p))
	must(t, err)
	page := readBody(t, resp)
	if resp.StatusCode != 200 || !strings.Contains(page, `id="username"`) {
		t.Fatalf("authorize: got %d, want the login page:\n%s", resp.StatusCode, page)
	}
	csrf, req := formValues(t, page)
	resp, err = b.PostForm(e.http.URL+"/auth/login", url.Values{"csrf": {csrf}, "req": {req}, "username": {user}, "password": {pass}})
	must(t, err)
	page = readBody(t, resp)
	if strings.Contains(page, `id="patients"`) {
		if pick == "" {
			t.Fatal("the picker showed")
		}
		if !strings.Contains(page, `name="patient" value="`+pick+`"`) {
			t.Fatalf("the picker lacks %s:\n%s", pick, page)
		}
		csrf, req = formValues(t, page)
		resp, err = b.PostForm(e.http.URL+"/auth/pick", url.Values{"csrf": {csrf}, "req": {req}, "patient": {pick}})
		must(t, err)
		page = readBody(t, resp)
	}
	if resp.StatusCode == http.StatusSeeOther {
		loc, _ := resp.Location()
		return loc
	}
	if !strings.Contains(page, `id="allow"`) {
		t.Fatalf("got %d, want the consent page:\n%s", resp.StatusCode, page)
	}
	csrf, req = formValues(t, page)
	form := url.Values{"csrf": {csrf}, "req": {req}, "action": {"allow"}}
	for _, m := range regexp.MustCompile(`name="scope" value="([^"]+)"`).FindAllStringSubmatch(page, -1) {
		sc := html.UnescapeString(m[1])
		if !contains(untick, sc) {
			form.Add("scope", sc)
		}
	}
	resp, err = b.PostForm(e.http.URL+"/auth/consent", form)
	must(t, err)
	readBody(t, resp)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("consent: got %d, want 303", resp.StatusCode)
	}
	loc, _ := resp.Location()
	return loc
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// post sends a form to an endpoint, optionally with Basic credentials.
func (e *testEnv) post(path string, form url.Values, user, pass string) (int, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest("POST", e.http.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	must(e.t, err)
	body := readBody(e.t, resp)
	var m map[string]any
	_ = json.Unmarshal([]byte(body), &m)
	return resp.StatusCode, m
}

func (e *testEnv) redeem(code, verifier string) (int, map[string]any) {
	return e.post("/auth/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"code_verifier": {verifier}, "redirect_uri": {appRedirect}, "client_id": {"app"}}, "", "")
}

func TestAuthorizationCode(t *testing.T) {
	t.Run("SQLite", func(t *testing.T) { testAuthorizationCode(t, newSQLiteStore(t)) })
	t.Run("Mongo", func(t *testing.T) { testAuthorizationCode(t, newMongoStore(t)) })
}

func testAuthorizationCode(t *testing.T, store smart.Store) {
	e := newEnv(t, store)
	b := e.browser()
	scope := "launch/patient patient/*.rs openid fhirUser offline_access"
	loc := e.loginAndConsent(b, authParams{scope: scope}, "doc", "doc-password", "p1")
	if loc.Query().Get("state") != "st-1" || loc.Query().Get("code") == "" {
		t.Fatalf("redirect %s: want code and state st-1", loc)
	}
	code := loc.Query().Get("code")

	t.Run("WrongVerifier", func(t *testing.T) {
		// A failed redemption still uses the code up (it was taken).
		b2 := e.browser()
		loc := e.loginAndConsent(b2, authParams{scope: scope}, "doc", "doc-password", "p1")
		st, m := e.redeem(loc.Query().Get("code"), strings.Repeat("x", 43))
		if st != 400 || m["error"] != "invalid_grant" {
			t.Errorf("got %d %v, want 400 invalid_grant", st, m)
		}
	})

	st, tok := e.redeem(code, testVerifier)
	if st != 200 {
		t.Fatalf("token: got %d %v", st, tok)
	}
	if !sameScopes(tok["scope"], scope) {
		t.Errorf("scope: got %v, want %s", tok["scope"], scope)
	}
	for k, want := range map[string]any{"token_type": "Bearer", "patient": "p1", "need_patient_banner": true,
		"expires_in": float64(3600)} {
		if tok[k] != want {
			t.Errorf("%s: got %v, want %v", k, tok[k], want)
		}
	}
	if tok["refresh_token"] == nil || tok["id_token"] == nil {
		t.Fatalf("want refresh_token and id_token: %v", tok)
	}
	a, err := e.srv.Verify(context.Background(), tok["access_token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if a.Patient != "p1" || a.FHIRUser != "Practitioner/d1" || a.ClientID != "app" || a.Subject != "doc" || !a.Allows("Observation", smart.PermRead) {
		t.Errorf("access: got %+v", a)
	}
	idt, err := jwt.ParseString(tok["id_token"].(string), jwt.WithVerify(false))
	must(t, err)
	if nonce, _ := idt.Get("nonce"); nonce != "n-1" || idt.Audience()[0] != "app" || idt.Issuer() != e.srv.Issuer() {
		t.Errorf("id token: nonce %v aud %v iss %v", nonce, idt.Audience(), idt.Issuer())
	}
	if fu, _ := idt.Get("fhirUser"); fu != "Practitioner/d1" {
		t.Errorf("id token fhirUser: got %v", fu)
	}

	t.Run("CodeReuse", func(t *testing.T) {
		if st, m := e.redeem(code, testVerifier); st != 400 || m["error"] != "invalid_grant" {
			t.Errorf("got %d %v, want 400 invalid_grant", st, m)
		}
	})

	t.Run("RefreshRotation", func(t *testing.T) {
		// The code's reuse above revoked this authorization's family: start a new one.
		loc := e.loginAndConsent(e.browser(), authParams{scope: scope}, "doc", "doc-password", "p1")
		_, tok := e.redeem(loc.Query().Get("code"), testVerifier)
		r1 := tok["refresh_token"].(string)
		refresh := func(rt string) (int, map[string]any) {
			return e.post("/auth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"app"}}, "", "")
		}
		st, t2 := refresh(r1)
		if st != 200 || t2["refresh_token"] == nil || t2["refresh_token"] == r1 || t2["patient"] != "p1" {
			t.Fatalf("refresh: got %d %v", st, t2)
		}
		r2 := t2["refresh_token"].(string)
		if st, m := refresh(r1); st != 400 || m["error"] != "invalid_grant" {
			t.Errorf("reuse of a rotated token: got %d %v, want 400 invalid_grant", st, m)
		}
		if st, m := refresh(r2); st != 400 || m["error"] != "invalid_grant" {
			t.Errorf("the family's newest token after a reuse: got %d %v, want 400 invalid_grant", st, m)
		}
	})

	t.Run("UntickedScope", func(t *testing.T) {
		loc := e.loginAndConsent(e.browser(), authParams{scope: scope}, "doc", "doc-password", "p2", "offline_access", "launch/patient")
		_, tok := e.redeem(loc.Query().Get("code"), testVerifier)
		if tok["refresh_token"] != nil || strings.Contains(tok["scope"].(string), "offline_access") {
			t.Errorf("offline_access unticked, got %v", tok)
		}
		if !strings.Contains(tok["scope"].(string), "launch/patient") || tok["patient"] != "p2" {
			t.Errorf("launch/patient is required, got %v", tok)
		}
	})

	t.Run("PatientUser", func(t *testing.T) {
		loc := e.loginAndConsent(e.browser(), authParams{scope: "launch/patient patient/*.rs user/*.rs"}, "pat", "pat-password", "")
		_, tok := e.redeem(loc.Query().Get("code"), testVerifier)
		if tok["patient"] != "p2" || !sameScopes(tok["scope"], "launch/patient patient/*.rs") {
			t.Errorf("got patient %v scope %q; want p2 without user/ scopes", tok["patient"], tok["scope"])
		}
	})

	t.Run("WrongPassword", func(t *testing.T) {
		b := e.browser()
		resp, _ := b.Get(e.authorizeURL(defaults(authParams{scope: "patient/*.rs"}, e)))
		csrf, req := formValues(t, readBody(t, resp))
		resp, _ = b.PostForm(e.http.URL+"/auth/login", url.Values{"csrf": {csrf}, "req": {req}, "username": {"doc"}, "password": {"nope"}})
		if page := readBody(t, resp); resp.StatusCode != 401 || !strings.Contains(page, `id="error"`) {
			t.Errorf("got %d, want 401 with the login page and an error", resp.StatusCode)
		}
		resp, _ = b.PostForm(e.http.URL+"/auth/login", url.Values{"csrf": {"forged"}, "req": {req}, "username": {"doc"}, "password": {"doc-password"}})
		if readBody(t, resp); resp.StatusCode != 403 {
			t.Errorf("forged csrf: got %d, want 403", resp.StatusCode)
		}
	})
}

func TestAuthorizeErrors(t *testing.T) {
	e := newEnv(t, newSQLiteStore(t))
	for _, tc := range []struct {
		name string
		p    authParams
		want string // the error sent to the app; "" for an error page
	}{
		{"WrongAud", authParams{scope: "patient/*.rs", aud: "https://elsewhere/fhir"}, "invalid_request"},
		{"WrongRedirect", authParams{scope: "patient/*.rs", redirect: "http://app.test/other"}, ""},
		{"UnknownClient", authParams{scope: "patient/*.rs", clientID: "nobody"}, ""},
		{"PublicWithoutPKCE", authParams{scope: "patient/*.rs", noPKCE: true}, "invalid_request"},
		{"PlainPKCE", authParams{scope: "patient/*.rs", method: "plain"}, "invalid_request"},
		{"NoScopeAllowed", authParams{scope: "system/*.rs"}, "invalid_scope"},
		{"UnknownLaunch", authParams{scope: "launch patient/*.rs", launch: "nope"}, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := e.browser().Get(e.authorizeURL(defaults(tc.p, e)))
			must(t, err)
			page := readBody(t, resp)
			if tc.want == "" {
				if resp.StatusCode != 400 || !strings.Contains(page, "Authorization failed") {
					t.Errorf("got %d, want 400 and an error page", resp.StatusCode)
				}
				return
			}
			loc, _ := resp.Location()
			if resp.StatusCode != 303 || loc.Query().Get("error") != tc.want || loc.Query().Get("state") != "st-1" {
				t.Errorf("got %d %v, want a redirect with error=%s and the state", resp.StatusCode, loc, tc.want)
			}
		})
	}
	t.Run("RedeemWithWrongRedirect", func(t *testing.T) {
		loc := e.loginAndConsent(e.browser(), authParams{scope: "patient/*.rs"}, "pat", "pat-password", "")
		st, m := e.post("/auth/token", url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")},
			"code_verifier": {testVerifier}, "redirect_uri": {"http://app.test/other"}, "client_id": {"app"}}, "", "")
		if st != 400 || m["error"] != "invalid_grant" {
			t.Errorf("got %d %v, want 400 invalid_grant", st, m)
		}
	})
	t.Run("Deny", func(t *testing.T) {
		b := e.browser()
		resp, _ := b.Get(e.authorizeURL(defaults(authParams{scope: "patient/*.rs"}, e)))
		csrf, req := formValues(t, readBody(t, resp))
		resp, _ = b.PostForm(e.http.URL+"/auth/login", url.Values{"csrf": {csrf}, "req": {req}, "username": {"pat"}, "password": {"pat-password"}})
		csrf, req = formValues(t, readBody(t, resp))
		resp, _ = b.PostForm(e.http.URL+"/auth/consent", url.Values{"csrf": {csrf}, "req": {req}, "action": {"deny"}})
		readBody(t, resp)
		if loc, _ := resp.Location(); loc == nil || loc.Query().Get("error") != "access_denied" {
			t.Errorf("got %v, want error=access_denied", loc)
		}
	})
	t.Run("UnsupportedGrant", func(t *testing.T) {
		if st, m := e.post("/auth/token", url.Values{"grant_type": {"password"}}, "", ""); st != 400 || m["error"] != "unsupported_grant_type" {
			t.Errorf("got %d %v", st, m)
		}
	})
}

// adminToken gets a token of the admin client.
func (e *testEnv) adminToken(scope string) string {
	st, m := e.post("/auth/token", url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}, smart.AdminClientID, e.admin)
	if st != 200 {
		e.t.Fatalf("admin token: got %d %v", st, m)
	}
	return m["access_token"].(string)
}

func (e *testEnv) call(method, path, token string, body any) (int, []byte) {
	e.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.http.URL+path, r)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	must(e.t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, b
}

func TestEHRLaunchAndAdmin(t *testing.T) {
	e := newEnv(t, newSQLiteStore(t))
	tok := e.adminToken("system/*.rs admin")
	if st, _ := e.call("GET", "/auth/admin/clients", e.adminToken("system/*.rs"), nil); st != 403 {
		t.Errorf("admin API without the admin scope: got %d, want 403", st)
	}
	if st, _ := e.call("GET", "/auth/admin/clients", "", nil); st != 401 {
		t.Errorf("admin API without a token: got %d, want 401", st)
	}
	st, b := e.call("POST", "/auth/launch", tok, map[string]any{"patient": "p1", "encounter": "e1",
		"fhirContext": []any{map[string]any{"reference": "Appointment/a1"}}})
	if st != 201 {
		t.Fatalf("launch: got %d %s", st, b)
	}
	var l struct{ Launch string }
	_ = json.Unmarshal(b, &l)
	loc := e.loginAndConsent(e.browser(), authParams{scope: "launch patient/*.rs openid fhirUser", launch: l.Launch}, "doc", "doc-password", "")
	_, m := e.redeem(loc.Query().Get("code"), testVerifier)
	if m["patient"] != "p1" || m["encounter"] != "e1" || m["fhirContext"] == nil {
		t.Errorf("got %v, want patient p1, encounter e1, fhirContext", m)
	}

	t.Run("Clients", func(t *testing.T) {
		st, b := e.call("POST", "/auth/admin/clients", tok, map[string]any{"id": "svc", "type": "confidential-symmetric", "scopes": []string{"system/Patient.rs"}})
		var c smart.ClientView
		_ = json.Unmarshal(b, &c)
		if st != 201 || c.Secret == "" {
			t.Fatalf("add: got %d %s", st, b)
		}
		if st, m := e.post("/auth/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"system/Patient.rs system/Observation.rs"}}, "svc", c.Secret); st != 200 || m["scope"] != "system/Patient.rs" {
			t.Errorf("token of the new client: got %d %v", st, m)
		}
		if st, m := e.post("/auth/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"system/Patient.rs"}}, "svc", "wrong"); st != 401 || m["error"] != "invalid_client" {
			t.Errorf("wrong secret: got %d %v", st, m)
		}
		st, b = e.call("GET", "/auth/admin/clients", tok, nil)
		if st != 200 || !strings.Contains(string(b), `"svc"`) || strings.Contains(string(b), "secret") {
			t.Errorf("list: got %d %s", st, b)
		}
		if st, _ := e.call("DELETE", "/auth/admin/clients/svc", tok, nil); st != 204 {
			t.Errorf("remove: got %d", st)
		}
		if st, _ := e.call("DELETE", "/auth/admin/clients/svc", tok, nil); st != 404 {
			t.Errorf("remove again: got %d", st)
		}
	})
	t.Run("Users", func(t *testing.T) {
		if st, b := e.call("POST", "/auth/admin/users", tok, map[string]any{"username": "nurse", "password": "pw-123456", "fhir_user": "Practitioner/n1"}); st != 201 {
			t.Fatalf("add: got %d %s", st, b)
		}
		st, b := e.call("GET", "/auth/admin/users", tok, nil)
		if st != 200 || !strings.Contains(string(b), `"nurse"`) || strings.Contains(string(b), "argon2") {
			t.Errorf("list: got %d %s", st, b)
		}
		if st, _ := e.call("DELETE", "/auth/admin/users/nurse", tok, nil); st != 204 {
			t.Errorf("remove: got %d", st)
		}
	})
}

func TestBootstrapOnce(t *testing.T) {
	st := newSQLiteStore(t)
	e := newEnv(t, st)
	if !strings.Contains(e.bootOut.String(), "client id:     admin") {
		t.Errorf("got %q", e.bootOut)
	}
	var out bytes.Buffer
	s2 := &smart.Server{Store: st, BaseURL: e.base, Bootstrap: &out}
	must(t, s2.Open(context.Background()))
	defer s2.Close(context.Background())
	if out.Len() != 0 {
		t.Errorf("the second start printed %q", out.String())
	}
}

func TestDiscovery(t *testing.T) {
	e := newEnv(t, newSQLiteStore(t))
	resp, err := http.Get(e.base + "/.well-known/smart-configuration")
	must(t, err)
	var c map[string]any
	_ = json.Unmarshal([]byte(readBody(t, resp)), &c)
	for _, k := range []string{"issuer", "jwks_uri", "authorization_endpoint", "token_endpoint", "token_endpoint_auth_methods_supported",
		"grant_types_supported", "scopes_supported", "response_types_supported", "introspection_endpoint", "revocation_endpoint",
		"code_challenge_methods_supported", "token_endpoint_auth_signing_alg_values_supported", "capabilities"} {
		if c[k] == nil {
			t.Errorf("%s missing", k)
		}
	}
	if c["token_endpoint"] != e.http.URL+"/auth/token" {
		t.Errorf("token_endpoint: got %v", c["token_endpoint"])
	}
	if _, ok := c["registration_endpoint"]; ok {
		t.Error("registration_endpoint given, but there is no registration")
	}
	if got := e.srv.Endpoints(); len(got) != 5 || got["jwks"] != e.http.URL+"/auth/jwks" {
		t.Errorf("Endpoints: got %v", got)
	}
}

// backendClient is a confidential-asymmetric client and its private key.
type backendClient struct {
	id  string
	key jwk.Key
	alg jwa.SignatureAlgorithm
}

func newBackendKey(t *testing.T, alg jwa.SignatureAlgorithm, kid string) (priv, pub jwk.Key) {
	t.Helper()
	var raw any
	var err error
	if alg == jwa.ES384 {
		raw, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	} else {
		raw, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	must(t, err)
	priv, err = jwk.FromRaw(raw)
	must(t, err)
	_ = priv.Set(jwk.KeyIDKey, kid)
	pub, err = jwk.PublicKeyOf(priv)
	must(t, err)
	return priv, pub
}

func (e *testEnv) assertion(c backendClient, mod func(jwt.Token)) string {
	e.t.Helper()
	now := time.Now()
	tok := jwt.New()
	_ = tok.Set(jwt.IssuerKey, c.id)
	_ = tok.Set(jwt.SubjectKey, c.id)
	_ = tok.Set(jwt.AudienceKey, e.http.URL+"/auth/token")
	_ = tok.Set(jwt.ExpirationKey, now.Add(4*time.Minute))
	_ = tok.Set(jwt.JwtIDKey, smart.RandomToken())
	if mod != nil {
		mod(tok)
	}
	b, err := jwt.Sign(tok, jwt.WithKey(c.alg, c.key))
	must(e.t, err)
	return string(b)
}

func (e *testEnv) backendToken(assertion, scope string) (int, map[string]any) {
	return e.post("/auth/token", url.Values{"grant_type": {"client_credentials"}, "scope": {scope},
		"client_assertion_type": {smart.AssertionType}, "client_assertion": {assertion}}, "", "")
}

func TestBackendServices(t *testing.T) {
	e := newEnv(t, newSQLiteStore(t))
	ctx := context.Background()
	// ES384, keys registered inline.
	esPriv, esPub := newBackendKey(t, jwa.ES384, "es-1")
	set := jwk.NewSet()
	_ = set.AddKey(esPub)
	inline, _ := json.Marshal(set)
	must2(t)(smart.RegisterClient(ctx, e.srv.Store, &smart.Client{ID: "bulk-es", Type: smart.ClientAsymmetric, JWKS: inline, Scopes: []string{"system/*.rs"}}, time.Now()))
	// RS384, keys served at a URL.
	rsPriv, rsPub := newBackendKey(t, jwa.RS384, "rs-1")
	rsSet := jwk.NewSet()
	_ = rsSet.AddKey(rsPub)
	jwksSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _ = json.NewEncoder(w).Encode(rsSet) }))
	defer jwksSrv.Close()
	must2(t)(smart.RegisterClient(ctx, e.srv.Store, &smart.Client{ID: "bulk-rs", Type: smart.ClientAsymmetric, JWKSURI: jwksSrv.URL, Scopes: []string{"system/*.rs"}}, time.Now()))

	es := backendClient{"bulk-es", esPriv, jwa.ES384}
	rs := backendClient{"bulk-rs", rsPriv, jwa.RS384}
	for _, c := range []backendClient{es, rs} {
		t.Run(string(c.alg), func(t *testing.T) {
			st, m := e.backendToken(e.assertion(c, nil), "system/*.rs patient/*.rs")
			if st != 200 || m["scope"] != "system/*.rs" || m["refresh_token"] != nil {
				t.Fatalf("got %d %v, want system/*.rs only", st, m)
			}
			a, err := e.srv.Verify(ctx, m["access_token"].(string))
			if err != nil || a.Subject != c.id || !a.Unrestricted("Observation", smart.PermSearch) {
				t.Errorf("verify: %+v, %v", a, err)
			}
		})
	}
	replayed := e.assertion(es, nil)
	e.backendToken(replayed, "system/*.rs")
	otherPriv, _ := newBackendKey(t, jwa.ES384, "es-1") // same kid, not registered
	for _, tc := range []struct {
		name, assertion, scope, want, desc string
	}{
		{"ReplayedJTI", replayed, "system/*.rs", "invalid_client", "jti was already used"},
		{"Expired", e.assertion(es, func(t jwt.Token) { _ = t.Set(jwt.ExpirationKey, time.Now().Add(-time.Minute)) }), "system/*.rs", "invalid_client", "exp"},
		{"TooLong", e.assertion(es, func(t jwt.Token) { _ = t.Set(jwt.ExpirationKey, time.Now().Add(10*time.Minute)) }), "system/*.rs", "invalid_client", "more than 5 minutes"},
		{"WrongKey", e.assertion(backendClient{"bulk-es", otherPriv, jwa.ES384}, nil), "system/*.rs", "invalid_client", "not signed by a key"},
		{"WrongAudience", e.assertion(es, func(t jwt.Token) { _ = t.Set(jwt.AudienceKey, e.base) }), "system/*.rs", "invalid_client", "aud"},
		{"NoJTI", e.assertion(es, func(t jwt.Token) { _ = t.Remove(jwt.JwtIDKey) }), "system/*.rs", "invalid_client", "jti"},
		{"UserScopesOnly", e.assertion(es, nil), "patient/*.rs", "invalid_scope", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, m := e.backendToken(tc.assertion, tc.scope)
			wantStatus := 400
			if tc.want == "invalid_client" {
				wantStatus = 401
			}
			desc, _ := m["error_description"].(string)
			if st != wantStatus || m["error"] != tc.want || !strings.Contains(desc, tc.desc) {
				t.Errorf("got %d %v, want %d %s (%s)", st, m, wantStatus, tc.want, tc.desc)
			}
		})
	}
	t.Run("RS256Refused", func(t *testing.T) {
		tok := jwt.New()
		_ = tok.Set(jwt.IssuerKey, "bulk-rs")
		b, _ := jwt.Sign(tok, jwt.WithKey(jwa.RS256, rsPriv))
		if st, m := e.backendToken(string(b), "system/*.rs"); st != 401 || m["error"] != "invalid_client" {
			t.Errorf("got %d %v", st, m)
		}
	})
}

func TestIntrospectRevoke(t *testing.T) {
	e := newEnv(t, newSQLiteStore(t))
	ctx := context.Background()
	loc := e.loginAndConsent(e.browser(), authParams{scope: "patient/*.rs offline_access"}, "pat", "pat-password", "")
	_, tok := e.redeem(loc.Query().Get("code"), testVerifier)
	at, rt := tok["access_token"].(string), tok["refresh_token"].(string)
	introspect := func(token string) map[string]any {
		st, m := e.post("/auth/introspect", url.Values{"token": {token}}, smart.AdminClientID, e.admin)
		if st != 200 {
			t.Fatalf("introspect: got %d %v", st, m)
		}
		return m
	}
	if m := introspect(at); m["active"] != true || m["client_id"] != "app" || m["patient"] != "p2" || !sameScopes(m["scope"], "patient/*.rs offline_access") {
		t.Errorf("active token: got %v", m)
	}
	if m := introspect("garbage"); m["active"] != false || len(m) != 1 {
		t.Errorf("garbage: got %v", m)
	}
	if st, _ := e.post("/auth/introspect", url.Values{"token": {at}, "client_id": {"app"}}, "", ""); st != 401 {
		t.Errorf("introspection by a public client: got %d, want 401", st)
	}
	if st, _ := e.post("/auth/revoke", url.Values{"token": {at}, "client_id": {"app"}}, "", ""); st != 200 {
		t.Errorf("revoke: got %d", st)
	}
	if m := introspect(at); m["active"] != false {
		t.Errorf("revoked token: got %v", m)
	}
	if _, err := e.srv.Verify(ctx, at); !errors.Is(err, smart.ErrTokenRevoked) {
		t.Errorf("Verify of a revoked token: got %v", err)
	}
	// Revoking the refresh token revokes its family.
	e.post("/auth/revoke", url.Values{"token": {rt}, "client_id": {"app"}}, "", "")
	if st, m := e.post("/auth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"app"}}, "", ""); st != 400 || m["error"] != "invalid_grant" {
		t.Errorf("refresh after revocation: got %d %v", st, m)
	}
}

func TestKeyRotation(t *testing.T) {
	e := newEnv(t, newSQLiteStore(t))
	ctx := context.Background()
	old := e.adminToken("system/*.rs")
	oldKid := kidOf(t, old)
	if _, err := smart.RotateKey(ctx, e.srv.Store, time.Now()); err != nil {
		t.Fatal(err)
	}
	// The server picks up the rotation at its next reload.
	e.srv.ExpireKeys()
	fresh := e.adminToken("system/*.rs")
	if kidOf(t, fresh) == oldKid {
		t.Error("a token after rotation has the old kid")
	}
	for _, tok := range []string{old, fresh} {
		if _, err := e.srv.Verify(ctx, tok); err != nil {
			t.Errorf("verify: %v", err)
		}
	}
	resp, _ := http.Get(e.http.URL + "/auth/jwks")
	set, err := jwk.Parse([]byte(readBody(t, resp)))
	must(t, err)
	if _, ok := set.LookupKeyID(oldKid); !ok || set.Len() != 2 {
		t.Errorf("the JWKS has %d keys; want the retired and the current", set.Len())
	}
	// Past the longest token lifetime the retired key is gone.
	e.srv.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	must(t, e.srv.LoadKeys(ctx, true))
	e.srv.Now = time.Now
	if _, ok := e.srv.VerificationKey(ctx, oldKid); ok {
		t.Error("a key retired longer ago than the token lifetime still verifies")
	}
}

func kidOf(t *testing.T, token string) string {
	t.Helper()
	var h struct{ Kid string }
	part, _, _ := strings.Cut(token, ".")
	b, err := jwkB64(part)
	must(t, err)
	_ = json.Unmarshal(b, &h)
	return h.Kid
}
