package patch

import (
	"fmt"
	"strings"
	"testing"
)

// Builders of FHIRPath Patch Parameters.

func params(ops ...string) string {
	return `{"resourceType":"Parameters","parameter":[` + strings.Join(ops, ",") + `]}`
}

func op(parts ...string) string {
	return `{"name":"operation","part":[` + strings.Join(parts, ",") + `]}`
}

func ptype(s string) string { return fmt.Sprintf(`{"name":"type","valueCode":%q}`, s) }
func ppath(s string) string { return fmt.Sprintf(`{"name":"path","valueString":%q}`, s) }
func pname(s string) string { return fmt.Sprintf(`{"name":"name","valueString":%q}`, s) }
func pint(name string, i int) string {
	return fmt.Sprintf(`{"name":%q,"valueInteger":%d}`, name, i)
}

// pvalue is a value part; members are its JSON members after the name
// (`"valueDate":"2000-01-01"`, `"part":[...]`).
func pvalue(members string) string { return `{"name":"value",` + members + `}` }

const patient = `{"resourceType":"Patient","id":"p1","active":true,` +
	`"name":[{"family":"Chalmers","given":["Peter","James"],"_given":[null,{"id":"g2"}]}],` +
	`"birthDate":"1974-12-25","_birthDate":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/patient-birthTime","valueDateTime":"1974-12-25T14:35:45-05:00"}]},` +
	`"deceasedBoolean":false,"multipleBirthInteger":2,` +
	`"contained":[{"resourceType":"Observation","id":"o1","status":"final","valueQuantity":{"value":72.50,"unit":"kg"}}]}`

func TestFHIRPathPatch(t *testing.T) {
	tests := []struct {
		name, doc, params, want string
	}{
		{"Order/Replace keeps the member's place and the decimals", patient,
			params(op(ptype("replace"), ppath("Patient.active"), pvalue(`"valueBoolean":false`))),
			`{"resourceType":"Patient","id":"p1","active":false,` +
				`"name":[{"family":"Chalmers","given":["Peter","James"],"_given":[null,{"id":"g2"}]}],` +
				`"birthDate":"1974-12-25","_birthDate":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/patient-birthTime","valueDateTime":"1974-12-25T14:35:45-05:00"}]},` +
				`"deceasedBoolean":false,"multipleBirthInteger":2,` +
				`"contained":[{"resourceType":"Observation","id":"o1","status":"final","valueQuantity":{"value":72.50,"unit":"kg"}}]}`},
		{"Order/Add appends the new member", `{"resourceType":"Patient","id":"p1","active":true}`,
			params(op(ptype("add"), ppath("Patient"), pname("gender"), pvalue(`"valueCode":"male"`))),
			`{"resourceType":"Patient","id":"p1","active":true,"gender":"male"}`},
		{"Decimal/A value keeps its literal", `{"resourceType":"Observation","status":"final","code":{"text":"w"}}`,
			params(op(ptype("add"), ppath("Observation"), pname("value"), pvalue(`"valueQuantity":{"value":72.50,"unit":"kg"}`))),
			`{"resourceType":"Observation","status":"final","code":{"text":"w"},"valueQuantity":{"value":72.50,"unit":"kg"}}`},
		{"Decimal/A primitive decimal", `{"resourceType":"Observation","status":"final","valueQuantity":{"value":1}}`,
			params(op(ptype("replace"), ppath("Observation.value.value"), pvalue(`"valueDecimal":1.50`))),
			`{"resourceType":"Observation","status":"final","valueQuantity":{"value":1.50}}`},
		{"Extensions/Replace keeps a primitive's extensions", patient,
			params(op(ptype("replace"), ppath("Patient.birthDate"), pvalue(`"valueDate":"1974-12-26"`))),
			strings.Replace(patient, `"birthDate":"1974-12-25"`, `"birthDate":"1974-12-26"`, 1)},
		{"Extensions/Replace with extensions replaces them", `{"resourceType":"Patient","birthDate":"1974-12-25","_birthDate":{"id":"a"},"active":true}`,
			params(op(ptype("replace"), ppath("Patient.birthDate"), pvalue(`"valueDate":"1974-12-26","_valueDate":{"id":"b"}`))),
			`{"resourceType":"Patient","birthDate":"1974-12-26","_birthDate":{"id":"b"},"active":true}`},
		{"Extensions/Delete a primitive deletes its extensions", patient,
			params(op(ptype("delete"), ppath("Patient.birthDate"))),
			`{"resourceType":"Patient","id":"p1","active":true,` +
				`"name":[{"family":"Chalmers","given":["Peter","James"],"_given":[null,{"id":"g2"}]}],` +
				`"deceasedBoolean":false,"multipleBirthInteger":2,` +
				`"contained":[{"resourceType":"Observation","id":"o1","status":"final","valueQuantity":{"value":72.50,"unit":"kg"}}]}`},
		{"Extensions/Delete an item deletes its extensions", `{"resourceType":"Patient","name":[{"given":["A","B","C"],"_given":[null,{"id":"b"},{"id":"c"}]}]}`,
			params(op(ptype("delete"), ppath("Patient.name.given[1]"))),
			`{"resourceType":"Patient","name":[{"given":["A","C"],"_given":[null,{"id":"c"}]}]}`},
		{"Extensions/Delete the last extended item drops the list", `{"resourceType":"Patient","name":[{"given":["A","B"],"_given":[null,{"id":"b"}]}]}`,
			params(op(ptype("delete"), ppath("Patient.name.given[1]"))),
			`{"resourceType":"Patient","name":[{"given":["A"]}]}`},
		{"Extensions/Delete an item with extensions only", `{"resourceType":"Patient","name":[{"given":["A",null],"_given":[null,{"id":"b"}]}]}`,
			params(op(ptype("delete"), ppath("Patient.name.given[1]"))),
			`{"resourceType":"Patient","name":[{"given":["A"]}]}`},
		{"Extensions/Move moves them", `{"resourceType":"Patient","name":[{"given":["A","B","C"],"_given":[{"id":"a"}]}]}`,
			params(op(ptype("move"), ppath("Patient.name.given"), pint("source", 0), pint("destination", 2))),
			`{"resourceType":"Patient","name":[{"given":["B","C","A"],"_given":[null,null,{"id":"a"}]}]}`},
		{"Extensions/Insert keeps them aligned", `{"resourceType":"Patient","name":[{"given":["A","B"],"_given":[null,{"id":"b"}]}]}`,
			params(op(ptype("insert"), ppath("Patient.name.given"), pint("index", 0), pvalue(`"valueString":"Z"`))),
			`{"resourceType":"Patient","name":[{"given":["Z","A","B"],"_given":[null,null,{"id":"b"}]}]}`},
		{"Extensions/Insert a value with extensions", `{"resourceType":"Patient","name":[{"given":["A","B"]}]}`,
			params(op(ptype("insert"), ppath("Patient.name.given"), pint("index", 1), pvalue(`"valueString":"Z","_valueString":{"id":"z"}`))),
			`{"resourceType":"Patient","name":[{"given":["A","Z","B"],"_given":[null,{"id":"z"},null]}]}`},
		{"Extensions/Add to a list with extensions", `{"resourceType":"Patient","name":[{"given":["A"],"_given":[{"id":"a"}]}]}`,
			params(op(ptype("add"), ppath("Patient.name"), pname("given"), pvalue(`"valueString":"B"`))),
			`{"resourceType":"Patient","name":[{"given":["A","B"],"_given":[{"id":"a"},null]}]}`},
		{"Extensions/Add an extension to a primitive", `{"resourceType":"Patient","birthDate":"1974-12-25","active":true}`,
			params(op(ptype("add"), ppath("Patient.birthDate"), pname("extension"), pvalue(`"part":[{"name":"url","valueUri":"http://x"},{"name":"valueBoolean","valueBoolean":true}]`))),
			`{"resourceType":"Patient","birthDate":"1974-12-25","_birthDate":{"extension":[{"url":"http://x","valueBoolean":true}]},"active":true}`},
		{"Extensions/Delete an extension of a primitive", patient,
			params(op(ptype("delete"), ppath("Patient.birthDate.extension[0]"))),
			strings.Replace(patient, `,"_birthDate":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/patient-birthTime","valueDateTime":"1974-12-25T14:35:45-05:00"}]}`, ``, 1)},
		{"Extensions/Delete the id of a list item", patient,
			params(op(ptype("delete"), ppath("Patient.name.given[1].id"))),
			strings.Replace(patient, `,"_given":[null,{"id":"g2"}]`, ``, 1)},
		{"Choice/Replace changes the member's name in place", patient,
			params(op(ptype("replace"), ppath("Patient.deceased"), pvalue(`"valueDateTime":"2020-01-01"`))),
			strings.Replace(patient, `"deceasedBoolean":false`, `"deceasedDateTime":"2020-01-01"`, 1)},
		{"Choice/Replace a complex value with a primitive", `{"resourceType":"Observation","status":"final","valueQuantity":{"value":1},"note":[{"text":"n"}]}`,
			params(op(ptype("replace"), ppath("Observation.value"), pvalue(`"valueString":"one","_valueString":{"id":"v"}`))),
			`{"resourceType":"Observation","status":"final","valueString":"one","_valueString":{"id":"v"},"note":[{"text":"n"}]}`},
		{"Choice/Add names the member by type", `{"resourceType":"Patient"}`,
			params(op(ptype("add"), ppath("Patient"), pname("deceased"), pvalue(`"valueBoolean":true`))),
			`{"resourceType":"Patient","deceasedBoolean":true}`},
		{"Choice/Add by the JSON name", `{"resourceType":"Patient"}`,
			params(op(ptype("add"), ppath("Patient"), pname("multipleBirthInteger"), pvalue(`"valueInteger":3`))),
			`{"resourceType":"Patient","multipleBirthInteger":3}`},
		{"Parts/Build lists and nested values", `{"resourceType":"Patient"}`,
			params(op(ptype("add"), ppath("Patient"), pname("contact"), pvalue(`"part":[`+
				`{"name":"telecom","valueContactPoint":{"system":"phone","value":"1"}},`+
				`{"name":"telecom","valueContactPoint":{"system":"email","value":"a@b"}},`+
				`{"name":"name","part":[{"name":"given","valueString":"A"},{"name":"family","valueString":"B"}]},`+
				`{"name":"gender","valueCode":"female","_valueCode":{"id":"g"}}]`))),
			`{"resourceType":"Patient","contact":[{"telecom":[{"system":"phone","value":"1"},{"system":"email","value":"a@b"}],"name":{"given":["A"],"family":"B"},"gender":"female","_gender":{"id":"g"}}]}`},
		{"Contained/Replace inside a contained resource", patient,
			params(op(ptype("replace"), ppath("Patient.contained[0].status"), pvalue(`"valueCode":"amended"`))),
			strings.Replace(patient, `"status":"final"`, `"status":"amended"`, 1)},
		{"Contained/Through resolve()", `{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o","name":"A"}],"managingOrganization":{"reference":"#o"}}`,
			params(op(ptype("replace"), ppath("Patient.managingOrganization.resolve().name"), pvalue(`"valueString":"B"`))),
			`{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o","name":"B"}],"managingOrganization":{"reference":"#o"}}`},
		{"Contained/Add a resource", `{"resourceType":"Patient"}`,
			params(op(ptype("add"), ppath("Patient"), pname("contained"), pvalue(`"resource":{"resourceType":"Organization","id":"o"}`))),
			`{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o"}]}`},
		{"Delete/Nothing selected is not an error", patient,
			params(op(ptype("delete"), ppath("Patient.gender"))), patient},
		{"Delete/Empty parents go", `{"resourceType":"Patient","name":[{"period":{"start":"2000"}},{"text":"b"}]}`,
			params(op(ptype("delete"), ppath("Patient.name[0].period.start"))),
			`{"resourceType":"Patient","name":[{"text":"b"}]}`},
		{"Delete/With a where", `{"resourceType":"Patient","identifier":[{"system":"a","value":"1"},{"system":"b","value":"2"}]}`,
			params(op(ptype("delete"), ppath("Patient.identifier.where(system = 'a')"))),
			`{"resourceType":"Patient","identifier":[{"system":"b","value":"2"}]}`},
		{"Insert/Into an absent list", `{"resourceType":"Patient","active":true}`,
			params(op(ptype("insert"), ppath("Patient.identifier"), pint("index", 0), pvalue(`"valueIdentifier":{"value":"1"}`))),
			`{"resourceType":"Patient","active":true,"identifier":[{"value":"1"}]}`},
		{"Insert/At the end", `{"resourceType":"Patient","identifier":[{"value":"1"}]}`,
			params(op(ptype("insert"), ppath("Patient.identifier"), pint("index", 1), pvalue(`"valueIdentifier":{"value":"2"}`))),
			`{"resourceType":"Patient","identifier":[{"value":"1"},{"value":"2"}]}`},
		{"Replace/A list item", `{"resourceType":"Patient","identifier":[{"value":"1"},{"value":"2"}]}`,
			params(op(ptype("replace"), ppath("Patient.identifier[1]"), pvalue(`"valueIdentifier":{"system":"s","value":"3"}`))),
			`{"resourceType":"Patient","identifier":[{"value":"1"},{"system":"s","value":"3"}]}`},
		{"Replace/A primitive with extensions only", `{"resourceType":"Patient","_birthDate":{"id":"x"},"active":true}`,
			params(op(ptype("replace"), ppath("Patient.birthDate"), pvalue(`"valueDate":"2000"`))),
			`{"resourceType":"Patient","birthDate":"2000","_birthDate":{"id":"x"},"active":true}`},
		{"Replace/A string as a code", `{"resourceType":"Patient","gender":"male"}`,
			params(op(ptype("replace"), ppath("Patient.gender"), pvalue(`"valueString":"female"`))),
			`{"resourceType":"Patient","gender":"female"}`},
		{"Types/Integer for a decimal", `{"resourceType":"Observation","status":"final","valueQuantity":{"value":1}}`,
			params(op(ptype("replace"), ppath("Observation.value.value"), pvalue(`"valueInteger":2`))),
			`{"resourceType":"Observation","status":"final","valueQuantity":{"value":2}}`},
		{"Types/A derived type", `{"resourceType":"Observation","status":"final"}`,
			params(op(ptype("add"), ppath("Observation"), pname("value"), pvalue(`"valueQuantity":{"value":3}`)),
				op(ptype("add"), ppath("Observation"), pname("note"), pvalue(`"valueAnnotation":{"text":"n"}`))),
			`{"resourceType":"Observation","status":"final","valueQuantity":{"value":3},"note":[{"text":"n"}]}`},
		{"Several operations see each other's work", `{"resourceType":"Patient"}`,
			params(op(ptype("add"), ppath("Patient"), pname("name"), pvalue(`"valueHumanName":{"family":"A"}`)),
				op(ptype("add"), ppath("Patient.name[0]"), pname("given"), pvalue(`"valueString":"B"`)),
				op(ptype("replace"), ppath("Patient.name.family"), pvalue(`"valueString":"C"`))),
			`{"resourceType":"Patient","name":[{"family":"C","given":["B"]}]}`},
		{"Empty objects stay apart", `{"resourceType":"Patient","contact":[{},{},{}]}`,
			params(op(ptype("add"), ppath("Patient.contact[1]"), pname("gender"), pvalue(`"valueCode":"male"`))),
			`{"resourceType":"Patient","contact":[{},{"gender":"male"},{}]}`},
		{"Unknown members are left alone", `{"resourceType":"Patient","x":{"y":[1]},"active":true}`,
			params(op(ptype("replace"), ppath("Patient.active"), pvalue(`"valueBoolean":false`))),
			`{"resourceType":"Patient","x":{"y":[1]},"active":false}`},
		{"No operations", patient, `{"resourceType":"Parameters"}`, patient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FHIRPathPatch([]byte(tt.doc), []byte(tt.params))
			if err != nil {
				t.Fatalf("got error %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestFHIRPathPatchDoesNotChangeItsInput(t *testing.T) {
	doc := []byte(patient)
	p := []byte(params(op(ptype("delete"), ppath("Patient.name[0].given[0]")),
		op(ptype("add"), ppath("Patient"), pname("gender"), pvalue(`"valueCode":"male"`))))
	before, pbefore := string(doc), string(p)
	if _, err := FHIRPathPatch(doc, p); err != nil {
		t.Fatal(err)
	}
	if string(doc) != before || string(p) != pbefore {
		t.Error("the inputs changed")
	}
}

func TestFHIRPathPatchErrors(t *testing.T) {
	tests := []struct {
		name, doc, params string
		status            int
		msg               string // a part of the message
	}{
		// A malformed Parameters: 400.
		{"Malformed/Not JSON", patient, `{`, 400, "reading the Parameters"},
		{"Malformed/Not a Parameters", patient, `{"resourceType":"Patient"}`, 400, "is a Parameters resource"},
		{"Malformed/Parameter not a list", patient, `{"resourceType":"Parameters","parameter":{}}`, 400, "not an array"},
		{"Malformed/Not an operation", patient, `{"resourceType":"Parameters","parameter":[{"name":"op","part":[]}]}`, 400, `patch operation 0: the parameter is not named "operation"`},
		{"Malformed/No parts", patient, `{"resourceType":"Parameters","parameter":[{"name":"operation"}]}`, 400, "patch operation 0: no parts"},
		{"Malformed/No type", patient, params(op(ppath("Patient"))), 400, "patch operation 0: no type"},
		{"Malformed/Unknown type", patient, params(op(ptype("merge"), ppath("Patient"))), 400, `patch operation 0: unknown type "merge"`},
		{"Malformed/No path", patient, params(op(ptype("delete"))), 400, "patch operation 0 (delete): no path"},
		{"Malformed/Bad FHIRPath", patient, params(op(ptype("delete"), ppath("Patient.name[0"))), 400, "patch operation 0 (delete Patient.name[0): the path is not valid FHIRPath"},
		{"Malformed/Add without name and value", patient, params(op(ptype("add"), ppath("Patient"))), 400, "patch operation 0 (add Patient): no name or value"},
		{"Malformed/Insert without index", patient, params(op(ptype("insert"), ppath("Patient.name"), pvalue(`"valueString":"x"`))), 400, "no index"},
		{"Malformed/Move without source", patient, params(op(ptype("move"), ppath("Patient.name"), pint("destination", 0))), 400, "no source"},
		{"Malformed/Unknown part", patient, params(op(ptype("delete"), ppath("Patient.active"), `{"name":"where","valueString":"x"}`)), 400, `unknown part "where"`},
		{"Malformed/Repeated part", patient, params(op(ptype("delete"), ppath("Patient.active"), ppath("Patient.id"))), 400, `part "path" appears twice`},
		{"Malformed/Index not an integer", patient, params(op(ptype("insert"), ppath("Patient.name"), `{"name":"index","valueDecimal":1.5}`, pvalue(`"valueString":"x"`))), 400, "1.5 is not an integer"},
		{"Malformed/Unknown value type", patient, params(op(ptype("replace"), ppath("Patient.active"), pvalue(`"valueFoo":true`))), 400, "valueFoo names no FHIR type"},
		{"Malformed/Value of the wrong JSON kind", patient, params(op(ptype("replace"), ppath("Patient.active"), pvalue(`"valueBoolean":"yes"`))), 400, "valueBoolean is not a JSON boolean"},
		{"Malformed/Two values", patient, params(op(ptype("replace"), ppath("Patient.active"), pvalue(`"valueBoolean":true,"valueString":"x"`))), 400, "exactly one of"},
		{"Malformed/A later operation", patient, params(op(ptype("delete"), ppath("Patient.active")), op(ptype("nope"), ppath("Patient"))), 400, "patch operation 1"},
		// A patch that cannot be applied: 422.
		{"Apply/Replace selects nothing", patient, params(op(ptype("replace"), ppath("Patient.gender"), pvalue(`"valueCode":"male"`))), 422, "patch operation 0 (replace Patient.gender): the path selects nothing"},
		{"Apply/Replace selects two", patient, params(op(ptype("replace"), ppath("Patient.name.given"), pvalue(`"valueString":"x"`))), 422, "the path selects 2 elements, not one"},
		{"Apply/Delete selects two", patient, params(op(ptype("delete"), ppath("Patient.name.given"))), 422, "patch operation 0 (delete Patient.name.given): the path selects 2 elements; delete removes one"},
		{"Apply/Add to nothing", patient, params(op(ptype("add"), ppath("Patient.contact"), pname("gender"), pvalue(`"valueCode":"male"`))), 422, "the path selects nothing"},
		{"Apply/Add to a primitive", patient, params(op(ptype("add"), ppath("Patient.active"), pname("x"), pvalue(`"valueCode":"male"`))), 422, "the path selects a boolean, a primitive: only id and extension can be added to it"},
		{"Apply/Add an unknown element", patient, params(op(ptype("add"), ppath("Patient"), pname("colour"), pvalue(`"valueCode":"red"`))), 422, `Patient has no element "colour"`},
		{"Apply/Add a second value", patient, params(op(ptype("add"), ppath("Patient"), pname("active"), pvalue(`"valueBoolean":false`))), 422, "active already has a value"},
		{"Apply/Add a second choice", patient, params(op(ptype("add"), ppath("Patient"), pname("deceased"), pvalue(`"valueDateTime":"2020"`))), 422, "deceasedDateTime already has a value (deceasedBoolean)"},
		{"Apply/Wrong type", patient, params(op(ptype("replace"), ppath("Patient.birthDate"), pvalue(`"valueBoolean":true`))), 422, "Patient.birthDate is a date and cannot be a boolean"},
		{"Apply/Wrong complex type", patient, params(op(ptype("add"), ppath("Patient"), pname("name"), pvalue(`"valueAddress":{"city":"x"}`))), 422, "Patient.name is a HumanName and cannot be an Address"},
		{"Apply/Wrong choice type", patient, params(op(ptype("replace"), ppath("Patient.deceased"), pvalue(`"valueString":"x"`))), 422, "Patient.deceased[x] cannot be a string"},
		{"Apply/Parts for a primitive", patient, params(op(ptype("add"), ppath("Patient"), pname("gender"), pvalue(`"part":[{"name":"x","valueString":"y"}]`))), 422, "Patient.gender is a code: give its value as a value[x], not parts"},
		{"Apply/Parts with an unknown element", patient, params(op(ptype("add"), ppath("Patient"), pname("contact"), pvalue(`"part":[{"name":"x","valueString":"y"}]`))), 422, `Patient.contact has no element "x"`},
		{"Apply/Parts repeat a single element", patient, params(op(ptype("add"), ppath("Patient"), pname("contact"), pvalue(`"part":[{"name":"gender","valueCode":"male"},{"name":"gender","valueCode":"female"}]`))), 422, `part "gender": gender already has a value`},
		{"Apply/Insert out of range", patient, params(op(ptype("insert"), ppath("Patient.name"), pint("index", 2), pvalue(`"valueHumanName":{"text":"x"}`))), 422, "patch operation 0 (insert Patient.name): index 2 is out of range: the list has 1 item"},
		{"Apply/Insert negative", patient, params(op(ptype("insert"), ppath("Patient.name"), pint("index", -1), pvalue(`"valueHumanName":{"text":"x"}`))), 422, "index -1 is out of range"},
		{"Apply/Insert into a single element", patient, params(op(ptype("insert"), ppath("Patient.birthDate"), pint("index", 0), pvalue(`"valueDate":"2000"`))), 422, "not a list"},
		{"Apply/Insert into part of a list", `{"resourceType":"Patient","identifier":[{"system":"a"},{"system":"b"}]}`, params(op(ptype("insert"), ppath("Patient.identifier.where(system = 'a')"), pint("index", 0), pvalue(`"valueIdentifier":{"system":"c"}`))), 422, "selects 1 of the 2 items of the list"},
		{"Apply/Insert into an absent single element", patient, params(op(ptype("insert"), ppath("Patient.gender"), pint("index", 0), pvalue(`"valueCode":"male"`))), 422, "Patient.gender is not a list"},
		{"Apply/Insert the wrong type", patient, params(op(ptype("insert"), ppath("Patient.name"), pint("index", 0), pvalue(`"valueAddress":{"city":"x"}`))), 422, "cannot be an Address"},
		{"Apply/Move out of range", patient, params(op(ptype("move"), ppath("Patient.name.given"), pint("source", 2), pint("destination", 0))), 422, "source 2 is out of range: the list has 2 items"},
		{"Apply/Move to out of range", patient, params(op(ptype("move"), ppath("Patient.name.given"), pint("source", 0), pint("destination", 2))), 422, "destination 2 is out of range"},
		{"Apply/Move an empty list", patient, params(op(ptype("move"), ppath("Patient.identifier"), pint("source", 0), pint("destination", 0))), 422, "source 0 is out of range: the list has 0 items"},
		{"Apply/Delete the resource", patient, params(op(ptype("delete"), ppath("Patient"))), 422, "the resource itself"},
		{"Apply/Replace a computed value", patient, params(op(ptype("replace"), ppath("Patient.active.not()"), pvalue(`"valueBoolean":true`))), 422, "computed value"},
		{"Apply/Replace another resource", `{"resourceType":"Patient","generalPractitioner":[{"reference":"Practitioner/1"}]}`, params(op(ptype("replace"), ppath("Patient.generalPractitioner.resolve().id"), pvalue(`"valueId":"x"`))), 422, "not an element of it"},
		{"Apply/Evaluation fails", patient, params(op(ptype("delete"), ppath("Patient.name.given.single()"))), 422, "evaluating the path"},
		{"Apply/Later operation", patient, params(op(ptype("delete"), ppath("Patient.active")), op(ptype("replace"), ppath("Patient.active"), pvalue(`"valueBoolean":true`))), 422, "patch operation 1 (replace Patient.active): the path selects nothing"},
		// A resource that is not a resource: 400.
		{"Resource/Not JSON", `{`, params(), 400, "reading the resource"},
		{"Resource/No resourceType", `{"id":"x"}`, params(), 400, "not a FHIR resource"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FHIRPathPatch([]byte(tt.doc), []byte(tt.params))
			if err == nil {
				t.Fatalf("got %s, want an error", got)
			}
			wantStatus(t, err, tt.status)
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("got message %q, want it to contain %q", err, tt.msg)
			}
		})
	}
}
