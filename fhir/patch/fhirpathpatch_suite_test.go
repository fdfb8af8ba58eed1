package patch

import (
	"encoding/xml"
	"io"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/fhirhub/fhirhub/fhir/patch/internal/fhirxml"
)

// TestFHIRPathPatchSuite runs the FHIR test cases for FHIRPath Patch, whose
// resources and Parameters are FHIR XML, converted to JSON first.
func TestFHIRPathPatchSuite(t *testing.T) {
	type inner struct {
		XML []byte `xml:",innerxml"`
	}
	var suite struct {
		Cases []struct {
			Name   string `xml:"name,attr"`
			Input  inner  `xml:"input"`
			Diff   inner  `xml:"diff"`
			Output *inner `xml:"output"`
			Error  *struct {
				Msg string `xml:"msg,attr"`
			} `xml:"error"`
		} `xml:"case"`
	}
	if err := xml.Unmarshal(readSuite(t, "fhir-patch-tests.xml"), &suite); err != nil {
		t.Fatal(err)
	}
	passed := 0
	for _, c := range suite.Cases {
		t.Run(c.Name, func(t *testing.T) {
			input, err := fhirxml.ToJSON(c.Input.XML)
			if err != nil {
				t.Fatalf("converting the input: %v", err)
			}
			params, err := fhirxml.ToJSON(c.Diff.XML)
			if err != nil {
				t.Fatalf("converting the diff: %v", err)
			}
			got, err := FHIRPathPatch(input, params)
			if c.Error != nil {
				if err == nil {
					t.Fatalf("got %s, want an error (%s)", got, c.Error.Msg)
				}
				wantStatus(t, err, http.StatusUnprocessableEntity)
				passed++
				return
			}
			if err != nil {
				t.Fatalf("got error %v\nparams %s", err, params)
			}
			if c.Output == nil {
				t.Fatal("the case has neither output nor error")
			}
			want, err := fhirxml.ToJSON(c.Output.XML)
			if err != nil {
				t.Fatalf("converting the output: %v", err)
			}
			g, w := normalizeNarrative(decodeJSON(t, got)), normalizeNarrative(decodeJSON(t, want))
			if !reflect.DeepEqual(g, w) {
				t.Fatalf("got  %s\nwant %s", got, want)
			}
			passed++
		})
	}
	t.Logf("FHIRPath Patch suite: %d of %d cases pass", passed, len(suite.Cases))
}

// normalizeNarrative rewrites every "div" string as its XHTML with
// whitespace runs collapsed and entities decoded, since the suite's expected
// narrative comes from XML text and the patched one from a string value.
func normalizeNarrative(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && k == "div" {
				x[k] = canonicalXHTML(s)
				continue
			}
			x[k] = normalizeNarrative(e)
		}
	case []any:
		for i, e := range x {
			x[i] = normalizeNarrative(e)
		}
	}
	return v
}

func canonicalXHTML(s string) string {
	dec := xml.NewDecoder(strings.NewReader(s))
	var b strings.Builder
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return s
		}
		switch t := tok.(type) {
		case xml.StartElement:
			var attrs []string
			for _, a := range t.Attr {
				if a.Name.Local != "xmlns" && a.Name.Space != "xmlns" {
					attrs = append(attrs, a.Name.Local+"="+a.Value)
				}
			}
			sort.Strings(attrs)
			b.WriteString("<" + t.Name.Local + " " + strings.Join(attrs, " ") + ">")
		case xml.EndElement:
			b.WriteString("</" + t.Name.Local + ">")
		case xml.CharData:
			if f := strings.Fields(string(t)); len(f) > 0 {
				b.WriteString(strings.Join(f, " "))
			}
		}
	}
	return b.String()
}
