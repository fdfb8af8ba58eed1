package search

import (
	"net/url"
	"strings"
	"testing"

	"github.com/fhirhub/fhirhub/fhir"
)

func parse(t *testing.T, r *Registry, typ, query string, strict bool) (*Query, error) {
	t.Helper()
	v, err := url.ParseQuery(query)
	if err != nil {
		t.Fatal(err)
	}
	return r.Parse(typ, v, strict)
}

func TestParse(t *testing.T) {
	r := testRegistry(t)
	t.Run("Token", func(t *testing.T) {
		q, err := parse(t, r, "Observation", "code=http://loinc.org|8302-2,|abc,sys|", false)
		if err != nil {
			t.Fatal(err)
		}
		vs := q.Clauses[0].Values
		if len(vs) != 3 || vs[0].System != "http://loinc.org" || vs[0].Code != "8302-2" || !vs[1].HasSystem || vs[1].System != "" || vs[2].Code != "" {
			t.Errorf("got %+v", vs)
		}
	})
	t.Run("EscapedComma", func(t *testing.T) {
		q, err := parse(t, r, "Patient", `name=a\,b`, false)
		if err != nil || len(q.Clauses[0].Values) != 1 || q.Clauses[0].Values[0].Str != "a,b" {
			t.Errorf("got %+v, %v", q, err)
		}
	})
	t.Run("RepeatedIsAnd", func(t *testing.T) {
		q, err := parse(t, r, "Patient", "name=a&name=b", false)
		if err != nil || len(q.Clauses) != 2 {
			t.Errorf("got %d clauses, %v; want 2", len(q.Clauses), err)
		}
	})
	t.Run("DatePrefix", func(t *testing.T) {
		q, err := parse(t, r, "Observation", "date=ge2015-03", false)
		if err != nil {
			t.Fatal(err)
		}
		v := q.Clauses[0].Values[0]
		if v.Prefix != PrefixGe || v.Start != 1425168000000 || v.End != 1427846400000 {
			t.Errorf("got %+v", v)
		}
	})
	t.Run("NumberPrecision", func(t *testing.T) {
		q, err := parse(t, r, "Observation", "value-quantity=lt5.40|http://unitsofmeasure.org|mmol/L", false)
		if err != nil {
			t.Fatal(err)
		}
		v := q.Clauses[0].Values[0]
		if v.Prefix != PrefixLt || v.Num != 5.4 || !near(v.Low, 5.395) || !near(v.High, 5.405) || v.Code != "mmol/L" {
			t.Errorf("got %+v", v)
		}
	})
	t.Run("Reference", func(t *testing.T) {
		q, err := parse(t, r, "Observation", "subject=Patient/123&performer:Practitioner=9&patient=http://other.org/fhir/Patient/1", false)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]Value{}
		for _, c := range q.Clauses {
			got[c.Param.Code] = c.Values[0]
		}
		if got["subject"].RefType != "Patient" || got["subject"].RefID != "123" || got["performer"].RefType != "Practitioner" || got["patient"].RefURL == "" {
			t.Errorf("got %+v", got)
		}
	})
	t.Run("Chain", func(t *testing.T) {
		q, err := parse(t, r, "Observation", "subject:Patient.organization.name=acme", false)
		if err != nil {
			t.Fatal(err)
		}
		c := q.Clauses[0]
		if len(c.Chain) != 1 || c.Chain[0].Type != "Patient" || len(c.Chain[0].Clause.Chain) != 1 || c.Chain[0].Clause.Chain[0].Type != "Organization" || c.Chain[0].Clause.Chain[0].Clause.Param.Code != "name" {
			t.Errorf("got %+v", c)
		}
	})
	t.Run("Has", func(t *testing.T) {
		q, err := parse(t, r, "Patient", "_has:Observation:patient:code=1234-5", false)
		if err != nil {
			t.Fatal(err)
		}
		h := q.Clauses[0].Has
		if h == nil || h.Type != "Observation" || h.Ref.Code != "patient" || h.Clause.Param.Code != "code" {
			t.Errorf("got %+v", q.Clauses[0])
		}
	})
	t.Run("Composite", func(t *testing.T) {
		q, err := parse(t, r, "Observation", "code-value-quantity=http://loinc.org|8480-6$gt100", false)
		if err != nil {
			t.Fatal(err)
		}
		v := q.Clauses[0].Values[0]
		if len(v.Parts) != 2 || v.Parts[0].Code != "8480-6" || v.Parts[1].Prefix != PrefixGt || v.Parts[1].Num != 100 {
			t.Errorf("got %+v", v)
		}
	})
	t.Run("Results", func(t *testing.T) {
		q, err := parse(t, r, "Observation", "_count=5&_sort=-date,code&_include=Observation:subject&_revinclude:iterate=Observation:subject&_total=accurate&_summary=count", false)
		if err != nil {
			t.Fatal(err)
		}
		if q.Count != 5 || len(q.Sort) != 2 || !q.Sort[0].Desc || q.Sort[1].Param.Code != "code" || len(q.Include) != 1 || !q.RevInclude[0].Iterate || q.Total != "accurate" || q.Summary != "count" {
			t.Errorf("got %+v", q)
		}
	})
	t.Run("LenientIgnores", func(t *testing.T) {
		q, err := parse(t, r, "Patient", "colour=blue&name:sounds-like=x&name=y", false)
		if err != nil {
			t.Fatal(err)
		}
		if len(q.Clauses) != 1 || len(q.Ignored) != 2 {
			t.Errorf("got %d clauses and %d ignored, want 1 and 2: %+v", len(q.Clauses), len(q.Ignored), q.Ignored)
		}
	})
	errs := []struct {
		name, typ, query, param string
		strictOnly              bool
	}{
		{"StrictUnknown", "Patient", "colour=blue", "colour", true},
		{"StrictModifier", "Patient", "name:sounds-like=x", "name:sounds-like", true},
		{"BadDate", "Observation", "date=2015-13-01", "date", false},
		{"BadPrefix", "Observation", "date=xx2015", "date", false},
		{"BadNumber", "Observation", "value-quantity=abc", "value-quantity", false},
		{"BadQuantityParts", "Observation", "value-quantity=5|mg", "value-quantity", false},
		{"BadMissing", "Patient", "name:missing=maybe", "name:missing", false},
		{"ChainNoTargetHasIt", "Observation", "subject.colour=x", "subject.colour", true},
		{"ChainNonReference", "Patient", "name.family=x", "name.family", false},
		{"WrongTargetType", "Observation", "subject:Medication=1", "subject:Medication", false},
		{"BadCount", "Patient", "_count=many", "_count", false},
		{"BadSort", "Patient", "_sort=colour", "_sort", false},
		{"BadInclude", "Observation", "_include=Observation:code", "_include", false},
		{"BadHas", "Patient", "_has:Observation:code:status=final", "_has:Observation:code:status", false},
		{"BadComposite", "Observation", "code-value-quantity=8480-6", "code-value-quantity", false},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(t, r, tt.typ, tt.query, true)
			fe := fhir.AsError(err)
			if fe == nil || fe.HTTPStatus() != 400 {
				t.Fatalf("got %v, want a 400", err)
			}
			if len(fe.Issues[0].Expression) == 0 || fe.Issues[0].Expression[0] != tt.param || !strings.Contains(fe.Error(), tt.param) {
				t.Errorf("error %q (at %v) does not name %s", fe.Error(), fe.Issues[0].Expression, tt.param)
			}
			if tt.strictOnly {
				if _, err := parse(t, r, tt.typ, tt.query, false); err != nil {
					t.Errorf("lenient: got %v, want the parameter ignored", err)
				}
			}
		})
	}
}

func TestParseNumber(t *testing.T) {
	tests := []struct {
		s         string
		n, lo, hi float64
	}{
		{"100", 100, 99.5, 100.5}, {"1.50", 1.5, 1.495, 1.505}, {"1e2", 100, 95, 105}, {"0.1", 0.1, 0.05, 0.15},
	}
	for _, tt := range tests {
		n, lo, hi, err := parseNumber(tt.s)
		if err != nil || n != tt.n || !near(lo, tt.lo) || !near(hi, tt.hi) {
			t.Errorf("parseNumber(%s) = %v [%v, %v) %v, want %v [%v, %v)", tt.s, n, lo, hi, err, tt.n, tt.lo, tt.hi)
		}
	}
}

func near(a, b float64) bool { d := a - b; return d < 1e-9 && d > -1e-9 }

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{"Zoë": "zoe", "MÜLLER  Hans": "muller hans", "Ab": "ab", "Ångström": "angstrom"} {
		if got := Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
}
