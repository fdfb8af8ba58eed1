package smart

import (
	"errors"
	"net/http"
)

// OAuthError is an error of the OAuth 2.0 endpoints (RFC 6749 section 5.2),
// rendered as {"error", "error_description"} with its HTTP status.
type OAuthError struct {
	Code        string // invalid_request, invalid_client, invalid_grant, …
	Description string
	Status      int
}

func (e *OAuthError) Error() string { return "smart: " + e.Code + ": " + e.Description }

func oauthErr(code, desc string) *OAuthError {
	status := http.StatusBadRequest
	switch code {
	case "invalid_client", "invalid_token":
		status = http.StatusUnauthorized
	case "insufficient_scope", "access_denied":
		status = http.StatusForbidden
	case "server_error":
		status = http.StatusInternalServerError
	}
	return &OAuthError{Code: code, Description: desc, Status: status}
}

func invalidRequest(desc string) error     { return oauthErr("invalid_request", desc) }
func invalidClient(desc string) error      { return oauthErr("invalid_client", desc) }
func invalidGrant(desc string) error       { return oauthErr("invalid_grant", desc) }
func unauthorizedClient(desc string) error { return oauthErr("unauthorized_client", desc) }
func invalidScope(desc string) error       { return oauthErr("invalid_scope", desc) }

var errServer = oauthErr("server_error", "the authorization server failed; see its log")

// writeOAuthError renders err; errors that are not OAuthErrors are
// server errors, whose detail stays in the log.
func writeOAuthError(w http.ResponseWriter, err error) {
	var oe *OAuthError
	if !errors.As(err, &oe) {
		oe = errServer
	}
	w.Header().Set("Cache-Control", "no-store")
	if oe.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="fhirhub"`)
	}
	body := map[string]string{"error": oe.Code}
	if oe.Description != "" {
		body["error_description"] = oe.Description
	}
	writeJSON(w, oe.Status, body)
}

// fail logs an unexpected error and renders it.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var oe *OAuthError
	if !errors.As(err, &oe) {
		s.Logger.Error("authorization request failed", "path", r.URL.Path, "err", err)
	}
	writeOAuthError(w, err)
}
