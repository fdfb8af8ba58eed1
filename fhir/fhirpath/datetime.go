package fhirpath

import (
	"fmt"
	"strings"
	"time"
)

// Precision says how much of a date or time was given.
type Precision uint8

// Precisions, coarsest first.
const (
	PrecisionYear Precision = iota + 1
	PrecisionMonth
	PrecisionDay
	PrecisionHour
	PrecisionMinute
	PrecisionSecond
	PrecisionMillisecond // any fraction of a second
)

// dtKind tells a Date, a DateTime and a Time apart.
type dtKind uint8

const (
	kindDate dtKind = iota
	kindDateTime
	kindTime
)

// DateTime is a FHIRPath Date, DateTime or Time value with its precision and,
// for DateTimes, its time-zone offset when one was given.
type DateTime struct {
	kind      dtKind
	Precision Precision
	Year      int
	Month     int // 1-12
	Day       int
	Hour      int
	Minute    int
	Second    int
	Nanos     int
	fracLen   int  // digits written after the seconds' point
	HasZone   bool // an offset (or Z) was given
	Offset    int  // minutes east of UTC
}

// IsDate, IsTime report the kind of value; a DateTime is neither.
func (d DateTime) IsDate() bool { return d.kind == kindDate }
func (d DateTime) IsTime() bool { return d.kind == kindTime }

func (d DateTime) sysType() *Type {
	switch d.kind {
	case kindDate:
		return typeDate
	case kindTime:
		return typeTime
	}
	return typeDateTime
}

// parseDate parses YYYY[-MM[-DD]].
func parseDate(s string) (DateTime, bool) {
	d := DateTime{kind: kindDate}
	rest, ok := d.parseDatePart(s)
	return d, ok && rest == ""
}

// parseDateTime parses a date, optionally followed by T and a partial time
// and a zone ("2015T", "2015-02-04T14:34:28.123+10:00").
func parseDateTime(s string) (DateTime, bool) {
	d := DateTime{kind: kindDateTime}
	rest, ok := d.parseDatePart(s)
	if !ok {
		return d, false
	}
	if rest == "" {
		return d, true
	}
	if rest[0] != 'T' || d.Precision != PrecisionDay && rest != "T" {
		return d, false
	}
	rest = rest[1:]
	if rest == "" {
		return d, true
	}
	rest, ok = d.parseTimePart(rest)
	if !ok {
		return d, false
	}
	if rest == "" {
		return d, true
	}
	return d, d.parseZone(rest)
}

// parseTime parses hh[:mm[:ss[.fff]]].
func parseTime(s string) (DateTime, bool) {
	d := DateTime{kind: kindTime}
	rest, ok := d.parseTimePart(s)
	return d, ok && rest == ""
}

func digits(s string, n int) (int, bool) {
	if len(s) < n {
		return 0, false
	}
	v := 0
	for i := 0; i < n; i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

func (d *DateTime) parseDatePart(s string) (string, bool) {
	var ok bool
	if d.Year, ok = digits(s, 4); !ok {
		return s, false
	}
	d.Precision = PrecisionYear
	s = s[4:]
	if len(s) < 3 || s[0] != '-' {
		return s, true
	}
	if d.Month, ok = digits(s[1:], 2); !ok || d.Month < 1 || d.Month > 12 {
		return s, false
	}
	d.Precision = PrecisionMonth
	s = s[3:]
	if len(s) < 3 || s[0] != '-' {
		return s, true
	}
	if d.Day, ok = digits(s[1:], 2); !ok || d.Day < 1 || d.Day > daysIn(d.Year, d.Month) {
		return s, false
	}
	d.Precision = PrecisionDay
	return s[3:], true
}

func (d *DateTime) parseTimePart(s string) (string, bool) {
	var ok bool
	if d.Hour, ok = digits(s, 2); !ok || d.Hour > 23 {
		return s, false
	}
	d.Precision = PrecisionHour
	s = s[2:]
	if len(s) < 3 || s[0] != ':' {
		return s, true
	}
	if d.Minute, ok = digits(s[1:], 2); !ok || d.Minute > 59 {
		return s, false
	}
	d.Precision = PrecisionMinute
	s = s[3:]
	if len(s) < 3 || s[0] != ':' {
		return s, true
	}
	if d.Second, ok = digits(s[1:], 2); !ok || d.Second > 60 {
		return s, false
	}
	d.Precision = PrecisionSecond
	s = s[3:]
	if len(s) > 1 && s[0] == '.' {
		n := 1
		for n < len(s) && s[n] >= '0' && s[n] <= '9' {
			n++
		}
		if n == 1 {
			return s, false
		}
		frac := s[1:n]
		d.fracLen = len(frac)
		for len(frac) < 9 {
			frac += "0"
		}
		d.Nanos, _ = digits(frac[:9], 9)
		d.Precision = PrecisionMillisecond
		s = s[n:]
	}
	return s, true
}

func (d *DateTime) parseZone(s string) bool {
	if s == "Z" {
		d.HasZone = true
		return true
	}
	if len(s) != 6 || (s[0] != '+' && s[0] != '-') || s[3] != ':' {
		return false
	}
	h, ok1 := digits(s[1:], 2)
	m, ok2 := digits(s[4:], 2)
	if !ok1 || !ok2 || h > 14 || m > 59 {
		return false
	}
	d.HasZone = true
	d.Offset = h*60 + m
	if s[0] == '-' {
		d.Offset = -d.Offset
	}
	return true
}

func daysIn(year, month int) int {
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// String formats the value as FHIR writes it (without the @ of a literal).
func (d DateTime) String() string {
	var b strings.Builder
	if d.kind != kindTime {
		fmt.Fprintf(&b, "%04d", d.Year)
		if d.Precision >= PrecisionMonth {
			fmt.Fprintf(&b, "-%02d", d.Month)
		}
		if d.Precision >= PrecisionDay {
			fmt.Fprintf(&b, "-%02d", d.Day)
		}
		if d.kind == kindDate || d.Precision <= PrecisionDay {
			return b.String()
		}
		b.WriteByte('T')
	}
	fmt.Fprintf(&b, "%02d", d.Hour)
	if d.Precision >= PrecisionMinute {
		fmt.Fprintf(&b, ":%02d", d.Minute)
	}
	if d.Precision >= PrecisionSecond {
		fmt.Fprintf(&b, ":%02d", d.Second)
	}
	if d.Precision >= PrecisionMillisecond {
		n := max(d.fracLen, 3)
		frac := fmt.Sprintf("%09d", d.Nanos)
		b.WriteByte('.')
		b.WriteString(frac[:min(n, 9)])
	}
	if d.kind == kindDateTime && d.HasZone {
		if d.Offset == 0 {
			b.WriteByte('Z')
		} else {
			o := d.Offset
			sign := byte('+')
			if o < 0 {
				sign, o = '-', -o
			}
			fmt.Fprintf(&b, "%c%02d:%02d", sign, o/60, o%60)
		}
	}
	return b.String()
}

// Time returns the moment the value starts at (missing parts are their
// lowest value; without a zone, UTC is assumed).
func (d DateTime) Time() time.Time {
	month, day := max(d.Month, 1), max(d.Day, 1)
	loc := time.UTC
	if d.HasZone && d.Offset != 0 {
		loc = time.FixedZone("", d.Offset*60)
	}
	if d.kind == kindTime {
		return time.Date(0, 1, 1, d.Hour, d.Minute, d.Second, d.Nanos, loc)
	}
	return time.Date(d.Year, time.Month(month), day, d.Hour, d.Minute, d.Second, d.Nanos, loc)
}

// fromTime copies the fields of t into d, keeping d's kind and precision.
func (d DateTime) fromTime(t time.Time) DateTime {
	d.Year, d.Day, d.Hour, d.Minute, d.Second, d.Nanos = t.Year(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond()
	d.Month = int(t.Month())
	return d
}

// level maps a precision to the unit compared at that step; seconds and
// their fraction are one step, as FHIRPath says.
func level(p Precision) Precision {
	if p == PrecisionMillisecond {
		return PrecisionSecond
	}
	return p
}

// compareDateTime orders two values of compatible kinds. ok is false when the
// result is unknown: the values agree as far as the coarser of them goes but
// their precisions differ, or one has a zone and the other not.
func compareDateTime(a, b DateTime) (c int, ok bool) {
	if (a.kind == kindTime) != (b.kind == kindTime) {
		return 0, false
	}
	if a.kind != kindTime && a.Precision >= PrecisionHour && b.Precision >= PrecisionHour {
		if a.HasZone != b.HasZone {
			return 0, false
		}
		if a.HasZone && a.Offset != b.Offset {
			a = a.fromTime(a.Time().UTC())
			b = b.fromTime(b.Time().UTC())
		}
	}
	pa, pb := level(a.Precision), level(b.Precision)
	fa := [...]int{a.Year, a.Month, a.Day, a.Hour, a.Minute, a.Second*1e9 + a.Nanos}
	fb := [...]int{b.Year, b.Month, b.Day, b.Hour, b.Minute, b.Second*1e9 + b.Nanos}
	start := PrecisionYear
	if a.kind == kindTime {
		start = PrecisionHour
	}
	for p := start; p <= min(pa, pb); p++ {
		x, y := fa[p-1], fb[p-1]
		if x != y {
			if x < y {
				return -1, true
			}
			return 1, true
		}
	}
	if pa != pb {
		return 0, false
	}
	return 0, true
}

// addDuration adds n of a calendar unit ("year", "month", "week", "day",
// "hour", "minute", "second", "millisecond").
func (d DateTime) addDuration(unit string, n int64) (DateTime, bool) {
	t := d.Time()
	switch unit {
	case "year":
		y := d.Year + int(n)
		day := d.Day
		if d.Precision >= PrecisionDay {
			day = min(day, daysIn(y, max(d.Month, 1)))
		}
		d.Year, d.Day = y, day
		return d, true
	case "month":
		m := d.Year*12 + (max(d.Month, 1) - 1) + int(n)
		d.Year, d.Month = m/12, m%12+1
		if m < 0 {
			return d, false
		}
		if d.Precision >= PrecisionDay {
			d.Day = min(d.Day, daysIn(d.Year, d.Month))
		}
		return d, true
	case "week":
		t = t.AddDate(0, 0, int(7*n))
	case "day":
		t = t.AddDate(0, 0, int(n))
	case "hour":
		t = t.Add(time.Duration(n) * time.Hour)
	case "minute":
		t = t.Add(time.Duration(n) * time.Minute)
	case "second":
		t = t.Add(time.Duration(n) * time.Second)
	case "millisecond":
		t = t.Add(time.Duration(n) * time.Millisecond)
	default:
		return d, false
	}
	return d.fromTime(t), true
}

// now returns the current moment as a DateTime with millisecond precision.
func nowDateTime(t time.Time) DateTime {
	_, off := t.Zone()
	d := DateTime{kind: kindDateTime, Precision: PrecisionMillisecond, HasZone: true, Offset: off / 60, fracLen: 3}
	d = d.fromTime(t)
	d.Nanos = d.Nanos / 1e6 * 1e6
	return d
}
