package rest

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/fhirhub/fhirhub/fhir"
	"github.com/fhirhub/fhirhub/fhir/search"
	"github.com/fhirhub/fhirhub/smart"
	"github.com/labstack/echo/v4"
)

// SMART authorization: every request under /fhir (but the
// CapabilityStatement and the SMART configuration) carries a bearer token,
// which the Verifier turns into a *smart.Access; each handler then asks
// what the token allows for the types it touches:
//
//   - permit: may the token use a permission on a type at all (403 if not);
//   - the guard's restriction: which resources of the type, as a search
//     clause (the rules of the token, OR-ed; each a compartment AND a
//     granular filter). Searches carry it inside the query (search.Limit);
//     reads, vreads and history check each version with search.Match (a
//     resource outside is 404); writes check the new content and the
//     version replaced in fhir.Service.Authorize (403).

// smartConfigPath is served outside this handler, without a token.
const smartConfigPath = BasePath + "/.well-known/smart-configuration"

// authenticatedKey marks a context whose Access this server has verified:
// the requests a Bundle dispatches to the handler inherit it, so their
// token is neither verified again nor passed on.
type authenticatedKey struct{}

// guardKey carries the request's *guard.
type guardKey struct{}

// authenticate is the middleware that verifies the bearer token.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.Verifier == nil {
			return next(c)
		}
		r := c.Request()
		ctx := r.Context()
		if ctx.Value(authenticatedKey{}) != nil {
			return next(c) // a Bundle entry: the outer request's Access holds
		}
		if (r.Method == http.MethodGet || r.Method == http.MethodHead) && c.Path() == BasePath+"/metadata" {
			return next(c)
		}
		if r.URL.Path == smartConfigPath {
			return next(c)
		}
		h := r.Header.Get("Authorization")
		if h == "" {
			return fhir.Unauthorized(`Bearer realm="fhir"`, "this server needs an access token: send Authorization: Bearer <token> (see %s for how to get one)", smartConfigPath)
		}
		scheme, token, _ := strings.Cut(h, " ")
		token = strings.TrimSpace(token)
		if !strings.EqualFold(scheme, "Bearer") || token == "" || strings.ContainsAny(token, " \t") {
			return invalidToken("the Authorization header is not \"Bearer <token>\"")
		}
		a, err := s.Verifier.Verify(ctx, token)
		if err != nil || a == nil {
			msg := "the access token is not valid"
			if err != nil {
				msg = err.Error()
			}
			return invalidToken(msg)
		}
		ctx = context.WithValue(smart.WithAccess(ctx, a), authenticatedKey{}, true)
		ctx = context.WithValue(ctx, guardKey{}, &guard{s: s, a: a})
		c.SetRequest(r.WithContext(ctx))
		return next(c)
	}
}

// invalidToken is the 401 of RFC 6750 for a token that was sent but is not
// good; msg goes into error_description (the Verifier's errors never echo
// the token).
func invalidToken(msg string) error {
	desc := strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < 0x20 || r > 0x7e { // RFC 6750: a quoted string of printable ASCII
			return '\''
		}
		return r
	}, msg)
	return fhir.Unauthorized(`Bearer realm="fhir", error="invalid_token", error_description="`+desc+`"`, "the access token was refused: %s", msg)
}

// guard answers what a request's token allows, caching each type's
// restriction for the request (a Bundle's entries share it).
type guard struct {
	s     *Server
	a     *smart.Access
	mu    sync.Mutex
	cache map[guardEntry]restriction
}

type guardEntry struct {
	typ  string
	perm smart.Perms
}

// restriction is what the token may touch of a type: ok false nothing;
// c nil everything; else the resources matching c.
type restriction struct {
	c  *search.Clause
	ok bool
}

// guardFrom returns the request's guard; nil when authorization is off
// (the context carries no Access). A context with an Access that this
// server did not verify (a caller of the handler that authenticates
// itself) gets a guard of its own, uncached.
func (s *Server) guardFrom(ctx context.Context) *guard {
	if g, ok := ctx.Value(guardKey{}).(*guard); ok {
		return g
	}
	if a := smart.AccessFrom(ctx); a != nil {
		return &guard{s: s, a: a}
	}
	return nil
}

// patientShared are the types outside the Patient compartment that patient/
// scopes may read and search whole: those $everything returns alongside the
// compartment (practitioners, organizations, locations, medications and
// devices a patient's record refers to). Other types outside the
// compartment (Binary, Bundle, ValueSet, …) are not available to patient/
// scopes at all.
var patientShared = search.EverythingIncludes

// restrict works out the restriction of typ for perm.
func (g *guard) restrict(ctx context.Context, typ string, perm smart.Perms) (restriction, error) {
	key := guardEntry{typ, perm}
	g.mu.Lock()
	defer g.mu.Unlock()
	if r, ok := g.cache[key]; ok {
		return r, nil
	}
	r, err := g.build(ctx, typ, perm)
	if err != nil {
		return restriction{}, err
	}
	if g.cache == nil {
		g.cache = map[guardEntry]restriction{}
	}
	g.cache[key] = r
	return r, nil
}

func (g *guard) build(ctx context.Context, typ string, perm smart.Perms) (restriction, error) {
	var alts []search.Clause
	for _, rule := range g.a.Rules(typ, perm) {
		if rule.Unrestricted() {
			return restriction{ok: true}, nil
		}
		if g.s.Search == nil {
			continue // no matcher or query to restrict with: the rule grants nothing
		}
		var parts []search.Clause
		if rule.Patient != "" {
			c, in, err := g.s.Search.CompartmentClause("Patient", rule.Patient, typ)
			if err != nil {
				return restriction{}, err
			}
			switch {
			case in:
				parts = append(parts, c)
			case slices.Contains(patientShared, typ) && smart.Perms(smart.PermRead|smart.PermSearch).Has(perm):
				// Shared reference data: the compartment does not restrict it.
			default:
				continue // outside the compartment: the patient/ scope grants nothing here
			}
		}
		if len(rule.Filter) > 0 {
			cs, err := g.s.Search.FilterClauses(ctx, typ, rule.Filter)
			if err != nil {
				if st := fhir.ErrorStatus(err); st >= 400 && st < 500 {
					continue // a filter this server cannot apply grants nothing
				}
				return restriction{}, err
			}
			parts = append(parts, cs...)
		}
		if len(parts) == 0 {
			return restriction{ok: true}, nil
		}
		alts = append(alts, search.Clause{Name: rule.Scope, All: parts})
	}
	switch len(alts) {
	case 0:
		return restriction{}, nil
	case 1:
		return restriction{c: &alts[0], ok: true}, nil
	}
	return restriction{c: &search.Clause{Name: "scopes", Or: alts}, ok: true}, nil
}

// Restrict makes a guard with a permission a search.Limit.
type limit struct {
	g    *guard
	perm smart.Perms
}

func (l limit) Restrict(ctx context.Context, typ string) (*search.Clause, bool, error) {
	r, err := l.g.restrict(ctx, typ, l.perm)
	return r.c, r.ok, err
}

// searchLimit is the search.Limit of the request for perm; nil when
// authorization is off.
func (s *Server) searchLimit(ctx context.Context, perm smart.Perms) search.Limit {
	g := s.guardFrom(ctx)
	if g == nil {
		return nil
	}
	return limit{g, perm}
}

// permVerb names a permission in messages.
func permVerb(p smart.Perms) string {
	switch p {
	case smart.PermCreate:
		return "create"
	case smart.PermRead:
		return "read"
	case smart.PermUpdate:
		return "update"
	case smart.PermDelete:
		return "delete"
	case smart.PermSearch:
		return "search"
	}
	return p.String()
}

// permit checks that the request's token may use perm on some resources of
// typ (403 naming the interaction and the scope needed if not). Unknown
// types pass: the interaction answers 404 for them.
func (s *Server) permit(ctx context.Context, typ string, perm smart.Perms, interaction string) error {
	g := s.guardFrom(ctx)
	if g == nil || (s.Service.Validator != nil && !s.Service.Validator.KnownType(typ)) {
		return nil
	}
	r, err := g.restrict(ctx, typ, perm)
	if err != nil || r.ok {
		return err
	}
	return g.forbidden(typ, perm, interaction)
}

func (g *guard) forbidden(typ string, perm smart.Perms, interaction string) error {
	p := perm.String()
	msg := interaction + " on " + typ + " needs a scope granting " + permVerb(perm) + " (" + p + ") on " + typ +
		", such as user/" + typ + "." + p + ", system/" + typ + "." + p
	if slices.Contains(patientShared, typ) || typ == "Patient" || g.inCompartment(typ) {
		msg += " or patient/" + typ + "." + p + " (with a launch patient)"
	}
	msg += "; the token grants none"
	for _, sc := range g.a.Scopes {
		if sc.Context == smart.ContextPatient && (sc.Type == "*" || sc.Type == typ) && sc.Perms.Has(perm) && g.a.Patient == "" {
			msg += " (its patient/ scopes do not apply: it has no launch patient)"
			break
		}
	}
	return fhir.Forbidden("%s", msg)
}

func (g *guard) inCompartment(typ string) bool {
	if g.s.Search == nil {
		return false
	}
	_, in, err := g.s.Search.CompartmentClause("Patient", "x", typ)
	return err == nil && in
}

// visibleTo says whether the token may use perm on the version r (a
// deletion is judged by the version it deleted).
func (s *Server) visibleTo(ctx context.Context, r fhir.Resource, perm smart.Perms) (bool, error) {
	g := s.guardFrom(ctx)
	if g == nil {
		return true, nil
	}
	rs, err := g.restrict(ctx, r.Type, perm)
	if err != nil || !rs.ok {
		return false, err
	}
	if rs.c == nil {
		return true, nil
	}
	if r.Deleted() {
		if r.Version <= 1 {
			return false, nil
		}
		prev, err := s.Service.Store.VRead(ctx, r.Type, r.ID, r.Version-1)
		if err != nil {
			if errors.Is(err, fhir.ErrNotFound) {
				return false, nil
			}
			return false, fhir.Internal(err, "rest: read %s/%s version %d", r.Type, r.ID, r.Version-1)
		}
		r = prev
	}
	es, err := s.Search.EntriesOf(r)
	if err != nil {
		return false, err
	}
	return s.matches(ctx, rs.c, r.Type, r.ID, es), nil
}

func (s *Server) matches(ctx context.Context, c *search.Clause, typ, id string, es []fhir.IndexEntry) bool {
	return search.Match([]search.Clause{*c}, typ, id, es, s.Search.Resolver(ctx))
}

// authorizeWrite is the fhir.Service.Authorize of a server with a Verifier:
// the token must allow the write's permission on its type, the new content
// must satisfy one of its rules, and so must the version an update or
// delete replaces.
func (s *Server) authorizeWrite(ctx context.Context, w fhir.Write, current *fhir.Resource) error {
	g := s.guardFrom(ctx)
	if g == nil {
		return nil
	}
	perm, verb := smart.PermUpdate, "update"
	switch w.Op {
	case fhir.OpCreate:
		perm, verb = smart.PermCreate, "create"
	case fhir.OpDelete:
		perm, verb = smart.PermDelete, "delete"
	}
	rs, err := g.restrict(ctx, w.Type, perm)
	if err != nil {
		return err
	}
	if !rs.ok {
		return g.forbidden(w.Type, perm, verb)
	}
	if rs.c == nil {
		return nil
	}
	if w.Op != fhir.OpDelete && !s.matches(ctx, rs.c, w.Type, w.ID, w.Index) {
		what := w.Type + "/" + w.ID
		if w.Op == fhir.OpCreate && current == nil && w.Version == 1 {
			what = "the new " + w.Type
		}
		return fhir.Forbidden("%s is outside what the token may %s (%s): the %s is refused", what, permVerb(perm), ruleText(g.a, w.Type, perm), verb)
	}
	if current != nil && w.Op != fhir.OpCreate {
		ok, err := s.visibleTo(ctx, *current, perm)
		if err != nil {
			return err
		}
		if !ok {
			return fhir.Forbidden("the stored %s/%s is outside what the token may %s (%s): the %s is refused", w.Type, w.ID, permVerb(perm), ruleText(g.a, w.Type, perm), verb)
		}
	}
	return nil
}

// ruleText lists the rules of a token for messages.
func ruleText(a *smart.Access, typ string, perm smart.Perms) string {
	var parts []string
	for _, r := range a.Rules(typ, perm) {
		parts = append(parts, r.String())
	}
	return strings.Join(parts, "; or ")
}

// mustSee answers 404, as for a resource that does not exist, when the
// token may not use perm on r: a token learns nothing of what it may not see.
func (s *Server) mustSee(ctx context.Context, r fhir.Resource, perm smart.Perms, notFound func() error) error {
	ok, err := s.visibleTo(ctx, r, perm)
	if err != nil {
		return err
	}
	if !ok {
		return notFound()
	}
	return nil
}

// requireAdmin checks that the token may do anything to every resource of
// types (all types when empty): a user/ or system/ scope granting cruds on
// * (or on each type) without a filter. $reindex rewrites the index of
// every resource, so nothing less will do.
func (s *Server) requireAdmin(ctx context.Context, types []string, what string) error {
	g := s.guardFrom(ctx)
	if g == nil {
		return nil
	}
	if len(types) == 0 {
		types = []string{"*"}
	}
	for _, typ := range types {
		ok := false
		for _, sc := range g.a.Scopes {
			if sc.Context != smart.ContextPatient && (sc.Type == "*" || sc.Type == typ) && sc.Perms == smart.PermAll && len(sc.Filter) == 0 {
				ok = true
				break
			}
		}
		if !ok {
			t := typ
			return fhir.Forbidden("%s needs a user/ or system/ scope granting every permission on %s without a filter, such as system/%s.cruds (or user/%s.*)", what, t, t, t)
		}
	}
	return nil
}

// existingVisible refuses (403) to return the resource a conditional
// create's criteria matched when the token may not read it: the create
// writes nothing, and answering with the resource would show it.
func (s *Server) existingVisible(ctx context.Context, r fhir.Resource, what string) error {
	ok, err := s.visibleTo(ctx, r, smart.PermRead)
	if err != nil || ok {
		return err
	}
	return fhir.Forbidden("the %s criteria match a resource this token may not read; nothing was created", what)
}

// ReadCheck returns how reads judge a version for a (a deletion by the
// version it deleted): true when the token's read rules let it through,
// exactly as a read by the token would. nil a (authorization off) allows
// everything. The check caches the token's rules per type, so one
// ReadCheck serves many versions; subscriptions use it to deliver only
// what the subscription's creator may read.
func (s *Server) ReadCheck(a *smart.Access) func(ctx context.Context, r fhir.Resource) (bool, error) {
	if a == nil {
		return func(context.Context, fhir.Resource) (bool, error) { return true, nil }
	}
	g := &guard{s: s, a: a}
	return func(ctx context.Context, r fhir.Resource) (bool, error) {
		return s.visibleTo(context.WithValue(ctx, guardKey{}, g), r, smart.PermRead)
	}
}
