package search

import (
	"net/url"
	"testing"

	"github.com/fhirhub/fhirhub/fhir"
)

// FuzzSearchParams: any query string either parses or fails with a 400
// *fhir.Error; it never panics, and a parsed query can be matched.
func FuzzSearchParams(f *testing.F) {
	for _, seed := range []string{
		"name=smith&birthdate=ge1970", "code=http://loinc.org|8302-2,1234", "subject:Patient.name=x",
		"_has:Observation:patient:code=1", "value-quantity=lt5.4|http://unitsofmeasure.org|mg",
		"code-value-quantity=a|b$gt5", "_sort=-date,_id&_count=5&_include=Observation:subject",
		"near=42|-83|10|km", "identifier:of-type=a|b|c", `name=a\,b`, "date=eb2015-03-04T10:00:00Z",
	} {
		f.Add("Observation", seed)
		f.Add("Patient", seed)
	}
	r, err := NewRegistry([]string{"Patient", "Observation", "Organization", "Location", "Encounter"})
	if err != nil {
		f.Fatal(err)
	}
	es := []fhir.IndexEntry{{Param: "code", Type: fhir.TypeToken, System: "s", Code: "c"}, {Param: "name", Type: fhir.TypeString, Str: "ab"}}
	f.Fuzz(func(t *testing.T, typ, query string) {
		if typ != "Patient" && typ != "Observation" {
			return
		}
		params, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		for _, strict := range []bool{true, false} {
			q, err := r.Parse(typ, params, strict)
			if err != nil {
				if fe := fhir.AsError(err); fe == nil || fe.HTTPStatus() != 400 {
					t.Fatalf("%s?%s: got %v, want a 400 *fhir.Error", typ, query, err)
				}
				continue
			}
			Match(q.Clauses, typ, "x", es, nil)
		}
	})
}
