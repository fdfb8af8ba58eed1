package rest

import (
	"bytes"
	"encoding/json"

	"github.com/fhirhub/fhirhub/fhir"
)

// outcomeJSON renders an OperationOutcome for issues.
func outcomeJSON(issues []fhir.Issue) []byte {
	type issue struct {
		Severity    string   `json:"severity"`
		Code        string   `json:"code"`
		Diagnostics string   `json:"diagnostics,omitempty"`
		Expression  []string `json:"expression,omitempty"`
	}
	oo := struct {
		ResourceType string  `json:"resourceType"`
		Issue        []issue `json:"issue"`
	}{ResourceType: "OperationOutcome"}
	for _, is := range issues {
		oo.Issue = append(oo.Issue, issue{string(is.Severity), string(is.Code), is.Diagnostics, is.Expression})
	}
	if len(oo.Issue) == 0 {
		oo.Issue = []issue{{Severity: "error", Code: "exception", Diagnostics: "unknown error"}}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(oo)
	return bytes.TrimRight(buf.Bytes(), "\n")
}

func informational(msg string) []byte {
	return outcomeJSON([]fhir.Issue{{Severity: fhir.SeverityInformation, Code: fhir.IssueInformational, Diagnostics: msg}})
}
