package patch

import (
	"reflect"
	"strings"
	"sync"

	"github.com/fhirhub/fhirhub/fhir/fhirpath"
)

// view is a resource as the FHIRPath engine reads it (map[string]any, []any,
// string, bool, json.Number), built from the ordered tree, with the way back
// from every engine object to the tree object it was made from, and where
// that object sits. An Item's Location (parent object, member, array index)
// thus names a place in the tree that a patch can change.
type view struct {
	root    map[string]any
	tree    *object
	objects map[uintptr]*object
	places  map[*object]place
}

// place says where an object sits in the tree and what FHIR type it has.
type place struct {
	parent *object // nil for the root
	key    string
	index  int            // -1 when the member is not an array
	typ    *fhirpath.Type // nil when the R4 model does not know it
}

func newView(root *object) *view {
	v := &view{tree: root, objects: map[uintptr]*object{}, places: map[*object]place{}}
	v.root = v.build(root, nil, place{index: -1}).(map[string]any)
	return v
}

func (v *view) build(x any, typ *fhirpath.Type, pl place) any {
	switch t := x.(type) {
	case *object:
		if typ == nil || isResource(typ) {
			if rt := resourceTypeOf(t); rt != nil {
				typ = rt
			}
		}
		pl.typ = typ
		m := make(map[string]any, len(t.members))
		v.objects[reflect.ValueOf(m).Pointer()] = t
		v.places[t] = pl
		for _, mem := range t.members {
			m[mem.key] = v.build(mem.value, childType(typ, mem.key), place{parent: t, key: mem.key, index: -1})
		}
		return m
	case *array:
		out := make([]any, len(t.items))
		for i, it := range t.items {
			child := place{parent: pl.parent, key: pl.key, index: i}
			if pl.index >= 0 {
				// An array in an array is not FHIR; what is in it has
				// no place a delete could prune.
				child = place{index: -1}
			}
			out[i] = v.build(it, typ, child)
		}
		return out
	}
	return x
}

// objectOf returns the tree object an engine object was made from, or nil.
func (v *view) objectOf(x any) *object {
	m, ok := x.(map[string]any)
	if !ok {
		return nil
	}
	return v.objects[reflect.ValueOf(m).Pointer()]
}

// resourceTypeOf returns the type an object's resourceType names, or nil.
func resourceTypeOf(o *object) *fhirpath.Type {
	rt, _ := o.get("resourceType")
	name, ok := rt.(string)
	if !ok || name == "" || strings.Contains(name, ".") {
		return nil
	}
	t, ok := fhirpath.LookupType("FHIR." + name)
	if !ok || !isResource(t) {
		return nil
	}
	return t
}

var (
	resourceT = sync.OnceValue(func() *fhirpath.Type { t, _ := fhirpath.LookupType("FHIR.Resource"); return t })
	elementT  = sync.OnceValue(func() *fhirpath.Type { t, _ := fhirpath.LookupType("FHIR.Element"); return t })
)

func isResource(t *fhirpath.Type) bool {
	return t != nil && resourceT() != nil && t.Is(resourceT())
}

// isPrimitive reports whether t is a FHIR primitive type; their names, and
// only theirs, start with a lowercase letter.
func isPrimitive(t *fhirpath.Type) bool {
	return t != nil && t.Namespace == "FHIR" && t.Name != "" && t.Name[0] >= 'a' && t.Name[0] <= 'z'
}

// jsonKind says how a primitive type is written in JSON.
func jsonKind(t *fhirpath.Type) string {
	switch t.Name {
	case "boolean":
		return "boolean"
	case "integer", "decimal", "positiveInt", "unsignedInt":
		return "number"
	}
	return "string"
}

// elementForKey finds the element a JSON member name stands for: the element
// of that name, or the choice element whose type-suffixed name it is
// (deceasedBoolean); i is the index of the member's type in el.Types.
func elementForKey(t *fhirpath.Type, key string) (el fhirpath.Element, i int, ok bool) {
	if t == nil {
		return el, 0, false
	}
	if el, ok := t.Element(key); ok && !el.Choice {
		return el, 0, true
	}
	for n := 1; n < len(key); n++ {
		if key[n] < 'A' || key[n] > 'Z' {
			continue
		}
		if el, ok := t.Element(key[:n]); ok && el.Choice {
			for j, k := range el.Keys {
				if k == key {
					return el, j, true
				}
			}
		}
	}
	return el, 0, false
}

// childType returns the type of a member of an object of type t, or nil.
func childType(t *fhirpath.Type, key string) *fhirpath.Type {
	if t == nil {
		return nil
	}
	if strings.HasPrefix(key, "_") {
		if el, i, ok := elementForKey(t, key[1:]); ok && isPrimitive(el.Types[i]) {
			return elementT()
		}
		return nil
	}
	if el, i, ok := elementForKey(t, key); ok {
		return el.Types[i]
	}
	return nil
}

// hasElements reports whether the model describes t's children.
func hasElements(t *fhirpath.Type) bool {
	if t == nil {
		return false
	}
	_, ok := t.Element("id")
	if !ok {
		_, ok = t.Element("extension")
	}
	return ok
}
