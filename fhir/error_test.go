package fhir

import (
	"errors"
	"net/http"
	"testing"
)

func TestStatusFor(t *testing.T) {
	tests := []struct {
		code IssueType
		want int
	}{
		{IssueInvalid, 400}, {IssueStructure, 400}, {IssueNotFound, 404}, {IssueDeleted, 410},
		{IssueConflict, 409}, {IssueMultipleMatches, 412}, {IssueTooLong, 413},
		{IssueProcessing, 422}, {IssueException, 500}, {IssueType("made-up"), 500},
	}
	for _, tt := range tests {
		t.Run(string(tt.code), func(t *testing.T) {
			if got := StatusFor(tt.code); got != tt.want {
				t.Errorf("StatusFor(%q) = %d, want %d", tt.code, got, tt.want)
			}
		})
	}
}

func TestErrorStatusAndCause(t *testing.T) {
	cause := errors.New("disk on fire")
	err := Internal(cause, "sqlitestore: write Patient/1")
	if !errors.Is(err, cause) {
		t.Fatal("Internal does not wrap its cause")
	}
	if got := ErrorStatus(err); got != http.StatusInternalServerError {
		t.Errorf("got %d, want 500", got)
	}
	if got := ErrorStatus(errors.New("plain")); got != 500 {
		t.Errorf("plain error: got %d, want 500", got)
	}
	if got := ErrorStatus(PreconditionFailed(IssueConflict, "stale")); got != 412 {
		t.Errorf("got %d, want 412", got)
	}
	a, b := NotFound("x"), NotFound("x")
	if a == b {
		t.Error("constructors must return fresh values")
	}
}
