// Package fhir is the domain of the server: the stored resource value, the Store
// contract every storage engine implements, the write path (Service) that validates,
// versions and stores resources, and the one error type that becomes an
// OperationOutcome.
//
// It imports no database driver, no HTTP framework and no message broker; the
// adapters in its subpackages (sqlitestore, mongostore, rest) depend on it, never
// the other way round.
package fhir
