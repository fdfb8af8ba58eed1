package subscriptions

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/fhirhub/fhirhub/fhir"
	"github.com/fhirhub/fhirhub/fhir/search"
)

// filed parses criteria of typ into a registry entry.
func filed(t testing.TB, e *search.Engine, id, criteria string) *sub {
	t.Helper()
	typ, q, _ := strings.Cut(criteria, "?")
	params, err := url.ParseQuery(q)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := e.FilterClauses(context.Background(), typ, params)
	if err != nil {
		t.Fatal(err)
	}
	return &sub{spec: &spec{ID: id, Type: typ, Criteria: criteria, Clauses: cs}}
}

func testEngine(t testing.TB) *search.Engine {
	_, registry := shared(t)
	return &search.Engine{Registry: registry, Indexer: &search.Indexer{Registry: registry}}
}

func entriesOf(t testing.TB, e *search.Engine, typ, body string) []fhir.IndexEntry {
	t.Helper()
	es, err := e.EntriesOf(fhir.Resource{Type: typ, ID: "x", Version: 1, Op: fhir.OpCreate, JSON: []byte(body)})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func TestRegistryCandidates(t *testing.T) {
	e := testEngine(t)
	g := newRegistry()
	for _, s := range []struct{ id, criteria string }{
		{"ref", "Observation?subject=Patient/p1"},
		{"ref-untyped", "Observation?subject=p1"},
		{"ref-other", "Observation?subject=Patient/p2"},
		{"code", "Observation?code=http://loinc.org|1234-5"},
		{"code-nosystem", "Observation?code=1234-5"},
		{"code-or", "Observation?code=http://loinc.org|0000-0,http://loinc.org|1234-5"},
		{"code-other", "Observation?code=http://loinc.org|9999-9"},
		{"status-and-ref", "Observation?status=final&subject=Patient/p2"},
		{"date", "Observation?date=ge2020"},       // not indexable: fallback
		{"not", "Observation?code:not=1234-5"},    // not indexable: fallback
		{"patient", "Patient?identifier=urn:x|1"}, // another type
	} {
		g.put(filed(t, e, s.id, s.criteria))
	}
	es := entriesOf(t, e, "Observation", observation("x", "p1", "1234-5"))
	var got []string
	for _, s := range g.candidates("Observation", es) {
		got = append(got, s.ID)
	}
	sort.Strings(got)
	// status-and-ref is filed under its first indexable condition, status=final.
	want := "code,code-nosystem,code-or,date,not,ref,ref-untyped,status-and-ref"
	if strings.Join(got, ",") != want {
		t.Errorf("got %v, want %s", got, want)
	}
	g.remove("code")
	g.put(filed(t, e, "ref", "Observation?subject=Patient/p9")) // refiled
	got = got[:0]
	for _, s := range g.candidates("Observation", es) {
		got = append(got, s.ID)
	}
	sort.Strings(got)
	if want := "code-nosystem,code-or,date,not,ref-untyped,status-and-ref"; strings.Join(got, ",") != want {
		t.Errorf("after changes: got %v, want %s", got, want)
	}
}

// Every candidate list holds every subscription that matches (the index
// only ever narrows what search.Match would accept).
func TestRegistryIndexNeverLosesAMatch(t *testing.T) {
	e := testEngine(t)
	g := newRegistry()
	var all []*sub
	for i, c := range []string{
		"Observation?subject=Patient/p1", "Observation?subject=p1", "Observation?patient=Patient/p1",
		"Observation?code=http://loinc.org|1234-5", "Observation?code=1234-5", "Observation?code=|1234-5",
		"Observation?code=http://loinc.org|", "Observation?status=final", "Observation?status=final,amended&code=1234-5",
		"Observation?subject:Patient=p1", "Observation?_id=x", "Observation?subject=Patient/p1/_history/1",
	} {
		s := filed(t, e, fmt.Sprint(i), c)
		g.put(s)
		all = append(all, s)
	}
	for _, body := range []string{observation("x", "p1", "1234-5"), observation("x", "p2", "1234-5"),
		`{"resourceType":"Observation","id":"x","status":"final","code":{"coding":[{"code":"1234-5"}]},"subject":{"reference":"Patient/p1"}}`} {
		es := entriesOf(t, e, "Observation", body)
		cand := map[string]bool{}
		for _, s := range g.candidates("Observation", es) {
			cand[s.ID] = true
		}
		for _, s := range all {
			if search.Match(s.Clauses, "Observation", "x", es, nil) && !cand[s.ID] {
				t.Errorf("%s matches %s but is not a candidate", s.Criteria, body)
			}
		}
	}
}

// BenchmarkMatch measures matching one change against n per-patient and
// per-code subscriptions plus 10 unindexed ones: the cost should barely
// grow with n.
func BenchmarkMatch(b *testing.B) {
	e := testEngine(b)
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			g := newRegistry()
			for i := range n {
				c := fmt.Sprintf("Observation?subject=Patient/p%d", i)
				if i%2 == 1 {
					c = fmt.Sprintf("Observation?code=http://loinc.org|%d-1", i)
				}
				g.put(filed(b, e, fmt.Sprint(i), c))
			}
			for i := range 10 {
				g.put(filed(b, e, fmt.Sprintf("u%d", i), fmt.Sprintf("Observation?value-quantity=gt%d", i)))
			}
			es := entriesOf(b, e, "Observation", observation("x", "p42", "7-1"))
			b.ResetTimer()
			matched := 0
			for range b.N {
				for _, s := range g.candidates("Observation", es) {
					if search.Match(s.Clauses, "Observation", "x", es, nil) {
						matched++
					}
				}
			}
			if matched != 2*b.N {
				b.Fatalf("matched %d, want 2 per change", matched/b.N)
			}
		})
	}
}

func TestEndpointPolicy(t *testing.T) {
	p, err := parseEndpoints([]string{"https://*", "http://127.0.0.1", "http://[::1]:8080", "https://*.example.org:8443/hooks"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"https://anything.test/x", true},
		{"http://anything.test/x", false},
		{"http://127.0.0.1:9999/hook", true},
		{"http://[::1]:8080/", true},
		{"http://[::1]:8081/", false},
		{"http://localhost/", false},
		{"http://user:pw@127.0.0.1/", false},
		{"ftp://127.0.0.1/", false},
		{"127.0.0.1/hook", false},
		{"", false},
	} {
		t.Run(tc.url, func(t *testing.T) {
			if err := p.check(tc.url); (err == nil) != tc.ok {
				t.Errorf("check: %v, want allowed %v", err, tc.ok)
			}
		})
	}
	narrow, _ := parseEndpoints([]string{"https://*.example.org:8443/hooks"})
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"https://a.example.org:8443/hooks", true},
		{"https://a.example.org:8443/hooks/x", true},
		{"https://a.example.org:8443/hooksx", false},
		{"https://a.example.org/hooks", false},
		{"https://example.org.evil:8443/hooks", false},
	} {
		if err := narrow.check(tc.url); (err == nil) != tc.ok {
			t.Errorf("%s: %v, want allowed %v", tc.url, err, tc.ok)
		}
	}
	for _, bad := range []string{"ftp://x", "https://", "127.0.0.1"} {
		if _, err := parseEndpoints([]string{bad}); err == nil {
			t.Errorf("%q accepted as an allow-list entry", bad)
		}
	}
}
