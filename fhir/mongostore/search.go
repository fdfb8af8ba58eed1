package mongostore

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/fhirhub/fhirhub/fhir"
	"github.com/fhirhub/fhirhub/fhir/search"
)

var _ search.Backend = (*Store)(nil)

// Search returns one page of the current, not deleted resources that match q,
// in the order of its _sort keys, then type and id (see the package
// documentation). Its answers equal search.Match's on the same entries.
func (s *Store) Search(ctx context.Context, q *search.Query, page search.Page) (*search.Result, error) {
	res, err := s.search(ctx, q, page)
	if err != nil {
		return nil, fmt.Errorf("mongostore: search: %w", err)
	}
	return res, nil
}

func (s *Store) search(ctx context.Context, q *search.Query, page search.Page) (*search.Result, error) {
	if page.Count <= 0 {
		return nil, fmt.Errorf("page size %d", page.Count)
	}
	seq, err := s.refreshSeq(ctx)
	if err != nil {
		return nil, err
	}
	types, err := s.searchTypes(ctx, q)
	if err != nil {
		return nil, err
	}
	typ := q.Type
	if typ == "" && len(q.Types) == 1 {
		typ = q.Types[0]
	}
	f, err := s.compile(ctx, typ, q.Clauses)
	if err != nil {
		return nil, err
	}
	res := &search.Result{Total: -1}
	if f.never || len(types) == 0 {
		if page.Total {
			res.Total = 0
		}
		return res, nil
	}
	if page.Total {
		res.Total = 0
		for _, t := range types {
			n, err := s.count(ctx, t, f)
			if err != nil {
				return nil, err
			}
			res.Total += n
		}
	}
	keys := sortKeys(q)
	docs, more, err := s.fetchPage(ctx, types, f, keys, page)
	if err != nil {
		return nil, err
	}
	// A write since the refresh may have replaced a result: check them.
	if now, err := s.counter(ctx, seqCounter); err != nil {
		return nil, err
	} else if now != seq {
		if docs, err = s.recheck(ctx, f, docs); err != nil {
			return nil, err
		}
	}
	res.More = more
	for i := range docs {
		res.Resources = append(res.Resources, docs[i].doc.resource())
		res.Cursors = append(res.Cursors, docs[i].cur)
	}
	return res, nil
}

// searchTypes lists the types whose current collections a search reads.
func (s *Store) searchTypes(ctx context.Context, q *search.Query) ([]string, error) {
	if q.Type != "" {
		if !validType(q.Type) {
			return nil, nil
		}
		return []string{q.Type}, nil
	}
	if len(q.Types) == 0 {
		return s.currentTypes(ctx)
	}
	var types []string
	for _, t := range q.Types {
		if validType(t) && !slices.Contains(types, t) {
			types = append(types, t)
		}
	}
	return types, nil
}

// searchDoc is a current document as Search reads it.
type searchDoc struct {
	Doc versionDoc `bson:",inline"`
	SK  bson.Raw   `bson:"sk,omitempty"`
}

// filter is a compiled search: a condition on current documents that selects
// at least the matching resources (exactly them when exact), and the clauses
// that confirm a candidate.
type filter struct {
	cond    bson.D
	clauses []clause
	never   bool // nothing can match
	exact   bool // cond selects exactly the matches
}

// clause is one compiled search.Clause.
type clause struct {
	cond  bson.D // nil: no condition
	exact bool
	never bool
	// test decides the clause for one resource, as search.Match does.
	test func(typ, id string, es []fhir.IndexEntry) bool
}

// confirm reports whether a candidate matches the clauses its condition
// does not decide exactly.
func (f *filter) confirm(d *versionDoc) bool {
	if f.exact {
		return true
	}
	es := d.entryList().entries()
	for i := range f.clauses {
		if c := &f.clauses[i]; !c.exact && !c.test(d.Type, d.RID, es) {
			return false
		}
	}
	return true
}

// matches decides every clause in memory.
func (f *filter) matches(d *versionDoc) bool {
	es := d.entryList().entries()
	for i := range f.clauses {
		if !f.clauses[i].test(d.Type, d.RID, es) {
			return false
		}
	}
	return true
}

// compile turns the clauses of a search of typ ("": several types) into a
// filter. Chains and _has are resolved here, by searching their inner
// clauses.
func (s *Store) compile(ctx context.Context, typ string, clauses []search.Clause) (*filter, error) {
	f := &filter{cond: slices.Clone(live), exact: true}
	var and bson.A
	for i := range clauses {
		c, err := s.compileClause(ctx, &clauses[i], typ)
		if err != nil {
			return nil, err
		}
		if c.never {
			f.never = true
			return f, nil
		}
		f.clauses = append(f.clauses, c)
		f.exact = f.exact && c.exact
		if c.cond != nil {
			and = append(and, c.cond)
		}
	}
	if len(and) > 0 {
		f.cond = append(f.cond, bson.E{Key: "$and", Value: and})
	}
	return f, nil
}

func (s *Store) compileClause(ctx context.Context, c *search.Clause, typ string) (clause, error) {
	switch {
	case c.IsGroup():
		return s.compileGroup(ctx, c, typ)
	case len(c.Or) > 0:
		return s.compileOr(ctx, c, typ)
	case c.Has != nil:
		return s.compileHas(ctx, c, typ)
	case len(c.Chain) > 0:
		return s.compileChain(ctx, c)
	}
	test := func(t, id string, es []fhir.IndexEntry) bool {
		return search.Match([]search.Clause{*c}, t, id, es, nil)
	}
	p := c.Param
	switch c.Modifier {
	case "missing":
		return clause{cond: presence(p.Code, c.Values[0].Str != "true"), exact: true, test: test}, nil
	case "not":
		// None of the values' keys: exact unless a value has no key.
		out := clause{exact: true, test: test}
		var keys bson.A
		for _, v := range c.Values {
			vc := tokenCond(p.Code, 0, v)
			switch {
			case vc.never:
			case vc.cond != nil:
				out.exact = false
			default:
				keys = append(keys, vc.keys...)
			}
		}
		if len(keys) > 0 {
			out.cond = bson.D{{Key: "k", Value: bson.D{{Key: "$nin", Value: keys}}}}
		}
		return out, nil
	}
	if p.Type == fhir.TypeComposite {
		return compileComposite(c, test), nil
	}
	var vcs []valueCond
	for _, v := range c.Values {
		vcs = append(vcs, valueFilter(p.Code, 0, p.Type, c.Modifier, v))
	}
	cond, exact, never := anyOf(vcs)
	return clause{cond: cond, exact: exact, never: never, test: test}, nil
}

// compileOr joins the clauses of an OR clause.
func (s *Store) compileOr(ctx context.Context, c *search.Clause, typ string) (clause, error) {
	subs := make([]clause, 0, len(c.Or))
	out := clause{exact: true, never: true}
	var or bson.A
	everything := false
	for i := range c.Or {
		sub, err := s.compileClause(ctx, &c.Or[i], typ)
		if err != nil {
			return clause{}, err
		}
		subs = append(subs, sub)
		if sub.never {
			continue
		}
		out.never = false
		out.exact = out.exact && sub.exact
		if sub.cond == nil {
			everything = true
		}
		or = append(or, sub.cond)
	}
	out.test = func(t, id string, es []fhir.IndexEntry) bool {
		for i := range subs {
			if subs[i].test(t, id, es) {
				return true
			}
		}
		return false
	}
	switch {
	case out.never || everything:
	case len(or) == 1:
		out.cond = or[0].(bson.D)
	default:
		out.cond = bson.D{{Key: "$or", Value: or}}
	}
	return out, nil
}

// compileGroup joins the clauses of an AND group, each compiled for the
// group's type when it has one.
func (s *Store) compileGroup(ctx context.Context, c *search.Clause, typ string) (clause, error) {
	t := typ
	var and bson.A
	if c.Type != "" {
		if typ != "" && typ != c.Type {
			return clause{never: true, exact: true, test: func(string, string, []fhir.IndexEntry) bool { return false }}, nil
		}
		t = c.Type
		and = append(and, bson.D{{Key: "type", Value: c.Type}})
	}
	out := clause{exact: true}
	subs := make([]clause, 0, len(c.All))
	for i := range c.All {
		sub, err := s.compileClause(ctx, &c.All[i], t)
		if err != nil {
			return clause{}, err
		}
		if sub.never {
			return clause{never: true, exact: true, test: func(string, string, []fhir.IndexEntry) bool { return false }}, nil
		}
		subs = append(subs, sub)
		out.exact = out.exact && sub.exact
		if sub.cond != nil {
			and = append(and, sub.cond)
		}
	}
	out.test = func(rt, id string, es []fhir.IndexEntry) bool {
		if c.Type != "" && rt != c.Type {
			return false
		}
		for i := range subs {
			if !subs[i].test(rt, id, es) {
				return false
			}
		}
		return true
	}
	switch len(and) {
	case 0:
	case 1:
		out.cond = and[0].(bson.D)
	default:
		out.cond = bson.D{{Key: "$and", Value: and}}
	}
	return out, nil
}

// anyOf joins the conditions of values (OR).
func anyOf(vcs []valueCond) (cond bson.D, exact, never bool) {
	var keys, or bson.A
	exact = true
	for _, vc := range vcs {
		if vc.never {
			continue
		}
		exact = exact && vc.exact
		keys = append(keys, vc.keys...)
		if vc.cond != nil {
			or = append(or, vc.cond)
		}
	}
	if len(keys) > 0 {
		or = append(bson.A{bson.D{{Key: "k", Value: bson.D{{Key: "$in", Value: keys}}}}}, or...)
	}
	switch len(or) {
	case 0:
		return nil, true, true
	case 1:
		return or[0].(bson.D), exact, false
	}
	return bson.D{{Key: "$or", Value: or}}, exact, false
}

// compileComposite selects the resources with, for some value, an entry per
// component that matches it; that they share a group is confirmed in memory.
func compileComposite(c *search.Clause, test func(string, string, []fhir.IndexEntry) bool) clause {
	p := c.Param
	var or bson.A
	for _, v := range c.Values {
		and := bson.A{presence(p.Code, true)}
		never := len(v.Parts) != len(p.Components)
		for i := 0; i < len(v.Parts) && !never; i++ {
			vc := valueFilter(p.Code, i+1, p.Components[i].Type, "", v.Parts[i])
			never = vc.never
			if cond, _, _ := anyOf([]valueCond{vc}); cond != nil {
				and = append(and, cond)
			}
		}
		if !never {
			or = append(or, bson.D{{Key: "$and", Value: and}})
		}
	}
	if len(or) == 0 {
		return clause{never: true, exact: true, test: test}
	}
	return clause{cond: bson.D{{Key: "$or", Value: or}}, test: test}
}

// compileChain resolves the targets that match the chained clauses and
// selects the resources that refer to one of them through c.Param.
func (s *Store) compileChain(ctx context.Context, c *search.Clause) (clause, error) {
	code := c.Param.Code
	sets := make([]map[string]bool, len(c.Chain))
	seen := map[string]bool{}
	var keys bson.A
	add := func(k string) {
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	for i := range c.Chain {
		ch := &c.Chain[i]
		docs, err := s.matching(ctx, ch.Type, &ch.Clause, false)
		if err != nil {
			return clause{}, err
		}
		sets[i] = make(map[string]bool, len(docs))
		for _, d := range docs {
			sets[i][d.RID] = true
			add(compKey(code, 0, kindRef, d.RID, ch.Type))
			add(compKey(code, 0, kindRef, d.RID, ""))
		}
	}
	test := func(_, _ string, es []fhir.IndexEntry) bool {
		for _, e := range es {
			if e.Param != code || e.RefID == "" {
				continue
			}
			for i := range c.Chain {
				if (e.RefType == "" || e.RefType == c.Chain[i].Type) && sets[i][e.RefID] {
					return true
				}
			}
		}
		return false
	}
	if len(keys) == 0 {
		return clause{never: true, exact: true, test: test}, nil
	}
	return clause{cond: bson.D{{Key: "k", Value: bson.D{{Key: "$in", Value: keys}}}}, exact: true, test: test}, nil
}

// compileHas resolves the referring resources that match the inner clause
// and selects the resources of typ ("": any) they refer to.
func (s *Store) compileHas(ctx context.Context, c *search.Clause, typ string) (clause, error) {
	h := c.Has
	docs, err := s.matching(ctx, h.Type, &h.Clause, true)
	if err != nil {
		return clause{}, err
	}
	targets := map[string]bool{}
	var ids bson.A
	for _, d := range docs {
		for _, e := range d.entryList() {
			if e.Param != h.Ref.Code || e.Comp != 0 || e.RefID == "" || e.RefTyp == "" || (typ != "" && e.RefTyp != typ) {
				continue
			}
			if id := currentID(e.RefTyp, e.RefID); !targets[id] {
				targets[id] = true
				ids = append(ids, id)
			}
		}
	}
	test := func(t, id string, _ []fhir.IndexEntry) bool { return targets[currentID(t, id)] }
	if len(ids) == 0 {
		return clause{never: true, exact: true, test: test}, nil
	}
	return clause{cond: bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}, exact: true, test: test}, nil
}

// matching returns the current, not deleted resources of typ that match c
// (type, id, and the entries when withEntries).
func (s *Store) matching(ctx context.Context, typ string, c *search.Clause, withEntries bool) ([]versionDoc, error) {
	if !validType(typ) {
		return nil, nil
	}
	f, err := s.compile(ctx, typ, []search.Clause{*c})
	if err != nil || f.never {
		return nil, err
	}
	proj := bson.D{{Key: "type", Value: 1}, {Key: "rid", Value: 1}}
	if withEntries || !f.exact {
		proj = append(proj, bson.E{Key: "ix", Value: 1})
	}
	var out []versionDoc
	err = s.each(ctx, typ, f.cond, options.Find().SetProjection(proj), func(d *versionDoc) {
		if f.confirm(d) {
			out = append(out, *d)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("search %s: %w", typ, err)
	}
	return out, nil
}

// each decodes every document of typ's current collection a find returns,
// one at a time.
func (s *Store) each(ctx context.Context, typ string, cond bson.D, opts *options.FindOptionsBuilder, fn func(*versionDoc)) error {
	cur, err := s.currentOf(typ).Find(ctx, cond, opts)
	if err != nil {
		return err
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		var d versionDoc
		if err := cur.Decode(&d); err != nil {
			return err
		}
		fn(&d)
	}
	return cur.Err()
}

// count counts the matches of typ: in the database when the condition is
// exact, else by confirming every candidate.
func (s *Store) count(ctx context.Context, typ string, f *filter) (int64, error) {
	if f.exact {
		n, err := s.currentOf(typ).CountDocuments(ctx, f.cond)
		if err != nil {
			return 0, fmt.Errorf("count %s: %w", typ, err)
		}
		return n, nil
	}
	var n int64
	proj := bson.D{{Key: "type", Value: 1}, {Key: "rid", Value: 1}, {Key: "ix", Value: 1}}
	err := s.each(ctx, typ, f.cond, options.Find().SetProjection(proj), func(d *versionDoc) {
		if f.confirm(d) {
			n++
		}
	})
	if err != nil {
		return 0, fmt.Errorf("count %s: %w", typ, err)
	}
	return n, nil
}

// recheck keeps the results that are still the latest version of their
// resource, as verify does for Find: a result replaced since the search
// read it is replaced by its latest version if that matches, and dropped if
// not (it keeps its position in the order).
func (s *Store) recheck(ctx context.Context, f *filter, docs []pageDoc) ([]pageDoc, error) {
	if len(docs) == 0 {
		return docs, nil
	}
	cands := make([]versionDoc, len(docs))
	for i := range docs {
		cands[i] = docs[i].doc
	}
	newer, err := s.nextVersions(ctx, s.resolver(), cands)
	if err != nil {
		return nil, fmt.Errorf("check results: %w", err)
	}
	if len(newer) == 0 {
		return docs, nil
	}
	out := docs[:0]
	for i := range docs {
		d := docs[i]
		if _, stale := newer[d.doc.ID]; !stale {
			out = append(out, d)
			continue
		}
		latest, found, err := s.latest(ctx, d.doc.Type, d.doc.RID, true)
		if err != nil {
			return nil, err
		}
		if !found {
			continue
		}
		if err := s.project(ctx, &latest); err != nil {
			s.log.Warn("mongostore: projection not updated", "version", latest.ID, "err", err)
		}
		if latest.Op != string(fhir.OpDelete) && f.matches(&latest) {
			d.doc = latest
			out = append(out, d)
		}
	}
	return out, nil
}

// valueCond is the condition for one search value: any of keys, or cond.
type valueCond struct {
	keys  bson.A // strings
	cond  bson.D
	exact bool // selects exactly the resources with a matching entry
	never bool // no entry can match
}

var neverCond = valueCond{never: true, exact: true}

func keysCond(keys ...string) valueCond {
	a := make(bson.A, len(keys))
	for i, k := range keys {
		a[i] = k
	}
	return valueCond{keys: a, exact: true}
}

// presence selects the resources with an entry of param (without one, when
// not has): a plain entry leaves a sort value, whose flag is present (see
// fieldsOf), a component entry the present key.
func presence(param string, has bool) bson.D {
	conds := bson.A{bson.D{{Key: "k", Value: presentKey(param)}}}
	for _, kind := range sortKinds {
		conds = append(conds, bson.D{{Key: "sk." + sortField(param, kind, "f"), Value: bson.D{{Key: "$exists", Value: true}}}})
	}
	if has {
		return bson.D{{Key: "$or", Value: conds}}
	}
	return bson.D{{Key: "$nor", Value: conds}}
}

// presentCond selects the resources with an entry of param: the condition
// of last resort, confirmed in memory.
func presentCond(param string) valueCond { return valueCond{cond: presence(param, true)} }

// validKey reports whether strings can be compared with keys (valid UTF-8,
// as every stored value is); validRegex, also whether they can go into a
// regex (no NUL).
func validKey(ss ...string) bool {
	for _, s := range ss {
		if !utf8.ValidString(s) {
			return false
		}
	}
	return true
}

func validRegex(ss ...string) bool {
	for _, s := range ss {
		if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
			return false
		}
	}
	return true
}

// regexCond selects the keys that match the regex "^" + quoted prefix +
// rest, rest being a pattern.
func regexCond(prefix, rest string) valueCond {
	return valueCond{cond: bson.D{{Key: "k", Value: bson.D{{Key: "$regex", Value: "^" + regexp.QuoteMeta(prefix) + rest}}}}, exact: true}
}

// valueFilter is the condition for one value of a parameter of type t with
// modifier mod on the entries of component comp (0: plain entries). It
// mirrors search.Match's valueMatches.
func valueFilter(param string, comp int, t fhir.ParamType, mod string, v search.Value) valueCond {
	key := func(kind string, parts ...string) string { return compKey(param, comp, kind, parts...) }
	switch mod {
	case "text":
		if !validRegex(v.Norm) {
			return presentCond(param)
		}
		return regexCond(key(kindText, v.Norm), "")
	case "exact":
		if !validKey(v.Str) {
			return presentCond(param)
		}
		return keysCond(key(kindExact, v.Str))
	case "contains":
		if !validRegex(v.Norm) {
			return presentCond(param)
		}
		return regexCond(key(kindString, ""), `[\s\S]*`+regexp.QuoteMeta(v.Norm))
	case "above":
		if !validKey(v.Str) {
			return presentCond(param)
		}
		var keys []string
		for i := 1; i <= len(v.Str); i++ {
			if i == len(v.Str) || utf8.RuneStart(v.Str[i]) {
				keys = append(keys, key(kindURI, v.Str[:i]))
			}
		}
		if len(keys) == 0 {
			return neverCond
		}
		return keysCond(keys...)
	case "below":
		if !validRegex(v.Str) {
			return presentCond(param)
		}
		return regexCond(key(kindURI, v.Str), "")
	case "identifier":
		return tokenCond(param, comp, v)
	case "of-type":
		parts := search.SplitEscaped(v.Raw, '|')
		if len(parts) != 3 {
			return presentCond(param)
		}
		idType, code := search.Unescape(parts[0])+"|"+search.Unescape(parts[1]), search.Unescape(parts[2])
		if !validKey(idType, code) {
			return presentCond(param)
		}
		return keysCond(key(kindOfType, idType, code))
	}
	switch t {
	case fhir.TypeToken:
		return tokenCond(param, comp, v)
	case fhir.TypeString:
		if !validRegex(v.Norm) {
			return presentCond(param)
		}
		return regexCond(key(kindString, v.Norm), "")
	case fhir.TypeURI:
		if !validKey(v.Str) {
			return presentCond(param)
		}
		return keysCond(key(kindURI, v.Str))
	case fhir.TypeNumber, fhir.TypeQuantity:
		if comp != 0 {
			return presentCond(param)
		}
		vc := numberCond(param, v)
		vc.exact = vc.exact && t == fhir.TypeNumber // quantity: the unit is checked in memory
		return vc
	case fhir.TypeDate:
		if comp != 0 {
			return presentCond(param)
		}
		return dateRangeCond(param, v)
	case fhir.TypeReference:
		return referenceCond(param, comp, v)
	case fhir.TypeSpecial:
		return presentCond(param)
	}
	return neverCond
}

func tokenCond(param string, comp int, v search.Value) valueCond {
	switch {
	case v.HasSystem && v.Code == "":
		if !validRegex(v.System) {
			return presentCond(param)
		}
		return regexCond(compKey(param, comp, kindTokenExact, v.System, ""), "")
	case !validKey(v.System, v.Code):
		return presentCond(param)
	case v.HasSystem:
		return keysCond(compKey(param, comp, kindTokenExact, v.System, v.Code))
	case v.Code == "":
		return neverCond
	}
	return keysCond(compKey(param, comp, kindTokenCode, v.Code))
}

// referenceCond mirrors referenceMatches: a URL with or without version, or
// a local id with or without type and version.
func referenceCond(param string, comp int, v search.Value) valueCond {
	key := func(kind string, parts ...string) string { return compKey(param, comp, kind, parts...) }
	if !validRegex(v.RefURL, v.RefType, v.RefID, v.RefVersion) {
		return presentCond(param)
	}
	switch {
	case v.RefURL != "" && v.RefVersion != "":
		return keysCond(key(kindRefURL, v.RefURL, v.RefVersion))
	case v.RefURL != "":
		return regexCond(key(kindRefURL, v.RefURL, ""), "")
	case v.RefID == "":
		return neverCond
	case v.RefType != "" && v.RefVersion != "":
		return keysCond(key(kindRefVer, v.RefID, v.RefType, v.RefVersion))
	case v.RefType != "":
		return keysCond(key(kindRef, v.RefID, v.RefType))
	case v.RefVersion != "":
		// Any type: the type part is escaped, so it holds no separator.
		return regexCond(key(kindRefVer, v.RefID, ""), "[^"+tokenSep+"]*"+regexp.QuoteMeta(tokenSep+v.RefVersion)+`\z`)
	}
	return regexCond(key(kindRef, v.RefID, ""), "")
}

// numberCond bounds the n.<param> arrays as numberMatches does. One bound
// is exact; two may be met by different entries, so they are confirmed.
func numberCond(param string, v search.Value) valueCond {
	lo, hi := "n."+rangeField(param, "l"), "n."+rangeField(param, "h")
	one := func(field, op string, x float64) valueCond {
		return valueCond{cond: bson.D{{Key: field, Value: bson.D{{Key: op, Value: x}}}}, exact: true}
	}
	two := func(x, y float64) valueCond {
		return valueCond{cond: bson.D{{Key: hi, Value: bson.D{{Key: "$gte", Value: x}}}, {Key: lo, Value: bson.D{{Key: "$lte", Value: y}}}}}
	}
	switch v.Prefix {
	case search.PrefixEq:
		return valueCond{cond: bson.D{{Key: lo, Value: bson.D{{Key: "$gte", Value: v.Low}}}, {Key: hi, Value: bson.D{{Key: "$lt", Value: v.High}}}}}
	case search.PrefixGt, search.PrefixSa:
		return one(hi, "$gt", v.Num)
	case search.PrefixLt, search.PrefixEb:
		return one(lo, "$lt", v.Num)
	case search.PrefixGe:
		return one(hi, "$gte", v.Num)
	case search.PrefixLe:
		return one(lo, "$lte", v.Num)
	case search.PrefixAp:
		d := math.Abs(v.Num) * 0.1
		return two(v.Num-d, v.Num+d)
	}
	return presentCond(param) // ne
}

// dateRangeCond bounds the d.<param> arrays as dateMatches does.
func dateRangeCond(param string, v search.Value) valueCond {
	start, end := "d."+rangeField(param, "s"), "d."+rangeField(param, "e")
	one := func(field, op string, x int64) valueCond {
		return valueCond{cond: bson.D{{Key: field, Value: bson.D{{Key: op, Value: x}}}}, exact: true}
	}
	switch v.Prefix {
	case search.PrefixEq:
		return valueCond{cond: bson.D{{Key: start, Value: bson.D{{Key: "$gte", Value: v.Start}}}, {Key: end, Value: bson.D{{Key: "$lte", Value: v.End}}}}}
	case search.PrefixGt:
		return one(end, "$gt", v.End)
	case search.PrefixLt:
		return one(start, "$lt", v.Start)
	case search.PrefixGe:
		// A superset (end > value start); confirmed in memory.
		return valueCond{cond: bson.D{{Key: end, Value: bson.D{{Key: "$gt", Value: v.Start}}}}}
	case search.PrefixLe:
		// A superset (start < value end); confirmed in memory.
		return valueCond{cond: bson.D{{Key: start, Value: bson.D{{Key: "$lt", Value: v.End}}}}}
	case search.PrefixSa:
		return one(start, "$gte", v.End)
	case search.PrefixEb:
		return one(end, "$lte", v.Start)
	}
	// ne, and ap, whose window moves with the clock the matcher reads.
	return presentCond(param)
}
