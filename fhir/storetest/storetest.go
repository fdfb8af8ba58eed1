// Package storetest is the conformance suite of the fhir.Store contract. Every
// storage engine's tests call Run with a function that makes an empty store; a
// behaviour is defined here once and checked on every engine.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/fhirhub/fhirhub/fhir"
)

// Options tunes the suite for slow engines (the MongoDB stand-in in tests).
type Options struct {
	// Concurrency is the number of concurrent writers in the race tests (default 8).
	Concurrency int
	// WritesPerWriter is how many writes each concurrent writer makes (default 25).
	WritesPerWriter int
}

// Run checks that the stores newStore makes keep the fhir.Store contract.
// newStore must return an empty store, closed by the test's cleanup.
func Run(t *testing.T, newStore func(t *testing.T) fhir.Store, opts Options) {
	if opts.Concurrency == 0 {
		opts.Concurrency = 8
	}
	if opts.WritesPerWriter == 0 {
		opts.WritesPerWriter = 25
	}
	t.Run("Write", func(t *testing.T) { testWrite(t, newStore(t)) })
	t.Run("VersionConflict", func(t *testing.T) { testVersionConflict(t, newStore(t)) })
	t.Run("Delete", func(t *testing.T) { testDelete(t, newStore(t)) })
	t.Run("History", func(t *testing.T) { testHistory(t, newStore(t)) })
	t.Run("HistoryAt", func(t *testing.T) { testHistoryAt(t, newStore(t)) })
	t.Run("Changes", func(t *testing.T) { testChanges(t, newStore(t)) })
	t.Run("Find", func(t *testing.T) { testFind(t, newStore(t)) })
	t.Run("ConcurrentUpdates", func(t *testing.T) { testConcurrentUpdates(t, newStore(t), opts) })
	t.Run("ChangeFeedUnderConcurrency", func(t *testing.T) { testChangeFeedConcurrent(t, newStore(t), opts) })
	t.Run("Transaction", func(t *testing.T) { testTransaction(t, newStore(t)) })
	t.Run("Ping", func(t *testing.T) {
		if err := newStore(t).Ping(context.Background()); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	})
}

var base = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func body(typ, id string, v int64, extra string) []byte {
	return []byte(fmt.Sprintf(`{"resourceType":%q,"id":%q,"meta":{"versionId":"%d"}%s}`, typ, id, v, extra))
}

// write appends version v of typ/id at base+minutes.
func write(t *testing.T, s fhir.Store, typ, id string, v int64, op fhir.Op, minutes int, tokens ...fhir.Token) fhir.Change {
	t.Helper()
	w := fhir.Write{Type: typ, ID: id, Version: v, Op: op, LastUpdated: base.Add(time.Duration(minutes) * time.Minute), Index: tokens}
	if op != fhir.OpDelete {
		w.JSON = body(typ, id, v, "")
	}
	ch, err := s.Write(context.Background(), w)
	if err != nil {
		t.Fatalf("Write %s/%s v%d: %v", typ, id, v, err)
	}
	return ch
}

func testWrite(t *testing.T, s fhir.Store) {
	ctx := context.Background()
	ch := write(t, s, "Patient", "a", 1, fhir.OpCreate, 0)
	if ch.Seq <= 0 {
		t.Errorf("Seq = %d, want > 0", ch.Seq)
	}
	if ch.Type != "Patient" || ch.ID != "a" || ch.Version != 1 || ch.Op != fhir.OpCreate {
		t.Errorf("got change %+v", ch.Resource)
	}
	write(t, s, "Patient", "a", 2, fhir.OpUpdate, 1)
	r, err := s.Read(ctx, "Patient", "a")
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if r.Version != 2 || r.Op != fhir.OpUpdate || string(r.JSON) != string(body("Patient", "a", 2, "")) {
		t.Errorf("Read: got v%d %s %s, want v2 update", r.Version, r.Op, r.JSON)
	}
	if !r.LastUpdated.Equal(base.Add(time.Minute)) {
		t.Errorf("LastUpdated = %v, want %v", r.LastUpdated, base.Add(time.Minute))
	}
	v1, err := s.VRead(ctx, "Patient", "a", 1)
	if err != nil || v1.Version != 1 || string(v1.JSON) != string(body("Patient", "a", 1, "")) {
		t.Errorf("VRead v1: got %+v, %v", v1, err)
	}
	if _, err := s.VRead(ctx, "Patient", "a", 3); !errors.Is(err, fhir.ErrNotFound) {
		t.Errorf("VRead v3: got %v, want ErrNotFound", err)
	}
	if _, err := s.Read(ctx, "Patient", "nope"); !errors.Is(err, fhir.ErrNotFound) {
		t.Errorf("Read missing: got %v, want ErrNotFound", err)
	}
	if _, err := s.Read(ctx, "Observation", "a"); !errors.Is(err, fhir.ErrNotFound) {
		t.Errorf("Read same id, other type: got %v, want ErrNotFound", err)
	}
	// Large and non-ASCII bodies come back byte for byte.
	big := make([]byte, 0, 2<<20)
	big = append(big, `{"resourceType":"Binary","id":"big","data":"`...)
	for len(big) < 2<<20 {
		big = append(big, "QUJD"...)
	}
	big = append(big, `","note":"Zoë – 日本"}`...)
	if _, err := s.Write(ctx, fhir.Write{Type: "Binary", ID: "big", Version: 1, Op: fhir.OpCreate, LastUpdated: base, JSON: big}); err != nil {
		t.Fatalf("Write big: %v", err)
	}
	got, err := s.Read(ctx, "Binary", "big")
	if err != nil || string(got.JSON) != string(big) {
		t.Errorf("big body did not round-trip (err %v, %d bytes back, want %d)", err, len(got.JSON), len(big))
	}
}

func testVersionConflict(t *testing.T, s fhir.Store) {
	ctx := context.Background()
	write(t, s, "Patient", "a", 1, fhir.OpCreate, 0)
	cases := []struct {
		name string
		v    int64
	}{{"RecreateV1", 1}, {"SkipVersion", 3}, {"Zero", 0}}
	for _, c := range cases {
		_, err := s.Write(ctx, fhir.Write{Type: "Patient", ID: "a", Version: c.v, Op: fhir.OpUpdate, LastUpdated: base, JSON: body("Patient", "a", c.v, `,"x":1`)})
		if !errors.Is(err, fhir.ErrVersionConflict) {
			t.Errorf("%s: got %v, want ErrVersionConflict", c.name, err)
		}
	}
	r, _ := s.Read(ctx, "Patient", "a")
	if r.Version != 1 || string(r.JSON) != string(body("Patient", "a", 1, "")) {
		t.Errorf("a failed write changed the resource: got v%d %s", r.Version, r.JSON)
	}
	if _, err := s.Write(ctx, fhir.Write{Type: "Patient", ID: "new", Version: 2, Op: fhir.OpUpdate, LastUpdated: base, JSON: body("Patient", "new", 2, "")}); !errors.Is(err, fhir.ErrVersionConflict) {
		t.Errorf("version 2 of a missing resource: got %v, want ErrVersionConflict", err)
	}
	chs, err := s.Changes(ctx, 0, 100)
	if err != nil || len(chs) != 1 {
		t.Errorf("failed writes reached the change feed: %d changes, err %v", len(chs), err)
	}
}

func testDelete(t *testing.T, s fhir.Store) {
	ctx := context.Background()
	write(t, s, "Patient", "a", 1, fhir.OpCreate, 0, fhir.Token{Param: "identifier", System: "s", Code: "1"})
	write(t, s, "Patient", "a", 2, fhir.OpDelete, 1)
	r, err := s.Read(ctx, "Patient", "a")
	if err != nil || !r.Deleted() || r.Version != 2 || r.JSON != nil {
		t.Errorf("Read deleted: got %+v, %v; want version 2, deleted, no JSON", r, err)
	}
	found, err := s.Find(ctx, fhir.Match{Type: "Patient", IDs: []string{"a"}})
	if err != nil || len(found) != 0 {
		t.Errorf("Find found a deleted resource: %v, %v", found, err)
	}
	write(t, s, "Patient", "a", 3, fhir.OpCreate, 2)
	r, _ = s.Read(ctx, "Patient", "a")
	if r.Version != 3 || r.Deleted() {
		t.Errorf("recreate after delete: got v%d deleted=%v", r.Version, r.Deleted())
	}
	h, _ := s.History(ctx, fhir.HistoryQuery{Type: "Patient", ID: "a", Count: 10})
	if got := versions(h); fmt.Sprint(got) != "[3 2 1]" {
		t.Errorf("history versions = %v, want [3 2 1]", got)
	}
}

func versions(chs []fhir.Change) []int64 {
	out := make([]int64, len(chs))
	for i, c := range chs {
		out[i] = c.Version
	}
	return out
}

func refs(chs []fhir.Change) []string {
	out := make([]string, len(chs))
	for i, c := range chs {
		out[i] = fmt.Sprintf("%s/%s/%d", c.Type, c.ID, c.Version)
	}
	return out
}

func testHistory(t *testing.T, s fhir.Store) {
	ctx := context.Background()
	write(t, s, "Patient", "a", 1, fhir.OpCreate, 0)
	write(t, s, "Observation", "o", 1, fhir.OpCreate, 1)
	write(t, s, "Patient", "a", 2, fhir.OpUpdate, 2)
	write(t, s, "Patient", "b", 1, fhir.OpCreate, 3)
	write(t, s, "Patient", "a", 3, fhir.OpDelete, 4)
	tests := []struct {
		name string
		q    fhir.HistoryQuery
		want string
	}{
		{"Instance", fhir.HistoryQuery{Type: "Patient", ID: "a", Count: 10}, "[Patient/a/3 Patient/a/2 Patient/a/1]"},
		{"Type", fhir.HistoryQuery{Type: "Patient", Count: 10}, "[Patient/a/3 Patient/b/1 Patient/a/2 Patient/a/1]"},
		{"System", fhir.HistoryQuery{Count: 10}, "[Patient/a/3 Patient/b/1 Patient/a/2 Observation/o/1 Patient/a/1]"},
		{"Count", fhir.HistoryQuery{Count: 2}, "[Patient/a/3 Patient/b/1]"},
		{"Since", fhir.HistoryQuery{Since: base.Add(2 * time.Minute), Count: 10}, "[Patient/a/3 Patient/b/1 Patient/a/2]"},
		{"TypeSince", fhir.HistoryQuery{Type: "Observation", Since: base.Add(2 * time.Minute), Count: 10}, "[]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.History(ctx, tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(refs(got)) != tt.want {
				t.Errorf("got %v, want %s", refs(got), tt.want)
			}
		})
	}
	t.Run("Paging", func(t *testing.T) {
		var all []string
		var before int64
		for page := 0; page < 10; page++ {
			got, err := s.History(ctx, fhir.HistoryQuery{Count: 2, Before: before})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) == 0 {
				break
			}
			all = append(all, refs(got)...)
			before = got[len(got)-1].Seq
			if page == 0 {
				// A write between pages must not shift the later pages.
				write(t, s, "Patient", "c", 1, fhir.OpCreate, 5)
			}
		}
		if want := "[Patient/a/3 Patient/b/1 Patient/a/2 Observation/o/1 Patient/a/1]"; fmt.Sprint(all) != want {
			t.Errorf("paged history = %v, want %s", all, want)
		}
	})
}

func testHistoryAt(t *testing.T, s fhir.Store) {
	ctx := context.Background()
	write(t, s, "Patient", "a", 1, fhir.OpCreate, 0)  // 12:00
	write(t, s, "Patient", "a", 2, fhir.OpUpdate, 10) // 12:10
	write(t, s, "Patient", "b", 1, fhir.OpCreate, 20) // 12:20
	write(t, s, "Patient", "a", 3, fhir.OpUpdate, 30) // 12:30
	tests := []struct {
		name       string
		start, end int // minutes
		want       string
	}{
		{"Instant05", 5, 5, "[Patient/a/1]"},
		{"Instant15", 15, 15, "[Patient/a/2]"},
		{"Period05to25", 5, 25, "[Patient/b/1 Patient/a/2 Patient/a/1]"},
		{"Instant40", 40, 40, "[Patient/a/3 Patient/b/1]"},
		{"Before", -10, -5, "[]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.History(ctx, fhir.HistoryQuery{Type: "Patient", AtStart: base.Add(time.Duration(tt.start) * time.Minute), AtEnd: base.Add(time.Duration(tt.end) * time.Minute), Count: 10})
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(refs(got)) != tt.want {
				t.Errorf("got %v, want %s", refs(got), tt.want)
			}
		})
	}
}

func testChanges(t *testing.T, s fhir.Store) {
	ctx := context.Background()
	var want []string
	for i := 0; i < 7; i++ {
		id := fmt.Sprintf("p%d", i%3)
		v := int64(i/3 + 1)
		op := fhir.OpCreate
		if v > 1 {
			op = fhir.OpUpdate
		}
		write(t, s, "Patient", id, v, op, i)
		want = append(want, fmt.Sprintf("Patient/%s/%d", id, v))
	}
	all, err := s.Changes(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(refs(all)) != fmt.Sprint(want) {
		t.Fatalf("Changes = %v, want %v", refs(all), want)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Seq <= all[i-1].Seq {
			t.Fatalf("Seq not increasing: %d then %d", all[i-1].Seq, all[i].Seq)
		}
	}
	if string(all[0].JSON) != string(body("Patient", "p0", 1, "")) {
		t.Errorf("change carries %s, want the version's JSON", all[0].JSON)
	}
	// Resume in small steps from saved positions.
	var got []string
	var pos int64
	for {
		chs, err := s.Changes(ctx, pos, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(chs) == 0 {
			break
		}
		if len(chs) > 3 {
			t.Fatalf("limit 3 returned %d", len(chs))
		}
		got = append(got, refs(chs)...)
		pos = chs[len(chs)-1].Seq
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("resumed feed = %v, want %v", got, want)
	}
}

func testFind(t *testing.T, s fhir.Store) {
	ctx := context.Background()
	mrn := func(code string) fhir.Token {
		return fhir.Token{Param: "identifier", System: "http://hospital/mrn", Code: code}
	}
	write(t, s, "Patient", "a", 1, fhir.OpCreate, 0, mrn("1"), fhir.Token{Param: "identifier", System: "http://ssn", Code: "111"})
	write(t, s, "Patient", "b", 1, fhir.OpCreate, 10, mrn("2"))
	write(t, s, "Patient", "c", 1, fhir.OpCreate, 20, mrn("3"))
	write(t, s, "Patient", "c", 2, fhir.OpUpdate, 30, mrn("33")) // old token must not match any more
	write(t, s, "Patient", "d", 1, fhir.OpCreate, 40, fhir.Token{Param: "identifier", Code: "nosys"})
	write(t, s, "Observation", "a", 1, fhir.OpCreate, 0, mrn("1"))
	tok := func(vals ...fhir.TokenValue) fhir.TokenMatch {
		return fhir.TokenMatch{Param: "identifier", Values: vals}
	}
	tests := []struct {
		name string
		m    fhir.Match
		want string
	}{
		{"ID", fhir.Match{IDs: []string{"a"}}, "[a]"},
		{"IDs", fhir.Match{IDs: []string{"a", "c", "zz"}}, "[a c]"},
		{"TokenSystemCode", fhir.Match{Tokens: []fhir.TokenMatch{tok(fhir.TokenValue{System: "http://hospital/mrn", Code: "2"})}}, "[b]"},
		{"TokenCodeAnySystem", fhir.Match{Tokens: []fhir.TokenMatch{tok(fhir.TokenValue{Code: "111", AnySystem: true})}}, "[a]"},
		{"TokenSystemOnly", fhir.Match{Tokens: []fhir.TokenMatch{tok(fhir.TokenValue{System: "http://hospital/mrn"})}}, "[a b c]"},
		{"TokenNoSystem", fhir.Match{Tokens: []fhir.TokenMatch{tok(fhir.TokenValue{Code: "nosys"})}}, "[d]"},
		{"TokenNoSystemIsNotOther", fhir.Match{Tokens: []fhir.TokenMatch{tok(fhir.TokenValue{Code: "1"})}}, "[]"},
		{"TokenOldVersion", fhir.Match{Tokens: []fhir.TokenMatch{tok(fhir.TokenValue{System: "http://hospital/mrn", Code: "3"})}}, "[]"},
		{"TokenOr", fhir.Match{Tokens: []fhir.TokenMatch{tok(fhir.TokenValue{System: "http://hospital/mrn", Code: "1"}, fhir.TokenValue{System: "http://hospital/mrn", Code: "33"})}}, "[a c]"},
		{"TokenAnd", fhir.Match{Tokens: []fhir.TokenMatch{tok(fhir.TokenValue{System: "http://hospital/mrn", Code: "1"}), tok(fhir.TokenValue{System: "http://ssn", Code: "111"})}}, "[a]"},
		{"TokenAndFails", fhir.Match{Tokens: []fhir.TokenMatch{tok(fhir.TokenValue{System: "http://hospital/mrn", Code: "1"}), tok(fhir.TokenValue{System: "http://hospital/mrn", Code: "2"})}}, "[]"},
		{"LastUpdatedRange", fhir.Match{LastUpdated: []fhir.DateBound{{Op: "ge", Time: base.Add(10 * time.Minute)}, {Op: "lt", Time: base.Add(40 * time.Minute)}}}, "[b c]"},
		{"LastUpdatedGtLe", fhir.Match{LastUpdated: []fhir.DateBound{{Op: "gt", Time: base.Add(10 * time.Minute)}, {Op: "le", Time: base.Add(40 * time.Minute)}}}, "[c d]"},
		{"IDAndToken", fhir.Match{IDs: []string{"a", "b"}, Tokens: []fhir.TokenMatch{tok(fhir.TokenValue{System: "http://hospital/mrn", Code: "2"})}}, "[b]"},
		{"All", fhir.Match{}, "[a b c d]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.m.Type = "Patient"
			got, err := s.Find(ctx, tt.m)
			if err != nil {
				t.Fatal(err)
			}
			ids := make([]string, len(got))
			for i, r := range got {
				ids[i] = r.ID
				if r.Type != "Patient" {
					t.Errorf("Find returned a %s", r.Type)
				}
				if r.JSON == nil {
					t.Errorf("Find returned %s without JSON", r.ID)
				}
			}
			sort.Strings(ids)
			if fmt.Sprint(ids) != tt.want {
				t.Errorf("got %v, want %s", ids, tt.want)
			}
		})
	}
	t.Run("Limit", func(t *testing.T) {
		got, err := s.Find(ctx, fhir.Match{Type: "Patient", Limit: 2})
		if err != nil || len(got) != 2 {
			t.Errorf("Limit 2: got %d results, err %v", len(got), err)
		}
	})
}

// testConcurrentUpdates: writers race to update one resource; each version is
// won by exactly one of them and history has every version once.
func testConcurrentUpdates(t *testing.T, s fhir.Store, opts Options) {
	ctx := context.Background()
	write(t, s, "Patient", "hot", 1, fhir.OpCreate, 0)
	var mu sync.Mutex
	wins := map[int64]int{}
	var wg sync.WaitGroup
	errs := make(chan error, opts.Concurrency)
	for w := 0; w < opts.Concurrency; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < opts.WritesPerWriter; i++ {
				for {
					cur, err := s.Read(ctx, "Patient", "hot")
					if err != nil {
						errs <- err
						return
					}
					v := cur.Version + 1
					_, err = s.Write(ctx, fhir.Write{Type: "Patient", ID: "hot", Version: v, Op: fhir.OpUpdate, LastUpdated: base, JSON: body("Patient", "hot", v, fmt.Sprintf(`,"writer":%d`, w))})
					if err == nil {
						mu.Lock()
						wins[v]++
						mu.Unlock()
						break
					}
					if !errors.Is(err, fhir.ErrVersionConflict) {
						errs <- err
						return
					}
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent write: %v", err)
	}
	total := int64(opts.Concurrency*opts.WritesPerWriter + 1)
	for v := int64(2); v <= total; v++ {
		if wins[v] != 1 {
			t.Errorf("version %d was won %d times, want exactly once", v, wins[v])
		}
	}
	h, err := s.History(ctx, fhir.HistoryQuery{Type: "Patient", ID: "hot", Count: int(total) + 10})
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(h)) != total {
		t.Fatalf("history has %d versions, want %d", len(h), total)
	}
	for i, c := range h {
		if want := total - int64(i); c.Version != want {
			t.Fatalf("history[%d] is version %d, want %d (gap or duplicate)", i, c.Version, want)
		}
	}
}

// testChangeFeedConcurrent: while writers write, a consumer follows the feed
// from its saved position; it must see every committed write exactly once.
func testChangeFeedConcurrent(t *testing.T, s fhir.Store, opts Options) {
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	committed := map[string]bool{}
	for w := 0; w < opts.Concurrency; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < opts.WritesPerWriter; i++ {
				id := fmt.Sprintf("w%d-%d", w, i)
				_, err := s.Write(ctx, fhir.Write{Type: "Observation", ID: id, Version: 1, Op: fhir.OpCreate, LastUpdated: base, JSON: body("Observation", id, 1, "")})
				if err != nil {
					t.Errorf("write %s: %v", id, err)
					return
				}
				mu.Lock()
				committed["Observation/"+id+"/1"] = true
				mu.Unlock()
			}
		}(w)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	seen := map[string]int{}
	var pos int64
	finished := false
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			finished = true
		default:
		}
		chs, err := s.Changes(ctx, pos, 7)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range chs {
			if c.Seq <= pos {
				t.Fatalf("feed went backwards: seq %d after %d", c.Seq, pos)
			}
			pos = c.Seq
			seen[fmt.Sprintf("%s/%s/%d", c.Type, c.ID, c.Version)]++
		}
		if finished && len(chs) == 0 {
			mu.Lock()
			n := len(committed)
			mu.Unlock()
			if len(seen) >= n {
				break
			}
			time.Sleep(10 * time.Millisecond) // a gap may still be closing; poll until the deadline
		}
	}
	for ref := range committed {
		if seen[ref] != 1 {
			t.Errorf("%s seen %d times in the feed, want once", ref, seen[ref])
		}
	}
	for ref := range seen {
		if !committed[ref] {
			t.Errorf("feed has %s, which was never committed", ref)
		}
	}
}

// testTransaction checks WriteAll on stores that have it: all the writes
// or, when one loses its version check, none, with the loser named.
func testTransaction(t *testing.T, s fhir.Store) {
	tx, ok := s.(fhir.Transactor)
	if !ok {
		t.Skip("the store has no transactions")
	}
	ctx := context.Background()
	write(t, s, "Patient", "a", 1, fhir.OpCreate, 0, fhir.Token{Param: "identifier", System: "s", Code: "a"})
	mk := func(typ, id string, v int64, op fhir.Op, code string) fhir.Write {
		w := fhir.Write{Type: typ, ID: id, Version: v, Op: op, LastUpdated: base.Add(time.Minute)}
		if op != fhir.OpDelete {
			w.JSON = body(typ, id, v, "")
			w.Index = []fhir.IndexEntry{{Param: "identifier", Type: fhir.TypeToken, System: "s", Code: code}}
		}
		return w
	}
	// A stale version in the middle: nothing of the three is stored.
	_, err := tx.WriteAll(ctx, []fhir.Write{mk("Patient", "b", 1, fhir.OpCreate, "b"), mk("Patient", "a", 1, fhir.OpUpdate, "a2"), mk("Observation", "o", 1, fhir.OpCreate, "o")})
	var conflict *fhir.TxConflict
	if !errors.Is(err, fhir.ErrVersionConflict) || !errors.As(err, &conflict) || conflict.Index != 1 {
		t.Fatalf("a stale write in a transaction: got %v, want a *TxConflict at index 1", err)
	}
	for _, id := range []string{"b", "o"} {
		typ := map[string]string{"b": "Patient", "o": "Observation"}[id]
		if _, err := s.Read(ctx, typ, id); !errors.Is(err, fhir.ErrNotFound) {
			t.Errorf("%s/%s after the failed transaction: %v, want not found", typ, id, err)
		}
	}
	if chs, _ := s.Changes(ctx, 0, 100); len(chs) != 1 {
		t.Errorf("the failed transaction reached the change feed: %d changes, want 1", len(chs))
	}
	if found, _ := s.Find(ctx, fhir.Match{Type: "Patient", Tokens: []fhir.TokenMatch{{Param: "identifier", Values: []fhir.TokenValue{{System: "s", Code: "a2"}}}}}); len(found) != 0 {
		t.Errorf("the failed transaction left index entries: %v", found)
	}

	// All three go in, in order, with consecutive positions in the feed.
	chs, err := tx.WriteAll(ctx, []fhir.Write{mk("Patient", "b", 1, fhir.OpCreate, "b"), mk("Patient", "a", 2, fhir.OpUpdate, "a2"), mk("Observation", "o", 1, fhir.OpCreate, "o")})
	if err != nil || len(chs) != 3 {
		t.Fatalf("transaction: %d changes, %v", len(chs), err)
	}
	for i, want := range []string{"Patient/b/1", "Patient/a/2", "Observation/o/1"} {
		if got := fmt.Sprintf("%s/%s/%d", chs[i].Type, chs[i].ID, chs[i].Version); got != want {
			t.Errorf("change %d: %s, want %s", i, got, want)
		}
	}
	feed, _ := s.Changes(ctx, 1, 100)
	if len(feed) != 3 {
		t.Fatalf("the feed after the transaction: %d changes, want 3", len(feed))
	}
	for i := range feed {
		if feed[i].Seq != chs[i].Seq || feed[i].ID != chs[i].ID {
			t.Errorf("feed %d: %s seq %d, want %s seq %d", i, feed[i].ID, feed[i].Seq, chs[i].ID, chs[i].Seq)
		}
	}
	if found, _ := s.Find(ctx, fhir.Match{Type: "Patient", Tokens: []fhir.TokenMatch{{Param: "identifier", Values: []fhir.TokenValue{{System: "s", Code: "a2"}}}}}); len(found) != 1 {
		t.Errorf("identifier s|a2 after the transaction: %d found, want 1", len(found))
	}
	// A delete in a transaction.
	if _, err := tx.WriteAll(ctx, []fhir.Write{mk("Patient", "b", 2, fhir.OpDelete, "")}); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Read(ctx, "Patient", "b"); err != nil || !r.Deleted() {
		t.Errorf("Patient/b after a delete in a transaction: %+v, %v", r, err)
	}
}
