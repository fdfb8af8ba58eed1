package conformance_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/fhirhub/fhirhub/conformance"
	"github.com/fhirhub/fhirhub/fhir"
)

func decodeJSON(s string) map[string]any {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		panic(err)
	}
	return m
}

func ExampleValidator_Validate() {
	v, err := conformance.NewValidator()
	if err != nil {
		panic(err)
	}
	obs := decodeJSON(`{"resourceType":"Observation","code":{"text":"weight"},"valueQuantity":{"value":"72"},"effectiveDateTime":"2024-02-30T10:00"}`)
	err = v.Validate(context.Background(), "Observation", obs)
	fe := fhir.AsError(err)
	fmt.Println(fe.HTTPStatus())
	for _, is := range fe.Issues {
		fmt.Printf("%s %s: %s\n", is.Code, is.Expression[0], is.Diagnostics)
	}
	// Output:
	// 422
	// value Observation.effectiveDateTime: "effectiveDateTime" must match the FHIR dateTime format (YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss with a time zone); got "2024-02-30T10:00"
	// required Observation.status: required element "status" is missing
	// structure Observation.valueQuantity.value: "value" must be a JSON number (FHIR decimal), not a string
}

func ExampleSelectElements() {
	pat := decodeJSON(`{"resourceType":"Patient","id":"p1","active":true,"name":[{"family":"Chalmers"}],"birthDate":"1974-12-25","gender":"male"}`)
	out, err := conformance.SelectElements("Patient", pat, []string{"name", "birthDate"})
	if err != nil {
		panic(err)
	}
	b, _ := json.Marshal(out)
	fmt.Println(string(b))
	// Output:
	// {"birthDate":"1974-12-25","id":"p1","meta":{"tag":[{"code":"SUBSETTED","display":"subsetted","system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue"}]},"name":[{"family":"Chalmers"}],"resourceType":"Patient"}
}
