package rest_test

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
	"testing"
)

// seedClinic stores a small clinic: 2 organizations, 3 patients, encounters
// and observations referring to them.
func seedClinic(t *testing.T, s *testServer) {
	t.Helper()
	put := func(path, body string) {
		t.Helper()
		r := s.do("PUT", path, body)
		if r.Status != 200 && r.Status != 201 {
			t.Fatalf("PUT %s: %d %s", path, r.Status, r.Body)
		}
	}
	put("/Organization/acme", `{"resourceType":"Organization","id":"acme","name":"Acme Health"}`)
	put("/Organization/gh", `{"resourceType":"Organization","id":"gh","name":"General Hospital"}`)
	put("/Patient/p1", `{"resourceType":"Patient","id":"p1","name":[{"family":"Smith","given":["Anna"]}],"gender":"female","birthDate":"1980-05-01","managingOrganization":{"reference":"Organization/acme"},"identifier":[{"system":"urn:mrn","value":"1"}]}`)
	put("/Patient/p2", `{"resourceType":"Patient","id":"p2","name":[{"family":"Smythe","given":["Bob"]}],"gender":"male","birthDate":"1975-01-20","managingOrganization":{"reference":"Organization/gh"},"identifier":[{"system":"urn:mrn","value":"2"}]}`)
	put("/Patient/p3", `{"resourceType":"Patient","id":"p3","name":[{"family":"Müller","given":["Zoë"]}],"gender":"female","birthDate":"2001","identifier":[{"system":"urn:mrn","value":"3"}]}`)
	put("/Encounter/e1", `{"resourceType":"Encounter","id":"e1","status":"finished","class":{"code":"AMB"},"subject":{"reference":"Patient/p1"},"period":{"start":"2015-03-01T09:00:00Z","end":"2015-03-01T10:00:00Z"},"serviceProvider":{"reference":"Organization/acme"}}`)
	for i, o := range []struct {
		id, patient, code, date string
		value                   float64
	}{
		{"o1", "p1", "8302-2", "2015-03-01", 170}, {"o2", "p1", "29463-7", "2015-03-01", 65.5},
		{"o3", "p2", "8302-2", "2016-07-04", 182}, {"o4", "p2", "29463-7", "2014-02-02", 90},
		{"o5", "p3", "8302-2", "2020-01-01", 160},
	} {
		unit := "cm"
		if o.code == "29463-7" {
			unit = "kg"
		}
		put("/Observation/"+o.id, fmt.Sprintf(`{"resourceType":"Observation","id":%q,"status":"final","code":{"coding":[{"system":"http://loinc.org","code":%q}]},"subject":{"reference":"Patient/%s"},"effectiveDateTime":%q,"valueQuantity":{"value":%v,"unit":%q,"system":"http://unitsofmeasure.org","code":%q}%s}`,
			o.id, o.code, o.patient, o.date, o.value, unit, unit, map[bool]string{true: `,"encounter":{"reference":"Encounter/e1"}`}[i == 0]))
	}
}

// ids returns the ids of a searchset's entries of one mode, sorted.
func ids(t *testing.T, r response, mode string) []string {
	t.Helper()
	var out []string
	for _, e := range entries(t, r) {
		if e["search"].(map[string]any)["mode"] != mode {
			continue
		}
		out = append(out, e["resource"].(map[string]any)["id"].(string))
	}
	sort.Strings(out)
	return out
}

func TestSearch(t *testing.T) {
	s := newTestServer(t)
	seedClinic(t, s)
	tests := []struct {
		path string
		want string
	}{
		{"/Patient?name=smi", "[p1]"},
		{"/Patient?name=sm", "[p1 p2]"},
		{"/Patient?name=SMITH", "[p1]"},
		{"/Patient?name=muller", "[p3]"},
		{"/Patient?name:exact=Smith", "[p1]"},
		{"/Patient?name:contains=yth", "[p2]"},
		{"/Patient?gender=female", "[p1 p3]"},
		{"/Patient?gender=female&name=smith", "[p1]"},
		{"/Patient?birthdate=lt1980", "[p2]"},
		{"/Patient?birthdate=1980", "[p1]"},
		{"/Patient?birthdate=ge2001-06", "[p3]"},
		{"/Patient?identifier=urn:mrn|2", "[p2]"},
		{"/Patient?identifier=urn:mrn|1,urn:mrn|3", "[p1 p3]"},
		{"/Patient?organization=Organization/acme", "[p1]"},
		{"/Patient?organization:missing=true", "[p3]"},
		{"/Patient?organization.name=general", "[p2]"},
		{"/Patient?_has:Observation:patient:code=29463-7", "[p1 p2]"},
		{"/Patient?_id=p2,p3", "[p2 p3]"},
		{"/Observation?code=http://loinc.org|8302-2", "[o1 o3 o5]"},
		{"/Observation?code=8302-2&date=ge2016", "[o3 o5]"},
		{"/Observation?value-quantity=gt100|http://unitsofmeasure.org|cm", "[o1 o3 o5]"},
		{"/Observation?value-quantity=65.5", "[o2]"},
		{"/Observation?value-quantity=le90", "[o2 o4]"},
		{"/Observation?subject=Patient/p1", "[o1 o2]"},
		{"/Observation?patient=p2", "[o3 o4]"},
		{"/Observation?subject:Patient.name=smythe", "[o3 o4]"},
		{"/Observation?patient.organization.name=acme", "[o1 o2]"},
		{"/Observation?code-value-quantity=http://loinc.org|8302-2$gt175", "[o3]"},
		{"/Observation?code:not=8302-2", "[o2 o4]"},
		{"/Observation?encounter.service-provider.name=acme", "[o1]"},
		{"/Encounter?date=2015-03-01", "[e1]"},
		{"/Encounter?subject.gender=female", "[e1]"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			r := s.do("GET", tt.path, "")
			if got := fmt.Sprint(ids(t, r, "match")); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
			v := r.JSON(t)
			if v["type"] != "searchset" {
				t.Errorf("Bundle.type = %v, want searchset", v["type"])
			}
		})
	}
	t.Run("POSTSearch", func(t *testing.T) {
		r := s.do("POST", "/Patient/_search", "", "Content-Type: application/x-www-form-urlencoded")
		_ = r
		req := s.do("POST", "/Patient/_search?gender=female", "")
		if got := fmt.Sprint(ids(t, req, "match")); got != "[p1 p3]" {
			t.Errorf("got %s", got)
		}
	})
	t.Run("SystemSearch", func(t *testing.T) {
		r := s.do("GET", "?_type=Patient,Organization&_id=p1,acme", "")
		if got := fmt.Sprint(ids(t, r, "match")); got != "[acme p1]" {
			t.Errorf("got %s, want [acme p1]", got)
		}
	})
	t.Run("Include", func(t *testing.T) {
		r := s.do("GET", "/Observation?code=29463-7&_include=Observation:subject", "")
		if got := fmt.Sprint(ids(t, r, "match")); got != "[o2 o4]" {
			t.Errorf("matches %s", got)
		}
		if got := fmt.Sprint(ids(t, r, "include")); got != "[p1 p2]" {
			t.Errorf("included %s, want [p1 p2]", got)
		}
	})
	t.Run("IncludeIterate", func(t *testing.T) {
		r := s.do("GET", "/Observation?_id=o1&_include=Observation:subject&_include:iterate=Patient:organization", "")
		if got := fmt.Sprint(ids(t, r, "include")); got != "[acme p1]" {
			t.Errorf("included %s, want [acme p1]", got)
		}
	})
	t.Run("RevInclude", func(t *testing.T) {
		r := s.do("GET", "/Patient?_id=p1&_revinclude=Observation:subject", "")
		if got := fmt.Sprint(ids(t, r, "include")); got != "[o1 o2]" {
			t.Errorf("included %s, want [o1 o2]", got)
		}
	})
	t.Run("SummaryCount", func(t *testing.T) {
		v := s.do("GET", "/Observation?code=8302-2&_summary=count", "").JSON(t)
		if v["total"] != float64(3) || len(v["entry"].([]any)) != 0 {
			t.Errorf("total %v, %d entries; want 3 and none", v["total"], len(v["entry"].([]any)))
		}
	})
	t.Run("Elements", func(t *testing.T) {
		es := entries(t, s.do("GET", "/Patient?_id=p1&_elements=gender", ""))
		res := es[0]["resource"].(map[string]any)
		if res["gender"] == nil || res["name"] != nil {
			t.Errorf("_elements=gender gave %v", res)
		}
	})
	t.Run("Sort", func(t *testing.T) {
		var got []string
		for _, e := range entries(t, s.do("GET", "/Observation?_sort=-date,_id", "")) {
			got = append(got, e["resource"].(map[string]any)["id"].(string))
		}
		if fmt.Sprint(got) != "[o5 o3 o1 o2 o4]" {
			t.Errorf("got %v, want [o5 o3 o1 o2 o4]", got)
		}
	})
	t.Run("Paging", func(t *testing.T) {
		r := s.do("GET", "/Observation?_count=2&_sort=_id", "")
		var got []string
		next := ""
		for i := 0; i < 10; i++ {
			for _, e := range entries(t, r) {
				got = append(got, e["resource"].(map[string]any)["id"].(string))
			}
			if i == 0 {
				// A write between pages must not shift later pages.
				mustStatus(t, s.do("PUT", "/Observation/o0", `{"resourceType":"Observation","id":"o0","status":"final","code":{"text":"x"}}`), 201)
			}
			if next = link(t, r, "next"); next == "" {
				break
			}
			r = s.do("GET", next, "")
			if i == 0 {
				prev := link(t, r, "previous")
				if prev == "" {
					t.Fatal("the second page has no previous link")
				}
				back := s.do("GET", prev, "")
				if fmt.Sprint(ids(t, back, "match")) != "[o1 o2]" {
					t.Errorf("previous page = %v, want [o1 o2]", ids(t, back, "match"))
				}
			}
		}
		if fmt.Sprint(got) != "[o1 o2 o3 o4 o5]" {
			t.Errorf("paged %v, want [o1 o2 o3 o4 o5]", got)
		}
	})
	t.Run("TotalAccurate", func(t *testing.T) {
		v := s.do("GET", "/Observation?status=final&_count=1&_total=accurate", "").JSON(t)
		if v["total"] != float64(6) {
			t.Errorf("total %v, want 6", v["total"])
		}
	})
	t.Run("LenientUnknown", func(t *testing.T) {
		r := s.do("GET", "/Patient?gender=male&colour=blue", "")
		if got := fmt.Sprint(ids(t, r, "match")); got != "[p2]" {
			t.Errorf("got %s", got)
		}
		self := link(t, r, "self")
		if strings.Contains(self, "colour") || !strings.Contains(self, "gender=male") {
			t.Errorf("self link %s should keep gender and drop colour", self)
		}
		var outcome bool
		for _, e := range entries(t, r) {
			if e["search"].(map[string]any)["mode"] == "outcome" && strings.Contains(fmt.Sprint(e["resource"]), "colour") {
				outcome = true
			}
		}
		if !outcome {
			t.Error("no OperationOutcome entry reports the ignored parameter")
		}
	})
	t.Run("StrictUnknown", func(t *testing.T) {
		_, expr := outcome(t, s.do("GET", "/Patient?gender=male&colour=blue", "", "Prefer: handling=strict"), 400)
		if expr != "colour" {
			t.Errorf("expression %q, want colour", expr)
		}
	})
	for _, bad := range []string{"birthdate=1980-13", "value-quantity=abc", "birthdate=xx1980", "_count=lots", "_sort=colour"} {
		t.Run("Malformed/"+bad, func(t *testing.T) {
			param := strings.SplitN(bad, "=", 2)[0]
			typ := "Patient"
			if strings.HasPrefix(bad, "value") {
				typ = "Observation"
			}
			diag, _ := outcome(t, s.do("GET", "/"+typ+"?"+bad, ""), 400)
			if !strings.Contains(diag, param) {
				t.Errorf("diagnostics %q do not name %s", diag, param)
			}
		})
	}
	t.Run("ConditionalCreateFullSearch", func(t *testing.T) {
		crit := url.Values{"family": {"Smith"}, "birthdate": {"1980-05-01"}}.Encode()
		r := s.do("POST", "/Patient", `{"resourceType":"Patient","name":[{"family":"Smith"}],"birthDate":"1980-05-01"}`, "If-None-Exist: "+crit)
		mustStatus(t, r, 200)
		if r.JSON(t)["id"] != "p1" {
			t.Errorf("matched %v, want p1", r.JSON(t)["id"])
		}
	})
	t.Run("InValueSet", func(t *testing.T) {
		mustStatus(t, s.do("PUT", "/ValueSet/height", `{"resourceType":"ValueSet","id":"height","url":"http://example.org/vs/height","status":"active","compose":{"include":[{"system":"http://loinc.org","concept":[{"code":"8302-2"},{"code":"8306-3"}]}]}}`), 201)
		mustStatus(t, s.do("PUT", "/ValueSet/byfilter", `{"resourceType":"ValueSet","id":"byfilter","url":"http://example.org/vs/filter","status":"active","compose":{"include":[{"system":"http://loinc.org","filter":[{"property":"class","op":"=","value":"x"}]}]}}`), 201)
		for path, want := range map[string]string{
			"/Observation?code:in=http://example.org/vs/height":         "[o1 o3 o5]",
			"/Observation?code:in=ValueSet/height":                      "[o1 o3 o5]",
			"/Observation?code:not-in=http://example.org/vs/height":     "[o0 o2 o4]",
			"/Patient?_has:Observation:patient:code:in=ValueSet/height": "[p1 p2 p3]",
		} {
			if got := fmt.Sprint(ids(t, s.do("GET", path, ""), "match")); got != want {
				t.Errorf("%s: got %s, want %s", path, got, want)
			}
		}
		outcome(t, s.do("GET", "/Observation?code:in=http://example.org/vs/none", ""), 400)
		outcome(t, s.do("GET", "/Observation?code:in=http://example.org/vs/filter", ""), 400)
	})
	t.Run("Compartment", func(t *testing.T) {
		for path, want := range map[string]string{
			"/Patient/p1/Observation":             "[o1 o2]",
			"/Patient/p1/Observation?code=8302-2": "[o1]",
			"/Patient/p2/Encounter":               "[]",
			"/Patient/p1/Encounter":               "[e1]",
			"/Encounter/e1/Observation":           "[o1]",
			"/Patient/nobody/Observation":         "[]",
			"/Patient/p1/Observation?_sort=-date": "[o1 o2]",
		} {
			if got := fmt.Sprint(ids(t, s.do("GET", path, ""), "match")); got != want {
				t.Errorf("%s: got %s, want %s", path, got, want)
			}
		}
		outcome(t, s.do("GET", "/Patient/p1/Organization", ""), 404)
		outcome(t, s.do("GET", "/Observation/o1/Patient", ""), 404)
	})
	t.Run("DeletedNotFound", func(t *testing.T) {
		mustStatus(t, s.do("DELETE", "/Patient/p3", ""), 200)
		if got := fmt.Sprint(ids(t, s.do("GET", "/Patient?gender=female", ""), "match")); got != "[p1]" {
			t.Errorf("got %s, want [p1]", got)
		}
	})
}
