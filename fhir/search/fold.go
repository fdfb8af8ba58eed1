package search

import (
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// foldAccents removes combining marks after canonical decomposition
// ("Zoë" → "Zoe", "Müller" → "Muller").
func foldAccents(s string) []rune {
	out := make([]rune, 0, len(s))
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return []rune(s)
	}
	for _, r := range norm.NFD.String(s) {
		if unicode.Is(unicode.Mn, r) {
			continue
		}
		out = append(out, r)
	}
	return out
}
