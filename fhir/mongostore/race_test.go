//go:build race

package mongostore

// raceEnabled: FerretDB under the race detector is ~10x slower; long tests
// shrink.
const raceEnabled = true
