package fhirpath

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"html"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// stringInput returns the input's only item as a string; a non-string item
// is an error.
func stringInput(in Collection, fn string) (string, bool, error) {
	it, ok, err := singleton(in)
	if !ok || err != nil || it.value == nil {
		return "", false, err // a primitive with only extensions has no value
	}
	s, isStr := it.system().(string)
	if !isStr {
		return "", false, evalErr("%s() needs a string, got %s", fn, describe(it))
	}
	return s, true, nil
}

// stringFunc registers a function of a string input and string arguments;
// it returns empty when the input or any argument is empty.
func stringFunc(name string, nargs int, f func(s string, args []string) (Collection, error)) {
	register(name, nargs, nargs, func(e *env, n *funcNode, in Collection) (Collection, error) {
		s, ok, err := stringInput(in, name)
		if !ok || err != nil {
			return nil, err
		}
		args := make([]string, nargs)
		for i := range args {
			a, ok, err := n.stringArg(e, i)
			if !ok || err != nil {
				return nil, err
			}
			args[i] = a
		}
		return f(s, args)
	})
}

// runeIndex converts a byte offset into a character offset.
func runeIndex(s string, byteOff int) int { return utf8.RuneCountInString(s[:byteOff]) }

var regexCache sync.Map // pattern -> *regexp.Regexp

func compileRegex(pattern string) (*regexp.Regexp, error) {
	if re, ok := regexCache.Load(pattern); ok {
		return re.(*regexp.Regexp), nil
	}
	re, err := regexp.Compile("(?s)" + pattern)
	if err != nil {
		return nil, evalErr("invalid regular expression %q: %v", pattern, err)
	}
	regexCache.Store(pattern, re)
	return re, nil
}

var htmlEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&#39;")

func init() {
	stringFunc("indexOf", 1, func(s string, a []string) (Collection, error) {
		i := strings.Index(s, a[0])
		if i >= 0 {
			i = runeIndex(s, i)
		}
		return Collection{sysItem(int64(i))}, nil
	})
	register("substring", 1, 2, func(e *env, n *funcNode, in Collection) (Collection, error) {
		s, ok, err := stringInput(in, "substring")
		if !ok || err != nil {
			return nil, err
		}
		start, ok, err := n.intArg(e, 0)
		if !ok || err != nil {
			return nil, err
		}
		r := []rune(s)
		if start < 0 || start >= int64(len(r)) {
			return nil, nil
		}
		end := int64(len(r))
		if len(n.args) == 2 {
			l, ok, err := n.intArg(e, 1)
			if err != nil {
				return nil, err
			}
			if ok {
				end = min(start+max(l, 0), end)
			}
		}
		return Collection{sysItem(string(r[start:end]))}, nil
	})
	stringFunc("startsWith", 1, func(s string, a []string) (Collection, error) {
		return boolColl(strings.HasPrefix(s, a[0])), nil
	})
	stringFunc("endsWith", 1, func(s string, a []string) (Collection, error) {
		return boolColl(strings.HasSuffix(s, a[0])), nil
	})
	stringFunc("contains", 1, func(s string, a []string) (Collection, error) {
		return boolColl(strings.Contains(s, a[0])), nil
	})
	stringFunc("upper", 0, func(s string, _ []string) (Collection, error) {
		return Collection{sysItem(strings.ToUpper(s))}, nil
	})
	stringFunc("lower", 0, func(s string, _ []string) (Collection, error) {
		return Collection{sysItem(strings.ToLower(s))}, nil
	})
	stringFunc("replace", 2, func(s string, a []string) (Collection, error) {
		return Collection{sysItem(strings.ReplaceAll(s, a[0], a[1]))}, nil
	})
	stringFunc("matches", 1, func(s string, a []string) (Collection, error) {
		re, err := compileRegex(a[0])
		if err != nil {
			return nil, err
		}
		return boolColl(re.MatchString(s)), nil
	})
	stringFunc("matchesFull", 1, func(s string, a []string) (Collection, error) {
		re, err := compileRegex("^(?:" + a[0] + ")$")
		if err != nil {
			return nil, err
		}
		return boolColl(re.MatchString(s)), nil
	})
	stringFunc("replaceMatches", 2, func(s string, a []string) (Collection, error) {
		if a[0] == "" {
			return Collection{sysItem(s)}, nil
		}
		re, err := compileRegex(a[0])
		if err != nil {
			return nil, err
		}
		return Collection{sysItem(re.ReplaceAllString(s, a[1]))}, nil
	})
	stringFunc("length", 0, func(s string, _ []string) (Collection, error) {
		return Collection{sysItem(int64(utf8.RuneCountInString(s)))}, nil
	})
	stringFunc("toChars", 0, func(s string, _ []string) (Collection, error) {
		out := make(Collection, 0, len(s))
		for _, r := range s {
			out = append(out, sysItem(string(r)))
		}
		return out, nil
	})
	stringFunc("trim", 0, func(s string, _ []string) (Collection, error) {
		return Collection{sysItem(strings.TrimSpace(s))}, nil
	})
	stringFunc("split", 1, func(s string, a []string) (Collection, error) {
		parts := strings.Split(s, a[0])
		out := make(Collection, len(parts))
		for i, p := range parts {
			out[i] = sysItem(p)
		}
		return out, nil
	})
	register("join", 0, 1, func(e *env, n *funcNode, in Collection) (Collection, error) {
		sep := ""
		if len(n.args) == 1 {
			s, ok, err := n.stringArg(e, 0)
			if err != nil {
				return nil, err
			}
			if ok {
				sep = s
			}
		}
		parts := make([]string, 0, len(in))
		for _, it := range in {
			s, ok := it.system().(string)
			if !ok {
				return nil, evalErr("join() needs strings, got %s", describe(it))
			}
			parts = append(parts, s)
		}
		return Collection{sysItem(strings.Join(parts, sep))}, nil
	})
	stringFunc("encode", 1, func(s string, a []string) (Collection, error) {
		switch a[0] {
		case "base64":
			return Collection{sysItem(base64.StdEncoding.EncodeToString([]byte(s)))}, nil
		case "urlbase64":
			return Collection{sysItem(base64.URLEncoding.EncodeToString([]byte(s)))}, nil
		case "hex":
			return Collection{sysItem(hex.EncodeToString([]byte(s)))}, nil
		}
		return nil, evalErr("encode(): unknown encoding %q", a[0])
	})
	stringFunc("decode", 1, func(s string, a []string) (Collection, error) {
		var b []byte
		var err error
		switch a[0] {
		case "base64":
			b, err = base64.StdEncoding.DecodeString(s)
		case "urlbase64":
			b, err = base64.URLEncoding.DecodeString(s)
		case "hex":
			b, err = hex.DecodeString(s)
		default:
			return nil, evalErr("decode(): unknown encoding %q", a[0])
		}
		if err != nil {
			return nil, nil
		}
		return Collection{sysItem(string(b))}, nil
	})
	stringFunc("escape", 1, func(s string, a []string) (Collection, error) {
		switch a[0] {
		case "html":
			return Collection{sysItem(htmlEscaper.Replace(s))}, nil
		case "json":
			b, _ := json.Marshal(s)
			out := string(b[1 : len(b)-1])
			out = strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&").Replace(out)
			return Collection{sysItem(out)}, nil
		}
		return nil, evalErr("escape(): unknown target %q", a[0])
	})
	stringFunc("unescape", 1, func(s string, a []string) (Collection, error) {
		switch a[0] {
		case "html":
			return Collection{sysItem(html.UnescapeString(s))}, nil
		case "json":
			out, ok := unescapeJSON(s)
			if !ok {
				return nil, nil
			}
			return Collection{sysItem(out)}, nil
		}
		return nil, evalErr("unescape(): unknown target %q", a[0])
	})
}

// unescapeJSON undoes JSON string escapes; other characters stay as they are.
func unescapeJSON(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		i++
		if i >= len(s) {
			return "", false
		}
		switch s[i] {
		case '"', '\\', '/':
			b.WriteByte(s[i])
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			if i+5 > len(s) {
				return "", false
			}
			r, err := strconv.ParseUint(s[i+1:i+5], 16, 32)
			if err != nil {
				return "", false
			}
			b.WriteRune(rune(r))
			i += 4
		default:
			return "", false
		}
	}
	return b.String(), true
}
