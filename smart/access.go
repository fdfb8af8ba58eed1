package smart

import (
	"context"
	"time"
)

// Access is what a verified access token grants: its scopes and launch
// context. A nil *Access means authorization is off: everything is allowed.
type Access struct {
	Grant
	ClientID  string
	Subject   string // the user (sub), or the client for backend services
	FHIRUser  string // "Practitioner/123", "Patient/9"; empty when none
	Patient   string // the launch patient's id; patient/ scopes need it
	Encounter string // the launch encounter's id
	TokenID   string // jti
	Expires   time.Time
}

// Rules lists how the token may use perm on resources of typ: an empty
// list means not at all. A patient/ scope yields a rule limited to the
// launch patient's compartment (and none without a launch patient); user/
// and system/ scopes yield rules limited only by their filters. When some
// rule is unrestricted, Rules returns just that one.
func (a *Access) Rules(typ string, perm Perms) []Rule {
	if a == nil {
		return []Rule{{}}
	}
	var rules []Rule
	for _, s := range a.Scopes {
		if (s.Type != "*" && s.Type != typ) || !s.Perms.Has(perm) {
			continue
		}
		r := Rule{Filter: s.Filter, Scope: s.Raw}
		if s.Filter != nil && s.Type == "*" {
			continue // a filter names a type's parameters: meaningless on *
		}
		if s.Context == ContextPatient {
			if a.Patient == "" {
				continue
			}
			r.Patient = a.Patient
		}
		if r.Unrestricted() {
			return []Rule{r}
		}
		rules = append(rules, r)
	}
	return rules
}

// Allows says whether the token may use perm on some resources of typ.
func (a *Access) Allows(typ string, perm Perms) bool { return len(a.Rules(typ, perm)) > 0 }

// Unrestricted says whether the token may use perm on every resource of typ.
func (a *Access) Unrestricted(typ string, perm Perms) bool {
	rs := a.Rules(typ, perm)
	return len(rs) == 1 && rs[0].Unrestricted()
}

type accessKey struct{}

// WithAccess returns ctx carrying a.
func WithAccess(ctx context.Context, a *Access) context.Context {
	return context.WithValue(ctx, accessKey{}, a)
}

// AccessFrom returns the Access of ctx; nil when authorization is off (or
// the request is the server's own).
func AccessFrom(ctx context.Context) *Access {
	a, _ := ctx.Value(accessKey{}).(*Access)
	return a
}

// Verifier checks a bearer token and returns what it grants. Its errors
// are shown to the client in WWW-Authenticate: they must not echo the token.
type Verifier interface {
	Verify(ctx context.Context, token string) (*Access, error)
}
