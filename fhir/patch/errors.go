package patch

import (
	"fmt"

	"github.com/fhirhub/fhirhub/fhir"
)

// malformed reports a patch document that cannot be read (400).
func malformed(format string, args ...any) *fhir.Error {
	return fhir.Invalid("", format, args...)
}

// cannotApply reports a patch that is well formed but cannot be applied to
// this resource (422).
func cannotApply(format string, args ...any) *fhir.Error {
	return fhir.Unprocessable([]fhir.Issue{{
		Severity:    fhir.SeverityError,
		Code:        fhir.IssueProcessing,
		Diagnostics: fmt.Sprintf(format, args...),
	}})
}

// badResource reports a resource that is not a JSON object (400).
func badResource(err error) *fhir.Error {
	return fhir.Structure("patch: reading the resource: %v", err)
}
