package rest_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// bundleOut is a batch-response or transaction-response, decoded.
type bundleOut struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Entry        []struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Response struct {
			Status       string          `json:"status"`
			Location     string          `json:"location"`
			Etag         string          `json:"etag"`
			LastModified string          `json:"lastModified"`
			Outcome      json.RawMessage `json:"outcome"`
		} `json:"response"`
	} `json:"entry"`
}

func decodeBundle(t *testing.T, r response) bundleOut {
	t.Helper()
	mustStatus(t, r, http.StatusOK)
	var b bundleOut
	if err := json.Unmarshal(r.Body, &b); err != nil {
		t.Fatalf("response is not a Bundle: %v: %s", err, r.Body)
	}
	return b
}

// total counts the current resources of typ through search.
func (s *testServer) total(t *testing.T, typ string) int {
	t.Helper()
	r := s.do("GET", "/"+typ+"?_summary=count", "")
	mustStatus(t, r, http.StatusOK)
	n, _ := r.JSON(t)["total"].(float64)
	return int(n)
}

func TestTransactionResolvesReferences(t *testing.T) {
	s := newTestServer(t)
	mustStatus(t, s.do("PUT", "/Organization/org1", `{"resourceType":"Organization","id":"org1","identifier":[{"system":"urn:npi","value":"123"}]}`), http.StatusCreated)
	mustStatus(t, s.do("PUT", "/Patient/known", `{"resourceType":"Patient","id":"known","identifier":[{"system":"urn:mrn","value":"k1"}]}`), http.StatusCreated)

	tx := `{"resourceType":"Bundle","type":"transaction","entry":[
	{"fullUrl":"urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a","resource":{"resourceType":"Observation","status":"final",
		"code":{"text":"x"},"subject":{"reference":"urn:uuid:88f151c0-a954-468a-88fd-5ff2e6efc3be"},
		"performer":[{"reference":"Organization?identifier=urn:npi|123"}],
		"extension":[{"url":"http://example.org/about","valueReference":{"reference":"urn:uuid:88f151c0-a954-468a-88fd-5ff2e6efc3be"}}],
		"valueQuantity":{"value":1.50,"unit":"mg"}},
	 "request":{"method":"POST","url":"Observation"}},
	{"fullUrl":"urn:uuid:88f151c0-a954-468a-88fd-5ff2e6efc3be","resource":{"resourceType":"Patient","id":"ignored-on-create",
		"contained":[{"resourceType":"RelatedPerson","id":"rp","patient":{"reference":"urn:uuid:88f151c0-a954-468a-88fd-5ff2e6efc3be"}}],
		"contact":[{"name":{"text":"see #rp"}}],"birthDate":"1970-01-01","_birthDate":{"extension":[{"url":"http://example.org/x","valueString":"kept"}]}},
	 "request":{"method":"POST","url":"Patient"}},
	{"fullUrl":"urn:uuid:0d6b4c1e-1bd9-4c55-92a7-6bcb0ab6a111","resource":{"resourceType":"Patient","identifier":[{"system":"urn:mrn","value":"k1"}]},
	 "request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=urn:mrn|k1"}},
	{"fullUrl":"urn:uuid:1b0c7c1e-0000-4c55-92a7-6bcb0ab6a222","resource":{"resourceType":"Encounter","status":"finished","class":{"code":"AMB"},
		"subject":{"reference":"urn:uuid:0d6b4c1e-1bd9-4c55-92a7-6bcb0ab6a111"}},
	 "request":{"method":"POST","url":"Encounter"}}
	]}`
	b := decodeBundle(t, s.do("POST", "", tx))
	if b.Type != "transaction-response" || len(b.Entry) != 4 {
		t.Fatalf("got a %s with %d entries, want a transaction-response with 4", b.Type, len(b.Entry))
	}
	for i, want := range []string{"201 Created", "201 Created", "200 OK", "201 Created"} {
		e := b.Entry[i]
		if e.Response.Status != want || e.Response.Location == "" || e.Response.Etag != `W/"1"` || e.Response.LastModified == "" {
			t.Errorf("entry %d: response %+v, want %s with location, etag and lastModified", i, e.Response, want)
		}
	}
	obsRef := strings.Split(b.Entry[0].Response.Location, "/_history/")[0]
	patRef := strings.Split(b.Entry[1].Response.Location, "/_history/")[0]
	if !strings.HasPrefix(b.Entry[2].Response.Location, "Patient/known/") {
		t.Errorf("ifNoneExist entry: location %q, want Patient/known", b.Entry[2].Response.Location)
	}
	if strings.Contains(patRef, "ignored-on-create") {
		t.Errorf("a POST kept the body's id: %s", patRef)
	}

	obs := s.do("GET", "/"+obsRef, "").JSON(t)
	if got := obs["subject"].(map[string]any)["reference"]; got != patRef {
		t.Errorf("subject: %v, want %s", got, patRef)
	}
	if got := obs["performer"].([]any)[0].(map[string]any)["reference"]; got != "Organization/org1" {
		t.Errorf("the conditional reference: %v, want Organization/org1", got)
	}
	ext := obs["extension"].([]any)[0].(map[string]any)["valueReference"].(map[string]any)["reference"]
	if ext != patRef {
		t.Errorf("reference in an extension: %v, want %s", ext, patRef)
	}
	raw := s.do("GET", "/"+obsRef, "").Body
	if !strings.Contains(string(raw), `"value":1.50`) {
		t.Errorf("the decimal 1.50 lost its digits: %s", raw)
	}
	pat := s.do("GET", "/"+patRef, "")
	pv := pat.JSON(t)
	if got := pv["contained"].([]any)[0].(map[string]any)["patient"].(map[string]any)["reference"]; got != patRef {
		t.Errorf("reference in a contained resource: %v, want %s", got, patRef)
	}
	if !strings.Contains(string(pat.Body), `"_birthDate":{"extension":[{"url":"http://example.org/x","valueString":"kept"}]}`) {
		t.Errorf("the primitive extension was not kept: %s", pat.Body)
	}
	enc := s.do("GET", "/"+strings.Split(b.Entry[3].Response.Location, "/_history/")[0], "").JSON(t)
	if got := enc["subject"].(map[string]any)["reference"]; got != "Patient/known" {
		t.Errorf("reference to the ifNoneExist entry: %v, want Patient/known", got)
	}
	// The search index sees the rewritten references.
	if r := s.do("GET", "/Observation?subject="+patRef, "").JSON(t); r["total"] != nil && r["total"].(float64) != 1 {
		t.Errorf("Observation?subject=%s: total %v, want 1", patRef, r["total"])
	}
}

func TestTransactionAllOrNothing(t *testing.T) {
	s := newTestServer(t)
	mustStatus(t, s.do("PUT", "/Patient/p1", `{"resourceType":"Patient","id":"p1","gender":"male"}`), http.StatusCreated)
	before := s.total(t, "Patient")

	cases := []struct {
		name, entries string
		status        int
		where         string
	}{
		{"invalid resource", `
			{"resource":{"resourceType":"Patient","gender":"female"},"request":{"method":"POST","url":"Patient"}},
			{"resource":{"resourceType":"Patient","id":"p1","gender":"female"},"request":{"method":"PUT","url":"Patient/p1"}},
			{"resource":{"resourceType":"Patient","gender":"nonsense-code"},"request":{"method":"POST","url":"Patient"}}`,
			http.StatusUnprocessableEntity, "Bundle.entry[2]"},
		{"stale ifMatch", `
			{"resource":{"resourceType":"Patient","gender":"female"},"request":{"method":"POST","url":"Patient"}},
			{"resource":{"resourceType":"Patient","id":"p1","gender":"female"},"request":{"method":"PUT","url":"Patient/p1","ifMatch":"W/\"7\""}}`,
			http.StatusPreconditionFailed, "Bundle.entry[1]"},
		{"dangling urn:uuid", `
			{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"urn:uuid:4d4c5b8e-0000-0000-0000-000000000000"}},"request":{"method":"POST","url":"Observation"}}`,
			http.StatusBadRequest, "Bundle.entry[0]"},
		{"conditional reference with no match", `
			{"resource":{"resourceType":"Patient","gender":"female"},"request":{"method":"POST","url":"Patient"}},
			{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient?identifier=urn:none|0"}},"request":{"method":"POST","url":"Observation"}}`,
			http.StatusPreconditionFailed, "Bundle.entry[1]"},
		{"two writes of one resource", `
			{"resource":{"resourceType":"Patient","id":"p1","gender":"female"},"request":{"method":"PUT","url":"Patient/p1"}},
			{"request":{"method":"DELETE","url":"Patient/p1"}}`,
			http.StatusBadRequest, "Patient/p1"},
		{"resource type differs from url", `
			{"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Observation"}}`,
			http.StatusBadRequest, "Bundle.entry[0]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := s.do("POST", "", `{"resourceType":"Bundle","type":"transaction","entry":[`+c.entries+`]}`)
			diag, _ := outcome(t, r, c.status)
			if !strings.Contains(diag, c.where) {
				t.Errorf("diagnostics %q do not name %s", diag, c.where)
			}
			if n := s.total(t, "Patient"); n != before {
				t.Errorf("%d Patients after the failed transaction, want %d", n, before)
			}
			if n := s.total(t, "Observation"); n != 0 {
				t.Errorf("%d Observations after the failed transaction, want 0", n)
			}
			p := s.do("GET", "/Patient/p1", "").JSON(t)
			if p["gender"] != "male" || p["meta"].(map[string]any)["versionId"] != "1" {
				t.Errorf("Patient/p1 changed: %v", p)
			}
		})
	}
}

func TestTransactionOrderAndConditionals(t *testing.T) {
	s := newTestServer(t)
	mustStatus(t, s.do("PUT", "/Patient/old", `{"resourceType":"Patient","id":"old","identifier":[{"system":"urn:mrn","value":"old"}]}`), http.StatusCreated)
	mustStatus(t, s.do("PUT", "/Patient/upd", `{"resourceType":"Patient","id":"upd","identifier":[{"system":"urn:mrn","value":"upd"}]}`), http.StatusCreated)
	// Listed GET first, DELETE last: processed DELETE, POST, PUT, GET.
	tx := `{"resourceType":"Bundle","type":"transaction","entry":[
	{"request":{"method":"GET","url":"Patient?identifier=urn:mrn|new"}},
	{"request":{"method":"GET","url":"Patient/upd"}},
	{"resource":{"resourceType":"Patient","identifier":[{"system":"urn:mrn","value":"upd"}],"gender":"other"},"request":{"method":"PUT","url":"Patient?identifier=urn:mrn|upd"}},
	{"resource":{"resourceType":"Patient","id":"made","identifier":[{"system":"urn:mrn","value":"made"}]},"request":{"method":"PUT","url":"Patient?identifier=urn:mrn|made"}},
	{"resource":{"resourceType":"Patient","identifier":[{"system":"urn:mrn","value":"new"}]},"request":{"method":"POST","url":"Patient"}},
	{"request":{"method":"DELETE","url":"Patient?identifier=urn:mrn|old"}},
	{"request":{"method":"DELETE","url":"Patient?identifier=urn:mrn|nobody"}}
	]}`
	b := decodeBundle(t, s.do("POST", "", tx))
	want := []string{"200 OK", "200 OK", "200 OK", "201 Created", "201 Created", "204 No Content", "204 No Content"}
	for i, w := range want {
		if b.Entry[i].Response.Status != w {
			t.Errorf("entry %d: status %q, want %q", i, b.Entry[i].Response.Status, w)
		}
	}
	var search struct {
		Total float64 `json:"total"`
	}
	json.Unmarshal(b.Entry[0].Resource, &search)
	if search.Total != 1 {
		t.Errorf("the GET after the POST found %v, want 1: %s", search.Total, b.Entry[0].Resource)
	}
	var upd map[string]any
	json.Unmarshal(b.Entry[1].Resource, &upd)
	if upd["gender"] != "other" {
		t.Errorf("the GET of Patient/upd did not see the PUT: %s", b.Entry[1].Resource)
	}
	if !strings.HasPrefix(b.Entry[3].Response.Location, "Patient/made/") {
		t.Errorf("conditional PUT with no match keeps the body's id: %q", b.Entry[3].Response.Location)
	}
	mustStatus(t, s.do("GET", "/Patient/old", ""), http.StatusGone)

	// Several matches for a conditional update fail the transaction.
	mustStatus(t, s.do("PUT", "/Patient/twin1", `{"resourceType":"Patient","id":"twin1","gender":"female"}`), http.StatusCreated)
	mustStatus(t, s.do("PUT", "/Patient/twin2", `{"resourceType":"Patient","id":"twin2","gender":"female"}`), http.StatusCreated)
	r := s.do("POST", "", `{"resourceType":"Bundle","type":"transaction","entry":[
		{"resource":{"resourceType":"Patient","gender":"female"},"request":{"method":"PUT","url":"Patient?gender=female"}}]}`)
	if diag, _ := outcome(t, r, http.StatusPreconditionFailed); !strings.Contains(diag, "Bundle.entry[0]") {
		t.Errorf("diagnostics %q do not name the entry", diag)
	}
}

func TestTransactionPrefer(t *testing.T) {
	s := newTestServer(t)
	tx := `{"resourceType":"Bundle","type":"transaction","entry":[
		{"resource":{"resourceType":"Patient","gender":"female"},"request":{"method":"POST","url":"Patient"}}]}`
	for prefer, check := range map[string]func(e json.RawMessage, outcome json.RawMessage) bool{
		"":                        func(r, o json.RawMessage) bool { return strings.Contains(string(r), `"gender":"female"`) && o == nil },
		"return=minimal":          func(r, o json.RawMessage) bool { return r == nil && o == nil },
		"return=OperationOutcome": func(r, o json.RawMessage) bool { return r == nil && strings.Contains(string(o), "OperationOutcome") },
	} {
		var b bundleOut
		if prefer == "" {
			b = decodeBundle(t, s.do("POST", "", tx))
		} else {
			b = decodeBundle(t, s.do("POST", "", tx, "Prefer: "+prefer))
		}
		if e := b.Entry[0]; !check(e.Resource, e.Response.Outcome) {
			t.Errorf("Prefer %q: resource %s, outcome %s", prefer, e.Resource, e.Response.Outcome)
		}
	}
}

func TestBatch(t *testing.T) {
	s := newTestServer(t)
	mustStatus(t, s.do("PUT", "/Patient/p1", `{"resourceType":"Patient","id":"p1"}`), http.StatusCreated)
	batch := `{"resourceType":"Bundle","type":"batch","entry":[
	{"resource":{"resourceType":"Patient","gender":"female"},"request":{"method":"POST","url":"Patient"}},
	{"resource":{"resourceType":"Patient","gender":"not-a-gender"},"request":{"method":"POST","url":"Patient"}},
	{"request":{"method":"GET","url":"Patient/p1"}},
	{"request":{"method":"GET","url":"Patient/missing"}},
	{"resource":{"resourceType":"Patient","id":"p1","gender":"male"},"request":{"method":"PUT","url":"Patient/p1","ifMatch":"W/\"1\""}},
	{"resource":{"resourceType":"Patient","id":"p1","gender":"male"},"request":{"method":"PUT","url":"Patient/p1","ifMatch":"W/\"9\""}},
	{"request":{"method":"DELETE","url":"Patient/nobody"}},
	{"request":{"method":"GET","url":"Patient/p1","ifNoneMatch":"W/\"2\""}}
	]}`
	b := decodeBundle(t, s.do("POST", "", batch))
	if b.Type != "batch-response" || len(b.Entry) != 8 {
		t.Fatalf("got %s with %d entries", b.Type, len(b.Entry))
	}
	want := []string{"201 Created", "422 Unprocessable Entity", "200 OK", "404 Not Found", "200 OK", "412 Precondition Failed", "200 OK", "304 Not Modified"}
	for i, w := range want {
		e := b.Entry[i]
		if e.Response.Status != w {
			t.Errorf("entry %d: status %q, want %q (outcome %s)", i, e.Response.Status, w, e.Response.Outcome)
		}
		failed := strings.HasPrefix(w, "4")
		if failed && e.Response.Outcome == nil || !failed && e.Response.Outcome != nil && i != 6 {
			t.Errorf("entry %d (%s): outcome %s", i, w, e.Response.Outcome)
		}
	}
	if b.Entry[0].Response.Location == "" || b.Entry[0].Response.Etag != `W/"1"` {
		t.Errorf("created entry: %+v", b.Entry[0].Response)
	}
	// The PUT (processed before the GETs) is what the GET of p1 sees.
	if !strings.Contains(string(b.Entry[2].Resource), `"gender":"male"`) {
		t.Errorf("GET Patient/p1 in the batch: %s", b.Entry[2].Resource)
	}
	if n := s.total(t, "Patient"); n != 2 {
		t.Errorf("%d Patients after the batch, want 2 (p1 and the created one)", n)
	}
}

func TestBundleRejects(t *testing.T) {
	s := newTestServer(t)
	for _, c := range []struct{ name, body, want string }{
		{"not a Bundle", `{"resourceType":"Patient"}`, "Bundle"},
		{"a searchset", `{"resourceType":"Bundle","type":"searchset"}`, "searchset"},
		{"entry without request", `{"resourceType":"Bundle","type":"batch","entry":[{"resource":{"resourceType":"Patient"}}]}`, "entry[0]"},
		{"bad method", `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"FETCH","url":"Patient"}}]}`, "FETCH"},
		{"not JSON", `{"resourceType":"Bundle",`, "Bundle"},
	} {
		t.Run(c.name, func(t *testing.T) {
			diag, _ := outcome(t, s.do("POST", "", c.body), http.StatusBadRequest)
			if !strings.Contains(diag, c.want) {
				t.Errorf("diagnostics %q do not mention %q", diag, c.want)
			}
		})
	}
}

// TestLargeTransaction writes 2,000 entries that reference each other in one
// transaction (the benchmark measures 10,000).
func TestLargeTransaction(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	s := newTestServer(t)
	var sb strings.Builder
	sb.WriteString(`{"resourceType":"Bundle","type":"transaction","entry":[`)
	const n = 1000
	for i := range n {
		if i > 0 {
			sb.WriteString(",")
		}
		fmt.Fprintf(&sb, `{"fullUrl":"urn:uuid:00000000-0000-0000-0000-%012d","resource":{"resourceType":"Patient","identifier":[{"system":"urn:big","value":"%d"}]},"request":{"method":"POST","url":"Patient"}},`, i, i)
		fmt.Fprintf(&sb, `{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"urn:uuid:00000000-0000-0000-0000-%012d"}},"request":{"method":"POST","url":"Observation"}}`, i)
	}
	sb.WriteString("]}")
	b := decodeBundle(t, s.do("POST", "", sb.String(), "Prefer: return=minimal"))
	if len(b.Entry) != 2*n {
		t.Fatalf("%d entries in the response, want %d", len(b.Entry), 2*n)
	}
	if got := s.total(t, "Observation"); got != n {
		t.Errorf("%d Observations, want %d", got, n)
	}
	if r := s.do("GET", "/Observation?subject:Patient.identifier=urn:big|7&_summary=count", "").JSON(t); r["total"].(float64) != 1 {
		t.Errorf("chained search through a rewritten reference: total %v, want 1", r["total"])
	}
}
