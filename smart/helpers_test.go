package smart_test

import (
	"encoding/base64"
	"slices"
	"strings"
)

func jwkB64(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

// sameScopes compares scope strings as sets.
func sameScopes(got any, want string) bool {
	g, _ := got.(string)
	a, b := strings.Fields(g), strings.Fields(want)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
