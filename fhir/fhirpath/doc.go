// Package fhirpath evaluates FHIRPath expressions (the normative N1 release
// used by FHIR R4) against resources decoded from JSON with UseNumber:
// map[string]any, []any, string, bool, json.Number and nil.
//
// The server uses it to extract search index values (every R4
// SearchParameter.expression is evaluated on each write) and, later, for
// FHIRPath Patch. An expression is parsed once:
//
//	x, err := fhirpath.Compile("Observation.subject.where(resolve() is Patient)")
//	...
//	got, err := x.Evaluate(doc.Value, nil)
//
// Compile reports a *SyntaxError with the byte offset of the problem; it
// also checks paths that start with a resource type against the R4 model
// (Observation.valueQuantity is an error: choice elements are named without
// their type, Observation.value). Evaluate reports an *Error when the input
// breaks a rule of the language (several items where one is required,
// operands that cannot be compared).
//
// # Types
//
// Each Item of a result carries its FHIR type (Quantity, dateTime, code,
// HumanName, a resource type, or a backbone element's path such as
// Patient.contact) or, for values the expression computed, its System type
// (String, Integer, Decimal, Boolean, Date, DateTime, Time, Quantity).
// Items found in the resource also keep where they were found (Location),
// so that a primitive's extensions, held in the "_name" JSON sibling, are
// reachable (Extensions, and .extension in expressions).
//
// The types come from a table of every R4 resource and data type, with
// their elements, cardinality and choice types, generated from the R4
// StructureDefinitions by internal/gen (go generate) and embedded gzipped.
//
// # Deviations
//
// Where the R4 search parameters rely on it, the engine is lenient: the
// "as" operator filters a collection of several items (as ofType does)
// instead of failing. A path starting with a resource type other than the
// context's (Person.gender on a Patient) is empty, or an error when
// Options.Strict is set. Without a Resolver, resolve() returns a stub
// {resourceType, id} of the referenced type, enough for "resolve() is
// Patient". memberOf() returns empty unless Options.MemberOf is set, and
// conformsTo() knows only the core resource profiles. Units are converted
// for a subset of UCUM (metric prefixes, mass, length, volume, time,
// pressure and common customary units).
package fhirpath
