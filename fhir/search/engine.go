package search

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/fhirhub/fhirhub/fhir"
)

// Engine runs searches: the query on the backend, one page at a time, then
// the resources _include and _revinclude ask for.
type Engine struct {
	Registry *Registry
	Backend  Backend
	Store    fhir.Store
	Indexer  *Indexer
	// Compartments for compartment search (default: the official ones).
	Compartments Compartments
	compOnce     sync.Once
	compErr      error
	// DefaultCount and MaxCount bound the page size (defaults 20 and 1000).
	DefaultCount, MaxCount int
	// MaxIncluded bounds the included resources of one page (default 1000);
	// past it the rest are left out with a warning.
	MaxIncluded int
}

// Outcome is one page of a search.
type Outcome struct {
	Query    *Query
	Matches  []fhir.Resource
	Included []fhir.Resource
	// Total is the number of all matches, or -1 when not counted.
	Total int64
	// Next and Prev are the cursor tokens of the neighbouring pages ("" when
	// there is none).
	Next, Prev string
	Warnings   []fhir.Issue
}

// Cursor tokens name a direction: "n" pages after the position, "p" before.
func nextToken(c Cursor) string { return "n" + c.Encode() }
func prevToken(c Cursor) string { return "p" + c.Encode() }

// Search runs a search of typ ("" for a system search) with the request's
// parameters. strict refuses unknown parameters (Prefer: handling=strict).
func (e *Engine) Search(ctx context.Context, typ string, params url.Values, strict bool) (*Outcome, error) {
	q, err := e.Registry.Parse(typ, params, strict)
	if err != nil {
		return nil, err
	}
	return e.Run(ctx, q)
}

// Run runs a parsed query.
func (e *Engine) Run(ctx context.Context, q *Query) (*Outcome, error) {
	def, max := e.DefaultCount, e.MaxCount
	if def <= 0 {
		def = 20
	}
	if max <= 0 {
		max = 1000
	}
	count := q.Count
	if count == 0 && q.Summary != "count" {
		count = def
	}
	if count > max {
		count = max
	}
	if err := e.expandValueSets(ctx, q.Clauses); err != nil {
		return nil, err
	}
	out := &Outcome{Query: q, Total: -1, Warnings: q.Ignored}
	lq, err := e.limited(ctx, q)
	if err != nil {
		return nil, err
	}
	if lq == nil { // the Limit lets nothing of these types through
		if q.Total != "none" {
			out.Total = 0
		}
		return out, nil
	}
	page := Page{Count: count, Total: q.Total == "accurate" || q.Total == "estimate" || q.Summary == "count"}
	if q.Cursor != "" {
		if len(q.Cursor) < 2 || (q.Cursor[0] != 'n' && q.Cursor[0] != 'p') {
			return nil, fhir.Invalid("_cursor", "the page position %q was not made by this server", q.Cursor)
		}
		c, err := DecodeCursor(q.Cursor[1:])
		if err != nil {
			return nil, err
		}
		if q.Cursor[0] == 'n' {
			page.After = c
		} else {
			page.Before = c
		}
	}
	if count == 0 { // _count=0 or _summary=count: the total only
		page.Count = 1
	}
	res, err := e.Backend.Search(ctx, lq, page)
	if err != nil {
		var fe *fhir.Error
		if errors.As(err, &fe) {
			return nil, err
		}
		return nil, fhir.Internal(err, "search: the store failed to search")
	}
	out.Total = res.Total
	if count == 0 {
		return out, nil
	}
	out.Matches = res.Resources
	if n := len(res.Cursors); n > 0 {
		switch {
		case page.Before != nil:
			out.Next = nextToken(res.Cursors[n-1])
			if res.More {
				out.Prev = prevToken(res.Cursors[0])
			}
		default:
			if res.More {
				out.Next = nextToken(res.Cursors[n-1])
			}
			if page.After != nil {
				out.Prev = prevToken(res.Cursors[0])
			}
		}
	}
	if out.Total < 0 && page.After == nil && page.Before == nil && !res.More && q.Total != "none" {
		out.Total = int64(len(res.Resources)) // everything fits on the first page
	}
	if len(q.Include) > 0 || len(q.RevInclude) > 0 {
		if err := e.includes(ctx, q, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// includes adds the _include and _revinclude resources of the page,
// repeating the :iterate ones over what was added until nothing new comes.
func (e *Engine) includes(ctx context.Context, q *Query, out *Outcome) error {
	maxInc := e.MaxIncluded
	if maxInc <= 0 {
		maxInc = 1000
	}
	have := map[string]bool{}
	for _, r := range out.Matches {
		have[r.Type+"/"+r.ID] = true
	}
	frontier := out.Matches
	for round := 0; len(frontier) > 0 && round < 8; round++ {
		var added []fhir.Resource
		add := func(r fhir.Resource) bool {
			key := r.Type + "/" + r.ID
			if have[key] {
				return true
			}
			if len(out.Included) >= maxInc {
				return false
			}
			have[key] = true
			out.Included = append(out.Included, r)
			added = append(added, r)
			return true
		}
		full := false
		for _, inc := range q.Include {
			if round > 0 && !inc.Iterate {
				continue
			}
			refs, err := e.references(frontier, inc)
			if err != nil {
				return err
			}
			for _, ref := range refs {
				if have[ref[0]+"/"+ref[1]] {
					continue
				}
				r, ok, err := e.include(ctx, q.Limit, ref[0], ref[1])
				if err != nil {
					return err
				}
				if !ok {
					continue // a dangling reference (or one the caller may not see) includes nothing
				}
				if !add(*r) {
					full = true
					break
				}
			}
		}
		for _, inc := range q.RevInclude {
			if round > 0 && !inc.Iterate {
				continue
			}
			rs, err := e.referrers(ctx, frontier, inc, maxInc, q.Limit)
			if err != nil {
				return err
			}
			for _, r := range rs {
				if !add(r) {
					full = true
					break
				}
			}
		}
		if full {
			out.Warnings = append(out.Warnings, fhir.Issue{Severity: fhir.SeverityWarning, Code: fhir.IssueTooLong,
				Diagnostics: "more resources matched _include/_revinclude than the limit of " + itoa(maxInc) + "; the rest were left out"})
			break
		}
		frontier = added
	}
	return nil
}

func itoa(n int) string { return strconv.Itoa(n) }

// include reads the resource an _include names: nothing when it is missing,
// deleted or outside l.
func (e *Engine) include(ctx context.Context, l Limit, typ, id string) (*fhir.Resource, bool, error) {
	if l != nil {
		return e.visible(ctx, l, typ, id)
	}
	r, err := e.Store.Read(ctx, typ, id)
	if err != nil || r.Deleted() {
		return nil, false, nil
	}
	return &r, true, nil
}

// references returns the Type/id pairs the resources point to through inc.
func (e *Engine) references(rs []fhir.Resource, inc Include) ([][2]string, error) {
	var out [][2]string
	seen := map[string]bool{}
	for _, r := range rs {
		if r.Type != inc.Source {
			continue
		}
		params := []*Param{inc.Param}
		if inc.Wildcard {
			params = nil
			for _, p := range e.Registry.Params(r.Type) {
				if p.Type == TypeReference {
					params = append(params, p)
				}
			}
		}
		doc, err := fhir.ParseDocument(r.JSON)
		if err != nil {
			return nil, fhir.Internal(err, "search: stored %s/%s is not valid JSON", r.Type, r.ID)
		}
		for _, p := range params {
			es, err := e.Indexer.ParamEntries(p, doc.Value)
			if err != nil {
				continue
			}
			for _, en := range es {
				if en.RefID == "" || en.RefType == "" || (inc.Target != "" && en.RefType != inc.Target) {
					continue
				}
				key := en.RefType + "/" + en.RefID
				if !seen[key] {
					seen[key] = true
					out = append(out, [2]string{en.RefType, en.RefID})
				}
			}
		}
	}
	return out, nil
}

// referrers returns the resources of inc.Source that refer to any of rs
// through inc.Param (every reference parameter with *).
func (e *Engine) referrers(ctx context.Context, rs []fhir.Resource, inc Include, limit int, l Limit) ([]fhir.Resource, error) {
	if len(rs) == 0 {
		return nil, nil
	}
	var restrict *Clause
	if l != nil {
		c, ok, err := l.Restrict(ctx, inc.Source)
		if err != nil || !ok {
			return nil, err
		}
		restrict = c
	}
	params := []*Param{inc.Param}
	if inc.Wildcard {
		params = nil
		for _, p := range e.Registry.Params(inc.Source) {
			if p.Type == TypeReference {
				params = append(params, p)
			}
		}
	}
	var out []fhir.Resource
	seen := map[string]bool{}
	for _, p := range params {
		var vals []Value
		for _, r := range rs {
			if inc.Target != "" && r.Type != inc.Target {
				continue
			}
			if len(p.Targets) > 0 && !contains(p.Targets, r.Type) {
				continue
			}
			vals = append(vals, Value{Raw: r.Type + "/" + r.ID, RefType: r.Type, RefID: r.ID})
		}
		if len(vals) == 0 {
			continue
		}
		q := &Query{Type: inc.Source, Clauses: appendRestriction([]Clause{{Name: p.Code, Param: p, Values: vals}}, restrict)}
		res, err := e.Backend.Search(ctx, q, Page{Count: limit + 1})
		if err != nil {
			return nil, fhir.Internal(err, "search: _revinclude %s", inc.Raw)
		}
		for _, r := range res.Resources {
			if key := r.Type + "/" + r.ID; !seen[key] {
				seen[key] = true
				out = append(out, r)
			}
		}
	}
	return out, nil
}

// FindMatches resolves the criteria of a conditional interaction with the
// full search: at most limit matches (it is the fhir.Finder of the server).
func (e *Engine) FindMatches(ctx context.Context, typ, criteria string, limit int) ([]fhir.Resource, error) {
	params, err := url.ParseQuery(strings.TrimPrefix(criteria, "?"))
	if err != nil {
		return nil, fhir.Invalid("", "the criteria %q are not a valid query string: %v", criteria, err)
	}
	for k := range params {
		if k == "_format" || k == "_pretty" {
			delete(params, k)
		}
	}
	q, err := e.Registry.Parse(typ, params, true) // never ignore a criterion
	if err != nil {
		return nil, err
	}
	if len(q.Clauses) == 0 {
		return nil, fhir.Invalid("", "conditional criteria are empty; give at least one search parameter")
	}
	if err := e.expandValueSets(ctx, q.Clauses); err != nil {
		return nil, err
	}
	res, err := e.Backend.Search(ctx, q, Page{Count: limit})
	if err != nil {
		return nil, fhir.Internal(err, "search: find %s?%s", typ, criteria)
	}
	return res.Resources, nil
}
