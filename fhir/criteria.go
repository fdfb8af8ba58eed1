package fhir

import (
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"
)

// ConditionalParams are the search parameters conditional interactions accept
// until full search lands; the CapabilityStatement says so.
var ConditionalParams = []string{"_id", "identifier", "_lastUpdated"}

// ParseCriteria parses the criteria of a conditional interaction
// (If-None-Exist, or the query of a conditional update or delete). Unknown
// parameters are refused rather than ignored: ignoring a criterion of a
// conditional delete would delete the wrong thing.
func ParseCriteria(typ, criteria string) (Match, error) {
	m := Match{Type: typ}
	q, err := url.ParseQuery(strings.TrimPrefix(criteria, "?"))
	if err != nil {
		return m, Invalid("", "the criteria %q are not a valid query string: %v", criteria, err)
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	n := 0
	for _, k := range keys {
		for _, v := range q[k] {
			switch k {
			case "_id":
				for _, id := range strings.Split(v, ",") {
					m.IDs = append(m.IDs, id)
				}
				n++
			case "identifier":
				tm := TokenMatch{Param: "identifier"}
				for _, t := range splitComma(v) {
					tm.Values = append(tm.Values, ParseToken(t))
				}
				m.Tokens = append(m.Tokens, tm)
				n++
			case "_lastUpdated":
				b, err := parseDateBounds(v)
				if err != nil {
					return m, Invalid("_lastUpdated", "_lastUpdated=%s: %v", v, err)
				}
				m.LastUpdated = append(m.LastUpdated, b...)
				n++
			case "_format", "_pretty":
			default:
				return m, Invalid(k, "the search parameter %q is not supported in conditional criteria (supported: %s)", k, strings.Join(ConditionalParams, ", "))
			}
		}
	}
	if n == 0 {
		return m, Invalid("", "conditional criteria are empty; give at least one of %s", strings.Join(ConditionalParams, ", "))
	}
	if len(q["_id"]) > 1 {
		// Repeated _id is an AND of alternatives; keep the intersection.
		m.IDs = intersectIDs(q["_id"])
		if len(m.IDs) == 0 {
			m.IDs = []string{""} // matches nothing
		}
	}
	return m, nil
}

func intersectIDs(vals []string) []string {
	count := map[string]int{}
	for _, v := range vals {
		seen := map[string]bool{}
		for _, id := range strings.Split(v, ",") {
			if !seen[id] {
				seen[id] = true
				count[id]++
			}
		}
	}
	var out []string
	for id, c := range count {
		if c == len(vals) {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// splitComma splits on commas not escaped with a backslash.
func splitComma(v string) []string {
	var out []string
	var cur strings.Builder
	for i := 0; i < len(v); i++ {
		switch {
		case v[i] == '\\' && i+1 < len(v):
			cur.WriteByte(v[i+1])
			i++
		case v[i] == ',':
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(v[i])
		}
	}
	return append(out, cur.String())
}

// ParseToken parses a token search value: code, system|code, |code or system|.
func ParseToken(s string) TokenValue {
	i := strings.IndexByte(s, '|')
	if i < 0 {
		return TokenValue{Code: s, AnySystem: true}
	}
	return TokenValue{System: s[:i], Code: s[i+1:]}
}

var dateRe = regexp.MustCompile(`^(\d{4})(-(\d{2})(-(\d{2})(T(\d{2}):(\d{2})(:(\d{2})(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$`)

// parseDateBounds turns prefix+date into bounds on an instant, honouring the
// precision of the date (2024-03 is the whole of March).
func parseDateBounds(v string) ([]DateBound, error) {
	prefix := "eq"
	if len(v) > 2 && v[0] >= 'a' && v[0] <= 'z' {
		prefix, v = v[:2], v[2:]
	}
	start, end, err := DateRange(v)
	if err != nil {
		return nil, err
	}
	switch prefix {
	case "eq":
		return []DateBound{{"ge", start}, {"lt", end}}, nil
	case "gt":
		return []DateBound{{"ge", end}}, nil
	case "ge":
		return []DateBound{{"ge", start}}, nil
	case "lt":
		return []DateBound{{"lt", start}}, nil
	case "le":
		return []DateBound{{"lt", end}}, nil
	}
	return nil, Invalid("", "the prefix %q is not supported here (use eq, gt, ge, lt, le)", prefix)
}

// DateRange parses a FHIR date, dateTime or instant and returns the range
// [start, end) it stands for at its precision. Values without a time zone are
// taken as UTC.
func DateRange(v string) (start, end time.Time, err error) {
	m := dateRe.FindStringSubmatch(v)
	if m == nil {
		return start, end, Invalid("", "%q is not a FHIR date (YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss[.sss](Z|±hh:mm))", v)
	}
	loc := time.UTC
	if tz := m[12]; tz != "" && tz != "Z" {
		t, perr := time.Parse("-07:00", tz)
		if perr != nil {
			return start, end, Invalid("", "%q has a bad time zone", v)
		}
		loc = t.Location()
	}
	atoi := func(s string) int {
		n := 0
		for _, c := range s {
			n = n*10 + int(c-'0')
		}
		return n
	}
	y := atoi(m[1])
	switch {
	case m[3] == "":
		start = time.Date(y, 1, 1, 0, 0, 0, 0, loc)
		end = start.AddDate(1, 0, 0)
	case m[5] == "":
		mo := atoi(m[3])
		if mo < 1 || mo > 12 {
			return start, end, Invalid("", "%q has no such month", v)
		}
		start = time.Date(y, time.Month(mo), 1, 0, 0, 0, 0, loc)
		end = start.AddDate(0, 1, 0)
	case m[7] == "":
		layout := "2006-01-02"
		t, perr := time.ParseInLocation(layout, v, loc)
		if perr != nil {
			return start, end, Invalid("", "%q is not a valid date", v)
		}
		start, end = t, t.AddDate(0, 0, 1)
	default:
		s := v
		if m[12] == "" {
			s += "Z"
		}
		layout := "2006-01-02T15:04Z07:00"
		prec := time.Minute
		if m[10] != "" {
			layout = "2006-01-02T15:04:05Z07:00"
			prec = time.Second
			if m[11] != "" {
				layout = "2006-01-02T15:04:05.999999999Z07:00"
				prec = time.Millisecond
				if len(m[11]) > 4 {
					prec = time.Nanosecond
				}
			}
		}
		t, perr := time.Parse(layout, s)
		if perr != nil {
			return start, end, Invalid("", "%q is not a valid dateTime", v)
		}
		start, end = t, t.Add(prec)
	}
	return start.UTC(), end.UTC(), nil
}

// ExtractTokens returns the index tokens of a resource the store keeps for
// conditional criteria: its top-level identifiers.
func ExtractTokens(value map[string]any) []Token {
	var out []Token
	add := func(v any) {
		o, ok := v.(map[string]any)
		if !ok {
			return
		}
		sys, _ := o["system"].(string)
		val, _ := o["value"].(string)
		if sys == "" && val == "" {
			return
		}
		out = append(out, IndexEntry{Param: "identifier", Type: TypeToken, System: sys, Code: val})
	}
	switch id := value["identifier"].(type) {
	case []any:
		for _, v := range id {
			add(v)
		}
	case map[string]any:
		add(id)
	}
	return out
}

// MatchTokens reports whether tokens satisfy one TokenMatch (an OR of values).
func MatchTokens(tokens []Token, tm TokenMatch) bool {
	for _, t := range tokens {
		if t.Param != tm.Param {
			continue
		}
		for _, v := range tm.Values {
			if v.Matches(t) {
				return true
			}
		}
	}
	return false
}

// Matches reports whether the token value selects token t.
func (v TokenValue) Matches(t Token) bool {
	if v.AnySystem {
		return t.Code == v.Code
	}
	if v.System != t.System {
		return false
	}
	return v.Code == "" || v.Code == t.Code
}
