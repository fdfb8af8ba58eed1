package search

import (
	"math"
	"testing"
	"time"
)

type mapResolver struct {
	res map[string][]Entry // "Type/id" → entries
}

func (m mapResolver) Entries(typ, id string) ([]Entry, bool) {
	es, ok := m.res[typ+"/"+id]
	return es, ok
}

func (m mapResolver) Referrers(typ string, ref *Param, targetType, targetID string) [][]Entry {
	var out [][]Entry
	for k, es := range m.res {
		if len(k) <= len(typ) || k[:len(typ)+1] != typ+"/" {
			continue
		}
		for _, e := range es {
			if e.Param == ref.Code && e.RefType == targetType && e.RefID == targetID {
				out = append(out, es)
				break
			}
		}
	}
	return out
}

func ms(s string) int64 {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UnixMilli()
}

func TestMatch(t *testing.T) {
	r := testRegistry(t)
	Now = func() time.Time { return time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC) }
	defer func() { Now = time.Now }()
	obs := []Entry{
		{Param: "code", Type: TypeToken, System: "http://loinc.org", Code: "8302-2", Text: "body height"},
		{Param: "status", Type: TypeToken, Code: "final"},
		{Param: "subject", Type: TypeReference, RefType: "Patient", RefID: "p1"},
		{Param: "patient", Type: TypeReference, RefType: "Patient", RefID: "p1"},
		{Param: "date", Type: TypeDate, Start: ms("2015-03-04T10:00:00Z"), End: ms("2015-03-04T10:00:01Z")},
		{Param: "value-quantity", Type: TypeQuantity, Low: 170.5, High: 170.5, System: "http://unitsofmeasure.org", Code: "cm", Exact: "cm"},
		{Param: "code-value-quantity", Type: TypeComposite, Comp: 1, Group: 0, System: "http://loinc.org", Code: "8302-2"},
		{Param: "code-value-quantity", Type: TypeComposite, Comp: 2, Group: 0, Low: 170.5, High: 170.5, System: "http://unitsofmeasure.org", Code: "cm"},
		{Param: "identifier", Type: TypeToken, System: "urn:sys", Code: "A1", IDType: "http://terminology.hl7.org/CodeSystem/v2-0203|MR"},
	}
	resolver := mapResolver{res: map[string][]Entry{
		"Patient/p1":       {{Param: "name", Type: TypeString, Str: "chalmers", Exact: "Chalmers"}, {Param: "organization", Type: TypeReference, RefType: "Organization", RefID: "o1"}},
		"Organization/o1":  {{Param: "name", Type: TypeString, Str: "acme health", Exact: "ACME Health"}},
		"Observation/obs1": obs,
	}}
	tests := []struct {
		query string
		want  bool
	}{
		{"code=http://loinc.org|8302-2", true},
		{"code=8302-2", true},
		{"code=|8302-2", false},
		{"code=http://loinc.org|", true},
		{"code=http://snomed.info/sct|8302-2", false},
		{"code=1,8302-2", true},
		{"code:not=8302-2", false},
		{"code:not=1234", true},
		{"code:text=body", true},
		{"code:text=height", false},
		{"status=final&code=1", false},
		{"date=2015", true},
		{"date=2015-03-04", true},
		{"date=2015-03-05", false},
		{"date=ge2015-03-04", true},
		{"date=gt2015-03-04", false},
		{"date=gt2015-03-03", true},
		{"date=lt2015-03-04", false},
		{"date=le2015-03-04", true},
		{"date=ne2015-03-04", false},
		{"date=sa2015-03-03", true},
		{"date=eb2015-03-05", true},
		{"date=eb2015-03-04", false},
		{"value-quantity=170.5", true},
		{"value-quantity=170", false},
		{"value-quantity=ap170", true},
		{"value-quantity=gt170|http://unitsofmeasure.org|cm", true},
		{"value-quantity=gt170|http://unitsofmeasure.org|mm", false},
		{"value-quantity=lt171", true},
		{"value-quantity=ge170.5", true},
		{"value-quantity=le170.4", false},
		{"subject=Patient/p1", true},
		{"subject=p1", true},
		{"subject:Patient=p1", true},
		{"subject=Patient/p2", false},
		{"subject:missing=false", true},
		{"subject:missing=true", false},
		{"encounter:missing=true", true},
		{"code-value-quantity=http://loinc.org|8302-2$gt170", true},
		{"code-value-quantity=http://loinc.org|8302-2$lt170", false},
		{"identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|A1", true},
		{"identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|SS|A1", false},
		{"subject:Patient.name=chal", true},
		{"subject:Patient.name=smith", false},
		{"patient.organization.name=acme", true},
		{"patient.organization.name:exact=ACME Health", true},
		{"patient.organization.name:exact=acme health", false},
		{"patient.organization.name:contains=health", true},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			q, err := parse(t, r, "Observation", tt.query, true)
			if err != nil {
				t.Fatal(err)
			}
			if got := Match(q.Clauses, "Observation", "obs1", obs, resolver); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("Has", func(t *testing.T) {
		for query, want := range map[string]bool{
			"_has:Observation:patient:code=8302-2":  true,
			"_has:Observation:patient:code=9999":    false,
			"_has:Observation:subject:status=final": true,
		} {
			q, err := parse(t, r, "Patient", query, true)
			if err != nil {
				t.Fatal(err)
			}
			if got := Match(q.Clauses, "Patient", "p1", resolver.res["Patient/p1"], resolver); got != want {
				t.Errorf("%s: got %v, want %v", query, got, want)
			}
		}
	})
	t.Run("OpenPeriod", func(t *testing.T) {
		es := []Entry{{Param: "date", Type: TypeDate, Start: ms("2020-01-01T00:00:00Z"), End: math.MaxInt64}}
		for query, want := range map[string]bool{"date=gt2030": true, "date=lt2019": false, "date=2020": false, "date=ge2019": true} {
			q, _ := parse(t, r, "Encounter", query, true)
			if got := Match(q.Clauses, "Encounter", "e", es, nil); got != want {
				t.Errorf("%s on an open period: got %v, want %v", query, got, want)
			}
		}
	})
	t.Run("Near", func(t *testing.T) {
		es := []Entry{{Param: "near", Type: TypeSpecial, Low: 42.256500, High: -83.694710}}
		for query, want := range map[string]bool{"near=42.2565|-83.6947|1|km": true, "near=42.3|-83.6947|1|km": false, "near=42.3|-83.6947|10|km": true} {
			q, err := parse(t, r, "Location", query, true)
			if err != nil {
				t.Fatal(err)
			}
			if got := Match(q.Clauses, "Location", "l", es, nil); got != want {
				t.Errorf("%s: got %v, want %v", query, got, want)
			}
		}
	})
}
