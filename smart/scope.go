// Package smart is SMART on FHIR: the scope model, what a token grants
// (Access), the built-in authorization server and token verification.
package smart

import (
	"fmt"
	"net/url"
	"strings"
)

// Perms is a set of SMART v2 permissions.
type Perms uint8

// The SMART v2 permissions, in the order scopes write them (c r u d s).
const (
	PermCreate Perms = 1 << iota
	PermRead
	PermUpdate
	PermDelete
	PermSearch

	PermAll = PermCreate | PermRead | PermUpdate | PermDelete | PermSearch
)

const permLetters = "cruds"

// String writes p in v2 form ("rs", "cruds").
func (p Perms) String() string {
	var b strings.Builder
	for i := range len(permLetters) {
		if p&(1<<i) != 0 {
			b.WriteByte(permLetters[i])
		}
	}
	return b.String()
}

// Has says whether p includes every permission of q.
func (p Perms) Has(q Perms) bool { return p&q == q }

// The contexts of resource scopes.
const (
	ContextPatient = "patient"
	ContextUser    = "user"
	ContextSystem  = "system"
)

// Scope is one resource scope: patient/Observation.rs?category=…
type Scope struct {
	Raw     string     // as granted
	Context string     // ContextPatient, ContextUser or ContextSystem
	Type    string     // a resource type, or "*"
	Perms   Perms      // v1 read is rs, write cud, * cruds
	Filter  url.Values // granular scopes' search parameters; nil when none
	V1      bool       // written in SMART v1 form (.read, .write, .*)
}

// ParseScope parses a resource scope. It returns false for anything else
// (openid, launch/patient, offline_access, …) and for malformed scopes:
// permissions out of order or repeated, an unknown context, an empty type.
func ParseScope(raw string) (Scope, bool) {
	s := Scope{Raw: raw}
	ctx, rest, ok := strings.Cut(raw, "/")
	if !ok {
		return s, false
	}
	switch ctx {
	case ContextPatient, ContextUser, ContextSystem:
		s.Context = ctx
	default:
		return s, false
	}
	rest, query, hasQuery := strings.Cut(rest, "?")
	dot := strings.LastIndexByte(rest, '.')
	if dot <= 0 {
		return s, false
	}
	s.Type, rest = rest[:dot], rest[dot+1:]
	if s.Type != "*" && !validTypeName(s.Type) {
		return s, false
	}
	switch rest {
	case "read":
		s.Perms, s.V1 = PermRead|PermSearch, true
	case "write":
		s.Perms, s.V1 = PermCreate|PermUpdate|PermDelete, true
	case "*":
		s.Perms, s.V1 = PermAll, true
	default:
		last := -1
		for i := range len(rest) {
			k := strings.IndexByte(permLetters, rest[i])
			if k <= last { // unknown (-1), repeated or out of order
				return s, false
			}
			last = k
			s.Perms |= 1 << k
		}
		if s.Perms == 0 {
			return s, false
		}
	}
	if hasQuery {
		if s.V1 || query == "" {
			return s, false
		}
		f, err := url.ParseQuery(query)
		if err != nil {
			return s, false
		}
		s.Filter = f
	}
	return s, true
}

func validTypeName(t string) bool {
	if t == "" || t[0] < 'A' || t[0] > 'Z' {
		return false
	}
	for i := range len(t) {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// Grant is a set of granted scopes: the resource scopes parsed, and the
// others (openid, fhirUser, launch, launch/patient, offline_access, …) as
// written.
type Grant struct {
	Scopes []Scope
	Other  []string
}

// ParseGrant splits a space-separated scope string. Malformed resource
// scopes are returned in bad and granted nothing.
func ParseGrant(scope string) (g Grant, bad []string) {
	for _, f := range strings.Fields(scope) {
		if s, ok := ParseScope(f); ok {
			g.Scopes = append(g.Scopes, s)
			continue
		}
		if strings.HasPrefix(f, ContextPatient+"/") || strings.HasPrefix(f, ContextUser+"/") || strings.HasPrefix(f, ContextSystem+"/") {
			bad = append(bad, f)
			continue
		}
		g.Other = append(g.Other, f)
	}
	return g, bad
}

// String writes the grant back as a scope string.
func (g Grant) String() string {
	parts := make([]string, 0, len(g.Scopes)+len(g.Other))
	for _, s := range g.Scopes {
		parts = append(parts, s.Raw)
	}
	parts = append(parts, g.Other...)
	return strings.Join(parts, " ")
}

// HasOther says whether a non-resource scope (openid, offline_access, …)
// was granted.
func (g Grant) HasOther(name string) bool {
	for _, o := range g.Other {
		if o == name {
			return true
		}
	}
	return false
}

// Rule is one way a request may touch resources of a type: every resource
// (Patient and Filter empty), or those in Patient's compartment, and/or
// those matching Filter (search parameters of the type). A resource is
// allowed when some rule lets it through.
type Rule struct {
	Patient string     // a Patient id: only that patient's compartment
	Filter  url.Values // only resources matching these search parameters
	Scope   string     // the scope the rule comes from, for messages
}

// Unrestricted says whether the rule lets every resource of the type through.
func (r Rule) Unrestricted() bool { return r.Patient == "" && len(r.Filter) == 0 }

func (r Rule) String() string {
	var parts []string
	if r.Patient != "" {
		parts = append(parts, "compartment Patient/"+r.Patient)
	}
	if len(r.Filter) > 0 {
		parts = append(parts, r.Filter.Encode())
	}
	if len(parts) == 0 {
		return "all"
	}
	return fmt.Sprintf("%s (%s)", strings.Join(parts, " and "), r.Scope)
}
