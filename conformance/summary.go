package conformance

import (
	"strings"

	"github.com/fhirhub/fhirhub/fhir"
)

// The tag a resource carries when elements were left out of it.
const (
	subsettedSystem = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
	subsettedCode   = "SUBSETTED"
)

// Summarize returns the part of res, a resource of type typ, that the
// _summary parameter asks for (FHIR R4 search, "Summary"):
//   - "true": the elements marked isSummary in the type's definition, and the
//     mandatory ones, at every level of the resource's own elements (a kept
//     backbone element keeps only its summary and mandatory elements; an
//     element of a datatype is kept whole);
//   - "text": text, id, meta and the mandatory top-level elements;
//   - "data": everything but text;
//   - "false": everything.
//
// resourceType, id and meta are always kept, and so are the extensions of a
// kept primitive ("_birthDate"). When something was left out, meta.tag gains
// the SUBSETTED tag (once). res is not modified; the result shares the values
// it keeps with res. Another mode is a 400 *fhir.Error (_summary=count
// concerns searches, which answer it without resources).
func Summarize(typ string, res map[string]any, mode string) (map[string]any, error) {
	td, err := typeFor("_summary", typ)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	var removed bool
	switch mode {
	case "false":
		return copyMap(res), nil
	case "data":
		out, removed = keepTop(td, res, func(k string, _ *element) bool { return k != "text" })
	case "text":
		out, removed = keepTop(td, res, func(k string, e *element) bool {
			return k == "text" || (e != nil && e.Min > 0)
		})
	case "true":
		out, removed = summary(td.root, res, true)
	case "count":
		return nil, fhir.Invalid("_summary", "_summary=count applies to searches, not to a single resource")
	default:
		return nil, fhir.Invalid("_summary", "_summary must be true, text, data, count or false, not %q", mode)
	}
	if removed {
		tagSubsetted(out)
	}
	return out, nil
}

// SelectElements returns res, a resource of type typ, with only the top-level
// elements named in elements (the _elements parameter), plus resourceType,
// id, meta and the mandatory top-level elements. A name may carry the type
// ("Patient.name"); a name prefixed with another resource type is for
// resources of that type (an _include, say) and is ignored here. A choice
// element is named "value", "value[x]", or by one of its typed forms
// ("valueQuantity"), which keeps only that form. An unknown name, or a path
// below the top level, is a 400 *fhir.Error. When something was left out,
// meta.tag gains the SUBSETTED tag. res is not modified.
func SelectElements(typ string, res map[string]any, elements []string) (map[string]any, error) {
	td, err := typeFor("_elements", typ)
	if err != nil {
		return nil, err
	}
	wantKey := make(map[string]bool)  // typed forms: "valueQuantity"
	wantEl := make(map[*element]bool) // whole elements
	for _, name := range elements {
		name = strings.TrimSpace(name)
		if name == "" || name == "resourceType" {
			continue
		}
		if prefix, rest, ok := strings.Cut(name, "."); ok {
			switch {
			case prefix == typ:
				name = rest
			case isType(prefix):
				continue
			case topElement(td, prefix) == nil && td.root.keys[prefix] == nil:
				return nil, fhir.Invalid("_elements", "%s has no element %q", typ, prefix)
			}
		}
		if strings.Contains(name, ".") {
			return nil, fhir.Invalid("_elements", "_elements names top-level elements only (%q is below the top level of %s)", name, typ)
		}
		if e := topElement(td, name); e != nil {
			wantEl[e] = true
			continue
		}
		if e := td.root.keys[name]; e != nil {
			wantKey[name] = true
			continue
		}
		return nil, fhir.Invalid("_elements", "%s has no element %q", typ, name)
	}
	out, removed := keepTop(td, res, func(k string, e *element) bool {
		return wantEl[e] || wantKey[strings.TrimPrefix(k, "_")] || (e != nil && e.Min > 0)
	})
	if removed {
		tagSubsetted(out)
	}
	return out, nil
}

// typeFor returns the definition of typ, or a 400 error naming the parameter.
func typeFor(param, typ string) (*typeDef, error) {
	td, err := lookupType(typ)
	if err != nil {
		return nil, err
	}
	if td == nil {
		return nil, fhir.Invalid(param, "unknown resource type %q", typ)
	}
	return td, nil
}

func isType(name string) bool {
	td, err := lookupType(name)
	return err == nil && td != nil
}

// topElement finds a top-level element by its name ("value[x]") or, for a
// choice element, its name without [x] ("value").
func topElement(td *typeDef, name string) *element {
	for _, c := range td.root.children {
		if c.name == name || (c.choice() && c.base == name) {
			return c
		}
	}
	return nil
}

// alwaysKept are the top-level properties every subset keeps.
func alwaysKept(k string) bool { return k == "resourceType" || k == "id" || k == "meta" }

// keepTop copies the top-level properties of res that keep accepts (with the
// element each stands for, nil for an unknown one), and always resourceType,
// id and meta. It reports whether anything was left out.
func keepTop(td *typeDef, res map[string]any, keep func(key string, e *element) bool) (map[string]any, bool) {
	out := make(map[string]any, len(res))
	removed := false
	for k, v := range res {
		if alwaysKept(k) || keep(k, td.root.child(k)) {
			out[k] = v
			continue
		}
		removed = true
	}
	return out, removed
}

// summary keeps the summary and mandatory elements of obj, the value of e (or
// a resource, when top), descending into backbone elements.
func summary(e *element, obj map[string]any, top bool) (map[string]any, bool) {
	out := make(map[string]any, len(obj))
	removed := false
	for k, v := range obj {
		if top && alwaysKept(k) {
			out[k] = v
			continue
		}
		c := e.child(k)
		if c == nil || (!c.Summary && c.Min == 0) {
			removed = true
			continue
		}
		if !c.backbone() || strings.HasPrefix(k, "_") {
			out[k] = v
			continue
		}
		kept, cut := summaryValue(c, v)
		if cut {
			removed = true
		}
		if kept != nil {
			out[k] = kept
		}
	}
	return out, removed
}

// summaryValue applies summary to the value of a backbone element: an object
// or an array of them. It returns nil when nothing is left.
func summaryValue(c *element, v any) (any, bool) {
	switch v := v.(type) {
	case map[string]any:
		kept, cut := summary(c, v, false)
		if len(kept) == 0 {
			return nil, true
		}
		return kept, cut
	case []any:
		var out []any
		removed := false
		for _, item := range v {
			kept, cut := summaryValue(c, item)
			removed = removed || cut
			if kept != nil {
				out = append(out, kept)
			}
		}
		if len(out) == 0 {
			return nil, true
		}
		return out, removed
	default:
		return v, false
	}
}

// tagSubsetted adds the SUBSETTED tag to res's meta, copying meta and its tag
// list so the original resource is left as it was.
func tagSubsetted(res map[string]any) {
	meta := make(map[string]any)
	if m, ok := res["meta"].(map[string]any); ok {
		meta = copyMap(m)
	}
	tags, _ := meta["tag"].([]any)
	for _, t := range tags {
		if t, ok := t.(map[string]any); ok && t["system"] == subsettedSystem && t["code"] == subsettedCode {
			res["meta"] = meta
			return
		}
	}
	tags = append(tags[:len(tags):len(tags)], map[string]any{
		"system":  subsettedSystem,
		"code":    subsettedCode,
		"display": "subsetted",
	})
	meta["tag"] = tags
	res["meta"] = meta
}

func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
