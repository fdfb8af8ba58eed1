package conformance

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"
)

func TestResourceTypes(t *testing.T) {
	types := ResourceTypes()
	if len(types) != 146 {
		t.Fatalf("got %d resource types, want 146", len(types))
	}
	if !slices.IsSorted(types) {
		t.Errorf("resource types are not sorted")
	}
	for _, want := range []string{"Patient", "Observation", "Consent", "Bundle", "Parameters", "Binary", "MedicationRequest", "Encounter"} {
		if !slices.Contains(types, want) {
			t.Errorf("%s is missing from ResourceTypes", want)
		}
	}
	for _, abstract := range []string{"Resource", "DomainResource"} {
		if slices.Contains(types, abstract) {
			t.Errorf("the abstract %s is in ResourceTypes", abstract)
		}
	}
	types[0] = "changed"
	if ResourceTypes()[0] == "changed" {
		t.Errorf("ResourceTypes returns its own slice; callers can change it")
	}
}

// TestResourceTypesAgreeWithSchema checks that the element table and the JSON
// Schema know the same types.
func TestResourceTypesAgreeWithSchema(t *testing.T) {
	raw, err := gunzip(schemaGz)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	got, err := schemaTypes(doc)
	if err != nil {
		t.Fatal(err)
	}
	if want := ResourceTypes(); !slices.Equal(got, want) {
		t.Errorf("the schema's types differ from the element table's:\nschema: %v\ntable:  %v", got, want)
	}
}

func TestElementTable(t *testing.T) {
	d, err := loadDefinitions()
	if err != nil {
		t.Fatal(err)
	}
	if d.fhirVersion != "4.0.1" {
		t.Errorf("fhirVersion: got %q, want 4.0.1", d.fhirVersion)
	}
	// Bundle, Binary and Parameters are Resources, not DomainResources: no
	// text, contained or extensions.
	plain := []string{"Bundle", "Binary", "Parameters"}
	for _, typ := range d.names {
		root := d.types[typ].root
		want := []string{"id", "meta", "implicitRules", "language"}
		if !slices.Contains(plain, typ) {
			want = append(want, "text", "contained", "extension", "modifierExtension")
		}
		for _, name := range want {
			if root.keys[name] == nil {
				t.Errorf("%s has no inherited element %s", typ, name)
			}
		}
	}

	tests := []struct {
		typ, path string
		summary   bool
		min       int
		types     []string
	}{
		{"Patient", "birthDate", true, 0, []string{"date"}},
		{"Patient", "deceased[x]", true, 0, []string{"boolean", "dateTime"}},
		{"Patient", "contact", false, 0, []string{"BackboneElement"}},
		{"Patient", "communication.language", false, 1, []string{"CodeableConcept"}},
		{"Patient", "link.other", true, 1, []string{"Reference"}},
		{"Observation", "status", true, 1, []string{"code"}},
		{"Observation", "code", true, 1, []string{"CodeableConcept"}},
		{"Observation", "component.code", true, 1, []string{"CodeableConcept"}},
		{"Observation", "contained", false, 0, []string{"Resource"}},
		{"Bundle", "entry.resource", true, 0, []string{"Resource"}},
		{"Consent", "scope", true, 1, []string{"CodeableConcept"}},
	}
	for _, tt := range tests {
		t.Run(tt.typ+"."+tt.path, func(t *testing.T) {
			e := findElement(d.types[tt.typ], tt.path)
			if e == nil {
				t.Fatalf("%s.%s not found", tt.typ, tt.path)
			}
			if e.Summary != tt.summary || e.Min != tt.min || !slices.Equal(e.Types, tt.types) {
				t.Errorf("got summary %v, min %d, types %v; want %v, %d, %v", e.Summary, e.Min, e.Types, tt.summary, tt.min, tt.types)
			}
		})
	}

	t.Run("ChoiceKeys", func(t *testing.T) {
		obs := d.types["Observation"].root
		for _, k := range []string{"valueQuantity", "valueString", "valueCodeableConcept", "_valueString", "effectiveDateTime"} {
			if c := obs.child(k); c == nil || !c.choice() {
				t.Errorf("Observation key %s does not stand for a choice element", k)
			}
		}
		if obs.child("valueFoo") != nil || obs.child("value") != nil {
			t.Errorf("valueFoo or value stands for an element")
		}
	})
	t.Run("ContentReference", func(t *testing.T) {
		item := findElement(d.types["Questionnaire"], "item")
		sub := findElement(d.types["Questionnaire"], "item.item")
		if sub.Ref != "item" || len(sub.children) == 0 || sub.keys["linkId"] != item.keys["linkId"] {
			t.Errorf("Questionnaire.item.item does not reuse the elements of Questionnaire.item")
		}
	})
}

// findElement finds an element by its path relative to the type.
func findElement(td *typeDef, path string) *element {
	var find func(e *element) *element
	find = func(e *element) *element {
		for _, c := range e.children {
			if c.Path == path {
				return c
			}
			if c.Ref == "" {
				if f := find(c); f != nil {
					return f
				}
			}
		}
		return nil
	}
	return find(td.root)
}
