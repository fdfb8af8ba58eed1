package fhirpath

import (
	"runtime"
	"testing"
)

// benchResource returns an official example, or skips without shared data.
func benchResource(tb testing.TB, typ, id string) map[string]any {
	tb.Helper()
	for _, r := range loadExamples(tb)[typ] {
		if r["id"] == id {
			return r
		}
	}
	tb.Skipf("no %s/%s example", typ, id)
	return nil
}

func BenchmarkEvaluate(b *testing.B) {
	obs := benchResource(b, "Observation", "example")
	pat := benchResource(b, "Patient", "example")
	runtime.GC() // drop the other examples
	cases := []struct {
		name, expr string
		resource   map[string]any
	}{
		{"ObservationCode", "Observation.code", obs},
		{"SubjectIsPatient", "Observation.subject.where(resolve() is Patient)", obs},
		{"ValueAsQuantity", "(Observation.value as Quantity)", obs},
		{"PatientName", "Patient.name", pat},
		{"PatientFamily", "Patient.name.family", pat},
		{"MultiBase", "Patient.gender | Person.gender | Practitioner.gender | RelatedPerson.gender", pat},
	}
	for _, c := range cases {
		x := MustCompile(c.expr)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := x.Evaluate(c.resource, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkCompile(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile("Observation.subject.where(resolve() is Patient)"); err != nil {
			b.Fatal(err)
		}
	}
}
