package fhirpath

import (
	"math/big"
	"strings"
)

// Quantity is a FHIRPath System.Quantity: a decimal value and a unit, which
// is a UCUM code ('mg') or a calendar duration keyword (days, week).
type Quantity struct {
	Value Decimal
	Unit  string
}

// String formats the quantity as a FHIRPath literal: 4 'mg', 1 week.
func (q Quantity) String() string {
	if _, ok := calendarUnits[q.Unit]; ok {
		return q.Value.String() + " " + q.Unit
	}
	return q.Value.String() + " '" + q.Unit + "'"
}

// calendarUnits maps the calendar duration keywords to their singular.
var calendarUnits = map[string]string{
	"year": "year", "years": "year", "month": "month", "months": "month",
	"week": "week", "weeks": "week", "day": "day", "days": "day",
	"hour": "hour", "hours": "hour", "minute": "minute", "minutes": "minute",
	"second": "second", "seconds": "second", "millisecond": "millisecond", "milliseconds": "millisecond",
}

// ucumForCalendar gives the UCUM unit a calendar keyword is comparable with.
// Calendar years and months have no fixed length, so they compare only with
// themselves.
var ucumForCalendar = map[string]string{
	"week": "wk", "day": "d", "hour": "h", "minute": "min", "second": "s", "millisecond": "ms",
}

// dateArithmeticUnit returns the calendar unit to add to a date or time for
// a quantity's unit; UCUM 'a' and 'mo' are refused (they are not calendar
// years and months).
func dateArithmeticUnit(u string) (string, bool) {
	if c, ok := calendarUnits[u]; ok {
		return c, true
	}
	switch u {
	case "wk":
		return "week", true
	case "d":
		return "day", true
	case "h":
		return "hour", true
	case "min":
		return "minute", true
	case "s":
		return "second", true
	case "ms":
		return "millisecond", true
	}
	return "", false
}

// dims counts the base dimensions of a unit: length, mass, time,
// temperature, amount, luminous intensity, arbitrary (international) units,
// calendar months and calendar years.
type dims [9]int8

// unitDef is a unit in terms of base units: factor × base.
type unitDef struct {
	factor *big.Rat
	dims   dims
}

func rat(s string) *big.Rat {
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		panic("fhirpath: bad constant " + s)
	}
	return r
}

// ucumAtoms is the subset of UCUM units the engine can convert between.
// Metric atoms take prefixes.
var ucumAtoms = map[string]struct {
	def    unitDef
	metric bool
}{
	"1":        {unitDef{rat("1"), dims{}}, false},
	"%":        {unitDef{rat("1/100"), dims{}}, false},
	"m":        {unitDef{rat("1"), dims{1}}, true},
	"g":        {unitDef{rat("1"), dims{0, 1}}, true},
	"s":        {unitDef{rat("1"), dims{0, 0, 1}}, true},
	"K":        {unitDef{rat("1"), dims{0, 0, 0, 1}}, true},
	"mol":      {unitDef{rat("1"), dims{0, 0, 0, 0, 1}}, true},
	"cd":       {unitDef{rat("1"), dims{0, 0, 0, 0, 0, 1}}, true},
	"eq":       {unitDef{rat("1"), dims{0, 0, 0, 0, 1}}, true},
	"osm":      {unitDef{rat("1"), dims{0, 0, 0, 0, 1}}, true},
	"L":        {unitDef{rat("1/1000"), dims{3}}, true},
	"l":        {unitDef{rat("1/1000"), dims{3}}, true},
	"Pa":       {unitDef{rat("1000"), dims{-1, 1, -2}}, true},
	"bar":      {unitDef{rat("100000000"), dims{-1, 1, -2}}, true},
	"U":        {unitDef{rat("1/60000000"), dims{0, 0, -1, 0, 1}}, true},
	"[iU]":     {unitDef{rat("1"), dims{0, 0, 0, 0, 0, 0, 1}}, true},
	"[IU]":     {unitDef{rat("1"), dims{0, 0, 0, 0, 0, 0, 1}}, true},
	"min":      {unitDef{rat("60"), dims{0, 0, 1}}, false},
	"h":        {unitDef{rat("3600"), dims{0, 0, 1}}, false},
	"d":        {unitDef{rat("86400"), dims{0, 0, 1}}, false},
	"wk":       {unitDef{rat("604800"), dims{0, 0, 1}}, false},
	"mo":       {unitDef{rat("2629800"), dims{0, 0, 1}}, false},
	"a":        {unitDef{rat("31557600"), dims{0, 0, 1}}, false},
	"[in_i]":   {unitDef{rat("0.0254"), dims{1}}, false},
	"[ft_i]":   {unitDef{rat("0.3048"), dims{1}}, false},
	"[yd_i]":   {unitDef{rat("0.9144"), dims{1}}, false},
	"[mi_i]":   {unitDef{rat("1609.344"), dims{1}}, false},
	"[lb_av]":  {unitDef{rat("453.59237"), dims{0, 1}}, false},
	"[oz_av]":  {unitDef{rat("28.349523125"), dims{0, 1}}, false},
	"[gr]":     {unitDef{rat("0.06479891"), dims{0, 1}}, false},
	"mm[Hg]":   {unitDef{rat("133322.387415"), dims{-1, 1, -2}}, false},
	"[degF]":   {unitDef{rat("5/9"), dims{0, 0, 0, 1}}, false},
	"Cel":      {unitDef{rat("1"), dims{0, 0, 0, 1}}, false},
	"[pi]":     {unitDef{rat("3.1415926535897932384626433832795028841971693993751058209749445923"), dims{}}, false},
	"[ppm]":    {unitDef{rat("1/1000000"), dims{}}, false},
	"[ppb]":    {unitDef{rat("1/1000000000"), dims{}}, false},
	"[drp]":    {unitDef{rat("1/20000000"), dims{3}}, false},
	"[foz_us]": {unitDef{rat("0.0000295735295625"), dims{3}}, false},
	"[gal_us]": {unitDef{rat("0.003785411784"), dims{3}}, false},
	"cal":      {unitDef{rat("4184"), dims{2, 1, -2}}, true},
	"J":        {unitDef{rat("1000"), dims{2, 1, -2}}, true},
	"N":        {unitDef{rat("1000"), dims{1, 1, -2}}, true},
	"W":        {unitDef{rat("1000"), dims{2, 1, -3}}, true},
	"Hz":       {unitDef{rat("1"), dims{0, 0, -1}}, true},
	"kat":      {unitDef{rat("1"), dims{0, 0, -1, 0, 1}}, true},
}

var ucumPrefixes = map[string]*big.Rat{
	"Y": rat("1e24"), "Z": rat("1e21"), "E": rat("1e18"), "P": rat("1e15"), "T": rat("1e12"),
	"G": rat("1e9"), "M": rat("1e6"), "k": rat("1e3"), "h": rat("1e2"), "da": rat("1e1"),
	"d": rat("1e-1"), "c": rat("1e-2"), "m": rat("1e-3"), "u": rat("1e-6"), "n": rat("1e-9"),
	"p": rat("1e-12"), "f": rat("1e-15"), "a": rat("1e-18"), "z": rat("1e-21"), "y": rat("1e-24"),
}

// unitOf resolves a quantity's unit: a calendar keyword or a UCUM
// expression such as mg/dL, m2, kg.m/s2 or 10*3/uL.
func unitOf(u string) (unitDef, bool) {
	if c, ok := calendarUnits[u]; ok {
		switch c {
		case "year":
			return unitDef{rat("1"), dims{8: 1}}, true
		case "month":
			return unitDef{rat("1"), dims{7: 1}}, true
		}
		u = ucumForCalendar[c]
	}
	if u == "" {
		u = "1"
	}
	return parseUCUM(u)
}

func parseUCUM(u string) (unitDef, bool) {
	res := unitDef{factor: rat("1")}
	div := false
	for len(u) > 0 {
		switch u[0] {
		case '.':
			div = false
			u = u[1:]
			continue
		case '/':
			div = true
			u = u[1:]
			continue
		}
		// One component: up to the next operator outside brackets.
		end, depth := len(u), 0
		for i := 0; i < len(u); i++ {
			switch u[i] {
			case '[', '(', '{':
				depth++
			case ']', ')', '}':
				depth--
			case '.', '/':
				if depth == 0 {
					end = i
					i = len(u)
				}
			}
		}
		comp := u[:end]
		u = u[end:]
		def, ok := parseComponent(comp)
		if !ok {
			return unitDef{}, false
		}
		if div {
			res.factor.Quo(res.factor, def.factor)
			for i := range res.dims {
				res.dims[i] -= def.dims[i]
			}
		} else {
			res.factor.Mul(res.factor, def.factor)
			for i := range res.dims {
				res.dims[i] += def.dims[i]
			}
		}
	}
	return res, true
}

func parseComponent(c string) (unitDef, bool) {
	// Drop annotations: mL{total}, {beats}.
	for {
		i := strings.IndexByte(c, '{')
		if i < 0 {
			break
		}
		j := strings.IndexByte(c[i:], '}')
		if j < 0 {
			return unitDef{}, false
		}
		c = c[:i] + c[i+j+1:]
	}
	if c == "" {
		return unitDef{rat("1"), dims{}}, true
	}
	if c[0] == '(' && c[len(c)-1] == ')' {
		return parseUCUM(c[1 : len(c)-1])
	}
	// 10*3, 10^3: a power of ten.
	if strings.HasPrefix(c, "10*") || strings.HasPrefix(c, "10^") {
		n, ok := new(big.Int).SetString(c[3:], 10)
		if !ok || !n.IsInt64() || n.Int64() > 30 || n.Int64() < -30 {
			return unitDef{}, false
		}
		return unitDef{pow10(int(n.Int64())), dims{}}, true
	}
	// A bare number is a factor (1, 100); trailing digits are an exponent
	// (m2, s-1, cm3).
	j := len(c)
	for j > 0 && c[j-1] >= '0' && c[j-1] <= '9' {
		j--
	}
	if j == 0 {
		r, ok := new(big.Rat).SetString(c)
		return unitDef{r, dims{}}, ok
	}
	exp := 1
	if j < len(c) {
		k := j
		if c[k-1] == '-' || c[k-1] == '+' {
			k--
		}
		if k == 0 {
			return unitDef{}, false
		}
		n, ok := new(big.Int).SetString(strings.TrimPrefix(c[k:], "+"), 10)
		if !ok || !n.IsInt64() || n.Int64() > 10 || n.Int64() < -10 {
			return unitDef{}, false
		}
		exp = int(n.Int64())
		c = c[:k]
	}
	def, ok := atom(c)
	if !ok {
		return unitDef{}, false
	}
	out := unitDef{factor: rat("1")}
	for k := 0; k < abs(exp); k++ {
		out.factor.Mul(out.factor, def.factor)
	}
	if exp < 0 {
		out.factor.Inv(out.factor)
	}
	for k := range def.dims {
		out.dims[k] = def.dims[k] * int8(exp)
	}
	return out, true
}

func atom(c string) (unitDef, bool) {
	if a, ok := ucumAtoms[c]; ok {
		return a.def, true
	}
	for _, plen := range []int{2, 1} {
		if len(c) <= plen {
			continue
		}
		p, ok := ucumPrefixes[c[:plen]]
		if !ok {
			continue
		}
		if a, ok := ucumAtoms[c[plen:]]; ok && a.metric {
			return unitDef{new(big.Rat).Mul(p, a.def.factor), a.def.dims}, true
		}
	}
	return unitDef{}, false
}

func pow10(n int) *big.Rat {
	p := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(abs(n))), nil)
	r := new(big.Rat).SetInt(p)
	if n < 0 {
		r.Inv(r)
	}
	return r
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// convertibleUnits reports whether two units measure the same dimension.
func convertibleUnits(a, b string) bool {
	da, ok1 := unitOf(a)
	db, ok2 := unitOf(b)
	return ok1 && ok2 && da.dims == db.dims
}

// sameUnit reports whether two unit strings name the same unit.
func sameUnit(a, b string) bool {
	if a == b {
		return true
	}
	if ca, ok := calendarUnits[a]; ok {
		a = ca
	}
	if cb, ok := calendarUnits[b]; ok {
		b = cb
	}
	return a == b
}

// convert returns q's value in unit u, or false when the units differ in
// dimension or are unknown.
func (q Quantity) convert(u string) (Decimal, bool) {
	if sameUnit(q.Unit, u) {
		return q.Value, true
	}
	from, ok1 := unitOf(q.Unit)
	to, ok2 := unitOf(u)
	if !ok1 || !ok2 || from.dims != to.dims {
		return Decimal{}, false
	}
	if from.dims == (dims{0, 0, 0, 1}) && (q.Unit == "Cel" || u == "Cel" || q.Unit == "[degF]" || u == "[degF]") {
		return Decimal{}, false // temperatures with offsets are not converted
	}
	r := new(big.Rat).Mul(q.Value.Rat(), from.factor)
	r.Quo(r, to.factor)
	scale := q.Value.scale
	if s, ok := terminatingScale(r); ok {
		scale = max(scale, s)
	} else {
		scale = max(scale, maxDivScale)
	}
	return Decimal{r: r, scale: scale}, true
}

// compareQuantities orders a and b; ok is false when they cannot be compared.
func compareQuantities(a, b Quantity) (int, bool) {
	bv, ok := b.convert(a.Unit)
	if !ok {
		return 0, false
	}
	return a.Value.cmp(bv), true
}

// equivalentQuantities compares at the lesser precision of the two.
func equivalentQuantities(a, b Quantity) bool {
	bv, ok := b.convert(a.Unit)
	if !ok {
		return false
	}
	n := min(a.Value.scale, b.Value.scale)
	return a.Value.round(n).cmp(bv.round(n)) == 0
}

// mulUnits and divUnits build the unit of a product or quotient.
func mulUnits(a, b string) string {
	a, b = ucumUnit(a), ucumUnit(b)
	switch {
	case a == "1":
		return b
	case b == "1":
		return a
	}
	return a + "." + b
}

func divUnits(a, b string) string {
	a, b = ucumUnit(a), ucumUnit(b)
	switch {
	case a == b:
		return "1"
	case b == "1":
		return a
	}
	if strings.ContainsAny(b, "./") {
		b = "(" + b + ")"
	}
	return a + "/" + b
}

func ucumUnit(u string) string {
	if c, ok := calendarUnits[u]; ok {
		if x, ok := ucumForCalendar[c]; ok {
			return x
		}
	}
	if u == "" {
		return "1"
	}
	return u
}
