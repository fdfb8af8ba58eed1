package fhirpath

import (
	"math"
	"math/big"
	"strconv"
)

// numberInput returns the input's only item as an Integer, a Decimal or a
// Quantity.
func numberInput(in Collection, fn string) (any, bool, error) {
	it, ok, err := singleton(in)
	if !ok || err != nil || it.value == nil {
		return nil, false, err
	}
	switch v := it.system().(type) {
	case int64, Decimal, Quantity:
		return v, true, nil
	}
	return nil, false, evalErr("%s() needs a number, got %s", fn, describe(it))
}

// floatResult turns a float into a Decimal, or empty when it is not finite.
func floatResult(f float64) (Collection, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, nil
	}
	d, ok := ParseDecimal(strconv.FormatFloat(f, 'f', -1, 64))
	if !ok {
		return nil, nil
	}
	if d.scale > maxDivScale {
		d = d.round(maxDivScale)
	}
	return Collection{sysItem(d)}, nil
}

func toFloat(v any) float64 {
	switch x := v.(type) {
	case int64:
		return float64(x)
	case Decimal:
		return x.Float64()
	}
	return math.NaN()
}

func intOrDecimal(i *big.Int) Item {
	if i.IsInt64() {
		return sysItem(i.Int64())
	}
	return sysItem(Decimal{r: new(big.Rat).SetInt(i)})
}

// maxRoundPrecision bounds round()'s argument (the work grows with it).
const maxRoundPrecision = 100

func init() {
	register("abs", 0, 0, func(_ *env, _ *funcNode, in Collection) (Collection, error) {
		v, ok, err := numberInput(in, "abs")
		if !ok || err != nil {
			return nil, err
		}
		switch x := v.(type) {
		case int64:
			if x < 0 {
				x = -x
			}
			return Collection{sysItem(x)}, nil
		case Decimal:
			return Collection{sysItem(Decimal{r: new(big.Rat).Abs(x.Rat()), scale: x.scale})}, nil
		case Quantity:
			return Collection{sysItem(Quantity{Value: Decimal{r: new(big.Rat).Abs(x.Value.Rat()), scale: x.Value.scale}, Unit: x.Unit})}, nil
		}
		return nil, nil
	})
	rounding := map[string]func(Decimal) *big.Int{
		"ceiling":  Decimal.ceiling,
		"floor":    Decimal.floor,
		"truncate": Decimal.truncate,
	}
	for name, f := range rounding {
		name, f := name, f
		register(name, 0, 0, func(_ *env, _ *funcNode, in Collection) (Collection, error) {
			v, ok, err := numberInput(in, name)
			if !ok || err != nil {
				return nil, err
			}
			switch x := v.(type) {
			case int64:
				return Collection{sysItem(x)}, nil
			case Decimal:
				return Collection{intOrDecimal(f(x))}, nil
			}
			return nil, evalErr("%s() needs a number", name)
		})
	}
	register("round", 0, 1, func(e *env, n *funcNode, in Collection) (Collection, error) {
		v, ok, err := numberInput(in, "round")
		if !ok || err != nil {
			return nil, err
		}
		prec := int64(0)
		if len(n.args) == 1 {
			p, ok, err := n.intArg(e, 0)
			if err != nil || !ok {
				return nil, err
			}
			if p < 0 || p > maxRoundPrecision {
				return nil, evalErr("round() needs a precision from 0 to %d", maxRoundPrecision)
			}
			prec = p
		}
		switch x := v.(type) {
		case int64:
			return Collection{sysItem(decimalFromInt(x).round(int(prec)))}, nil
		case Decimal:
			return Collection{sysItem(x.round(int(prec)))}, nil
		}
		return nil, evalErr("round() needs a number")
	})
	floatFuncs := map[string]func(float64) float64{
		"exp":  math.Exp,
		"ln":   math.Log,
		"sqrt": math.Sqrt,
	}
	for name, f := range floatFuncs {
		name, f := name, f
		register(name, 0, 0, func(_ *env, _ *funcNode, in Collection) (Collection, error) {
			v, ok, err := numberInput(in, name)
			if !ok || err != nil {
				return nil, err
			}
			return floatResult(f(toFloat(v)))
		})
	}
	register("log", 1, 1, func(e *env, n *funcNode, in Collection) (Collection, error) {
		v, ok, err := numberInput(in, "log")
		if !ok || err != nil {
			return nil, err
		}
		c, err := n.arg(e, 0)
		if err != nil {
			return nil, err
		}
		b, ok, err := numberInput(c, "log")
		if !ok || err != nil {
			return nil, err
		}
		return floatResult(math.Log(toFloat(v)) / math.Log(toFloat(b)))
	})
	register("power", 1, 1, func(e *env, n *funcNode, in Collection) (Collection, error) {
		v, ok, err := numberInput(in, "power")
		if !ok || err != nil {
			return nil, err
		}
		c, err := n.arg(e, 0)
		if err != nil {
			return nil, err
		}
		p, ok, err := numberInput(c, "power")
		if !ok || err != nil {
			return nil, err
		}
		if x, isInt := v.(int64); isInt {
			if y, isInt := p.(int64); isInt && y >= 0 && y <= 64 {
				r := new(big.Int).Exp(big.NewInt(x), big.NewInt(y), nil)
				if !r.IsInt64() {
					return nil, nil // out of the Integer range
				}
				return Collection{sysItem(r.Int64())}, nil
			}
		}
		return floatResult(math.Pow(toFloat(v), toFloat(p)))
	})
}
