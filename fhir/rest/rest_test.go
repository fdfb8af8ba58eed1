package rest_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fhirhub/fhirhub/fhir/rest"
)

const patient = `{
  "resourceType": "Patient",
  "identifier": [{"system": "http://hospital.example/mrn", "value": "12345"}],
  "active": true,
  "name": [{"family": "Chalmers", "given": ["Peter", "James"]}],
  "gender": "male",
  "birthDate": "1974-12-25",
  "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime", "valueDateTime": "1974-12-25T14:35:45-05:00"}]},
  "extension": [{"url": "http://example.org/fhir/StructureDefinition/unknown-to-the-server", "valueDecimal": 1.50}]
}`

func patientWithID(id string, extra string) string {
	return fmt.Sprintf(`{"resourceType":"Patient","id":%q,"active":true%s}`, id, extra)
}

func TestCreate(t *testing.T) {
	s := newTestServer(t)
	t.Run("OK", func(t *testing.T) {
		r := s.do("POST", "/Patient", patient)
		mustStatus(t, r, 201)
		got := r.JSON(t)
		id, _ := got["id"].(string)
		if id == "" {
			t.Fatal("created resource has no id")
		}
		if loc, want := r.Header.Get("Location"), s.URL+"/Patient/"+id+"/_history/1"; loc != want {
			t.Errorf("Location = %q, want %q", loc, want)
		}
		if et := r.Header.Get("ETag"); et != `W/"1"` {
			t.Errorf("ETag = %q, want W/\"1\"", et)
		}
		if _, err := http.ParseTime(r.Header.Get("Last-Modified")); err != nil {
			t.Errorf("Last-Modified %q: %v", r.Header.Get("Last-Modified"), err)
		}
		meta := got["meta"].(map[string]any)
		if meta["versionId"] != "1" {
			t.Errorf("meta.versionId = %v, want 1", meta["versionId"])
		}
		if _, err := time.Parse(time.RFC3339, meta["lastUpdated"].(string)); err != nil {
			t.Errorf("meta.lastUpdated: %v", err)
		}
		// Round trip: the read equals what was sent, apart from server meta.
		read := s.do("GET", "/Patient/"+id, "")
		mustStatus(t, read, 200)
		var sent map[string]any
		_ = json.Unmarshal([]byte(patient), &sent)
		back := withoutServerMeta(read.JSON(t))
		delete(back, "id")
		if canonical(t, back) != canonical(t, sent) {
			t.Errorf("read back differs from what was sent:\n%s\nwant\n%s", canonical(t, back), canonical(t, sent))
		}
		if !strings.Contains(string(read.Body), `"valueDecimal":1.50`) {
			t.Errorf("decimal 1.50 lost its precision: %s", read.Body)
		}
	})
	t.Run("ClientIDIgnored", func(t *testing.T) {
		r := s.do("POST", "/Patient", patientWithID("mine", ""))
		mustStatus(t, r, 201)
		if id := r.JSON(t)["id"]; id == "mine" {
			t.Error("a create kept the client's id; the server must assign one")
		}
	})
	t.Run("UnknownType", func(t *testing.T) {
		diag, _ := outcome(t, s.do("POST", "/Patientt", `{"resourceType":"Patientt"}`), 404)
		if !strings.Contains(diag, "Patientt") {
			t.Errorf("diagnostics %q do not name the type", diag)
		}
	})
	t.Run("TypeMismatch", func(t *testing.T) {
		_, expr := outcome(t, s.do("POST", "/Observation", patient), 400)
		if expr != "resourceType" {
			t.Errorf("expression = %q, want resourceType", expr)
		}
	})
	t.Run("MalformedJSON", func(t *testing.T) {
		diag, _ := outcome(t, s.do("POST", "/Patient", "{\n  \"resourceType\": \"Patient\",\n  \"active\": true,,\n}"), 400)
		if !strings.Contains(diag, "line 3") {
			t.Errorf("diagnostics %q do not give the line of the fault", diag)
		}
	})
	t.Run("SchemaViolation", func(t *testing.T) {
		r := s.do("POST", "/Patient", `{"resourceType":"Patient","name":[{"family":"X","given":"not-an-array"}],"birthDate":"25/12/1974","colour":"blue"}`)
		mustStatus(t, r, 422)
		v := r.JSON(t)
		var exprs []string
		for _, is := range v["issue"].([]any) {
			for _, e := range is.(map[string]any)["expression"].([]any) {
				exprs = append(exprs, e.(string))
			}
		}
		for _, want := range []string{"Patient.name[0].given", "Patient.birthDate", "Patient.colour"} {
			found := false
			for _, e := range exprs {
				found = found || e == want
			}
			if !found {
				t.Errorf("no issue located at %s; got %v", want, exprs)
			}
		}
	})
	t.Run("NotAnObject", func(t *testing.T) {
		outcome(t, s.do("POST", "/Patient", `["resourceType"]`), 400)
	})
}

func TestReadVRead(t *testing.T) {
	s := newTestServer(t)
	mustStatus(t, s.do("PUT", "/Patient/p1", patientWithID("p1", "")), 201)
	mustStatus(t, s.do("PUT", "/Patient/p1", patientWithID("p1", `,"gender":"female"`)), 200)
	tests := []struct {
		name, path string
		status     int
		etag       string
	}{
		{"Read", "/Patient/p1", 200, `W/"2"`},
		{"VReadOld", "/Patient/p1/_history/1", 200, `W/"1"`},
		{"VReadCurrent", "/Patient/p1/_history/2", 200, `W/"2"`},
		{"VReadMissing", "/Patient/p1/_history/3", 404, ""},
		{"VReadNotANumber", "/Patient/p1/_history/abc", 404, ""},
		{"ReadMissing", "/Patient/nope", 404, ""},
		{"ReadBadID", "/Patient/has_underscore", 404, ""},
		{"UnknownType", "/Nonsense/p1", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.do("GET", tt.path, "")
			if tt.status != 200 {
				outcome(t, r, tt.status)
				return
			}
			mustStatus(t, r, 200)
			if got := r.Header.Get("ETag"); got != tt.etag {
				t.Errorf("ETag = %q, want %q", got, tt.etag)
			}
			v := r.JSON(t)
			if got := v["meta"].(map[string]any)["versionId"]; `W/"`+got.(string)+`"` != tt.etag {
				t.Errorf("meta.versionId = %v, want the ETag's %s", got, tt.etag)
			}
		})
	}
	t.Run("Head", func(t *testing.T) {
		r := s.do("HEAD", "/Patient/p1", "")
		mustStatus(t, r, 200)
		if len(r.Body) != 0 || r.Header.Get("ETag") != `W/"2"` {
			t.Errorf("HEAD: body %q, ETag %q; want no body and W/\"2\"", r.Body, r.Header.Get("ETag"))
		}
		mustStatus(t, s.do("HEAD", "/Patient/nope", ""), 404)
	})
	t.Run("IfNoneMatch", func(t *testing.T) {
		mustStatus(t, s.do("GET", "/Patient/p1", "", `If-None-Match: W/"2"`), 304)
		mustStatus(t, s.do("GET", "/Patient/p1", "", `If-None-Match: W/"1"`), 200)
	})
	t.Run("IfModifiedSince", func(t *testing.T) {
		future := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
		past := time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
		mustStatus(t, s.do("GET", "/Patient/p1", "", "If-Modified-Since: "+future), 304)
		mustStatus(t, s.do("GET", "/Patient/p1", "", "If-Modified-Since: "+past), 200)
	})
}

func TestUpdate(t *testing.T) {
	s := newTestServer(t)
	t.Run("UpdateAsCreate", func(t *testing.T) {
		r := s.do("PUT", "/Patient/u1", patientWithID("u1", ""))
		mustStatus(t, r, 201)
		if loc := r.Header.Get("Location"); loc != s.URL+"/Patient/u1/_history/1" {
			t.Errorf("Location = %q", loc)
		}
	})
	t.Run("Update", func(t *testing.T) {
		r := s.do("PUT", "/Patient/u1", patientWithID("u1", `,"gender":"other"`))
		mustStatus(t, r, 200)
		if r.Header.Get("ETag") != `W/"2"` {
			t.Errorf("ETag = %q, want W/\"2\"", r.Header.Get("ETag"))
		}
	})
	t.Run("IfMatchCurrent", func(t *testing.T) {
		mustStatus(t, s.do("PUT", "/Patient/u1", patientWithID("u1", ""), `If-Match: W/"2"`), 200)
	})
	t.Run("IfMatchStale", func(t *testing.T) {
		outcome(t, s.do("PUT", "/Patient/u1", patientWithID("u1", `,"gender":"female"`), `If-Match: W/"1"`), 412)
	})
	t.Run("IfMatchMalformed", func(t *testing.T) {
		outcome(t, s.do("PUT", "/Patient/u1", patientWithID("u1", ""), `If-Match: yesterday`), 400)
	})
	t.Run("IDMismatch", func(t *testing.T) {
		_, expr := outcome(t, s.do("PUT", "/Patient/u1", patientWithID("u2", "")), 400)
		if expr != "Patient.id" {
			t.Errorf("expression = %q, want Patient.id", expr)
		}
	})
	t.Run("NoIDInBody", func(t *testing.T) {
		outcome(t, s.do("PUT", "/Patient/u1", `{"resourceType":"Patient"}`), 400)
	})
	t.Run("InvalidID", func(t *testing.T) {
		long := strings.Repeat("a", 65)
		outcome(t, s.do("PUT", "/Patient/"+long, patientWithID(long, "")), 400)
	})
	t.Run("NothingChangedByFailures", func(t *testing.T) {
		r := s.do("GET", "/Patient/u1", "")
		if r.Header.Get("ETag") != `W/"3"` || strings.Contains(string(r.Body), "female") {
			t.Errorf("a failed update changed the resource: ETag %s body %s", r.Header.Get("ETag"), r.Body)
		}
		h := s.do("GET", "/Patient/u1/_history", "").JSON(t)
		if n := len(h["entry"].([]any)); n != 3 {
			t.Errorf("history has %d entries, want 3", n)
		}
	})
	t.Run("RequireIfMatch", func(t *testing.T) {
		s2 := newTestServer(t, func(api *rest.Server) { api.Service.RequireIfMatch = true })
		mustStatus(t, s2.do("PUT", "/Patient/r", patientWithID("r", "")), 201)
		outcome(t, s2.do("PUT", "/Patient/r", patientWithID("r", "")), 428)
		mustStatus(t, s2.do("PUT", "/Patient/r", patientWithID("r", ""), `If-Match: W/"1"`), 200)
		outcome(t, s2.do("DELETE", "/Patient/r", ""), 428)
	})
}

func TestConcurrentUpdates(t *testing.T) {
	s := newTestServer(t)
	mustStatus(t, s.do("PUT", "/Patient/c", patientWithID("c", "")), 201)
	const writers, each = 8, 10
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				r := s.do("PUT", "/Patient/c", patientWithID("c", fmt.Sprintf(`,"gender":"other","multipleBirthInteger":%d`, w*100+i)))
				mu.Lock()
				statuses[r.Status]++
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	if statuses[200] != writers*each {
		t.Fatalf("statuses %v, want %d × 200 (without If-Match the server retries lost races)", statuses, writers*each)
	}
	r := s.do("GET", "/Patient/c", "")
	if want := fmt.Sprintf(`W/"%d"`, writers*each+1); r.Header.Get("ETag") != want {
		t.Errorf("ETag = %s, want %s", r.Header.Get("ETag"), want)
	}
	// With If-Match, of several writers naming the same version exactly one wins.
	var wins, lost int
	cur := writers*each + 1
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := s.do("PUT", "/Patient/c", patientWithID("c", ""), fmt.Sprintf(`If-Match: W/"%d"`, cur))
			mu.Lock()
			defer mu.Unlock()
			switch r.Status {
			case 200:
				wins++
			case 412:
				lost++
			default:
				t.Errorf("If-Match race: status %d: %s", r.Status, r.Body)
			}
		}()
	}
	wg.Wait()
	if wins != 1 || lost != writers-1 {
		t.Errorf("If-Match race: %d won, %d got 412; want 1 and %d", wins, lost, writers-1)
	}
}

func TestDelete(t *testing.T) {
	s := newTestServer(t)
	mustStatus(t, s.do("PUT", "/Patient/d", patientWithID("d", "")), 201)
	t.Run("IfMatchStale", func(t *testing.T) {
		outcome(t, s.do("DELETE", "/Patient/d", "", `If-Match: W/"7"`), 412)
		mustStatus(t, s.do("GET", "/Patient/d", ""), 200)
	})
	t.Run("Delete", func(t *testing.T) {
		r := s.do("DELETE", "/Patient/d", "")
		mustStatus(t, r, 200)
		if r.Header.Get("ETag") != `W/"2"` {
			t.Errorf("ETag = %q, want W/\"2\"", r.Header.Get("ETag"))
		}
	})
	t.Run("ReadGone", func(t *testing.T) { outcome(t, s.do("GET", "/Patient/d", ""), 410) })
	t.Run("VReadDeletion", func(t *testing.T) { outcome(t, s.do("GET", "/Patient/d/_history/2", ""), 410) })
	t.Run("OldVersionReadable", func(t *testing.T) { mustStatus(t, s.do("GET", "/Patient/d/_history/1", ""), 200) })
	t.Run("HistoryKeepsIt", func(t *testing.T) {
		h := s.do("GET", "/Patient/d/_history", "").JSON(t)
		entries := h["entry"].([]any)
		if len(entries) != 2 {
			t.Fatalf("history has %d entries, want 2", len(entries))
		}
		first := entries[0].(map[string]any)
		if first["request"].(map[string]any)["method"] != "DELETE" || first["resource"] != nil {
			t.Errorf("newest entry should be a DELETE without resource: %v", first)
		}
	})
	t.Run("DeleteAgain", func(t *testing.T) { mustStatus(t, s.do("DELETE", "/Patient/d", ""), 200) })
	t.Run("DeleteMissing", func(t *testing.T) { mustStatus(t, s.do("DELETE", "/Patient/never", ""), 200) })
	t.Run("Minimal", func(t *testing.T) {
		mustStatus(t, s.do("PUT", "/Patient/m", patientWithID("m", "")), 201)
		mustStatus(t, s.do("DELETE", "/Patient/m", "", "Prefer: return=minimal"), 204)
	})
	t.Run("Recreate", func(t *testing.T) {
		r := s.do("PUT", "/Patient/d", patientWithID("d", ""))
		mustStatus(t, r, 201)
		if r.Header.Get("ETag") != `W/"3"` {
			t.Errorf("recreated ETag = %q, want W/\"3\"", r.Header.Get("ETag"))
		}
	})
}
