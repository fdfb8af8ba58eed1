// Package rest is the FHIR RESTful API over HTTP, on echo: routing, content
// negotiation, headers (ETag, Last-Modified, Location, Prefer), paging links,
// and the one place where errors become OperationOutcomes. Handlers parse the
// request, call fhir.Service and render; they hold no business logic.
package rest
