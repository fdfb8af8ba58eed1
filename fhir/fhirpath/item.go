package fhirpath

import (
	"encoding/json"
	"math/big"
	"strconv"
)

// Collection is the result of an expression: an ordered list of items.
type Collection []Item

// Item is one value in a collection: a JSON value from the resource (a
// map[string]any for a complex element or resource; a string, bool or
// json.Number for a primitive) or a value the expression computed, together
// with its type and, for values found in the resource, where they were found.
type Item struct {
	value any
	typ   *Type

	// Where the value was found: parent[key], or parent[key][index] when
	// index >= 0. The primitive extension sibling is parent["_"+key].
	parent map[string]any
	key    string
	index  int
}

func newItem(v any, t *Type) Item { return Item{value: v, typ: t, index: -1} }

// Value returns the JSON value (map[string]any, string, bool, json.Number,
// or nil for a primitive that has only extensions), or, for a computed
// value, a string, bool, int64, Decimal, DateTime or Quantity.
func (it Item) Value() any { return it.value }

// Type returns the item's type; nil when it is not known (a member that is
// not in the R4 model).
func (it Item) Type() *Type { return it.typ }

// TypeName returns the unqualified type name: "Quantity", "dateTime",
// "Patient", "String". Backbone elements give their path ("Patient.contact").
func (it Item) TypeName() string {
	if it.typ == nil {
		return ""
	}
	return it.typ.Name
}

// Location returns where a value was found in the resource: the object
// holding it, its member name and, for an array member, its index (-1
// otherwise). parent is nil for computed values.
func (it Item) Location() (parent map[string]any, key string, index int) {
	return it.parent, it.key, it.index
}

// Extensions returns the extensions of a primitive value (from its "_key"
// sibling in JSON) or of a complex one.
func (it Item) Extensions() []any {
	if m, ok := it.value.(map[string]any); ok {
		ext, _ := m["extension"].([]any)
		return ext
	}
	if el := it.primitiveElement(); el != nil {
		ext, _ := el["extension"].([]any)
		return ext
	}
	return nil
}

// primitiveElement returns the JSON object holding a primitive's id and
// extensions, or nil.
func (it Item) primitiveElement() map[string]any {
	if it.parent == nil {
		return nil
	}
	u, ok := it.parent["_"+it.key]
	if !ok {
		return nil
	}
	if it.index >= 0 {
		arr, _ := u.([]any)
		if it.index >= len(arr) {
			return nil
		}
		u = arr[it.index]
	}
	m, _ := u.(map[string]any)
	return m
}

// hasValue reports whether a primitive has a value (not only extensions).
func (it Item) hasValue() bool { return it.value != nil }

// AsString returns the value of a string-like item (string, code, uri, id, ...).
func (it Item) AsString() (string, bool) {
	s, ok := it.value.(string)
	if !ok || it.typ != nil && it.typ.sys != typeString {
		return "", false
	}
	return s, true
}

// AsBool returns the value of a boolean item.
func (it Item) AsBool() (bool, bool) {
	b, ok := it.value.(bool)
	return b, ok
}

// AsInteger returns the value of an integer item.
func (it Item) AsInteger() (int64, bool) {
	switch v := it.system().(type) {
	case int64:
		return v, true
	}
	return 0, false
}

// AsDecimal returns the value of a decimal (or integer) item, exactly.
func (it Item) AsDecimal() (Decimal, bool) {
	switch v := it.system().(type) {
	case Decimal:
		return v, true
	case int64:
		return decimalFromInt(v), true
	}
	return Decimal{}, false
}

// AsDateTime returns the value of a date, dateTime, instant or time item with
// its precision.
func (it Item) AsDateTime() (DateTime, bool) {
	v, ok := it.system().(DateTime)
	return v, ok
}

// AsQuantity returns the value of a Quantity item (or one of its subtypes,
// such as Age) or of a quantity the expression computed. A FHIR Quantity
// takes its UCUM code as unit when its system is UCUM, its unit otherwise.
func (it Item) AsQuantity() (Quantity, bool) {
	v, ok := it.system().(Quantity)
	return v, ok
}

// system converts the item to its System value: string, bool, int64,
// Decimal, DateTime or Quantity; nil when it has none (complex values and
// primitives without a value).
func (it Item) system() any {
	t := it.typ
	if t != nil && t.kind == kindSystem {
		return it.value
	}
	switch v := it.value.(type) {
	case nil:
		return nil
	case string:
		if t == nil {
			return v
		}
		switch t.sys {
		case typeDate:
			if d, ok := parseDate(v); ok {
				return d
			}
			return nil
		case typeDateTime:
			if d, ok := parseDateTime(v); ok {
				return d
			}
			return nil
		case typeTime:
			if d, ok := parseTime(v); ok {
				return d
			}
			return nil
		case typeString:
			return v
		}
		return nil
	case bool:
		return v
	case json.Number:
		if t != nil && t.sys == typeInteger || t == nil && isIntLiteral(string(v)) {
			if i, err := strconv.ParseInt(string(v), 10, 64); err == nil {
				return i
			}
		}
		if d, ok := ParseDecimal(string(v)); ok {
			return d
		}
		return nil
	case map[string]any:
		if t != nil && t.sys == typeQuantity {
			return quantityFromJSON(v)
		}
		return nil
	case int64, Decimal, DateTime, Quantity:
		return v
	case float64:
		r := new(big.Rat)
		if r.SetFloat64(v) == nil {
			return nil
		}
		d, _ := ParseDecimal(strconv.FormatFloat(v, 'f', -1, 64))
		return d
	case int:
		return int64(v)
	}
	return nil
}

func isIntLiteral(s string) bool {
	for i := 0; i < len(s); i++ {
		if (s[i] < '0' || s[i] > '9') && !(i == 0 && s[i] == '-') {
			return false
		}
	}
	return s != ""
}

func quantityFromJSON(m map[string]any) any {
	var q Quantity
	switch v := m["value"].(type) {
	case json.Number:
		d, ok := ParseDecimal(string(v))
		if !ok {
			return nil
		}
		q.Value = d
	case float64:
		d, ok := ParseDecimal(strconv.FormatFloat(v, 'f', -1, 64))
		if !ok {
			return nil
		}
		q.Value = d
	default:
		return nil
	}
	code, _ := m["code"].(string)
	system, _ := m["system"].(string)
	unit, _ := m["unit"].(string)
	switch {
	case code != "" && (system == "http://unitsofmeasure.org" || system == ""):
		q.Unit = code
	case unit != "":
		q.Unit = unit
		if c, ok := calendarUnits[unit]; ok {
			q.Unit = c
		}
	default:
		q.Unit = code
	}
	return q
}

// sysItem wraps a computed System value.
func sysItem(v any) Item {
	switch x := v.(type) {
	case string:
		return newItem(x, typeString)
	case bool:
		return newItem(x, typeBoolean)
	case int64:
		return newItem(x, typeInteger)
	case Decimal:
		return newItem(x, typeDecimal)
	case DateTime:
		return newItem(x, x.sysType())
	case Quantity:
		return newItem(x, typeQuantity)
	}
	return newItem(v, nil)
}

var (
	trueItem  = Collection{newItem(true, typeBoolean)}
	falseItem = Collection{newItem(false, typeBoolean)}
)

func boolColl(b bool) Collection {
	if b {
		return trueItem
	}
	return falseItem
}
