package fhirpath

import (
	"slices"
	"testing"
)

func TestTypeElement(t *testing.T) {
	typ := func(name string) *Type {
		t.Helper()
		ty, ok := LookupType(name)
		if !ok {
			t.Fatalf("LookupType(%q): not found", name)
		}
		return ty
	}
	tests := []struct {
		typ, name    string
		ok           bool
		many, choice bool
		types, keys  []string
	}{
		{"Patient", "name", true, true, false, []string{"HumanName"}, []string{"name"}},
		{"Patient", "birthDate", true, false, false, []string{"date"}, []string{"birthDate"}},
		{"Patient", "id", true, false, false, []string{"id"}, []string{"id"}},
		{"Patient", "contact", true, true, false, []string{"Patient.contact"}, []string{"contact"}},
		{"Patient.contact", "gender", true, false, false, []string{"code"}, []string{"gender"}},
		{"Patient", "deceased", true, false, true, []string{"boolean", "dateTime"}, []string{"deceasedBoolean", "deceasedDateTime"}},
		{"Patient", "deceasedBoolean", false, false, false, nil, nil},
		{"Patient", "nope", false, false, false, nil, nil},
		{"Age", "value", true, false, false, []string{"decimal"}, []string{"value"}},
		{"Questionnaire.item", "item", true, true, false, []string{"Questionnaire.item"}, []string{"item"}},
		{"System.String", "length", false, false, false, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.typ+"."+tt.name, func(t *testing.T) {
			el, ok := typ(tt.typ).Element(tt.name)
			if ok != tt.ok {
				t.Fatalf("ok: got %v, want %v", ok, tt.ok)
			}
			if !ok {
				return
			}
			var types []string
			for _, ty := range el.Types {
				types = append(types, ty.Name)
			}
			if el.Name != tt.name || el.Many != tt.many || el.Choice != tt.choice || !slices.Equal(types, tt.types) || !slices.Equal(el.Keys, tt.keys) {
				t.Errorf("got %+v (types %v), want many=%v choice=%v types %v keys %v", el, types, tt.many, tt.choice, tt.types, tt.keys)
			}
		})
	}
	var nilType *Type
	if _, ok := nilType.Element("x"); ok {
		t.Error("nil type: got an element")
	}
}
