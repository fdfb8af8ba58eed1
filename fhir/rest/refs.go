package rest

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// rewriteReferences returns raw with the string value of every "reference"
// member (at any depth: references inside extensions, contained resources
// and backbone elements alike) replaced by what f returns for it; f returns
// the reference unchanged to keep it. raw must be valid JSON (the caller has
// parsed it). The scan is one pass over the bytes: nothing but the rewritten
// values changes, so member order, numbers and escapes stay as written.
func rewriteReferences(raw []byte, f func(ref string) (string, error)) ([]byte, error) {
	if !bytes.Contains(raw, []byte(`"reference"`)) {
		return raw, nil
	}
	var out []byte // nil until the first change
	last := 0      // raw[:last] is accounted for in out
	for i := 0; i < len(raw); {
		if raw[i] != '"' {
			i++
			continue
		}
		// A string starts at i (outside strings, every quote opens one).
		end := stringEnd(raw, i)
		if end < 0 {
			return nil, fmt.Errorf("unterminated string at byte %d", i)
		}
		isKey := false
		j := skipSpace(raw, end)
		if j < len(raw) && raw[j] == ':' {
			isKey = true
		}
		if !isKey || string(raw[i:end]) != `"reference"` {
			i = end
			continue
		}
		v := skipSpace(raw, j+1)
		if v >= len(raw) || raw[v] != '"' {
			i = v // not a string value ("reference": null, say): leave it
			continue
		}
		vend := stringEnd(raw, v)
		if vend < 0 {
			return nil, fmt.Errorf("unterminated string at byte %d", v)
		}
		var ref string
		if err := json.Unmarshal(raw[v:vend], &ref); err != nil {
			return nil, fmt.Errorf("reference at byte %d: %w", v, err)
		}
		repl, err := f(ref)
		if err != nil {
			return nil, err
		}
		if repl != ref {
			if out == nil {
				out = make([]byte, 0, len(raw)+64)
			}
			out = append(out, raw[last:v]...)
			out = appendJSONString(out, repl)
			last = vend
		}
		i = vend
	}
	if out == nil {
		return raw, nil
	}
	return append(out, raw[last:]...), nil
}

// stringEnd returns the index just past the JSON string starting at raw[i]
// (a quote), or -1.
func stringEnd(raw []byte, i int) int {
	for j := i + 1; j < len(raw); j++ {
		switch raw[j] {
		case '\\':
			j++ // skip the escaped byte
		case '"':
			return j + 1
		}
	}
	return -1
}

func skipSpace(raw []byte, i int) int {
	for i < len(raw) && (raw[i] == ' ' || raw[i] == '\t' || raw[i] == '\n' || raw[i] == '\r') {
		i++
	}
	return i
}

// appendJSONString appends s as a JSON string, without HTML escaping.
func appendJSONString(dst []byte, s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return append(dst, bytes.TrimRight(buf.Bytes(), "\n")...)
}
