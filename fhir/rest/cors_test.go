package rest_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/fhirhub/fhirhub/fhir/rest"
)

// TestCORS: a browser app of another origin gets its preflight answered
// without a token, and its requests carry the CORS headers; an origin not
// allowed gets none.
func TestCORS(t *testing.T) {
	s, _ := authServer(t)
	t.Run("Preflight", func(t *testing.T) {
		r := s.do("OPTIONS", "/Observation?patient=pa", "", "Origin: https://app.example", "Access-Control-Request-Method: GET",
			"Access-Control-Request-Headers: authorization")
		if r.Status != http.StatusNoContent {
			t.Fatalf("preflight: got %d %s, want 204", r.Status, r.Body)
		}
		for k, want := range map[string]string{"Access-Control-Allow-Origin": "*", "Access-Control-Max-Age": "86400"} {
			if got := r.Header.Get(k); got != want {
				t.Errorf("%s: got %q, want %q", k, got, want)
			}
		}
		if got := r.Header.Get("Access-Control-Allow-Headers"); !listHas(got, "authorization") {
			t.Errorf("Access-Control-Allow-Headers %q lacks Authorization", got)
		}
	})
	t.Run("Request", func(t *testing.T) {
		r := s.as("pa-v1-secret", "GET", "/Patient/pa", "", "Origin: https://app.example")
		if r.Status != http.StatusOK {
			t.Fatalf("GET: got %d %s, want 200", r.Status, r.Body)
		}
		if got := r.Header.Get("Access-Control-Allow-Origin"); got != "*" {
			t.Errorf("Access-Control-Allow-Origin: got %q, want *", got)
		}
		if got := r.Header.Get("Access-Control-Expose-Headers"); !listHas(got, "location") || !listHas(got, "etag") {
			t.Errorf("Access-Control-Expose-Headers %q lacks Location or ETag", got)
		}
	})
	t.Run("NoTokenStill401", func(t *testing.T) {
		r := s.do("GET", "/Patient/pa", "", "Origin: https://app.example")
		if r.Status != http.StatusUnauthorized || r.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("GET without a token: got %d with Access-Control-Allow-Origin %q, want 401 with *", r.Status, r.Header.Get("Access-Control-Allow-Origin"))
		}
	})
	t.Run("CapabilityStatement", func(t *testing.T) {
		rest0 := s.do("GET", "/metadata", "").JSON(t)["rest"].([]any)[0].(map[string]any)
		sec, _ := rest0["security"].(map[string]any)
		if sec["cors"] != true {
			t.Errorf("rest.security.cors: got %v, want true", sec["cors"])
		}
	})
	t.Run("OriginNotAllowed", func(t *testing.T) {
		s := newTestServer(t, func(api *rest.Server) { api.CORSOrigins = []string{"https://ehr.example"} })
		r := s.do("OPTIONS", "/Patient", "", "Origin: https://evil.example", "Access-Control-Request-Method: GET")
		if got := r.Header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("preflight from another origin: Access-Control-Allow-Origin %q, want none", got)
		}
		r = s.do("OPTIONS", "/Patient", "", "Origin: https://ehr.example", "Access-Control-Request-Method: GET")
		if got := r.Header.Get("Access-Control-Allow-Origin"); got != "https://ehr.example" {
			t.Errorf("preflight from the allowed origin: Access-Control-Allow-Origin %q, want https://ehr.example", got)
		}
	})
}

func listHas(list, name string) bool {
	for f := range strings.SplitSeq(list, ",") {
		if strings.EqualFold(strings.TrimSpace(f), name) {
			return true
		}
	}
	return false
}
