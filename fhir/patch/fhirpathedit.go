package patch

import (
	"errors"
	"fmt"
	"strings"

	"github.com/fhirhub/fhirhub/fhir/fhirpath"
)

// The edits of FHIRPath Patch: each operation evaluates its path on a fresh
// view of the tree and changes the tree where the selected items are.

func (o *fhirOp) apply(root *object) error {
	v := newView(root)
	got, err := o.expr.Evaluate(v.root, nil)
	if err != nil {
		return fmt.Errorf("evaluating the path: %v", err)
	}
	switch o.kind {
	case "add":
		return v.add(o, got)
	case "insert":
		return v.insert(o, got)
	case "delete":
		return v.delete(got)
	case "replace":
		return v.replace(o, got)
	case "move":
		return v.move(o, got)
	}
	return fmt.Errorf("unknown type %q", o.kind)
}

// one checks that the path selected a single element.
func one(got fhirpath.Collection) error {
	switch len(got) {
	case 1:
		return nil
	case 0:
		return errors.New("the path selects nothing")
	}
	return fmt.Errorf("the path selects %d elements, not one", len(got))
}

// errNotInResource is the error for an item that has no place in the tree:
// the resource itself, or a value the expression computed.
var errNotInResource = errors.New("the path selects the resource itself or a computed value, not an element of it")

// locate returns where an item is in the tree.
func (v *view) locate(it fhirpath.Item) (obj *object, key string, index int, err error) {
	parent, key, index := it.Location()
	if parent == nil {
		return nil, "", 0, errNotInResource
	}
	if obj = v.objectOf(parent); obj == nil {
		return nil, "", 0, errNotInResource
	}
	return obj, key, index, nil
}

// slot is a member an operation puts a value into.
type slot struct {
	key   string
	typ   *fhirpath.Type // the element's type; nil when unknown
	many  bool
	known bool     // the R4 model describes the member
	other []string // the other JSON names of a choice element
}

// slotFor finds the member an element name and a value of an object of type
// t go into, and checks that the value fits.
func slotFor(t *fhirpath.Type, name string, val *patchValue) (slot, error) {
	if !hasElements(t) {
		// Not in the model: follow the JSON.
		return slot{key: name, typ: val.typ}, nil
	}
	forced := -1
	el, ok := t.Element(name)
	if !ok {
		// A choice element may be named as in JSON (deceasedBoolean).
		var i int
		if el, i, ok = elementForKey(t, name); !ok {
			return slot{}, fmt.Errorf("%s has no element %q", t.Name, name)
		}
		forced = i
	}
	s := slot{key: name, many: el.Many, known: true}
	if !el.Choice {
		if err := fits(el.Types[0], val, t.Name+"."+name); err != nil {
			return slot{}, err
		}
		s.typ = el.Types[0]
		return s, nil
	}
	if val.typ == nil {
		return slot{}, fmt.Errorf("%s.%s[x] is a choice: give its value as a value[x] naming the type", t.Name, el.Name)
	}
	for i, ct := range el.Types {
		if ct.Name == val.typ.Name && (forced < 0 || forced == i) {
			s.key, s.typ = el.Keys[i], ct
			for j, k := range el.Keys {
				if j != i {
					s.other = append(s.other, k)
				}
			}
			return s, nil
		}
	}
	return slot{}, fmt.Errorf("%s.%s[x] cannot be %s", t.Name, el.Name, val.describe())
}

// fits checks that a value can be an element of type t: a primitive for a
// primitive written the same way in JSON (a string for a code), a complex
// value of t or a type derived from it, parts for anything but a primitive.
func fits(t *fhirpath.Type, val *patchValue, where string) error {
	switch {
	case val.typ == nil:
		if isPrimitive(t) {
			return fmt.Errorf("%s is %s: give its value as a value[x], not parts", where, article(t.Name))
		}
		return nil
	case isPrimitive(val.typ):
		if isPrimitive(t) && jsonKind(t) == jsonKind(val.typ) {
			return nil
		}
	case val.typ.Is(t):
		return nil
	}
	return fmt.Errorf("%s is %s and cannot be %s", where, article(t.Name), val.describe())
}

// materialize builds the JSON of a value for an element of type t (nil when
// unknown): the value itself, or an object made from its parts.
func materialize(val *patchValue, t *fhirpath.Type) (any, *object, error) {
	if val.parts == nil {
		var ext *object
		if val.ext != nil {
			ext = clone(val.ext).(*object)
		}
		return clone(val.json), ext, nil
	}
	obj := &object{}
	for _, p := range val.parts {
		s, err := slotFor(t, p.name, p.value)
		if err != nil {
			return nil, nil, err
		}
		j, ext, err := materialize(p.value, s.typ)
		if err != nil {
			return nil, nil, err
		}
		if err := putMember(obj, s, j, ext); err != nil {
			return nil, nil, fmt.Errorf("part %q: %w", p.name, err)
		}
	}
	return obj, nil, nil
}

// putMember adds a value to an object: appended to the member's array for a
// list, set for a single element that has no value yet.
func putMember(target *object, s slot, j any, ext *object) error {
	ukey := "_" + s.key
	cur, has := target.get(s.key)
	_, curIsArray := cur.(*array)
	if s.many || !s.known && curIsArray {
		arr, ok := cur.(*array)
		if !has || cur == nil {
			arr = &array{}
			target.set(s.key, arr)
		} else if !ok {
			return fmt.Errorf("%s is not a list", s.key)
		}
		n := len(arr.items)
		arr.items = append(arr.items, j)
		if _, uhas := target.get(ukey); ext != nil || uhas {
			uarr, err := extArray(target, ukey, n)
			if err != nil {
				return err
			}
			uarr.items = append(uarr.items, objectOrNil(ext))
		}
		return nil
	}
	if has && cur != nil {
		return fmt.Errorf("%s already has a value", s.key)
	}
	for _, k := range s.other {
		if v, ok := target.get(k); ok && v != nil {
			return fmt.Errorf("%s already has a value (%s)", s.key, k)
		}
	}
	if j != nil {
		target.set(s.key, j)
	}
	if ext != nil {
		target.set(ukey, ext)
	}
	return nil
}

// extArray returns the array of primitive extensions ukey, made at least n
// long (nulls fill it), creating it after its value array if needed.
func extArray(target *object, ukey string, n int) (*array, error) {
	cur, has := target.get(ukey)
	uarr, ok := cur.(*array)
	switch {
	case !has || cur == nil:
		uarr = &array{}
		if i := target.index(ukey[1:]); i >= 0 && !has {
			target.insertAt(i+1, ukey, uarr)
		} else {
			target.set(ukey, uarr)
		}
	case !ok:
		return nil, fmt.Errorf("%s is not a list", ukey)
	}
	for len(uarr.items) < n {
		uarr.items = append(uarr.items, nil)
	}
	return uarr, nil
}

func objectOrNil(o *object) any {
	if o == nil {
		return nil
	}
	return o
}

func (v *view) add(o *fhirOp, got fhirpath.Collection) error {
	if err := one(got); err != nil {
		return err
	}
	it := got[0]
	if target := v.objectOf(it.Value()); target != nil {
		s, err := slotFor(v.places[target].typ, o.name, o.value)
		if err != nil {
			return err
		}
		j, ext, err := materialize(o.value, s.typ)
		if err != nil {
			return err
		}
		return putMember(target, s, j, ext)
	}
	// A primitive has children too, id and extension, held in its "_name"
	// sibling.
	if !isPrimitive(it.Type()) {
		return fmt.Errorf("the path selects %s, which has no elements to add to", article(typeName(it)))
	}
	if o.name != "id" && o.name != "extension" {
		return fmt.Errorf("the path selects %s, a primitive: only id and extension can be added to it", article(it.Type().Name))
	}
	s, err := slotFor(elementT(), o.name, o.value)
	if err != nil {
		return err
	}
	j, ext, err := materialize(o.value, s.typ)
	if err != nil {
		return err
	}
	obj, key, index, err := v.locate(it)
	if err != nil {
		return err
	}
	target, err := primitiveElement(obj, key, index)
	if err != nil {
		return err
	}
	return putMember(target, s, j, ext)
}

func typeName(it fhirpath.Item) string {
	if n := it.TypeName(); n != "" {
		return n
	}
	return "value"
}

// primitiveElement returns (creating it) the object holding the id and
// extensions of the primitive at obj[key] or obj[key][index].
func primitiveElement(obj *object, key string, index int) (*object, error) {
	ukey := "_" + key
	if index < 0 {
		cur, has := obj.get(ukey)
		if has && cur != nil {
			el, ok := cur.(*object)
			if !ok {
				return nil, fmt.Errorf("%s is not an object", ukey)
			}
			return el, nil
		}
		el := &object{}
		if i := obj.index(key); i >= 0 && !has {
			obj.insertAt(i+1, ukey, el)
		} else {
			obj.set(ukey, el)
		}
		return el, nil
	}
	uarr, err := extArray(obj, ukey, index+1)
	if err != nil {
		return nil, err
	}
	if el, ok := uarr.items[index].(*object); ok {
		return el, nil
	}
	if uarr.items[index] != nil {
		return nil, fmt.Errorf("%s[%d] is not an object", ukey, index)
	}
	el := &object{}
	uarr.items[index] = el
	return el, nil
}

// list is a JSON array member a path selected as a whole.
type list struct {
	obj *object
	key string
	arr *array // nil when the member is absent
	typ *fhirpath.Type
	// known is whether the model describes the member.
	known bool
}

func (l *list) len() int {
	if l.arr == nil {
		return 0
	}
	return len(l.arr.items)
}

// list finds the list a path selects: all the items of one array member. An
// empty list is found from the path with its last step removed.
func (v *view) list(o *fhirOp, got fhirpath.Collection) (*list, error) {
	if len(got) == 0 {
		return v.emptyList(o)
	}
	var l *list
	for _, it := range got {
		obj, key, index, err := v.locate(it)
		if err != nil {
			return nil, err
		}
		if index < 0 {
			return nil, errors.New("the path selects an element that is not a list")
		}
		if l == nil {
			l = &list{obj: obj, key: key}
		} else if obj != l.obj || key != l.key {
			return nil, errors.New("the path selects elements of more than one list")
		}
	}
	cur, _ := l.obj.get(l.key)
	l.arr, _ = cur.(*array)
	if n := present(l.obj, l.key); n != len(got) {
		return nil, fmt.Errorf("the path selects %d of the %d items of the list; it must select the whole list", len(got), n)
	}
	if el, i, ok := elementForKey(v.places[l.obj].typ, l.key); ok {
		l.typ, l.known = el.Types[i], true
	}
	return l, nil
}

// present counts the items of a list the FHIRPath engine sees: those with a
// value or extensions.
func present(obj *object, key string) int {
	a, _ := obj.get(key)
	u, _ := obj.get("_" + key)
	arr, _ := a.(*array)
	uarr, _ := u.(*array)
	n := 0
	for i := 0; arr != nil && i < len(arr.items) || uarr != nil && i < len(uarr.items); i++ {
		if arr != nil && i < len(arr.items) && arr.items[i] != nil || uarr != nil && i < len(uarr.items) && uarr.items[i] != nil {
			n++
		}
	}
	return n
}

// emptyList finds the list an insert or move names when the path selects
// nothing: Patient.identifier on a Patient without identifiers is the
// identifier member of the one element Patient selects.
func (v *view) emptyList(o *fhirOp) (*list, error) {
	prefix, name, ok := splitLastStep(o.path)
	if !ok {
		return nil, errors.New("the path selects nothing")
	}
	x, err := fhirpath.Compile(prefix)
	if err != nil {
		return nil, errors.New("the path selects nothing")
	}
	got, err := x.Evaluate(v.root, nil)
	if err != nil || len(got) != 1 {
		return nil, errors.New("the path selects nothing")
	}
	obj := v.objectOf(got[0].Value())
	if obj == nil {
		return nil, errors.New("the path selects nothing")
	}
	l := &list{obj: obj, key: name}
	if t := v.places[obj].typ; hasElements(t) {
		el, ok := t.Element(name)
		if !ok {
			return nil, fmt.Errorf("%s has no element %q", t.Name, name)
		}
		if !el.Many {
			return nil, fmt.Errorf("%s.%s is not a list", t.Name, name)
		}
		l.typ, l.known = el.Types[0], true
	}
	cur, _ := obj.get(name)
	l.arr, _ = cur.(*array)
	return l, nil
}

// splitLastStep splits a path whose last step is a plain name
// (Patient.name[0].given) into the path before it and the name.
func splitLastStep(path string) (prefix, name string, ok bool) {
	path = strings.TrimSpace(path)
	dot := strings.LastIndexByte(path, '.')
	if dot <= 0 {
		return "", "", false
	}
	name = path[dot+1:]
	if name == "" || name[0] >= '0' && name[0] <= '9' {
		return "", "", false
	}
	for _, c := range name {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return "", "", false
		}
	}
	return path[:dot], name, true
}

func (v *view) insert(o *fhirOp, got fhirpath.Collection) error {
	l, err := v.list(o, got)
	if err != nil {
		return err
	}
	n := l.len()
	if o.at < 0 || o.at > n {
		return fmt.Errorf("index %d is out of range: the list has %s", o.at, items(n))
	}
	var typ *fhirpath.Type
	if l.known {
		if err := fits(l.typ, o.value, v.places[l.obj].typ.Name+"."+l.key); err != nil {
			return err
		}
		typ = l.typ
	}
	j, ext, err := materialize(o.value, typ)
	if err != nil {
		return err
	}
	if l.arr == nil {
		l.arr = &array{}
		l.obj.set(l.key, l.arr)
	}
	ukey := "_" + l.key
	if _, uhas := l.obj.get(ukey); ext != nil || uhas {
		uarr, err := extArray(l.obj, ukey, n)
		if err != nil {
			return err
		}
		uarr.insert(min(o.at, len(uarr.items)), objectOrNil(ext))
	}
	l.arr.insert(o.at, j)
	return nil
}

func (v *view) move(o *fhirOp, got fhirpath.Collection) error {
	l, err := v.list(o, got)
	if err != nil {
		return err
	}
	n := l.len()
	if o.from < 0 || o.from >= n {
		return fmt.Errorf("source %d is out of range: the list has %s", o.from, items(n))
	}
	if o.to < 0 || o.to >= n {
		return fmt.Errorf("destination %d is out of range: the list has %s", o.to, items(n))
	}
	l.arr.insert(o.to, l.arr.removeAt(o.from))
	if u, ok := l.obj.get("_" + l.key); ok && u != nil {
		uarr, err := extArray(l.obj, "_"+l.key, n)
		if err != nil {
			return err
		}
		uarr.insert(o.to, uarr.removeAt(o.from))
	}
	return nil
}

func (v *view) delete(got fhirpath.Collection) error {
	switch len(got) {
	case 0:
		return nil
	case 1:
	default:
		return fmt.Errorf("the path selects %d elements; delete removes one", len(got))
	}
	obj, key, index, err := v.locate(got[0])
	if err != nil {
		return err
	}
	removeElement(obj, key, index)
	v.prune(obj)
	return nil
}

// removeElement removes obj[key] or obj[key][index], with its primitive
// extensions (the same place in "_key"), and the member once its list is
// empty.
func removeElement(obj *object, key string, index int) {
	ukey := "_" + key
	if index < 0 {
		obj.remove(key)
		obj.remove(ukey)
		return
	}
	a, _ := obj.get(key)
	u, _ := obj.get(ukey)
	arr, _ := a.(*array)
	uarr, _ := u.(*array)
	if arr != nil && index < len(arr.items) {
		arr.removeAt(index)
	}
	if uarr != nil && index < len(uarr.items) {
		uarr.removeAt(index)
	}
	if uarr != nil && allNull(uarr) {
		obj.remove(ukey)
		uarr = nil
	}
	if arr != nil && allNull(arr) && uarr == nil {
		obj.remove(key)
	}
}

func allNull(a *array) bool {
	for _, it := range a.items {
		if it != nil {
			return false
		}
	}
	return true
}

// prune removes objects a delete left empty, from obj up to (not including)
// the resource: FHIR has no empty elements.
func (v *view) prune(obj *object) {
	for len(obj.members) == 0 {
		pl, ok := v.places[obj]
		if !ok || pl.parent == nil {
			return
		}
		parent := pl.parent
		switch {
		case pl.index < 0:
			parent.remove(pl.key)
		case strings.HasPrefix(pl.key, "_"):
			// An entry of a primitive list's extensions: it keeps its place.
			if u, _ := parent.get(pl.key); u != nil {
				if uarr, ok := u.(*array); ok && pl.index < len(uarr.items) {
					uarr.items[pl.index] = nil
					if allNull(uarr) {
						parent.remove(pl.key)
					}
				}
			}
		default:
			removeElement(parent, pl.key, pl.index)
		}
		obj = parent
	}
}

func (v *view) replace(o *fhirOp, got fhirpath.Collection) error {
	if err := one(got); err != nil {
		return err
	}
	obj, key, index, err := v.locate(got[0])
	if err != nil {
		return err
	}
	newKey := key
	var typ *fhirpath.Type
	ptyp := v.places[obj].typ
	if el, _, ok := elementForKey(ptyp, key); ok {
		s, err := slotFor(ptyp, el.Name, o.value)
		if err != nil {
			return err
		}
		newKey, typ = s.key, s.typ
	}
	j, ext, err := materialize(o.value, typ)
	if err != nil {
		return err
	}
	ukey, newUkey := "_"+key, "_"+newKey
	if index >= 0 {
		cur, has := obj.get(key)
		arr, ok := cur.(*array)
		if has && cur != nil && !ok {
			return fmt.Errorf("%s is not a list", key)
		}
		if !ok {
			// Only the extensions were there.
			arr = &array{}
			if i := obj.index(ukey); i >= 0 && !has {
				obj.insertAt(i, key, arr)
			} else {
				obj.set(key, arr)
			}
		}
		for len(arr.items) <= index {
			arr.items = append(arr.items, nil)
		}
		arr.items[index] = j
		if ext != nil {
			uarr, err := extArray(obj, ukey, index+1)
			if err != nil {
				return err
			}
			uarr.items[index] = ext
		}
		return nil
	}
	if newKey != key {
		// A choice element changing type (deceasedBoolean to
		// deceasedDateTime) keeps its place; a primitive's extensions stay
		// with it, a complex value has none.
		obj.rename(key, newKey)
		if typ != nil && !isPrimitive(typ) {
			obj.remove(ukey)
		} else {
			obj.rename(ukey, newUkey)
		}
	}
	switch i := obj.index(newKey); {
	case j == nil:
		obj.remove(newKey)
	case i >= 0:
		obj.members[i].value = j
	default:
		if ui := obj.index(newUkey); ui >= 0 {
			obj.insertAt(ui, newKey, j)
		} else {
			obj.set(newKey, j)
		}
	}
	if ext != nil {
		if i := obj.index(newUkey); i >= 0 {
			obj.members[i].value = ext
		} else if i := obj.index(newKey); i >= 0 {
			obj.insertAt(i+1, newUkey, ext)
		} else {
			obj.set(newUkey, ext)
		}
	}
	return nil
}
