package search

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/fhirhub/fhirhub/fhir"
)

// Prefix is a comparison prefix of number, date and quantity values.
type Prefix string

// The R4 prefixes.
const (
	PrefixEq Prefix = "eq"
	PrefixNe Prefix = "ne"
	PrefixGt Prefix = "gt"
	PrefixLt Prefix = "lt"
	PrefixGe Prefix = "ge"
	PrefixLe Prefix = "le"
	PrefixSa Prefix = "sa"
	PrefixEb Prefix = "eb"
	PrefixAp Prefix = "ap"
)

var prefixes = map[string]Prefix{"eq": PrefixEq, "ne": PrefixNe, "gt": PrefixGt, "lt": PrefixLt, "ge": PrefixGe, "le": PrefixLe, "sa": PrefixSa, "eb": PrefixEb, "ap": PrefixAp}

// Value is one parsed search value (the parts of a comma-separated list are
// separate values). Which fields are set depends on the parameter type.
type Value struct {
	Raw    string
	Prefix Prefix

	// token: System|Code. HasSystem is true when a '|' was given ("|code"
	// means no system; "system|" any code in the system).
	System, Code string
	HasSystem    bool

	// string, uri: the value; for strings also Norm, the normalised form.
	Str, Norm string

	// number, quantity: the number and the range its precision implies
	// [Low, High); quantity also System|Code of the unit.
	Num       float64
	Low, High float64

	// date: the range [Start, End) in Unix milliseconds the value stands for.
	Start, End int64

	// reference: Type/ID (ID alone when Type is empty), or URL for an absolute
	// or canonical reference; Version for Type/ID/_history/v or url|version.
	RefType, RefID, RefVersion, RefURL string

	// composite: one value per component.
	Parts []Value
}

func splitValues(v string) []string { return splitEscaped(v, ',') }

// splitEscaped splits at sep, honouring backslash escapes (\, \| \$ \\).
func splitEscaped(v string, sep byte) []string {
	var out []string
	var cur strings.Builder
	for i := 0; i < len(v); i++ {
		switch {
		case v[i] == '\\' && i+1 < len(v) && (v[i+1] == ',' || v[i+1] == '|' || v[i+1] == '$' || v[i+1] == '\\'):
			if v[i+1] == sep {
				cur.WriteByte(v[i+1])
			} else {
				cur.WriteByte('\\')
				cur.WriteByte(v[i+1])
			}
			i++
		case v[i] == sep:
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(v[i])
		}
	}
	return append(out, cur.String())
}

// SplitEscaped splits a search value at sep, honouring backslash escapes
// (\, \| \$ \\); the stores read :of-type values with it, as Match does.
func SplitEscaped(v string, sep byte) []string { return splitEscaped(v, sep) }

// Unescape removes the backslash escapes of a search value part.
func Unescape(s string) string { return unescape(s) }

func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func splitPrefix(s string) (Prefix, string) {
	if len(s) >= 2 {
		if p, ok := prefixes[s[:2]]; ok {
			return p, s[2:]
		}
	}
	return PrefixEq, s
}

// parseValue parses one value of a parameter of type t.
func parseValue(name string, t ParamType, raw string, comps []Component) (Value, error) {
	v := Value{Raw: raw, Prefix: PrefixEq}
	bad := func(format string, args ...any) (Value, error) {
		return v, fhir.Invalid(name, "%s=%s: "+format, append([]any{name, raw}, args...)...)
	}
	switch t {
	case TypeToken:
		parts := splitEscaped(raw, '|')
		switch len(parts) {
		case 1:
			v.Code = unescape(parts[0])
		case 2:
			v.System, v.Code, v.HasSystem = unescape(parts[0]), unescape(parts[1]), true
		default:
			return bad("a token is code, system|code, |code or system|")
		}
	case TypeString:
		v.Str = unescape(raw)
		v.Norm = Normalize(v.Str)
	case TypeURI:
		v.Str = unescape(raw)
	case TypeNumber:
		p, rest := splitPrefix(raw)
		n, lo, hi, err := parseNumber(rest)
		if err != nil {
			return bad("%q is not a number", rest)
		}
		v.Prefix, v.Num, v.Low, v.High = p, n, lo, hi
	case TypeQuantity:
		p, rest := splitPrefix(raw)
		parts := splitEscaped(rest, '|')
		if len(parts) != 1 && len(parts) != 3 {
			return bad("a quantity is [prefix]number[|system|code]")
		}
		n, lo, hi, err := parseNumber(parts[0])
		if err != nil {
			return bad("%q is not a number", parts[0])
		}
		v.Prefix, v.Num, v.Low, v.High = p, n, lo, hi
		if len(parts) == 3 {
			v.System, v.Code = unescape(parts[1]), unescape(parts[2])
			v.HasSystem = v.System != ""
		}
	case TypeDate:
		p, rest := splitPrefix(raw)
		start, end, err := fhir.DateRange(rest)
		if err != nil {
			return bad("%q is not a date (YYYY, YYYY-MM, YYYY-MM-DD or a dateTime with time zone)", rest)
		}
		v.Prefix, v.Start, v.End = p, start.UnixMilli(), end.UnixMilli()
	case TypeReference:
		s := unescape(raw)
		if i := strings.Index(s, "|"); i > 0 && strings.Contains(s[:i], "://") {
			v.RefURL, v.RefVersion = s[:i], s[i+1:]
			break
		}
		if strings.Contains(s, "://") || strings.HasPrefix(s, "urn:") {
			v.RefURL = s
			break
		}
		parts := strings.Split(s, "/")
		switch {
		case len(parts) == 1:
			v.RefID = parts[0]
		case len(parts) == 2:
			v.RefType, v.RefID = parts[0], parts[1]
		case len(parts) == 4 && parts[2] == "_history":
			v.RefType, v.RefID, v.RefVersion = parts[0], parts[1], parts[3]
		default:
			return bad("a reference is id, Type/id, Type/id/_history/version or an absolute URL")
		}
		if v.RefID == "" || !fhir.ValidID(v.RefID) {
			return bad("%q is not a valid id", v.RefID)
		}
	case TypeComposite:
		parts := splitEscaped(raw, '$')
		if len(parts) != len(comps) {
			return bad("this composite has %d components separated by $, got %d", len(comps), len(parts))
		}
		for i, c := range comps {
			pv, err := parseValue(name, c.Type, parts[i], nil)
			if err != nil {
				return v, err
			}
			v.Parts = append(v.Parts, pv)
		}
	case TypeSpecial:
		// near: latitude|longitude|distance|units
		parts := strings.Split(raw, "|")
		if len(parts) < 2 {
			return bad("near is latitude|longitude[|distance[|units]]")
		}
		lat, err1 := strconv.ParseFloat(parts[0], 64)
		lon, err2 := strconv.ParseFloat(parts[1], 64)
		if err1 != nil || err2 != nil || math.Abs(lat) > 90 || math.Abs(lon) > 180 {
			return bad("latitude and longitude must be numbers")
		}
		v.Low, v.High = lat, lon
		v.Num = 1 // km by default
		if len(parts) > 2 && parts[2] != "" {
			d, err := strconv.ParseFloat(parts[2], 64)
			if err != nil || d < 0 {
				return bad("the distance must be a number")
			}
			v.Num = d
			unit := "km"
			if len(parts) > 3 && parts[3] != "" {
				unit = parts[3]
			}
			switch unit {
			case "km":
			case "m":
				v.Num /= 1000
			case "[mi_i]", "mi":
				v.Num *= 1.609344
			default:
				return bad("the distance unit must be km, m or [mi_i]")
			}
		}
	default:
		return bad("parameters of type %s are not searchable", t)
	}
	return v, nil
}

// parseNumber parses a decimal and the range of its implied precision:
// 100 → [99.5, 100.5), 1.50 → [1.495, 1.505), 1e2 → [95, 105).
func parseNumber(s string) (n, lo, hi float64, err error) {
	n, err = strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(n) || math.IsInf(n, 0) {
		return 0, 0, 0, fhir.Invalid("", "not a number")
	}
	mant, exp := s, 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mant = s[:i]
		exp, _ = strconv.Atoi(s[i+1:])
	}
	decimals := 0
	if i := strings.IndexByte(mant, '.'); i >= 0 {
		decimals = len(mant) - i - 1
	}
	half := 0.5 * math.Pow(10, float64(exp-decimals))
	if strings.ContainsAny(s, "eE") && decimals == 0 {
		// 1e2 has one significant figure: 100 ± 5.
		digits := len(strings.TrimLeft(strings.TrimLeft(mant, "+-"), "0"))
		if digits == 0 {
			digits = 1
		}
		half = 0.5 * math.Pow(10, float64(exp-digits))
	}
	return n, n - half, n + half, nil
}

// Normalize folds a string for string search: lower case, accents removed,
// whitespace runs collapsed.
func Normalize(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range foldAccents(s) {
		if r == ' ' || r == '\t' || r == '\n' || r == '\r' {
			if !space && b.Len() > 0 {
				b.WriteByte(' ')
			}
			space = true
			continue
		}
		space = false
		b.WriteString(strings.ToLower(string(r)))
	}
	return strings.TrimRight(b.String(), " ")
}

// UnixMilliRange returns the range [start, end) in Unix milliseconds of a
// time at millisecond precision.
func UnixMilliRange(t time.Time) (int64, int64) {
	ms := t.UnixMilli()
	return ms, ms + 1
}

func fmtSprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
