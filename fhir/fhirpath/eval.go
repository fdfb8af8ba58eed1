package fhirpath

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Options configure an evaluation. The zero value (or nil) is usable.
type Options struct {
	// Resolver fetches the resource a reference points to, for resolve().
	// When nil, resolve() returns a stub of the referenced type (enough for
	// "resolve() is Patient"), or the contained resource for "#id".
	Resolver func(reference string) (any, bool)

	// MemberOf answers memberOf(valueSet) for a code, Coding or
	// CodeableConcept; when nil, memberOf() returns empty.
	MemberOf func(item Item, valueSet string) (bool, error)

	// Variables are the user's environment variables (%name): a Collection,
	// an Item, a []any or a single JSON or System value.
	Variables map[string]any

	// Context is %context and the starting point of the expression; by
	// default, the resource. RootResource is %rootResource (by default the
	// resource).
	Context      any
	RootResource any

	// Now fixes now(), today() and timeOfDay(); by default the clock's time.
	Now time.Time

	// Strict makes a path starting with a type the context is not
	// (Encounter.status on a Patient) an error instead of empty.
	Strict bool

	// Trace receives the values passed to trace().
	Trace func(name string, values Collection)
}

// Error is an evaluation error: the expression was valid but could not be
// evaluated against this input (several items where one was required,
// operands of the wrong type, an element the model does not have).
type Error struct {
	Offset int // byte offset of the failing part of the expression, or -1
	Msg    string
}

func (e *Error) Error() string {
	if e.Offset < 0 {
		return "fhirpath: " + e.Msg
	}
	return fmt.Sprintf("fhirpath: at offset %d: %s", e.Offset, e.Msg)
}

func evalErr(format string, args ...any) *Error {
	return &Error{Offset: -1, Msg: fmt.Sprintf(format, args...)}
}

// errAt sets the offset of an evaluation error that has none.
func errAt(err error, pos int) error {
	var e *Error
	if errors.As(err, &e) && e.Offset < 0 {
		e.Offset = pos
	}
	return err
}

// evaluation is what one evaluation shares between its envs.
type evaluation struct {
	opts         *Options
	resource     Collection // %resource
	rootResource Collection
	context      Collection
	now          time.Time // set on first use
	rootBuf      [1]Item   // backs resource for a single resource
}

// env is the state at one point of an evaluation; iterating functions copy
// it with $this and $index changed.
type env struct {
	*evaluation
	this     Collection // $this: the item being iterated, else the context
	index    int        // $index; -1 when not iterating
	total    Collection // $total in aggregate()
	hasTotal bool
}

// with returns a copy of e iterating over it at index i.
func (e *env) with(it Item, i int) *env {
	sub := *e
	sub.this = Collection{it}
	sub.index = i
	return &sub
}

// Evaluate evaluates the expression against a resource: a decoded JSON
// object (map[string]any, as fhir.Document holds), or an Item or Collection
// from an earlier evaluation.
func (x *Expression) Evaluate(resource any, opts *Options) (Collection, error) {
	if opts == nil {
		opts = &Options{}
	}
	e := &env{evaluation: &evaluation{opts: opts, now: opts.Now}, index: -1}
	if m, ok := resource.(map[string]any); ok {
		e.rootBuf[0] = newItem(m, resourceTypeOf(m))
		e.resource = e.rootBuf[:]
	} else {
		e.resource = toCollection(resource)
	}
	e.rootResource = e.resource
	if opts.RootResource != nil {
		e.rootResource = toCollection(opts.RootResource)
	}
	e.context = e.resource
	if opts.Context != nil {
		e.context = toCollection(opts.Context)
	}
	e.this = e.context
	return x.root.eval(e, e.context)
}

// toCollection turns an input value into a collection.
func toCollection(v any) Collection {
	switch x := v.(type) {
	case nil:
		return nil
	case Collection:
		return x
	case []Item:
		return Collection(x)
	case Item:
		return Collection{x}
	case map[string]any:
		return Collection{newItem(x, resourceTypeOf(x))}
	case []any:
		out := make(Collection, 0, len(x))
		for _, v := range x {
			out = append(out, toCollection(v)...)
		}
		return out
	case json.Number:
		return Collection{newItem(x, nil)}
	case int:
		return Collection{sysItem(int64(x))}
	case float64:
		d, _ := ParseDecimal(fmt.Sprint(x))
		return Collection{sysItem(d)}
	}
	return Collection{sysItem(v)}
}

// resourceTypeOf returns the type named by a JSON object's resourceType,
// or nil.
func resourceTypeOf(m map[string]any) *Type {
	rt, _ := m["resourceType"].(string)
	if rt == "" {
		return nil
	}
	if t := fhirType(rt); t != nil && t.kind == kindResource {
		return t
	}
	return nil
}

func (n *literalNode) eval(*env, Collection) (Collection, error) { return n.value, nil }

func (n *varNode) eval(e *env, _ Collection) (Collection, error) {
	switch n.name {
	case "this":
		return e.this, nil
	case "index":
		if e.index < 0 {
			return nil, nil
		}
		return Collection{sysItem(int64(e.index))}, nil
	}
	return e.total, nil
}

func (n *invokeNode) eval(e *env, focus Collection) (Collection, error) {
	left, err := n.left.eval(e, focus)
	if err != nil {
		return nil, err
	}
	return n.right.eval(e, left)
}

func (n *indexNode) eval(e *env, focus Collection) (Collection, error) {
	left, err := n.left.eval(e, focus)
	if err != nil {
		return nil, err
	}
	idx, err := n.index.eval(e, e.this)
	if err != nil {
		return nil, err
	}
	i, ok, err := singletonInt(idx)
	if err != nil || !ok {
		return nil, err
	}
	if i < 0 || i >= int64(len(left)) {
		return nil, nil
	}
	return left[i : i+1 : i+1], nil
}

func (n *constNode) eval(e *env, _ Collection) (Collection, error) {
	if v, ok := e.opts.Variables[n.name]; ok {
		return toCollection(v), nil
	}
	switch n.name {
	case "resource":
		return e.resource, nil
	case "rootResource":
		return e.rootResource, nil
	case "context":
		return e.context, nil
	case "ucum":
		return Collection{sysItem("http://unitsofmeasure.org")}, nil
	case "sct":
		return Collection{sysItem("http://snomed.info/sct")}, nil
	case "loinc":
		return Collection{sysItem("http://loinc.org")}, nil
	}
	switch {
	case strings.HasPrefix(n.name, "vs-"):
		return Collection{sysItem("http://hl7.org/fhir/ValueSet/" + n.name[3:])}, nil
	case strings.HasPrefix(n.name, "ext-"):
		return Collection{sysItem("http://hl7.org/fhir/StructureDefinition/" + n.name[4:])}, nil
	}
	return nil, &Error{Offset: n.pos, Msg: fmt.Sprintf("unknown variable %%%s", n.name)}
}

func (n *identNode) eval(e *env, focus Collection) (Collection, error) {
	if n.root && len(focus) == 1 && focus[0].typ != nil && focus[0].typ.Name == n.name && focus[0].typ.kind == kindResource {
		return focus, nil // Patient.name on a Patient
	}
	var out Collection
	defined := false  // some item's type has the element
	var missing *Type // a type that has not
	for _, it := range focus {
		if n.root && it.typ != nil && it.typ.kind == kindResource && n.name[0] >= 'A' && n.name[0] <= 'Z' {
			if t := fhirType(n.name); t != nil && t.kind == kindResource {
				if it.typ.Is(t) {
					out = append(out, it)
				} else if e.opts.Strict {
					return nil, &Error{Offset: n.pos, Msg: fmt.Sprintf("the context is a %s, not a %s", it.typ.Name, n.name)}
				}
				continue
			}
		}
		var known bool
		out, known = navigate(out, it, n.name)
		if known {
			defined = true
		} else if it.typ != nil && it.typ.elements != nil {
			missing = it.typ
		}
	}
	if e.opts.Strict && !defined && missing != nil {
		return nil, &Error{Offset: n.pos, Msg: fmt.Sprintf("%s has no element %q", missing.Name, n.name)}
	}
	return out, nil
}

// navigate appends the children of it named name to out. known is false
// when it is of a model type that has no such element.
func navigate(out Collection, it Item, name string) (_ Collection, known bool) {
	m, ok := it.value.(map[string]any)
	if !ok {
		// A primitive: its id and extensions live in the "_key" sibling.
		if name == "extension" || name == "id" {
			if el := it.primitiveElement(); el != nil {
				return navigate(out, newItem(el, fhirType("Element")), name)
			}
			return out, true
		}
		return out, it.typ == nil || it.typ.kind == kindSystem
	}
	t := it.typ
	if t == nil || t.elements == nil {
		// Not in the model: follow the JSON as it is.
		if v, ok := m[name]; ok {
			out = appendJSON(out, m, name, v, nil)
		}
		return out, true
	}
	el := t.elements[name]
	if el == nil {
		return out, false
	}
	if el.choice && len(el.keys) > 6 {
		// Many possible keys: scan the object instead.
		start := len(out)
		for k, v := range m {
			if len(k) <= len(name) || !strings.HasPrefix(k, name) {
				continue
			}
			for i, key := range el.keys {
				if key == k {
					out = appendJSON(out, m, k, v, el.types[i])
					break
				}
			}
		}
		if len(out) == start {
			for i, uk := range el.ukeys {
				if u, ok := m[uk]; ok && el.types[i].kind == kindPrimitive {
					out = appendExtensionOnly(out, m, el.keys[i], nil, u, el.types[i])
				}
			}
		}
		return out, true
	}
	for i, key := range el.keys {
		typ := el.types[i]
		v, ok := m[key]
		if typ.kind == kindPrimitive {
			if u, uok := m[el.ukeys[i]]; uok {
				out = appendExtensionOnly(out, m, key, v, u, typ)
				continue
			}
		}
		if ok {
			out = appendJSON(out, m, key, v, typ)
		}
	}
	return out, true
}

// appendJSON appends a member's value (each element of an array).
func appendJSON(out Collection, parent map[string]any, key string, v any, t *Type) Collection {
	if arr, ok := v.([]any); ok {
		if cap(out)-len(out) < len(arr) {
			grown := make(Collection, len(out), len(out)+len(arr)+4)
			copy(grown, out)
			out = grown
		}
		for i, x := range arr {
			switch {
			case x == nil:
			case t == nil:
				out = append(out, untypedItem(x, parent, key, i))
			default:
				out = append(out, Item{value: x, typ: typeFor(x, t), parent: parent, key: key, index: i})
			}
		}
		return out
	}
	switch {
	case v == nil:
		return out
	case t == nil:
		return append(out, untypedItem(v, parent, key, -1))
	}
	return append(out, Item{value: v, typ: typeFor(v, t), parent: parent, key: key, index: -1})
}

// appendExtensionOnly appends a primitive member that has a "_key" sibling,
// including the array positions that have only extensions.
func appendExtensionOnly(out Collection, parent map[string]any, key string, v, u any, t *Type) Collection {
	varr, vIsArr := v.([]any)
	uarr, uIsArr := u.([]any)
	if !vIsArr && !uIsArr {
		if v != nil || u != nil {
			out = append(out, Item{value: v, typ: t, parent: parent, key: key, index: -1})
		}
		return out
	}
	n := max(len(varr), len(uarr))
	for i := 0; i < n; i++ {
		var x, ux any
		if i < len(varr) {
			x = varr[i]
		}
		if i < len(uarr) {
			ux = uarr[i]
		}
		if x == nil && ux == nil {
			continue
		}
		out = append(out, Item{value: x, typ: t, parent: parent, key: key, index: i})
	}
	return out
}

// typeFor refines an element's declared type with the value: a resource
// takes the type its resourceType names.
func typeFor(v any, t *Type) *Type {
	if t == nil || t.kind == kindResource {
		if m, ok := v.(map[string]any); ok {
			if rt := resourceTypeOf(m); rt != nil {
				return rt
			}
		}
	}
	return t
}

// untypedItem makes an item of a JSON value the model does not describe:
// primitives become System values.
func untypedItem(v any, parent map[string]any, key string, index int) Item {
	it := Item{value: v, parent: parent, key: key, index: index}
	switch x := v.(type) {
	case map[string]any:
		it.typ = resourceTypeOf(x)
	case string:
		it.typ = typeString
	case bool:
		it.typ = typeBoolean
	case json.Number:
		if sv := newItem(x, nil).system(); sv != nil {
			it.value = sv
			it.typ = sysItem(sv).typ
		}
	}
	return it
}

// singleton returns the only item of c; ok is false when c is empty, and an
// error is returned when it has more than one item.
func singleton(c Collection) (Item, bool, error) {
	switch len(c) {
	case 0:
		return Item{}, false, nil
	case 1:
		return c[0], true, nil
	}
	return Item{}, false, evalErr("expected a single item, got %d", len(c))
}

func singletonInt(c Collection) (int64, bool, error) {
	it, ok, err := singleton(c)
	if !ok || err != nil {
		return 0, false, err
	}
	if i, ok := it.system().(int64); ok {
		return i, true, nil
	}
	return 0, false, evalErr("expected an integer, got %s", describe(it))
}

func singletonString(c Collection) (string, bool, error) {
	it, ok, err := singleton(c)
	if !ok || err != nil {
		return "", false, err
	}
	if s, ok := it.system().(string); ok {
		return s, true, nil
	}
	return "", false, evalErr("expected a string, got %s", describe(it))
}

// singletonBool applies singleton evaluation for a boolean: a single
// Boolean is itself, any other single item is true; empty is unknown.
func singletonBool(c Collection) (value, ok bool, err error) {
	it, ok, err := singleton(c)
	if !ok || err != nil {
		return false, false, err
	}
	if b, isBool := it.system().(bool); isBool {
		return b, true, nil
	}
	return true, true, nil
}

// describe names an item's type for error messages.
func describe(it Item) string {
	if it.typ != nil {
		return it.typ.String()
	}
	return fmt.Sprintf("%T", it.value)
}
