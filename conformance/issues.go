package conformance

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v5"

	"github.com/fhirhub/fhirhub/fhir"
)

// report gathers the issues of one validation.
type report struct {
	v      *Validator
	typ    string
	root   map[string]any
	issues []located
	seen   map[issueKey]bool
}

// located is an issue with the JSON pointer it was found at, for sorting.
type located struct {
	ptr []string
	fhir.Issue
}

type issueKey struct {
	code      fhir.IssueType
	ptr, diag string
}

// add records an issue at the JSON pointer ptr ("/name/0/given"), once.
func (r *report) add(code fhir.IssueType, ptr, format string, args ...any) {
	diag := fmt.Sprintf(format, args...)
	k := issueKey{code, ptr, diag}
	if r.seen[k] {
		return
	}
	r.seen[k] = true
	segs := splitPointer(ptr)
	r.issues = append(r.issues, located{ptr: segs, Issue: fhir.Issue{
		Severity:    fhir.SeverityError,
		Code:        code,
		Diagnostics: diag,
		Expression:  []string{r.expression(segs)},
	}})
}

// finish sorts the issues by location and caps them.
func (r *report) finish() []fhir.Issue {
	slices.SortStableFunc(r.issues, func(a, b located) int {
		if c := comparePointers(a.ptr, b.ptr); c != 0 {
			return c
		}
		return strings.Compare(a.Diagnostics, b.Diagnostics)
	})
	n := min(len(r.issues), maxIssues)
	out := make([]fhir.Issue, 0, n+1)
	for _, is := range r.issues[:n] {
		out = append(out, is.Issue)
	}
	if more := len(r.issues) - n; more > 0 {
		out = append(out, fhir.Issue{
			Severity:    fhir.SeverityInformation,
			Code:        fhir.IssueInformational,
			Diagnostics: fmt.Sprintf("%d more issues were found and left out (only the first %d are reported)", more, maxIssues),
			Expression:  []string{r.typ},
		})
	}
	return out
}

// comparePointers orders JSON pointers segment by segment, array indexes as
// numbers.
func comparePointers(a, b []string) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] == b[i] {
			continue
		}
		x, errx := strconv.Atoi(a[i])
		y, erry := strconv.Atoi(b[i])
		if errx == nil && erry == nil {
			return x - y
		}
		return strings.Compare(a[i], b[i])
	}
	return len(a) - len(b)
}

// splitPointer splits a JSON pointer into its unescaped segments.
func splitPointer(ptr string) []string {
	ptr = strings.TrimPrefix(ptr, "#")
	if ptr == "" || ptr == "/" {
		return nil
	}
	segs := strings.Split(strings.TrimPrefix(ptr, "/"), "/")
	for i, s := range segs {
		if strings.Contains(s, "~") {
			segs[i] = strings.NewReplacer("~1", "/", "~0", "~").Replace(s)
		}
	}
	return segs
}

// expression turns pointer segments into a FHIRPath-like location:
// name, 0, given becomes Patient.name[0].given.
func (r *report) expression(segs []string) string {
	var b strings.Builder
	b.WriteString(r.typ)
	for _, s := range segs {
		if isIndex(s) {
			b.WriteString("[" + s + "]")
			continue
		}
		b.WriteString("." + s)
	}
	return b.String()
}

func isIndex(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// elementName is the name of the element at ptr, for messages: the last
// segment that is not an array index, or the resource type at the root.
func (r *report) elementName(ptr string) string {
	segs := splitPointer(ptr)
	for i := len(segs) - 1; i >= 0; i-- {
		if !isIndex(segs[i]) {
			return segs[i]
		}
	}
	return r.typ
}

// valueAt returns the instance value at a JSON pointer.
func (r *report) valueAt(ptr string) (any, bool) {
	var cur any = r.root
	for _, s := range splitPointer(ptr) {
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[s]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(s)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// schemaAt returns the schema node at a location inside the schema
// ("#/definitions/Patient/properties/gender"), and the name of the definition
// it is in ("Patient").
func (r *report) schemaAt(loc string) (node map[string]any, def string) {
	_, frag, _ := strings.Cut(loc, "#")
	segs := splitPointer(frag)
	if len(segs) < 2 || segs[0] != "definitions" {
		return nil, ""
	}
	def = segs[1]
	var cur any = r.v.defs
	for _, s := range segs[1:] {
		switch c := cur.(type) {
		case map[string]any:
			cur = c[s]
		case []any:
			i, err := strconv.Atoi(s)
			if err != nil || i < 0 || i >= len(c) {
				return nil, def
			}
			cur = c[i]
		default:
			return nil, def
		}
	}
	node, _ = cur.(map[string]any)
	return node, def
}

// check validates obj, a resource (the one validated, or one nested in it at
// the JSON pointer ptr) against the compiled schema s of its type and the
// element tree td of that type.
func (r *report) check(s *jsonschema.Schema, td *typeDef, obj map[string]any, ptr string) {
	if err := s.Validate(obj); err != nil {
		ve, ok := err.(*jsonschema.ValidationError)
		if !ok {
			// Only a value no JSON decoder makes (a Go struct, say) gets here.
			r.add(fhir.IssueStructure, ptr, "the resource holds a value that is not JSON: %v", err)
		} else {
			r.collect(ve, ptr)
		}
	}
	if td != nil {
		r.walk(td.root, obj, ptr)
	}
}

// collect turns a validation error tree into issues, one per leaf; prefix is
// the JSON pointer of the validated resource within the root.
func (r *report) collect(ve *jsonschema.ValidationError, prefix string) {
	if len(ve.Causes) > 0 {
		for _, c := range ve.Causes {
			r.collect(c, prefix)
		}
		return
	}
	loc := ve.AbsoluteKeywordLocation
	keyword := loc[strings.LastIndexByte(loc, '/')+1:]
	parent := loc[:strings.LastIndexByte(loc, '/')]
	ptr := prefix + ve.InstanceLocation
	name := r.elementName(ptr)
	value, _ := r.valueAt(ptr)
	switch keyword {
	case "additionalProperties":
		node, _ := r.schemaAt(parent)
		props, _ := node["properties"].(map[string]any)
		obj, _ := value.(map[string]any)
		for k := range obj {
			if _, ok := props[k]; !ok {
				r.add(fhir.IssueStructure, ptr+"/"+escapePointer(k), "unknown element %q", k)
			}
		}
	case "required":
		node, _ := r.schemaAt(parent)
		req, _ := node["required"].([]any)
		obj, _ := value.(map[string]any)
		for _, k := range req {
			k, _ := k.(string)
			if _, ok := obj[k]; !ok {
				r.add(fhir.IssueRequired, ptr+"/"+escapePointer(k), "required element %q is missing", k)
			}
		}
	case "type":
		node, def := r.schemaAt(parent)
		prim := primitiveOf(node, def)
		if _, integer := integerBounds[prim]; integer && jsonKind(value) == "a number" {
			r.add(fhir.IssueValue, ptr, "%q must be a whole number (FHIR %s); got %v", name, prim, value)
			return
		}
		r.add(fhir.IssueStructure, ptr, "%s", typeMessage(name, node, prim, value))
	case "pattern":
		node, def := r.schemaAt(parent)
		r.add(fhir.IssueValue, ptr, "%s", patternMessage(name, primitiveOf(node, def), value))
	case "enum":
		node, def := r.schemaAt(parent)
		if def == "ResourceList" {
			r.add(fhir.IssueValue, ptr, "unknown resource type %s", quoteValue(value))
			return
		}
		enum, _ := node["enum"].([]any)
		allowed := make([]string, len(enum))
		for i, e := range enum {
			allowed[i] = quoteValue(e)
		}
		r.add(fhir.IssueValue, ptr, "%q must be one of %s; got %s", name, strings.Join(allowed, ", "), quoteValue(value))
	case "const":
		node, _ := r.schemaAt(parent)
		r.add(fhir.IssueValue, ptr, "%q must be %s; got %s", name, quoteValue(node["const"]), quoteValue(value))
	case "minimum":
		node, def := r.schemaAt(parent)
		r.add(fhir.IssueValue, ptr, "%q must be at least %v (FHIR %s); got %v", name, node["minimum"], primitiveOf(node, def), value)
	case "maximum":
		node, def := r.schemaAt(parent)
		r.add(fhir.IssueValue, ptr, "%q must be at most %v (FHIR %s); got %v", name, node["maximum"], primitiveOf(node, def), value)
	default:
		r.add(fhir.IssueInvalid, ptr, "%q is not valid: %s", name, ve.Message)
	}
}

func escapePointer(s string) string {
	if !strings.ContainsAny(s, "~/") {
		return s
	}
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}

// jsonKind names the JSON type of a decoded value.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	default:
		return "a number"
	}
}

// primitiveOf names the FHIR type a schema node checks: the primitive an
// inline property spells out, or the definition the node is in.
func primitiveOf(node map[string]any, def string) string {
	if t, ok := node[fhirTypeKey].(string); ok {
		return t
	}
	return strings.TrimSuffix(def, nullSuffix)
}

// typeMessage words a JSON type mismatch; node is the schema node with the
// type, prim the FHIR type it checks.
func typeMessage(name string, node map[string]any, prim string, value any) string {
	got := jsonKind(value)
	switch {
	case node["type"] == "array":
		return fmt.Sprintf("%q must be an array, not %s", name, got)
	case prim == "ResourceList":
		return fmt.Sprintf("%q must be a resource (a JSON object with a resourceType), not %s", name, got)
	case prim == "boolean":
		return fmt.Sprintf("%q must be a JSON boolean (true or false), not %s", name, got)
	case prim == "decimal":
		return fmt.Sprintf("%q must be a JSON number (FHIR decimal), not %s", name, got)
	case integerBounds[prim] != [2]int64{}:
		return fmt.Sprintf("%q must be a whole JSON number (FHIR %s), not %s", name, prim, got)
	case prim == "Element":
		return fmt.Sprintf("%q must be an object holding the id and extensions of a primitive, not %s", name, got)
	}
	if _, ok := primitiveHints[prim]; ok {
		return fmt.Sprintf("%q must be a JSON string (FHIR %s), not %s", name, prim, got)
	}
	return fmt.Sprintf("%q must be an object (FHIR %s), not %s", name, strings.ReplaceAll(prim, "_", "."), got)
}

// primitiveHints describe the lexical forms of the FHIR primitives that are
// JSON strings.
var primitiveHints = map[string]string{
	"string":       "not empty, no whitespace other than space, tab, CR and LF",
	"markdown":     "not empty, no whitespace other than space, tab, CR and LF",
	"code":         "not empty, no leading, trailing or repeated whitespace",
	"id":           "1 to 64 of A-Z a-z 0-9 - .",
	"uri":          "no whitespace",
	"url":          "no whitespace",
	"canonical":    "no whitespace",
	"uuid":         "urn:uuid: and a lowercase UUID",
	"oid":          "urn:oid: and a dotted OID",
	"date":         "YYYY, YYYY-MM or YYYY-MM-DD",
	"dateTime":     "YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss with a time zone",
	"instant":      "YYYY-MM-DDThh:mm:ss[.sss] with a time zone",
	"time":         "hh:mm:ss[.sss]",
	"base64Binary": "base64",
	"xhtml":        "XHTML",
}

// patternMessage words a string that does not have its primitive's form.
func patternMessage(name, prim string, value any) string {
	hint := primitiveHints[prim]
	if hint == "" {
		return fmt.Sprintf("%q does not have the form of a FHIR %s; got %s", name, prim, quoteValue(value))
	}
	return fmt.Sprintf("%q must match the FHIR %s format (%s); got %s", name, prim, hint, quoteValue(value))
}

// quoteValue renders a value for a message, strings quoted and cut short.
func quoteValue(v any) string {
	if s, ok := v.(string); ok {
		if len(s) > 64 {
			s = s[:64] + "..."
		}
		return strconv.Quote(s)
	}
	return fmt.Sprint(v)
}

// walk reports the elements with a minimum cardinality above zero that obj,
// the value of element e (or a resource, for a type's root), lacks, which the
// schema cannot require of primitives and choice elements; it descends into
// backbone elements, and validates nested resources against their own type.
// ptr is obj's JSON pointer.
func (r *report) walk(e *element, obj map[string]any, ptr string) {
	for _, c := range e.children {
		if c.Min == 0 || c.present(obj) {
			continue
		}
		if !c.choice() {
			r.add(fhir.IssueRequired, ptr+"/"+c.name, "required element %q is missing", c.name)
			continue
		}
		forms := make([]string, len(c.Types))
		for i, t := range c.Types {
			forms[i] = c.base + upperFirst(t)
		}
		r.add(fhir.IssueRequired, ptr+"/"+c.name, "required element %q is missing (as one of %s)", c.name, strings.Join(forms, ", "))
	}
	for k, val := range obj {
		c := e.child(k)
		if c == nil || strings.HasPrefix(k, "_") || (!c.backbone() && !c.resource()) {
			continue
		}
		switch val := val.(type) {
		case map[string]any:
			r.walkValue(c, val, ptr+"/"+escapePointer(k))
		case []any:
			for i, item := range val {
				if item, ok := item.(map[string]any); ok {
					r.walkValue(c, item, ptr+"/"+escapePointer(k)+"/"+strconv.Itoa(i))
				}
			}
		}
	}
}

func (r *report) walkValue(c *element, obj map[string]any, ptr string) {
	if !c.resource() {
		r.walk(c, obj, ptr)
		return
	}
	rt, _ := obj["resourceType"].(string)
	if s, ok := r.v.schemas[rt]; ok {
		r.check(s, r.v.types.types[rt], obj, ptr)
	}
}
