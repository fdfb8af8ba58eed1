package fhirpath

import (
	"strconv"
	"strings"
)

// Expression is a compiled FHIRPath expression. It is safe for concurrent use.
type Expression struct {
	src  string
	root node
}

// String returns the expression's source text.
func (x *Expression) String() string { return x.src }

// Compile parses a FHIRPath expression and resolves its functions and type
// names. Errors are *SyntaxError values giving the byte offset.
func Compile(expr string) (*Expression, error) {
	if _, err := fhirTypes(); err != nil {
		return nil, err
	}
	toks, err := lex(expr)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	n, err := p.expr(0)
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, syntaxErr(t.pos, "unexpected %s", t)
	}
	if err := checkPaths(n); err != nil {
		return nil, err
	}
	return &Expression{src: expr, root: n}, nil
}

// MustCompile is Compile for expressions known to be valid; it panics on error.
func MustCompile(expr string) *Expression {
	x, err := Compile(expr)
	if err != nil {
		panic(err)
	}
	return x
}

type parser struct {
	toks []token
	i    int
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func (p *parser) isSymbol(s string) bool {
	t := p.peek()
	return t.kind == tSymbol && t.text == s
}

func (p *parser) expect(s string) error {
	t := p.next()
	if t.kind != tSymbol || t.text != s {
		return syntaxErr(t.pos, "expected '%s', found %s", s, t)
	}
	return nil
}

// Binary operator precedences; higher binds tighter.
var precedence = map[string]int{
	"implies": 1,
	"or":      2, "xor": 2,
	"and": 3,
	"in":  4, "contains": 4,
	"=": 5, "~": 5, "!=": 5, "!~": 5,
	"<": 6, ">": 6, "<=": 6, ">=": 6,
	"|":  7,
	"is": 8, "as": 8,
	"+": 9, "-": 9, "&": 9,
	"*": 10, "/": 10, "div": 10, "mod": 10,
}

func (p *parser) binaryOp() (string, int, bool) {
	t := p.peek()
	if t.kind != tSymbol && t.kind != tIdent {
		return "", 0, false
	}
	prec, ok := precedence[t.text]
	if !ok || t.kind == tSymbol && isIdentStart(t.text[0]) || t.kind == tIdent && !isIdentStart(t.text[0]) {
		return "", 0, false
	}
	return t.text, prec, true
}

func (p *parser) expr(minPrec int) (node, error) {
	left, err := p.unary()
	if err != nil {
		return nil, err
	}
	for {
		op, prec, ok := p.binaryOp()
		if !ok || prec < minPrec {
			return left, nil
		}
		opTok := p.next()
		if op == "is" || op == "as" {
			typ, err := p.typeSpecifier()
			if err != nil {
				return nil, err
			}
			left = &typeNode{op: op, left: left, typ: typ, pos: opTok.pos}
			continue
		}
		right, err := p.expr(prec + 1)
		if err != nil {
			return nil, err
		}
		left = &binaryNode{op: op, left: left, right: right, pos: opTok.pos}
	}
}

func (p *parser) unary() (node, error) {
	if p.isSymbol("+") || p.isSymbol("-") {
		t := p.next()
		operand, err := p.unary()
		if err != nil {
			return nil, err
		}
		if lit, ok := operand.(*literalNode); ok && t.text == "-" && len(lit.value) == 1 {
			if v, ok := negate(lit.value[0].value); ok {
				return &literalNode{value: Collection{sysItem(v)}}, nil
			}
		}
		return &unaryNode{op: t.text, operand: operand, pos: t.pos}, nil
	}
	return p.postfix()
}

func (p *parser) postfix() (node, error) {
	n, err := p.term()
	if err != nil {
		return nil, err
	}
	for {
		switch {
		case p.isSymbol("."):
			p.next()
			inv, err := p.invocation(false)
			if err != nil {
				return nil, err
			}
			n = &invokeNode{left: n, right: inv}
		case p.isSymbol("["):
			p.next()
			idx, err := p.expr(0)
			if err != nil {
				return nil, err
			}
			if err := p.expect("]"); err != nil {
				return nil, err
			}
			n = &indexNode{left: n, index: idx}
		default:
			return n, nil
		}
	}
}

func (p *parser) term() (node, error) {
	t := p.peek()
	switch t.kind {
	case tSymbol:
		switch t.text {
		case "(":
			p.next()
			n, err := p.expr(0)
			if err != nil {
				return nil, err
			}
			return n, p.expect(")")
		case "{":
			p.next()
			return &literalNode{}, p.expect("}")
		}
		return nil, syntaxErr(t.pos, "unexpected %s", t)
	case tString:
		p.next()
		return &literalNode{value: Collection{newItem(t.text, typeString)}}, nil
	case tNumber:
		p.next()
		return p.number(t)
	case tDateTime:
		p.next()
		v, ok := parseDateLiteral(t.text)
		if !ok {
			return nil, syntaxErr(t.pos, "invalid date or time literal %s", t)
		}
		return &literalNode{value: Collection{sysItem(v)}}, nil
	case tConst:
		p.next()
		return &constNode{name: t.text, pos: t.pos}, nil
	case tIdent:
		switch t.text {
		case "true", "false":
			p.next()
			return &literalNode{value: boolColl(t.text == "true")}, nil
		}
	}
	return p.invocation(true)
}

// invocation parses a name, a function call or $this/$index/$total.
func (p *parser) invocation(root bool) (node, error) {
	t := p.next()
	switch t.kind {
	case tVar:
		switch t.text {
		case "this", "index", "total":
			return &varNode{name: t.text}, nil
		}
		return nil, syntaxErr(t.pos, "unknown variable $%s", t.text)
	case tIdent, tDelim:
		if t.kind == tIdent && p.isSymbol("(") {
			return p.call(t, root)
		}
		return &identNode{name: t.text, root: root, pos: t.pos}, nil
	}
	return nil, syntaxErr(t.pos, "expected a name or a function, found %s", t)
}

func (p *parser) call(name token, root bool) (node, error) {
	p.next() // (
	var args []node
	if !p.isSymbol(")") {
		for {
			a, err := p.expr(0)
			if err != nil {
				return nil, err
			}
			args = append(args, a)
			if !p.isSymbol(",") {
				break
			}
			p.next()
		}
	}
	if err := p.expect(")"); err != nil {
		return nil, err
	}
	fn, ok := functions[name.text]
	if !ok {
		return nil, syntaxErr(name.pos, "unknown function %s()", name.text)
	}
	if len(args) < fn.minArgs || len(args) > fn.maxArgs {
		return nil, syntaxErr(name.pos, "%s() takes %s, got %d", name.text, fn.arity(), len(args))
	}
	f := &funcNode{name: name.text, fn: fn, args: args, root: root, pos: name.pos}
	if fn.typeArg {
		tn, ok := typeNameOf(args[0])
		if !ok {
			return nil, syntaxErr(name.pos, "%s() needs a type name", name.text)
		}
		if f.typ = resolveTypeName(tn); f.typ == nil {
			return nil, syntaxErr(name.pos, "unknown type %s", tn)
		}
		f.args = nil
	}
	return f, nil
}

// typeNameOf reads a type specifier parsed as an expression (Quantity,
// FHIR.Patient, System.`String`).
func typeNameOf(n node) (string, bool) {
	switch x := n.(type) {
	case *identNode:
		return x.name, true
	case *invokeNode:
		l, ok1 := x.left.(*identNode)
		r, ok2 := x.right.(*identNode)
		if ok1 && ok2 && (l.name == "FHIR" || l.name == "System") {
			return l.name + "." + r.name, true
		}
	}
	return "", false
}

func (p *parser) typeSpecifier() (*Type, error) {
	t := p.next()
	if t.kind != tIdent && t.kind != tDelim {
		return nil, syntaxErr(t.pos, "expected a type name, found %s", t)
	}
	name := t.text
	if (name == "FHIR" || name == "System") && p.isSymbol(".") {
		p.next()
		u := p.next()
		if u.kind != tIdent && u.kind != tDelim {
			return nil, syntaxErr(u.pos, "expected a type name, found %s", u)
		}
		name += "." + u.text
	}
	typ := resolveTypeName(name)
	if typ == nil {
		return nil, syntaxErr(t.pos, "unknown type %s", name)
	}
	return typ, nil
}

// number parses an integer or decimal literal and an optional unit, which
// makes it a quantity.
func (p *parser) number(t token) (node, error) {
	var v any
	if strings.IndexByte(t.text, '.') >= 0 {
		d, ok := ParseDecimal(t.text)
		if !ok {
			return nil, syntaxErr(t.pos, "invalid number %s", t.text)
		}
		v = d
	} else {
		i, err := strconv.ParseInt(t.text, 10, 64)
		if err != nil {
			d, ok := ParseDecimal(t.text)
			if !ok {
				return nil, syntaxErr(t.pos, "invalid number %s", t.text)
			}
			v = d
		} else {
			v = i
		}
	}
	u := p.peek()
	unit := ""
	switch {
	case u.kind == tString:
		unit = u.text
	case u.kind == tIdent:
		if _, ok := calendarUnits[u.text]; ok {
			unit = u.text
		}
	}
	if unit == "" {
		return &literalNode{value: Collection{sysItem(v)}}, nil
	}
	p.next()
	q := Quantity{Unit: unit}
	switch x := v.(type) {
	case int64:
		q.Value = decimalFromInt(x)
	case Decimal:
		q.Value = x
	}
	return &literalNode{value: Collection{sysItem(q)}}, nil
}

// parseDateLiteral reads the text after @: a date, a dateTime (with a T) or
// a time (starting with T).
func parseDateLiteral(s string) (any, bool) {
	if strings.HasPrefix(s, "T") {
		d, ok := parseTime(s[1:])
		return d, ok
	}
	if strings.IndexByte(s, 'T') >= 0 {
		d, ok := parseDateTime(s)
		return d, ok
	}
	d, ok := parseDate(s)
	return d, ok
}

func negate(v any) (any, bool) {
	switch x := v.(type) {
	case int64:
		return -x, true
	case Decimal:
		return x.neg(), true
	case Quantity:
		return Quantity{Value: x.Value.neg(), Unit: x.Unit}, true
	}
	return nil, false
}
