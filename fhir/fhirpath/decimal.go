package fhirpath

import (
	"math/big"
	"strings"
)

// Decimal is an exact decimal number that remembers how many digits follow
// its point (1.10 has scale 2), as FHIRPath's precision rules need.
type Decimal struct {
	r     *big.Rat
	scale int
}

// maxDivScale is the number of decimal places kept by a division whose
// quotient does not end.
const maxDivScale = 8

// ParseDecimal parses a decimal such as "-12.50" or "3" (exponents, which
// FHIR JSON allows, are accepted too).
func ParseDecimal(s string) (Decimal, bool) {
	if s == "" {
		return Decimal{}, false
	}
	body := s
	if body[0] == '-' || body[0] == '+' {
		body = body[1:]
	}
	if body == "" || body[0] == '.' || strings.HasSuffix(body, ".") {
		return Decimal{}, false
	}
	mant, exp := body, ""
	if i := strings.IndexAny(body, "eE"); i >= 0 {
		mant, exp = body[:i], body[i+1:]
		if exp == "" {
			return Decimal{}, false
		}
	}
	dot := false
	for i := 0; i < len(mant); i++ {
		c := mant[i]
		if c == '.' && !dot {
			dot = true
			continue
		}
		if c < '0' || c > '9' {
			return Decimal{}, false
		}
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return Decimal{}, false
	}
	scale := 0
	if i := strings.IndexByte(mant, '.'); i >= 0 {
		scale = len(mant) - i - 1
	}
	if exp != "" {
		e, ok := new(big.Int).SetString(strings.TrimPrefix(exp, "+"), 10)
		if !ok || !e.IsInt64() {
			return Decimal{}, false
		}
		scale -= int(e.Int64())
		if scale < 0 {
			scale = 0
		}
	}
	return Decimal{r: r, scale: scale}, true
}

func decimalFromInt(i int64) Decimal {
	return Decimal{r: new(big.Rat).SetInt64(i)}
}

func decimalFromRat(r *big.Rat, scale int) Decimal {
	return Decimal{r: r, scale: scale}
}

// Rat returns the exact value (do not modify it).
func (d Decimal) Rat() *big.Rat {
	if d.r == nil {
		return new(big.Rat)
	}
	return d.r
}

// Scale returns the number of digits after the point.
func (d Decimal) Scale() int { return d.scale }

// String formats the decimal with its scale: 1.10 stays "1.10".
func (d Decimal) String() string {
	return d.Rat().FloatString(d.scale)
}

// Float64 returns the nearest float64.
func (d Decimal) Float64() float64 {
	f, _ := d.Rat().Float64()
	return f
}

func (d Decimal) cmp(e Decimal) int { return d.Rat().Cmp(e.Rat()) }

func (d Decimal) add(e Decimal) Decimal {
	return Decimal{r: new(big.Rat).Add(d.Rat(), e.Rat()), scale: max(d.scale, e.scale)}
}

func (d Decimal) sub(e Decimal) Decimal {
	return Decimal{r: new(big.Rat).Sub(d.Rat(), e.Rat()), scale: max(d.scale, e.scale)}
}

func (d Decimal) mul(e Decimal) Decimal {
	return Decimal{r: new(big.Rat).Mul(d.Rat(), e.Rat()), scale: d.scale + e.scale}
}

func (d Decimal) neg() Decimal {
	return Decimal{r: new(big.Rat).Neg(d.Rat()), scale: d.scale}
}

// div divides; ok is false when e is zero. A quotient that ends keeps its
// exact digits; one that does not is rounded to maxDivScale places.
func (d Decimal) div(e Decimal) (Decimal, bool) {
	if e.Rat().Sign() == 0 {
		return Decimal{}, false
	}
	q := new(big.Rat).Quo(d.Rat(), e.Rat())
	if s, ok := terminatingScale(q); ok && s <= 2*maxDivScale {
		return Decimal{r: q, scale: s}, true
	}
	return Decimal{r: q, scale: maxDivScale}.round(maxDivScale), true
}

// terminatingScale returns the number of decimal places q needs, if finite.
func terminatingScale(q *big.Rat) (int, bool) {
	den := new(big.Int).Set(q.Denom())
	two, five := big.NewInt(2), big.NewInt(5)
	var m big.Int
	n2, n5 := 0, 0
	for {
		if m.Mod(den, two); m.Sign() != 0 {
			break
		}
		den.Quo(den, two)
		n2++
	}
	for {
		if m.Mod(den, five); m.Sign() != 0 {
			break
		}
		den.Quo(den, five)
		n5++
	}
	if den.Cmp(big.NewInt(1)) != 0 {
		return 0, false
	}
	return max(n2, n5), true
}

// round rounds half away from zero to n places (n >= 0).
func (d Decimal) round(n int) Decimal {
	r := d.Rat()
	p := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil)
	x := new(big.Rat).Mul(r, new(big.Rat).SetInt(p))
	num, den := x.Num(), x.Denom()
	q, m := new(big.Int).QuoRem(num, den, new(big.Int))
	// |m|*2 >= den rounds away from zero.
	m.Abs(m).Lsh(m, 1)
	if m.Cmp(den) >= 0 {
		if num.Sign() < 0 {
			q.Sub(q, big.NewInt(1))
		} else {
			q.Add(q, big.NewInt(1))
		}
	}
	return Decimal{r: new(big.Rat).SetFrac(q, p), scale: n}
}

// truncate drops the fraction.
func (d Decimal) truncate() *big.Int {
	r := d.Rat()
	return new(big.Int).Quo(r.Num(), r.Denom())
}

// floor returns the largest integer not above d.
func (d Decimal) floor() *big.Int {
	r := d.Rat()
	q, m := new(big.Int).DivMod(r.Num(), r.Denom(), new(big.Int))
	_ = m
	return q // DivMod is Euclidean: with a positive denominator this is floor
}

func (d Decimal) ceiling() *big.Int {
	f := d.floor()
	if new(big.Rat).SetInt(f).Cmp(d.Rat()) != 0 {
		f.Add(f, big.NewInt(1))
	}
	return f
}

func (d Decimal) isInt() bool { return d.Rat().IsInt() }

// equivalent compares after rounding both to the lesser scale.
func (d Decimal) equivalent(e Decimal) bool {
	n := min(d.scale, e.scale)
	return d.round(n).cmp(e.round(n)) == 0
}
