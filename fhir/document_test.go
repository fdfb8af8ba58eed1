package fhir

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestParseDocumentRoundTrip(t *testing.T) {
	body := `{
  "resourceType": "Patient",
  "id": "p1",
  "meta": {"versionId": "99", "profile": ["http://example.org/p"], "tag": [{"code": "x"}]},
  "birthDate": "1970-01-01",
  "_birthDate": {"extension": [{"url": "http://example.org/ext", "valueString": "approx"}]},
  "extension": [{"url": "http://example.org/unknown", "valueDecimal": 1.50}],
  "active": true
}`
	d, err := ParseDocument([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if d.Type != "Patient" || d.ID != "p1" {
		t.Fatalf("got type %q id %q, want Patient p1", d.Type, d.ID)
	}
	out := d.Encode("p1", "3", "2026-01-02T03:04:05.678Z")
	if !strings.Contains(string(out), `"valueDecimal":1.50`) {
		t.Errorf("decimal precision lost: %s", out)
	}
	var got, want map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("encoded output is not JSON: %v\n%s", err, out)
	}
	_ = json.Unmarshal([]byte(body), &want)
	want["meta"] = map[string]any{"versionId": "3", "lastUpdated": "2026-01-02T03:04:05.678Z",
		"profile": []any{"http://example.org/p"}, "tag": []any{map[string]any{"code": "x"}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip:\ngot  %v\nwant %v", got, want)
	}
	if !strings.HasPrefix(string(out), `{"resourceType":"Patient","id":"p1","meta":{"versionId":"3"`) {
		t.Errorf("resourceType, id and meta should lead: %s", out)
	}
}

func TestParseDocumentErrors(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"Syntax", "{\n  \"resourceType\": \"Patient\",\n  \"active\": tru\n}", "line 3"},
		{"Truncated", `{"resourceType": "Patient"`, "unexpected end"},
		{"Empty", ``, "no body"},
		{"NotObject", `[1,2]`, "JSON object"},
		{"NoResourceType", `{"id":"x"}`, "no resourceType"},
		{"ResourceTypeNumber", `{"resourceType":3}`, "must be a string"},
		{"IDNumber", `{"resourceType":"Patient","id":3}`, "id must be a string"},
		{"Trailing", `{"resourceType":"Patient"} {}`, "after the resource"},
		{"DuplicateMember", `{"resourceType":"Patient","active":true,"active":false}`, "appears twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseDocument([]byte(tt.body))
			if err == nil {
				t.Fatalf("got no error, want one containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %q, want it to contain %q", err.Error(), tt.want)
			}
			if s := ErrorStatus(err); s != 400 {
				t.Errorf("got status %d, want 400", s)
			}
		})
	}
}

func FuzzParseDocument(f *testing.F) {
	f.Add([]byte(`{"resourceType":"Patient","id":"a","name":[{"family":"X"}]}`))
	f.Add([]byte(`{"resourceType":"Observation","valueQuantity":{"value":1.0}}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, body []byte) {
		d, err := ParseDocument(body)
		if err != nil {
			if AsError(err) == nil {
				t.Fatalf("error is not a *fhir.Error: %v", err)
			}
			return
		}
		out := d.Encode("x", "1", "2020-01-01T00:00:00.000Z")
		if !json.Valid(out) {
			t.Fatalf("Encode produced invalid JSON from %q: %s", body, out)
		}
	})
}
