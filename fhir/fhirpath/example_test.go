package fhirpath_test

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/fhirhub/fhirhub/fhir/fhirpath"
)

func Example() {
	body := []byte(`{"resourceType": "Observation", "status": "final",
		"code": {"text": "weight"},
		"subject": {"reference": "Patient/123"},
		"valueQuantity": {"value": 72.50, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}}`)
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // as fhir.ParseDocument does
	var obs map[string]any
	if err := dec.Decode(&obs); err != nil {
		panic(err)
	}

	for _, expr := range []string{
		"Observation.subject.where(resolve() is Patient)",
		"(Observation.value as Quantity)",
	} {
		x, err := fhirpath.Compile(expr) // once, then evaluate many times
		if err != nil {
			panic(err)
		}
		got, err := x.Evaluate(obs, nil)
		if err != nil {
			panic(err)
		}
		for _, it := range got {
			if q, ok := it.AsQuantity(); ok {
				fmt.Println(it.TypeName(), q.Value, q.Unit)
				continue
			}
			fmt.Println(it.TypeName(), it.Value())
		}
	}
	// Output:
	// Reference map[reference:Patient/123]
	// Quantity 72.50 kg
}

func ExampleCompile_error() {
	_, err := fhirpath.Compile("Observation.valueQuantity.unit")
	fmt.Println(err)
	// Output:
	// fhirpath: syntax error at offset 12: Observation has no element "valueQuantity"
}
