package patch

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/fhirhub/fhirhub/fhir"
)

// suiteDir holds the FHIR test cases shared with the other suites.
var suiteDir = filepath.Join("..", "..", "..", "shared", "fhir-test-cases", "r4", "patch")

// readSuite reads a suite file, or skips when the shared data is absent.
func readSuite(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(suiteDir, name))
	if errors.Is(err, os.ErrNotExist) {
		t.Skipf("%s is absent", name)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decodeJSON decodes JSON as the comparisons want it: numbers as json.Number.
func decodeJSON(t testing.TB, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	return v
}

// sameJSON compares two documents as JSON values (member order ignored).
func sameJSON(t testing.TB, got, want []byte) bool {
	t.Helper()
	return reflect.DeepEqual(decodeJSON(t, got), decodeJSON(t, want))
}

// wantStatus checks that err is a *fhir.Error with the status.
func wantStatus(t testing.TB, err error, status int) *fhir.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one with status %d", status)
	}
	fe := fhir.AsError(err)
	if fe == nil {
		t.Fatalf("got %T %v, want a *fhir.Error", err, err)
	}
	if got := fe.HTTPStatus(); got != status {
		t.Fatalf("got status %d (%v), want %d", got, err, status)
	}
	return fe
}
