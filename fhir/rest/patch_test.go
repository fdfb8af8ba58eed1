package rest_test

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
)

const fhirpathReplaceGender = `{"resourceType":"Parameters","parameter":[{"name":"operation","part":[
	{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.gender"},{"name":"value","valueCode":"female"}]}]}`

func TestPatch(t *testing.T) {
	s := newTestServer(t)
	put := func() {
		t.Helper()
		mustStatus(t, s.do("PUT", "/Patient/p", `{"resourceType":"Patient","id":"p","gender":"male","birthDate":"1970-01-01","_birthDate":{"extension":[{"url":"http://example.org/x","valueString":"kept"}]},"multipleBirthInteger":2}`), http.StatusCreated)
	}
	put()

	t.Run("JSONPatch", func(t *testing.T) {
		r := s.do("PATCH", "/Patient/p", `[{"op":"replace","path":"/gender","value":"other"},{"op":"add","path":"/name","value":[{"family":"Smith"}]}]`,
			"Content-Type: application/json-patch+json")
		mustStatus(t, r, http.StatusOK)
		if r.Header.Get("ETag") != `W/"2"` {
			t.Errorf("ETag %q, want W/\"2\"", r.Header.Get("ETag"))
		}
		got := string(s.do("GET", "/Patient/p", "").Body)
		for _, want := range []string{`"gender":"other"`, `"family":"Smith"`, `"_birthDate":{"extension":[{"url":"http://example.org/x","valueString":"kept"}]}`} {
			if !strings.Contains(got, want) {
				t.Errorf("after the patch %s lacks %s", got, want)
			}
		}
		if strings.Index(got, `"gender"`) > strings.Index(got, `"birthDate"`) {
			t.Errorf("the patch moved gender after birthDate: %s", got)
		}
	})
	t.Run("FHIRPathPatch", func(t *testing.T) {
		mustStatus(t, s.do("PATCH", "/Patient/p", fhirpathReplaceGender), http.StatusOK)
		if v := s.do("GET", "/Patient/p", "").JSON(t); v["gender"] != "female" {
			t.Errorf("gender after the FHIRPath Patch: %v", v["gender"])
		}
	})
	t.Run("Conditional", func(t *testing.T) {
		mustStatus(t, s.do("PATCH", "/Patient?_id=p", `[{"op":"replace","path":"/gender","value":"unknown"}]`, "Content-Type: application/json-patch+json"), http.StatusOK)
		if v := s.do("GET", "/Patient/p", "").JSON(t); v["gender"] != "unknown" {
			t.Errorf("gender after the conditional patch: %v", v["gender"])
		}
		outcome(t, s.do("PATCH", "/Patient?_id=nobody", `[]`, "Content-Type: application/json-patch+json"), http.StatusNotFound)
	})
	t.Run("Errors", func(t *testing.T) {
		before := s.do("GET", "/Patient/p", "")
		jp := "Content-Type: application/json-patch+json"
		for _, c := range []struct {
			name, body, ct string
			status         int
			want           string
		}{
			{"invalid result", `[{"op":"replace","path":"/gender","value":"robot"}]`, jp, 422, "gender"},
			{"failed test op", `[{"op":"test","path":"/gender","value":"male"}]`, jp, 422, "test"},
			{"missing path", `[{"op":"replace","path":"/deceasedBoolean","value":true}]`, jp, 422, "deceasedBoolean"},
			{"changes the id", `[{"op":"replace","path":"/id","value":"q"}]`, jp, 422, "id"},
			{"malformed patch", `{"op":"replace"}`, jp, 400, ""},
			{"stale If-Match", `[{"op":"replace","path":"/gender","value":"male"}]`, jp + "\nIf-Match: W/\"1\"", 412, "version"},
			{"XML", `<x/>`, "Content-Type: application/xml-patch+xml", 415, ""},
		} {
			t.Run(c.name, func(t *testing.T) {
				headers := strings.Split(c.ct, "\n")
				diag, _ := outcome(t, s.do("PATCH", "/Patient/p", c.body, headers...), c.status)
				if !strings.Contains(diag, c.want) {
					t.Errorf("diagnostics %q do not mention %q", diag, c.want)
				}
				if after := s.do("GET", "/Patient/p", ""); string(after.Body) != string(before.Body) {
					t.Errorf("a failed patch changed the resource:\n%s\n%s", before.Body, after.Body)
				}
			})
		}
		outcome(t, s.do("PATCH", "/Patient/nobody", `[]`, jp), http.StatusNotFound)
		mustStatus(t, s.do("PUT", "/Patient/gone", `{"resourceType":"Patient","id":"gone"}`), http.StatusCreated)
		mustStatus(t, s.do("DELETE", "/Patient/gone", ""), http.StatusOK)
		outcome(t, s.do("PATCH", "/Patient/gone", `[]`, jp), http.StatusGone)
	})
	t.Run("InBundles", func(t *testing.T) {
		put2 := s.do("PUT", "/Patient/b", `{"resourceType":"Patient","id":"b","gender":"male"}`)
		mustStatus(t, put2, http.StatusCreated)
		jsonPatch := base64.StdEncoding.EncodeToString([]byte(`[{"op":"replace","path":"/gender","value":"other"}]`))
		tx := `{"resourceType":"Bundle","type":"transaction","entry":[
			{"resource":{"resourceType":"Binary","contentType":"application/json-patch+json","data":"` + jsonPatch + `"},"request":{"method":"PATCH","url":"Patient/b"}},
			{"resource":` + fhirpathReplaceGender + `,"request":{"method":"PATCH","url":"Patient?_id=p"}}]}`
		b := decodeBundle(t, s.do("POST", "", tx))
		for i, e := range b.Entry {
			if e.Response.Status != "200 OK" {
				t.Errorf("transaction entry %d: %+v", i, e.Response)
			}
		}
		if v := s.do("GET", "/Patient/b", "").JSON(t); v["gender"] != "other" {
			t.Errorf("Patient/b after the JSON Patch entry: %v", v["gender"])
		}
		if v := s.do("GET", "/Patient/p", "").JSON(t); v["gender"] != "female" {
			t.Errorf("Patient/p after the FHIRPath Patch entry: %v", v["gender"])
		}
		// A patch that fails fails the whole transaction.
		bad := base64.StdEncoding.EncodeToString([]byte(`[{"op":"replace","path":"/gender","value":"robot"}]`))
		tx = `{"resourceType":"Bundle","type":"transaction","entry":[
			{"resource":{"resourceType":"Patient","gender":"male"},"request":{"method":"POST","url":"Patient"}},
			{"resource":{"resourceType":"Binary","contentType":"application/json-patch+json","data":"` + bad + `"},"request":{"method":"PATCH","url":"Patient/b"}}]}`
		if diag, _ := outcome(t, s.do("POST", "", tx), http.StatusUnprocessableEntity); !strings.Contains(diag, "Bundle.entry[1]") {
			t.Errorf("diagnostics %q do not name the entry", diag)
		}
		// In a batch each PATCH stands alone.
		batch := `{"resourceType":"Bundle","type":"batch","entry":[
			{"resource":{"resourceType":"Binary","contentType":"application/json-patch+json","data":"` + bad + `"},"request":{"method":"PATCH","url":"Patient/b"}},
			{"resource":{"resourceType":"Binary","contentType":"application/json-patch+json","data":"` + jsonPatch + `"},"request":{"method":"PATCH","url":"Patient/p"}}]}`
		b = decodeBundle(t, s.do("POST", "", batch))
		if b.Entry[0].Response.Status != "422 Unprocessable Entity" || b.Entry[1].Response.Status != "200 OK" {
			t.Errorf("batch statuses %q and %q, want 422 and 200", b.Entry[0].Response.Status, b.Entry[1].Response.Status)
		}
	})
}
