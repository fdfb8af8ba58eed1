package sqlitestore

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/fhirhub/fhirhub/fhir"
	"github.com/fhirhub/fhirhub/fhir/search"
	"modernc.org/sqlite"
)

var _ search.Backend = (*Store)(nil)

func init() {
	// fhir_distance(lat1, lon1, lat2, lon2) in km, for near.
	sqlite.MustRegisterDeterministicScalarFunction("fhir_distance", 4, func(_ *sqlite.FunctionContext, a []driver.Value) (driver.Value, error) {
		var f [4]float64
		for i, v := range a {
			switch x := v.(type) {
			case float64:
				f[i] = x
			case int64:
				f[i] = float64(x)
			default:
				return nil, errors.New("fhir_distance: numbers expected")
			}
		}
		return search.DistanceKm(f[0], f[1], f[2], f[3]), nil
	})
}

// sqlb builds SQL text and its arguments in order.
type sqlb struct {
	b    strings.Builder
	args []any
	n    int // alias counter
}

func (q *sqlb) w(s string, args ...any) { q.b.WriteString(s); q.args = append(q.args, args...) }

func (q *sqlb) alias() string { q.n++; return fmt.Sprintf("x%d", q.n) }

// maxRune ends a prefix range: every string starting with p is in [p, p+maxRune).
var maxRune = string(utf8.MaxRune)

// tablesOf are the tables holding a parameter's entries.
func tablesOf(t fhir.ParamType) []string {
	switch t {
	case fhir.TypeString, fhir.TypeURI:
		return []string{"idx_string"}
	case fhir.TypeNumber, fhir.TypeQuantity, fhir.TypeSpecial:
		return []string{"idx_number"}
	case fhir.TypeDate:
		return []string{"idx_date"}
	case fhir.TypeReference:
		return []string{"idx_ref", "idx_token"}
	case fhir.TypeComposite:
		return indexTables
	}
	return []string{"idx_token"}
}

// typeCond restricts alias a to resource type typ ("" or "Resource": any).
func typeCond(q *sqlb, a, typ string) {
	if typ != "" && typ != "Resource" {
		q.w(a+".type = ? AND ", typ)
	}
}

// set writes a subquery selecting the rk of the resources of typ that
// match clause c, ignoring :missing and :not (see clause).
func (s *Store) set(q *sqlb, c *search.Clause, typ string) error {
	switch {
	case c.IsGroup():
		return s.group(q, c, typ)
	case len(c.Or) > 0:
		for i := range c.Or {
			if i > 0 {
				q.w(" UNION ")
			}
			if err := s.clause(q, &c.Or[i], typ, true); err != nil {
				return err
			}
		}
		return nil
	case c.Has != nil:
		a := q.alias()
		t := q.alias()
		q.w("SELECT " + t + ".rk FROM idx_ref " + a + " JOIN current " + t + " ON " + t + ".type = " + a + ".rtype AND " + t + ".id = " + a + ".rid WHERE ")
		q.w(a+".type = ? AND "+a+".param = ? AND "+a+".comp = 0 AND ", c.Has.Type, c.Has.Ref.Code)
		if typ != "" && typ != "Resource" {
			q.w(a+".rtype = ? AND ", typ)
		}
		q.w(a + ".rk IN (")
		if err := s.clause(q, &c.Has.Clause, c.Has.Type, true); err != nil {
			return err
		}
		q.w(")")
		return nil
	case len(c.Chain) > 0:
		a := q.alias()
		q.w("SELECT " + a + ".rk FROM idx_ref " + a + " WHERE ")
		typeCond(q, a, typ)
		q.w(a+".param = ? AND "+a+".comp = 0 AND "+a+".rid != '' AND (", c.Param.Code)
		for i := range c.Chain {
			if i > 0 {
				q.w(" OR ")
			}
			t := q.alias()
			q.w("("+a+".rtype = ? AND "+a+".rid IN (SELECT "+t+".id FROM current "+t+" WHERE "+t+".rk IN (", c.Chain[i].Type)
			if err := s.clause(q, &c.Chain[i].Clause, c.Chain[i].Type, true); err != nil {
				return err
			}
			q.w(")))")
		}
		q.w(")")
		return nil
	case c.Modifier == "missing":
		for i, t := range tablesOf(c.Param.Type) {
			if i > 0 {
				q.w(" UNION ")
			}
			a := q.alias()
			q.w("SELECT " + a + ".rk FROM " + t + " " + a + " WHERE ")
			typeCond(q, a, typ)
			q.w(a+".param = ?", c.Param.Code)
		}
		return nil
	case c.Param.Type == fhir.TypeComposite:
		return s.compositeSet(q, c, typ)
	}
	table := tableFor(c.Param.Type, c.Modifier)
	a := q.alias()
	q.w("SELECT " + a + ".rk FROM " + table + " " + a + " WHERE ")
	typeCond(q, a, typ)
	q.w(a+".param = ? AND "+a+".comp = 0 AND (", c.Param.Code)
	for i, v := range c.Values {
		if i > 0 {
			q.w(" OR ")
		}
		if err := cond(q, a, c.Param.Type, c.Modifier, v); err != nil {
			return err
		}
	}
	q.w(")")
	return nil
}

// group writes the rk set of an AND group: the intersection of its
// clauses' sets, each written for the group's type when it has one (so the
// set holds resources of that type only), or the current resources of the
// type when the group has no clauses.
func (s *Store) group(q *sqlb, c *search.Clause, typ string) error {
	t := typ
	if c.Type != "" {
		if typ != "" && typ != "Resource" && typ != c.Type {
			q.w("SELECT rk FROM current WHERE 0")
			return nil
		}
		t = c.Type
	}
	if len(c.All) == 0 {
		a := q.alias()
		q.w("SELECT " + a + ".rk FROM current " + a + " WHERE ")
		typeCond(q, a, t)
		q.w(a + ".deleted = 0")
		return nil
	}
	// SQLite's compound operators have equal precedence and associate to
	// the left, so each operand, and the intersection itself (which may be
	// an operand of an OR's UNION), is wrapped whole.
	q.w("SELECT rk FROM (")
	for i := range c.All {
		if i > 0 {
			q.w(" INTERSECT ")
		}
		q.w("SELECT rk FROM (")
		if err := s.clause(q, &c.All[i], t, true); err != nil {
			return err
		}
		q.w(")")
	}
	q.w(")")
	return nil
}

// clause writes the rk set of the resources of typ matching c,
// including :missing=true and :not, as a subquery body.
func (s *Store) clause(q *sqlb, c *search.Clause, typ string, _ bool) error {
	negate := (c.Modifier == "missing" && c.Values[0].Str == "true") || c.Modifier == "not"
	if !negate {
		return s.set(q, c, typ)
	}
	// All current resources of typ, less those in the set.
	a := q.alias()
	q.w("SELECT " + a + ".rk FROM current " + a + " WHERE ")
	typeCond(q, a, typ)
	q.w(a + ".deleted = 0 AND " + a + ".rk NOT IN (")
	c2 := *c
	if c.Modifier == "not" {
		c2.Modifier = ""
	} else {
		c2.Values = []search.Value{{Str: "false"}}
	}
	if err := s.set(q, &c2, typ); err != nil {
		return err
	}
	q.w(")")
	return nil
}

func tableFor(t fhir.ParamType, mod string) string {
	switch mod {
	case "text", "of-type", "identifier":
		return "idx_token"
	case "exact", "contains", "above", "below":
		return "idx_string"
	}
	if t == fhir.TypeReference {
		return "idx_ref"
	}
	return tablesOf(t)[0]
}

func (s *Store) compositeSet(q *sqlb, c *search.Clause, typ string) error {
	a := q.alias()
	q.w("SELECT " + a + ".rk FROM " + tableFor(c.Param.Components[0].Type, "") + " " + a + " WHERE ")
	typeCond(q, a, typ)
	q.w(a+".param = ? AND "+a+".comp = 1 AND ", c.Param.Code)
	return compositeValues(q, a, c)
}

// compositeValues writes, for the rows of alias a holding a composite's
// first component, the condition that some value of c matches: the first
// component on a, each other one on a row of the same group.
func compositeValues(q *sqlb, a string, c *search.Clause) error {
	comps := c.Param.Components
	q.w("(")
	for i, v := range c.Values {
		if i > 0 {
			q.w(" OR ")
		}
		q.w("(")
		if err := cond(q, a, comps[0].Type, "", v.Parts[0]); err != nil {
			return err
		}
		for k := 1; k < len(comps); k++ {
			b := q.alias()
			q.w(" AND EXISTS (SELECT 1 FROM " + tableFor(comps[k].Type, "") + " " + b + " WHERE " + b + ".rk = " + a + ".rk AND " + b + ".param = " + a + ".param AND " + b + ".grp = " + a + ".grp AND " + fmt.Sprintf("%s.comp = %d AND ", b, k+1))
			if err := cond(q, b, comps[k].Type, "", v.Parts[k]); err != nil {
				return err
			}
			q.w(")")
		}
		q.w(")")
	}
	q.w(")")
	return nil
}

// cond writes the condition on alias a for one value; it mirrors search.Match.
func cond(q *sqlb, a string, t fhir.ParamType, mod string, v search.Value) error {
	switch mod {
	case "text":
		q.w("("+a+".text != '' AND "+a+".text >= ? AND "+a+".text < ?)", v.Norm, v.Norm+maxRune)
		return nil
	case "exact":
		q.w(a+".exact = ?", v.Str)
		return nil
	case "contains":
		q.w("instr("+a+".norm, ?) > 0", v.Norm)
		return nil
	case "above":
		q.w("("+a+".norm != '' AND substr(?, 1, length("+a+".norm)) = "+a+".norm)", v.Str)
		return nil
	case "below":
		q.w("("+a+".norm >= ? AND "+a+".norm < ?)", v.Str, v.Str+maxRune)
		return nil
	case "identifier":
		tokenCond(q, a, v)
		return nil
	case "of-type":
		parts := strings.SplitN(v.Raw, "|", 3)
		if len(parts) != 3 {
			return fhir.Invalid("", ":of-type takes type-system|type-code|value")
		}
		q.w("("+a+".idtype = ? AND "+a+".code = ?)", parts[0]+"|"+parts[1], parts[2])
		return nil
	}
	switch t {
	case fhir.TypeToken:
		tokenCond(q, a, v)
	case fhir.TypeString:
		q.w("("+a+".norm >= ? AND "+a+".norm < ?)", v.Norm, v.Norm+maxRune)
	case fhir.TypeURI:
		q.w(a+".norm = ?", v.Str)
	case fhir.TypeNumber:
		numberCond(q, a, v)
	case fhir.TypeQuantity:
		q.w("(")
		if v.Code != "" {
			q.w("("+a+".code = ? OR "+a+".unit = ?) AND ", v.Code, v.Code)
		}
		if v.HasSystem {
			q.w(a+".system = ? AND ", v.System)
		}
		numberCond(q, a, v)
		q.w(")")
	case fhir.TypeDate:
		dateCond(q, a, v)
	case fhir.TypeReference:
		if v.RefURL != "" {
			q.w("("+a+".rurl = ?", v.RefURL)
		} else {
			q.w("("+a+".rid = ? AND "+a+".rid != ''", v.RefID)
			if v.RefType != "" {
				q.w(" AND "+a+".rtype = ?", v.RefType)
			}
		}
		if v.RefVersion != "" {
			q.w(" AND "+a+".rver = ?", v.RefVersion)
		}
		q.w(")")
	case fhir.TypeSpecial:
		q.w("fhir_distance(?, ?, "+a+".lo, "+a+".hi) <= ?", v.Low, v.High, v.Num)
	default:
		return fhir.Invalid("", "parameters of type %s cannot be searched", t)
	}
	return nil
}

func tokenCond(q *sqlb, a string, v search.Value) {
	if v.HasSystem {
		q.w("("+a+".system = ?", v.System)
		if v.Code != "" {
			q.w(" AND "+a+".code = ?", v.Code)
		}
		q.w(")")
		return
	}
	if v.Code == "" {
		q.w("0")
		return
	}
	q.w(a+".code = ?", v.Code)
}

func numberCond(q *sqlb, a string, v search.Value) {
	lo, hi := a+".lo", a+".hi"
	switch v.Prefix {
	case search.PrefixEq:
		q.w("("+lo+" >= ? AND "+hi+" < ?)", v.Low, v.High)
	case search.PrefixNe:
		q.w("NOT ("+lo+" >= ? AND "+hi+" < ?)", v.Low, v.High)
	case search.PrefixGt, search.PrefixSa:
		q.w(hi+" > ?", v.Num)
	case search.PrefixLt, search.PrefixEb:
		q.w(lo+" < ?", v.Num)
	case search.PrefixGe:
		q.w(hi+" >= ?", v.Num)
	case search.PrefixLe:
		q.w(lo+" <= ?", v.Num)
	case search.PrefixAp:
		d := math.Abs(v.Num) * 0.1
		q.w("("+hi+" >= ? AND "+lo+" <= ?)", v.Num-d, v.Num+d)
	}
}

func dateCond(q *sqlb, a string, v search.Value) {
	s, e := a+".start", a+".end"
	switch v.Prefix {
	case search.PrefixEq:
		q.w("("+s+" >= ? AND "+e+" <= ?)", v.Start, v.End)
	case search.PrefixNe:
		q.w("NOT ("+s+" >= ? AND "+e+" <= ?)", v.Start, v.End)
	case search.PrefixGt:
		q.w(e+" > ?", v.End)
	case search.PrefixLt:
		q.w(s+" < ?", v.Start)
	case search.PrefixGe:
		q.w("("+e+" > ? OR ("+s+" >= ? AND "+e+" <= ?))", v.End, v.Start, v.End)
	case search.PrefixLe:
		q.w("("+s+" < ? OR ("+s+" >= ? AND "+e+" <= ?))", v.Start, v.Start, v.End)
	case search.PrefixSa:
		q.w(s+" >= ?", v.End)
	case search.PrefixEb:
		q.w(e+" <= ?", v.Start)
	case search.PrefixAp:
		gap := search.Now().UnixMilli() - v.Start
		if gap < 0 {
			gap = -gap
		}
		d := gap / 10
		q.w("("+e+" > ? AND "+s+" < ?)", v.Start-d, v.End+d)
	}
}
