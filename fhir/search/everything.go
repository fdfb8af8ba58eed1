package search

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/fhirhub/fhirhub/fhir"
)

// EverythingIncludes are the types $everything adds when the compartment's
// resources refer to them.
var EverythingIncludes = []string{"Device", "Location", "Medication", "Organization", "Practitioner", "PractitionerRole"}

// everythingParams are the parameters $everything understands.
var everythingParams = map[string]bool{"start": true, "end": true, "_since": true, "_type": true, "_count": true,
	"_cursor": true, "_format": true, "_pretty": true}

// everythingCursor is the position a next link carries: the compartment
// type reached and, unless the page starts at the type's beginning, the
// backend cursor of the last resource shown in it.
type everythingCursor struct {
	Type string  `json:"t"`
	At   *Cursor `json:"a,omitempty"`
}

// token writes the position as an opaque _cursor value ("e" for everything,
// so a search's cursor is not taken for one).
func (c everythingCursor) token() string {
	b, _ := json.Marshal(c)
	return "e" + base64.RawURLEncoding.EncodeToString(b)
}

// everything is one parsed $everything request.
type everything struct {
	patient    string // "" for every patient
	start, end string
	// startAt and endAt bound the care dates in Unix milliseconds: the
	// beginning of start and the end of end (at their precision).
	startAt, endAt int64
	since          string
	types          map[string]bool // nil: every type
	count          int
	cursor         *everythingCursor
	warnings       []fhir.Issue
}

func (ev *everything) wants(typ string) bool { return ev.types == nil || ev.types[typ] }

// Everything runs Patient/[id]/$everything (patientID "" for the type-level
// Patient/$everything; http://hl7.org/fhir/OperationDefinition/Patient-everything)
// and returns one page. A missing or deleted patient is a 404; malformed
// parameters are a 400 naming the parameter. strict refuses unknown
// parameters, which are otherwise reported as warnings.
//
// A page holds, as matches, the resources of the Patient compartment in a
// fixed order: the Patient type first (the patient itself, and patients
// that link to it), then the other compartment types by name, each in the
// search order (type, id). The page is filled type after type with the
// backend's cursor paging; the next link carries the type reached and the
// backend cursor within it, so it stays correct while writes happen (a
// resource written behind the position is not shown; nothing is shown twice
// or skipped). As included resources the page adds what its matches refer
// to among EverythingIncludes (one level).
//
// Parameters:
//   - start, end: care dates. A compartment type with a search parameter
//     named "date" (Observation.effective, Encounter.period, …) is filtered on
//     it: the date must overlap [start, end] (at their precision); a resource of
//     such a type without a date is kept, and types without a "date"
//     parameter (Condition, MedicationStatement, …) are never filtered: only
//     what is known to lie outside the range is left out. The Patient and the
//     included resources are never filtered by date.
//   - _since: meta.lastUpdated ≥ the instant, on the matches (the Patient
//     included); the referenced resources are added whatever their age.
//   - _type: the resource types returned, matches and included alike (the
//     Patient too). Referenced resources are found from the matches shown,
//     so _type=Practitioner alone returns nothing.
//   - _count: matches per page (the engine's default and maximum apply).
//
// Without a patient id (Patient/$everything) every Patient is a match and
// the compartment types hold every resource that refers, through a
// compartment parameter, to an existing Patient (a chain to Patient, so
// each resource appears once however many patients it names).
//
// limit, when not nil, confines matches and included resources alike to
// what the caller may see (types it lets nothing of are left out).
func (e *Engine) Everything(ctx context.Context, patientID string, params url.Values, strict bool, limit Limit) (*Outcome, error) {
	comps, err := e.compartments()
	if err != nil {
		return nil, err
	}
	ev, err := e.parseEverything(patientID, params, strict)
	if err != nil {
		return nil, err
	}
	if patientID != "" {
		if !fhir.ValidID(patientID) {
			return nil, fhir.NotFound("Patient/%s is not a valid id, so it does not exist", patientID)
		}
		r, err := e.Store.Read(ctx, "Patient", patientID)
		switch {
		case errors.Is(err, fhir.ErrNotFound):
			return nil, fhir.NotFound("Patient/%s does not exist", patientID)
		case err != nil:
			return nil, fhir.Internal(err, "search: $everything: read Patient/%s", patientID)
		case r.Deleted():
			return nil, fhir.NotFound("Patient/%s was deleted (version %d)", patientID, r.Version)
		}
	}
	types := e.everythingTypes(comps["Patient"], ev)
	restrict := map[string]*Clause{}
	if limit != nil {
		kept := types[:0:0]
		for _, t := range types {
			c, ok, err := limit.Restrict(ctx, t)
			if err != nil {
				return nil, err
			}
			if ok {
				kept = append(kept, t)
				restrict[t] = c
			}
		}
		types = kept
	}
	out := &Outcome{Query: &Query{Type: "Patient", Count: ev.count}, Total: -1, Warnings: ev.warnings}

	i := 0
	var after *Cursor
	if ev.cursor != nil {
		i = slices.Index(types, ev.cursor.Type)
		if i < 0 {
			return nil, fhir.Invalid("_cursor", "the page position names %s, which this request does not return", ev.cursor.Type)
		}
		after = ev.cursor.At
	}
	queries := map[string]*Query{}
	query := func(typ string) (*Query, error) {
		if q, ok := queries[typ]; ok {
			return q, nil
		}
		q, err := e.everythingQuery(typ, comps["Patient"][typ], ev)
		if q != nil {
			q.Clauses = appendRestriction(q.Clauses, restrict[typ])
		}
		queries[typ] = q
		return q, err
	}
	run := func(typ string, page Page) (*Result, error) {
		q, err := query(typ)
		if err != nil || q == nil {
			return &Result{}, err
		}
		res, err := e.Backend.Search(ctx, q, page)
		if err != nil {
			if fhir.AsError(err) != nil {
				return nil, err
			}
			return nil, fhir.Internal(err, "search: $everything: search %s", typ)
		}
		return res, nil
	}
	for ; i < len(types); i++ {
		if len(out.Matches) == ev.count {
			// The page is full at a type boundary: a next link only if
			// some later type has something, starting there.
			for ; i < len(types); i++ {
				res, err := run(types[i], Page{Count: 1})
				if err != nil {
					return nil, err
				}
				if len(res.Resources) > 0 {
					out.Next = everythingCursor{Type: types[i]}.token()
					break
				}
			}
			break
		}
		res, err := run(types[i], Page{Count: ev.count - len(out.Matches), After: after})
		if err != nil {
			return nil, err
		}
		after = nil
		out.Matches = append(out.Matches, res.Resources...)
		if res.More && len(res.Cursors) > 0 {
			last := res.Cursors[len(res.Cursors)-1]
			out.Next = everythingCursor{Type: types[i], At: &last}.token()
			break
		}
	}
	if err := e.everythingIncludes(ctx, ev, out, limit); err != nil {
		return nil, err
	}
	return out, nil
}

// compartments returns the compartment definitions, loading the official
// ones on first use (as CompartmentSearch does).
func (e *Engine) compartments() (Compartments, error) {
	e.compOnce.Do(func() {
		if e.Compartments == nil {
			e.Compartments, e.compErr = LoadCompartments()
		}
	})
	if e.compErr != nil {
		return nil, fhir.Internal(e.compErr, "search: load the compartment definitions")
	}
	return e.Compartments, nil
}

// parseEverything reads and checks the parameters.
func (e *Engine) parseEverything(patientID string, params url.Values, strict bool) (*everything, error) {
	ev := &everything{patient: patientID}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if everythingParams[k] {
			continue
		}
		msg := "the parameter " + strconv.Quote(k) + " is not a parameter of $everything (start, end, _since, _type, _count)"
		if strict {
			return nil, fhir.Invalid(k, "%s", msg)
		}
		ev.warnings = append(ev.warnings, fhir.Issue{Severity: fhir.SeverityWarning, Code: fhir.IssueNotSupported,
			Diagnostics: msg + "; it was ignored", Expression: []string{k}})
	}
	last := func(k string) string {
		vs := params[k]
		if len(vs) == 0 {
			return ""
		}
		return strings.TrimSpace(vs[len(vs)-1])
	}
	for _, p := range []struct {
		name string
		dst  *string
		at   *int64
	}{{"start", &ev.start, &ev.startAt}, {"end", &ev.end, &ev.endAt}, {"_since", &ev.since, nil}} {
		v := last(p.name)
		if v == "" {
			continue
		}
		lo, hi, err := fhir.DateRange(v)
		if err != nil {
			diag := err.Error()
			if fe := fhir.AsError(err); fe != nil && len(fe.Issues) > 0 {
				diag = fe.Issues[0].Diagnostics
			}
			return nil, fhir.Invalid(p.name, "%s=%s: %s", p.name, v, diag)
		}
		*p.dst = v
		switch p.name {
		case "start":
			*p.at = lo.UnixMilli()
		case "end":
			*p.at = hi.UnixMilli()
		}
	}
	if ev.start != "" && ev.end != "" && ev.startAt >= ev.endAt {
		return nil, fhir.Invalid("end", "end=%s is before start=%s", ev.end, ev.start)
	}
	for _, v := range params["_type"] {
		for _, t := range strings.Split(v, ",") {
			if t = strings.TrimSpace(t); t == "" {
				continue
			}
			if _, ok := e.Registry.byTypeHas(t); !ok {
				return nil, fhir.Invalid("_type", "_type=%s: %q is not a resource type", v, t)
			}
			if ev.types == nil {
				ev.types = map[string]bool{}
			}
			ev.types[t] = true
		}
	}
	def, max := e.DefaultCount, e.MaxCount
	if def <= 0 {
		def = 20
	}
	if max <= 0 {
		max = 1000
	}
	ev.count = def
	if v := last("_count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, fhir.Invalid("_count", "_count=%s is not a positive whole number", v)
		}
		ev.count = min(n, max)
	}
	if v := last("_cursor"); v != "" {
		var ec everythingCursor
		b, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(v, "e"))
		if !strings.HasPrefix(v, "e") || err != nil || json.Unmarshal(b, &ec) != nil || ec.Type == "" || (ec.At != nil && ec.At.ID == "") {
			return nil, fhir.Invalid("_cursor", "the page position %q was not made by this server", v)
		}
		ev.cursor = &ec
	}
	return ev, nil
}

// everythingTypes lists the types to page through: Patient first, then the
// other compartment types by name, less those _type leaves out.
func (e *Engine) everythingTypes(comp map[string][]string, ev *everything) []string {
	types := []string{"Patient"}
	var rest []string
	for t := range comp {
		if _, ok := e.Registry.byTypeHas(t); ok && t != "Patient" && ev.wants(t) {
			rest = append(rest, t)
		}
	}
	sort.Strings(rest)
	return append(types, rest...)
}

// everythingQuery builds the query of one compartment type; nil when the
// request returns nothing of it.
func (e *Engine) everythingQuery(typ string, codes []string, ev *everything) (*Query, error) {
	if !ev.wants(typ) {
		return nil, nil
	}
	q := &Query{Type: typ}
	// Membership of the compartment.
	var or []Clause
	if ev.patient != "" {
		ref := Value{Raw: "Patient/" + ev.patient, RefType: "Patient", RefID: ev.patient}
		if typ == "Patient" {
			c, err := e.clauseOf(typ, "_id", ev.patient)
			if err != nil {
				return nil, err
			}
			or = append(or, c)
		}
		for _, code := range codes {
			if p, ok := e.Registry.Lookup(typ, code); ok && p.Type == TypeReference {
				or = append(or, Clause{Name: code, Param: p, Values: []Value{ref}})
			}
		}
	} else if typ != "Patient" { // every Patient is in the type-level result
		for _, code := range codes {
			p, ok := e.Registry.Lookup(typ, code)
			if !ok || p.Type != TypeReference || (len(p.Targets) > 0 && !contains(p.Targets, "Patient")) {
				continue
			}
			// Refers through code to a Patient that exists.
			c, err := e.clauseOf(typ, code+":Patient._id:missing", "false")
			if err != nil {
				return nil, err
			}
			or = append(or, c)
		}
	}
	if len(or) > 0 {
		name := "Patient"
		if ev.patient != "" {
			name += "/" + ev.patient
		}
		q.Clauses = append(q.Clauses, Clause{Name: name, Or: or})
	} else if ev.patient != "" || typ != "Patient" {
		return nil, nil // no parameter of typ can name a Patient
	}
	if ev.since != "" {
		c, err := e.clauseOf(typ, "_lastUpdated", "ge"+ev.since)
		if err != nil {
			return nil, err
		}
		q.Clauses = append(q.Clauses, c)
	}
	// Care dates: the type's "date" parameter overlaps [start, end), or the
	// resource has none. (ge and le would not do: ge is gt or eq, so a
	// period that ends on the start day but began before it would be left
	// out.) The bounds are written as the values whose gt and lt compare
	// the right ends: the millisecond before start, and the one at end.
	if p, ok := e.Registry.Lookup(typ, "date"); ok && p.Type == TypeDate && typ != "Patient" {
		missing := Clause{Name: "date:missing", Param: p, Modifier: "missing", Values: []Value{{Raw: "true", Str: "true"}}}
		if ev.start != "" { // ends after start begins
			v := Value{Raw: "gt" + ev.start, Prefix: PrefixGt, Start: ev.startAt - 1, End: ev.startAt}
			q.Clauses = append(q.Clauses, Clause{Name: "date", Or: []Clause{{Name: "date", Param: p, Values: []Value{v}}, missing}})
		}
		if ev.end != "" { // begins before end ends
			v := Value{Raw: "lt" + ev.end, Prefix: PrefixLt, Start: ev.endAt, End: ev.endAt + 1}
			q.Clauses = append(q.Clauses, Clause{Name: "date", Or: []Clause{{Name: "date", Param: p, Values: []Value{v}}, missing}})
		}
	}
	return q, nil
}

// clauseOf parses one key=value of typ into a clause.
func (e *Engine) clauseOf(typ, key, value string) (Clause, error) {
	c, err := e.Registry.parseClause(typ, key, value)
	if err != nil {
		return Clause{}, fhir.Internal(err, "search: $everything: build %s?%s=%s", typ, key, value)
	}
	return c, nil
}

// everythingIncludes adds what the page's matches refer to among
// EverythingIncludes (and _type), one level, each once, at most
// MaxIncluded.
func (e *Engine) everythingIncludes(ctx context.Context, ev *everything, out *Outcome, limit Limit) error {
	maxInc := e.MaxIncluded
	if maxInc <= 0 {
		maxInc = 1000
	}
	targets := map[string]bool{}
	for _, t := range EverythingIncludes {
		if ev.wants(t) {
			targets[t] = true
		}
	}
	if len(targets) == 0 || len(out.Matches) == 0 {
		return nil
	}
	have := map[string]bool{}
	var order []string
	byType := map[string][]fhir.Resource{}
	for _, r := range out.Matches {
		have[r.Type+"/"+r.ID] = true
		if _, ok := byType[r.Type]; !ok {
			order = append(order, r.Type)
		}
		byType[r.Type] = append(byType[r.Type], r)
	}
	for _, typ := range order {
		refs, err := e.references(byType[typ], Include{Source: typ, Wildcard: true})
		if err != nil {
			return err
		}
		for _, ref := range refs {
			key := ref[0] + "/" + ref[1]
			if !targets[ref[0]] || have[key] {
				continue
			}
			have[key] = true
			if len(out.Included) >= maxInc {
				out.Warnings = append(out.Warnings, fhir.Issue{Severity: fhir.SeverityWarning, Code: fhir.IssueTooLong,
					Diagnostics: "the page's resources refer to more than " + itoa(maxInc) + " resources; the rest were left out"})
				return nil
			}
			r, ok, err := e.include(ctx, limit, ref[0], ref[1])
			if err != nil {
				return err
			}
			if !ok {
				continue // a dangling reference (or one the caller may not see) includes nothing
			}
			out.Included = append(out.Included, *r)
		}
	}
	return nil
}
