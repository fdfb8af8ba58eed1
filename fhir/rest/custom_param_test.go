package rest_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestCustomSearchParameter(t *testing.T) {
	s := newTestServer(t)
	eye := func(id, colour string) string {
		return fmt.Sprintf(`{"resourceType":"Patient","id":%q,"extension":[{"url":"http://example.org/eye-colour","valueString":%q}]}`, id, colour)
	}
	mustStatus(t, s.do("PUT", "/Patient/old1", eye("old1", "blue")), 201)
	mustStatus(t, s.do("PUT", "/Patient/old2", eye("old2", "brown")), 201)

	outcome(t, s.do("GET", "/Patient?eye-colour=blue", "", "Prefer: handling=strict"), 400)

	t.Run("InvalidRefused", func(t *testing.T) {
		_, expr := outcome(t, s.do("POST", "/SearchParameter", `{"resourceType":"SearchParameter","url":"http://example.org/sp/bad","name":"bad","status":"active","description":"x","code":"bad","base":["Patient"],"type":"string","expression":"Patient.name.where("}`), 422)
		if expr != "SearchParameter.expression" {
			t.Errorf("expression %q, want SearchParameter.expression", expr)
		}
		outcome(t, s.do("POST", "/SearchParameter", `{"resourceType":"SearchParameter","url":"http://example.org/sp/x","name":"x","status":"active","description":"x","code":"name","base":["Patient"],"type":"string","expression":"Patient.name"}`), 422)
	})

	r := s.do("PUT", "/SearchParameter/eye-colour", `{"resourceType":"SearchParameter","id":"eye-colour","url":"http://example.org/sp/eye-colour","name":"EyeColour","status":"active","description":"Eye colour","code":"eye-colour","base":["Patient"],"type":"string","expression":"Patient.extension('http://example.org/eye-colour').value"}`)
	mustStatus(t, r, 201)

	t.Run("NewWritesAtOnce", func(t *testing.T) {
		mustStatus(t, s.do("PUT", "/Patient/new1", eye("new1", "blue")), 201)
		got := fmt.Sprint(ids(t, s.do("GET", "/Patient?eye-colour=blue", "", "Prefer: handling=strict"), "match"))
		if got != "[new1]" {
			t.Errorf("before $reindex: got %s, want [new1] (older resources are not indexed yet)", got)
		}
	})
	t.Run("Reindex", func(t *testing.T) {
		r := s.do("POST", "/Patient/$reindex", "")
		mustStatus(t, r, 202)
		status := r.Header.Get("Content-Location")
		if !strings.Contains(status, "/$reindex-status/") {
			t.Fatalf("Content-Location = %q", status)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			v := s.do("GET", status, "").JSON(t)
			params := map[string]any{}
			for _, p := range v["parameter"].([]any) {
				p := p.(map[string]any)
				for k, x := range p {
					if k != "name" {
						params[p["name"].(string)] = x
					}
				}
			}
			if params["status"] == "completed" {
				if params["processed"] != float64(3) || params["total"] != float64(3) || params["failed"] != float64(0) {
					t.Errorf("job status %v, want 3 of 3 processed, none failed", params)
				}
				break
			}
			if params["status"] != "running" || time.Now().After(deadline) {
				t.Fatalf("job status %v", params)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if got := fmt.Sprint(ids(t, s.do("GET", "/Patient?eye-colour=blue", ""), "match")); got != "[new1 old1]" {
			t.Errorf("after $reindex: got %s, want [new1 old1]", got)
		}
		if got := fmt.Sprint(ids(t, s.do("GET", "/Patient?eye-colour:exact=brown", ""), "match")); got != "[old2]" {
			t.Errorf("got %s, want [old2]", got)
		}
		outcome(t, s.do("GET", "/$reindex-status/nope", ""), 404)
	})
	t.Run("InCapabilityStatement", func(t *testing.T) {
		if b := s.do("GET", "/metadata", "").Body; !strings.Contains(string(b), `"name":"eye-colour"`) {
			t.Error("the CapabilityStatement does not list the custom parameter")
		}
	})
	t.Run("Delete", func(t *testing.T) {
		mustStatus(t, s.do("DELETE", "/SearchParameter/eye-colour", ""), 200)
		outcome(t, s.do("GET", "/Patient?eye-colour=blue", "", "Prefer: handling=strict"), 400)
		if b := s.do("GET", "/metadata", "").Body; strings.Contains(string(b), `"name":"eye-colour"`) {
			t.Error("the CapabilityStatement still lists the deleted parameter")
		}
	})
}
