package fhirpath

import "testing"

// TestBounded checks that expressions that would run away are stopped.
func TestBounded(t *testing.T) {
	for _, expr := range []string{
		"1.repeat($this + 1)",
		"2.power(999999999)",
		"1.5.round(1000000000)",
	} {
		t.Run(expr, func(t *testing.T) {
			got, err := MustCompile(expr).Evaluate(nil, nil)
			if err == nil && len(got) != 0 {
				t.Errorf("got %v, want an error or empty", got)
			}
		})
	}
}
