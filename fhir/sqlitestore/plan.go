package sqlitestore

import (
	"github.com/fhirhub/fhirhub/fhir"
	"github.com/fhirhub/fhirhub/fhir/search"
)

// How a search's clauses become SQL. SQLite materialises every
// uncorrelated "c.rk IN (subquery)" whole before using it, so a search
// with a selective clause (one patient's Observations) and an unselective
// one (every Observation since 2015) would read the unselective clause's
// whole index range. So one clause, the driver, selects candidates with
// IN (SQLite walks its rows and looks each resource up by rk), and the
// others are probes: correlated EXISTS subqueries that the (rk, param)
// indexes answer for each candidate in a few steps.
//
// The driver is the clause likely to match fewest resources, judged by its
// kind alone: references and ids first, then tokens, compartments, strings,
// chains, ranges, :missing, and negations last (a negation matches nearly
// everything). Clauses that cannot be written as a probe (chains, _has, OR
// and AND groups) keep their IN subquery whatever the choice.

// driverRank orders clauses by how many resources they likely match: lower
// is fewer.
func driverRank(c *search.Clause) int {
	switch {
	case negated(c):
		return 9
	case len(c.Or) > 0, c.IsGroup():
		return 2
	case c.Has != nil, len(c.Chain) > 0:
		return 4
	case c.Modifier == "missing":
		return 8
	case c.Modifier == "contains", c.Modifier == "text", c.Modifier == "not-in", c.Modifier == "above":
		return 6
	}
	switch c.Param.Type {
	case fhir.TypeReference:
		return 0
	case fhir.TypeToken:
		if c.Param.Code == "_id" || c.Param.Code == "identifier" || c.Modifier == "identifier" {
			return 0
		}
		return 1
	case fhir.TypeString, fhir.TypeURI, fhir.TypeComposite:
		return 3
	case fhir.TypeNumber, fhir.TypeQuantity, fhir.TypeSpecial:
		return 5
	}
	return 6 // dates
}

// negated says whether c matches the resources outside a set.
func negated(c *search.Clause) bool {
	return c.Modifier == "not" || (c.Modifier == "missing" && len(c.Values) > 0 && c.Values[0].Str == "true")
}

// driver picks the clause that selects candidates; -1 when there are none.
func pickDriver(cs []search.Clause) int {
	best, rank := -1, 0
	for i := range cs {
		if r := driverRank(&cs[i]); best < 0 || r < rank {
			best, rank = i, r
		}
	}
	return best
}

// probeable says whether probe can write c.
func probeable(c *search.Clause) bool {
	return len(c.Or) == 0 && !c.IsGroup() && c.Has == nil && len(c.Chain) == 0 && c.Param != nil
}

// probe writes c as a condition on the resource whose rk is rk: the
// correlated form of clause (same semantics, see set).
func (s *Store) probe(q *sqlb, c *search.Clause, rk string) error {
	if c.Modifier == "missing" {
		// :missing=false: an entry in some table; =true: in none.
		if negated(c) {
			q.w("NOT ")
		}
		q.w("(")
		for i, t := range tablesOf(c.Param.Type) {
			if i > 0 {
				q.w(" OR ")
			}
			a := q.alias()
			q.w("EXISTS (SELECT 1 FROM "+t+" "+a+" WHERE "+a+".rk = "+rk+" AND "+a+".param = ?)", c.Param.Code)
		}
		q.w(")")
		return nil
	}
	c2 := *c
	if c.Modifier == "not" {
		q.w("NOT ")
		c2.Modifier = ""
	}
	if c2.Param.Type == fhir.TypeComposite {
		return s.compositeProbe(q, &c2, rk)
	}
	a := q.alias()
	q.w("EXISTS (SELECT 1 FROM " + tableFor(c2.Param.Type, c2.Modifier) + " " + a + " WHERE " + a + ".rk = " + rk + " AND ")
	q.w(a+".param = ? AND "+a+".comp = 0 AND (", c2.Param.Code)
	for i, v := range c2.Values {
		if i > 0 {
			q.w(" OR ")
		}
		if err := cond(q, a, c2.Param.Type, c2.Modifier, v); err != nil {
			return err
		}
	}
	q.w("))")
	return nil
}

// compositeProbe is compositeSet correlated to rk.
func (s *Store) compositeProbe(q *sqlb, c *search.Clause, rk string) error {
	a := q.alias()
	q.w("EXISTS (SELECT 1 FROM " + tableFor(c.Param.Components[0].Type, "") + " " + a + " WHERE " + a + ".rk = " + rk + " AND ")
	q.w(a+".param = ? AND "+a+".comp = 1 AND ", c.Param.Code)
	if err := compositeValues(q, a, c); err != nil {
		return err
	}
	q.w(")")
	return nil
}

// filter writes the conditions of clauses on current c: the driver as an
// IN subquery, the others as probes where they can be.
func (s *Store) filter(q *sqlb, cs []search.Clause, typ string) error {
	d := pickDriver(cs)
	for i := range cs {
		c := &cs[i]
		q.w(" AND ")
		if i != d && probeable(c) {
			if err := s.probe(q, c, "c.rk"); err != nil {
				return err
			}
			continue
		}
		q.w("c.rk IN (")
		if err := s.clause(q, c, typ, true); err != nil {
			return err
		}
		q.w(")")
	}
	return nil
}

// countable says whether a search's total can be counted from its one
// clause's rows alone, without current: every row of an index table
// belongs to a current, not deleted resource of the clause's type, and
// clause keeps to that. _has selects the referred resources through
// current, which holds deleted ones too.
func countable(cs []search.Clause, typ string) bool {
	if len(cs) != 1 || typ == "" || typ == "Resource" {
		return false
	}
	var has func(c *search.Clause) bool
	has = func(c *search.Clause) bool {
		if c.Has != nil {
			return true
		}
		for i := range c.Or {
			if has(&c.Or[i]) {
				return true
			}
		}
		for i := range c.All {
			if has(&c.All[i]) {
				return true
			}
		}
		return false
	}
	return !has(&cs[0])
}
