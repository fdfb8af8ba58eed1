package patch_test

import (
	"fmt"

	"github.com/fhirhub/fhirhub/fhir"
	"github.com/fhirhub/fhirhub/fhir/patch"
)

func ExampleJSONPatch() {
	resource := []byte(`{"resourceType":"Observation","status":"preliminary","valueQuantity":{"value":72.50,"unit":"kg"}}`)
	out, err := patch.JSONPatch(resource, []byte(`[
		{"op": "test", "path": "/status", "value": "preliminary"},
		{"op": "replace", "path": "/status", "value": "final"},
		{"op": "add", "path": "/note", "value": [{"text": "after lunch"}]}
	]`))
	if err != nil {
		panic(err)
	}
	fmt.Println(string(out))

	_, err = patch.JSONPatch(resource, []byte(`[{"op": "test", "path": "/status", "value": "final"}]`))
	fmt.Println(fhir.ErrorStatus(err), err)
	// Output:
	// {"resourceType":"Observation","status":"final","valueQuantity":{"value":72.50,"unit":"kg"},"note":[{"text":"after lunch"}]}
	// 422 patch operation 0 (test /status): test failed: the value is "preliminary", not "final"
}

func ExampleFHIRPathPatch() {
	resource := []byte(`{"resourceType":"Patient","name":[{"family":"Chalmers","given":["Peter","James"]}],"birthDate":"1974-12-25"}`)
	params := []byte(`{"resourceType": "Parameters", "parameter": [
		{"name": "operation", "part": [
			{"name": "type", "valueCode": "replace"},
			{"name": "path", "valueString": "Patient.birthDate"},
			{"name": "value", "valueDate": "1974-12-26"}]},
		{"name": "operation", "part": [
			{"name": "type", "valueCode": "delete"},
			{"name": "path", "valueString": "Patient.name[0].given[1]"}]},
		{"name": "operation", "part": [
			{"name": "type", "valueCode": "add"},
			{"name": "path", "valueString": "Patient"},
			{"name": "name", "valueString": "contact"},
			{"name": "value", "part": [
				{"name": "name", "valueHumanName": {"text": "Bénédicte du Marché"}},
				{"name": "gender", "valueCode": "female"}]}]}
	]}`)
	out, err := patch.FHIRPathPatch(resource, params)
	if err != nil {
		panic(err)
	}
	fmt.Println(string(out))
	// Output:
	// {"resourceType":"Patient","name":[{"family":"Chalmers","given":["Peter"]}],"birthDate":"1974-12-26","contact":[{"name":{"text":"Bénédicte du Marché"},"gender":"female"}]}
}
