package conformance

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"testing"
)

// examplesPath is the archive of the official R4 examples, in ../shared beside
// the repository.
const examplesPath = "../../shared/fhir-r4/examples-json.tar.gz"

// example is one official example resource.
type example struct {
	Name  string // file name without .json: "Patient-example"
	Type  string
	Value map[string]any
}

var (
	examplesOnce sync.Once
	examples     []example
	examplesErr  error

	validatorOnce sync.Once
	validator     *Validator
	validatorErr  error
)

// officialExamples returns the official R4 examples, sorted by name; it skips
// tb when ../shared is not there.
func officialExamples(tb testing.TB) []example {
	tb.Helper()
	examplesOnce.Do(func() { examples, examplesErr = readExamples(examplesPath) })
	if errors.Is(examplesErr, fs.ErrNotExist) {
		tb.Skipf("%s is not there; skipping the official examples", examplesPath)
	}
	if examplesErr != nil {
		tb.Fatalf("reading the official examples: %v", examplesErr)
	}
	return examples
}

// officialExample returns the example of the given name.
func officialExample(tb testing.TB, name string) map[string]any {
	tb.Helper()
	for _, ex := range officialExamples(tb) {
		if ex.Name == name {
			return clone(ex.Value).(map[string]any)
		}
	}
	tb.Fatalf("no official example %s", name)
	return nil
}

func readExamples(p string) ([]example, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(zr)
	var out []example
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if h.Typeflag != tar.TypeReg || !strings.HasSuffix(h.Name, ".json") {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		v, err := decode(data)
		if err != nil {
			return nil, err
		}
		m, _ := v.(map[string]any)
		rt, _ := m["resourceType"].(string)
		out = append(out, example{Name: strings.TrimSuffix(path.Base(h.Name), ".json"), Type: rt, Value: m})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// decode decodes JSON as the server does, numbers as json.Number.
func decode(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}

// mustDecode decodes a JSON object, failing tb on error.
func mustDecode(tb testing.TB, s string) map[string]any {
	tb.Helper()
	v, err := decode([]byte(s))
	if err != nil {
		tb.Fatalf("decoding %s: %v", s, err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		tb.Fatalf("%s is not an object", s)
	}
	return m
}

// testValidator returns a Validator shared by the tests and benchmarks.
func testValidator(tb testing.TB) *Validator {
	tb.Helper()
	validatorOnce.Do(func() { validator, validatorErr = NewValidator() })
	if validatorErr != nil {
		tb.Fatalf("NewValidator: %v", validatorErr)
	}
	return validator
}

// clone copies a decoded JSON value deeply.
func clone(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, x := range v {
			m[k] = clone(x)
		}
		return m
	case []any:
		s := make([]any, len(v))
		for i, x := range v {
			s[i] = clone(x)
		}
		return s
	default:
		return v
	}
}
