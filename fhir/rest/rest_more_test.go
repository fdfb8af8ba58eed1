package rest_test

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fhirhub/fhirhub/fhir/rest"
)

func entries(t *testing.T, r response) []map[string]any {
	t.Helper()
	mustStatus(t, r, 200)
	v := r.JSON(t)
	if v["resourceType"] != "Bundle" {
		t.Fatalf("got %v, want a Bundle", v["resourceType"])
	}
	var out []map[string]any
	for _, e := range v["entry"].([]any) {
		out = append(out, e.(map[string]any))
	}
	return out
}

func link(t *testing.T, r response, rel string) string {
	t.Helper()
	for _, l := range r.JSON(t)["link"].([]any) {
		l := l.(map[string]any)
		if l["relation"] == rel {
			return l["url"].(string)
		}
	}
	return ""
}

func entryRefs(es []map[string]any) []string {
	var out []string
	for _, e := range es {
		full := e["fullUrl"].(string)
		parts := strings.Split(full, "/")
		etag := e["response"].(map[string]any)["etag"].(string)
		out = append(out, parts[len(parts)-2]+"/"+parts[len(parts)-1]+"@"+strings.Trim(strings.TrimPrefix(etag, "W/"), `"`))
	}
	return out
}

func TestHistory(t *testing.T) {
	s := newTestServer(t)
	mustStatus(t, s.do("PUT", "/Patient/a", patientWithID("a", "")), 201)
	mustStatus(t, s.do("PUT", "/Observation/o", `{"resourceType":"Observation","id":"o","status":"final","code":{"text":"x"}}`), 201)
	mustStatus(t, s.do("PUT", "/Patient/a", patientWithID("a", `,"gender":"male"`)), 200)
	time.Sleep(5 * time.Millisecond) // distinct lastUpdated for _since below
	mid := time.Now().UTC()
	time.Sleep(5 * time.Millisecond)
	mustStatus(t, s.do("PUT", "/Patient/b", patientWithID("b", "")), 201)
	mustStatus(t, s.do("DELETE", "/Patient/a", ""), 200)

	tests := []struct {
		name, path string
		want       string
	}{
		{"Instance", "/Patient/a/_history", "[Patient/a@3 Patient/a@2 Patient/a@1]"},
		{"Type", "/Patient/_history", "[Patient/a@3 Patient/b@1 Patient/a@2 Patient/a@1]"},
		{"System", "/_history", "[Patient/a@3 Patient/b@1 Patient/a@2 Observation/o@1 Patient/a@1]"},
		{"Since", "/_history?_since=" + url.QueryEscape(mid.Format(time.RFC3339Nano)), "[Patient/a@3 Patient/b@1]"},
		{"At", "/Patient/_history?_at=" + url.QueryEscape(mid.Format(time.RFC3339Nano)), "[Patient/a@2]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := entryRefs(entries(t, s.do("GET", tt.path, "")))
			if fmt.Sprint(got) != tt.want {
				t.Errorf("got %v, want %s", got, tt.want)
			}
		})
	}
	t.Run("EntryShape", func(t *testing.T) {
		es := entries(t, s.do("GET", "/Patient/a/_history", ""))
		req := func(i int) string {
			r := es[i]["request"].(map[string]any)
			return r["method"].(string) + " " + r["url"].(string)
		}
		if req(0) != "DELETE Patient/a" || req(1) != "PUT Patient/a" || req(2) != "POST Patient" {
			t.Errorf("requests = %q, %q, %q", req(0), req(1), req(2))
		}
		if es[1]["resource"] == nil {
			t.Error("update entry has no resource")
		}
	})
	t.Run("Paging", func(t *testing.T) {
		r := s.do("GET", "/_history?_count=2", "")
		var all []string
		all = append(all, entryRefs(entries(t, r))...)
		next := link(t, r, "next")
		if next == "" {
			t.Fatal("first page has no next link")
		}
		// A write between pages must not shift the next pages.
		mustStatus(t, s.do("PUT", "/Patient/late", patientWithID("late", "")), 201)
		for i := 0; next != "" && i < 10; i++ {
			r = s.do("GET", next, "")
			all = append(all, entryRefs(entries(t, r))...)
			next = link(t, r, "next")
		}
		if want := "[Patient/a@3 Patient/b@1 Patient/a@2 Observation/o@1 Patient/a@1]"; fmt.Sprint(all) != want {
			t.Errorf("paged = %v, want %s", all, want)
		}
	})
	t.Run("BadParams", func(t *testing.T) {
		outcome(t, s.do("GET", "/_history?_since=yesterday", ""), 400)
		outcome(t, s.do("GET", "/_history?_count=-1", ""), 400)
		outcome(t, s.do("GET", "/_history?_cursor=x", ""), 400)
	})
	t.Run("UnknownInstance", func(t *testing.T) { outcome(t, s.do("GET", "/Patient/zzz/_history", ""), 404) })
}

func TestConditional(t *testing.T) {
	s := newTestServer(t)
	mrn := func(v string) string {
		return fmt.Sprintf(`{"resourceType":"Patient","identifier":[{"system":"http://hospital.example/mrn","value":%q}]}`, v)
	}
	t.Run("CreateNoMatch", func(t *testing.T) {
		mustStatus(t, s.do("POST", "/Patient", mrn("1"), "If-None-Exist: identifier=http://hospital.example/mrn|1"), 201)
	})
	var first string
	t.Run("CreateOneMatch", func(t *testing.T) {
		r := s.do("POST", "/Patient", mrn("1"), "If-None-Exist: identifier=http://hospital.example/mrn|1")
		mustStatus(t, r, 200)
		first = r.JSON(t)["id"].(string)
		found := entries(t, s.do("GET", "/Patient/_history", ""))
		if len(found) != 1 {
			t.Errorf("a matched conditional create stored something: %d versions", len(found))
		}
	})
	t.Run("CreateManyMatch", func(t *testing.T) {
		mustStatus(t, s.do("POST", "/Patient", mrn("2")), 201)
		mustStatus(t, s.do("POST", "/Patient", mrn("2")), 201)
		outcome(t, s.do("POST", "/Patient", mrn("2"), "If-None-Exist: identifier=http://hospital.example/mrn|2"), 412)
	})
	t.Run("CreateUnsupportedParam", func(t *testing.T) {
		_, expr := outcome(t, s.do("POST", "/Patient", mrn("3"), "If-None-Exist: colour=blue"), 400)
		if expr != "colour" {
			t.Errorf("expression = %q, want colour", expr)
		}
	})
	t.Run("UpdateOneMatch", func(t *testing.T) {
		r := s.do("PUT", "/Patient?identifier=http://hospital.example/mrn|1", mrn("1"))
		mustStatus(t, r, 200)
		if id := r.JSON(t)["id"]; id != first {
			t.Errorf("conditional update wrote %v, want the match %s", id, first)
		}
		if r.Header.Get("ETag") != `W/"2"` {
			t.Errorf("ETag = %s, want W/\"2\"", r.Header.Get("ETag"))
		}
	})
	t.Run("UpdateNoMatchCreates", func(t *testing.T) {
		mustStatus(t, s.do("PUT", "/Patient?identifier=http://hospital.example/mrn|9", mrn("9")), 201)
	})
	t.Run("UpdateManyMatch", func(t *testing.T) {
		outcome(t, s.do("PUT", "/Patient?identifier=http://hospital.example/mrn|2", mrn("2")), 412)
	})
	t.Run("UpdateByID", func(t *testing.T) {
		mustStatus(t, s.do("PUT", "/Patient?_id="+first, mrn("1")), 200)
	})
	t.Run("UpdateNoCriteria", func(t *testing.T) { outcome(t, s.do("PUT", "/Patient", mrn("1")), 400) })
	t.Run("LastUpdated", func(t *testing.T) {
		r := s.do("PUT", "/Patient?identifier=http://hospital.example/mrn|9&_lastUpdated=gt2000-01-01", mrn("9"))
		mustStatus(t, r, 200)
		outcome(t, s.do("PUT", "/Patient?_lastUpdated=2000-13", mrn("9")), 400)
	})
	t.Run("DeleteManyMatch", func(t *testing.T) {
		outcome(t, s.do("DELETE", "/Patient?identifier=http://hospital.example/mrn|2", ""), 412)
	})
	t.Run("DeleteOneMatch", func(t *testing.T) {
		mustStatus(t, s.do("DELETE", "/Patient?identifier=http://hospital.example/mrn|9", ""), 200)
		mustStatus(t, s.do("DELETE", "/Patient?identifier=http://hospital.example/mrn|9", ""), 200)
	})
}

func TestPrefer(t *testing.T) {
	s := newTestServer(t)
	r := s.do("POST", "/Patient", patient, "Prefer: return=minimal")
	mustStatus(t, r, 201)
	if len(r.Body) != 0 || r.Header.Get("Location") == "" {
		t.Errorf("return=minimal: body %q, Location %q", r.Body, r.Header.Get("Location"))
	}
	r = s.do("POST", "/Patient", patient, "Prefer: return=OperationOutcome")
	mustStatus(t, r, 201)
	if v := r.JSON(t); v["resourceType"] != "OperationOutcome" {
		t.Errorf("return=OperationOutcome gave %v", v["resourceType"])
	}
	r = s.do("POST", "/Patient", patient, "Prefer: return=representation")
	if v := r.JSON(t); v["resourceType"] != "Patient" {
		t.Errorf("return=representation gave %v", v["resourceType"])
	}
}

func TestSummaryAndElements(t *testing.T) {
	s := newTestServer(t)
	mustStatus(t, s.do("PUT", "/Patient/s", `{"resourceType":"Patient","id":"s","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Peter</div>"},"active":true,"name":[{"family":"Chalmers"}],"maritalStatus":{"text":"M"},"contact":[{"name":{"family":"X"}}]}`), 201)
	subsetted := func(v map[string]any) bool {
		tags, _ := v["meta"].(map[string]any)["tag"].([]any)
		for _, tg := range tags {
			if tg.(map[string]any)["code"] == "SUBSETTED" {
				return true
			}
		}
		return false
	}
	tests := []struct {
		query            string
		keep, drop       []string
		wantSubsettedTag bool
	}{
		{"_summary=true", []string{"name", "active", "id", "meta"}, []string{"text", "maritalStatus", "contact"}, true},
		{"_summary=text", []string{"text", "id", "meta"}, []string{"name", "active", "contact"}, true},
		{"_summary=data", []string{"name", "maritalStatus", "contact"}, []string{"text"}, true},
		{"_summary=false", []string{"text", "name", "contact"}, nil, false},
		{"_elements=name,active", []string{"name", "active", "id", "meta"}, []string{"text", "maritalStatus", "contact"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			v := s.do("GET", "/Patient/s?"+tt.query, "").JSON(t)
			for _, k := range tt.keep {
				if _, ok := v[k]; !ok {
					t.Errorf("%s dropped %s", tt.query, k)
				}
			}
			for _, k := range tt.drop {
				if _, ok := v[k]; ok {
					t.Errorf("%s kept %s", tt.query, k)
				}
			}
			if subsetted(v) != tt.wantSubsettedTag {
				t.Errorf("SUBSETTED tag present = %v, want %v", subsetted(v), tt.wantSubsettedTag)
			}
		})
	}
	t.Run("BadSummary", func(t *testing.T) { outcome(t, s.do("GET", "/Patient/s?_summary=bogus", ""), 400) })
	t.Run("CountOnRead", func(t *testing.T) { outcome(t, s.do("GET", "/Patient/s?_summary=count", ""), 400) })
	t.Run("BadElement", func(t *testing.T) { outcome(t, s.do("GET", "/Patient/s?_elements=nonsense", ""), 400) })
	t.Run("StoredUnchanged", func(t *testing.T) {
		v := s.do("GET", "/Patient/s", "").JSON(t)
		if v["text"] == nil || subsetted(v) {
			t.Error("a subsetted read changed the stored resource")
		}
	})
}

func TestContentNegotiation(t *testing.T) {
	s := newTestServer(t)
	mustStatus(t, s.do("PUT", "/Patient/n", patientWithID("n", "")), 201)
	tests := []struct {
		name    string
		method  string
		path    string
		body    string
		headers []string
		status  int
		ctype   string
	}{
		{"DefaultFHIRJSON", "GET", "/Patient/n", "", nil, 200, "application/fhir+json"},
		{"AcceptJSON", "GET", "/Patient/n", "", []string{"Accept: application/json"}, 200, "application/json"},
		{"AcceptAny", "GET", "/Patient/n", "", []string{"Accept: */*"}, 200, "application/fhir+json"},
		{"AcceptXMLOnly", "GET", "/Patient/n", "", []string{"Accept: application/fhir+xml"}, 406, "application/fhir+json"},
		{"AcceptXMLOrJSON", "GET", "/Patient/n", "", []string{"Accept: application/fhir+xml, application/fhir+json;q=0.5"}, 200, "application/fhir+json"},
		{"FormatJSON", "GET", "/Patient/n?_format=json", "", nil, 200, "application/fhir+json"},
		{"FormatXML", "GET", "/Patient/n?_format=xml", "", nil, 406, "application/fhir+json"},
		{"FormatOverridesAccept", "GET", "/Patient/n?_format=json", "", []string{"Accept: application/fhir+xml"}, 200, "application/fhir+json"},
		{"BodyXML", "PUT", "/Patient/n", `<Patient xmlns="http://hl7.org/fhir"/>`, []string{"Content-Type: application/fhir+xml"}, 415, "application/fhir+json"},
		{"BodyText", "PUT", "/Patient/n", patientWithID("n", ""), []string{"Content-Type: text/plain"}, 415, "application/fhir+json"},
		{"BodyPlainJSON", "PUT", "/Patient/n", patientWithID("n", ""), []string{"Content-Type: application/json; charset=utf-8"}, 200, "application/fhir+json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.do(tt.method, tt.path, tt.body, tt.headers...)
			if tt.status >= 400 {
				outcome(t, r, tt.status)
			} else {
				mustStatus(t, r, tt.status)
			}
			if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, tt.ctype) {
				t.Errorf("Content-Type = %q, want %s", ct, tt.ctype)
			}
		})
	}
	t.Run("Pretty", func(t *testing.T) {
		r := s.do("GET", "/Patient/n?_pretty=true", "")
		if !strings.Contains(string(r.Body), "\n  \"resourceType\"") {
			t.Errorf("_pretty=true is not indented: %s", r.Body)
		}
		if r = s.do("GET", "/Patient/n", ""); strings.Contains(string(r.Body), "\n") {
			t.Errorf("default output is not compact: %s", r.Body)
		}
	})
}

func TestBodyLimit(t *testing.T) {
	s := newTestServer(t, func(api *rest.Server) { api.MaxBodyBytes = 1024 })
	mustStatus(t, s.do("PUT", "/Patient/big", patientWithID("big", "")), 201)
	big := patientWithID("big", `,"name":[{"text":"`+strings.Repeat("x", 2000)+`"}]`)
	outcome(t, s.do("PUT", "/Patient/big", big), 413)
	outcome(t, s.do("POST", "/Patient", big), 413)
	if r := s.do("GET", "/Patient/big", ""); strings.Contains(string(r.Body), "xxxx") || r.Header.Get("ETag") != `W/"1"` {
		t.Error("a rejected body changed the stored resource")
	}
}

func TestRoutingErrors(t *testing.T) {
	s := newTestServer(t)
	outcome(t, s.do("GET", "/Patient/x/_history/1/extra", ""), 404)
}

func TestMetadataAndOps(t *testing.T) {
	s := newTestServer(t)
	root := strings.TrimSuffix(s.URL, "/fhir")
	t.Run("Metadata", func(t *testing.T) {
		v := s.do("GET", "/metadata", "").JSON(t)
		if v["resourceType"] != "CapabilityStatement" || v["fhirVersion"] != "4.0.1" {
			t.Fatalf("got %v %v", v["resourceType"], v["fhirVersion"])
		}
		res := v["rest"].([]any)[0].(map[string]any)["resource"].([]any)
		if len(res) != 146 {
			t.Errorf("CapabilityStatement lists %d resource types, want 146", len(res))
		}
		var pat map[string]any
		for _, r := range res {
			if r.(map[string]any)["type"] == "Patient" {
				pat = r.(map[string]any)
			}
		}
		b, _ := json.Marshal(pat)
		for _, want := range []string{`"code":"read"`, `"code":"vread"`, `"code":"update"`, `"code":"delete"`, `"code":"create"`, `"code":"history-instance"`, `"code":"history-type"`, `"conditionalCreate":true`, `"conditionalUpdate":true`, `"updateCreate":true`, `"versioning":"versioned-update"`} {
			if !strings.Contains(string(b), want) {
				t.Errorf("Patient capability lacks %s: %s", want, b)
			}
		}
		for _, want := range []string{`"code":"search-type"`, `"name":"birthdate"`, `"name":"general-practitioner"`, `"searchInclude":["*"`} {
			if !strings.Contains(string(b), want) {
				t.Errorf("Patient capability lacks %s", want)
			}
		}
	})
	t.Run("Healthz", func(t *testing.T) { mustStatus(t, s.do("GET", root+"/healthz", ""), 200) })
	t.Run("Readyz", func(t *testing.T) {
		mustStatus(t, s.do("GET", root+"/readyz", ""), 200)
		s.Store.Close(t.Context())
		mustStatus(t, s.do("GET", root+"/readyz", ""), 503)
	})
	t.Run("Metrics", func(t *testing.T) {
		r := s.do("GET", root+"/metrics", "")
		mustStatus(t, r, 200)
		for _, want := range []string{`fhir_http_requests_total{code="200",interaction="capabilities"}`, `fhir_http_request_duration_seconds_bucket{interaction="readyz"`, `fhir_http_requests_total{code="503",interaction="readyz"}`, `fhir_store_errors_total{op="write"} 0`, `go_goroutines`} {
			if !strings.Contains(string(r.Body), want) {
				t.Errorf("metrics lack %s", want)
			}
		}
	})
}

// knownInvalidExamples are official examples that violate R4 itself
// (Questionnaire-qs1 has nested items without the required linkId).
var knownInvalidExamples = map[string]bool{"Questionnaire-qs1.json": true}

// TestOfficialExamplesRoundTrip stores every official R4 example and reads it
// back: what comes back equals what was sent, apart from the server's meta.
func TestOfficialExamplesRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("long: stores all official examples")
	}
	path := filepath.Join("..", "..", "..", "shared", "fhir-r4", "examples-json.tar.gz")
	f, err := os.Open(path)
	if err != nil {
		t.Skipf("official examples not available: %v", err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	s := newTestServer(t)
	tr := tar.NewReader(gz)
	n := 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(h.Name, ".json") {
			continue
		}
		body, _ := io.ReadAll(tr)
		var sent map[string]any
		if err := json.Unmarshal(body, &sent); err != nil {
			t.Fatalf("%s: %v", h.Name, err)
		}
		typ, _ := sent["resourceType"].(string)
		id, _ := sent["id"].(string)
		if id == "" {
			continue
		}
		r := s.do("PUT", "/"+typ+"/"+id, string(body))
		if knownInvalidExamples[filepath.Base(h.Name)] {
			// Official examples that break R4's own rules must be refused.
			outcome(t, r, 422)
			continue
		}
		if r.Status != 201 && r.Status != 200 {
			t.Errorf("%s: PUT %s/%s: %d %s", h.Name, typ, id, r.Status, r.Body)
			continue
		}
		back := withoutServerMeta(s.do("GET", "/"+typ+"/"+id, "").JSON(t))
		if canonical(t, back) != canonical(t, withoutServerMeta(sent)) {
			t.Errorf("%s: read back differs from what was sent", h.Name)
		}
		n++
	}
	if n < 700 {
		t.Errorf("round-tripped %d examples, want all (over 700)", n)
	}
	t.Logf("round-tripped %d official examples", n)
}
