package patch

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// JSONPatch applies an RFC 6902 JSON Patch document to a resource and returns
// the patched resource. The input is not modified. Members keep their order
// and numbers their literal text; a member the patch adds goes at the end of
// its object.
//
// A patch document that cannot be read (not an array of operations, an
// unknown op, a missing or malformed member, a bad JSON Pointer) is a
// *fhir.Error with status 400; a patch that cannot be applied to this
// resource (a failed test, a path that does not exist) one with status 422.
// Either names the operation (counting from 0) and its path.
func JSONPatch(resource, patch []byte) ([]byte, error) {
	ops, err := parseJSONPatch(patch)
	if err != nil {
		return nil, err
	}
	doc, err := parse(resource)
	if err != nil {
		return nil, badResource(err)
	}
	if _, ok := doc.(*object); !ok {
		return nil, badResource(fmt.Errorf("not a JSON object"))
	}
	// Copies could double the document with each operation: the result may
	// grow to a few times the size of what came in, no more.
	budget := 4*(size(doc)+len(patch)) + 1<<16
	for _, op := range ops {
		if op.op == "copy" {
			if v, err := lookup(doc, op.fromPtr); err == nil {
				if budget -= size(v); budget < 0 {
					return nil, cannotApply("%s: the patched document would be too large", op)
				}
			}
		}
		if doc, err = op.apply(doc); err != nil {
			return nil, cannotApply("%s: %v", op, err)
		}
	}
	if _, ok := doc.(*object); !ok {
		return nil, cannotApply("patch: the patched resource is not a JSON object")
	}
	return encode(doc), nil
}

// jsonOp is one JSON Patch operation.
type jsonOp struct {
	index    int
	op       string
	path     string
	from     string
	pointer  []string
	fromPtr  []string
	value    any
	hasValue bool
}

func (o *jsonOp) String() string {
	if o.op == "move" || o.op == "copy" {
		return fmt.Sprintf("patch operation %d (%s %s from %s)", o.index, o.op, o.path, o.from)
	}
	return fmt.Sprintf("patch operation %d (%s %s)", o.index, o.op, o.path)
}

func parseJSONPatch(data []byte) ([]*jsonOp, error) {
	doc, err := parse(data)
	if err != nil {
		return nil, malformed("patch: reading the JSON Patch document: %v", err)
	}
	list, ok := doc.(*array)
	if !ok {
		return nil, malformed("patch: a JSON Patch document is an array of operations")
	}
	ops := make([]*jsonOp, 0, len(list.items))
	for i, it := range list.items {
		obj, ok := it.(*object)
		if !ok {
			return nil, malformed("patch operation %d: not a JSON object", i)
		}
		op := &jsonOp{index: i}
		s, err := stringMember(obj, "op")
		if err != nil {
			return nil, malformed("patch operation %d: %v", i, err)
		}
		op.op = s
		if op.path, err = stringMember(obj, "path"); err != nil {
			return nil, malformed("patch operation %d (%s): %v", i, op.op, err)
		}
		if op.pointer, err = parsePointer(op.path); err != nil {
			return nil, malformed("%s: %v", op, err)
		}
		switch op.op {
		case "add", "replace", "test":
			if op.value, op.hasValue = obj.get("value"); !op.hasValue {
				return nil, malformed("%s: no value", op)
			}
		case "move", "copy":
			if op.from, err = stringMember(obj, "from"); err != nil {
				return nil, malformed("patch operation %d (%s %s): %v", i, op.op, op.path, err)
			}
			if op.fromPtr, err = parsePointer(op.from); err != nil {
				return nil, malformed("%s: from: %v", op, err)
			}
		case "remove":
		default:
			return nil, malformed("%s: unknown op %q", op, op.op)
		}
		ops = append(ops, op)
	}
	return ops, nil
}

func stringMember(obj *object, key string) (string, error) {
	v, ok := obj.get(key)
	if !ok {
		return "", fmt.Errorf("no %q member", key)
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%q is not a string", key)
	}
	return s, nil
}

// parsePointer splits an RFC 6901 JSON Pointer into its unescaped tokens.
func parsePointer(p string) ([]string, error) {
	if p == "" {
		return nil, nil
	}
	if p[0] != '/' {
		return nil, fmt.Errorf("JSON Pointer %q does not start with /", p)
	}
	toks := strings.Split(p[1:], "/")
	for i, t := range toks {
		if !strings.Contains(t, "~") {
			continue
		}
		var b strings.Builder
		for j := 0; j < len(t); j++ {
			if t[j] != '~' {
				b.WriteByte(t[j])
				continue
			}
			if j+1 == len(t) || t[j+1] != '0' && t[j+1] != '1' {
				return nil, fmt.Errorf("JSON Pointer %q has a ~ not followed by 0 or 1", p)
			}
			if t[j+1] == '0' {
				b.WriteByte('~')
			} else {
				b.WriteByte('/')
			}
			j++
		}
		toks[i] = b.String()
	}
	return toks, nil
}

// apply runs the operation on doc and returns the new document (a new root
// only when the operation replaces the whole document).
func (o *jsonOp) apply(doc any) (any, error) {
	switch o.op {
	case "add":
		return add(doc, o.pointer, o.value)
	case "remove":
		_, err := remove(doc, o.pointer)
		return doc, err
	case "replace":
		if len(o.pointer) == 0 {
			return o.value, nil
		}
		parent, err := lookup(doc, o.pointer[:len(o.pointer)-1])
		if err != nil {
			return nil, err
		}
		last := o.pointer[len(o.pointer)-1]
		switch p := parent.(type) {
		case *object:
			i := p.index(last)
			if i < 0 {
				return nil, errNoPath
			}
			p.members[i].value = o.value
		case *array:
			i, err := arrayIndex(last, len(p.items), false)
			if err != nil {
				return nil, err
			}
			p.items[i] = o.value
		default:
			return nil, errNoPath
		}
		return doc, nil
	case "move":
		if pointerHasPrefix(o.pointer, o.fromPtr) {
			if len(o.pointer) == len(o.fromPtr) {
				// Moving a value onto itself changes nothing, once we
				// know it is there.
				_, err := lookup(doc, o.fromPtr)
				return doc, err
			}
			return nil, fmt.Errorf("cannot move a value into one of its own children")
		}
		v, err := remove(doc, o.fromPtr)
		if err != nil {
			return nil, fmt.Errorf("from: %w", err)
		}
		return add(doc, o.pointer, v)
	case "copy":
		v, err := lookup(doc, o.fromPtr)
		if err != nil {
			return nil, fmt.Errorf("from: %w", err)
		}
		return add(doc, o.pointer, clone(v))
	case "test":
		v, err := lookup(doc, o.pointer)
		if err != nil {
			return nil, err
		}
		if !equal(v, o.value) {
			return nil, fmt.Errorf("test failed: the value is %s, not %s", truncate(encode(v)), truncate(encode(o.value)))
		}
		return doc, nil
	}
	return nil, fmt.Errorf("unknown op %q", o.op)
}

// errNoPath is the error for a pointer that names nothing in the document.
var errNoPath = fmt.Errorf("path does not exist")

// lookup returns the value a pointer names.
func lookup(doc any, ptr []string) (any, error) {
	v := doc
	for _, tok := range ptr {
		switch x := v.(type) {
		case *object:
			next, ok := x.get(tok)
			if !ok {
				return nil, errNoPath
			}
			v = next
		case *array:
			i, err := arrayIndex(tok, len(x.items), false)
			if err != nil {
				return nil, err
			}
			v = x.items[i]
		default:
			return nil, errNoPath
		}
	}
	return v, nil
}

// add puts value where ptr says: a new or replaced object member, an array
// element inserted before the index, or appended for "-".
func add(doc any, ptr []string, value any) (any, error) {
	if len(ptr) == 0 {
		return value, nil
	}
	parent, err := lookup(doc, ptr[:len(ptr)-1])
	if err != nil {
		return nil, err
	}
	last := ptr[len(ptr)-1]
	switch p := parent.(type) {
	case *object:
		p.set(last, value)
	case *array:
		if last == "-" {
			p.items = append(p.items, value)
			break
		}
		i, err := arrayIndex(last, len(p.items), true)
		if err != nil {
			return nil, err
		}
		p.insert(i, value)
	default:
		return nil, errNoPath
	}
	return doc, nil
}

// remove deletes what ptr names and returns it.
func remove(doc any, ptr []string) (any, error) {
	if len(ptr) == 0 {
		return nil, fmt.Errorf("cannot remove the whole document")
	}
	parent, err := lookup(doc, ptr[:len(ptr)-1])
	if err != nil {
		return nil, err
	}
	last := ptr[len(ptr)-1]
	switch p := parent.(type) {
	case *object:
		v, ok := p.get(last)
		if !ok {
			return nil, errNoPath
		}
		p.remove(last)
		return v, nil
	case *array:
		i, err := arrayIndex(last, len(p.items), false)
		if err != nil {
			return nil, err
		}
		return p.removeAt(i), nil
	}
	return nil, errNoPath
}

// arrayIndex reads an array index token (digits, no leading zero) for an
// array of the given length; atEnd allows the index just past the end.
func arrayIndex(tok string, length int, atEnd bool) (int, error) {
	if tok == "-" {
		return 0, errNoPath
	}
	if tok == "" || len(tok) > 1 && tok[0] == '0' || strings.TrimLeft(tok, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not an array index", tok)
	}
	i, err := strconv.Atoi(tok)
	if err != nil || i > length || i == length && !atEnd {
		return 0, fmt.Errorf("array index %s is out of range (length %d)", tok, length)
	}
	return i, nil
}

func pointerHasPrefix(p, prefix []string) bool {
	if len(prefix) > len(p) {
		return false
	}
	for i := range prefix {
		if p[i] != prefix[i] {
			return false
		}
	}
	return true
}

// truncate shortens a value quoted in an error message.
func truncate(b []byte) string {
	const max = 80
	if len(b) <= max {
		return string(b)
	}
	n := max
	for n > 0 && !utf8.RuneStart(b[n]) {
		n--
	}
	return string(b[:n]) + "..."
}
