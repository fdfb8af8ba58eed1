// Package rest is the FHIR RESTful API over HTTP, on echo: routing, content
// negotiation, headers (ETag, Last-Modified, Location, Prefer), paging links,
// SMART on FHIR authorization (bearer tokens, and each interaction limited to
// what the token's scopes grant; see authz.go), and the one place where
// errors become OperationOutcomes. Handlers parse the request, authorize,
// call fhir.Service and render; they hold no business logic.
package rest
