package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Document is a resource body as the client sent it: the top-level members in
// their original order (as raw JSON, so nothing is lost: primitive extensions,
// unknown elements, exact decimals), and the decoded value for validation.
type Document struct {
	Type    string
	ID      string
	Value   map[string]any // decoded with json.Number for numbers
	members []member
}

type member struct {
	key string
	raw json.RawMessage
}

// ParseDocument parses a resource body. A syntax error names its line, column
// and byte offset; a body that is not an object, or whose resourceType or id is
// not a string, is rejected.
func ParseDocument(body []byte) (*Document, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, syntaxError(body, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		off := dec.InputOffset()
		line, col := position(body, off)
		return nil, Structure("malformed JSON: unexpected content after the resource at line %d, column %d (byte offset %d)", line, col, off)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, Structure("a resource must be a JSON object, got %s", jsonKind(v))
	}
	d := &Document{Value: obj}
	rt, ok := obj["resourceType"]
	if !ok {
		return nil, Invalid("resourceType", "the resource has no resourceType")
	}
	if d.Type, ok = rt.(string); !ok {
		return nil, Invalid("resourceType", "resourceType must be a string, got %s", jsonKind(rt))
	}
	if id, ok := obj["id"]; ok {
		if d.ID, ok = id.(string); !ok {
			return nil, Invalid(d.Type+".id", "id must be a string, got %s", jsonKind(id))
		}
	}
	if m, ok := obj["meta"]; ok {
		if _, ok := m.(map[string]any); !ok {
			return nil, Invalid(d.Type+".meta", "meta must be an object, got %s", jsonKind(m))
		}
	}
	// Second pass: the members in order, as raw JSON.
	dec = json.NewDecoder(bytes.NewReader(body))
	if _, err := dec.Token(); err != nil { // '{'
		return nil, syntaxError(body, err)
	}
	seen := make(map[string]bool, len(obj))
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, syntaxError(body, err)
		}
		key := tok.(string)
		if seen[key] {
			return nil, Structure("malformed JSON: the member %q appears twice", key)
		}
		seen[key] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, syntaxError(body, err)
		}
		d.members = append(d.members, member{key: key, raw: raw})
	}
	return d, nil
}

func syntaxError(body []byte, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		// Offset counts the bytes read, including the offending one.
		off := se.Offset - 1
		if off < 0 {
			off = 0
		}
		line, col := position(body, off)
		return Structure("malformed JSON at line %d, column %d (byte offset %d): %s", line, col, off, se.Error())
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		if len(bytes.TrimSpace(body)) == 0 {
			return Structure("the request has no body; a resource was expected")
		}
		line, col := position(body, int64(len(body)))
		return Structure("malformed JSON: unexpected end of input at line %d, column %d (byte offset %d)", line, col, len(body))
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		line, col := position(body, te.Offset)
		return Structure("malformed JSON at line %d, column %d (byte offset %d): %s", line, col, te.Offset, te.Error())
	}
	return Structure("malformed JSON: %s", err.Error())
}

// position turns a byte offset into a 1-based line and column.
func position(body []byte, off int64) (line, col int) {
	if off > int64(len(body)) {
		off = int64(len(body))
	}
	prefix := body[:off]
	line = bytes.Count(prefix, []byte{'\n'}) + 1
	col = int(off) - bytes.LastIndexByte(prefix, '\n')
	return line, col
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case json.Number, float64:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// Meta returns the client's meta element (nil when absent).
// Compact drops the decoded value but for meta, which is all Encode needs:
// the raw members stay. Value is no use to anything else afterwards.
func (d *Document) Compact() {
	if meta, ok := d.Value["meta"]; ok {
		d.Value = map[string]any{"meta": meta}
	} else {
		d.Value = nil
	}
}

func (d *Document) Meta() map[string]any {
	m, _ := d.Value["meta"].(map[string]any)
	return m
}

// Encode writes the resource compactly: resourceType, id and meta first (meta
// with the server's versionId and lastUpdated and every other meta element the
// client sent), then the other members in the client's order, unchanged.
func (d *Document) Encode(id, versionID, lastUpdated string) []byte {
	var buf bytes.Buffer
	buf.Grow(len(d.members)*32 + 256)
	buf.WriteString(`{"resourceType":`)
	writeJSONString(&buf, d.Type)
	buf.WriteString(`,"id":`)
	writeJSONString(&buf, id)
	buf.WriteString(`,"meta":{"versionId":`)
	writeJSONString(&buf, versionID)
	buf.WriteString(`,"lastUpdated":`)
	writeJSONString(&buf, lastUpdated)
	if meta := d.Meta(); meta != nil {
		keys := make([]string, 0, len(meta))
		for k := range meta {
			if k != "versionId" && k != "lastUpdated" && k != "_versionId" && k != "_lastUpdated" {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			buf.WriteByte(',')
			writeJSONString(&buf, k)
			buf.WriteByte(':')
			b, _ := json.Marshal(meta[k]) // decoded from JSON: always re-encodable
			buf.Write(b)
		}
	}
	buf.WriteByte('}')
	for _, m := range d.members {
		switch m.key {
		case "resourceType", "id", "meta":
			continue
		}
		buf.WriteByte(',')
		writeJSONString(&buf, m.key)
		buf.WriteByte(':')
		if err := json.Compact(&buf, m.raw); err != nil {
			buf.Write(m.raw) // already validated by the decoder; cannot happen
		}
	}
	buf.WriteByte('}')
	return buf.Bytes()
}

func writeJSONString(buf *bytes.Buffer, s string) {
	if !strings.ContainsAny(s, "\"\\") && isPlainASCII(s) {
		buf.WriteByte('"')
		buf.WriteString(s)
		buf.WriteByte('"')
		return
	}
	b, _ := json.Marshal(s)
	buf.Write(b)
}

func isPlainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7f || s[i] == '<' || s[i] == '>' || s[i] == '&' {
			return false
		}
	}
	return true
}

// EncodeValue writes a decoded resource as compact JSON with resourceType, id
// and meta first and the other members in name order.
func EncodeValue(v map[string]any) []byte {
	var buf bytes.Buffer
	buf.WriteByte('{')
	first := true
	emit := func(k string) {
		val, ok := v[k]
		if !ok {
			return
		}
		if !first {
			buf.WriteByte(',')
		}
		first = false
		writeJSONString(&buf, k)
		buf.WriteByte(':')
		var vb bytes.Buffer
		enc := json.NewEncoder(&vb)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(val)
		buf.Write(bytes.TrimRight(vb.Bytes(), "\n"))
	}
	emit("resourceType")
	emit("id")
	emit("meta")
	keys := make([]string, 0, len(v))
	for k := range v {
		switch k {
		case "resourceType", "id", "meta":
		default:
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		emit(k)
	}
	buf.WriteByte('}')
	return buf.Bytes()
}
