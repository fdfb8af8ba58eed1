package fhirpath

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// sharedDir is the project's shared data, beside the repository.
const sharedDir = "../../../shared"

// suitePassFloor is the number of official tests that must pass; raise it
// when the engine gets better.
const suitePassFloor = 933

type suiteFile struct {
	Groups []suiteGroup `xml:"group"`
}

type suiteGroup struct {
	Name  string      `xml:"name,attr"`
	Tests []suiteTest `xml:"test"`
}

type suiteTest struct {
	Name       string `xml:"name,attr"`
	InputFile  string `xml:"inputfile,attr"`
	Mode       string `xml:"mode,attr"`
	Predicate  string `xml:"predicate,attr"`
	Ordered    string `xml:"ordered,attr"`
	Invalid    string `xml:"invalid,attr"`
	Expression struct {
		Text    string `xml:",chardata"`
		Invalid string `xml:"invalid,attr"`
	} `xml:"expression"`
	Outputs []struct {
		Type string `xml:"type,attr"`
		Text string `xml:",chardata"`
	} `xml:"output"`
}

// skipReasons names the tests that cannot work on JSON input.
var skipReasons = map[string]string{}

// fromXML names the tests whose input's JSON twin differs from the suite's
// XML: the JSON Observation example lacks the patient-age extension. They
// run on the XML, converted.
var fromXML = map[string]bool{
	"testFHIRPathIsFunction8":  true,
	"testFHIRPathIsFunction9":  true,
	"testFHIRPathIsFunction10": true,
}

func TestOfficialSuite(t *testing.T) {
	if testing.Short() {
		t.Skip("the FHIRPath suite is long; skipped under -short")
	}
	suitePath := filepath.Join(sharedDir, "fhir-test-cases/r4/fhirpath/tests-fhir-r4.xml")
	body, err := os.ReadFile(suitePath)
	if errors.Is(err, os.ErrNotExist) {
		t.Skipf("%s is absent", suitePath)
	}
	if err != nil {
		t.Fatal(err)
	}
	var suite suiteFile
	if err := xml.Unmarshal(body, &suite); err != nil {
		t.Fatal(err)
	}
	inputs := newInputs(t)
	type tally struct{ pass, fail, skip int }
	groups := map[string]*tally{}
	var order []string
	var total tally
	for _, g := range suite.Groups {
		tl := groups[g.Name]
		if tl == nil {
			tl = &tally{}
			groups[g.Name] = tl
			order = append(order, g.Name)
		}
		for _, tc := range g.Tests {
			if reason, ok := skipReasons[tc.Name]; ok {
				t.Logf("skip %s/%s: %s", g.Name, tc.Name, reason)
				tl.skip++
				continue
			}
			var res any
			if tc.InputFile != "" {
				var err error
				if res, err = inputs.load(tc.InputFile, fromXML[tc.Name]); err != nil {
					t.Logf("skip %s/%s: %v", g.Name, tc.Name, err)
					tl.skip++
					continue
				}
			}
			if msg := runSuiteTest(tc, res); msg != "" {
				t.Logf("FAIL %s/%s: %s\n\t%s", g.Name, tc.Name, msg, strings.TrimSpace(tc.Expression.Text))
				tl.fail++
			} else {
				tl.pass++
			}
		}
	}
	for _, name := range order {
		tl := groups[name]
		total.pass += tl.pass
		total.fail += tl.fail
		total.skip += tl.skip
		if tl.fail > 0 || tl.skip > 0 {
			t.Logf("group %s: %d passed, %d failed, %d skipped", name, tl.pass, tl.fail, tl.skip)
		}
	}
	t.Logf("official FHIRPath suite: %d passed, %d failed, %d skipped", total.pass, total.fail, total.skip)
	if total.pass < suitePassFloor {
		t.Errorf("got %d passing tests, want at least %d", total.pass, suitePassFloor)
	}
}

// runSuiteTest runs one test and returns why it failed, or "".
func runSuiteTest(tc suiteTest, resource any) string {
	invalid := tc.Expression.Invalid != "" || tc.Invalid != ""
	x, err := Compile(tc.Expression.Text)
	if err != nil {
		if invalid {
			return ""
		}
		return "compile: " + err.Error()
	}
	opts := &Options{Strict: tc.Mode == "strict"}
	got, err := x.Evaluate(resource, opts)
	if invalid {
		if err != nil {
			return ""
		}
		got := formatCollection(got)
		if len(got) > 200 {
			got = got[:200] + "..."
		}
		return "expected an error, got " + got
	}
	if err != nil {
		return "evaluate: " + err.Error()
	}
	if tc.Predicate == "true" {
		got = boolColl(len(got) > 0)
	}
	var want, have []string
	for _, o := range tc.Outputs {
		want = append(want, outputKey(o.Type, strings.TrimSpace(o.Text)))
	}
	for _, it := range got {
		typ := ""
		for _, o := range tc.Outputs {
			if o.Type != "" {
				typ = suiteType(it)
			}
		}
		have = append(have, outputKey(typ, formatItem(it)))
	}
	if tc.Ordered == "false" {
		sort.Strings(want)
		sort.Strings(have)
	}
	if strings.Join(want, "\n") != strings.Join(have, "\n") {
		return "got [" + strings.Join(have, ", ") + "], want [" + strings.Join(want, ", ") + "]"
	}
	return ""
}

func outputKey(typ, text string) string {
	if typ == "" {
		return text
	}
	return typ + ":" + text
}

// suiteType names an item's type as the suite does.
func suiteType(it Item) string {
	if it.typ == nil {
		return ""
	}
	if it.typ.Namespace == "System" {
		switch it.typ.Name {
		case "Quantity":
			return "Quantity"
		case "DateTime":
			return "dateTime"
		}
		return strings.ToLower(it.typ.Name)
	}
	return it.typ.Name
}

func formatItem(it Item) string {
	switch v := it.system().(type) {
	case DateTime:
		if v.kind == kindTime {
			return "@T" + v.String()
		}
		return "@" + v.String()
	case nil:
		b, _ := json.Marshal(it.value)
		return string(b)
	default:
		s, _ := toStringValue(v)
		str, _ := s.(string)
		return str
	}
}

func formatCollection(c Collection) string {
	var parts []string
	for _, it := range c {
		parts = append(parts, formatItem(it))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// inputs finds the JSON form of the suite's input files.
type inputs struct {
	t        *testing.T
	examples map[string][]byte // by lower-case file name, from the tarball
	cache    map[string]any
}

func newInputs(t *testing.T) *inputs {
	in := &inputs{t: t, examples: map[string][]byte{}, cache: map[string]any{}}
	f, err := os.Open(filepath.Join(sharedDir, "fhir-r4/examples-json.tar.gz"))
	if err != nil {
		t.Logf("no examples tarball: %v", err)
		return in
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(h.Name, ".json") {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		in.examples[strings.ToLower(filepath.Base(h.Name))] = b
	}
	return in
}

// load returns the decoded JSON for an input file named in the suite:
// a JSON file beside the suite as it is; for an XML file, the official JSON
// example of the same resource type and id.
func (in *inputs) load(name string, convert bool) (any, error) {
	cacheKey := fmt.Sprint(name, convert)
	if v, ok := in.cache[cacheKey]; ok {
		return v, nil
	}
	dir := filepath.Join(sharedDir, "fhir-test-cases/r4")
	var body []byte
	var err error
	switch {
	case strings.HasSuffix(name, ".json"):
		body, err = os.ReadFile(filepath.Join(dir, name))
	case convert:
		err = errNoJSON
	default:
		body, err = in.jsonFor(filepath.Join(dir, name))
	}
	if errors.Is(err, errNoJSON) {
		// No JSON twin: convert the XML itself.
		xmlBody, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		v, err := xmlToJSON(xmlBody)
		if err != nil {
			return nil, fmt.Errorf("converting %s: %w", name, err)
		}
		in.t.Logf("%s: converted from XML", name)
		in.cache[cacheKey] = v
		return v, nil
	}
	if err != nil {
		return nil, err
	}
	v, err := decodeJSON(body)
	if err != nil {
		return nil, err
	}
	in.cache[cacheKey] = v
	return v, nil
}

func (in *inputs) jsonFor(xmlPath string) ([]byte, error) {
	body, err := os.ReadFile(xmlPath)
	if err != nil {
		return nil, err
	}
	typ, id := xmlResourceID(body)
	base := strings.TrimSuffix(filepath.Base(xmlPath), ".xml")
	if b, ok := in.examples[strings.ToLower(base+".json")]; ok {
		return b, nil
	}
	if b, err := os.ReadFile(filepath.Join(filepath.Dir(xmlPath), "examples", base+".json")); err == nil {
		return b, nil
	}
	return nil, fmt.Errorf("%w of %s (%s/%s)", errNoJSON, filepath.Base(xmlPath), typ, id)
}

var errNoJSON = errors.New("no JSON equivalent")

// xmlResourceID reads the root element name and the id of a resource in XML.
func xmlResourceID(body []byte) (typ, id string) {
	dec := xml.NewDecoder(strings.NewReader(string(body)))
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return typ, id
		}
		switch el := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 1 {
				typ = el.Name.Local
			}
			if depth == 2 && el.Name.Local == "id" {
				for _, a := range el.Attr {
					if a.Name.Local == "value" {
						return typ, a.Value
					}
				}
			}
		case xml.EndElement:
			depth--
		}
	}
}

func decodeJSON(body []byte) (any, error) {
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}
