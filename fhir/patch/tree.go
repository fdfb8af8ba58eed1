package patch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The patched documents are held as an ordered JSON tree, so that a patch
// changes only what it names: members keep their order and numbers keep their
// literal text (1.50 stays 1.50). A value in the tree is one of nil, bool,
// string, json.Number, *array or *object.

// object is a JSON object whose members keep their order.
type object struct {
	members []member
}

type member struct {
	key   string
	value any
}

// array is a JSON array; a pointer, so that it can grow in place.
type array struct {
	items []any
}

// maxDepth bounds the nesting of the documents a patch reads.
const maxDepth = 1000

// index returns the position of a member, or -1.
func (o *object) index(key string) int {
	for i, m := range o.members {
		if m.key == key {
			return i
		}
	}
	return -1
}

// get returns a member's value.
func (o *object) get(key string) (any, bool) {
	if i := o.index(key); i >= 0 {
		return o.members[i].value, true
	}
	return nil, false
}

// set replaces a member's value where it is, or appends the member.
func (o *object) set(key string, v any) {
	if i := o.index(key); i >= 0 {
		o.members[i].value = v
		return
	}
	o.members = append(o.members, member{key, v})
}

// insertAt puts a new member at position i.
func (o *object) insertAt(i int, key string, v any) {
	o.members = append(o.members, member{})
	copy(o.members[i+1:], o.members[i:])
	o.members[i] = member{key, v}
}

// remove deletes a member; it reports whether there was one.
func (o *object) remove(key string) bool {
	i := o.index(key)
	if i < 0 {
		return false
	}
	o.members = append(o.members[:i], o.members[i+1:]...)
	return true
}

// rename changes a member's name, keeping its place.
func (o *object) rename(from, to string) {
	if i := o.index(from); i >= 0 {
		o.members[i].key = to
	}
}

func (a *array) insert(i int, v any) {
	a.items = append(a.items, nil)
	copy(a.items[i+1:], a.items[i:])
	a.items[i] = v
}

func (a *array) removeAt(i int) any {
	v := a.items[i]
	a.items = append(a.items[:i], a.items[i+1:]...)
	return v
}

// errSyntax wraps every failure to read a document.
var errSyntax = errors.New("not valid JSON")

// parse reads one JSON value into the tree. Objects may not repeat a member.
func parse(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := parseValue(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the top-level value", errSyntax)
	}
	return v, nil
}

func parseValue(dec *json.Decoder, depth int) (any, error) {
	tok, err := dec.Token()
	if err == io.EOF {
		return nil, fmt.Errorf("%w: unexpected end of input", errSyntax)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errSyntax, err)
	}
	switch t := tok.(type) {
	case json.Delim:
		if depth >= maxDepth {
			return nil, fmt.Errorf("%w: nested more than %d deep", errSyntax, maxDepth)
		}
		switch t {
		case '{':
			o := &object{}
			var seen map[string]bool
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, fmt.Errorf("%w: %v", errSyntax, err)
				}
				key, ok := kt.(string)
				if !ok {
					return nil, fmt.Errorf("%w: object key is not a string", errSyntax)
				}
				if len(o.members) >= 8 && seen == nil {
					seen = map[string]bool{}
					for _, m := range o.members {
						seen[m.key] = true
					}
				}
				if seen != nil && seen[key] || seen == nil && o.index(key) >= 0 {
					return nil, fmt.Errorf("%w: member %q appears twice", errSyntax, key)
				}
				if seen != nil {
					seen[key] = true
				}
				v, err := parseValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				o.members = append(o.members, member{key, v})
			}
			if _, err := dec.Token(); err != nil {
				return nil, fmt.Errorf("%w: %v", errSyntax, err)
			}
			return o, nil
		case '[':
			a := &array{items: []any{}}
			for dec.More() {
				v, err := parseValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				a.items = append(a.items, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, fmt.Errorf("%w: %v", errSyntax, err)
			}
			return a, nil
		}
		return nil, fmt.Errorf("%w: unexpected %v", errSyntax, t)
	case string, json.Number, bool, nil:
		return t, nil
	}
	return nil, fmt.Errorf("%w: unexpected token %v", errSyntax, tok)
}

// encode writes a tree as compact JSON.
func encode(v any) []byte {
	var b bytes.Buffer
	writeValue(&b, v)
	return b.Bytes()
}

func writeValue(b *bytes.Buffer, v any) {
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(x))
	case json.Number:
		b.WriteString(string(x))
	case string:
		writeString(b, x)
	case *array:
		b.WriteByte('[')
		for i, it := range x.items {
			if i > 0 {
				b.WriteByte(',')
			}
			writeValue(b, it)
		}
		b.WriteByte(']')
	case *object:
		b.WriteByte('{')
		for i, m := range x.members {
			if i > 0 {
				b.WriteByte(',')
			}
			writeString(b, m.key)
			b.WriteByte(':')
			writeValue(b, m.value)
		}
		b.WriteByte('}')
	default:
		panic(fmt.Sprintf("patch: %T in a JSON tree", v))
	}
}

// writeString writes a JSON string, escaping only what JSON requires (and
// U+2028, U+2029), so that XHTML narrative stays readable.
func writeString(b *bytes.Buffer, s string) {
	const hex = "0123456789abcdef"
	b.WriteByte('"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b.WriteString(s[start:i])
			switch c {
			case '"', '\\':
				b.WriteByte('\\')
				b.WriteByte(c)
			case '\n':
				b.WriteString(`\n`)
			case '\r':
				b.WriteString(`\r`)
			case '\t':
				b.WriteString(`\t`)
			default:
				b.WriteString(`\u00`)
				b.WriteByte(hex[c>>4])
				b.WriteByte(hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
			b.WriteString(s[start:i])
			switch r {
			case utf8.RuneError:
				b.WriteString(`\ufffd`)
			case '\u2028':
				b.WriteString(`\u2028`)
			default:
				b.WriteString(`\u2029`)
			}
			i += size
			start = i
			continue
		}
		i += size
	}
	b.WriteString(s[start:])
	b.WriteByte('"')
}

// size is the number of values in a tree, with an object's member names.
func size(v any) int {
	switch x := v.(type) {
	case *array:
		n := 1
		for _, it := range x.items {
			n += size(it)
		}
		return n
	case *object:
		n := 1
		for _, m := range x.members {
			n += 1 + size(m.value)
		}
		return n
	}
	return 1
}

// clone copies a tree deeply.
func clone(v any) any {
	switch x := v.(type) {
	case *array:
		c := &array{items: make([]any, len(x.items))}
		for i, it := range x.items {
			c.items[i] = clone(it)
		}
		return c
	case *object:
		c := &object{members: make([]member, len(x.members))}
		for i, m := range x.members {
			c.members[i] = member{m.key, clone(m.value)}
		}
		return c
	}
	return v
}

// equal compares two trees as JSON values: objects as unordered sets of
// members, numbers by value (1.0 equals 1 and 10e-1).
func equal(a, b any) bool {
	switch x := a.(type) {
	case nil:
		return b == nil
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case string:
		y, ok := b.(string)
		return ok && x == y
	case json.Number:
		y, ok := b.(json.Number)
		return ok && numbersEqual(string(x), string(y))
	case *array:
		y, ok := b.(*array)
		if !ok || len(x.items) != len(y.items) {
			return false
		}
		for i := range x.items {
			if !equal(x.items[i], y.items[i]) {
				return false
			}
		}
		return true
	case *object:
		y, ok := b.(*object)
		if !ok || len(x.members) != len(y.members) {
			return false
		}
		get := y.get
		if len(y.members) > 16 {
			byKey := make(map[string]any, len(y.members))
			for _, m := range y.members {
				byKey[m.key] = m.value
			}
			get = func(k string) (any, bool) { v, ok := byKey[k]; return v, ok }
		}
		for _, m := range x.members {
			v, ok := get(m.key)
			if !ok || !equal(m.value, v) {
				return false
			}
		}
		return true
	}
	return false
}

// numbersEqual compares two JSON number literals exactly, without
// converting them to floating point (or to big numbers an exponent could
// make huge).
func numbersEqual(a, b string) bool {
	if a == b {
		return true
	}
	an, ad, ae, ok1 := normalizeNumber(a)
	bn, bd, be, ok2 := normalizeNumber(b)
	return ok1 && ok2 && an == bn && ad == bd && ae == be
}

// normalizeNumber writes a number literal as sign, significant digits (no
// leading or trailing zeros) and the exponent of the last digit. Zero has no
// digits and no sign.
func normalizeNumber(s string) (neg bool, digits string, exp int64, ok bool) {
	if strings.HasPrefix(s, "-") {
		neg, s = true, s[1:]
	}
	mant, expText, hasExp := strings.Cut(strings.ToLower(s), "e")
	if hasExp {
		e, err := strconv.ParseInt(strings.TrimPrefix(expText, "+"), 10, 64)
		if err != nil || e > 1<<40 || e < -(1<<40) {
			return false, "", 0, false
		}
		exp = e
	}
	intPart, frac, _ := strings.Cut(mant, ".")
	digits = intPart + frac
	exp -= int64(len(frac))
	digits = strings.TrimLeft(digits, "0")
	trimmed := strings.TrimRight(digits, "0")
	exp += int64(len(digits) - len(trimmed))
	digits = trimmed
	if digits == "" {
		return false, "", 0, true
	}
	return neg, digits, exp, true
}
