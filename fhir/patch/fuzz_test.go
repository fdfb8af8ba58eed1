package patch

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/fhirhub/fhirhub/fhir"
	"github.com/fhirhub/fhirhub/fhir/patch/internal/fhirxml"
)

// checkResult is what every patch promises: a 400 or 422 *fhir.Error, or a
// JSON object that reads back as the same bytes.
func checkResult(t *testing.T, out []byte, err error) {
	t.Helper()
	if err != nil {
		fe := fhir.AsError(err)
		if fe == nil {
			t.Fatalf("got %T %v, want a *fhir.Error", err, err)
		}
		if s := fe.HTTPStatus(); s != http.StatusBadRequest && s != http.StatusUnprocessableEntity {
			t.Fatalf("got status %d (%v), want 400 or 422", s, err)
		}
		return
	}
	if !json.Valid(out) {
		t.Fatalf("got invalid JSON %q", out)
	}
	tree, perr := parse(out)
	if perr != nil {
		t.Fatalf("the result does not read back: %v", perr)
	}
	if _, ok := tree.(*object); !ok {
		t.Fatalf("got %s, want a JSON object", out)
	}
	if again := encode(tree); !bytes.Equal(again, out) {
		t.Fatalf("the result is not stable:\n%s\n%s", out, again)
	}
}

func FuzzJSONPatch(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join(suiteDir, "json-patch-tests.json")); err == nil {
		var cases []struct {
			Doc   json.RawMessage `json:"doc"`
			Patch json.RawMessage `json:"patch"`
		}
		if json.Unmarshal(b, &cases) == nil {
			for _, c := range cases {
				f.Add([]byte(c.Doc), []byte(c.Patch))
			}
		}
	}
	f.Add([]byte(patient), []byte(`[{"op":"replace","path":"/name/0/given/1","value":"J"},{"op":"move","from":"/contained/0","path":"/x"}]`))
	f.Add([]byte(`{"a":[1.50,{"b~/":null}]}`), []byte(`[{"op":"copy","from":"/a/1","path":"/a/-"},{"op":"test","path":"/a/0","value":15e-1}]`))
	f.Fuzz(func(t *testing.T, doc, patch []byte) {
		out, err := JSONPatch(doc, patch)
		checkResult(t, out, err)
	})
}

func FuzzFHIRPathPatch(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join(suiteDir, "fhir-patch-tests.xml")); err == nil {
		type inner struct {
			XML []byte `xml:",innerxml"`
		}
		var suite struct {
			Cases []struct {
				Input inner `xml:"input"`
				Diff  inner `xml:"diff"`
			} `xml:"case"`
		}
		if xml.Unmarshal(b, &suite) == nil {
			for _, c := range suite.Cases {
				in, err1 := fhirxml.ToJSON(c.Input.XML)
				p, err2 := fhirxml.ToJSON(c.Diff.XML)
				if err1 == nil && err2 == nil {
					f.Add(in, p)
				}
			}
		}
	}
	f.Add([]byte(patient), []byte(params(op(ptype("move"), ppath("Patient.name.given"), pint("source", 1), pint("destination", 0)))))
	f.Add([]byte(patient), []byte(params(op(ptype("delete"), ppath("Patient.birthDate.extension[0]")))))
	f.Add([]byte(patient), []byte(params(op(ptype("add"), ppath("Patient.name[0]"), pname("given"), pvalue(`"valueString":"x","_valueString":{"id":"i"}`)))))
	f.Add([]byte(patient), []byte(params(op(ptype("replace"), ppath("Patient.deceased"), pvalue(`"valueDateTime":"2020"`)))))
	f.Add([]byte(patient), []byte(params(op(ptype("insert"), ppath("Patient.contained"), pint("index", 0), pvalue(`"resource":{"resourceType":"Organization"}`)))))
	f.Fuzz(func(t *testing.T, doc, params []byte) {
		out, err := FHIRPathPatch(doc, params)
		checkResult(t, out, err)
		if err == nil && resourceTypeOf(mustObject(t, out)) == nil {
			t.Fatalf("got %s, want a resource", out)
		}
	})
}

func mustObject(t *testing.T, b []byte) *object {
	t.Helper()
	v, err := parse(b)
	if err != nil {
		t.Fatal(err)
	}
	o, _ := v.(*object)
	if o == nil {
		t.Fatalf("got %s, want an object", b)
	}
	return o
}

// FuzzFHIRPathPatchOperation builds one well-formed operation from its parts,
// to reach the edits more often than random Parameters do.
func FuzzFHIRPathPatchOperation(f *testing.F) {
	f.Add("delete", "Patient.name[0].given[1]", "", "", 0, 0, 0)
	f.Add("add", "Patient.name[0]", "given", `"valueString":"x","_valueString":{"id":"i"}`, 0, 0, 0)
	f.Add("add", "Patient.birthDate", "extension", `"part":[{"name":"url","valueUri":"u"}]`, 0, 0, 0)
	f.Add("insert", "Patient.name.given", "", `"valueString":"x"`, 1, 0, 0)
	f.Add("move", "Patient.name.given", "", "", 0, 1, 0)
	f.Add("replace", "Patient.deceased", "", `"valueDateTime":"2020"`, 0, 0, 0)
	f.Add("replace", "Patient.contained[0].value", "", `"valueString":"x"`, 0, 0, 0)
	f.Add("delete", "Patient.birthDate.extension", "", "", 0, 0, 0)
	f.Fuzz(func(t *testing.T, kind, path, name, value string, index, source, dest int) {
		parts := []string{ptype(kind), ppath(path), pint("index", index), pint("source", source), pint("destination", dest)}
		if name != "" {
			parts = append(parts, pname(name))
		}
		if value != "" {
			parts = append(parts, pvalue(value))
		}
		out, err := FHIRPathPatch([]byte(patient), []byte(params(op(parts...))))
		checkResult(t, out, err)
	})
}
