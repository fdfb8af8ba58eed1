//go:build !race

package rest_test

// raceEnabled reports whether the tests run with the race detector, which
// makes the long data loads too slow to run.
const raceEnabled = false
