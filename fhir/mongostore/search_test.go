package mongostore

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/fhirhub/fhirhub/fhir"
	"github.com/fhirhub/fhirhub/fhir/search"
	"github.com/fhirhub/fhirhub/fhir/search/searchtest"
	"github.com/fhirhub/fhirhub/fhir/sqlitestore"
)

func TestSearchAgreesWithMatcher(t *testing.T) {
	opts := searchtest.Options{}
	if raceEnabled {
		opts = searchtest.Options{Resources: 20, Queries: 60} // FerretDB under the race detector is ~10x slower
	}
	searchtest.Run(t, newTestStore(t), opts)
}

// More seeds, fewer queries each than the SQLite engine runs: every query
// scans a collection on FerretDB (see the package documentation).
func TestSearchAgreesWithMatcherSeeds(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("long: more seeds of the differential test (run without -short and -race)")
	}
	for seed := uint64(2); seed <= 3; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			searchtest.Run(t, newTestStore(t), searchtest.Options{Seed: seed, Queries: 60})
		})
	}
}

var registry = sync.OnceValue(func() *search.Registry {
	r, err := search.NewRegistry([]string{"Patient", "Observation", "Organization", "Encounter"})
	if err != nil {
		panic(err)
	}
	return r
})

func parse(t *testing.T, typ, query string) *search.Query {
	t.Helper()
	params, err := url.ParseQuery(query)
	if err != nil {
		t.Fatal(err)
	}
	q, err := registry().Parse(typ, params, true)
	if err != nil {
		t.Fatalf("%s?%s: %v", typ, query, err)
	}
	return q
}

// searchIDs returns the ids@versions of the first page (up to 100).
func searchIDs(t *testing.T, s *Store, typ, query string) string {
	t.Helper()
	res, err := s.Search(context.Background(), parse(t, typ, query), search.Page{Count: 100})
	if err != nil {
		t.Fatalf("Search %s?%s: %v", typ, query, err)
	}
	ids := make([]string, len(res.Resources))
	for i, r := range res.Resources {
		ids[i] = fmt.Sprintf("%s@%d", r.ID, r.Version)
	}
	return fmt.Sprint(ids)
}

func name(s string) fhir.IndexEntry {
	return fhir.IndexEntry{Param: "name", Type: fhir.TypeString, Str: search.Normalize(s), Exact: s}
}

// A crash between the version insert and the projection: the search fields
// come back with the projection, from the entries on the version.
func TestSearchIndexRepaired(t *testing.T) {
	s := newTestStore(t)
	mustWrite(t, s, "Patient", "a", 1, name("Alpha"))
	commitOnly(t, s, "Patient", "a", 2, name("Beta"))
	commitOnly(t, s, "Patient", "b", 1, name("Beta"))
	if got := searchIDs(t, s, "Patient", "name=beta"); got != "[a@2 b@1]" {
		t.Errorf("name=beta: %s, want [a@2 b@1]", got)
	}
	if got := searchIDs(t, s, "Patient", "name=alpha"); got != "[]" {
		t.Errorf("name=alpha: %s, want []", got)
	}
}

// A write between the refresh and the read of a page: the result is checked
// against versions, replaced by the latest version if that matches, dropped
// if not.
func TestSearchRechecksReplacedResults(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	mustWrite(t, s, "Patient", "a", 1, name("Alpha"))
	mustWrite(t, s, "Patient", "b", 1, name("Alpha"))
	commitOnly(t, s, "Patient", "a", 2, name("Beta"))  // no longer matches
	commitOnly(t, s, "Patient", "b", 2, name("Alpha")) // still matches
	q := parse(t, "Patient", "name=alpha")
	f, err := s.compile(ctx, "Patient", q.Clauses)
	if err != nil {
		t.Fatal(err)
	}
	docs, _, err := s.fetchPage(ctx, []string{"Patient"}, f, nil, search.Page{Count: 10})
	if err != nil || len(docs) != 2 {
		t.Fatalf("stale page: %d results, %v; want 2", len(docs), err)
	}
	docs, err = s.recheck(ctx, f, docs)
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 1 || docs[0].doc.RID != "b" || docs[0].doc.V != 2 {
		t.Errorf("rechecked: %+v, want b at version 2 only", docs)
	}
	if v := currentVersion(t, s, "Patient", "a"); v != 2 {
		t.Errorf("current of a: v%d, want v2 (projected by the check)", v)
	}
}

func TestReindex(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	mustWrite(t, s, "Patient", "a", 1, name("Alpha"))
	if err := s.Reindex(ctx, "Patient", "a", 1, []fhir.IndexEntry{name("Gamma")}); err != nil {
		t.Fatal(err)
	}
	if got := searchIDs(t, s, "Patient", "name=gamma"); got != "[a@1]" {
		t.Errorf("after reindex, name=gamma: %s", got)
	}
	if got := searchIDs(t, s, "Patient", "name=alpha"); got != "[]" {
		t.Errorf("after reindex, name=alpha: %s", got)
	}
	// The projection, rebuilt from versions, keeps the new entries.
	if _, err := s.currentOf("Patient").DeleteMany(ctx, bson.D{}); err != nil {
		t.Fatal(err)
	}
	if err := s.repair(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if got := searchIDs(t, s, "Patient", "name=gamma"); got != "[a@1]" {
		t.Errorf("after rebuilding current, name=gamma: %s", got)
	}
	// A replaced version is left alone.
	mustWrite(t, s, "Patient", "a", 2, name("Delta"))
	if err := s.Reindex(ctx, "Patient", "a", 1, []fhir.IndexEntry{name("Epsilon")}); err != nil {
		t.Fatal(err)
	}
	if got := searchIDs(t, s, "Patient", "name=delta"); got != "[a@2]" {
		t.Errorf("after a stale reindex, name=delta: %s", got)
	}
	if got := searchIDs(t, s, "Patient", "name=epsilon"); got != "[]" {
		t.Errorf("after a stale reindex, name=epsilon: %s", got)
	}
}

// Versions written before versions carried their entries have token keys
// (tok) only: their identifiers stay findable and searchable.
func TestLegacyTokenVersions(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	tok := []string{"identifier\x1fe\x1fhttp://hospital/mrn\x1f7", "identifier\x1fc\x1f7", "identifier\x1fs\x1fhttp://hospital/mrn", "identifier\x1fp"}
	doc := &versionDoc{ID: versionID("Patient", "old", 1), Type: "Patient", RID: "old", V: 1, Op: string(fhir.OpCreate),
		TS: bson.NewDateTimeFromTime(base), JSON: []byte(`{}`), Tok: tok}
	if err := s.commit(ctx, doc); err != nil {
		t.Fatal(err)
	}
	if got := findIDs(t, s, byMRN("7")); got != "[old@1]" {
		t.Errorf("Find: %s, want [old@1]", got)
	}
	if got := searchIDs(t, s, "Patient", "identifier=http://hospital/mrn|7"); got != "[old@1]" {
		t.Errorf("Search: %s, want [old@1]", got)
	}
}

// The order of results, and paging forward and back through it, equals the
// SQLite engine's on the same data: sort values per type, resources without
// a value last both ways, ties by type and id; also across types.
func TestSearchOrderAgreesWithSQLite(t *testing.T) {
	ctx := context.Background()
	ms := newTestStore(t)
	ss := sqlitestore.New(t.TempDir())
	ss.Synchronous = "NORMAL"
	if err := ss.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer ss.Close(ctx)
	rng := rand.New(rand.NewPCG(7, 7))
	write := func(w fhir.Write) {
		for _, st := range []fhir.Store{ms, ss} {
			if _, err := st.Write(ctx, w); err != nil {
				t.Fatalf("write %s/%s: %v", w.Type, w.ID, err)
			}
		}
	}
	names := []string{"Ames", "ames", "Zoë", "Bo", "bo", "Éclair", ""}
	day := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	entries := func(typ string) []fhir.IndexEntry {
		var es []fhir.IndexEntry
		switch typ {
		case "Patient":
			for range rng.IntN(3) {
				es = append(es, name(names[rng.IntN(len(names))]))
			}
			if rng.IntN(3) > 0 {
				s := day.AddDate(0, 0, rng.IntN(5)).UnixMilli()
				e := s + int64(rng.IntN(3))*86400000
				if rng.IntN(5) == 0 {
					e = math.MaxInt64
				}
				es = append(es, fhir.IndexEntry{Param: "birthdate", Type: fhir.TypeDate, Start: s, End: e + 1})
			}
			if rng.IntN(4) > 0 {
				es = append(es, fhir.IndexEntry{Param: "gender", Type: fhir.TypeToken, System: "g", Code: []string{"male", "female"}[rng.IntN(2)]})
			}
			for range rng.IntN(3) {
				if rng.IntN(4) == 0 {
					es = append(es, fhir.IndexEntry{Param: "organization", Type: fhir.TypeReference, RefURL: "http://x.org/Organization/1"})
				} else {
					es = append(es, fhir.IndexEntry{Param: "organization", Type: fhir.TypeReference, RefType: "Organization", RefID: fmt.Sprint("o", rng.IntN(4))})
				}
			}
		case "Observation":
			for range rng.IntN(3) {
				v := float64(rng.IntN(7)) - 2.5
				es = append(es, fhir.IndexEntry{Param: "value-quantity", Type: fhir.TypeQuantity, Low: v, High: v + float64(rng.IntN(2)), Code: "kg"})
			}
			if rng.IntN(2) == 0 {
				es = append(es, fhir.IndexEntry{Param: "code", Type: fhir.TypeToken, System: "s", Code: fmt.Sprint(rng.IntN(3))})
			}
			if rng.IntN(2) == 0 {
				es = append(es, fhir.IndexEntry{Param: "subject", Type: fhir.TypeReference, RefType: "Patient", RefID: fmt.Sprint("p", rng.IntN(5))})
			}
			if rng.IntN(3) > 0 {
				s := day.AddDate(0, 0, rng.IntN(4)).UnixMilli()
				es = append(es, fhir.IndexEntry{Param: "date", Type: fhir.TypeDate, Start: s, End: s + 86400000})
			}
		}
		return es
	}
	for _, typ := range []string{"Patient", "Observation"} {
		for i := range 20 {
			id := fmt.Sprintf("%s%02d", strings.ToLower(typ[:1]), i)
			ts := day.Add(time.Duration(rng.IntN(6)) * time.Second) // ties on _lastUpdated
			write(fhir.Write{Type: typ, ID: id, Version: 1, Op: fhir.OpCreate, LastUpdated: ts, JSON: []byte(`{}`), Index: entries(typ)})
			switch rng.IntN(6) {
			case 0:
				write(fhir.Write{Type: typ, ID: id, Version: 2, Op: fhir.OpDelete, LastUpdated: ts})
			case 1:
				write(fhir.Write{Type: typ, ID: id, Version: 2, Op: fhir.OpUpdate, LastUpdated: ts.Add(time.Second), JSON: []byte(`{}`), Index: entries(typ)})
			}
		}
	}
	tests := []struct{ typ, query string }{
		{"Patient", "_sort=name"},
		{"Patient", "_sort=-name"},
		{"Patient", "_sort=birthdate"},
		{"Patient", "_sort=-birthdate,name"},
		{"Patient", "_sort=gender,-_id"},
		{"Patient", "_sort=organization,-name"},
		{"Patient", "_sort=-organization"},
		{"Patient", "_sort=_lastUpdated"},
		{"Patient", "_sort=-_lastUpdated,-name"},
		{"Patient", "gender=male&_sort=name"},
		{"Observation", "_sort=value-quantity"},
		{"Observation", "_sort=-value-quantity,code"},
		{"Observation", "_sort=date,-subject"},
		{"Observation", "_sort=-code,-date"},
		{"", "_type=Patient,Observation&_sort=_lastUpdated"},
		{"", "_type=Observation,Patient&_sort=-_id"},
		{"", "_sort=-_lastUpdated,_id"},
		{"", "_id=p03,o03,p07"},
	}
	for _, tt := range tests {
		q := parse(t, tt.typ, tt.query)
		full, err := ss.Search(ctx, q, search.Page{Count: 1000})
		if err != nil {
			t.Fatal(err)
		}
		want := refs(full.Resources)
		sizes := []int{2, 5}
		if raceEnabled {
			sizes = sizes[1:]
		}
		for _, n := range sizes {
			got, back, err := pageBothWays(ms, q, n)
			if err != nil {
				t.Fatalf("%s?%s: %v", tt.typ, tt.query, err)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s?%s, pages of %d:\n mongo  %v\n sqlite %v", tt.typ, tt.query, n, got, want)
			}
			if fmt.Sprint(back) != fmt.Sprint(want) {
				t.Errorf("%s?%s, pages of %d backwards:\n mongo  %v\n sqlite %v", tt.typ, tt.query, n, back, want)
			}
		}
		res, err := ms.Search(ctx, q, search.Page{Count: 2, Total: true})
		if err != nil || res.Total != int64(len(want)) {
			t.Errorf("%s?%s: total %d, %v; want %d", tt.typ, tt.query, res.Total, err, len(want))
		}
	}
}

func refs(rs []fhir.Resource) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Type + "/" + r.ID
	}
	return out
}

// pageBothWays reads every page of q forwards, then from the last page
// backwards, and returns both orders (the backward one reversed back).
func pageBothWays(s *Store, q *search.Query, n int) (fwd, back []string, err error) {
	ctx := context.Background()
	page := search.Page{Count: n}
	var last *search.Result
	for range 1000 {
		res, err := s.Search(ctx, q, page)
		if err != nil {
			return nil, nil, err
		}
		fwd = append(fwd, refs(res.Resources)...)
		last = res
		if !res.More {
			break
		}
		page.After = &res.Cursors[len(res.Cursors)-1]
	}
	back = refs(last.Resources)
	if len(last.Cursors) == 0 {
		return fwd, back, nil
	}
	page = search.Page{Count: n, Before: &last.Cursors[0]}
	for range 1000 {
		res, err := s.Search(ctx, q, page)
		if err != nil {
			return nil, nil, err
		}
		back = append(refs(res.Resources), back...)
		if !res.More {
			break
		}
		page.Before = &res.Cursors[0]
	}
	return fwd, slices.Clip(back), nil
}
