package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"github.com/fhirhub/fhirhub/fhir"
	"github.com/fhirhub/fhirhub/fhir/search"
)

// sortKey is one ORDER BY key: an SQL expression over c (current) and
// whether it is text.
type sortKey struct {
	expr string
	args []any
	desc bool
	text bool
	int  bool // an INTEGER column (dates, times): compared exactly
}

func sortKeys(q *search.Query) []sortKey {
	var keys []sortKey
	for _, k := range q.Sort {
		p := k.Param
		agg := "MIN"
		if k.Desc {
			agg = "MAX"
		}
		var col, table string
		text, isInt := true, false
		switch p.Type {
		case fhir.TypeString, fhir.TypeURI:
			table, col = "idx_string", "norm"
		case fhir.TypeToken:
			table, col = "idx_token", "code"
		case fhir.TypeReference:
			table, col = "idx_ref", "rid"
		case fhir.TypeDate:
			table, col, text, isInt = "idx_date", "start", false, true
			if k.Desc {
				col = "end"
			}
		default:
			table, col, text = "idx_number", "lo", false
			if k.Desc {
				col = "hi"
			}
		}
		if p.Code == "_lastUpdated" {
			keys = append(keys, sortKey{expr: "c.ts", desc: k.Desc, int: true})
			continue
		}
		if p.Code == "_id" {
			keys = append(keys, sortKey{expr: "c.id", desc: k.Desc, text: true})
			continue
		}
		keys = append(keys, sortKey{
			expr: fmt.Sprintf("(SELECT %s(s.%s) FROM %s s WHERE s.rk = c.rk AND s.param = ? AND s.comp = 0)", agg, col, table),
			args: []any{p.Code}, desc: k.Desc, text: text, int: isInt,
		})
	}
	return keys
}

// Search returns one page of the current resources matching q.
func (s *Store) Search(ctx context.Context, q *search.Query, page search.Page) (*search.Result, error) {
	if page.Count <= 0 {
		return nil, fmt.Errorf("sqlitestore: search: page size %d", page.Count)
	}
	var filter sqlb
	filter.w("c.deleted = 0")
	types := q.Types
	if q.Type != "" {
		types = []string{q.Type}
	}
	if len(types) > 0 {
		filter.w(" AND c.type IN (" + placeholders(len(types)) + ")")
		for _, t := range types {
			filter.args = append(filter.args, t)
		}
	}
	typ := q.Type
	if typ == "" && len(types) == 1 {
		typ = types[0]
	}
	if err := s.filter(&filter, q.Clauses, typ); err != nil {
		return nil, err
	}
	res := &search.Result{Total: -1}
	if page.Total {
		if err := s.total(ctx, q, typ, &filter, &res.Total); err != nil {
			return nil, fmt.Errorf("sqlitestore: count: %w", err)
		}
	}
	keys := sortKeys(q)
	backward := page.Before != nil
	var sel, order sqlb
	sel.w("SELECT v.seq, v.type, v.id, v.version, v.op, v.ts, v.json")
	for _, k := range keys {
		sel.w(", "+k.expr, k.args...)
	}
	for i, k := range keys {
		if i > 0 {
			order.w(", ")
		}
		desc := k.desc != backward
		// Resources without a value sort last whichever the direction.
		nullsLast := "1"
		if backward {
			nullsLast = "0"
		}
		order.w(fmt.Sprintf("CASE WHEN (%s) IS NULL THEN %s ELSE %s END, ", k.expr, nullsLast, flip(nullsLast)), k.args...)
		order.w(k.expr, k.args...)
		if desc {
			order.w(" DESC")
		}
	}
	dir := ""
	if backward {
		dir = " DESC"
	}
	if len(keys) > 0 {
		order.w(", ")
	}
	order.w("c.type" + dir + ", c.id" + dir)

	var where sqlb
	where.w(filter.b.String(), filter.args...)
	if cur := page.After; cur != nil {
		where.w(" AND ")
		keyset(&where, keys, cur, false)
	} else if cur := page.Before; cur != nil {
		where.w(" AND ")
		keyset(&where, keys, cur, true)
	}
	stmt := sel.b.String() + " FROM current c JOIN versions v ON v.seq = c.seq WHERE " + where.b.String() + " ORDER BY " + order.b.String() + fmt.Sprintf(" LIMIT %d", page.Count+1)
	args := append(append(append([]any{}, sel.args...), where.args...), order.args...)
	rows, err := s.rdb.QueryContext(ctx, stmt, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: search: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var c fhir.Change
		var op string
		var ts int64
		vals := make([]sql.NullString, len(keys))
		nums := make([]sql.NullFloat64, len(keys))
		ints := make([]sql.NullInt64, len(keys))
		dest := []any{&c.Seq, &c.Type, &c.ID, &c.Version, &op, &ts, &c.JSON}
		for i, k := range keys {
			switch {
			case k.text:
				dest = append(dest, &vals[i])
			case k.int:
				dest = append(dest, &ints[i])
			default:
				dest = append(dest, &nums[i])
			}
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("sqlitestore: search: %w", err)
		}
		c.Op, c.LastUpdated = fhir.Op(op), time.Unix(0, ts).UTC()
		cur := search.Cursor{Type: c.Type, ID: c.ID}
		for i, k := range keys {
			switch {
			case k.text && vals[i].Valid:
				cur.Keys = append(cur.Keys, search.SortValue{Str: vals[i].String})
			case k.int && ints[i].Valid:
				cur.Keys = append(cur.Keys, search.SortValue{Int: ints[i].Int64})
			case !k.text && !k.int && nums[i].Valid:
				cur.Keys = append(cur.Keys, search.SortValue{Num: nums[i].Float64})
			default:
				cur.Keys = append(cur.Keys, search.SortValue{Null: true})
			}
		}
		res.Resources = append(res.Resources, c.Resource)
		res.Cursors = append(res.Cursors, cur)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlitestore: search: %w", err)
	}
	if len(res.Resources) > page.Count {
		res.More = true
		res.Resources, res.Cursors = res.Resources[:page.Count], res.Cursors[:page.Count]
	}
	if backward {
		slices.Reverse(res.Resources)
		slices.Reverse(res.Cursors)
	}
	return res, nil
}

func flip(s string) string {
	if s == "1" {
		return "0"
	}
	return "1"
}

// keyset writes the condition "strictly after cur" in the result order (or
// strictly before it when back): lexicographic over the keys, then type and
// id, with missing values after every present one.
func keyset(q *sqlb, keys []sortKey, cur *search.Cursor, back bool) {
	if len(cur.Keys) != len(keys) {
		q.w("1") // a cursor of another sort order: start over
		return
	}
	expr, args := keysetFrom(keys, 0, cur, back)
	q.w(expr, args...)
}

func keysetFrom(keys []sortKey, i int, cur *search.Cursor, back bool) (string, []any) {
	if i == len(keys) {
		op := ">"
		if back {
			op = "<"
		}
		return "(c.type, c.id) " + op + " (?, ?)", []any{cur.Type, cur.ID}
	}
	k, v := keys[i], cur.Keys[i]
	rest, restArgs := keysetFrom(keys, i+1, cur, back)
	e := "(" + k.expr + ")"
	var args []any
	add := func(a ...any) { args = append(args, a...) }
	if v.Null {
		if !back {
			add(k.args...)
			add(restArgs...)
			return "(" + e + " IS NULL AND " + rest + ")", args
		}
		add(k.args...)
		add(k.args...)
		add(restArgs...)
		return "(" + e + " IS NOT NULL OR (" + e + " IS NULL AND " + rest + "))", args
	}
	var val any = v.Str
	switch {
	case k.int:
		val = v.Int
	case !k.text:
		val = v.Num
	}
	op := "<"
	if k.desc == back {
		op = ">"
	}
	add(k.args...)
	add(k.args...)
	add(val)
	add(k.args...)
	add(val)
	add(restArgs...)
	if !back {
		return "(" + e + " IS NULL OR " + e + " " + op + " ? OR (" + e + " = ? AND " + rest + "))", args
	}
	return "((" + e + " IS NOT NULL AND " + e + " " + op + " ?) OR (" + e + " = ? AND " + rest + "))", args
}

// total counts the matches of q, whose conditions on current c are filter:
// from the index rows alone when one clause decides (see countable).
func (s *Store) total(ctx context.Context, q *search.Query, typ string, filter *sqlb, n *int64) error {
	if countable(q.Clauses, typ) {
		var set sqlb
		if err := s.clause(&set, &q.Clauses[0], typ, true); err != nil {
			return err
		}
		return s.rdb.QueryRowContext(ctx, "SELECT count(DISTINCT rk) FROM ("+set.b.String()+")", set.args...).Scan(n)
	}
	return s.rdb.QueryRowContext(ctx, "SELECT count(*) FROM current c WHERE "+filter.b.String(), filter.args...).Scan(n)
}
