package main

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"testing"
)

// TestTableUpToDate checks that the embedded table matches what the
// generator makes from the definitions in ../shared.
func TestTableUpToDate(t *testing.T) {
	if testing.Short() {
		t.Skip("regenerating the model is slow; skipped under -short")
	}
	const defs = "../../../../../shared/fhir-r4/definitions"
	if _, err := os.Stat(defs); errors.Is(err, os.ErrNotExist) {
		t.Skipf("%s is absent", defs)
	}
	want, err := Table(defs)
	if err != nil {
		t.Fatal(err)
	}
	gz, err := os.ReadFile("../../r4model.gz")
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("r4model.gz is out of date: run go generate ./fhir/fhirpath")
	}
}
