// Package search is the FHIR search semantics of the server, shared by every
// store: the registry of search parameters (the 1,375 official R4
// SearchParameters plus the common ones, and custom SearchParameter resources
// added at run time), the parsing of a search request into a Query, the
// extraction of index entries from a resource, and an in-memory matcher that
// decides whether a resource matches a query. Stores compile a Query to their
// own query language over the same entries; the matcher is the reference they
// are tested against, and what subscriptions evaluate criteria with.
package search
