package patch

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/fhirhub/fhirhub/fhir/fhirpath"
)

// FHIRPathPatch applies a FHIRPath Patch (a Parameters resource of
// "operation" parameters) to a resource and returns the patched resource.
// The input is not modified. Members keep their order and numbers their
// literal text; a member an add creates goes at the end of its object.
//
// A Parameters document that cannot be read (not a Parameters, an unknown
// operation type, a missing or malformed part, a path that is not FHIRPath)
// is a *fhir.Error with status 400; an operation that cannot be applied to
// this resource (its path selects nothing or too much, an index is out of
// range, a value has the wrong type for its place) one with status 422.
// Either names the operation (counting from 0), its type and its path.
func FHIRPathPatch(resource, params []byte) ([]byte, error) {
	ops, err := parseFHIRPathPatch(params)
	if err != nil {
		return nil, err
	}
	doc, err := parse(resource)
	if err != nil {
		return nil, badResource(err)
	}
	root, ok := doc.(*object)
	if !ok || resourceTypeOf(root) == nil {
		return nil, badResource(errors.New("not a FHIR resource (a JSON object with a known resourceType)"))
	}
	for _, op := range ops {
		if err := op.apply(root); err != nil {
			return nil, cannotApply("%s: %v", op, err)
		}
	}
	return encode(root), nil
}

// fhirOp is one FHIRPath Patch operation.
type fhirOp struct {
	index int
	kind  string // add, insert, delete, replace, move
	path  string
	expr  *fhirpath.Expression
	name  string
	value *patchValue
	// at is the index of insert; from and to the source and destination of move.
	at, from, to int
}

func (o *fhirOp) String() string {
	return fmt.Sprintf("patch operation %d (%s %s)", o.index, o.kind, o.path)
}

// patchValue is the value of an operation: a JSON value with its type, from a
// value[x] or a resource, or an anonymous value built from parts.
type patchValue struct {
	typ   *fhirpath.Type // nil for parts
	json  any            // nil for parts, and for a primitive that has only extensions
	ext   *object        // the _value[x] of a primitive: its id and extensions
	parts []namedValue
}

type namedValue struct {
	name  string
	value *patchValue
}

func (pv *patchValue) describe() string {
	if pv.typ == nil {
		return "an anonymous value (parts)"
	}
	return article(pv.typ.Name)
}

// article puts "a" or "an" before a type name.
func article(name string) string {
	if name != "" && strings.ContainsRune("AEIOUaeiou", rune(name[0])) {
		return "an " + name
	}
	return "a " + name
}

// items says how many items a list has.
func items(n int) string {
	if n == 1 {
		return "1 item"
	}
	return strconv.Itoa(n) + " items"
}

func parseFHIRPathPatch(data []byte) ([]*fhirOp, error) {
	doc, err := parse(data)
	if err != nil {
		return nil, malformed("patch: reading the Parameters: %v", err)
	}
	params, ok := doc.(*object)
	if !ok {
		return nil, malformed("patch: a FHIRPath Patch is a Parameters resource")
	}
	if rt, _ := params.get("resourceType"); rt != "Parameters" {
		return nil, malformed("patch: a FHIRPath Patch is a Parameters resource")
	}
	list, ok := params.get("parameter")
	if !ok {
		return nil, nil
	}
	arr, ok := list.(*array)
	if !ok {
		return nil, malformed("patch: Parameters.parameter is not an array")
	}
	ops := make([]*fhirOp, 0, len(arr.items))
	for i, it := range arr.items {
		op, err := parseOperation(i, it)
		if err != nil {
			return nil, err
		}
		ops = append(ops, op)
	}
	return ops, nil
}

func parseOperation(i int, it any) (*fhirOp, error) {
	op := &fhirOp{index: i}
	p, ok := it.(*object)
	if !ok {
		return nil, malformed("patch operation %d: the parameter is not an object", i)
	}
	if name, _ := p.get("name"); name != "operation" {
		return nil, malformed("patch operation %d: the parameter is not named \"operation\"", i)
	}
	list, _ := p.get("part")
	parts, ok := list.(*array)
	if !ok {
		return nil, malformed("patch operation %d: no parts", i)
	}
	seen := map[string]bool{}
	var hasAt, hasFrom, hasTo bool
	for _, pt := range parts.items {
		part, ok := pt.(*object)
		if !ok {
			return nil, malformed("patch operation %d: a part is not an object", i)
		}
		n, _ := part.get("name")
		name, _ := n.(string)
		if seen[name] {
			return nil, malformed("patch operation %d: part %q appears twice", i, name)
		}
		seen[name] = true
		var err error
		switch name {
		case "type":
			op.kind, err = partString(part)
		case "path":
			op.path, err = partString(part)
		case "name":
			op.name, err = partString(part)
		case "index":
			op.at, err = partInteger(part)
			hasAt = true
		case "source":
			op.from, err = partInteger(part)
			hasFrom = true
		case "destination":
			op.to, err = partInteger(part)
			hasTo = true
		case "value":
			op.value, err = parsePatchValue(part)
		case "":
			err = errors.New("a part has no name")
		default:
			err = fmt.Errorf("unknown part %q", name)
		}
		if err != nil {
			if name == "" || !knownPart(name) {
				return nil, malformed("patch operation %d: %v", i, err)
			}
			return nil, malformed("patch operation %d: part %q: %v", i, name, err)
		}
	}
	if op.kind == "" {
		return nil, malformed("patch operation %d: no type", i)
	}
	switch op.kind {
	case "add", "insert", "delete", "replace", "move":
	default:
		return nil, malformed("patch operation %d: unknown type %q", i, op.kind)
	}
	if op.path == "" {
		return nil, malformed("patch operation %d (%s): no path", i, op.kind)
	}
	x, err := fhirpath.Compile(op.path)
	if err != nil {
		return nil, malformed("%s: the path is not valid FHIRPath: %v", op, err)
	}
	op.expr = x
	var missing []string
	need := func(ok bool, part string) {
		if !ok {
			missing = append(missing, part)
		}
	}
	switch op.kind {
	case "add":
		need(op.name != "", "name")
		need(op.value != nil, "value")
	case "insert":
		need(op.value != nil, "value")
		need(hasAt, "index")
	case "replace":
		need(op.value != nil, "value")
	case "move":
		need(hasFrom, "source")
		need(hasTo, "destination")
	}
	if len(missing) > 0 {
		return nil, malformed("%s: no %s", op, strings.Join(missing, " or "))
	}
	return op, nil
}

func knownPart(name string) bool {
	switch name {
	case "type", "path", "name", "index", "source", "destination", "value":
		return true
	}
	return false
}

// partString reads a part's value[x] as a string (valueCode, valueString ...).
func partString(part *object) (string, error) {
	for _, m := range part.members {
		if isValueKey(m.key) {
			if s, ok := m.value.(string); ok {
				return s, nil
			}
		}
	}
	return "", errors.New("no string value")
}

// partInteger reads a part's value[x] as an integer (valueInteger ...).
func partInteger(part *object) (int, error) {
	for _, m := range part.members {
		if isValueKey(m.key) {
			if n, ok := m.value.(json.Number); ok {
				i, err := strconv.Atoi(string(n))
				if err != nil {
					return 0, fmt.Errorf("%s is not an integer", n)
				}
				return i, nil
			}
		}
	}
	return 0, errors.New("no integer value")
}

// isValueKey reports whether a member name is a value[x]: value followed by
// a type name.
func isValueKey(key string) bool {
	return len(key) > len("value") && strings.HasPrefix(key, "value") && key[5] >= 'A' && key[5] <= 'Z'
}

// valueType returns the FHIR type a value[x] suffix names: a complex type
// (Quantity) or a primitive (Date for date), never a resource.
func valueType(suffix string) *fhirpath.Type {
	if suffix == "" || strings.Contains(suffix, ".") {
		return nil
	}
	if t, ok := fhirpath.LookupType("FHIR." + suffix); ok && !isResource(t) {
		return t
	}
	lower := strings.ToLower(suffix[:1]) + suffix[1:]
	if t, ok := fhirpath.LookupType("FHIR." + lower); ok && isPrimitive(t) {
		return t
	}
	return nil
}

// parsePatchValue reads the value of a part: one of value[x] (with its
// _value[x] sibling), resource or part.
func parsePatchValue(part *object) (*patchValue, error) {
	pv := &patchValue{}
	var valueKey, extKey string
	kinds := 0
	for _, m := range part.members {
		switch {
		case m.key == "name", m.key == "id", m.key == "extension", m.key == "modifierExtension":
		case m.key == "resource":
			o, ok := m.value.(*object)
			if !ok {
				return nil, errors.New("resource is not an object")
			}
			if pv.typ = resourceTypeOf(o); pv.typ == nil {
				return nil, errors.New("resource has no known resourceType")
			}
			pv.json = o
			kinds++
		case m.key == "part":
			arr, ok := m.value.(*array)
			if !ok || len(arr.items) == 0 {
				return nil, errors.New("part is not a non-empty array")
			}
			for _, it := range arr.items {
				sub, ok := it.(*object)
				if !ok {
					return nil, errors.New("a part is not an object")
				}
				n, _ := sub.get("name")
				name, ok := n.(string)
				if !ok || name == "" {
					return nil, errors.New("a part has no name")
				}
				v, err := parsePatchValue(sub)
				if err != nil {
					return nil, fmt.Errorf("part %q: %w", name, err)
				}
				pv.parts = append(pv.parts, namedValue{name, v})
			}
			kinds++
		case isValueKey(m.key):
			valueKey = m.key
			pv.json = m.value
			kinds++
		case strings.HasPrefix(m.key, "_") && isValueKey(m.key[1:]):
			o, ok := m.value.(*object)
			if !ok {
				return nil, fmt.Errorf("%s is not an object", m.key)
			}
			extKey, pv.ext = m.key, o
		default:
			return nil, fmt.Errorf("unexpected member %q", m.key)
		}
	}
	if extKey != "" {
		switch {
		case valueKey == "":
			// A primitive with only extensions.
			valueKey = extKey[1:]
			kinds++
		case extKey != "_"+valueKey:
			return nil, fmt.Errorf("%s does not go with %s", extKey, valueKey)
		}
	}
	if kinds != 1 {
		return nil, errors.New("a value needs exactly one of value[x], resource or part")
	}
	if valueKey == "" {
		return pv, nil
	}
	if pv.typ = valueType(valueKey[5:]); pv.typ == nil {
		return nil, fmt.Errorf("%s names no FHIR type", valueKey)
	}
	if isPrimitive(pv.typ) {
		if !primitiveFits(pv.typ, pv.json) {
			return nil, fmt.Errorf("%s is not a JSON %s", valueKey, jsonKind(pv.typ))
		}
		return pv, nil
	}
	if pv.ext != nil {
		return nil, fmt.Errorf("%s has a %s sibling, but is not a primitive", valueKey, extKey)
	}
	if _, ok := pv.json.(*object); !ok {
		return nil, fmt.Errorf("%s is not an object", valueKey)
	}
	return pv, nil
}

// primitiveFits reports whether a JSON value is written as a primitive of
// type t is (nil, when only extensions are given).
func primitiveFits(t *fhirpath.Type, v any) bool {
	switch v.(type) {
	case nil:
		return true
	case bool:
		return jsonKind(t) == "boolean"
	case json.Number:
		return jsonKind(t) == "number"
	case string:
		return jsonKind(t) == "string"
	}
	return false
}
