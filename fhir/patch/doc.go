// Package patch applies the two patch formats of the FHIR patch interaction
// to a resource, as pure functions from JSON bytes to JSON bytes:
//
//   - JSONPatch applies an RFC 6902 JSON Patch (application/json-patch+json):
//     an array of add, remove, replace, move, copy and test operations whose
//     paths are RFC 6901 JSON Pointers (~0 and ~1 escapes, "-" for the end of
//     an array).
//   - FHIRPathPatch applies a FHIRPath Patch (http://hl7.org/fhir/R4/fhirpatch.html):
//     a Parameters resource with one "operation" parameter per change, whose
//     parts are type (add, insert, delete, replace, move), path (a FHIRPath
//     expression, evaluated with package fhirpath), and as the type needs
//     name, value, index, source and destination.
//
// Operations apply in order, each to the result of the one before; the
// patch applies in full or not at all, and the inputs are never modified.
//
// # What is kept
//
// A patch changes only what it names. The resource is read into an ordered
// JSON tree, not a map: members keep their order, a replaced member keeps
// its place, and a member an operation creates goes at the end of its
// object. Numbers keep their literal text (1.50 stays 1.50, 1e2 stays 1e2).
// The result is compact JSON, strings escaped only where JSON requires.
//
// In FHIRPath Patch, a primitive's id and extensions (its "_name" sibling,
// or the entry at the same index of the "_name" array) belong to it: delete
// removes them with it, move carries them along, insert and add keep the two
// arrays aligned, and replace keeps them unless the new value brings its own
// (a _value[x] next to the value[x]). A delete that leaves an element empty
// removes it too, up to the resource, since FHIR has no empty elements.
//
// # FHIRPath Patch rules
//
// The path of add, replace and delete must select one element of the
// resource (delete may select none, and then does nothing); the path of
// insert and move must select one whole list, all the items of one
// repeating element. When it selects nothing, insert and move use the path
// without its last step (Patient.identifier: the identifier list of the one
// Patient), so that insert can start an empty list. A path that selects the
// resource itself, a computed value, or (with resolve()) another resource
// cannot be changed.
//
// The R4 model (fhirpath.Type.Element) says which elements are lists and
// checks values: add puts the named child into the selected element,
// appended to its list when the element repeats and only when it has no
// value otherwise; a choice element is named without its type (deceased)
// and takes the type of the value (deceasedBoolean from valueBoolean), and
// replace renames the member in place when that type changes. A primitive
// value may stand for any primitive written the same way in JSON (a
// valueString for a code); a complex value must be of the element's type or
// one derived from it. A value given as parts is built into an object, part
// by part, against the element's type. Members the model does not know are
// invisible to FHIRPath, so no operation reaches them; they stay as they are.
//
// # Errors
//
// Every error is a *fhir.Error whose message names the operation (counting
// from 0), its type and its path, such as
//
//	patch operation 2 (replace /name/0/family): path does not exist
//
// A patch document that cannot be read is a 400 (issue type invalid): JSON
// that does not parse, a JSON Patch that is not an array of operations with
// known ops and well-formed pointers, a FHIRPath Patch that is not a
// Parameters of operations with a known type, a path that is not FHIRPath,
// or a part the type needs that is missing. A patch that cannot be applied
// to this resource is a 422 (issue type processing): a failed test, a path
// that selects nothing or too much, an index out of range, a value of the
// wrong type for its place, or a JSON Patch whose copies would make the
// document more than a few times larger than the input. A resource that is
// not a JSON object (for FHIRPath Patch, one with a known resourceType) is a
// 400 (issue type structure).
package patch
