package fhirpath

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

type tokenKind uint8

const (
	tEOF      tokenKind = iota
	tIdent              // name, or a keyword such as and, div, is
	tDelim              // `delimited identifier`
	tString             // 'string'
	tNumber             // 12, 1.5
	tDateTime           // @2015-02-04T14:34, @T14:34 (text without the @)
	tSymbol             // . [ ] ( ) { } , + - * / | & = != ~ !~ < > <= >=
	tVar                // $this, $index, $total (text without the $)
	tConst              // %name, %`name`, %'name' (text without the % and quotes)
)

type token struct {
	kind tokenKind
	text string // the name, the unescaped string, the number or the symbol
	pos  int    // byte offset in the expression
}

func (t token) String() string {
	switch t.kind {
	case tEOF:
		return "end of expression"
	case tString:
		return strconv.Quote(t.text)
	case tDateTime:
		return "@" + t.text
	case tVar:
		return "$" + t.text
	case tConst:
		return "%" + t.text
	}
	return "'" + t.text + "'"
}

// SyntaxError reports where and why an expression could not be parsed.
type SyntaxError struct {
	Offset int // byte offset in the expression
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("fhirpath: syntax error at offset %d: %s", e.Offset, e.Msg)
}

func syntaxErr(pos int, format string, args ...any) *SyntaxError {
	return &SyntaxError{Offset: pos, Msg: fmt.Sprintf(format, args...)}
}

// lex splits an expression into tokens.
func lex(src string) ([]token, error) {
	var toks []token
	i := 0
	for {
		// Skip blanks and comments.
		for i < len(src) {
			c := src[i]
			if c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' {
				i++
				continue
			}
			if strings.HasPrefix(src[i:], "//") {
				for i < len(src) && src[i] != '\n' {
					i++
				}
				continue
			}
			if strings.HasPrefix(src[i:], "/*") {
				end := strings.Index(src[i+2:], "*/")
				if end < 0 {
					return nil, syntaxErr(i, "a comment is not closed")
				}
				i += 2 + end + 2
				continue
			}
			break
		}
		if i >= len(src) {
			toks = append(toks, token{kind: tEOF, pos: i})
			return toks, nil
		}
		start := i
		c := src[i]
		switch {
		case isIdentStart(c):
			for i < len(src) && isIdentPart(src[i]) {
				i++
			}
			toks = append(toks, token{kind: tIdent, text: src[start:i], pos: start})
		case c >= '0' && c <= '9':
			for i < len(src) && isDigit(src[i]) {
				i++
			}
			if i+1 < len(src) && src[i] == '.' && isDigit(src[i+1]) {
				i++
				for i < len(src) && isDigit(src[i]) {
					i++
				}
			}
			toks = append(toks, token{kind: tNumber, text: src[start:i], pos: start})
		case c == '\'' || c == '`':
			s, n, err := unquote(src[i:], c, start)
			if err != nil {
				return nil, err
			}
			kind := tString
			if c == '`' {
				kind = tDelim
				if s == "" {
					return nil, syntaxErr(start, "an identifier cannot be empty")
				}
			}
			toks = append(toks, token{kind: kind, text: s, pos: start})
			i += n
		case c == '@':
			i++
			for i < len(src) && (isDigit(src[i]) || strings.IndexByte("-:.TZ+", src[i]) >= 0) {
				// A '+' or '-' after the time is a zone only when digits follow.
				if (src[i] == '+' || src[i] == '-') && !(i+1 < len(src) && isDigit(src[i+1])) {
					break
				}
				// A '.' must be followed by digits (else it starts an invocation).
				if src[i] == '.' && !(i+1 < len(src) && isDigit(src[i+1])) {
					break
				}
				i++
			}
			if i == start+1 {
				return nil, syntaxErr(start, "a date or time is expected after '@'")
			}
			toks = append(toks, token{kind: tDateTime, text: src[start+1 : i], pos: start})
		case c == '$':
			i++
			for i < len(src) && isIdentPart(src[i]) {
				i++
			}
			toks = append(toks, token{kind: tVar, text: src[start+1 : i], pos: start})
		case c == '%':
			i++
			if i < len(src) && (src[i] == '`' || src[i] == '\'') {
				s, n, err := unquote(src[i:], src[i], i)
				if err != nil {
					return nil, err
				}
				if s == "" {
					return nil, syntaxErr(start, "a variable name cannot be empty")
				}
				i += n
				toks = append(toks, token{kind: tConst, text: s, pos: start})
				break
			}
			for i < len(src) && (isIdentPart(src[i]) || src[i] == '-') {
				i++
			}
			if i == start+1 {
				return nil, syntaxErr(start, "a name is expected after '%%'")
			}
			toks = append(toks, token{kind: tConst, text: src[start+1 : i], pos: start})
		default:
			sym := ""
			for _, s := range []string{"!=", "!~", "<=", ">=", ".", "[", "]", "(", ")", "{", "}", ",", "+", "-", "*", "/", "|", "&", "=", "~", "<", ">"} {
				if strings.HasPrefix(src[i:], s) {
					sym = s
					break
				}
			}
			if sym == "" {
				r, _ := utf8.DecodeRuneInString(src[i:])
				return nil, syntaxErr(i, "unexpected character %q", r)
			}
			i += len(sym)
			toks = append(toks, token{kind: tSymbol, text: sym, pos: start})
		}
	}
}

func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isIdentStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isIdentPart(c byte) bool  { return isIdentStart(c) || isDigit(c) }

// unquote reads a quoted string or identifier at the start of s and returns
// its unescaped text and its length in s.
func unquote(s string, q byte, pos int) (string, int, error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch c {
		case q:
			return b.String(), i + 1, nil
		case '\\':
			i++
			if i >= len(s) {
				return "", 0, syntaxErr(pos, "the quoted text is not closed")
			}
			switch e := s[i]; e {
			case '\'', '"', '`', '\\', '/':
				b.WriteByte(e)
			case 'f':
				b.WriteByte('\f')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'u':
				if i+4 >= len(s) {
					return "", 0, syntaxErr(pos+i-1, "a \\u escape needs four hex digits")
				}
				r, err := strconv.ParseUint(s[i+1:i+5], 16, 32)
				if err != nil {
					return "", 0, syntaxErr(pos+i-1, "a \\u escape needs four hex digits")
				}
				b.WriteRune(rune(r))
				i += 4
			default:
				return "", 0, syntaxErr(pos+i-1, "unknown escape \\%c", e)
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, syntaxErr(pos, "the quoted text is not closed")
}
