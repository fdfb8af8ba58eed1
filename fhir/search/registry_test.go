package search

import (
	"testing"
)

var testTypes = []string{"Patient", "Observation", "Encounter", "Practitioner", "Organization", "Location", "MedicationRequest", "Consent", "ValueSet", "Condition", "Group", "ActivityDefinition"}

func testRegistry(t testing.TB) *Registry {
	t.Helper()
	r, err := NewRegistry(testTypes)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRegistry(t *testing.T) {
	r := testRegistry(t)
	tests := []struct {
		typ, code string
		ptype     ParamType
		expr      string
	}{
		{"Patient", "name", TypeString, "Patient.name"},
		{"Patient", "_id", TypeToken, "Patient.id"},
		{"Patient", "_lastUpdated", TypeDate, "Patient.meta.lastUpdated"},
		{"Observation", "patient", TypeReference, "Observation.subject.where(resolve() is Patient)"},
		{"Observation", "code", TypeToken, "Observation.code"},
		{"Observation", "value-quantity", TypeQuantity, "(Observation.value as Quantity) | (Observation.value as SampledData)"},
		{"Encounter", "date", TypeDate, "Encounter.period"},
		{"Location", "near", TypeSpecial, "Location.position"},
	}
	for _, tt := range tests {
		t.Run(tt.typ+"."+tt.code, func(t *testing.T) {
			p, ok := r.Lookup(tt.typ, tt.code)
			if !ok {
				t.Fatalf("%s has no parameter %s", tt.typ, tt.code)
			}
			if p.Type != tt.ptype || p.Expression != tt.expr {
				t.Errorf("got %s %q, want %s %q", p.Type, p.Expression, tt.ptype, tt.expr)
			}
		})
	}
	comp, ok := r.Lookup("Observation", "code-value-quantity")
	if !ok || len(comp.Components) != 2 || comp.Components[0].Type != TypeToken || comp.Components[1].Type != TypeQuantity {
		t.Errorf("composite code-value-quantity: %+v", comp)
	}
	if n := len(r.Params("Patient")); n < 25 {
		t.Errorf("Patient has %d parameters, want over 25", n)
	}
}

func TestExpressionFor(t *testing.T) {
	tests := []struct{ expr, typ, want string }{
		{"Patient.name | Practitioner.name", "Practitioner", "Practitioner.name"},
		{"AllergyIntolerance.patient | CarePlan.subject.where(resolve() is Patient)", "CarePlan", "CarePlan.subject.where(resolve() is Patient)"},
		{"(Observation.value as Quantity) | (Observation.value as SampledData)", "Observation", "(Observation.value as Quantity) | (Observation.value as SampledData)"},
		{"Patient.name.where(use = 'a|b') | Group.name", "Patient", "Patient.name.where(use = 'a|b')"},
		{"value.as(Quantity) | value.as(Range)", "Observation", "value.as(Quantity) | value.as(Range)"},
	}
	for _, tt := range tests {
		if got := ExpressionFor(tt.expr, tt.typ); got != tt.want {
			t.Errorf("ExpressionFor(%q, %s) = %q, want %q", tt.expr, tt.typ, got, tt.want)
		}
	}
}
