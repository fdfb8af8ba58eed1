package search

import (
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/fhirhub/fhirhub/fhir"
)

// Query is a parsed search: the filter (Clauses, all of which must match) and
// what to do with the results.
type Query struct {
	Type    string   // the resource type; empty for a system search
	Types   []string // _type of a system search
	Clauses []Clause

	Sort       []SortKey
	Count      int    // page size (0: the server's default)
	Total      string // "", "none", "estimate", "accurate"
	Summary    string
	Elements   []string
	Include    []Include
	RevInclude []Include
	Cursor     string

	// Ignored lists the parameters left out in lenient handling, with why.
	Ignored []fhir.Issue

	// Limit, when set, confines the results (matches and included
	// resources) to what the caller may see; see Limit.
	Limit Limit
}

// Clause is one search parameter of the filter: any of Values may match (OR).
type Clause struct {
	Name     string // the parameter as written, modifier included
	Param    *Param
	Modifier string // missing, exact, contains, text, not, above, below, in, not-in, identifier, of-type, or a resource type
	// Chain, when set, applies to the resources Param (a reference) points to:
	// the clause matches when a target of type Chain[i].Type matches
	// Chain[i].Clause for some i (several types when the chain did not name
	// one and more than one target type has the chained parameter).
	Chain []Chain
	// Has, when set, is a reverse chain (_has): the clause matches when some
	// resource of Has.Type refers to this one through Has.Ref and matches
	// Has.Clause. Param is nil then.
	Has *Has
	// Or, when set, makes the clause match when any of these clauses does
	// (compartment search: subject or performer points at the patient).
	// Param is nil then.
	Or []Clause
	// All and Type make the clause an AND group (see IsGroup), usable inside
	// Or: it matches when every clause of All does (none: always) and, when
	// Type is set, only resources of that type, whose parameters All's
	// clauses then name (a system search's per-type condition). SMART rules
	// are written with them: each rule is a compartment AND a filter, and
	// several rules are OR-ed. Param is nil then.
	All    []Clause
	Type   string
	Values []Value
}

// IsGroup says whether c is an AND group (All or Type set).
func (c *Clause) IsGroup() bool { return c.All != nil || c.Type != "" }

// Chain is the target side of a chained parameter.
type Chain struct {
	Type   string
	Clause Clause
}

// Has is the referring side of a _has parameter.
type Has struct {
	Type   string
	Ref    *Param // the reference parameter of Type that points back
	Clause Clause
}

// SortKey is one _sort key.
type SortKey struct {
	Param *Param
	Desc  bool
}

// Include is one _include or _revinclude: resources Source.Param point to
// (of type Target when set). For _revinclude, Source is the referring type.
type Include struct {
	Source   string
	Param    *Param // nil with Wildcard
	Target   string
	Wildcard bool
	Iterate  bool
	Raw      string
}

// Result parameters, handled by the server rather than matched.
var resultParams = map[string]bool{"_count": true, "_sort": true, "_include": true, "_revinclude": true, "_total": true,
	"_summary": true, "_elements": true, "_format": true, "_pretty": true, "_cursor": true, "_type": true, "_contained": true, "_containedType": true}

var modifiersByType = map[ParamType]map[string]bool{
	TypeString:    {"exact": true, "contains": true, "missing": true},
	TypeToken:     {"text": true, "not": true, "missing": true, "of-type": true, "in": true, "not-in": true},
	TypeURI:       {"above": true, "below": true, "missing": true},
	TypeReference: {"identifier": true, "missing": true},
	TypeDate:      {"missing": true},
	TypeNumber:    {"missing": true},
	TypeQuantity:  {"missing": true},
	TypeComposite: {"missing": true},
	TypeSpecial:   {},
}

// Parse parses the parameters of a search on typ (empty for system search).
// With strict, an unknown or unsupported parameter is a 400 naming it;
// otherwise it is left out and reported in Query.Ignored. Malformed values
// are always a 400 naming the parameter.
func (r *Registry) Parse(typ string, params url.Values, strict bool) (*Query, error) {
	q := &Query{Type: typ}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	ignore := func(name, format string, args ...any) error {
		msg := "the parameter " + strconv.Quote(name) + " " + sprintf(format, args...)
		if strict {
			return fhir.Invalid(name, "%s", msg)
		}
		q.Ignored = append(q.Ignored, fhir.Issue{Severity: fhir.SeverityWarning, Code: fhir.IssueNotSupported, Diagnostics: msg + "; it was ignored", Expression: []string{name}})
		return nil
	}
	if typ == "" {
		for _, v := range params["_type"] {
			for _, t := range strings.Split(v, ",") {
				if t = strings.TrimSpace(t); t == "" {
					continue
				}
				if _, ok := r.byTypeHas(t); !ok {
					return nil, fhir.Invalid("_type", "_type=%s: %q is not a resource type", v, t)
				}
				q.Types = append(q.Types, t)
			}
		}
	}
	for _, k := range keys {
		vals := params[k]
		base, _, _ := strings.Cut(k, ":")
		if resultParams[base] {
			if err := r.parseResult(q, base, k, vals); err != nil {
				return nil, err
			}
			continue
		}
		for _, v := range vals {
			types := []string{typ}
			if typ == "" {
				types = q.Types
				if len(types) == 0 {
					types = []string{"Resource"}
				}
			}
			var c Clause
			var err error
			for i, t := range types {
				var ci Clause
				ci, err = r.parseClause(t, k, v)
				if err != nil {
					break
				}
				if i == 0 {
					c = ci
				}
			}
			if err != nil {
				if fe := fhir.AsError(err); fe != nil && fe.Code() == fhir.IssueNotSupported {
					if err := ignore(k, "%s", strings.TrimPrefix(fe.Issues[0].Diagnostics, k+": ")); err != nil {
						return nil, err
					}
					continue
				}
				return nil, err
			}
			q.Clauses = append(q.Clauses, c)
		}
	}
	return q, nil
}

func (r *Registry) byTypeHas(t string) (map[string]*Param, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	m, ok := r.byType[t]
	return m, ok
}

func sprintf(format string, args ...any) string {
	if len(args) == 0 {
		return format
	}
	return fmtSprintf(format, args...)
}

// unsupported marks a parameter the server does not know or support; in
// lenient mode it is ignored rather than refused.
func unsupported(name, format string, args ...any) error {
	return fhir.NotSupported(400, name+": "+format, args...)
}

// lookup finds a parameter of typ; "Resource" (system search without _type)
// knows only the resource-level ones.
func (r *Registry) lookup(typ, code string) (*Param, bool) {
	if typ == "Resource" {
		if !resourceLevel[code] {
			return nil, false
		}
		typ = "Patient" // resource-level parameters are alike on every type
		p, ok := r.Lookup(typ, code)
		if !ok {
			return nil, false
		}
		cp := *p
		cp.Expression = strings.Replace(cp.Expression, "Patient.", "Resource.", 1)
		return &cp, true
	}
	return r.Lookup(typ, code)
}

// parseClause parses key=value for typ: name[:modifier][.chain...] or _has.
func (r *Registry) parseClause(typ, key, value string) (Clause, error) {
	if strings.HasPrefix(key, "_has:") {
		return r.parseHas(typ, key, value)
	}
	head, rest, chained := strings.Cut(key, ".")
	code, mod, _ := strings.Cut(head, ":")
	p, ok := r.lookup(typ, code)
	if !ok {
		return Clause{}, unsupported(key, "is not a search parameter of %s", typ)
	}
	c := Clause{Name: key, Param: p, Modifier: mod}
	if chained {
		if p.Type != TypeReference {
			return c, fhir.Invalid(key, "%s: only reference parameters can be chained; %s is a %s parameter", key, code, p.Type)
		}
		targets := p.Targets
		if mod != "" {
			if !contains(p.Targets, mod) {
				return c, fhir.Invalid(key, "%s: %s cannot refer to %s", key, code, mod)
			}
			targets = []string{mod}
		}
		c.Modifier = ""
		var firstErr error
		for _, target := range targets {
			if _, ok := r.byTypeHas(target); !ok {
				continue
			}
			sub, err := r.parseClause(target, rest, value)
			if err != nil {
				if fe := fhir.AsError(err); fe != nil && fe.Code() == fhir.IssueNotSupported && len(targets) > 1 {
					continue // this target type lacks the chained parameter
				}
				if firstErr == nil {
					firstErr = err
				}
				continue
			}
			c.Chain = append(c.Chain, Chain{Type: target, Clause: sub})
		}
		if len(c.Chain) == 0 {
			if firstErr != nil {
				return c, firstErr
			}
			return c, unsupported(key, "none of the types %s can refer to has the parameter in %q", strings.Join(targets, ", "), rest)
		}
		return c, nil
	}
	if mod != "" {
		if p.Type == TypeReference && startsUpper(mod) {
			if !contains(p.Targets, mod) {
				return c, fhir.Invalid(key, "%s: %s cannot refer to %s", key, code, mod)
			}
		} else if !modifiersByType[p.Type][mod] {
			return c, unsupported(key, "the modifier :%s is not supported on %s parameters", mod, p.Type)
		}
	}
	if mod == "missing" {
		if value != "true" && value != "false" {
			return c, fhir.Invalid(key, "%s=%s: :missing takes true or false", key, value)
		}
		c.Values = []Value{{Raw: value, Str: value}}
		return c, nil
	}
	for _, raw := range splitValues(value) {
		if raw == "" {
			return c, fhir.Invalid(key, "%s: an empty value", key)
		}
		ptype := p.Type
		if mod == "text" || mod == "exact" || mod == "contains" {
			ptype = TypeString
		}
		if mod == "identifier" {
			ptype = TypeToken
		}
		if mod == "of-type" {
			if len(splitEscaped(raw, '|')) != 3 {
				return c, fhir.Invalid(key, "%s=%s: :of-type takes type-system|type-code|value", key, raw)
			}
			c.Values = append(c.Values, Value{Raw: raw})
			continue
		}
		if mod == "above" || mod == "below" || mod == "in" || mod == "not-in" {
			ptype = TypeURI
		}
		v, err := parseValue(key, ptype, raw, p.Components)
		if err != nil {
			return c, err
		}
		if p.Type == TypeReference && startsUpper(mod) && v.RefType == "" && v.RefURL == "" {
			v.RefType = mod
		}
		if p.Type == TypeReference && v.RefType != "" && len(p.Targets) > 0 && !contains(p.Targets, v.RefType) && mod != "identifier" {
			return c, fhir.Invalid(key, "%s=%s: %s cannot refer to %s", key, raw, p.Code, v.RefType)
		}
		c.Values = append(c.Values, v)
	}
	return c, nil
}

// parseHas parses _has:Type:refParam:rest=value (rest may itself be _has).
func (r *Registry) parseHas(typ, key, value string) (Clause, error) {
	parts := strings.SplitN(key, ":", 4)
	if len(parts) != 4 || parts[1] == "" || parts[2] == "" || parts[3] == "" {
		return Clause{}, fhir.Invalid(key, "%s: _has is _has:Type:reference-parameter:search-parameter", key)
	}
	refType, refCode, rest := parts[1], parts[2], parts[3]
	if _, ok := r.byTypeHas(refType); !ok {
		return Clause{}, fhir.Invalid(key, "%s: %q is not a resource type", key, refType)
	}
	ref, ok := r.Lookup(refType, refCode)
	if !ok || ref.Type != TypeReference {
		return Clause{}, fhir.Invalid(key, "%s: %s is not a reference parameter of %s", key, refCode, refType)
	}
	if typ != "Resource" && len(ref.Targets) > 0 && !contains(ref.Targets, typ) {
		return Clause{}, fhir.Invalid(key, "%s: %s.%s cannot refer to %s", key, refType, refCode, typ)
	}
	sub, err := r.parseClause(refType, rest, value)
	if err != nil {
		return Clause{}, err
	}
	return Clause{Name: key, Has: &Has{Type: refType, Ref: ref, Clause: sub}}, nil
}

func (r *Registry) parseResult(q *Query, base, key string, vals []string) error {
	last := vals[len(vals)-1]
	switch base {
	case "_count":
		n, err := strconv.Atoi(last)
		if err != nil || n < 0 {
			return fhir.Invalid("_count", "_count=%s is not a non-negative whole number", last)
		}
		q.Count = n
	case "_total":
		switch last {
		case "none", "estimate", "accurate":
			q.Total = last
		default:
			return fhir.Invalid("_total", "_total must be none, estimate or accurate, not %q", last)
		}
	case "_summary":
		switch last {
		case "true", "false", "text", "data", "count":
			q.Summary = last
		default:
			return fhir.Invalid("_summary", "_summary must be true, text, data, count or false, not %q", last)
		}
	case "_elements":
		for _, v := range vals {
			for _, e := range strings.Split(v, ",") {
				if e = strings.TrimSpace(e); e != "" {
					q.Elements = append(q.Elements, e)
				}
			}
		}
	case "_cursor":
		q.Cursor = last
	case "_sort":
		for _, v := range vals {
			for _, s := range strings.Split(v, ",") {
				s = strings.TrimSpace(s)
				desc := strings.HasPrefix(s, "-")
				s = strings.TrimPrefix(s, "-")
				typ := q.Type
				if typ == "" {
					typ = "Resource"
				}
				p, ok := r.lookup(typ, s)
				if !ok {
					return fhir.Invalid("_sort", "_sort: %q is not a search parameter of %s", s, typ)
				}
				switch p.Type {
				case TypeComposite, TypeSpecial:
					return fhir.Invalid("_sort", "_sort: %s parameters cannot be sorted on", p.Type)
				}
				q.Sort = append(q.Sort, SortKey{Param: p, Desc: desc})
			}
		}
	case "_include", "_revinclude":
		iterate := strings.HasSuffix(key, ":iterate") || strings.HasSuffix(key, ":recurse")
		for _, v := range vals {
			inc, err := r.parseInclude(q, base, v, iterate)
			if err != nil {
				return err
			}
			if base == "_include" {
				q.Include = append(q.Include, inc)
			} else {
				q.RevInclude = append(q.RevInclude, inc)
			}
		}
	}
	return nil
}

// parseInclude parses Source:param[:Target] or *.
func (r *Registry) parseInclude(q *Query, base, v string, iterate bool) (Include, error) {
	inc := Include{Raw: v, Iterate: iterate}
	if v == "*" {
		inc.Wildcard = true
		inc.Source = q.Type
		return inc, nil
	}
	parts := strings.Split(v, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return inc, fhir.Invalid(base, "%s=%s: expected Type:parameter[:TargetType] or *", base, v)
	}
	inc.Source = parts[0]
	if _, ok := r.byTypeHas(inc.Source); !ok {
		return inc, fhir.Invalid(base, "%s=%s: %q is not a resource type", base, v, inc.Source)
	}
	if parts[1] == "*" {
		inc.Wildcard = true
	} else {
		p, ok := r.Lookup(inc.Source, parts[1])
		if !ok || p.Type != TypeReference {
			return inc, fhir.Invalid(base, "%s=%s: %s is not a reference parameter of %s", base, v, parts[1], inc.Source)
		}
		inc.Param = p
	}
	if len(parts) == 3 {
		inc.Target = parts[2]
		if _, ok := r.byTypeHas(inc.Target); !ok {
			return inc, fhir.Invalid(base, "%s=%s: %q is not a resource type", base, v, inc.Target)
		}
	}
	return inc, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Modifiers lists the modifiers this server supports on parameters of type t
// (for the CapabilityStatement). Reference parameters also take :[type].
func Modifiers(t ParamType) []string {
	var out []string
	for m := range modifiersByType[t] {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}
