package main

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
)

// latency is a duration that prints, and writes to JSON, in milliseconds.
type latency time.Duration

func (l latency) ms() float64 { return float64(l) / float64(time.Millisecond) }

func (l latency) String() string {
	if l < latency(time.Millisecond) {
		return fmt.Sprintf("%.3fms", l.ms())
	}
	return fmt.Sprintf("%.2fms", l.ms())
}

// MarshalJSON writes the latency as milliseconds with microsecond precision.
func (l latency) MarshalJSON() ([]byte, error) {
	return strconv.AppendFloat(nil, l.ms(), 'f', 3, 64), nil
}

// percentile returns the p-th percentile (0 < p ≤ 100) of sorted by the
// nearest-rank method: the smallest value with at least p% of all values at or
// below it. It returns 0 for no values.
func percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(p * float64(n) / 100))
	return sorted[min(max(rank, 1), n)-1]
}

// median returns the middle of xs, or the mean of the two middle values for an
// even count; 0 for none. xs is left as it is.
func median[T ~int64 | ~float64](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}
