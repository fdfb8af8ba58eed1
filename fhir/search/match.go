package search

import (
	"math"
	"strings"
	"time"
)

// Resolver gives the matcher what chains and _has need: the entries of other
// resources. A nil Resolver makes chained and _has clauses match nothing.
type Resolver interface {
	// Entries returns the index entries of the current typ/id.
	Entries(typ, id string) ([]Entry, bool)
	// Referrers returns the entries of the resources of typ whose reference
	// parameter ref points at targetType/targetID.
	Referrers(typ string, ref *Param, targetType, targetID string) [][]Entry
}

// Match reports whether a resource of type typ with id and entries matches
// every clause. This is the reference semantics the stores implement.
func Match(clauses []Clause, typ, id string, entries []Entry, r Resolver) bool {
	for i := range clauses {
		if !matchClause(&clauses[i], typ, id, entries, r) {
			return false
		}
	}
	return true
}

// Now is the clock for the ap prefix on dates (replaceable in tests).
var Now = time.Now

func matchClause(c *Clause, typ, id string, entries []Entry, r Resolver) bool {
	if c.IsGroup() {
		if c.Type != "" && c.Type != typ {
			return false
		}
		for i := range c.All {
			if !matchClause(&c.All[i], typ, id, entries, r) {
				return false
			}
		}
		return true
	}
	if len(c.Or) > 0 {
		for i := range c.Or {
			if matchClause(&c.Or[i], typ, id, entries, r) {
				return true
			}
		}
		return false
	}
	if c.Has != nil {
		if r == nil {
			return false
		}
		for _, es := range r.Referrers(c.Has.Type, c.Has.Ref, typ, id) {
			if matchClause(&c.Has.Clause, c.Has.Type, "", es, r) {
				return true
			}
		}
		return false
	}
	own := entriesOf(entries, c.Param.Code)
	if len(c.Chain) > 0 {
		if r == nil {
			return false
		}
		for _, e := range own {
			for i := range c.Chain {
				ch := &c.Chain[i]
				if e.RefID == "" || (e.RefType != "" && e.RefType != ch.Type) {
					continue
				}
				if es, ok := r.Entries(ch.Type, e.RefID); ok && matchClause(&ch.Clause, ch.Type, e.RefID, es, r) {
					return true
				}
			}
		}
		return false
	}
	switch c.Modifier {
	case "missing":
		return (len(own) == 0) == (c.Values[0].Str == "true")
	case "not":
		for _, v := range c.Values {
			for _, e := range own {
				if tokenMatches(v, e) {
					return false
				}
			}
		}
		return true
	}
	if c.Param.Type == TypeComposite {
		return matchComposite(c, own)
	}
	for _, v := range c.Values {
		for _, e := range own {
			if e.Comp != 0 {
				continue
			}
			if valueMatches(c.Param.Type, c.Modifier, v, e) {
				return true
			}
		}
	}
	return false
}

func entriesOf(entries []Entry, code string) []Entry {
	var out []Entry
	for _, e := range entries {
		if e.Param == code {
			out = append(out, e)
		}
	}
	return out
}

func matchComposite(c *Clause, own []Entry) bool {
	groups := map[int][]Entry{}
	for _, e := range own {
		if e.Comp > 0 {
			groups[e.Group] = append(groups[e.Group], e)
		}
	}
	for _, v := range c.Values {
	group:
		for _, es := range groups {
			for i, part := range v.Parts {
				ok := false
				for _, e := range es {
					if e.Comp == i+1 && valueMatches(c.Param.Components[i].Type, "", part, e) {
						ok = true
						break
					}
				}
				if !ok {
					continue group
				}
			}
			return true
		}
	}
	return false
}

// valueMatches compares one search value with one entry.
func valueMatches(t ParamType, mod string, v Value, e Entry) bool {
	switch mod {
	case "text":
		return e.Text != "" && strings.HasPrefix(e.Text, v.Norm)
	case "exact":
		return e.Exact == v.Str
	case "contains":
		return strings.Contains(e.Str, v.Norm)
	case "above":
		return e.Str != "" && strings.HasPrefix(v.Str, e.Str)
	case "below":
		return strings.HasPrefix(e.Str, v.Str)
	case "identifier":
		return e.RefType == "" && e.RefURL == "" && e.RefID == "" && tokenMatches(v, e)
	case "of-type":
		parts := splitEscaped(v.Raw, '|')
		return e.IDType == unescape(parts[0])+"|"+unescape(parts[1]) && e.Code == unescape(parts[2])
	}
	switch t {
	case TypeToken:
		return tokenMatches(v, e)
	case TypeString:
		return strings.HasPrefix(e.Str, v.Norm)
	case TypeURI:
		return e.Str == v.Str
	case TypeNumber:
		return numberMatches(v, e.Low, e.High)
	case TypeQuantity:
		if v.Code != "" && e.Code != v.Code && e.Exact != v.Code {
			return false
		}
		if v.HasSystem && e.System != v.System {
			return false
		}
		return numberMatches(v, e.Low, e.High)
	case TypeDate:
		return dateMatches(v, e.Start, e.End)
	case TypeReference:
		return referenceMatches(v, e)
	case TypeSpecial:
		return DistanceKm(v.Low, v.High, e.Low, e.High) <= v.Num
	}
	return false
}

func tokenMatches(v Value, e Entry) bool {
	if e.RefID != "" || e.RefURL != "" {
		return false
	}
	if v.HasSystem {
		if e.System != v.System {
			return false
		}
		return v.Code == "" || e.Code == v.Code
	}
	return e.Code == v.Code && e.Code != ""
}

// numberMatches applies a prefix to an entry range [lo, hi] (lo == hi for
// a single value), against the search value and its precision range.
func numberMatches(v Value, lo, hi float64) bool {
	switch v.Prefix {
	case PrefixEq:
		return lo >= v.Low && hi < v.High
	case PrefixNe:
		return !(lo >= v.Low && hi < v.High)
	case PrefixGt, PrefixSa:
		return hi > v.Num
	case PrefixLt, PrefixEb:
		return lo < v.Num
	case PrefixGe:
		return hi >= v.Num
	case PrefixLe:
		return lo <= v.Num
	case PrefixAp:
		d := math.Abs(v.Num) * 0.1
		return hi >= v.Num-d && lo <= v.Num+d
	}
	return false
}

// dateMatches applies a prefix to an entry range [s, e) against the value's
// range [v.Start, v.End), as the R4 date search rules define.
func dateMatches(v Value, s, e int64) bool {
	switch v.Prefix {
	case PrefixEq:
		return s >= v.Start && e <= v.End
	case PrefixNe:
		return !(s >= v.Start && e <= v.End)
	case PrefixGt:
		return e > v.End
	case PrefixLt:
		return s < v.Start
	case PrefixGe:
		// The range above the value overlaps the target, or the value's
		// range contains it.
		return e > v.End || (s >= v.Start && e <= v.End)
	case PrefixLe:
		// The range below the value overlaps the target, or the value's
		// range contains it.
		return s < v.Start || (s >= v.Start && e <= v.End)
	case PrefixSa:
		return s >= v.End
	case PrefixEb:
		return e <= v.Start
	case PrefixAp:
		gap := Now().UnixMilli() - v.Start
		if gap < 0 {
			gap = -gap
		}
		d := gap / 10
		return e > v.Start-d && s < v.End+d
	}
	return false
}

func referenceMatches(v Value, e Entry) bool {
	if v.RefURL != "" {
		return e.RefURL == v.RefURL && (v.RefVersion == "" || e.RefVersion == v.RefVersion)
	}
	if e.RefID != v.RefID || e.RefID == "" {
		return false
	}
	if v.RefType != "" && e.RefType != v.RefType {
		return false
	}
	return v.RefVersion == "" || e.RefVersion == v.RefVersion
}

// DistanceKm is the great-circle distance between two points (haversine).
func DistanceKm(lat1, lon1, lat2, lon2 float64) float64 {
	const r = 6371.0088
	rad := math.Pi / 180
	dlat, dlon := (lat2-lat1)*rad, (lon2-lon1)*rad
	a := math.Sin(dlat/2)*math.Sin(dlat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dlon/2)*math.Sin(dlon/2)
	return 2 * r * math.Asin(math.Min(1, math.Sqrt(a)))
}
