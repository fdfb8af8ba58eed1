package fhirpath

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// examples holds the official R4 JSON examples, decoded, by resource type.
type examples map[string][]map[string]any

// loadExamples reads the examples tarball, or skips the test when the shared
// data is absent.
func loadExamples(tb testing.TB) examples {
	tb.Helper()
	path := filepath.Join(sharedDir, "fhir-r4/examples-json.tar.gz")
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		tb.Skipf("%s is absent", path)
	}
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		tb.Fatal(err)
	}
	out := examples{}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			tb.Fatal(err)
		}
		if !strings.HasSuffix(h.Name, ".json") {
			continue
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			tb.Fatal(err)
		}
		v, err := decodeJSON(body)
		if err != nil {
			tb.Fatalf("%s: %v", h.Name, err)
		}
		m, ok := v.(map[string]any)
		if !ok {
			continue
		}
		rt, _ := m["resourceType"].(string)
		out[rt] = append(out[rt], m)
	}
}

type searchParameter struct {
	ID         string   `json:"id"`
	Code       string   `json:"code"`
	Base       []string `json:"base"`
	Expression string   `json:"expression"`
	Component  []struct {
		Expression string `json:"expression"`
	} `json:"component"`
}

func loadSearchParameters(tb testing.TB) []searchParameter {
	tb.Helper()
	path := filepath.Join(sharedDir, "fhir-r4/definitions/search-parameters.json.gz")
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		tb.Skipf("%s is absent", path)
	}
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		tb.Fatal(err)
	}
	var bundle struct {
		Entry []struct {
			Resource searchParameter `json:"resource"`
		} `json:"entry"`
	}
	if err := json.NewDecoder(zr).Decode(&bundle); err != nil {
		tb.Fatal(err)
	}
	var out []searchParameter
	for _, e := range bundle.Entry {
		out = append(out, e.Resource)
	}
	return out
}

// TestSearchParameters compiles every R4 search parameter expression and
// evaluates it against every official example of its base types.
func TestSearchParameters(t *testing.T) {
	params := loadSearchParameters(t)
	ex := loadExamples(t)
	compiled, evaluated, results := 0, 0, 0
	var failures []string
	for _, sp := range params {
		if sp.Expression == "" {
			continue
		}
		x, err := Compile(sp.Expression)
		if err != nil {
			failures = append(failures, sp.ID+": compile: "+err.Error())
			continue
		}
		compiled++
		for _, base := range sp.Base {
			var targets []map[string]any
			if base == "Resource" || base == "DomainResource" {
				for _, list := range ex {
					targets = append(targets, list...)
				}
			} else {
				targets = ex[base]
			}
			for _, r := range targets {
				got, err := x.Evaluate(r, nil)
				evaluated++
				if err != nil {
					failures = append(failures, sp.ID+" on "+base+"/"+r["id"].(string)+": "+err.Error())
					continue
				}
				results += len(got)
				// A composite's components are evaluated on each value.
				for _, c := range sp.Component {
					cx, err := Compile(c.Expression)
					if err != nil {
						failures = append(failures, sp.ID+": component: compile: "+err.Error())
						break
					}
					for _, row := range got {
						sub, err := cx.Evaluate(r, &Options{Context: row})
						if err != nil {
							failures = append(failures, sp.ID+" on "+base+"/"+r["id"].(string)+": component "+c.Expression+": "+err.Error())
						}
						results += len(sub)
					}
				}
				for _, it := range got {
					if it.Type() == nil {
						failures = append(failures, sp.ID+" on "+base+"/"+r["id"].(string)+": an item has no type")
						break
					}
				}
			}
		}
	}
	sort.Strings(failures)
	for _, f := range failures {
		t.Error(f)
	}
	t.Logf("search parameters: %d expressions compiled, %d evaluations, %d values extracted, %d failures",
		compiled, evaluated, results, len(failures))
}
