package main

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"testing"
)

// TestElementsCurrent checks that the committed element table is what the
// generator makes from the definitions in ../shared.
func TestElementsCurrent(t *testing.T) {
	if testing.Short() {
		t.Skip("decodes the 3.4 MB StructureDefinition bundle")
	}
	const in = "../../../../shared/fhir-r4/definitions/profiles-resources.json.gz"
	if _, err := os.Stat(in); errors.Is(err, fs.ErrNotExist) {
		t.Skipf("%s is not there", in)
	}
	f, err := build(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Types) != 146 || f.FHIRVersion != "4.0.1" {
		t.Errorf("got %d types of FHIR %s, want 146 of 4.0.1", len(f.Types), f.FHIRVersion)
	}
	got, err := encode(f)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("../../definitions/elements.json.gz")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("definitions/elements.json.gz is out of date; run go generate ./conformance")
	}
}
