package search

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/fhirhub/fhirhub/fhir"
)

// maxValueSetCodes bounds the codes an :in expansion may produce.
const maxValueSetCodes = 10000

// expandValueSets rewrites :in and :not-in clauses (at any depth) into token
// clauses over the codes of the named ValueSets stored in the server:
// :in becomes the codes, :not-in becomes :not the codes. Until terminology
// services arrive, a ValueSet's codes are its expansion.contains, or else
// the concepts listed explicitly in compose.include (includes by filter or
// by whole code system are refused, so nothing is silently missed).
func (e *Engine) expandValueSets(ctx context.Context, clauses []Clause) error {
	for i := range clauses {
		c := &clauses[i]
		if err := e.expandValueSets(ctx, c.Or); err != nil {
			return err
		}
		if err := e.expandValueSets(ctx, c.All); err != nil {
			return err
		}
		for k := range c.Chain {
			sub := []Clause{c.Chain[k].Clause}
			if err := e.expandValueSets(ctx, sub); err != nil {
				return err
			}
			c.Chain[k].Clause = sub[0]
		}
		if c.Has != nil {
			sub := []Clause{c.Has.Clause}
			if err := e.expandValueSets(ctx, sub); err != nil {
				return err
			}
			c.Has.Clause = sub[0]
		}
		if c.Modifier != "in" && c.Modifier != "not-in" {
			continue
		}
		var vals []Value
		for _, v := range c.Values {
			codes, err := e.valueSetCodes(ctx, c.Name, v.Str)
			if err != nil {
				return err
			}
			vals = append(vals, codes...)
		}
		if c.Modifier == "in" {
			c.Modifier = ""
			if len(vals) == 0 {
				vals = []Value{{HasSystem: true, System: "\x00none", Code: "\x00none"}} // matches nothing
			}
		} else {
			c.Modifier = "not"
			if len(vals) == 0 {
				vals = []Value{{HasSystem: true, System: "\x00none", Code: "\x00none"}}
			}
		}
		c.Values = vals
	}
	return nil
}

// valueSetCodes finds a ValueSet by canonical URL (or ValueSet/id) and lists its codes.
func (e *Engine) valueSetCodes(ctx context.Context, param, ref string) ([]Value, error) {
	var vs fhir.Resource
	if id, ok := strings.CutPrefix(ref, "ValueSet/"); ok {
		r, err := e.Store.Read(ctx, "ValueSet", id)
		if err != nil || r.Deleted() {
			return nil, fhir.Invalid(param, "%s: there is no ValueSet %s on this server", param, ref)
		}
		vs = r
	} else {
		urlParam, ok := e.Registry.Lookup("ValueSet", "url")
		if !ok {
			return nil, fhir.Invalid(param, "%s: ValueSets cannot be searched", param)
		}
		canonical, version, _ := strings.Cut(ref, "|")
		q := &Query{Type: "ValueSet", Clauses: []Clause{{Name: "url", Param: urlParam, Values: []Value{{Raw: canonical, Str: canonical}}}}}
		res, err := e.Backend.Search(ctx, q, Page{Count: 50})
		if err != nil {
			return nil, fhir.Internal(err, "search: find ValueSet %s", ref)
		}
		for _, r := range res.Resources {
			if version == "" || jsonField(r.JSON, "version") == version {
				vs = r
				break
			}
		}
		if vs.JSON == nil {
			return nil, fhir.Invalid(param, "%s: there is no ValueSet %s on this server", param, ref)
		}
	}
	var doc struct {
		Compose struct {
			Include []struct {
				System  string `json:"system"`
				Concept []struct {
					Code string `json:"code"`
				} `json:"concept"`
				Filter   []any    `json:"filter"`
				ValueSet []string `json:"valueSet"`
			} `json:"include"`
		} `json:"compose"`
		Expansion struct {
			Contains []expansionCode `json:"contains"`
		} `json:"expansion"`
	}
	if err := json.Unmarshal(vs.JSON, &doc); err != nil {
		return nil, fhir.Internal(err, "search: read ValueSet %s", ref)
	}
	var out []Value
	add := func(system, code string) error {
		if len(out) >= maxValueSetCodes {
			return fhir.Invalid(param, "%s: ValueSet %s has more than %d codes", param, ref, maxValueSetCodes)
		}
		out = append(out, Value{Raw: system + "|" + code, HasSystem: true, System: system, Code: code})
		return nil
	}
	if len(doc.Expansion.Contains) > 0 {
		var walk func([]expansionCode) error
		walk = func(cs []expansionCode) error {
			for _, c := range cs {
				if c.Code != "" {
					if err := add(c.System, c.Code); err != nil {
						return err
					}
				}
				if err := walk(c.Contains); err != nil {
					return err
				}
			}
			return nil
		}
		return out, walk(doc.Expansion.Contains)
	}
	for _, inc := range doc.Compose.Include {
		if len(inc.Concept) == 0 || len(inc.Filter) > 0 || len(inc.ValueSet) > 0 {
			return nil, fhir.NotSupported(400, "%s: ValueSet %s includes codes by filter, by other value sets or by whole code system; only explicit concepts (or a stored expansion) can be used until terminology services are available", param, ref)
		}
		for _, c := range inc.Concept {
			if err := add(inc.System, c.Code); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

type expansionCode struct {
	System   string          `json:"system"`
	Code     string          `json:"code"`
	Contains []expansionCode `json:"contains"`
}

func jsonField(b []byte, k string) string {
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	s, _ := m[k].(string)
	return s
}
