package fhirpath

import (
	"regexp"
	"strconv"
	"strings"
)

// A converter turns a System value into another type; ok is false when it
// cannot.
type converter func(v any) (any, bool)

var (
	integerPattern  = regexp.MustCompile(`^[+-]?[0-9]+$`)
	decimalPattern  = regexp.MustCompile(`^[+-]?[0-9]+(\.[0-9]+)?$`)
	quantityPattern = regexp.MustCompile(`^([+-]?[0-9]+(?:\.[0-9]+)?)\s*(?:'([^']+)'|([a-zA-Z]+))?$`)
)

var converters = map[string]converter{
	"Boolean":  toBoolean,
	"Integer":  toInteger,
	"Decimal":  toDecimal,
	"String":   toStringValue,
	"Date":     toDate,
	"DateTime": toDateTime,
	"Time":     toTime,
	"Quantity": toQuantity,
}

func toBoolean(v any) (any, bool) {
	switch x := v.(type) {
	case bool:
		return x, true
	case int64:
		switch x {
		case 0:
			return false, true
		case 1:
			return true, true
		}
	case Decimal:
		switch {
		case x.Rat().Cmp(decimalFromInt(0).Rat()) == 0:
			return false, true
		case x.Rat().Cmp(decimalFromInt(1).Rat()) == 0:
			return true, true
		}
	case string:
		switch strings.ToLower(x) {
		case "true", "t", "yes", "y", "1", "1.0":
			return true, true
		case "false", "f", "no", "n", "0", "0.0":
			return false, true
		}
	}
	return nil, false
}

func toInteger(v any) (any, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case bool:
		if x {
			return int64(1), true
		}
		return int64(0), true
	case string:
		if integerPattern.MatchString(x) {
			if i, err := strconv.ParseInt(strings.TrimPrefix(x, "+"), 10, 64); err == nil {
				return i, true
			}
		}
	}
	return nil, false
}

func toDecimal(v any) (any, bool) {
	switch x := v.(type) {
	case int64:
		return decimalFromInt(x), true
	case Decimal:
		return x, true
	case bool:
		if x {
			return decimalFromInt(1), true
		}
		return decimalFromInt(0), true
	case string:
		if decimalPattern.MatchString(x) {
			return ParseDecimal(strings.TrimPrefix(x, "+"))
		}
	}
	return nil, false
}

func toStringValue(v any) (any, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case bool:
		return strconv.FormatBool(x), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case Decimal:
		return x.String(), true
	case DateTime:
		return x.String(), true
	case Quantity:
		return x.String(), true
	}
	return nil, false
}

func toDate(v any) (any, bool) {
	switch x := v.(type) {
	case DateTime:
		if x.kind == kindTime {
			return nil, false
		}
		x.kind = kindDate
		x.Precision = min(x.Precision, PrecisionDay)
		x.HasZone, x.Offset = false, 0
		return x, true
	case string:
		if d, ok := parseDate(x); ok {
			return d, true
		}
		if d, ok := parseDateTime(x); ok {
			return toDate(d)
		}
	}
	return nil, false
}

func toDateTime(v any) (any, bool) {
	switch x := v.(type) {
	case DateTime:
		if x.kind == kindTime {
			return nil, false
		}
		x.kind = kindDateTime
		return x, true
	case string:
		if d, ok := parseDateTime(x); ok {
			return d, true
		}
	}
	return nil, false
}

func toTime(v any) (any, bool) {
	switch x := v.(type) {
	case DateTime:
		if x.kind == kindTime {
			return x, true
		}
	case string:
		if d, ok := parseTime(strings.TrimPrefix(x, "T")); ok {
			return d, true
		}
	}
	return nil, false
}

func toQuantity(v any) (any, bool) {
	switch x := v.(type) {
	case Quantity:
		return x, true
	case int64:
		return Quantity{Value: decimalFromInt(x), Unit: "1"}, true
	case Decimal:
		return Quantity{Value: x, Unit: "1"}, true
	case bool:
		d, _ := toDecimal(x)
		return Quantity{Value: d.(Decimal), Unit: "1"}, true
	case string:
		m := quantityPattern.FindStringSubmatch(strings.TrimSpace(x))
		if m == nil {
			return nil, false
		}
		d, ok := ParseDecimal(strings.TrimPrefix(m[1], "+"))
		if !ok {
			return nil, false
		}
		unit := "1"
		switch {
		case m[2] != "":
			unit = m[2]
		case m[3] != "":
			if _, ok := calendarUnits[m[3]]; !ok {
				return nil, false
			}
			unit = m[3]
		}
		return Quantity{Value: d, Unit: unit}, true
	}
	return nil, false
}

func init() {
	for name, conv := range converters {
		conv := conv
		to, convertsTo := "to"+name, "convertsTo"+name
		maxArgs := 0
		if name == "Quantity" {
			maxArgs = 1
		}
		register(to, 0, maxArgs, func(e *env, n *funcNode, in Collection) (Collection, error) {
			it, ok, err := singleton(in)
			if !ok || err != nil {
				return nil, err
			}
			v, ok := conv(it.system())
			if !ok {
				return nil, nil
			}
			if len(n.args) == 1 {
				unit, ok, err := n.stringArg(e, 0)
				if err != nil || !ok {
					return nil, err
				}
				q := v.(Quantity)
				d, ok := q.convert(unit)
				if !ok {
					return nil, nil
				}
				v = Quantity{Value: d, Unit: unit}
			}
			return Collection{sysItem(v)}, nil
		})
		register(convertsTo, 0, maxArgs, func(e *env, n *funcNode, in Collection) (Collection, error) {
			it, ok, err := singleton(in)
			if !ok || err != nil {
				return nil, err
			}
			v, ok := conv(it.system())
			if ok && len(n.args) == 1 {
				unit, uok, err := n.stringArg(e, 0)
				if err != nil || !uok {
					return nil, err
				}
				_, ok = v.(Quantity).convert(unit)
			}
			return boolColl(ok), nil
		})
	}
}
