package fhirxml

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

func decode(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestToJSON(t *testing.T) {
	got, err := ToJSON([]byte(`<!-- c --><Patient xmlns="http://hl7.org/fhir">
		<id value="x"/>
		<name><given value="A"/><given id="g2"><extension url="u"><valueBoolean value="true"/></extension></given></name>
		<birthDate value="1970-01-01"><extension url="bt"><valueDateTime value="1970-01-01T10:00:00Z"/></extension></birthDate>
		<deceasedBoolean value="false"/>
		<multipleBirthInteger value="2"/>
		<contained><Observation><status value="final"/><valueQuantity><value value="1.50"/></valueQuantity></Observation></contained>
	</Patient>`))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"resourceType":"Patient","id":"x",
		"name":[{"given":["A",null],"_given":[null,{"id":"g2","extension":[{"url":"u","valueBoolean":true}]}]}],
		"birthDate":"1970-01-01","_birthDate":{"extension":[{"url":"bt","valueDateTime":"1970-01-01T10:00:00Z"}]},
		"deceasedBoolean":false,"multipleBirthInteger":2,
		"contained":[{"resourceType":"Observation","status":"final","valueQuantity":{"value":1.50}}]}`
	if !reflect.DeepEqual(decode(t, got), decode(t, []byte(want))) {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(got))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	if n := m["contained"].([]any)[0].(map[string]any)["valueQuantity"].(map[string]any)["value"]; n != json.Number("1.50") {
		t.Errorf("decimal: got %v, want 1.50", n)
	}
	if _, err := ToJSON([]byte(`<Nope xmlns="http://hl7.org/fhir"/>`)); err == nil {
		t.Error("an unknown resource type: got no error")
	}
	if _, err := ToJSON([]byte(`<Patient xmlns="http://hl7.org/fhir"><nope value="1"/></Patient>`)); err == nil {
		t.Error("an unknown element: got no error")
	}
}
