package mongostore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/fhirhub/fhirhub/fhir"
	"github.com/fhirhub/fhirhub/fhir/search"
)

// valueType is the type of a sort value, and of its search.SortValue field.
type valueType int

const (
	valString valueType = iota // Str
	valInt                     // Int: dates, exact
	valNumber                  // Num
	valTime                    // Int: lastUpdated, as a BSON date in milliseconds
	valID                      // Str: the resource id, compared as _id
)

// sortKey is one _sort key: the field of current documents it orders by.
type sortKey struct {
	field string
	// flag is present exactly when field is ("" when every resource has a
	// value): sorting on it first puts the resources without a value last.
	flag string
	desc bool
	typ  valueType
}

// sortKeys are q's sort keys, read from sk as the SQLite engine computes
// them: strings and uris by the least (or, descending, greatest) normalised
// value, tokens by code, references by id, dates ascending by the earliest
// start and descending by the latest end, numbers and quantities ascending by
// the lowest and descending by the highest bound.
func sortKeys(q *search.Query) []sortKey {
	var keys []sortKey
	for _, k := range q.Sort {
		p := k.Param
		switch p.Code {
		case "_lastUpdated":
			keys = append(keys, sortKey{field: "ts", desc: k.Desc, typ: valTime})
			continue
		case "_id":
			keys = append(keys, sortKey{field: "_id", desc: k.Desc, typ: valID})
			continue
		}
		kind, typ := sortNumber, valNumber
		switch p.Type {
		case fhir.TypeString, fhir.TypeURI:
			kind, typ = sortString, valString
		case fhir.TypeToken:
			kind, typ = sortToken, valString
		case fhir.TypeReference:
			kind, typ = sortRef, valString
		case fhir.TypeDate:
			kind, typ = sortDate, valInt
		}
		which := "a"
		if k.Desc {
			which = "d"
		}
		keys = append(keys, sortKey{field: "sk." + sortField(p.Code, kind, which), flag: "sk." + sortField(p.Code, kind, "f"),
			desc: k.Desc, typ: typ})
	}
	return keys
}

// value reads the key's value of a document.
func (k *sortKey) value(d *searchDoc) search.SortValue {
	switch k.typ {
	case valTime:
		return search.SortValue{Int: int64(d.Doc.TS)}
	case valID:
		return search.SortValue{Str: d.Doc.RID}
	}
	rv, err := d.SK.LookupErr(strings.TrimPrefix(k.field, "sk."))
	if err == nil {
		switch k.typ {
		case valString:
			if s, ok := rv.StringValueOK(); ok {
				return search.SortValue{Str: s}
			}
		case valInt:
			if n, ok := rv.AsInt64OK(); ok {
				return search.SortValue{Int: n}
			}
		default:
			if x, ok := rv.AsFloat64OK(); ok {
				return search.SortValue{Num: x}
			}
		}
	}
	return search.SortValue{Null: true}
}

// operand is a cursor value as the database compares it with the field in
// typ's collection.
func (k *sortKey) operand(typ string, v search.SortValue) any {
	switch k.typ {
	case valString:
		return v.Str
	case valInt:
		return v.Int
	case valTime:
		return bson.DateTime(v.Int)
	case valID:
		return currentID(typ, v.Str)
	}
	return v.Num
}

// compare orders two positions as the database sorts (forward): by each
// key, values before no value, then by type and id.
func compare(keys []sortKey, a, b *search.Cursor) int {
	for i := range keys {
		av, bv := a.Keys[i], b.Keys[i]
		if av.Null || bv.Null {
			if av.Null != bv.Null {
				if av.Null {
					return 1
				}
				return -1
			}
			continue
		}
		var c int
		switch keys[i].typ {
		case valString, valID:
			c = strings.Compare(av.Str, bv.Str)
		case valInt, valTime:
			c = cmp.Compare(av.Int, bv.Int)
		default:
			c = cmp.Compare(av.Num, bv.Num)
		}
		if keys[i].desc {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	if c := strings.Compare(a.Type, b.Type); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}

// sortSpec is the order of the keys, then id (the collection holds one
// type), reversed when back. A field the order already holds is left out:
// sorting on it again changes nothing, and the server refuses a sort that
// names a field twice.
func sortSpec(keys []sortKey, back bool) bson.D {
	var spec bson.D
	add := func(field string, dir int32) {
		if !slices.ContainsFunc(spec, func(e bson.E) bool { return e.Key == field }) {
			spec = append(spec, bson.E{Key: field, Value: dir})
		}
	}
	dir := func(desc bool) int32 {
		if desc != back {
			return -1
		}
		return 1
	}
	for _, k := range keys {
		if k.flag != "" {
			add(k.flag, dir(true)) // present (1) before absent (null)
		}
		add(k.field, dir(k.desc))
	}
	add("_id", dir(false))
	return spec
}

var (
	matchAll  = bson.D{}
	matchNone = bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: bson.A{}}}}}
)

// keyset is the condition on typ's collection "strictly after cur" in the
// order of keys (before it when back), resources without a value coming
// after every resource with one. A cursor of another order starts over
// (nil).
func keyset(keys []sortKey, typ string, cur *search.Cursor, back bool) bson.D {
	if len(cur.Keys) != len(keys) {
		return nil
	}
	return keysetFrom(keys, 0, typ, cur, back)
}

func keysetFrom(keys []sortKey, i int, typ string, cur *search.Cursor, back bool) bson.D {
	or := func(ds ...bson.D) bson.D {
		a := make(bson.A, len(ds))
		for j, d := range ds {
			a[j] = d
		}
		return bson.D{{Key: "$or", Value: a}}
	}
	and := func(a, b bson.D) bson.D { return bson.D{{Key: "$and", Value: bson.A{a, b}}} }
	if i == len(keys) {
		// Type, then id: within one type's collection, the _id order.
		switch c := strings.Compare(typ, cur.Type); {
		case c == 0 && back:
			return bson.D{{Key: "_id", Value: bson.D{{Key: "$lt", Value: currentID(typ, cur.ID)}}}}
		case c == 0:
			return bson.D{{Key: "_id", Value: bson.D{{Key: "$gt", Value: currentID(typ, cur.ID)}}}}
		case (c > 0) != back:
			return matchAll
		default:
			return matchNone
		}
	}
	k, v := &keys[i], cur.Keys[i]
	rest := keysetFrom(keys, i+1, typ, cur, back)
	if v.Null {
		if k.flag == "" { // every resource has a value: all of them come before
			if back {
				return matchAll
			}
			return matchNone
		}
		absent := bson.D{{Key: k.flag, Value: bson.D{{Key: "$exists", Value: false}}}}
		if !back {
			return and(absent, rest)
		}
		return or(bson.D{{Key: k.flag, Value: bson.D{{Key: "$exists", Value: true}}}}, and(absent, rest))
	}
	op := "$lt"
	if k.desc == back {
		op = "$gt"
	}
	x := k.operand(typ, v)
	beyond := bson.D{{Key: k.field, Value: bson.D{{Key: op, Value: x}}}}
	tie := and(bson.D{{Key: k.field, Value: x}}, rest)
	if !back && k.flag != "" {
		return or(bson.D{{Key: k.flag, Value: bson.D{{Key: "$exists", Value: false}}}}, beyond, tie)
	}
	return or(beyond, tie)
}

// pageDoc is a result with its position.
type pageDoc struct {
	doc versionDoc
	cur search.Cursor
}

// fetchPage reads one page of f's matches among types in the order of keys,
// and whether there are more in the paging direction: at most Count+1 from
// each type's collection, merged.
func (s *Store) fetchPage(ctx context.Context, types []string, f *filter, keys []sortKey, page search.Page) ([]pageDoc, bool, error) {
	back := page.Before != nil
	cur := page.After
	if back {
		cur = page.Before
	}
	need := page.Count + 1
	var out []pageDoc
	for _, t := range types {
		docs, err := s.fetchType(ctx, t, f, keys, cur, back, need)
		if err != nil {
			return nil, false, err
		}
		out = append(out, docs...)
	}
	if len(types) > 1 {
		slices.SortFunc(out, func(a, b pageDoc) int {
			if back {
				return compare(keys, &b.cur, &a.cur)
			}
			return compare(keys, &a.cur, &b.cur)
		})
	}
	more := len(out) > page.Count
	if more {
		out = out[:page.Count]
	}
	if back {
		slices.Reverse(out)
	}
	return out, more, nil
}

// fetchType reads up to need matches of typ after (before, when back) cur in
// the order of keys (reversed when back). Candidates the condition does not
// decide exactly are confirmed in memory; when some fail, it reads on from
// the last candidate.
func (s *Store) fetchType(ctx context.Context, typ string, f *filter, keys []sortKey, cur *search.Cursor, back bool, need int) ([]pageDoc, error) {
	batch := need
	if !f.exact {
		batch = max(2*need, 50)
	}
	proj := bson.D{{Key: "k", Value: 0}, {Key: "n", Value: 0}, {Key: "d", Value: 0}}
	if f.exact {
		proj = append(proj, bson.E{Key: "ix", Value: 0})
	}
	opts := options.Find().SetSort(sortSpec(keys, back)).SetLimit(int64(batch)).SetProjection(proj)
	var out []pageDoc
	for {
		cond := f.cond
		if cur != nil {
			if ks := keyset(keys, typ, cur, back); ks != nil {
				cond = bson.D{{Key: "$and", Value: bson.A{f.cond, ks}}}
			}
		}
		docs, err := findAll[searchDoc](ctx, s.currentOf(typ), cond, opts)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", typ, err)
		}
		var last search.Cursor
		for i := range docs {
			last = cursorOf(&docs[i], keys)
			if f.confirm(&docs[i].Doc) {
				out = append(out, pageDoc{doc: docs[i].Doc, cur: last})
				if len(out) == need {
					return out, nil
				}
			}
		}
		if len(docs) < batch {
			return out, nil
		}
		cur = &last
	}
}

func cursorOf(d *searchDoc, keys []sortKey) search.Cursor {
	c := search.Cursor{Type: d.Doc.Type, ID: d.Doc.RID}
	for i := range keys {
		c.Keys = append(c.Keys, keys[i].value(d))
	}
	return c
}
