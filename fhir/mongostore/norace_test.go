//go:build !race

package mongostore

const raceEnabled = false
