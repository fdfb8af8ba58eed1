// Package searchtest is the differential test of search: a store's Search and
// the in-memory search.Match must select the same resources. It generates
// resources with index entries (and updates and deletes some), generates
// queries across parameter types, prefixes, modifiers, chains and _has, and
// compares every page of the store's answer with the matcher's. Every
// search.Backend calls Run.
package searchtest

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fhirhub/fhirhub/fhir"
	"github.com/fhirhub/fhirhub/fhir/search"
)

// Store is what the test needs of a store.
type Store interface {
	fhir.Store
	search.Backend
}

// Options tunes the test's size.
type Options struct {
	Resources int // per type (default 40)
	Queries   int // default 400
	Seed      uint64
}

var types = []string{"Patient", "Observation", "Encounter", "Organization", "Practitioner", "Location", "ValueSet"}

// Run checks that s answers generated queries as search.Match does.
func Run(t *testing.T, s Store, opts Options) {
	if opts.Resources == 0 {
		opts.Resources = 40
	}
	if opts.Queries == 0 {
		opts.Queries = 400
	}
	if opts.Seed == 0 {
		opts.Seed = 1
	}
	reg, err := search.NewRegistry(types)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(opts.Seed, 2))
	data := generate(t, s, rng, opts.Resources)
	search.Now = func() time.Time { return time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC) }
	defer func() { search.Now = time.Now }()

	failures, nonEmpty := 0, 0
	defer func() { t.Logf("%d queries, %d with a non-empty answer", opts.Queries, nonEmpty) }()
	for i := 0; i < opts.Queries && failures < 10; i++ {
		typ, query := randomQuery(rng)
		params, _ := url.ParseQuery(query)
		q, err := reg.Parse(typ, params, true)
		if err != nil {
			t.Fatalf("generated query %s?%s does not parse: %v", typ, query, err)
		}
		want := data.match(q)
		if len(want) > 0 {
			nonEmpty++
		}
		got, err := all(s, q, 1+rng.IntN(7))
		if err != nil {
			t.Errorf("%s?%s: %v", typ, query, err)
			failures++
			continue
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s?%s:\n store   %v\n matcher %v", typ, query, got, want)
			failures++
		}
	}
	t.Run("SortAndPaging", func(t *testing.T) { testSort(t, s, reg, data) })
	t.Run("Or", func(t *testing.T) {
		subject, _ := reg.Lookup("Observation", "subject")
		encounter, _ := reg.Lookup("Observation", "encounter")
		status, _ := reg.Lookup("Observation", "status")
		for i := 0; i < 50; i++ {
			q := &search.Query{Type: "Observation", Clauses: []search.Clause{{Or: []search.Clause{
				{Param: subject, Values: []search.Value{{RefType: "Patient", RefID: fmt.Sprintf("pat%d", rng.IntN(opts.Resources))}}},
				{Param: encounter, Values: []search.Value{{RefType: "Encounter", RefID: fmt.Sprintf("enc%d", rng.IntN(opts.Resources))}}},
			}}}}
			if i%2 == 0 {
				q.Clauses = append(q.Clauses, search.Clause{Param: status, Values: []search.Value{{Code: pick(rng, statuses)}}})
			}
			got, err := all(s, q, 3)
			if err != nil {
				t.Fatal(err)
			}
			if want := data.match(q); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("or query %d: store %v, matcher %v", i, got, want)
			}
		}
	})
	t.Run("Groups", func(t *testing.T) {
		// OR-ed AND groups, as SMART rules write them: a type search with
		// untyped groups (and typed ones, of its type or another), and a
		// system search over several types with a group per type.
		for i := 0; i < max(15, opts.Queries/20); i++ {
			q := randomGroupQuery(t, rng, reg, opts.Resources)
			got, err := all(s, q, 2+rng.IntN(8))
			if err != nil {
				t.Fatalf("group query %d: %v", i, err)
			}
			if want := data.match(q); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("group query %d (%s):\n store   %v\n matcher %v", i, describe(q.Clauses), got, want)
			}
			if i%6 == 0 {
				res, err := s.Search(context.Background(), q, search.Page{Count: 2, Total: true})
				if err != nil {
					t.Fatal(err)
				}
				if want := int64(len(data.match(q))); res.Total != want {
					t.Errorf("group query %d: total %d, want %d", i, res.Total, want)
				}
			}
		}
	})
	t.Run("Total", func(t *testing.T) {
		q, _ := reg.Parse("Observation", url.Values{"status": {"final"}}, true)
		res, err := s.Search(context.Background(), q, search.Page{Count: 3, Total: true})
		if err != nil {
			t.Fatal(err)
		}
		if want := int64(len(data.match(q))); res.Total != want {
			t.Errorf("total %d, want %d", res.Total, want)
		}
	})
}

// all collects every page of q's answer with page size n, checking cursors:
// no resource twice, and paging back from the last page gives the one before.
func all(s Store, q *search.Query, n int) ([]string, error) {
	ctx := context.Background()
	var out []string
	seen := map[string]bool{}
	page := search.Page{Count: n}
	var pages [][]string
	for i := 0; i < 1000; i++ {
		res, err := s.Search(ctx, q, page)
		if err != nil {
			return nil, err
		}
		var refs []string
		for _, r := range res.Resources {
			ref := r.Type + "/" + r.ID
			if seen[ref] {
				return nil, fmt.Errorf("%s came twice while paging", ref)
			}
			seen[ref] = true
			refs = append(refs, ref)
		}
		out = append(out, refs...)
		pages = append(pages, refs)
		if !res.More || len(res.Cursors) == 0 {
			if len(pages) >= 2 && len(res.Cursors) > 0 {
				back, err := s.Search(ctx, q, search.Page{Count: n, Before: &res.Cursors[0]})
				if err != nil {
					return nil, err
				}
				var refs []string
				for _, r := range back.Resources {
					refs = append(refs, r.Type+"/"+r.ID)
				}
				if fmt.Sprint(refs) != fmt.Sprint(pages[len(pages)-2]) {
					return nil, fmt.Errorf("paging back from the last page gave %v, want %v", refs, pages[len(pages)-2])
				}
			}
			break
		}
		page.After = &res.Cursors[len(res.Cursors)-1]
	}
	sort.Strings(out)
	return out, nil
}

type resource struct {
	typ, id string
	entries []fhir.IndexEntry
}

type dataset struct {
	res map[string]*resource // current, not deleted
}

func (d *dataset) match(q *search.Query) []string {
	var out []string
	for _, r := range d.res {
		if q.Type != "" && r.typ != q.Type {
			continue
		}
		if len(q.Types) > 0 && !contains(q.Types, r.typ) {
			continue
		}
		if search.Match(q.Clauses, r.typ, r.id, r.entries, d) {
			out = append(out, r.typ+"/"+r.id)
		}
	}
	sort.Strings(out)
	return out
}

func (d *dataset) Entries(typ, id string) ([]fhir.IndexEntry, bool) {
	r, ok := d.res[typ+"/"+id]
	if !ok {
		return nil, false
	}
	return r.entries, true
}

func (d *dataset) Referrers(typ string, ref *search.Param, targetType, targetID string) [][]fhir.IndexEntry {
	var out [][]fhir.IndexEntry
	for _, r := range d.res {
		if r.typ != typ {
			continue
		}
		for _, e := range r.entries {
			if e.Param == ref.Code && e.Comp == 0 && e.RefType == targetType && e.RefID == targetID {
				out = append(out, r.entries)
				break
			}
		}
	}
	return out
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// Small value domains, so queries hit.
var (
	names     = []string{"Smith", "Smythe", "Jones", "Zoë", "Müller", "O'Brien", "de la Cruz", "Ng"}
	cities    = []string{"Boston", "Ann Arbor", "Detroit"}
	systems   = []string{"http://loinc.org", "http://snomed.info/sct", ""}
	codes     = []string{"8302-2", "8480-6", "1234", "final", "x"}
	statuses  = []string{"final", "preliminary", "amended"}
	genders   = []string{"male", "female", "other"}
	units     = []string{"cm", "kg", "mm[Hg]"}
	texts     = []string{"Body height", "Blood pressure", "Heart rate", ""}
	idTypes   = []string{"http://terminology.hl7.org/CodeSystem/v2-0203|MR", "http://terminology.hl7.org/CodeSystem/v2-0203|SS"}
	baseTime  = time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC)
	precision = []time.Duration{time.Millisecond, time.Second, 24 * time.Hour}
)

func pick[T any](rng *rand.Rand, l []T) T { return l[rng.IntN(len(l))] }

func ms(t time.Time) int64 { return t.UnixMilli() }

func randomDate(rng *rand.Rand) (int64, int64) {
	// A narrow window, so values fall on the boundaries queries use.
	t := baseTime.Add(time.Duration(rng.IntN(90*24)) * time.Hour)
	p := pick(rng, precision)
	t = t.Truncate(p)
	if rng.IntN(6) == 0 { // a period, sometimes open
		end := t.Add(time.Duration(1+rng.IntN(96)) * time.Hour)
		if rng.IntN(3) == 0 {
			return ms(t), math.MaxInt64
		}
		return ms(t), ms(end)
	}
	return ms(t), ms(t.Add(p))
}

func str(param, s string) fhir.IndexEntry {
	return fhir.IndexEntry{Param: param, Type: fhir.TypeString, Str: search.Normalize(s), Exact: s}
}

func generate(t *testing.T, s Store, rng *rand.Rand, n int) *dataset {
	d := &dataset{res: map[string]*resource{}}
	ctx := context.Background()
	id := func(typ string, i int) string { return fmt.Sprintf("%s%d", strings.ToLower(typ[:3]), i) }
	gen := func(typ string, i int) []fhir.IndexEntry {
		es := []fhir.IndexEntry{{Param: "_id", Type: fhir.TypeToken, Code: id(typ, i)}}
		tok := func(param, sys, code, text string) {
			es = append(es, fhir.IndexEntry{Param: param, Type: fhir.TypeToken, System: sys, Code: code, Text: search.Normalize(text)})
		}
		ref := func(param, rtype string, max int) {
			es = append(es, fhir.IndexEntry{Param: param, Type: fhir.TypeReference, RefType: rtype, RefID: id(rtype, rng.IntN(max))})
		}
		switch typ {
		case "Patient":
			for k := 0; k < 1+rng.IntN(2); k++ {
				nm := pick(rng, names)
				es = append(es, str("name", nm), str("family", nm))
			}
			if rng.IntN(4) > 0 {
				es = append(es, str("address-city", pick(rng, cities)))
			}
			if rng.IntN(5) > 0 {
				s, e := randomDate(rng)
				es = append(es, fhir.IndexEntry{Param: "birthdate", Type: fhir.TypeDate, Start: s, End: e})
			}
			tok("gender", "http://hl7.org/fhir/administrative-gender", pick(rng, genders), "")
			tok("active", "", fmt.Sprint(rng.IntN(2) == 0), "")
			it := pick(rng, idTypes)
			es = append(es, fhir.IndexEntry{Param: "identifier", Type: fhir.TypeToken, System: "urn:mrn", Code: fmt.Sprint(rng.IntN(20)), IDType: it})
			if rng.IntN(3) > 0 {
				ref("organization", "Organization", n)
			}
			if rng.IntN(2) == 0 {
				ref("general-practitioner", "Practitioner", n)
			}
		case "Observation":
			sys, code := pick(rng, systems), pick(rng, codes)
			tok("code", sys, code, pick(rng, texts))
			tok("status", "", pick(rng, statuses), "")
			p := id("Patient", rng.IntN(n))
			es = append(es,
				fhir.IndexEntry{Param: "subject", Type: fhir.TypeReference, RefType: "Patient", RefID: p},
				fhir.IndexEntry{Param: "patient", Type: fhir.TypeReference, RefType: "Patient", RefID: p})
			if rng.IntN(3) > 0 {
				ref("encounter", "Encounter", n)
			}
			if rng.IntN(5) > 0 {
				s, e := randomDate(rng)
				es = append(es, fhir.IndexEntry{Param: "date", Type: fhir.TypeDate, Start: s, End: e})
			}
			if rng.IntN(4) > 0 {
				v := float64(rng.IntN(41)) / 2 // 0 to 20 in halves: on precision boundaries
				u := pick(rng, units)
				es = append(es,
					fhir.IndexEntry{Param: "value-quantity", Type: fhir.TypeQuantity, Low: v, High: v, System: "http://unitsofmeasure.org", Code: u, Exact: u},
					fhir.IndexEntry{Param: "code-value-quantity", Type: fhir.TypeToken, Comp: 1, System: sys, Code: code},
					fhir.IndexEntry{Param: "code-value-quantity", Type: fhir.TypeQuantity, Comp: 2, Low: v, High: v, System: "http://unitsofmeasure.org", Code: u, Exact: u})
			}
			if rng.IntN(3) == 0 {
				es = append(es, fhir.IndexEntry{Param: "value-string", Type: fhir.TypeString, Str: search.Normalize(pick(rng, texts) + " x"), Exact: pick(rng, texts) + " x"})
			}
		case "Encounter":
			ref("subject", "Patient", n)
			tok("status", "", pick(rng, []string{"finished", "in-progress"}), "")
			s, e := randomDate(rng)
			es = append(es, fhir.IndexEntry{Param: "date", Type: fhir.TypeDate, Start: s, End: e})
			if rng.IntN(2) == 0 {
				ref("service-provider", "Organization", n)
			}
		case "Organization":
			es = append(es, str("name", pick(rng, []string{"Acme Health", "General Hospital", "Acme Labs"})))
			if rng.IntN(2) == 0 {
				ref("partof", "Organization", n)
			}
		case "ValueSet":
			es = append(es, fhir.IndexEntry{Param: "url", Type: fhir.TypeURI})
		case "Practitioner":
			es = append(es, str("name", pick(rng, names)))
		case "Location":
			es = append(es, fhir.IndexEntry{Param: "near", Type: fhir.TypeSpecial, Low: 42 + rng.Float64(), High: -83 - rng.Float64()})
			es = append(es, str("name", pick(rng, cities)))
		}
		// Organization url entries: an http URI, sometimes nested.
		for k := range es {
			if es[k].Type == fhir.TypeURI {
				es[k].Str = pick(rng, []string{"http://acme.org/fhir", "http://acme.org/fhir/ValueSet/x", "http://other.org"})
			}
		}
		return es
	}
	for _, typ := range types {
		for i := 0; i < n; i++ {
			es := gen(typ, i)
			r := &resource{typ: typ, id: id(typ, i), entries: es}
			write(t, s, ctx, r, 1, fhir.OpCreate)
			d.res[typ+"/"+r.id] = r
		}
	}
	// Update a quarter and delete a tenth: only current versions may match.
	keys := make([]string, 0, len(d.res))
	for k := range d.res {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		r := d.res[k]
		switch rng.IntN(20) {
		case 0, 1:
			write(t, s, ctx, r, 2, fhir.OpDelete)
			delete(d.res, k)
		case 2, 3, 4, 5, 6:
			var i int
			fmt.Sscanf(r.id[3:], "%d", &i)
			r.entries = gen(r.typ, i)
			write(t, s, ctx, r, 2, fhir.OpUpdate)
		}
	}
	return d
}

func write(t *testing.T, s Store, ctx context.Context, r *resource, version int64, op fhir.Op) {
	t.Helper()
	w := fhir.Write{Type: r.typ, ID: r.id, Version: version, Op: op, LastUpdated: baseTime}
	if op != fhir.OpDelete {
		w.JSON = []byte(fmt.Sprintf(`{"resourceType":%q,"id":%q}`, r.typ, r.id))
		w.Index = r.entries
	}
	if _, err := s.Write(ctx, w); err != nil {
		t.Fatalf("write %s/%s: %v", r.typ, r.id, err)
	}
}

var prefixes = []string{"", "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"}

func randomDateValue(rng *rand.Rand) string {
	t := baseTime.Add(time.Duration(rng.IntN(100*24)) * time.Hour)
	switch rng.IntN(4) {
	case 0:
		return t.Format("2006")
	case 1:
		return t.Format("2006-01")
	case 2:
		return t.Format("2006-01-02")
	}
	return t.Format("2006-01-02T15:04:05Z")
}

// randomQuery makes a search of 1 to 3 clauses.
func randomQuery(rng *rand.Rand) (string, string) {
	typ := pick(rng, []string{"Patient", "Observation", "Observation", "Encounter", "Organization", "Location", "ValueSet"})
	n := 1 + rng.IntN(3)
	var parts []string
	for i := 0; i < n; i++ {
		parts = append(parts, randomClause(rng, typ))
	}
	return typ, strings.Join(parts, "&")
}

func enc(k, v string) string { return url.QueryEscape(k) + "=" + url.QueryEscape(v) }

func randomClause(rng *rand.Rand, typ string) string {
	switch typ {
	case "Patient":
		switch rng.IntN(12) {
		case 0:
			return enc("name", prefix(rng, pick(rng, names)))
		case 1:
			return enc("family:exact", pick(rng, names))
		case 2:
			return enc("name:contains", pick(rng, []string{"mit", "ue", "ruz", "o'b"}))
		case 3:
			return enc("birthdate", pick(rng, prefixes)+randomDateValue(rng))
		case 4:
			return enc("gender", pick(rng, []string{"male", "female", "http://hl7.org/fhir/administrative-gender|other", "male,female"}))
		case 5:
			return enc("identifier", pick(rng, []string{"urn:mrn|", "urn:mrn|3", "|3", "3"}))
		case 6:
			return enc("identifier:of-type", pick(rng, idTypes)+"|"+fmt.Sprint(rng.IntN(20)))
		case 7:
			return enc("organization.name", pick(rng, []string{"acme", "general", "acme h"}))
		case 8:
			return enc("_has:Observation:patient:code", pick(rng, codes))
		case 9:
			return enc("general-practitioner:missing", pick(rng, []string{"true", "false"}))
		case 10:
			return enc("address-city", pick(rng, cities))
		}
		return enc("active", pick(rng, []string{"true", "false"}))
	case "Observation":
		switch rng.IntN(14) {
		case 0:
			return enc("code", pick(rng, systems)+"|"+pick(rng, codes))
		case 1:
			return enc("code", pick(rng, codes))
		case 2:
			return enc("code:not", pick(rng, codes))
		case 3:
			return enc("code:text", pick(rng, []string{"body", "blood", "heart r", "b"}))
		case 4:
			return enc("date", pick(rng, prefixes)+randomDateValue(rng))
		case 5:
			return enc("value-quantity", pick(rng, prefixes)+fmt.Sprint(rng.IntN(21))+pick(rng, []string{"", "|http://unitsofmeasure.org|cm", "||kg"}))
		case 6:
			return enc("value-quantity", pick(rng, prefixes)+fmt.Sprintf("%.1f", float64(rng.IntN(41))/2))
		case 7:
			return enc("subject", pick(rng, []string{"Patient/", ""})+fmt.Sprintf("pat%d", rng.IntN(40)))
		case 8:
			return enc("subject:Patient.name", prefix(rng, pick(rng, names)))
		case 9:
			return enc("patient.organization.name", pick(rng, []string{"acme", "general"}))
		case 10:
			return enc("code-value-quantity", pick(rng, systems)+"|"+pick(rng, codes)+"$"+pick(rng, prefixes)+fmt.Sprint(rng.IntN(21)))
		case 11:
			return enc("encounter:missing", pick(rng, []string{"true", "false"}))
		case 12:
			return enc("status", pick(rng, statuses)+","+pick(rng, statuses))
		}
		return enc("value-string", pick(rng, []string{"body", "x", "heart"}))
	case "Encounter":
		switch rng.IntN(4) {
		case 0:
			return enc("date", pick(rng, prefixes)+randomDateValue(rng))
		case 1:
			return enc("subject.name", prefix(rng, pick(rng, names)))
		case 2:
			return enc("service-provider:missing", pick(rng, []string{"true", "false"}))
		}
		return enc("status", pick(rng, []string{"finished", "in-progress"}))
	case "ValueSet":
		switch rng.IntN(3) {
		case 0:
			return enc("url:below", pick(rng, []string{"http://acme.org", "http://acme.org/fhir/"}))
		case 1:
			return enc("url:above", pick(rng, []string{"http://acme.org/fhir/ValueSet/x/y", "http://other.org/z"}))
		}
		return enc("url", pick(rng, []string{"http://acme.org/fhir", "http://other.org"}))
	case "Organization":
		return enc("partof.name", pick(rng, []string{"acme", "gen"}))
	}
	return enc("near", fmt.Sprintf("%.3f|%.3f|%d|km", 42+rng.Float64(), -83-rng.Float64(), 10+rng.IntN(60)))
}

// testSort checks _sort orders and paging: the pages, joined, are the full
// answer in order, both ways.
func testSort(t *testing.T, s Store, reg *search.Registry, d *dataset) {
	ctx := context.Background()
	for _, sortBy := range []string{"name", "-name", "birthdate", "-birthdate,name", "gender,-_id", "_lastUpdated"} {
		q, err := reg.Parse("Patient", url.Values{"_sort": {sortBy}}, true)
		if err != nil {
			t.Fatal(err)
		}
		var full []string
		res, err := s.Search(ctx, q, search.Page{Count: 1000})
		if err != nil {
			t.Fatalf("_sort=%s: %v", sortBy, err)
		}
		for _, r := range res.Resources {
			full = append(full, r.ID)
		}
		var paged []string
		page := search.Page{Count: 4}
		for i := 0; i < 100; i++ {
			res, err := s.Search(ctx, q, page)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range res.Resources {
				paged = append(paged, r.ID)
			}
			if !res.More {
				break
			}
			page.After = &res.Cursors[len(res.Cursors)-1]
		}
		if fmt.Sprint(paged) != fmt.Sprint(full) {
			t.Errorf("_sort=%s: paged order\n %v\nwant\n %v", sortBy, paged, full)
		}
		if want := len(d.match(&search.Query{Type: "Patient"})); len(full) != want {
			t.Errorf("_sort=%s returned %d Patients, want all %d", sortBy, len(full), want)
		}
		if sortBy == "name" {
			if !sort.SliceIsSorted(full, func(i, j int) bool { return minName(d, full[i]) < minName(d, full[j]) }) {
				t.Errorf("_sort=name: not in name order: %v", full)
			}
		}
	}
}

func minName(d *dataset, id string) string {
	best := "\U0010FFFF"
	for _, e := range d.res["Patient/"+id].entries {
		if e.Param == "name" && e.Str < best {
			best = e.Str
		}
	}
	return best
}

// prefix is a lower-case prefix of s, 1 to 3 characters long.
func prefix(rng *rand.Rand, s string) string {
	r := []rune(strings.ToLower(s))
	return string(r[:min(len(r), 1+rng.IntN(3))])
}

// randomGroupQuery makes a query whose filter holds AND groups inside an OR
// (see search.Clause.All): half type searches, half system searches with a
// typed group per type.
func randomGroupQuery(t *testing.T, rng *rand.Rand, reg *search.Registry, n int) *search.Query {
	t.Helper()
	clauseOf := func(typ string) search.Clause {
		k, v, _ := strings.Cut(randomClause(rng, typ), "=")
		k, _ = url.QueryUnescape(k)
		v, _ = url.QueryUnescape(v)
		q, err := reg.Parse(typ, url.Values{k: {v}}, true)
		if err != nil || len(q.Clauses) != 1 {
			t.Fatalf("generated clause %s?%s=%s does not parse: %v", typ, k, v, err)
		}
		return q.Clauses[0]
	}
	// A compartment-like OR: refers to one patient, or is that patient.
	compartment := func(typ string) search.Clause {
		pat := fmt.Sprintf("pat%d", rng.IntN(n))
		or := search.Clause{Name: "Patient/" + pat}
		for _, code := range []string{"subject", "patient"} {
			if p, ok := reg.Lookup(typ, code); ok && p.Type == search.TypeReference {
				or.Or = append(or.Or, search.Clause{Name: code, Param: p, Values: []search.Value{{RefType: "Patient", RefID: pat}}})
			}
		}
		if typ == "Patient" {
			p, _ := reg.Lookup("Patient", "_id")
			or.Or = append(or.Or, search.Clause{Name: "_id", Param: p, Values: []search.Value{{Code: pat}}})
		}
		return or
	}
	group := func(typ string) search.Clause {
		g := search.Clause{All: []search.Clause{}}
		if rng.IntN(3) > 0 && typ != "Organization" && typ != "Location" && typ != "ValueSet" {
			g.All = append(g.All, compartment(typ))
		}
		for k := rng.IntN(3); k > 0; k-- {
			g.All = append(g.All, clauseOf(typ))
		}
		return g
	}
	if rng.IntN(2) == 0 {
		typ := pick(rng, []string{"Patient", "Observation", "Encounter"})
		or := search.Clause{Name: "rules"}
		for k := 1 + rng.IntN(3); k > 0; k-- {
			g := group(typ)
			switch rng.IntN(6) {
			case 0:
				g.Type = typ
			case 1:
				g.Type = "Organization" // never of this search's type
			}
			or.Or = append(or.Or, g)
		}
		q := &search.Query{Type: typ, Clauses: []search.Clause{or}}
		if rng.IntN(2) == 0 {
			q.Clauses = append(q.Clauses, clauseOf(typ))
		}
		return q
	}
	q := &search.Query{Types: []string{"Patient", "Observation", "Encounter", "Organization"}}
	or := search.Clause{Name: "_type"}
	for _, typ := range q.Types {
		if rng.IntN(4) == 0 {
			continue // nothing of this type
		}
		g := group(typ)
		g.Type = typ
		if rng.IntN(4) == 0 {
			g.All = nil // every resource of the type
		}
		or.Or = append(or.Or, g)
	}
	if len(or.Or) == 0 {
		or.Or = append(or.Or, search.Clause{Type: "Organization"})
	}
	q.Clauses = []search.Clause{or}
	return q
}

// describe writes clauses compactly, for failure messages.
func describe(cs []search.Clause) string {
	var parts []string
	for _, c := range cs {
		switch {
		case c.IsGroup():
			parts = append(parts, c.Type+"("+describe(c.All)+")")
		case len(c.Or) > 0:
			var alts []string
			for _, o := range c.Or {
				alts = append(alts, describe([]search.Clause{o}))
			}
			parts = append(parts, "("+strings.Join(alts, " | ")+")")
		default:
			parts = append(parts, c.Name)
		}
	}
	return strings.Join(parts, " & ")
}
