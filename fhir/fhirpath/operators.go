package fhirpath

import (
	"encoding/json"
	"math/big"
	"reflect"
	"strings"
	"unicode"
)

func (n *unaryNode) eval(e *env, focus Collection) (Collection, error) {
	c, err := n.operand.eval(e, focus)
	if err != nil {
		return nil, err
	}
	it, ok, err := singleton(c)
	if !ok || err != nil {
		return nil, errAt(err, n.pos)
	}
	if n.op == "+" {
		switch it.system().(type) {
		case int64, Decimal, Quantity:
			return Collection{sysItem(it.system())}, nil
		}
	} else if v, ok := negate(it.system()); ok {
		return Collection{sysItem(v)}, nil
	}
	return nil, &Error{Offset: n.pos, Msg: "unary " + n.op + " needs a number or a quantity, got " + describe(it)}
}

func (n *typeNode) eval(e *env, focus Collection) (Collection, error) {
	c, err := n.left.eval(e, focus)
	if err != nil {
		return nil, err
	}
	if n.op == "as" && len(c) > 1 {
		// The R4 search parameters apply "as" to collections
		// ((Observation.component.value as Quantity)): it filters them.
		var out Collection
		for _, it := range c {
			if asType(it, n.typ) {
				out = append(out, it)
			}
		}
		return out, nil
	}
	it, ok, err := singleton(c)
	if err != nil {
		return nil, errAt(err, n.pos)
	}
	if !ok {
		return nil, nil
	}
	if n.op == "is" {
		return boolColl(isType(it, n.typ)), nil
	}
	if asType(it, n.typ) {
		return c, nil
	}
	return nil, nil
}

// isType reports whether it is of type t or a subtype. An unqualified
// Quantity matches System quantities too.
func isType(it Item, t *Type) bool {
	if it.typ == nil {
		return false
	}
	if it.typ.Is(t) {
		return true
	}
	return t.Name == "Quantity" && it.typ == typeQuantity
}

// asType is the test of as() and ofType(): the type itself, or a subtype for
// complex types and resources (FHIR primitives must match exactly: a code is
// not returned by as(string)).
func asType(it Item, t *Type) bool {
	if it.typ == nil {
		return false
	}
	if it.typ.kind == kindPrimitive {
		return it.typ == t
	}
	return isType(it, t)
}

func (n *binaryNode) eval(e *env, focus Collection) (Collection, error) {
	switch n.op {
	case "and", "or", "xor", "implies":
		return n.logic(e, focus)
	}
	left, err := n.left.eval(e, focus)
	if err != nil {
		return nil, err
	}
	right, err := n.right.eval(e, focus)
	if err != nil {
		return nil, err
	}
	var out Collection
	switch n.op {
	case "|":
		out = union(left, right)
	case "=":
		out = equalColl(left, right)
	case "!=":
		out = equalColl(left, right)
		if len(out) == 1 {
			out = boolColl(!out[0].value.(bool))
		}
	case "~":
		out = boolColl(equivalentColl(left, right))
	case "!~":
		out = boolColl(!equivalentColl(left, right))
	case "<", ">", "<=", ">=":
		out, err = compare(n.op, left, right)
	case "in":
		out, err = membership(left, right)
	case "contains":
		out, err = membership(right, left)
	case "&":
		out, err = concat(left, right)
	default:
		out, err = arithmetic(n.op, left, right)
	}
	return out, errAt(err, n.pos)
}

// logic evaluates the three-valued boolean operators.
func (n *binaryNode) logic(e *env, focus Collection) (Collection, error) {
	lc, err := n.left.eval(e, focus)
	if err != nil {
		return nil, err
	}
	l, lok, err := singletonBool(lc)
	if err != nil {
		return nil, errAt(err, n.pos)
	}
	// Short cuts that do not need the right operand.
	switch {
	case n.op == "and" && lok && !l:
		return falseItem, nil
	case n.op == "or" && lok && l:
		return trueItem, nil
	case n.op == "implies" && lok && !l:
		return trueItem, nil
	}
	rc, err := n.right.eval(e, focus)
	if err != nil {
		return nil, err
	}
	r, rok, err := singletonBool(rc)
	if err != nil {
		return nil, errAt(err, n.pos)
	}
	switch n.op {
	case "and":
		switch {
		case rok && !r:
			return falseItem, nil
		case lok && rok:
			return trueItem, nil
		}
	case "or":
		switch {
		case rok && r:
			return trueItem, nil
		case lok && rok:
			return falseItem, nil
		}
	case "xor":
		if lok && rok {
			return boolColl(l != r), nil
		}
	case "implies":
		switch {
		case rok && r:
			return trueItem, nil
		case lok && rok:
			return boolColl(!l || r), nil
		}
	}
	return nil, nil
}

// union merges two collections, dropping duplicates.
func union(a, b Collection) Collection {
	out := make(Collection, 0, len(a)+len(b))
	for _, c := range [2]Collection{a, b} {
		for _, it := range c {
			if !containsItem(out, it) {
				out = append(out, it)
			}
		}
	}
	return out
}

func containsItem(c Collection, it Item) bool {
	for _, x := range c {
		if eq, known := itemsEqual(x, it); known && eq {
			return true
		}
	}
	return false
}

func equalColl(a, b Collection) Collection {
	if len(a) == 0 || len(b) == 0 {
		return nil
	}
	if len(a) != len(b) {
		return falseItem
	}
	unknown := false
	for i := range a {
		eq, known := itemsEqual(a[i], b[i])
		if !known {
			unknown = true
			continue
		}
		if !eq {
			return falseItem
		}
	}
	if unknown {
		return nil
	}
	return trueItem
}

// itemsEqual is FHIRPath equality of two items; known is false when the
// answer is empty (dates of different precision, incomparable quantities).
func itemsEqual(a, b Item) (eq, known bool) {
	if a.parent != nil && a.key == b.key && a.index == b.index && sameMap(a.parent, b.parent) && a.typ == b.typ {
		return true, true // the same element
	}
	av, bv := a.system(), b.system()
	switch x := av.(type) {
	case nil:
		if bv != nil {
			return false, true
		}
		am, ok1 := a.value.(map[string]any)
		bm, ok2 := b.value.(map[string]any)
		if ok1 && ok2 {
			return jsonEqual(am, bm), true
		}
		if a.value == nil || b.value == nil {
			return false, false
		}
		return reflect.DeepEqual(a.value, b.value), true
	case string:
		y, ok := bv.(string)
		return ok && x == y, true
	case bool:
		y, ok := bv.(bool)
		return ok && x == y, true
	case int64:
		switch y := bv.(type) {
		case int64:
			return x == y, true
		case Decimal:
			return decimalFromInt(x).cmp(y) == 0, true
		case Quantity:
			return quantityEqual(Quantity{Value: decimalFromInt(x), Unit: "1"}, y)
		}
	case Decimal:
		switch y := bv.(type) {
		case int64:
			return x.cmp(decimalFromInt(y)) == 0, true
		case Decimal:
			return x.cmp(y) == 0, true
		case Quantity:
			return quantityEqual(Quantity{Value: x, Unit: "1"}, y)
		}
	case DateTime:
		y, ok := bv.(DateTime)
		if !ok {
			return false, true
		}
		if (x.kind == kindTime) != (y.kind == kindTime) {
			return false, true
		}
		c, ok := compareDateTime(x, y)
		return c == 0, ok
	case Quantity:
		switch y := bv.(type) {
		case Quantity:
			return quantityEqual(x, y)
		case int64:
			return quantityEqual(x, Quantity{Value: decimalFromInt(y), Unit: "1"})
		case Decimal:
			return quantityEqual(x, Quantity{Value: y, Unit: "1"})
		}
	}
	return false, true
}

func sameMap(a, b map[string]any) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

func quantityEqual(a, b Quantity) (bool, bool) {
	c, ok := compareQuantities(a, b)
	return c == 0, ok
}

// jsonEqual compares decoded JSON values, numbers by value.
func jsonEqual(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !jsonEqual(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !jsonEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		dx, ok1 := ParseDecimal(string(x))
		dy, ok2 := ParseDecimal(string(y))
		return ok1 && ok2 && dx.cmp(dy) == 0
	}
	return a == b
}

// equivalentColl is ~: order does not matter, empty ~ empty.
func equivalentColl(a, b Collection) bool {
	if len(a) != len(b) {
		return false
	}
	used := make([]bool, len(b))
outer:
	for _, x := range a {
		for j, y := range b {
			if !used[j] && itemsEquivalent(x, y) {
				used[j] = true
				continue outer
			}
		}
		return false
	}
	return true
}

func itemsEquivalent(a, b Item) bool {
	av, bv := a.system(), b.system()
	switch x := av.(type) {
	case nil:
		am, ok1 := a.value.(map[string]any)
		bm, ok2 := b.value.(map[string]any)
		return ok1 && ok2 && jsonEquivalent(am, bm)
	case string:
		y, ok := bv.(string)
		return ok && normalizeString(x) == normalizeString(y)
	case int64:
		switch y := bv.(type) {
		case int64:
			return x == y
		case Decimal:
			return decimalFromInt(x).equivalent(y)
		}
	case Decimal:
		switch y := bv.(type) {
		case int64:
			return x.equivalent(decimalFromInt(y))
		case Decimal:
			return x.equivalent(y)
		}
	case DateTime:
		y, ok := bv.(DateTime)
		if !ok || level(x.Precision) != level(y.Precision) {
			return false
		}
		c, ok := compareDateTime(x, y)
		return ok && c == 0
	case Quantity:
		y, ok := bv.(Quantity)
		return ok && equivalentQuantities(x, y)
	}
	eq, known := itemsEqual(a, b)
	return known && eq
}

func jsonEquivalent(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok {
			return false
		}
		for k, v := range x {
			if k == "id" || k == "extension" {
				continue
			}
			if !jsonEquivalent(v, y[k]) {
				return false
			}
		}
		for k := range y {
			if _, ok := x[k]; !ok && k != "id" && k != "extension" {
				return false
			}
		}
		return true
	case string:
		y, ok := b.(string)
		return ok && normalizeString(x) == normalizeString(y)
	}
	return jsonEqual(a, b)
}

// normalizeString folds case and collapses white space, for ~.
func normalizeString(s string) string {
	return strings.Join(strings.FieldsFunc(strings.ToLower(s), unicode.IsSpace), " ")
}

// compare evaluates < > <= >=.
func compare(op string, a, b Collection) (Collection, error) {
	x, ok1, err := singleton(a)
	if err != nil {
		return nil, err
	}
	y, ok2, err := singleton(b)
	if err != nil || !ok1 || !ok2 {
		return nil, err
	}
	c, known, err := order(x, y)
	if err != nil || !known {
		return nil, err
	}
	switch op {
	case "<":
		return boolColl(c < 0), nil
	case ">":
		return boolColl(c > 0), nil
	case "<=":
		return boolColl(c <= 0), nil
	}
	return boolColl(c >= 0), nil
}

// order compares two items of ordered types.
func order(a, b Item) (c int, known bool, err error) {
	av, bv := a.system(), b.system()
	switch x := av.(type) {
	case int64:
		switch y := bv.(type) {
		case int64:
			return cmpInt(x, y), true, nil
		case Decimal:
			return decimalFromInt(x).cmp(y), true, nil
		}
	case Decimal:
		switch y := bv.(type) {
		case int64:
			return x.cmp(decimalFromInt(y)), true, nil
		case Decimal:
			return x.cmp(y), true, nil
		}
	case string:
		if y, ok := bv.(string); ok {
			return strings.Compare(x, y), true, nil
		}
	case DateTime:
		if y, ok := bv.(DateTime); ok && (x.kind == kindTime) == (y.kind == kindTime) {
			c, ok := compareDateTime(x, y)
			return c, ok, nil
		}
	case Quantity:
		if y, ok := bv.(Quantity); ok {
			c, ok := compareQuantities(x, y)
			return c, ok, nil
		}
	}
	return 0, false, evalErr("cannot compare %s with %s", describe(a), describe(b))
}

func cmpInt(x, y int64) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// membership is "a in b": empty when a is empty, an error when a has more
// than one item.
func membership(a, b Collection) (Collection, error) {
	x, ok, err := singleton(a)
	if err != nil || !ok {
		return nil, err
	}
	return boolColl(containsItem(b, x)), nil
}

func concat(a, b Collection) (Collection, error) {
	var s [2]string
	for i, c := range [2]Collection{a, b} {
		str, ok, err := singletonString(c)
		if err != nil {
			return nil, err
		}
		if ok {
			s[i] = str
		}
	}
	return Collection{sysItem(s[0] + s[1])}, nil
}

// arithmetic evaluates + - * / div mod.
func arithmetic(op string, a, b Collection) (Collection, error) {
	x, ok1, err := singleton(a)
	if err != nil {
		return nil, err
	}
	y, ok2, err := singleton(b)
	if err != nil || !ok1 || !ok2 {
		return nil, err
	}
	av, bv := x.system(), y.system()
	fail := func() (Collection, error) {
		return nil, evalErr("cannot apply %s to %s and %s", op, describe(x), describe(y))
	}
	switch l := av.(type) {
	case int64:
		switch r := bv.(type) {
		case int64:
			return intArithmetic(op, l, r)
		case Decimal:
			return decimalArithmetic(op, decimalFromInt(l), r)
		case Quantity:
			if op == "*" {
				return quantityArithmetic(op, Quantity{Value: decimalFromInt(l), Unit: "1"}, r)
			}
		}
	case Decimal:
		switch r := bv.(type) {
		case int64:
			return decimalArithmetic(op, l, decimalFromInt(r))
		case Decimal:
			return decimalArithmetic(op, l, r)
		case Quantity:
			if op == "*" {
				return quantityArithmetic(op, Quantity{Value: l, Unit: "1"}, r)
			}
		}
	case string:
		if r, ok := bv.(string); ok && op == "+" {
			return Collection{sysItem(l + r)}, nil
		}
	case DateTime:
		if r, ok := bv.(Quantity); ok && (op == "+" || op == "-") {
			return dateArithmetic(op, l, r)
		}
	case Quantity:
		switch r := bv.(type) {
		case Quantity:
			return quantityArithmetic(op, l, r)
		case int64:
			if op == "*" || op == "/" {
				return quantityArithmetic(op, l, Quantity{Value: decimalFromInt(r), Unit: "1"})
			}
		case Decimal:
			if op == "*" || op == "/" {
				return quantityArithmetic(op, l, Quantity{Value: r, Unit: "1"})
			}
		}
	}
	return fail()
}

func intArithmetic(op string, l, r int64) (Collection, error) {
	switch op {
	case "+":
		return Collection{sysItem(l + r)}, nil
	case "-":
		return Collection{sysItem(l - r)}, nil
	case "*":
		return Collection{sysItem(l * r)}, nil
	case "/":
		return decimalArithmetic(op, decimalFromInt(l), decimalFromInt(r))
	case "div":
		if r == 0 {
			return nil, nil
		}
		return Collection{sysItem(l / r)}, nil
	case "mod":
		if r == 0 {
			return nil, nil
		}
		return Collection{sysItem(l % r)}, nil
	}
	return nil, evalErr("unknown operator %s", op)
}

func decimalArithmetic(op string, l, r Decimal) (Collection, error) {
	switch op {
	case "+":
		return Collection{sysItem(l.add(r))}, nil
	case "-":
		return Collection{sysItem(l.sub(r))}, nil
	case "*":
		return Collection{sysItem(l.mul(r))}, nil
	case "/":
		q, ok := l.div(r)
		if !ok {
			return nil, nil
		}
		return Collection{sysItem(q)}, nil
	case "div":
		if r.Rat().Sign() == 0 {
			return nil, nil
		}
		q := new(big.Rat).Quo(l.Rat(), r.Rat())
		t := new(big.Int).Quo(q.Num(), q.Denom())
		return Collection{sysItem(Decimal{r: new(big.Rat).SetInt(t)})}, nil
	case "mod":
		if r.Rat().Sign() == 0 {
			return nil, nil
		}
		q := new(big.Rat).Quo(l.Rat(), r.Rat())
		t := new(big.Int).Quo(q.Num(), q.Denom())
		m := new(big.Rat).Sub(l.Rat(), new(big.Rat).Mul(r.Rat(), new(big.Rat).SetInt(t)))
		return Collection{sysItem(Decimal{r: m, scale: max(l.scale, r.scale)})}, nil
	}
	return nil, evalErr("unknown operator %s", op)
}

func quantityArithmetic(op string, l, r Quantity) (Collection, error) {
	switch op {
	case "+", "-":
		rv, ok := r.convert(l.Unit)
		if !ok {
			return nil, evalErr("cannot apply %s to quantities in %s and %s", op, l.Unit, r.Unit)
		}
		v := l.Value.add(rv)
		if op == "-" {
			v = l.Value.sub(rv)
		}
		return Collection{sysItem(Quantity{Value: v, Unit: l.Unit})}, nil
	case "*":
		return Collection{sysItem(Quantity{Value: l.Value.mul(r.Value), Unit: mulUnits(l.Unit, r.Unit)})}, nil
	case "/":
		q, ok := l.Value.div(r.Value)
		if !ok {
			return nil, nil
		}
		return Collection{sysItem(Quantity{Value: q, Unit: divUnits(l.Unit, r.Unit)})}, nil
	}
	return nil, evalErr("cannot apply %s to quantities", op)
}

func dateArithmetic(op string, d DateTime, q Quantity) (Collection, error) {
	unit, ok := dateArithmeticUnit(q.Unit)
	if !ok {
		return nil, evalErr("cannot add a quantity in %q to a date or time", q.Unit)
	}
	n := q.Value.truncate()
	if !n.IsInt64() {
		return nil, evalErr("the quantity is too large")
	}
	v := n.Int64()
	if op == "-" {
		v = -v
	}
	if d.kind == kindTime && (unit == "year" || unit == "month" || unit == "week" || unit == "day") {
		return nil, evalErr("cannot add %s to a time", q.Unit)
	}
	out, ok := d.addDuration(unit, v)
	if !ok {
		return nil, evalErr("the date is out of range")
	}
	return Collection{sysItem(out)}, nil
}
