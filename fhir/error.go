package fhir

import (
	"errors"
	"fmt"
	"net/http"
)

// IssueType is an OperationOutcome issue code (http://hl7.org/fhir/issue-type).
type IssueType string

// The issue types the server reports.
const (
	IssueInvalid         IssueType = "invalid"
	IssueStructure       IssueType = "structure"
	IssueRequired        IssueType = "required"
	IssueValue           IssueType = "value"
	IssueInvariant       IssueType = "invariant"
	IssueProcessing      IssueType = "processing"
	IssueNotSupported    IssueType = "not-supported"
	IssueDuplicate       IssueType = "duplicate"
	IssueMultipleMatches IssueType = "multiple-matches"
	IssueNotFound        IssueType = "not-found"
	IssueDeleted         IssueType = "deleted"
	IssueTooLong         IssueType = "too-long"
	IssueBusinessRule    IssueType = "business-rule"
	IssueConflict        IssueType = "conflict"
	IssueSecurity        IssueType = "security"
	IssueLogin           IssueType = "login"
	IssueForbidden       IssueType = "forbidden"
	IssueException       IssueType = "exception"
	IssueTimeout         IssueType = "timeout"
	IssueThrottled       IssueType = "throttled"
	IssueInformational   IssueType = "informational"
)

// Severity is an OperationOutcome issue severity.
type Severity string

// Issue severities.
const (
	SeverityFatal       Severity = "fatal"
	SeverityError       Severity = "error"
	SeverityWarning     Severity = "warning"
	SeverityInformation Severity = "information"
)

// Issue is one OperationOutcome issue.
type Issue struct {
	Severity    Severity
	Code        IssueType
	Diagnostics string
	// Expression locates the problem, FHIRPath-like (Patient.name[0].given).
	Expression []string
}

// Error is the one error type of the server. Everything a client did wrong, and
// everything the server could not do, is an *Error by the time it reaches the
// HTTP layer, which renders it as an OperationOutcome with Status.
type Error struct {
	// Status is the HTTP status; zero means the one StatusFor gives for the
	// first issue's code.
	Status int
	Issues []Issue
	// Header holds response headers the error needs (Location on a 410, say).
	Header map[string]string
	cause  error
}

func (e *Error) Error() string {
	if len(e.Issues) == 0 {
		return "fhir: error"
	}
	msg := e.Issues[0].Diagnostics
	if len(e.Issues[0].Expression) > 0 {
		msg += " (at " + e.Issues[0].Expression[0] + ")"
	}
	if len(e.Issues) > 1 {
		msg += fmt.Sprintf(" (and %d more issues)", len(e.Issues)-1)
	}
	if e.cause != nil {
		msg += ": " + e.cause.Error()
	}
	return msg
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.cause }

// HTTPStatus is the status the error is answered with.
func (e *Error) HTTPStatus() int {
	if e.Status != 0 {
		return e.Status
	}
	if len(e.Issues) == 0 {
		return http.StatusInternalServerError
	}
	return StatusFor(e.Issues[0].Code)
}

// Code is the issue type of the first issue.
func (e *Error) Code() IssueType {
	if len(e.Issues) == 0 {
		return IssueException
	}
	return e.Issues[0].Code
}

// StatusClientClosedRequest is the status recorded (in logs and metrics) for a
// request its client cancelled; the client never sees it.
const StatusClientClosedRequest = 499

// statusByIssue is the one table from issue type to HTTP status.
var statusByIssue = map[IssueType]int{
	IssueInvalid:         http.StatusBadRequest,
	IssueStructure:       http.StatusBadRequest,
	IssueRequired:        http.StatusBadRequest,
	IssueValue:           http.StatusBadRequest,
	IssueInvariant:       http.StatusBadRequest,
	IssueProcessing:      http.StatusUnprocessableEntity,
	IssueBusinessRule:    http.StatusUnprocessableEntity,
	IssueNotSupported:    http.StatusBadRequest,
	IssueDuplicate:       http.StatusConflict,
	IssueConflict:        http.StatusConflict,
	IssueMultipleMatches: http.StatusPreconditionFailed,
	IssueNotFound:        http.StatusNotFound,
	IssueDeleted:         http.StatusGone,
	IssueTooLong:         http.StatusRequestEntityTooLarge,
	IssueSecurity:        http.StatusForbidden,
	IssueForbidden:       http.StatusForbidden,
	IssueLogin:           http.StatusUnauthorized,
	IssueTimeout:         http.StatusServiceUnavailable,
	IssueThrottled:       http.StatusTooManyRequests,
	IssueException:       http.StatusInternalServerError,
	IssueInformational:   http.StatusOK,
}

// StatusFor maps an issue type to the HTTP status used when it is the first issue.
func StatusFor(code IssueType) int {
	if s, ok := statusByIssue[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

func newError(status int, code IssueType, expr string, format string, args ...any) *Error {
	is := Issue{Severity: SeverityError, Code: code, Diagnostics: fmt.Sprintf(format, args...)}
	if expr != "" {
		is.Expression = []string{expr}
	}
	return &Error{Status: status, Issues: []Issue{is}}
}

// Errorf returns an error of the given issue type with the table's status.
func Errorf(code IssueType, format string, args ...any) *Error {
	return newError(0, code, "", format, args...)
}

// Invalid reports a request the server cannot accept (400); expr locates it.
func Invalid(expr string, format string, args ...any) *Error {
	return newError(http.StatusBadRequest, IssueInvalid, expr, format, args...)
}

// Structure reports content that cannot be parsed (400).
func Structure(format string, args ...any) *Error {
	return newError(http.StatusBadRequest, IssueStructure, "", format, args...)
}

// NotFound reports an unknown type, resource or version (404).
func NotFound(format string, args ...any) *Error {
	return newError(http.StatusNotFound, IssueNotFound, "", format, args...)
}

// Gone reports a deleted resource (410).
func Gone(format string, args ...any) *Error {
	return newError(http.StatusGone, IssueDeleted, "", format, args...)
}

// Conflict reports a write that conflicts with the stored state (409).
func Conflict(format string, args ...any) *Error {
	return newError(http.StatusConflict, IssueConflict, "", format, args...)
}

// PreconditionFailed reports a failed If-Match or a conditional request whose
// criteria matched more than one resource (412).
func PreconditionFailed(code IssueType, format string, args ...any) *Error {
	return newError(http.StatusPreconditionFailed, code, "", format, args...)
}

// PreconditionRequired reports a missing If-Match where one is required (428).
func PreconditionRequired(format string, args ...any) *Error {
	return newError(http.StatusPreconditionRequired, IssueConflict, "", format, args...)
}

// Unauthorized reports a request without valid credentials (401, issue
// login); challenge is the WWW-Authenticate header to answer with.
func Unauthorized(challenge string, format string, args ...any) *Error {
	e := newError(http.StatusUnauthorized, IssueLogin, "", format, args...)
	e.Header = map[string]string{"WWW-Authenticate": challenge}
	return e
}

// Forbidden reports a request the credentials do not allow (403).
func Forbidden(format string, args ...any) *Error {
	return newError(http.StatusForbidden, IssueForbidden, "", format, args...)
}

// NotSupported reports an interaction or format the server does not support.
func NotSupported(status int, format string, args ...any) *Error {
	return newError(status, IssueNotSupported, "", format, args...)
}

// TooLarge reports a request body over the limit (413).
func TooLarge(format string, args ...any) *Error {
	return newError(http.StatusRequestEntityTooLarge, IssueTooLong, "", format, args...)
}

// Unprocessable reports content that is valid JSON but not a valid resource (422).
func Unprocessable(issues []Issue) *Error {
	return &Error{Status: http.StatusUnprocessableEntity, Issues: issues}
}

// Internal wraps an unexpected failure (500); the cause is logged, never shown.
func Internal(cause error, format string, args ...any) *Error {
	e := newError(http.StatusInternalServerError, IssueException, "", format, args...)
	e.cause = cause
	return e
}

// Unavailable reports a store or dependency that cannot be reached (503).
func Unavailable(cause error, format string, args ...any) *Error {
	e := newError(http.StatusServiceUnavailable, IssueTimeout, "", format, args...)
	e.cause = cause
	return e
}

// Wrap attaches a cause to an error and returns it.
func (e *Error) Wrap(cause error) *Error { e.cause = cause; return e }

// AsError returns err as an *Error, or nil when it is not one.
func AsError(err error) *Error {
	var fe *Error
	if errors.As(err, &fe) {
		return fe
	}
	return nil
}

// ErrorStatus is the HTTP status for any error: that of an *Error, or 500.
func ErrorStatus(err error) int {
	if fe := AsError(err); fe != nil {
		return fe.HTTPStatus()
	}
	return http.StatusInternalServerError
}

// Sentinel causes the stores return, wrapped in *Error or bare.
var (
	// ErrVersionConflict: the resource's current version is not the one the write expected.
	ErrVersionConflict = errors.New("fhir: version conflict")
	// ErrNotFound: no such resource or version.
	ErrNotFound = errors.New("fhir: not found")
)
