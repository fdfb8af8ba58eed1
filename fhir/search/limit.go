package search

import (
	"context"
	"net/url"
	"strings"

	"github.com/fhirhub/fhirhub/fhir"
)

// Limit confines what a search may return to what its caller may see (a
// SMART token's scopes): for each resource type, the clause every returned
// resource of the type must also match (nil: every resource of the type),
// or ok false when nothing of the type may be returned. The engine applies
// it inside the query, so matches, totals, paging, _include and
// _revinclude all honour it.
type Limit interface {
	Restrict(ctx context.Context, typ string) (c *Clause, ok bool, err error)
}

// limited returns q with its Limit written into the clauses (q itself is
// not changed), or nil when the Limit lets nothing through. The Limit's
// clauses are used as they are (their ValueSets already expanded).
func (e *Engine) limited(ctx context.Context, q *Query) (*Query, error) {
	if q.Limit == nil {
		return q, nil
	}
	out := *q
	out.Clauses = make([]Clause, len(q.Clauses))
	for i := range q.Clauses {
		c, err := limitNested(ctx, q.Limit, q.Clauses[i])
		if err != nil {
			return nil, err
		}
		out.Clauses[i] = c
	}
	if q.Type != "" {
		c, ok, err := q.Limit.Restrict(ctx, q.Type)
		if err != nil || !ok {
			return nil, err
		}
		out.Clauses = appendRestriction(out.Clauses, c)
		return &out, nil
	}
	// A system search: the types allowed, each with its own condition.
	types := q.Types
	if len(types) == 0 {
		types = e.Registry.Types()
	}
	var allowed []string
	var groups []Clause
	restricted := false
	for _, t := range types {
		c, ok, err := q.Limit.Restrict(ctx, t)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		allowed = append(allowed, t)
		g := Clause{Name: "_type=" + t, Type: t}
		if c != nil {
			restricted = true
			g.All = []Clause{*c}
		}
		groups = append(groups, g)
	}
	if len(allowed) == 0 {
		return nil, nil
	}
	if len(allowed) < len(types) || len(q.Types) > 0 {
		out.Types = allowed
	}
	if restricted {
		out.Clauses = append(out.Clauses, Clause{Name: "_type", Or: groups})
	}
	return &out, nil
}

// nothing is a clause no resource matches: a group of a type that does
// not exist.
var nothing = Clause{Name: "_type", Type: "\x00none"}

// limitNested returns c with the Limit applied to the resources its chains
// and _has look at, so a condition cannot probe resources the caller may
// not see: a chain's target, or a _has's referrer, must also be within the
// Limit for its type. c is not changed.
func limitNested(ctx context.Context, l Limit, c Clause) (Clause, error) {
	within := func(typ string, inner Clause) (Clause, error) {
		inner, err := limitNested(ctx, l, inner)
		if err != nil {
			return Clause{}, err
		}
		r, ok, err := l.Restrict(ctx, typ)
		switch {
		case err != nil:
			return Clause{}, err
		case !ok:
			return nothing, nil
		case r == nil:
			return inner, nil
		}
		return Clause{Name: inner.Name, All: []Clause{inner, *r}}, nil
	}
	var err error
	if len(c.Or) > 0 {
		or := make([]Clause, len(c.Or))
		for i := range c.Or {
			if or[i], err = limitNested(ctx, l, c.Or[i]); err != nil {
				return Clause{}, err
			}
		}
		c.Or = or
	}
	if c.All != nil {
		all := make([]Clause, len(c.All))
		for i := range c.All {
			if all[i], err = limitNested(ctx, l, c.All[i]); err != nil {
				return Clause{}, err
			}
		}
		c.All = all
	}
	if len(c.Chain) > 0 {
		chain := make([]Chain, len(c.Chain))
		for i, ch := range c.Chain {
			chain[i] = Chain{Type: ch.Type}
			if chain[i].Clause, err = within(ch.Type, ch.Clause); err != nil {
				return Clause{}, err
			}
		}
		c.Chain = chain
	}
	if c.Has != nil {
		h := *c.Has
		if h.Clause, err = within(h.Type, h.Clause); err != nil {
			return Clause{}, err
		}
		c.Has = &h
	}
	return c, nil
}

// appendRestriction adds c to clauses: an untyped AND group as its parts,
// so a store can choose among them the clause that selects fewest.
func appendRestriction(clauses []Clause, c *Clause) []Clause {
	switch {
	case c == nil:
		return clauses
	case c.Type == "" && c.All != nil:
		return append(clauses, c.All...)
	}
	return append(clauses, *c)
}

// visible says whether typ/id may be returned under q's Limit: it is then
// read through the backend with the Limit's clause (nil, false when not).
func (e *Engine) visible(ctx context.Context, l Limit, typ, id string) (*fhir.Resource, bool, error) {
	c, ok, err := l.Restrict(ctx, typ)
	if err != nil || !ok {
		return nil, false, err
	}
	if c == nil {
		r, err := e.Store.Read(ctx, typ, id)
		if err != nil || r.Deleted() {
			return nil, false, nil
		}
		return &r, true, nil
	}
	idc, err := e.Registry.parseClause(typ, "_id", id)
	if err != nil {
		return nil, false, nil // not an id: nothing to include
	}
	q := &Query{Type: typ, Clauses: appendRestriction([]Clause{idc}, c)}
	res, err := e.Backend.Search(ctx, q, Page{Count: 1})
	if err != nil {
		return nil, false, fhir.Internal(err, "search: check %s/%s against the caller's scopes", typ, id)
	}
	if len(res.Resources) == 0 {
		return nil, false, nil
	}
	return &res.Resources[0], true, nil
}

// CompartmentClause is the condition "in the compartment of
// compType/compID" for resources of typ, from the CompartmentDefinition:
// the compartment's own resource (by _id) and the resources whose
// compartment parameters refer to it. ok is false when typ has no place in
// the compartment.
func (e *Engine) CompartmentClause(compType, compID, typ string) (c Clause, ok bool, err error) {
	comps, err := e.compartments()
	if err != nil {
		return Clause{}, false, err
	}
	comp, known := comps[compType]
	if !known {
		return Clause{}, false, fhir.NotFound("%s is not a compartment (compartments: Patient, Encounter, Practitioner, RelatedPerson, Device)", compType)
	}
	var or []Clause
	if typ == compType {
		idc, err := e.Registry.parseClause(typ, "_id", compID)
		if err != nil {
			return Clause{}, false, err
		}
		or = append(or, idc)
	}
	for _, code := range comp[typ] {
		p, found := e.Registry.Lookup(typ, code)
		if !found || p.Type != TypeReference {
			continue
		}
		or = append(or, Clause{Name: code, Param: p, Values: []Value{{Raw: compType + "/" + compID, RefType: compType, RefID: compID}}})
	}
	if len(or) == 0 {
		return Clause{}, false, nil
	}
	return Clause{Name: compType + "/" + compID, Or: or}, true, nil
}

// FilterClauses parses the search parameters of a SMART granular scope
// (patient/Observation.rs?category=laboratory) into clauses of typ, with
// :in and :not-in expanded. Every parameter must be known (none ignored)
// and none may be a result parameter (_count, _sort, _include, …).
func (e *Engine) FilterClauses(ctx context.Context, typ string, filter url.Values) ([]Clause, error) {
	for k := range filter {
		base, _, _ := strings.Cut(k, ":")
		if resultParams[base] {
			return nil, fhir.Invalid(k, "%s is not a search condition", k)
		}
	}
	q, err := e.Registry.Parse(typ, filter, true)
	if err != nil {
		return nil, err
	}
	if err := e.expandValueSets(ctx, q.Clauses); err != nil {
		return nil, err
	}
	return q.Clauses, nil
}

// Resolver returns the matcher's view of the stored data, for chains and
// _has in clauses matched in memory: current resources' entries computed
// by the Indexer, referrers found by the backend (at most 1,000).
func (e *Engine) Resolver(ctx context.Context) Resolver { return &storeResolver{ctx: ctx, e: e} }

type storeResolver struct {
	ctx context.Context
	e   *Engine
}

func (r *storeResolver) Entries(typ, id string) ([]Entry, bool) {
	res, err := r.e.Store.Read(r.ctx, typ, id)
	if err != nil || res.Deleted() {
		return nil, false
	}
	es, err := r.e.EntriesOf(res)
	return es, err == nil
}

func (r *storeResolver) Referrers(typ string, ref *Param, targetType, targetID string) [][]Entry {
	q := &Query{Type: typ, Clauses: []Clause{{Name: ref.Code, Param: ref, Values: []Value{{RefType: targetType, RefID: targetID}}}}}
	res, err := r.e.Backend.Search(r.ctx, q, Page{Count: 1000})
	if err != nil {
		return nil
	}
	var out [][]Entry
	for _, x := range res.Resources {
		if es, err := r.e.EntriesOf(x); err == nil {
			out = append(out, es)
		}
	}
	return out
}

// EntriesOf computes the index entries of a stored version (nil for a
// deletion), as a write of it would store them.
func (e *Engine) EntriesOf(r fhir.Resource) ([]Entry, error) {
	if r.Deleted() || len(r.JSON) == 0 {
		return nil, nil
	}
	doc, err := fhir.ParseDocument(r.JSON)
	if err != nil {
		return nil, fhir.Internal(err, "search: stored %s/%s is not valid JSON", r.Type, r.ID)
	}
	return e.Indexer.Index(r.Type, doc.Value)
}
