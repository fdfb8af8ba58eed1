package conformance

import (
	"context"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/fhirhub/fhirhub/fhir"
)

// keysOf returns the sorted property names of an object.
func keysOf(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// subsetted reports whether res carries the SUBSETTED tag, and how often.
func subsetted(res map[string]any) int {
	meta, _ := res["meta"].(map[string]any)
	tags, _ := meta["tag"].([]any)
	n := 0
	for _, t := range tags {
		if t, ok := t.(map[string]any); ok && t["system"] == subsettedSystem && t["code"] == subsettedCode {
			n++
		}
	}
	return n
}

func TestSummarize(t *testing.T) {
	tests := []struct {
		name    string
		example string
		mode    string
		keys    []string // the top-level keys of the result, meta included when tagged
		tagged  bool
	}{
		{"Patient/true", "Patient-example", "true",
			[]string{"_birthDate", "active", "address", "birthDate", "deceasedBoolean", "gender", "id", "identifier", "managingOrganization", "meta", "name", "resourceType", "telecom"}, true},
		{"Patient/text", "Patient-example", "text", []string{"id", "meta", "resourceType", "text"}, true},
		{"Patient/data", "Patient-example", "data",
			[]string{"_birthDate", "active", "address", "birthDate", "contact", "deceasedBoolean", "gender", "id", "identifier", "managingOrganization", "meta", "name", "resourceType", "telecom"}, true},
		{"Patient/false", "Patient-example", "false",
			[]string{"_birthDate", "active", "address", "birthDate", "contact", "deceasedBoolean", "gender", "id", "identifier", "managingOrganization", "name", "resourceType", "telecom", "text"}, false},
		{"Observation/true", "Observation-blood-pressure", "true",
			[]string{"basedOn", "code", "component", "effectiveDateTime", "id", "identifier", "meta", "performer", "resourceType", "status", "subject"}, true},
		{"Observation/text", "Observation-blood-pressure", "text", []string{"code", "id", "meta", "resourceType", "status", "text"}, true},
		{"Observation/ValueChoice", "Observation-example", "true",
			[]string{"code", "effectiveDateTime", "encounter", "id", "meta", "resourceType", "status", "subject", "valueQuantity"}, true},
		// Every element of Bundle is a summary element.
		{"Bundle/true", "Bundle-bundle-example", "true", []string{"entry", "id", "link", "meta", "resourceType", "total", "type"}, false},
		{"Bundle/text", "Bundle-bundle-example", "text", []string{"id", "meta", "resourceType", "type"}, true},
		{"Bundle/data", "Bundle-bundle-example", "data", []string{"entry", "id", "link", "meta", "resourceType", "total", "type"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := officialExample(t, tt.example)
			before := clone(res)
			got, err := Summarize(res["resourceType"].(string), res, tt.mode)
			if err != nil {
				t.Fatalf("Summarize: %v", err)
			}
			if !reflect.DeepEqual(res, before) {
				t.Errorf("Summarize changed its input")
			}
			if k := keysOf(got); !slices.Equal(k, tt.keys) {
				t.Errorf("got keys %v, want %v", k, tt.keys)
			}
			want := 0
			if tt.tagged {
				want = 1
			}
			if n := subsetted(got); n != want {
				t.Errorf("got %d SUBSETTED tags, want %d", n, want)
			}
		})
	}
}

func TestSummarizeNested(t *testing.T) {
	t.Run("ObservationComponent", func(t *testing.T) {
		res := officialExample(t, "Observation-blood-pressure")
		got, err := Summarize("Observation", res, "true")
		if err != nil {
			t.Fatal(err)
		}
		comps := got["component"].([]any)
		if len(comps) != 2 {
			t.Fatalf("got %d components, want 2", len(comps))
		}
		for i, c := range comps {
			// interpretation is not a summary element of a component.
			if k := keysOf(c.(map[string]any)); !slices.Equal(k, []string{"code", "valueQuantity"}) {
				t.Errorf("component %d: got keys %v, want code and valueQuantity", i, k)
			}
		}
		// A summary element of a datatype is kept whole.
		orig := res["code"].(map[string]any)
		if !reflect.DeepEqual(got["code"], orig) {
			t.Errorf("code was not kept whole: got %v, want %v", got["code"], orig)
		}
		if _, ok := res["component"].([]any)[0].(map[string]any)["interpretation"]; !ok {
			t.Errorf("Summarize removed interpretation from the input")
		}
	})
	t.Run("MandatoryInKeptBackbone", func(t *testing.T) {
		res := mustDecode(t, `{"resourceType":"Patient","id":"p","link":[{"other":{"reference":"Patient/q"},"type":"seealso","extension":[{"url":"http://example.org/x","valueString":"y"}]}],
			"communication":[{"language":{"text":"nl"},"preferred":true}]}`)
		got, err := Summarize("Patient", res, "true")
		if err != nil {
			t.Fatal(err)
		}
		if k := keysOf(got); !slices.Equal(k, []string{"id", "link", "meta", "resourceType"}) {
			t.Errorf("got keys %v, want id, link, meta, resourceType", k)
		}
		link := got["link"].([]any)[0].(map[string]any)
		if k := keysOf(link); !slices.Equal(k, []string{"other", "type"}) {
			t.Errorf("link: got keys %v, want other and type", k)
		}
	})
	t.Run("Questionnaire", func(t *testing.T) {
		res := mustDecode(t, `{"resourceType":"Questionnaire","status":"active","item":[{"linkId":"1","type":"group","text":"A","item":[{"linkId":"1.1","type":"string","text":"B","required":true}]}]}`)
		got, err := Summarize("Questionnaire", res, "true")
		if err != nil {
			t.Fatal(err)
		}
		// Questionnaire.item is not a summary element.
		if k := keysOf(got); !slices.Equal(k, []string{"meta", "resourceType", "status"}) {
			t.Errorf("got keys %v", k)
		}
	})
	t.Run("PrimitiveExtensions", func(t *testing.T) {
		res := mustDecode(t, `{"resourceType":"Observation","status":"final","_status":{"id":"s"},"code":{"text":"x"},"valueString":"v","_valueString":{"id":"v"},"_language":{"id":"l"},"language":"en"}`)
		got, err := Summarize("Observation", res, "true")
		if err != nil {
			t.Fatal(err)
		}
		if k := keysOf(got); !slices.Equal(k, []string{"_status", "_valueString", "code", "meta", "resourceType", "status", "valueString"}) {
			t.Errorf("got keys %v", k)
		}
	})
}

func TestSummarizeTag(t *testing.T) {
	t.Run("NotDuplicated", func(t *testing.T) {
		res := mustDecode(t, `{"resourceType":"Patient","id":"p","meta":{"versionId":"2","tag":[{"system":"`+subsettedSystem+`","code":"SUBSETTED"},{"system":"http://example.org","code":"x"}]},"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"}}`)
		got, err := Summarize("Patient", res, "data")
		if err != nil {
			t.Fatal(err)
		}
		if n := subsetted(got); n != 1 {
			t.Errorf("got %d SUBSETTED tags, want 1", n)
		}
		if tags := got["meta"].(map[string]any)["tag"].([]any); len(tags) != 2 {
			t.Errorf("got %d tags, want 2", len(tags))
		}
	})
	t.Run("KeepsMeta", func(t *testing.T) {
		res := mustDecode(t, `{"resourceType":"Patient","id":"p","meta":{"versionId":"2","lastUpdated":"2024-01-01T00:00:00Z"},"photo":[{"url":"http://x"}]}`)
		got, err := Summarize("Patient", res, "true")
		if err != nil {
			t.Fatal(err)
		}
		meta := got["meta"].(map[string]any)
		if meta["versionId"] != "2" || meta["lastUpdated"] != "2024-01-01T00:00:00Z" || subsetted(got) != 1 {
			t.Errorf("got meta %v, want the original meta with the SUBSETTED tag", meta)
		}
		if _, ok := res["meta"].(map[string]any)["tag"]; ok {
			t.Errorf("Summarize tagged the input's meta")
		}
	})
	t.Run("SummaryIsValid", func(t *testing.T) {
		v := testValidator(t)
		for _, name := range []string{"Patient-example", "Observation-blood-pressure", "Bundle-bundle-example"} {
			res := officialExample(t, name)
			for _, mode := range []string{"true", "text", "data"} {
				got, err := Summarize(res["resourceType"].(string), res, mode)
				if err != nil {
					t.Fatal(err)
				}
				if err := v.Validate(context.Background(), res["resourceType"].(string), got); err != nil {
					t.Errorf("%s _summary=%s: %v\n%s", name, mode, err, issuesText(err))
				}
			}
		}
	})
}

func TestSummarizeErrors(t *testing.T) {
	res := map[string]any{"resourceType": "Patient", "id": "p"}
	tests := []struct {
		name, typ, mode, expr, diag string
	}{
		{"UnknownMode", "Patient", "yes", "_summary", `not "yes"`},
		{"Count", "Patient", "count", "_summary", "searches"},
		{"UnknownType", "Nope", "true", "_summary", `unknown resource type "Nope"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Summarize(tt.typ, res, tt.mode)
			checkInvalid(t, err, tt.expr, tt.diag)
		})
	}
}

// checkInvalid checks that err is a 400 invalid *fhir.Error at expr whose
// diagnostics hold diag.
func checkInvalid(t *testing.T, err error, expr, diag string) {
	t.Helper()
	fe := fhir.AsError(err)
	if fe == nil {
		t.Fatalf("got %v, want a *fhir.Error", err)
	}
	if fe.HTTPStatus() != http.StatusBadRequest || fe.Code() != fhir.IssueInvalid {
		t.Errorf("got %d %s, want 400 invalid", fe.HTTPStatus(), fe.Code())
	}
	is := fe.Issues[0]
	if !slices.Equal(is.Expression, []string{expr}) || !strings.Contains(is.Diagnostics, diag) {
		t.Errorf("got %v %q, want %s and %q", is.Expression, is.Diagnostics, expr, diag)
	}
}

func TestSelectElements(t *testing.T) {
	tests := []struct {
		name     string
		example  string
		elements []string
		keys     []string
		tagged   bool
	}{
		{"Patient/NameBirthDate", "Patient-example", []string{"name", "birthDate"},
			[]string{"_birthDate", "birthDate", "id", "meta", "name", "resourceType"}, true},
		{"Patient/TypePrefix", "Patient-example", []string{"Patient.name", " gender ", "", "resourceType"},
			[]string{"gender", "id", "meta", "name", "resourceType"}, true},
		{"Patient/OtherTypeIgnored", "Patient-example", []string{"name", "Observation.code"},
			[]string{"id", "meta", "name", "resourceType"}, true},
		{"Patient/ChoiceByName", "Patient-example", []string{"deceased"},
			[]string{"deceasedBoolean", "id", "meta", "resourceType"}, true},
		{"Patient/ChoiceWithX", "Patient-example", []string{"deceased[x]"},
			[]string{"deceasedBoolean", "id", "meta", "resourceType"}, true},
		{"Patient/ChoiceOtherForm", "Patient-example", []string{"deceasedDateTime"},
			[]string{"id", "meta", "resourceType"}, true},
		{"Patient/Everything", "Patient-example",
			[]string{"text", "identifier", "active", "name", "telecom", "gender", "birthDate", "deceased", "address", "contact", "managingOrganization"},
			[]string{"_birthDate", "active", "address", "birthDate", "contact", "deceasedBoolean", "gender", "id", "identifier", "managingOrganization", "name", "resourceType", "telecom", "text"}, false},
		// status and code are mandatory, so always kept.
		{"Observation/Value", "Observation-example", []string{"value"},
			[]string{"code", "id", "meta", "resourceType", "status", "valueQuantity"}, true},
		{"Bundle/Entry", "Bundle-bundle-example", []string{"entry"},
			[]string{"entry", "id", "meta", "resourceType", "type"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := officialExample(t, tt.example)
			before := clone(res)
			typ := res["resourceType"].(string)
			got, err := SelectElements(typ, res, tt.elements)
			if err != nil {
				t.Fatalf("SelectElements: %v", err)
			}
			if !reflect.DeepEqual(res, before) {
				t.Errorf("SelectElements changed its input")
			}
			if k := keysOf(got); !slices.Equal(k, tt.keys) {
				t.Errorf("got keys %v, want %v", k, tt.keys)
			}
			want := 0
			if tt.tagged {
				want = 1
			}
			if n := subsetted(got); n != want {
				t.Errorf("got %d SUBSETTED tags, want %d", n, want)
			}
			for _, k := range tt.keys {
				if k != "meta" && !reflect.DeepEqual(got[k], res[k]) {
					t.Errorf("%s was not kept whole", k)
				}
			}
		})
	}
}

func TestSelectElementsErrors(t *testing.T) {
	res := map[string]any{"resourceType": "Patient", "id": "p"}
	tests := []struct {
		name, typ string
		elements  []string
		diag      string
	}{
		{"UnknownElement", "Patient", []string{"name", "foo"}, `Patient has no element "foo"`},
		{"BelowTopLevel", "Patient", []string{"name.given"}, `top-level elements only`},
		{"BelowTopLevelWithType", "Patient", []string{"Patient.name.given"}, `top-level elements only`},
		{"UnknownPrefix", "Patient", []string{"Foo.name"}, `Patient has no element "Foo"`},
		{"UnknownType", "Nope", []string{"name"}, `unknown resource type "Nope"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := SelectElements(tt.typ, res, tt.elements)
			checkInvalid(t, err, "_elements", tt.diag)
		})
	}
}
