//go:build race

package sqlitestore_test

// raceEnabled: the race detector slows SQLite ~10x; long tests shrink.
const raceEnabled = true
