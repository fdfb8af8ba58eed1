package fhirpath

import (
	"math/big"
)

// maxBoundaryPrecision is the largest precision lowBoundary() and
// highBoundary() accept for decimals.
const maxBoundaryPrecision = 28

func init() {
	for _, high := range []bool{false, true} {
		high := high
		name := "lowBoundary"
		if high {
			name = "highBoundary"
		}
		register(name, 0, 1, func(e *env, n *funcNode, in Collection) (Collection, error) {
			it, ok, err := singleton(in)
			if !ok || err != nil {
				return nil, err
			}
			prec, hasPrec := int64(-1), false
			if len(n.args) == 1 {
				p, ok, err := n.intArg(e, 0)
				if err != nil || !ok {
					return nil, err
				}
				prec, hasPrec = p, true
			}
			switch v := it.system().(type) {
			case int64:
				return decimalBoundary(decimalFromInt(v), prec, hasPrec, high)
			case Decimal:
				return decimalBoundary(v, prec, hasPrec, high)
			case Quantity:
				c, err := decimalBoundary(v.Value, prec, hasPrec, high)
				if len(c) == 0 || err != nil {
					return nil, err
				}
				return Collection{sysItem(Quantity{Value: c[0].value.(Decimal), Unit: v.Unit})}, nil
			case DateTime:
				d, ok := dateBoundary(v, prec, hasPrec, high)
				if !ok {
					return nil, nil
				}
				return Collection{sysItem(d)}, nil
			}
			return nil, nil
		})
	}
	register("precision", 0, 0, func(_ *env, _ *funcNode, in Collection) (Collection, error) {
		it, ok, err := singleton(in)
		if !ok || err != nil {
			return nil, err
		}
		switch v := it.system().(type) {
		case int64:
			return Collection{sysItem(int64(0))}, nil
		case Decimal:
			return Collection{sysItem(int64(v.scale))}, nil
		case DateTime:
			return Collection{sysItem(int64(precisionDigits(v)))}, nil
		}
		return nil, nil
	})
	register("comparable", 1, 1, func(e *env, n *funcNode, in Collection) (Collection, error) {
		it, ok, err := singleton(in)
		if !ok || err != nil {
			return nil, err
		}
		other, err := n.arg(e, 0)
		if err != nil {
			return nil, err
		}
		o, ok, err := singleton(other)
		if !ok || err != nil {
			return nil, err
		}
		a, ok1 := it.system().(Quantity)
		b, ok2 := o.system().(Quantity)
		if !ok1 || !ok2 {
			return nil, evalErr("comparable() needs quantities")
		}
		return boolColl(convertibleUnits(a.Unit, b.Unit)), nil
	})
}

// decimalBoundary returns the least or greatest value d may stand for, given
// its precision, to prec digits (8 by default).
func decimalBoundary(d Decimal, prec int64, hasPrec, high bool) (Collection, error) {
	if !hasPrec {
		prec = 8
	}
	if prec < 0 || prec > maxBoundaryPrecision {
		return nil, nil
	}
	p := int(prec)
	// Half a unit of the last digit kept: of d's own last digit when the
	// result is as precise as d or more, else of the result's.
	unitScale := d.scale
	if p < d.scale {
		unitScale = p
	}
	half := new(big.Rat).Quo(pow10(-unitScale), big.NewRat(2, 1))
	b := new(big.Rat).Set(d.Rat())
	if high {
		b.Add(b, half)
	} else {
		b.Sub(b, half)
	}
	var r *big.Rat
	switch {
	case p < d.scale:
		r = scaleRound(b, p, truncateMode)
	case high:
		r = scaleRound(b, p, ceilingMode)
	default:
		r = scaleRound(b, p, floorMode)
	}
	return Collection{sysItem(Decimal{r: r, scale: p})}, nil
}

type roundMode uint8

const (
	truncateMode roundMode = iota
	floorMode
	ceilingMode
)

// scaleRound rounds r to p decimal places.
func scaleRound(r *big.Rat, p int, mode roundMode) *big.Rat {
	f := pow10(p)
	x := new(big.Rat).Mul(r, f)
	q, m := new(big.Int).QuoRem(x.Num(), x.Denom(), new(big.Int))
	if m.Sign() != 0 {
		switch {
		case mode == floorMode && x.Sign() < 0:
			q.Sub(q, big.NewInt(1))
		case mode == ceilingMode && x.Sign() > 0:
			q.Add(q, big.NewInt(1))
		}
	}
	return new(big.Rat).Quo(new(big.Rat).SetInt(q), f)
}

// precisionDigits counts the digits of a date or time as FHIRPath does:
// 4 for a year, 17 for a dateTime to the millisecond, 9 for a time to the
// millisecond.
func precisionDigits(d DateTime) int {
	if d.kind == kindTime {
		return [...]int{PrecisionHour: 2, PrecisionMinute: 4, PrecisionSecond: 6, PrecisionMillisecond: 9}[d.Precision]
	}
	return [...]int{PrecisionYear: 4, PrecisionMonth: 6, PrecisionDay: 8, PrecisionHour: 10, PrecisionMinute: 12, PrecisionSecond: 14, PrecisionMillisecond: 17}[d.Precision]
}

// dateBoundary fills in the parts d lacks with their least or greatest
// values, to the precision given in digits (17 for a dateTime, 9 for a time,
// by default). A dateTime without a zone takes the earliest (+14:00) or
// latest (-12:00) one.
func dateBoundary(d DateTime, prec int64, hasPrec, high bool) (DateTime, bool) {
	var target Precision
	if d.kind == kindTime {
		if !hasPrec {
			prec = 9
		}
		m := map[int64]Precision{2: PrecisionHour, 4: PrecisionMinute, 6: PrecisionSecond, 9: PrecisionMillisecond}
		var ok bool
		if target, ok = m[prec]; !ok {
			return d, false
		}
	} else {
		if !hasPrec {
			prec = 17
			if d.kind == kindDate {
				prec = 8
			}
		}
		m := map[int64]Precision{4: PrecisionYear, 6: PrecisionMonth, 8: PrecisionDay, 10: PrecisionHour, 12: PrecisionMinute, 14: PrecisionSecond, 17: PrecisionMillisecond}
		var ok bool
		if target, ok = m[prec]; !ok {
			return d, false
		}
	}
	if d.Precision == PrecisionHour {
		d.Precision = PrecisionMinute // an hour alone stands for hh:00
	}
	if d.Precision < PrecisionMonth {
		d.Month = pick(high, 12, 1)
	}
	if d.Precision < PrecisionDay {
		d.Day = pick(high, daysIn(d.Year, d.Month), 1)
	}
	if d.Precision < PrecisionHour {
		d.Hour = pick(high, 23, 0)
	}
	if d.Precision < PrecisionMinute {
		d.Minute = pick(high, 59, 0)
	}
	if d.Precision < PrecisionSecond {
		d.Second = pick(high, 59, 0)
	}
	if d.Precision < PrecisionMillisecond {
		d.Nanos = pick(high, 999_000_000, 0)
		d.fracLen = 3
	}
	if d.kind != kindTime && !d.HasZone && target >= PrecisionHour {
		d.HasZone = true
		d.Offset = pick(high, -12*60, 14*60)
	}
	if target >= PrecisionHour && d.kind == kindDate {
		d.kind = kindDateTime
	}
	d.Precision = target
	return d, true
}

func pick(high bool, hi, lo int) int {
	if high {
		return hi
	}
	return lo
}
