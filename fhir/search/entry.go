package search

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"

	"github.com/fhirhub/fhirhub/fhir"
)

// Entry is one index value of a resource (see fhir.IndexEntry).
type Entry = fhir.IndexEntry

// Item is one value an expression selected, with its FHIR type name
// ("Coding", "dateTime", "HumanName", a resource type, …).
type Item struct {
	Type  string
	Value any
}

// entriesFor turns the items of parameter p into entries. base is the
// server's FHIR base URL (absolute references to it are local).
func entriesFor(p *Param, ptype ParamType, items []Item, base string, comp, group int) []Entry {
	var out []Entry
	add := func(e Entry) {
		e.Param, e.Type, e.Comp, e.Group = p.Code, ptype, comp, group
		out = append(out, e)
	}
	for _, it := range items {
		switch ptype {
		case TypeToken:
			tokenEntries(it, add)
		case TypeString:
			stringEntries(it, add)
		case TypeURI:
			if s, ok := it.Value.(string); ok {
				add(Entry{Str: s})
			}
		case TypeDate:
			if s, e, ok := dateRangeOf(it); ok {
				add(Entry{Start: s, End: e})
			}
		case TypeNumber:
			if n, ok := number(it.Value); ok {
				add(Entry{Low: n, High: n})
			}
		case TypeQuantity:
			quantityEntries(it, add)
		case TypeReference:
			referenceEntries(it, base, add)
		case TypeSpecial:
			if o, ok := it.Value.(map[string]any); ok {
				lat, ok1 := number(o["latitude"])
				lon, ok2 := number(o["longitude"])
				if ok1 && ok2 {
					add(Entry{Low: lat, High: lon})
				}
			}
		}
	}
	return out
}

func str(o map[string]any, k string) string { s, _ := o[k].(string); return s }

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	case float64:
		return n, true
	case string:
		f, err := strconv.ParseFloat(n, 64)
		return f, err == nil
	}
	return 0, false
}

func codings(v any) []map[string]any {
	var out []map[string]any
	if arr, ok := v.([]any); ok {
		for _, c := range arr {
			if o, ok := c.(map[string]any); ok {
				out = append(out, o)
			}
		}
	}
	return out
}

func tokenEntries(it Item, add func(Entry)) {
	switch v := it.Value.(type) {
	case string:
		add(Entry{Code: v})
	case bool:
		add(Entry{Code: strconv.FormatBool(v)})
	case map[string]any:
		switch it.Type {
		case "Coding":
			add(Entry{System: str(v, "system"), Code: str(v, "code"), Text: Normalize(str(v, "display"))})
		case "CodeableConcept":
			text := Normalize(str(v, "text"))
			covered := false // a coding's entry carries the concept's text
			for _, c := range codings(v["coding"]) {
				t := Normalize(str(c, "display"))
				if t == "" {
					t = text
				}
				covered = covered || t == text
				add(Entry{System: str(c, "system"), Code: str(c, "code"), Text: t})
			}
			if text != "" && !covered {
				add(Entry{Text: text}) // the concept's own text, for :text
			}
		case "Identifier":
			e := Entry{System: str(v, "system"), Code: str(v, "value")}
			if typ, ok := v["type"].(map[string]any); ok {
				e.Text = Normalize(str(typ, "text"))
				for _, c := range codings(typ["coding"]) {
					e2 := e
					e2.IDType = str(c, "system") + "|" + str(c, "code")
					add(e2)
				}
				if len(codings(typ["coding"])) > 0 {
					return
				}
			}
			add(e)
		case "ContactPoint":
			add(Entry{System: str(v, "system"), Code: str(v, "value")})
		default:
			if c, ok := v["code"].(string); ok {
				add(Entry{System: str(v, "system"), Code: c})
			}
		}
	}
}

func stringEntries(it Item, add func(Entry)) {
	one := func(s string) {
		if s != "" {
			add(Entry{Str: Normalize(s), Exact: s})
		}
	}
	switch v := it.Value.(type) {
	case string:
		one(v)
	case map[string]any:
		keys := []string{"text", "family", "given", "prefix", "suffix"}
		if it.Type == "Address" {
			keys = []string{"text", "line", "city", "district", "state", "postalCode", "country"}
		}
		for _, k := range keys {
			switch x := v[k].(type) {
			case string:
				one(x)
			case []any:
				for _, y := range x {
					if s, ok := y.(string); ok {
						one(s)
					}
				}
			}
		}
	}
}

// dateRangeOf returns the range [start, end) in Unix ms a date-like item covers.
func dateRangeOf(it Item) (int64, int64, bool) {
	switch v := it.Value.(type) {
	case string:
		s, e, err := fhir.DateRange(v)
		if err != nil {
			return 0, 0, false
		}
		return s.UnixMilli(), e.UnixMilli(), true
	case map[string]any:
		switch it.Type {
		case "Period":
			start, end := int64(math.MinInt64), int64(math.MaxInt64)
			if s := str(v, "start"); s != "" {
				if a, _, err := fhir.DateRange(s); err == nil {
					start = a.UnixMilli()
				}
			}
			if s := str(v, "end"); s != "" {
				if _, b, err := fhir.DateRange(s); err == nil {
					end = b.UnixMilli()
				}
			}
			if start == math.MinInt64 && end == math.MaxInt64 {
				return 0, 0, false
			}
			return start, end, true
		case "Timing":
			lo, hi, found := int64(math.MaxInt64), int64(math.MinInt64), false
			if ev, ok := v["event"].([]any); ok {
				for _, e := range ev {
					if s, ok := e.(string); ok {
						if a, b, err := fhir.DateRange(s); err == nil {
							lo, hi, found = min(lo, a.UnixMilli()), max(hi, b.UnixMilli()), true
						}
					}
				}
			}
			if rep, ok := v["repeat"].(map[string]any); ok {
				if bp, ok := rep["boundsPeriod"].(map[string]any); ok {
					if s, e, ok := dateRangeOf(Item{Type: "Period", Value: bp}); ok {
						lo, hi, found = min(lo, s), max(hi, e), true
					}
				}
			}
			return lo, hi, found
		}
	}
	return 0, 0, false
}

func quantityEntries(it Item, add func(Entry)) {
	v, ok := it.Value.(map[string]any)
	if !ok {
		return
	}
	if it.Type == "Range" {
		lo, hi := math.Inf(-1), math.Inf(1)
		var sys, code string
		if l, ok := v["low"].(map[string]any); ok {
			if n, ok := number(l["value"]); ok {
				lo = n
			}
			sys, code = str(l, "system"), str(l, "code")
		}
		if h, ok := v["high"].(map[string]any); ok {
			if n, ok := number(h["value"]); ok {
				hi = n
			}
			if code == "" {
				sys, code = str(h, "system"), str(h, "code")
			}
		}
		if !math.IsInf(lo, -1) || !math.IsInf(hi, 1) {
			add(Entry{Low: lo, High: hi, System: sys, Code: code})
		}
		return
	}
	n, ok := number(v["value"])
	if !ok {
		return
	}
	add(Entry{Low: n, High: n, System: str(v, "system"), Code: str(v, "code"), Exact: str(v, "unit")})
}

func referenceEntries(it Item, base string, add func(Entry)) {
	switch v := it.Value.(type) {
	case string: // canonical or uri
		url, version, _ := strings.Cut(v, "|")
		add(Entry{RefURL: url, RefVersion: version})
	case map[string]any:
		if ref := str(v, "reference"); ref != "" {
			if e, ok := ParseReference(ref, base); ok {
				add(e)
			}
		}
		if id, ok := v["identifier"].(map[string]any); ok {
			add(Entry{System: str(id, "system"), Code: str(id, "value")})
		}
	}
}

// ParseReference reads a literal reference into an entry: Type/id[/_history/v]
// (also when absolute on base), or an absolute URL. Contained (#id)
// references are not indexed.
func ParseReference(ref, base string) (Entry, bool) {
	if strings.HasPrefix(ref, "#") || ref == "" {
		return Entry{}, false
	}
	if base != "" && strings.HasPrefix(ref, base+"/") {
		ref = strings.TrimPrefix(ref, base+"/")
	}
	if strings.Contains(ref, ":") {
		url, version, _ := strings.Cut(ref, "|")
		return Entry{RefURL: url, RefVersion: version}, true
	}
	parts := strings.Split(ref, "/")
	switch {
	case len(parts) == 2 && startsUpper(parts[0]):
		return Entry{RefType: parts[0], RefID: parts[1]}, true
	case len(parts) == 4 && parts[2] == "_history" && startsUpper(parts[0]):
		return Entry{RefType: parts[0], RefID: parts[1], RefVersion: parts[3]}, true
	}
	return Entry{}, false
}
