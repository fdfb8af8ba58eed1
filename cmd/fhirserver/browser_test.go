package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// The browser test: a real SMART app, built on the official JavaScript
// client fhirclient (from npm), runs in headless Chromium against the real
// server and goes through the login, patient picker and consent pages.
//
// It needs Chromium and npm. Without them it skips, unless FHIR_E2E_BROWSER
// is set (CI sets it): then they are required and their absence fails.
// FHIR_CHROMIUM names the browser (default: chromium on PATH, then
// /usr/bin/chromium). fhirclient is installed once into the user cache
// (fhirhub-test/fhirclient-2.6.3) and reused.

const (
	fhirclientVersion = "2.6.3"
	e2eClientID       = "e2e-app" // as in testdata/smartapp/launch.html
	e2eUser           = "drsmith"
	e2ePassword       = "correct horse battery staple"
)

// e2ePatient is a Patient the test loads, with its Observations.
type e2ePatient struct {
	ID, Given, Family string
	Observations      int
}

func (p e2ePatient) name() string { return p.Given + " " + p.Family }

var (
	patientA = e2ePatient{ID: "e2e-a", Given: "Ada", Family: "Lovelace", Observations: 3}
	patientB = e2ePatient{ID: "e2e-b", Given: "Blaise", Family: "Pascal", Observations: 2}
	patientC = e2ePatient{ID: "e2e-c", Given: "Carl", Family: "Gauss", Observations: 1}
)

func TestBrowserSMARTLaunch(t *testing.T) {
	if testing.Short() {
		t.Skip("long: installs fhirclient and drives Chromium")
	}
	chromium := browserPath(t)
	clientJS := installFHIRClient(t)
	env := startE2E(t, clientJS)

	t.Run("Standalone", func(t *testing.T) {
		b := newBrowser(t, chromium)
		b.do(chromedp.Navigate(env.app + "/app/launch.html?iss=" + url.QueryEscape(env.base)))
		authz := b.waitAuthorizeRequest()
		checkAuthorize(t, authz, env.base)
		b.login()
		b.do(chromedp.Click(chromedp.CSS(fmt.Sprintf(`#patients button[value=%q]`, patientA.ID)), chromedp.NodeVisible))
		b.consent("offline_access")
		page := b.appResult()

		b.checkPage(page, patientA)
		tok := b.tokenResponse()
		if tok.Patient != patientA.ID {
			t.Errorf("token response patient: got %q, want %q", tok.Patient, patientA.ID)
		}
		granted := strings.Fields(tok.Scope)
		if slices.Contains(granted, "offline_access") {
			t.Errorf("granted scope: got %q, want it without offline_access (unticked)", tok.Scope)
		}
		if tok.RefreshToken {
			t.Error("a refresh token was issued although offline_access was unticked")
		}
		for _, want := range []string{"launch/patient", "patient/Patient.rs", "patient/Observation.rs", "openid", "fhirUser"} {
			if !slices.Contains(granted, want) {
				t.Errorf("granted scope: got %q, want it to hold %s", tok.Scope, want)
			}
		}
		if !tok.IDToken {
			t.Error("no id_token although openid fhirUser were granted")
		}
		if !b.tokenVerifierSent() {
			t.Error("the token request carried no code_verifier")
		}
		// Patient B is out of reach of A's token, even when the app asks.
		b.checkHidden(patientB)
	})

	t.Run("EHR", func(t *testing.T) {
		launch := env.newLaunch(t, patientB.ID)
		b := newBrowser(t, chromium)
		b.do(chromedp.Navigate(env.app + "/app/launch.html?" + url.Values{"iss": {env.base}, "launch": {launch}}.Encode()))
		authz := b.waitAuthorizeRequest()
		checkAuthorize(t, authz, env.base)
		if got := authz.Query().Get("launch"); got != launch {
			t.Errorf("authorize launch: got %q, want %q", got, launch)
		}
		b.login()
		// No picker: the launch names the patient, so consent comes next.
		b.consent("")
		page := b.appResult()

		b.checkPage(page, patientB)
		tok := b.tokenResponse()
		if tok.Patient != patientB.ID {
			t.Errorf("token response patient: got %q, want %q", tok.Patient, patientB.ID)
		}
		if !slices.Contains(strings.Fields(tok.Scope), "offline_access") || !tok.RefreshToken {
			t.Errorf("granted scope %q, refresh token %v: want offline_access and a refresh token", tok.Scope, tok.RefreshToken)
		}
		b.checkHidden(patientA)
	})
}

// browserPath finds Chromium, or skips (fails when FHIR_E2E_BROWSER is set).
func browserPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("FHIR_CHROMIUM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			e2eMissing(t, "FHIR_CHROMIUM: %v", err)
		}
		return p
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	e2eMissing(t, "chromium not found (apt-get install chromium, or set FHIR_CHROMIUM)")
	return ""
}

// e2eMissing skips the test for a missing tool, or fails it when the browser
// test is mandatory (FHIR_E2E_BROWSER set, as in CI).
func e2eMissing(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("FHIR_E2E_BROWSER") != "" {
		t.Fatalf("FHIR_E2E_BROWSER is set, but: "+format, args...)
	}
	t.Skipf(format, args...)
}

// installFHIRClient installs fhirclient from npm into the user cache, once,
// and returns the path of its browser build.
func installFHIRClient(t *testing.T) string {
	t.Helper()
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "fhirhub-test", "fhirclient-"+fhirclientVersion)
	js := filepath.Join(dir, "node_modules", "fhirclient", "build", "fhir-client.js")
	if _, err := os.Stat(js); err == nil {
		return js
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		e2eMissing(t, "npm not found: it installs fhirclient@%s", fhirclientVersion)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	// Install beside, then rename: a concurrent or interrupted run never
	// leaves a half-installed directory where the next run looks.
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "install-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	// The optional dependencies are React Native's and Expo's crypto
	// (hundreds of packages); the browser build needs none of them.
	cmd := exec.Command(npm, "install", "--prefix", tmp, "--no-save", "--no-package-lock", "--omit=optional",
		"--ignore-scripts", "--no-audit", "--no-fund", "fhirclient@"+fhirclientVersion)
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		e2eMissing(t, "npm install fhirclient@%s: %v\n%s", fhirclientVersion, err, out)
	}
	var pkg struct{ Version string }
	b, _ := os.ReadFile(filepath.Join(tmp, "node_modules", "fhirclient", "package.json"))
	if err := json.Unmarshal(b, &pkg); err != nil || pkg.Version != fhirclientVersion {
		t.Fatalf("installed fhirclient: got version %q (%v), want %s", pkg.Version, err, fhirclientVersion)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, statErr := os.Stat(js); statErr != nil { // not just another run's install winning
			t.Fatal(err)
		}
	}
	t.Logf("installed fhirclient@%s into %s in %v", fhirclientVersion, dir, time.Since(start).Round(time.Second))
	return js
}

// e2eEnv is the running set-up: the server with its data, and the app.
type e2eEnv struct {
	app    string // the app's origin
	server string // the server's origin
	base   string // the FHIR base URL (iss)
	admin  string // an admin token
}

// startE2E starts the server with --auth smart, registers the app and the
// user with the CLI, loads the patients, and serves the app from an origin
// of its own, as SMART apps are: the app calls the FHIR API and the token
// endpoint across origins (CORS).
func startE2E(t *testing.T, clientJS string) *e2eEnv {
	t.Helper()
	// The app's files, served as they are (http.FileServer would redirect
	// the redirect URI …/index.html to …/).
	appFiles := map[string]string{
		"/app/launch.html":    filepath.Join("testdata", "smartapp", "launch.html"),
		"/app/index.html":     filepath.Join("testdata", "smartapp", "index.html"),
		"/app/fhir-client.js": clientJS,
	}
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(appFiles[r.URL.Path])
		if err != nil || r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		defer f.Close()
		http.ServeContent(w, r, r.URL.Path, time.Time{}, f)
	}))
	t.Cleanup(app.Close)

	// --base-url must name the server's address before it listens: take a
	// free port.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.Listen = addr
	cfg.Auth = "smart"
	cfg.BaseURL = "http://" + addr + "/fhir"
	cfg.AccessLifetime, cfg.RefreshLifetime = time.Hour, 24*time.Hour
	stderr := &syncBuffer{}
	m := NewMain(cfg, stderr)
	if err := m.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })

	match := regexp.MustCompile(`client id:\s+(\S+)\s+client secret:\s+(\S+)`).FindStringSubmatch(stderr.String())
	if match == nil {
		t.Fatalf("the admin client was not printed:\n%s", stderr)
	}
	env := &e2eEnv{app: app.URL, server: m.URL(), base: cfg.BaseURL}
	env.admin = clientCredentials(t, env.server+"/auth/token", match[1], match[2], "system/*.cruds admin")

	cli := func(stdin string, args ...string) {
		t.Helper()
		var out, errOut syncBuffer
		err := runAuthCommand(t.Context(), args[0], append(args[1:], "--data-dir", dir), func(string) string { return "" }, strings.NewReader(stdin), &out, &errOut)
		if err != nil {
			t.Fatalf("fhirserver %s: %v\n%s%s", strings.Join(args, " "), err, &out, &errOut)
		}
	}
	cli("", "clients", "add", "--id", e2eClientID, "--name", "Browser test app", "--type", "public",
		"--redirect-uri", app.URL+"/app/index.html", "--scope", "patient/*.rs")
	cli(e2ePassword+"\n", "users", "add", "--username", e2eUser, "--fhir-user", "Practitioner/e2e-doc")

	entries := []any{map[string]any{
		"resource": map[string]any{"resourceType": "Practitioner", "id": "e2e-doc", "name": []any{map[string]any{"family": "Smith", "given": []string{"Jo"}}}},
		"request":  map[string]any{"method": "PUT", "url": "Practitioner/e2e-doc"},
	}}
	for _, p := range []e2ePatient{patientA, patientB, patientC} {
		entries = append(entries, map[string]any{
			"resource": map[string]any{"resourceType": "Patient", "id": p.ID, "gender": "unknown", "birthDate": "1970-01-01",
				"name": []any{map[string]any{"family": p.Family, "given": []string{p.Given}}}},
			"request": map[string]any{"method": "PUT", "url": "Patient/" + p.ID},
		})
		for i := range p.Observations {
			id := fmt.Sprintf("%s-obs-%d", p.ID, i)
			entries = append(entries, map[string]any{
				"resource": map[string]any{"resourceType": "Observation", "id": id, "status": "final",
					"code":              map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}}},
					"subject":           map[string]any{"reference": "Patient/" + p.ID},
					"effectiveDateTime": fmt.Sprintf("2024-01-%02dT10:00:00Z", i+1),
					"valueQuantity":     map[string]any{"value": 60 + i, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}},
				"request": map[string]any{"method": "PUT", "url": "Observation/" + id},
			})
		}
	}
	body, _ := json.Marshal(map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": entries})
	resp := env.do(t, "POST", env.base, "application/fhir+json", string(body))
	if resp.StatusCode != 200 {
		t.Fatalf("loading the patients: got %d, want 200", resp.StatusCode)
	}
	return env
}

// do sends an admin request and returns the response, its body read and
// closed.
func (e *e2eEnv) do(t *testing.T, method, u, contentType, body string) *http.Response {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), method, u, strings.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Authorization", "Bearer "+e.admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		t.Logf("%s %s: %d %s", method, u, resp.StatusCode, b)
	}
	resp.Body = io.NopCloser(strings.NewReader(string(b)))
	return resp
}

// newLaunch creates an EHR launch context for a patient, as an EHR does.
func (e *e2eEnv) newLaunch(t *testing.T, patient string) string {
	t.Helper()
	resp := e.do(t, "POST", e.server+"/auth/launch", "application/json", fmt.Sprintf(`{"patient":%q}`, patient))
	var out struct{ Launch, ISS string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusCreated || out.Launch == "" {
		t.Fatalf("POST /auth/launch: got %d %q (%v), want 201 and a launch", resp.StatusCode, out.Launch, err)
	}
	if out.ISS != e.base {
		t.Errorf("POST /auth/launch: got iss %q, want %q", out.ISS, e.base)
	}
	return out.Launch
}

func clientCredentials(t *testing.T, tokenURL, id, secret, scope string) string {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "POST", tokenURL, strings.NewReader(url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != 200 || tok.AccessToken == "" {
		t.Fatalf("client_credentials token: got %d (%v), want 200 and a token", resp.StatusCode, err)
	}
	return tok.AccessToken
}

// browser is one headless Chromium with its own profile, and what it sent.
type browser struct {
	t   *testing.T
	ctx context.Context

	mu       sync.Mutex
	requests []*network.Request
}

func newBrowser(t *testing.T, chromium string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1000, 900),
	)
	// The deadline bounds the whole browser, not one step. (Not under
	// t.Context(), which ends before the cleanups that take the screenshot.)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	ctx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancelCtx := chromedp.NewContext(ctx, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancelCtx)
	b := &browser{t: t, ctx: ctx}
	err := chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			b.mu.Lock()
			b.requests = append(b.requests, ev.Request)
			b.mu.Unlock()
		case *runtime.EventExceptionThrown:
			t.Logf("page exception: %v", &chromedp.ExceptionError{ExceptionDetails: ev.ExceptionDetails})
		}
	})
	if err != nil {
		e2eMissing(t, "start %s: %v", chromium, err)
	}
	// On failure, keep a picture of where the browser was.
	t.Cleanup(func() {
		if !t.Failed() || ctx.Err() != nil {
			return
		}
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Logf("no screenshot: %v", err)
			return
		}
		path := filepath.Join(t.ArtifactDir(), "screenshot.png")
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Logf("no screenshot: %v", err)
			return
		}
		t.Logf("the browser was at %s; screenshot: %s (kept with go test -artifacts)", loc, path)
	})
	return b
}

// do runs browser steps; a failure ends the test.
func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		loc, _ := chromedp.Run(b.ctx, chromedp.Location())
		b.t.Fatalf("browser at %s: %v", loc, err)
	}
}

// get runs an action that returns a value; a failure ends the test.
func get[T any](b *browser, a chromedp.Action[T]) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, a)
	if err != nil {
		loc, _ := chromedp.Run(b.ctx, chromedp.Location())
		b.t.Fatalf("browser at %s: %v", loc, err)
	}
	return v
}

// sent returns the requests sent so far whose URL path is path.
func (b *browser) sent(path string) []*network.Request {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []*network.Request
	for _, r := range b.requests {
		if u, err := url.Parse(r.URL); err == nil && u.Path == path {
			out = append(out, r)
		}
	}
	return out
}

// waitAuthorizeRequest waits for the login page and returns the
// authorization request fhirclient sent the browser to.
func (b *browser) waitAuthorizeRequest() *url.URL {
	b.t.Helper()
	b.do(chromedp.WaitVisible(chromedp.CSS(`#username`)))
	reqs := b.sent("/auth/authorize")
	if len(reqs) == 0 {
		b.t.Fatal("the login page came without a request to /auth/authorize")
	}
	u, _ := url.Parse(reqs[0].URL)
	return u
}

// checkAuthorize checks the authorization request fhirclient made: PKCE
// with S256, this app, this server as the audience.
func checkAuthorize(t *testing.T, authz *url.URL, base string) {
	t.Helper()
	q := authz.Query()
	if got := q.Get("aud"); got != base {
		t.Errorf("authorize aud: got %q, want %q", got, base)
	}
	if got := q.Get("code_challenge_method"); got != "S256" {
		t.Errorf("authorize code_challenge_method: got %q, want S256", got)
	}
	if got := q.Get("code_challenge"); len(got) != 43 {
		t.Errorf("authorize code_challenge: got %q, want 43 characters of base64url (SHA-256)", got)
	}
	if got := q.Get("client_id"); got != e2eClientID {
		t.Errorf("authorize client_id: got %q, want %q", got, e2eClientID)
	}
}

// login fills and sends the login form.
func (b *browser) login() {
	b.t.Helper()
	b.do(
		chromedp.SendKeys(chromedp.CSS(`#username`), e2eUser),
		chromedp.SendKeys(chromedp.CSS(`#password`), e2ePassword),
		chromedp.Click(chromedp.CSS(`#login`)),
	)
}

// consent unticks one scope (none when untick is empty) and allows.
func (b *browser) consent(untick string) {
	b.t.Helper()
	b.do(chromedp.WaitVisible(chromedp.CSS(`#allow`)))
	if path := get(b, chromedp.Evaluate[string](`location.pathname`)); path != "/auth/consent" {
		b.t.Fatalf("after login: got page %s, want /auth/consent", path)
	}
	if untick != "" {
		box := fmt.Sprintf(`#consent-form input[name=scope][value=%q]`, untick)
		b.do(chromedp.Click(chromedp.CSS(box)))
		if get(b, chromedp.Evaluate[bool](fmt.Sprintf(`document.querySelector(%q).checked`, box))) {
			b.t.Fatalf("consent: %s still ticked after the click", untick)
		}
	}
	b.do(chromedp.Click(chromedp.CSS(`#allow`)))
}

// appPage is what the app wrote into index.html.
type appPage struct {
	Status   string `json:"status"`
	Name     string `json:"name"`
	ID       string `json:"id"`
	Count    string `json:"count"`
	Subjects string `json:"subjects"`
	Error    string `json:"error"`
	Text     string `json:"text"`
}

// appResult waits for the app to finish and reads its page.
func (b *browser) appResult() appPage {
	b.t.Helper()
	b.do(chromedp.WaitReady(chromedp.CSS(`#obs-count`)))
	get(b, chromedp.Poll[bool](`document.getElementById("status").textContent !== "loading"`, chromedp.WithPollingTimeout(30*time.Second)))
	return get(b, chromedp.Evaluate[appPage](`(() => {
		const text = id => document.getElementById(id).textContent;
		return {status: text("status"), name: text("patient-name"), id: text("patient-id"), count: text("obs-count"),
			subjects: text("obs-subjects"), error: text("error"), text: document.body.innerText};
	})()`))
}

// checkPage checks that the app shows p and its Observations, and nothing
// of the other patients.
func (b *browser) checkPage(page appPage, p e2ePatient) {
	b.t.Helper()
	if page.Status != "done" {
		b.t.Fatalf("app: got status %q, error %q; want done", page.Status, page.Error)
	}
	if page.Name != p.name() {
		b.t.Errorf("#patient-name: got %q, want %q", page.Name, p.name())
	}
	if page.ID != p.ID {
		b.t.Errorf("#patient-id: got %q, want %q", page.ID, p.ID)
	}
	if want := fmt.Sprint(p.Observations); page.Count != want {
		b.t.Errorf("#obs-count: got %s, want %s", page.Count, want)
	}
	if want := "Patient/" + p.ID; page.Subjects != want {
		b.t.Errorf("#obs-subjects: got %q, want %q", page.Subjects, want)
	}
	for _, other := range []e2ePatient{patientA, patientB, patientC} {
		if other.ID != p.ID && (strings.Contains(page.Text, other.ID) || strings.Contains(page.Text, other.Family)) {
			b.t.Errorf("the app's page shows %s's data:\n%s", other.ID, page.Text)
		}
	}
}

// tokenInfo is what the test reads of fhirclient's token response.
type tokenInfo struct {
	Patient      string `json:"patient"`
	Scope        string `json:"scope"`
	RefreshToken bool   `json:"refresh_token"`
	IDToken      bool   `json:"id_token"`
}

// tokenResponse reads the token response from fhirclient's state in
// sessionStorage (SMART_KEY names the state's key).
func (b *browser) tokenResponse() tokenInfo {
	b.t.Helper()
	return get(b, chromedp.Evaluate[tokenInfo](`(() => {
		const state = JSON.parse(sessionStorage.getItem(JSON.parse(sessionStorage.getItem("SMART_KEY"))));
		const tr = state.tokenResponse || {};
		return {patient: tr.patient || "", scope: tr.scope || "", refresh_token: !!tr.refresh_token, id_token: !!tr.id_token};
	})()`))
}

// tokenVerifierSent reports whether the code was redeemed with a PKCE
// code_verifier.
func (b *browser) tokenVerifierSent() bool {
	for _, r := range b.sent("/auth/token") {
		var body []byte
		for _, e := range r.PostDataEntries {
			body = append(body, e.Bytes...)
		}
		if v, err := url.ParseQuery(string(body)); err == nil && v.Get("grant_type") == "authorization_code" {
			return len(v.Get("code_verifier")) >= 43
		}
	}
	return false
}

// checkHidden has the app, with its token, ask for another patient and
// their Observations: the read must be 404 and the search empty.
func (b *browser) checkHidden(other e2ePatient) {
	b.t.Helper()
	type probe struct {
		Read   string `json:"read"`
		Search int    `json:"search"`
		Err    string `json:"err"`
	}
	out := get(b, chromedp.Evaluate[probe](fmt.Sprintf(`(async () => {
		const c = window.smartClient, out = {read: "", search: -1, err: ""};
		try { await c.request("Patient/%[1]s"); out.read = "200"; } catch (e) { out.read = String(e.status || e); }
		try { out.search = (await c.request("Observation?patient=%[1]s", {pageLimit: 0, flat: true})).length; } catch (e) { out.err = String(e); }
		return out;
	})()`, other.ID), chromedp.EvalAwaitPromise))
	if out.Read != "404" {
		b.t.Errorf("the app reading Patient/%s: got %s, want 404", other.ID, out.Read)
	}
	if out.Err != "" || out.Search != 0 {
		b.t.Errorf("the app searching Observation?patient=%s: got %d (%s), want 0", other.ID, out.Search, out.Err)
	}
}
