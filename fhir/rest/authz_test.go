package rest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/fhirhub/fhirhub/fhir/rest"
	"github.com/fhirhub/fhirhub/smart"
)

// testVerifier maps opaque test tokens to what they grant (the real JWT
// verification lives in smart and is tested there).
type testVerifier map[string]*smart.Access

func (v testVerifier) Verify(_ context.Context, token string) (*smart.Access, error) {
	if token == "expired" {
		return nil, errors.New("the token expired")
	}
	a, ok := v[token]
	if !ok {
		return nil, errors.New("unknown token")
	}
	return a, nil
}

func access(scopes, patient string) *smart.Access {
	g, bad := smart.ParseGrant(scopes)
	if len(bad) > 0 {
		panic(fmt.Sprintf("bad test scopes %v", bad))
	}
	return &smart.Access{Grant: g, Patient: patient, ClientID: "test"}
}

const labCategory = "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"

// The tokens of the scope matrix. Token strings end in "-secret" so the
// log check can look for them.
var testTokens = testVerifier{
	"admin-secret":     access("system/*.cruds", ""),
	"pa-v1-secret":     access("launch/patient patient/*.read", "pa"),
	"pa-obs-secret":    access("patient/Observation.rs", "pa"),
	"pa-lab-secret":    access("patient/Observation.rs?category="+url.QueryEscape(labCategory), "pa"),
	"pa-labpt-secret":  access("patient/Patient.rs patient/Observation.rs?category="+url.QueryEscape(labCategory), "pa"),
	"pa-write-secret":  access("patient/Observation.cruds patient/Patient.rs patient/Encounter.rs", "pa"),
	"pa-u-secret":      access("patient/Observation.ru", "pa"),
	"pa-cond-secret":   access("patient/Condition.rs", "pa"),
	"nolaunch-secret":  access("patient/*.rs", ""),
	"user-all-secret":  access("user/*.cruds", ""),
	"user-ro-secret":   access("user/*.rs", ""),
	"system-rs-secret": access("system/*.rs", ""),
}

// authServer is a server with the test Verifier, seeded with two
// patients' records: pa's laboratory and vital-signs Observations (the
// vital-signs one has pb's Observation as a member), an Encounter, a
// Condition; pb's laboratory Observation and Encounter; a Practitioner who
// performed both laboratory Observations; pa's Organization; and
// Observation/moved, pa's in version 1 and pb's in version 2.
func authServer(t *testing.T) (*testServer, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	s := newTestServer(t, func(api *rest.Server) {
		api.Verifier = testTokens
		api.AuthEndpoints = map[string]string{"authorize": "https://auth.example/authorize", "token": "https://auth.example/token",
			"introspect": "https://auth.example/introspect", "revoke": "https://auth.example/revoke"}
		api.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	put := func(path, body string) {
		t.Helper()
		r := s.as("admin-secret", "PUT", path, body)
		if r.Status != 200 && r.Status != 201 {
			t.Fatalf("PUT %s: %d %s", path, r.Status, r.Body)
		}
	}
	obs := func(id, patient, category, extra string) {
		t.Helper()
		put("/Observation/"+id, fmt.Sprintf(`{"resourceType":"Observation","id":%q,"status":"final",`+
			`"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":%q}]}],`+
			`"code":{"text":"x"},"subject":{"reference":"Patient/%s"}%s}`, id, category, patient, extra))
	}
	put("/Organization/org1", `{"resourceType":"Organization","id":"org1","name":"Clinic"}`)
	put("/Practitioner/dr1", `{"resourceType":"Practitioner","id":"dr1","name":[{"family":"House"}]}`)
	put("/Patient/pa", `{"resourceType":"Patient","id":"pa","name":[{"family":"Alpha"}],"managingOrganization":{"reference":"Organization/org1"}}`)
	put("/Patient/pb", `{"resourceType":"Patient","id":"pb","name":[{"family":"Beta"}]}`)
	obs("oa-lab", "pa", "laboratory", `,"performer":[{"reference":"Practitioner/dr1"}]`)
	obs("oa-vital", "pa", "vital-signs", `,"hasMember":[{"reference":"Observation/ob-lab"}]`)
	obs("ob-lab", "pb", "laboratory", `,"performer":[{"reference":"Practitioner/dr1"}]`)
	obs("moved", "pa", "laboratory", "")
	obs("moved", "pb", "laboratory", "")
	put("/Encounter/ea", `{"resourceType":"Encounter","id":"ea","status":"finished","class":{"code":"AMB"},"subject":{"reference":"Patient/pa"}}`)
	put("/Encounter/eb", `{"resourceType":"Encounter","id":"eb","status":"finished","class":{"code":"AMB"},"subject":{"reference":"Patient/pb"}}`)
	put("/Condition/ca", `{"resourceType":"Condition","id":"ca","subject":{"reference":"Patient/pa"}}`)
	return s, &logs
}

// as sends a request with a bearer token ("" for none).
func (s *testServer) as(token, method, path, body string, headers ...string) response {
	s.t.Helper()
	if token != "" {
		headers = append(headers, "Authorization: Bearer "+token)
	}
	return s.do(method, path, body, headers...)
}

// searchset returns a searchset's matches and included resources (each
// Type/id, sorted) and its total (-1 when absent).
func searchset(t *testing.T, r response) (match, include []string, total int) {
	t.Helper()
	v := r.JSON(t)
	total = -1
	if n, ok := v["total"].(float64); ok {
		total = int(n)
	}
	es, _ := v["entry"].([]any)
	for _, e := range es {
		e := e.(map[string]any)
		res, ok := e["resource"].(map[string]any)
		mode := e["search"].(map[string]any)["mode"]
		if !ok || mode == "outcome" {
			continue
		}
		ref := res["resourceType"].(string) + "/" + res["id"].(string)
		if mode == "include" {
			include = append(include, ref)
		} else {
			match = append(match, ref)
		}
	}
	sort.Strings(match)
	sort.Strings(include)
	return match, include, total
}

func TestScopesAuthentication(t *testing.T) {
	s, logs := authServer(t)
	for _, tc := range []struct {
		name, header string
		wantError    bool // error="invalid_token" in WWW-Authenticate
	}{
		{"Missing", "", false},
		{"NotBearer", "Basic dXNlcjpwYXNz", true},
		{"Empty", "Bearer ", true},
		{"Unknown", "Bearer nobody-secret", true},
		{"Expired", "Bearer expired", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h []string
			if tc.header != "" {
				h = append(h, "Authorization: "+tc.header)
			}
			r := s.do("GET", "/Observation/oa-lab", "", h...)
			v := r.JSON(t)
			mustStatus(t, r, http.StatusUnauthorized)
			if code := v["issue"].([]any)[0].(map[string]any)["code"]; code != "login" {
				t.Errorf("issue code %v, want login", code)
			}
			www := r.Header.Get("WWW-Authenticate")
			if !strings.HasPrefix(www, `Bearer realm="fhir"`) {
				t.Errorf("WWW-Authenticate %q, want a Bearer challenge", www)
			}
			if got := strings.Contains(www, `error="invalid_token"`); got != tc.wantError {
				t.Errorf("WWW-Authenticate %q: error attribute %v, want %v", www, got, tc.wantError)
			}
			if tc.name == "Expired" && !strings.Contains(www, `error_description="the token expired"`) {
				t.Errorf("WWW-Authenticate %q lacks the Verifier's description", www)
			}
		})
	}
	t.Run("MetadataOpen", func(t *testing.T) {
		r := s.do("GET", "/metadata", "")
		mustStatus(t, r, http.StatusOK)
		sec := r.JSON(t)["rest"].([]any)[0].(map[string]any)["security"].(map[string]any)
		body := string(r.Body)
		for _, want := range []string{"SMART-on-FHIR", "http://terminology.hl7.org/CodeSystem/restful-security-service",
			"http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris", "https://auth.example/authorize",
			"https://auth.example/token", `"introspect"`, `"revoke"`} {
			if !strings.Contains(body, want) {
				t.Errorf("CapabilityStatement lacks %s; security: %v", want, sec)
			}
		}
	})
	t.Run("EverythingElseClosed", func(t *testing.T) {
		for _, p := range []string{"", "/Patient", "/_history", "/Nothing/here", "/$reindex-status/x"} {
			if r := s.do("GET", p, ""); r.Status != http.StatusUnauthorized {
				t.Errorf("GET %s without a token: %d, want 401", p, r.Status)
			}
		}
	})
	t.Run("NoTokensInLogs", func(t *testing.T) {
		s.as("pa-v1-secret", "GET", "/Observation?code:in=http://nowhere/vs", "")
		if strings.Contains(logs.String(), "-secret") {
			t.Errorf("a token reached the logs:\n%s", logs.String())
		}
	})
}

// TestScopes is the scope-enforcement matrix: interactions × kinds of
// scopes, through the HTTP API.
func TestScopes(t *testing.T) {
	s, _ := authServer(t)
	type want struct {
		status  int
		match   string // the matches of a searchset, sorted; "-" to skip
		include string // its included resources; "-" to skip
		total   int    // -2 to skip
	}
	st := func(status int) want { return want{status: status, match: "-", include: "-", total: -2} }
	set := func(match, include string, total int) want { return want{200, match, include, total} }
	for _, tc := range []struct {
		name, path string
		cases      map[string]want // token → outcome
	}{
		{"Read/Own", "/Observation/oa-lab", map[string]want{
			"pa-v1-secret": st(200), "pa-obs-secret": st(200), "pa-lab-secret": st(200), "user-all-secret": st(200),
			"user-ro-secret": st(200), "system-rs-secret": st(200), "pa-cond-secret": st(403), "nolaunch-secret": st(403)}},
		{"Read/OtherCategory", "/Observation/oa-vital", map[string]want{
			"pa-v1-secret": st(200), "pa-obs-secret": st(200), "pa-lab-secret": st(404), "user-ro-secret": st(200)}},
		{"Read/OtherPatient", "/Observation/ob-lab", map[string]want{
			"pa-v1-secret": st(404), "pa-obs-secret": st(404), "pa-lab-secret": st(404), "user-ro-secret": st(200),
			"system-rs-secret": st(200), "pa-cond-secret": st(403)}},
		{"Read/Missing", "/Observation/nothing", map[string]want{"pa-v1-secret": st(404), "pa-cond-secret": st(403)}},
		{"Read/Patient", "/Patient/pa", map[string]want{"pa-v1-secret": st(200), "pa-obs-secret": st(403), "pa-labpt-secret": st(200)}},
		{"Read/OtherPatientResource", "/Patient/pb", map[string]want{"pa-v1-secret": st(404), "user-ro-secret": st(200)}},
		{"Read/SharedPractitioner", "/Practitioner/dr1", map[string]want{"pa-v1-secret": st(200), "pa-obs-secret": st(403)}},
		{"Read/SharedOrganization", "/Organization/org1", map[string]want{"pa-v1-secret": st(200)}},
		{"VRead/OwnVersion", "/Observation/moved/_history/1", map[string]want{"pa-v1-secret": st(200), "user-ro-secret": st(200)}},
		{"VRead/OtherVersion", "/Observation/moved/_history/2", map[string]want{"pa-v1-secret": st(404), "user-ro-secret": st(200)}},
		{"Read/MovedAway", "/Observation/moved", map[string]want{"pa-v1-secret": st(404), "user-ro-secret": st(200)}},
		{"Meta", "/Observation/ob-lab/$meta", map[string]want{"pa-v1-secret": st(404), "user-ro-secret": st(200)}},

		{"Search/Type", "/Observation", map[string]want{
			"pa-v1-secret":     set("[Observation/oa-lab Observation/oa-vital]", "[]", 2),
			"pa-obs-secret":    set("[Observation/oa-lab Observation/oa-vital]", "[]", 2),
			"pa-lab-secret":    set("[Observation/oa-lab]", "[]", 1),
			"user-ro-secret":   set("[Observation/moved Observation/oa-lab Observation/oa-vital Observation/ob-lab]", "[]", 4),
			"system-rs-secret": set("[Observation/moved Observation/oa-lab Observation/oa-vital Observation/ob-lab]", "[]", 4),
			"pa-cond-secret":   st(403), "nolaunch-secret": st(403)}},
		{"Search/Count", "/Observation?_summary=count", map[string]want{
			"pa-v1-secret": set("[]", "[]", 2), "pa-lab-secret": set("[]", "[]", 1), "user-ro-secret": set("[]", "[]", 4)}},
		{"Search/TotalAccurate", "/Observation?_total=accurate&_count=1&category=laboratory", map[string]want{
			"pa-v1-secret": {200, "-", "-", 1}, "pa-lab-secret": {200, "-", "-", 1}, "user-ro-secret": {200, "-", "-", 3}}},
		{"Search/IncludeSubject", "/Observation?_include=Observation:subject", map[string]want{
			"pa-v1-secret":    set("[Observation/oa-lab Observation/oa-vital]", "[Patient/pa]", 2),
			"pa-obs-secret":   set("[Observation/oa-lab Observation/oa-vital]", "[]", 2), // no Patient scope
			"pa-labpt-secret": set("[Observation/oa-lab]", "[Patient/pa]", 1)}},
		{"Search/IncludeOtherPatient", "/Observation?_include=Observation:has-member", map[string]want{
			"pa-v1-secret":   set("[Observation/oa-lab Observation/oa-vital]", "[]", 2), // not pb's ob-lab
			"user-ro-secret": set("[Observation/moved Observation/oa-lab Observation/oa-vital Observation/ob-lab]", "[]", 4)}},
		{"Search/IncludeShared", "/Observation?_include=Observation:performer", map[string]want{
			"pa-v1-secret": set("[Observation/oa-lab Observation/oa-vital]", "[Practitioner/dr1]", 2)}},
		{"Search/RevIncludePatient", "/Patient?_revinclude=Observation:subject", map[string]want{
			"pa-v1-secret":    set("[Patient/pa]", "[Observation/oa-lab Observation/oa-vital]", 1),
			"pa-labpt-secret": set("[Patient/pa]", "[Observation/oa-lab]", 1),
			"pa-obs-secret":   st(403)}},
		{"Search/RevIncludeShared", "/Practitioner?_revinclude=Observation:performer", map[string]want{
			"pa-v1-secret":   set("[Practitioner/dr1]", "[Observation/oa-lab]", 1), // not pb's ob-lab
			"user-ro-secret": set("[Practitioner/dr1]", "[Observation/oa-lab Observation/ob-lab]", 1)}},
		{"Search/HasProbesHidden", "/Patient?_has:Observation:subject:category=vital-signs", map[string]want{
			"pa-labpt-secret": set("[]", "[]", 0), // pa's vital signs are outside its scopes
			"pa-v1-secret":    set("[Patient/pa]", "[]", 1)}},
		{"Search/ChainProbesHidden", "/Observation?has-member:Observation.subject=Patient/pb", map[string]want{
			"pa-v1-secret":   set("[]", "[]", 0), // the member is pb's
			"user-ro-secret": set("[Observation/oa-vital]", "[]", 1)}},
		{"Search/Compartment", "/Patient/pa/Observation", map[string]want{
			"pa-v1-secret":  set("[Observation/oa-lab Observation/oa-vital]", "[]", 2),
			"pa-lab-secret": set("[Observation/oa-lab]", "[]", 1), "pa-cond-secret": st(403)}},
		{"Search/OtherCompartment", "/Patient/pb/Observation", map[string]want{
			"pa-v1-secret":   set("[]", "[]", 0),
			"user-ro-secret": set("[Observation/moved Observation/ob-lab]", "[]", 2)}},
		{"Search/SystemTyped", "?_type=Observation,Encounter", map[string]want{
			"pa-v1-secret":   set("[Encounter/ea Observation/oa-lab Observation/oa-vital]", "[]", 3),
			"pa-obs-secret":  st(403),
			"user-ro-secret": set("[Encounter/ea Encounter/eb Observation/moved Observation/oa-lab Observation/oa-vital Observation/ob-lab]", "[]", 6)}},
		{"Search/SystemAll", "?_count=100", map[string]want{
			"pa-v1-secret":  set("[Condition/ca Encounter/ea Observation/oa-lab Observation/oa-vital Organization/org1 Patient/pa Practitioner/dr1]", "[]", 7),
			"pa-obs-secret": set("[Observation/oa-lab Observation/oa-vital]", "[]", 2),
			"pa-lab-secret": set("[Observation/oa-lab]", "[]", 1)}},
		{"Search/SystemCount", "?_summary=count", map[string]want{
			"pa-v1-secret": set("[]", "[]", 7), "pa-lab-secret": set("[]", "[]", 1)}},

		{"History/Instance", "/Observation/oa-lab/_history", map[string]want{
			"pa-v1-secret": st(200), "pa-lab-secret": st(200), "pa-cond-secret": st(403)}},
		{"History/InstanceMovedAway", "/Observation/moved/_history", map[string]want{"pa-v1-secret": st(404), "user-ro-secret": st(200)}},
		{"History/InstanceOtherCategory", "/Observation/oa-vital/_history", map[string]want{"pa-lab-secret": st(404)}},
		{"History/Type", "/Observation/_history", map[string]want{"pa-cond-secret": st(403), "pa-v1-secret": st(200)}},
		{"History/System", "/_history", map[string]want{"pa-v1-secret": st(200), "pa-cond-secret": st(200)}},

		{"Everything/Own", "/Patient/pa/$everything", map[string]want{
			"pa-v1-secret":    set("[Condition/ca Encounter/ea Observation/oa-lab Observation/oa-vital Patient/pa]", "[Organization/org1 Practitioner/dr1]", -2),
			"pa-labpt-secret": set("[Observation/oa-lab Patient/pa]", "[]", -2),
			"pa-obs-secret":   st(403), "user-ro-secret": set("[Condition/ca Encounter/ea Observation/oa-lab Observation/oa-vital Patient/pa]", "[Organization/org1 Practitioner/dr1]", -2)}},
		{"Everything/OtherPatient", "/Patient/pb/$everything", map[string]want{
			"pa-v1-secret":   st(404),
			"user-ro-secret": set("[Encounter/eb Observation/moved Observation/ob-lab Patient/pb]", "[Practitioner/dr1]", -2)}},
		{"Everything/TypeLevel", "/Patient/$everything", map[string]want{
			"pa-v1-secret": set("[Condition/ca Encounter/ea Observation/oa-lab Observation/oa-vital Patient/pa]", "[Organization/org1 Practitioner/dr1]", -2)}},
		{"Everything/TypeNotGranted", "/Patient/pa/$everything?_type=Observation,Encounter", map[string]want{
			"pa-labpt-secret": st(403), "pa-v1-secret": set("[Encounter/ea Observation/oa-lab Observation/oa-vital]", "[]", -2)}},
		{"Reindex/Status", "/$reindex-status/none", map[string]want{
			"user-ro-secret": st(403), "pa-v1-secret": st(403), "admin-secret": st(404)}},
	} {
		for token, w := range tc.cases {
			t.Run(tc.name+"/"+strings.TrimSuffix(token, "-secret"), func(t *testing.T) {
				if strings.HasPrefix(tc.name, "Reindex") && w.status != 403 && engine == "mongo" {
					w = st(http.StatusNotImplemented) // the MongoDB engine has no $reindex
				}
				r := s.as(token, "GET", tc.path, "")
				if r.Status != w.status {
					t.Fatalf("got %d, want %d: %s", r.Status, w.status, r.Body)
				}
				if w.status == 403 {
					if !strings.Contains(string(r.Body), `"forbidden"`) {
						t.Errorf("403 without issue code forbidden: %s", r.Body)
					}
				}
				if w.match == "-" && w.include == "-" && w.total == -2 {
					return
				}
				match, include, total := searchset(t, r)
				if w.match != "-" && fmt.Sprint(match) != w.match {
					t.Errorf("matches %v, want %s", match, w.match)
				}
				if w.include != "-" && fmt.Sprint(include) != w.include {
					t.Errorf("included %v, want %s", include, w.include)
				}
				if w.total != -2 && total != w.total {
					t.Errorf("total %d, want %d", total, w.total)
				}
			})
		}
	}

	t.Run("Search/PostForm", func(t *testing.T) {
		r := s.as("pa-lab-secret", "POST", "/Observation/_search", "_total=accurate", "Content-Type: application/x-www-form-urlencoded")
		mustStatus(t, r, 200)
		if match, _, total := searchset(t, r); fmt.Sprint(match) != "[Observation/oa-lab]" || total != 1 {
			t.Errorf("got %v (total %d), want [Observation/oa-lab] (1)", match, total)
		}
	})

	t.Run("Search/Paging", func(t *testing.T) {
		var got []string
		path := "/Observation?_count=1&_total=accurate"
		for i := 0; path != "" && i < 10; i++ {
			r := s.as("pa-v1-secret", "GET", path, "")
			match, _, total := searchset(t, r)
			if total != 2 {
				t.Errorf("page %d: total %d, want 2", i, total)
			}
			got = append(got, match...)
			path = link(t, r, "next")
		}
		sort.Strings(got)
		if fmt.Sprint(got) != "[Observation/oa-lab Observation/oa-vital]" {
			t.Errorf("pages held %v", got)
		}
	})

	t.Run("History/Filtered", func(t *testing.T) {
		for _, tc := range []struct{ token, path, want string }{
			{"pa-v1-secret", "/Observation/_history", "[Observation/moved@1 Observation/oa-lab@1 Observation/oa-vital@1]"},
			{"pa-lab-secret", "/Observation/_history", "[Observation/moved@1 Observation/oa-lab@1]"},
			{"user-ro-secret", "/Observation/_history", "[Observation/moved@1 Observation/moved@2 Observation/oa-lab@1 Observation/oa-vital@1 Observation/ob-lab@1]"},
			{"pa-cond-secret", "/_history", "[Condition/ca@1]"},
			{"pa-v1-secret", "/_history", "[Condition/ca@1 Encounter/ea@1 Observation/moved@1 Observation/oa-lab@1 Observation/oa-vital@1 Organization/org1@1 Patient/pa@1 Practitioner/dr1@1]"},
			{"pa-lab-secret", "/Observation/oa-lab/_history", "[Observation/oa-lab@1]"},
		} {
			got := entryRefs(entries(t, s.as(tc.token, "GET", tc.path, "")))
			sort.Strings(got)
			if fmt.Sprint(got) != tc.want {
				t.Errorf("%s %s: %v, want %s", tc.token, tc.path, got, tc.want)
			}
		}
		// Paging goes on past versions left out: every page but the last
		// has a next link, and the pages hold every visible version.
		var got []string
		path := "/Observation/_history?_count=1"
		for i := 0; path != "" && i < 20; i++ {
			r := s.as("pa-v1-secret", "GET", path, "")
			got = append(got, entryRefs(entries(t, r))...)
			path = link(t, r, "next")
		}
		sort.Strings(got)
		if want := "[Observation/moved@1 Observation/oa-lab@1 Observation/oa-vital@1]"; fmt.Sprint(got) != want {
			t.Errorf("history pages held %v, want %s", got, want)
		}
	})
}

func TestScopesWrites(t *testing.T) {
	s, _ := authServer(t)
	obs := func(id, patient, category string) string {
		idPart := ""
		if id != "" {
			idPart = fmt.Sprintf(`"id":%q,`, id)
		}
		return fmt.Sprintf(`{"resourceType":"Observation",%s"status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":%q}]}],"code":{"text":"w"},"subject":{"reference":"Patient/%s"}}`, idPart, category, patient)
	}
	count := func() int {
		r := s.as("admin-secret", "GET", "/Observation?_summary=count", "")
		n, _ := r.JSON(t)["total"].(float64)
		return int(n)
	}
	for _, tc := range []struct {
		name, token, method, path, body string
		headers                         []string
		want                            int
	}{
		{"Create/Own", "pa-write-secret", "POST", "/Observation", obs("", "pa", "laboratory"), nil, 201},
		{"Create/OtherPatient", "pa-write-secret", "POST", "/Observation", obs("", "pb", "laboratory"), nil, 403},
		{"Create/ReadOnly", "pa-v1-secret", "POST", "/Observation", obs("", "pa", "laboratory"), nil, 403},
		{"Create/UserAll", "user-all-secret", "POST", "/Observation", obs("", "pb", "laboratory"), nil, 201},
		{"Create/UserReadOnly", "user-ro-secret", "POST", "/Observation", obs("", "pb", "laboratory"), nil, 403},
		{"Create/ConditionalMatchesHidden", "pa-write-secret", "POST", "/Observation", obs("", "pa", "laboratory"), []string{"If-None-Exist: _id=ob-lab"}, 403},
		{"Create/ConditionalMatchesOwn", "pa-write-secret", "POST", "/Observation", obs("", "pa", "laboratory"), []string{"If-None-Exist: _id=oa-lab"}, 200},
		{"Update/Own", "pa-write-secret", "PUT", "/Observation/oa-vital", obs("oa-vital", "pa", "vital-signs"), nil, 200},
		{"Update/MoveAway", "pa-write-secret", "PUT", "/Observation/oa-vital", obs("oa-vital", "pb", "vital-signs"), nil, 403},
		{"Update/OtherPatientStored", "pa-write-secret", "PUT", "/Observation/ob-lab", obs("ob-lab", "pa", "laboratory"), nil, 403},
		{"Update/ReadOnly", "user-ro-secret", "PUT", "/Observation/oa-vital", obs("oa-vital", "pa", "vital-signs"), nil, 403},
		{"Update/CreatesNeedsC", "pa-u-secret", "PUT", "/Observation/new-u", obs("new-u", "pa", "laboratory"), nil, 403},
		{"Update/UpdateOnlyExisting", "pa-u-secret", "PUT", "/Observation/oa-lab", obs("oa-lab", "pa", "laboratory"), nil, 200},
		{"Update/Creates", "pa-write-secret", "PUT", "/Observation/new-c", obs("new-c", "pa", "laboratory"), nil, 201},
		{"ConditionalUpdate/OtherPatient", "pa-write-secret", "PUT", "/Observation?_id=ob-lab", obs("", "pa", "laboratory"), nil, 403},
		{"ConditionalUpdate/Own", "pa-write-secret", "PUT", "/Observation?_id=oa-lab", obs("", "pa", "laboratory"), nil, 200},
		{"Patch/Own", "pa-write-secret", "PATCH", "/Observation/oa-vital", `[{"op":"replace","path":"/status","value":"amended"}]`, []string{"Content-Type: application/json-patch+json"}, 200},
		{"Patch/OtherPatient", "pa-write-secret", "PATCH", "/Observation/ob-lab", `[{"op":"replace","path":"/status","value":"amended"}]`, []string{"Content-Type: application/json-patch+json"}, 403},
		{"Patch/MoveAway", "pa-write-secret", "PATCH", "/Observation/oa-vital", `[{"op":"replace","path":"/subject/reference","value":"Patient/pb"}]`, []string{"Content-Type: application/json-patch+json"}, 403},
		{"Patch/ReadOnly", "pa-v1-secret", "PATCH", "/Observation/oa-vital", `[{"op":"replace","path":"/status","value":"amended"}]`, []string{"Content-Type: application/json-patch+json"}, 403},
		{"ConditionalPatch/OtherPatient", "pa-write-secret", "PATCH", "/Observation?_id=ob-lab", `[{"op":"replace","path":"/status","value":"amended"}]`, []string{"Content-Type: application/json-patch+json"}, 403},
		{"MetaAdd/OtherPatient", "pa-write-secret", "POST", "/Observation/ob-lab/$meta-add", `{"resourceType":"Parameters","parameter":[{"name":"meta","valueMeta":{"tag":[{"code":"x"}]}}]}`, nil, 403},
		{"MetaAdd/Own", "pa-write-secret", "POST", "/Observation/oa-lab/$meta-add", `{"resourceType":"Parameters","parameter":[{"name":"meta","valueMeta":{"tag":[{"code":"x"}]}}]}`, nil, 200},
		{"MetaAdd/ReadOnly", "pa-v1-secret", "POST", "/Observation/oa-lab/$meta-add", `{"resourceType":"Parameters","parameter":[{"name":"meta","valueMeta":{"tag":[{"code":"y"}]}}]}`, nil, 403},
		{"Delete/OtherPatient", "pa-write-secret", "DELETE", "/Observation/ob-lab", "", nil, 403},
		{"Delete/ReadOnly", "user-ro-secret", "DELETE", "/Observation/new-c", "", nil, 403},
		{"Delete/Own", "pa-write-secret", "DELETE", "/Observation/new-c", "", nil, 200},
		{"ConditionalDelete/OtherPatient", "pa-write-secret", "DELETE", "/Observation?_id=ob-lab", "", nil, 403},
		{"Delete/EncounterNotGranted", "pa-write-secret", "DELETE", "/Encounter/ea", "", nil, 403},
		{"Reindex/ReadOnly", "user-ro-secret", "POST", "/$reindex", "", nil, 403},
		{"Reindex/PatientToken", "pa-write-secret", "POST", "/Observation/$reindex", "", nil, 403},
		{"Reindex/UserAll", "user-all-secret", "POST", "/Observation/$reindex", "", nil, 202},
		{"Reindex/Admin", "admin-secret", "POST", "/$reindex", "", nil, 202},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if strings.HasPrefix(tc.name, "Reindex") && tc.want != 403 && engine == "mongo" {
				tc.want = http.StatusNotImplemented // the MongoDB engine has no $reindex
			}
			before := count()
			r := s.as(tc.token, tc.method, tc.path, tc.body, tc.headers...)
			if r.Status != tc.want {
				t.Fatalf("got %d, want %d: %s", r.Status, tc.want, r.Body)
			}
			if tc.want == 403 {
				outcome(t, r, 403)
				if after := count(); after != before {
					t.Errorf("a refused write changed the Observations: %d before, %d after", before, after)
				}
			}
		})
	}
	// The refused writes stored nothing.
	r := s.as("admin-secret", "GET", "/Observation/ob-lab", "")
	if v := r.JSON(t); v["status"] != "final" || v["subject"].(map[string]any)["reference"] != "Patient/pb" {
		t.Errorf("ob-lab changed: %s", r.Body)
	}
	if r := s.as("admin-secret", "GET", "/Observation/new-u", ""); r.Status != 404 {
		t.Errorf("new-u: %d, want 404 (the create was refused)", r.Status)
	}
}

func TestScopesBundles(t *testing.T) {
	s, _ := authServer(t)
	t.Run("Batch", func(t *testing.T) {
		r := s.as("pa-write-secret", "POST", "", `{"resourceType":"Bundle","type":"batch","entry":[
			{"request":{"method":"GET","url":"Observation/oa-lab"}},
			{"request":{"method":"GET","url":"Observation/ob-lab"}},
			{"request":{"method":"GET","url":"Condition/ca"}},
			{"request":{"method":"GET","url":"Observation?_summary=count"}},
			{"resource":{"resourceType":"Observation","status":"final","code":{"text":"b"},"subject":{"reference":"Patient/pb"}},"request":{"method":"POST","url":"Observation"}},
			{"resource":{"resourceType":"Observation","status":"final","code":{"text":"b"},"subject":{"reference":"Patient/pa"}},"request":{"method":"POST","url":"Observation"}}]}`)
		b := decodeBundle(t, r)
		var got []string
		for _, e := range b.Entry {
			got = append(got, e.Response.Status[:3])
		}
		if want := "[200 404 403 200 403 201]"; fmt.Sprint(got) != want {
			t.Errorf("entry statuses %v, want %s", got, want)
		}
		// POSTs run before GETs: pa's two Observations and the new one.
		if !strings.Contains(string(b.Entry[3].Resource), `"total":3`) {
			t.Errorf("the count entry saw other patients' data: %s", b.Entry[3].Resource)
		}
	})
	t.Run("Transaction/Refused", func(t *testing.T) {
		for _, tc := range []struct{ name, entries, expr string }{
			{"OtherPatient", `{"fullUrl":"urn:uuid:1","resource":{"resourceType":"Observation","status":"final","code":{"text":"t"},"subject":{"reference":"Patient/pa"}},"request":{"method":"POST","url":"Observation"}},
				{"fullUrl":"urn:uuid:2","resource":{"resourceType":"Observation","status":"final","code":{"text":"t"},"subject":{"reference":"Patient/pb"}},"request":{"method":"POST","url":"Observation"}}`, "Bundle.entry[1]"},
			{"TypeNotGranted", `{"fullUrl":"urn:uuid:1","resource":{"resourceType":"Observation","status":"final","code":{"text":"t"},"subject":{"reference":"Patient/pa"}},"request":{"method":"POST","url":"Observation"}},
				{"request":{"method":"GET","url":"Condition?subject=Patient/pa"}}`, "Bundle.entry[1]"},
			{"DeleteOther", `{"fullUrl":"urn:uuid:1","resource":{"resourceType":"Observation","status":"final","code":{"text":"t"},"subject":{"reference":"Patient/pa"}},"request":{"method":"POST","url":"Observation"}},
				{"request":{"method":"DELETE","url":"Observation/ob-lab"}}`, "Bundle.entry[1]"},
			{"UpdateOther", `{"resource":{"resourceType":"Observation","id":"ob-lab","status":"final","code":{"text":"t"},"subject":{"reference":"Patient/pa"}},"request":{"method":"PUT","url":"Observation/ob-lab"}},
				{"fullUrl":"urn:uuid:1","resource":{"resourceType":"Observation","status":"final","code":{"text":"t"},"subject":{"reference":"Patient/pa"}},"request":{"method":"POST","url":"Observation"}}`, "Bundle.entry[0]"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before := s.totalAs(t, "admin-secret", "Observation")
				r := s.as("pa-write-secret", "POST", "", `{"resourceType":"Bundle","type":"transaction","entry":[`+tc.entries+`]}`)
				diag, expr := outcome(t, r, 403)
				if expr != tc.expr && !strings.HasPrefix(diag, tc.expr) {
					t.Errorf("the outcome names %q (%s), want %s", expr, diag, tc.expr)
				}
				if after := s.totalAs(t, "admin-secret", "Observation"); after != before {
					t.Errorf("a refused transaction wrote: %d Observations before, %d after", before, after)
				}
			})
		}
	})
	t.Run("Transaction/Allowed", func(t *testing.T) {
		r := s.as("pa-write-secret", "POST", "", `{"resourceType":"Bundle","type":"transaction","entry":[
			{"fullUrl":"urn:uuid:1","resource":{"resourceType":"Observation","status":"final","code":{"text":"t"},"subject":{"reference":"Patient/pa"}},"request":{"method":"POST","url":"Observation"}},
			{"request":{"method":"GET","url":"Observation?_summary=count"}}]}`)
		b := decodeBundle(t, r)
		if b.Entry[0].Response.Status[:3] != "201" || !strings.Contains(string(b.Entry[1].Resource), `"total":4`) {
			t.Errorf("got %s and %s, want 201 and a count of pa's 4 Observations (2 seeded, 1 from the batch, 1 here)", b.Entry[0].Response.Status, b.Entry[1].Resource)
		}
	})
}

// totalAs counts the current resources of typ with a token's eyes.
func (s *testServer) totalAs(t *testing.T, token, typ string) int {
	t.Helper()
	r := s.as(token, "GET", "/"+typ+"?_summary=count", "")
	mustStatus(t, r, http.StatusOK)
	n, _ := r.JSON(t)["total"].(float64)
	return int(n)
}
