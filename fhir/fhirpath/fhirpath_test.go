package fhirpath

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func mustJSON(t testing.TB, s string) map[string]any {
	t.Helper()
	v, err := decodeJSON([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return v.(map[string]any)
}

const observationJSON = `{
  "resourceType": "Observation", "id": "o1", "status": "final",
  "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
  "subject": {"reference": "Patient/p1"},
  "performer": [{"reference": "Practitioner/x"}, {"reference": "http://example.org/fhir/Patient/p2/_history/3"}, {"reference": "#org"}],
  "contained": [{"resourceType": "Organization", "id": "org", "name": "Acme"}],
  "effectiveDateTime": "2021-03-04T10:20:30.250+02:00",
  "issued": "2021-03-04T10:20:30Z",
  "valueQuantity": {"value": 185.50, "unit": "lbs", "system": "http://unitsofmeasure.org", "code": "[lb_av]"},
  "component": [
    {"code": {"text": "a"}, "valueQuantity": {"value": 1, "code": "mg", "system": "http://unitsofmeasure.org"}},
    {"code": {"text": "b"}, "valueString": "hello"},
    {"code": {"text": "c"}, "valuePeriod": {"start": "2020"}}
  ],
  "extension": [{"url": "http://example.org/age", "valueAge": {"value": 41, "code": "a", "system": "http://unitsofmeasure.org"}}]
}`

const patientJSON = `{
  "resourceType": "Patient", "id": "p1", "active": true, "gender": "male",
  "birthDate": "1974-12-25",
  "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime", "valueDateTime": "1974-12-25T14:35:45-05:00"}]},
  "name": [
    {"use": "official", "family": "Chalmers", "given": ["Peter", "James"]},
    {"use": "usual", "given": ["Jim"], "_given": [{"extension": [{"url": "http://example.org/x", "valueString": "y"}]}]},
    {"given": [null, "Pat"], "_given": [{"extension": [{"url": "http://example.org/x", "valueString": "z"}]}, null]}
  ],
  "deceasedBoolean": false
}`

const questionnaireJSON = `{
  "resourceType": "Questionnaire", "id": "q", "status": "active",
  "item": [{"linkId": "1", "type": "group", "item": [{"linkId": "1.1", "type": "string", "item": [{"linkId": "1.1.1", "type": "string"}]}]}]
}`

func TestEvaluate(t *testing.T) {
	obs := mustJSON(t, observationJSON)
	pat := mustJSON(t, patientJSON)
	q := mustJSON(t, questionnaireJSON)
	tests := []struct {
		name     string
		resource map[string]any
		expr     string
		want     string // the items, formatted and joined with "|"
		types    string // their type names, joined with "|" (checked when set)
	}{
		{"Choice/Navigate", obs, "Observation.value", "185.50 '[lb_av]'", "Quantity"},
		{"Choice/Unit", obs, "Observation.value.unit", "lbs", "string"},
		{"Choice/OfType", obs, "Observation.value.ofType(Quantity).code", "[lb_av]", "code"},
		{"Choice/AsOperator", obs, "(Observation.value as Quantity).value", "185.50", "decimal"},
		{"Choice/AsFunction", obs, "Observation.value.as(Quantity).system", "http://unitsofmeasure.org", "uri"},
		{"Choice/IsPeriod", obs, "Observation.value.is(Period)", "false", ""},
		{"Choice/IsQuantity", obs, "Observation.value is Quantity", "true", ""},
		{"Choice/AsFiltersCollection", obs, "(Observation.component.value as Quantity).code", "mg", ""},
		{"Choice/ComponentTypes", obs, "Observation.component.value", `1 'mg'|hello|{"start":"2020"}`, "Quantity|string|Period"},
		{"Choice/QuantityCompare", obs, "Observation.value > 80 'kg'", "true", ""},
		{"Resolve/IsPatient", obs, "Observation.subject.where(resolve() is Patient).reference", "Patient/p1", ""},
		{"Resolve/IsNotGroup", obs, "Observation.subject.where(resolve() is Group)", "", ""},
		{"Resolve/AbsoluteAndHistory", obs, "Observation.performer.where(resolve() is Patient).reference", "http://example.org/fhir/Patient/p2/_history/3", ""},
		{"Resolve/Contained", obs, "Observation.performer.resolve().ofType(Organization).name", "Acme", ""},
		{"Resolve/Types", obs, "Observation.performer.resolve().type().name", "Practitioner|Patient|Organization", ""},
		{"Extension/Value", obs, "Observation.extension('http://example.org/age').value", "41 'a'", "Age"},
		{"Extension/ValueIsQuantity", obs, "Observation.extension('http://example.org/age').value is Quantity", "true", ""},
		{"Extension/Primitive", pat, "Patient.birthDate.extension('http://hl7.org/fhir/StructureDefinition/patient-birthTime').value", "@1974-12-25T14:35:45-05:00", "dateTime"},
		{"Extension/Missing", pat, "Patient.birthDate.extension('http://example.org/none').exists()", "false", ""},
		{"Extension/ExtOnlyPrimitive", pat, "Patient.name[2].given.select($this.hasValue())", "false|true", ""},
		{"Extension/ExtOnlyPrimitiveCount", pat, "Patient.name.given.count()", "5", ""},
		{"Extension/OnArrayPrimitive", pat, "Patient.name.given.extension.value", "y|z", ""},
		{"Date/Equal", pat, "Patient.birthDate = @1974-12-25", "true", ""},
		{"Date/PrecisionDiffers", pat, "Patient.birthDate = @1974-12-25T10:00", "", ""},
		{"Date/PrecisionDiffersButOrdered", pat, "Patient.birthDate < @1975-01", "true", ""},
		{"Date/SameYearDifferentPrecision", pat, "Patient.birthDate > @1974", "", ""},
		{"Date/Zones", obs, "Observation.effective = @2021-03-04T08:20:30.250Z", "true", ""},
		{"Date/InstantIsDateTime", obs, "Observation.issued > @2021-03-04T10:00:00Z", "true", ""},
		{"Date/Equivalent", pat, "Patient.birthDate ~ @1974-12-25T10:00", "false", ""},
		{"Primitive/IsDate", pat, "Patient.birthDate is date", "true", ""},
		{"Primitive/IsSystemDate", pat, "Patient.birthDate is System.Date", "false", ""},
		{"Primitive/OfTypeCode", pat, "Patient.gender.ofType(code)", "male", "code"},
		{"Primitive/OfTypeString", pat, "Patient.gender.ofType(string)", "", ""},
		{"Primitive/IsString", pat, "Patient.gender.is(string)", "true", ""},
		{"Primitive/OfTypeBoolean", pat, "Patient.children().ofType(boolean)", "true|false", "boolean|boolean"},
		{"Primitive/Namespaced", pat, "Patient.active.is(FHIR.boolean) and Patient.active.is(System.Boolean).not()", "true", ""},
		{"Union/Dedupe", pat, "(Patient.name.given | Patient.name.given).count()", "5", ""},
		{"Union/Combine", pat, "Patient.name.given.combine(Patient.name.given).count()", "10", ""},
		{"Union/Literals", nil, "(1 | 2 | 2 | 1.0)", "1|2", ""},
		{"Where/This", pat, "Patient.name.given.where($this = 'Jim')", "Jim", ""},
		{"Where/Index", pat, "Patient.name.where($index = 1).use", "usual", ""},
		{"Where/Nested", pat, "Patient.name.where(given.where($this.startsWith('P')).exists()).use", "official", ""},
		{"ContentReference", q, "Questionnaire.item.item.item.linkId", "1.1.1", "string"},
		{"Backbone/Type", q, "Questionnaire.item.type().name", "Questionnaire.item", ""},
		{"Repeat", q, "Questionnaire.repeat(item).linkId", "1|1.1|1.1.1", ""},
		{"Descendants", q, "Questionnaire.descendants().linkId", "1|1.1|1.1.1", ""},
		{"OtherType/Empty", pat, "Person.gender | Patient.gender", "male", ""},
		{"Resource/Base", pat, "Resource.id", "p1", "id"},
		{"Variables/Resource", obs, "Observation.component.where(code.text = %resource.component.first().code.text).value.code", "mg", ""},
		{"Variables/Ucum", nil, "%ucum", "http://unitsofmeasure.org", ""},
		{"Decimal/Exact", nil, "0.1 + 0.2 = 0.3", "true", ""},
		{"Decimal/Scale", nil, "1.10 + 2.2", "3.30", ""},
		{"Decimal/Divide", nil, "1 / 3", "0.33333333", ""},
		{"Quantity/Convert", nil, "1 'kg' = 1000 'g'", "true", ""},
		{"Quantity/Calendar", nil, "1 year = 1 'a'", "", ""},
		{"Date/Arithmetic", nil, "@2020-01-31 + 1 month", "@2020-02-29", ""},
		{"Iif/Lazy", nil, "iif(true, 'a', (1|2).single())", "a", ""},
		{"Boolean/ThreeValued", nil, "({} and false) | ({} or true)", "false|true", ""},
	}
	now := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x, err := Compile(tc.expr)
			if err != nil {
				t.Fatal(err)
			}
			var res any
			if tc.resource != nil {
				res = tc.resource
			}
			got, err := x.Evaluate(res, &Options{Now: now})
			if err != nil {
				t.Fatal(err)
			}
			var vals, types []string
			for _, it := range got {
				vals = append(vals, formatItem(it))
				types = append(types, it.TypeName())
			}
			if g := strings.Join(vals, "|"); g != tc.want {
				t.Errorf("got %s, want %s", g, tc.want)
			}
			if tc.types != "" {
				if g := strings.Join(types, "|"); g != tc.types {
					t.Errorf("got types %s, want %s", g, tc.types)
				}
			}
		})
	}
}

func TestEvaluateErrors(t *testing.T) {
	pat := mustJSON(t, patientJSON)
	tests := []struct{ name, expr string }{
		{"SingletonNeeded", "Patient.name.given + 'x'"},
		{"CompareTypes", "1 < 'a'"},
		{"AsFunctionOnMany", "Patient.name.as(HumanName)"},
		{"StringFunctionOnNonString", "Patient.name.startsWith('a')"},
		{"NotOnMany", "Patient.name.given.not()"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x, err := Compile(tc.expr)
			if err != nil {
				t.Fatal(err)
			}
			got, err := x.Evaluate(pat, nil)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("got %v, %v; want an *Error", got, err)
			}
			if !strings.HasPrefix(err.Error(), "fhirpath: ") {
				t.Errorf("got %q, want the fhirpath: prefix", err)
			}
		})
	}
	x := MustCompile("Encounter.status")
	if got, err := x.Evaluate(pat, nil); err != nil || len(got) != 0 {
		t.Errorf("lenient: got %v, %v; want empty", got, err)
	}
	if _, err := x.Evaluate(pat, &Options{Strict: true}); err == nil {
		t.Errorf("strict: got no error for Encounter.status on a Patient")
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name, expr string
		offset     int
		msg        string
	}{
		{"UnknownFunction", "Patient.name.frobnicate()", 13, "unknown function frobnicate()"},
		{"UnclosedParen", "(1 + 2", 6, "expected ')'"},
		{"UnclosedString", "name = 'abc", 7, "not closed"},
		{"UnknownType", "value is Quantityy", 9, "unknown type Quantityy"},
		{"ChoiceWithType", "Observation.valueQuantity", 12, `Observation has no element "valueQuantity"`},
		{"Arity", "Patient.name.where()", 13, "where() takes 1 argument"},
		{"TrailingOperator", "2 + 2 /", 7, "expected a name or a function, found end of expression"},
		{"BadDate", "@2020-13", 0, "invalid date"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(tc.expr)
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("got %v, want a *SyntaxError", err)
			}
			if se.Offset != tc.offset || !strings.Contains(se.Msg, tc.msg) {
				t.Errorf("got offset %d %q, want offset %d containing %q", se.Offset, se.Msg, tc.offset, tc.msg)
			}
		})
	}
}

func TestItemAccessors(t *testing.T) {
	obs := mustJSON(t, observationJSON)
	pat := mustJSON(t, patientJSON)
	get := func(res map[string]any, expr string) Item {
		t.Helper()
		got, err := MustCompile(expr).Evaluate(res, nil)
		if err != nil || len(got) != 1 {
			t.Fatalf("%s: got %v, %v; want one item", expr, got, err)
		}
		return got[0]
	}
	v := get(obs, "Observation.value.value")
	if d, ok := v.AsDecimal(); !ok || d.String() != "185.50" || d.Scale() != 2 {
		t.Errorf("Decimal: got %v %v, want 185.50", d, ok)
	}
	q, ok := get(obs, "Observation.value").AsQuantity()
	if !ok || q.String() != "185.50 '[lb_av]'" {
		t.Errorf("Quantity: got %v %v, want 185.50 '[lb_av]'", q, ok)
	}
	dt, ok := get(obs, "Observation.effective").AsDateTime()
	if !ok || dt.Precision != PrecisionMillisecond || dt.Offset != 120 || dt.String() != "2021-03-04T10:20:30.250+02:00" {
		t.Errorf("DateTime: got %v %v", dt, ok)
	}
	bd := get(pat, "Patient.birthDate")
	if d, ok := bd.AsDateTime(); !ok || d.Precision != PrecisionDay || !d.IsDate() {
		t.Errorf("date: got %v %v", d, ok)
	}
	if ext := bd.Extensions(); len(ext) != 1 {
		t.Errorf("Extensions: got %v, want one", ext)
	}
	parent, key, index := bd.Location()
	if parent == nil || key != "birthDate" || index != -1 {
		t.Errorf("Location: got %v %q %d", parent != nil, key, index)
	}
	if s, ok := get(pat, "Patient.gender").AsString(); !ok || s != "male" {
		t.Errorf("String: got %q %v", s, ok)
	}
	if b, ok := get(pat, "Patient.active").AsBool(); !ok || !b {
		t.Errorf("Bool: got %v %v", b, ok)
	}
	if typ := get(pat, "Patient").Type(); typ.String() != "FHIR.Patient" {
		t.Errorf("Type: got %s", typ)
	}
}

func TestResolver(t *testing.T) {
	obs := mustJSON(t, observationJSON)
	target := mustJSON(t, patientJSON)
	opts := &Options{Resolver: func(ref string) (any, bool) {
		return target, ref == "Patient/p1"
	}}
	got, err := MustCompile("Observation.subject.resolve().name.first().family").Evaluate(obs, opts)
	if err != nil || len(got) != 1 || formatItem(got[0]) != "Chalmers" {
		t.Errorf("got %v, %v; want Chalmers", got, err)
	}
}

func TestUserVariables(t *testing.T) {
	got, err := MustCompile("%a + %b").Evaluate(nil, &Options{Variables: map[string]any{"a": 1, "b": Collection{sysItem(int64(2))}}})
	if err != nil || len(got) != 1 || formatItem(got[0]) != "3" {
		t.Errorf("got %v, %v; want 3", got, err)
	}
	if _, err := MustCompile("%missing").Evaluate(nil, nil); err == nil {
		t.Errorf("got no error for an unknown variable")
	}
}

// FuzzCompile checks that no expression makes Compile or Evaluate panic.
func FuzzCompile(f *testing.F) {
	for _, s := range []string{
		"Patient.name.where(given = 'Jim').family",
		"(Observation.value as Quantity) > 5 'mg'",
		"@2020-01-01T10:00:00Z + 1 day",
		"iif(1 | 2, %resource, {})",
		"'\\u0041'.matches('[A-Z]') and 1.5.round(2) ~ 1.50",
		"Questionnaire.item.repeat(item).descendants().ofType(FHIR.string)",
	} {
		f.Add(s)
	}
	pat := mustJSON(f, patientJSON)
	f.Fuzz(func(t *testing.T, expr string) {
		x, err := Compile(expr)
		if err != nil {
			return
		}
		_, _ = x.Evaluate(pat, nil)
	})
}
