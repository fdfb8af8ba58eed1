package mongostore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sort"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/fhirhub/fhirhub/fhir"
	"github.com/fhirhub/fhirhub/fhir/mongostore/mongotest"
	"github.com/fhirhub/fhirhub/fhir/storetest"
)

// testURI is the server every test uses: FHIR_TEST_MONGODB_URI, or FerretDB
// embedded in this test binary.
var testURI string

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	uri, stop, err := mongotest.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stop()
	testURI = uri
	return m.Run()
}

// newTestStore opens a store on a fresh database, dropped by the cleanup.
func newTestStore(t testing.TB, tune ...func(*Store)) *Store {
	t.Helper()
	var b [8]byte
	_, _ = rand.Read(b[:])
	name := "fhirtest_" + hex.EncodeToString(b[:])
	s := openTestStore(t, name, tune...)
	t.Cleanup(func() {
		if err := s.versions.Database().Drop(context.Background()); err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})
	return s
}

// openTestStore opens a store on database name, closed by the cleanup.
func openTestStore(t testing.TB, name string, tune ...func(*Store)) *Store {
	t.Helper()
	s := New(testURI, name)
	for _, f := range tune {
		f(s)
	}
	if err := s.Open(context.Background()); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) fhir.Store { return newTestStore(t) },
		storetest.Options{Concurrency: 4, WritesPerWriter: 10})
}

var base = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func mustWrite(t *testing.T, s *Store, typ, id string, v int64, toks ...fhir.Token) fhir.Change {
	t.Helper()
	op := fhir.OpCreate
	if v > 1 {
		op = fhir.OpUpdate
	}
	ch, err := s.Write(context.Background(), fhir.Write{Type: typ, ID: id, Version: v, Op: op, LastUpdated: base,
		JSON: fmt.Appendf(nil, `{"resourceType":%q,"id":%q,"v":%d}`, typ, id, v), Index: toks})
	if err != nil {
		t.Fatalf("Write %s/%s v%d: %v", typ, id, v, err)
	}
	return ch
}

func feed(t *testing.T, s *Store, after int64) []string {
	t.Helper()
	chs, err := s.Changes(context.Background(), after, 100)
	if err != nil {
		t.Fatalf("Changes: %v", err)
	}
	out := make([]string, len(chs))
	for i, c := range chs {
		out[i] = versionID(c.Type, c.ID, c.Version)
	}
	return out
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A writer that took a feed position and crashed holds the feed back until the
// position is GapTimeout older than the next write; then a reader voids it,
// the feed goes on, and the late writer can no longer use the position.
func TestCrashGap(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t, func(s *Store) { s.GapTimeout = 500 * time.Millisecond })
	mustWrite(t, s, "Patient", "a", 1)
	lost, err := s.nextSeq(ctx) // the crashed writer's position
	if err != nil {
		t.Fatal(err)
	}
	b := mustWrite(t, s, "Patient", "b", 1)
	if got := fmt.Sprint(feed(t, s, 0)); got != "[Patient/a/1]" {
		t.Fatalf("feed before GapTimeout = %s, want [Patient/a/1] (stop at the hole)", got)
	}
	eventually(t, 10*time.Second, "feed skips the abandoned position", func() bool {
		return fmt.Sprint(feed(t, s, 0)) == "[Patient/a/1 Patient/b/1]"
	})
	// The crashed writer wakes up: its position is taken by the void.
	_, err = s.versions.InsertOne(ctx, &versionDoc{ID: versionID("Patient", "late", 1), Type: "Patient", RID: "late", V: 1, Seq: lost, Op: "create"})
	if err == nil {
		t.Fatalf("a version landed at voided position %d", lost)
	}
	c := mustWrite(t, s, "Patient", "c", 1)
	if got := fmt.Sprint(feed(t, s, b.Seq)); got != "[Patient/c/1]" {
		t.Errorf("feed after %d = %s, want [Patient/c/1]", b.Seq, got)
	}
	if c.Seq != b.Seq+1 {
		t.Errorf("seq of c = %d, want %d", c.Seq, b.Seq+1)
	}
	// The projection checkpoint got past the hole too.
	found, err := s.Find(ctx, fhir.Match{Type: "Patient"})
	if err != nil || len(found) != 3 {
		t.Errorf("Find: %d resources, %v; want 3", len(found), err)
	}
	if cp, err := s.counter(ctx, projectedCounter); err != nil || cp != c.Seq {
		t.Errorf("checkpoint = %d, %v; want %d", cp, err, c.Seq)
	}
}

// A writer whose position a reader voided takes a fresh one, transparently.
func TestVoidedPositionRetried(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	a := mustWrite(t, s, "Patient", "a", 1)
	if ok, err := s.void(ctx, a.Seq+1); !ok || err != nil {
		t.Fatalf("void %d: %v, %v", a.Seq+1, ok, err)
	}
	b := mustWrite(t, s, "Patient", "b", 1)
	if b.Seq != a.Seq+2 {
		t.Errorf("seq = %d, want %d (the voided position skipped)", b.Seq, a.Seq+2)
	}
	if got := fmt.Sprint(feed(t, s, 0)); got != "[Patient/a/1 Patient/b/1]" {
		t.Errorf("feed = %s", got)
	}
}

// A writer that loses the race voids its position at once, so the feed does
// not wait GapTimeout for it.
func TestLostWriteVoidsItsPosition(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t, func(s *Store) { s.GapTimeout = time.Hour })
	mustWrite(t, s, "Patient", "a", 1)
	// Past the version check (as if it raced with the first writer), the
	// insert of the same version must lose.
	loser := &versionDoc{ID: versionID("Patient", "a", 1), Type: "Patient", RID: "a", V: 1, Op: "create"}
	if err := s.commit(ctx, loser); !errors.Is(err, fhir.ErrVersionConflict) {
		t.Fatalf("second insert of Patient/a/1: got %v, want ErrVersionConflict", err)
	}
	mustWrite(t, s, "Patient", "b", 1)
	if got := fmt.Sprint(feed(t, s, 0)); got != "[Patient/a/1 Patient/b/1]" {
		t.Errorf("feed = %s, want both writes without waiting", got)
	}
	r, err := s.Read(ctx, "Patient", "a")
	if err != nil || r.Version != 1 || string(r.JSON) != `{"resourceType":"Patient","id":"a","v":1}` {
		t.Errorf("Read = %+v, %v", r, err)
	}
}

func mrn(code string) fhir.Token {
	return fhir.Token{Param: "identifier", System: "http://hospital/mrn", Code: code}
}

func findIDs(t *testing.T, s *Store, m fhir.Match) string {
	t.Helper()
	rs, err := s.Find(context.Background(), m)
	if err != nil {
		t.Fatalf("Find: %v", err)
	}
	ids := make([]string, len(rs))
	for i, r := range rs {
		ids[i] = fmt.Sprintf("%s@%d", r.ID, r.Version)
	}
	sort.Strings(ids)
	return fmt.Sprint(ids)
}

func byMRN(code string) fhir.Match {
	return fhir.Match{Type: "Patient", Tokens: []fhir.TokenMatch{{Param: "identifier",
		Values: []fhir.TokenValue{{System: "http://hospital/mrn", Code: code}}}}}
}

// commitOnly writes a version as a writer that crashed before updating current.
func commitOnly(t *testing.T, s *Store, typ, id string, v int64, toks ...fhir.Token) {
	t.Helper()
	doc := &versionDoc{ID: versionID(typ, id, v), Type: typ, RID: id, V: v, Op: string(fhir.OpUpdate),
		TS: bson.NewDateTimeFromTime(base), JSON: fmt.Appendf(nil, `{"v":%d}`, v), Ix: toEntryList(toks)}
	if err := s.commit(context.Background(), doc); err != nil {
		t.Fatalf("commit %s: %v", doc.ID, err)
	}
}

func currentVersion(t *testing.T, s *Store, typ, id string) int64 {
	t.Helper()
	var d versionDoc
	if err := s.currentOf(typ).FindOne(context.Background(), bson.D{{Key: "_id", Value: currentID(typ, id)}}).Decode(&d); err != nil {
		t.Fatalf("read current %s/%s: %v", typ, id, err)
	}
	return d.V
}

// A crash between the version insert and the projection update: Open repairs
// current, and Read never depended on it.
func TestStaleProjectionRepairedByOpen(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	mustWrite(t, s, "Patient", "a", 1, mrn("1"))
	commitOnly(t, s, "Patient", "a", 2, mrn("2"))
	if v := currentVersion(t, s, "Patient", "a"); v != 1 {
		t.Fatalf("current before repair holds v%d, want the stale v1", v)
	}
	s2 := openTestStore(t, s.Database)
	if v := currentVersion(t, s2, "Patient", "a"); v != 2 {
		t.Errorf("current after Open holds v%d, want v2", v)
	}
	if got := findIDs(t, s2, byMRN("2")); got != "[a@2]" {
		t.Errorf("Find new token = %s, want [a@2]", got)
	}
	if got := findIDs(t, s2, byMRN("1")); got != "[]" {
		t.Errorf("Find old token = %s, want []", got)
	}
	r, err := s2.Read(ctx, "Patient", "a")
	if err != nil || r.Version != 2 || string(r.JSON) != `{"v":2}` {
		t.Errorf("Read = v%d %s, %v; want v2", r.Version, r.JSON, err)
	}
}

// Find does not wait for a restart: it repairs a stale projection first.
func TestStaleProjectionRepairedByFind(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	mustWrite(t, s, "Patient", "a", 1, mrn("1"))
	mustWrite(t, s, "Patient", "b", 1, mrn("1"))
	commitOnly(t, s, "Patient", "a", 2, mrn("2"))
	commitOnly(t, s, "Patient", "c", 1, mrn("1"))
	if got := findIDs(t, s, byMRN("1")); got != "[b@1 c@1]" {
		t.Errorf("Find old token = %s, want [b@1 c@1]", got)
	}
	if got := findIDs(t, s, byMRN("2")); got != "[a@2]" {
		t.Errorf("Find new token = %s, want [a@2]", got)
	}
	if n, err := s.Count(ctx, "Patient"); err != nil || n != 3 {
		t.Errorf("Count = %d, %v; want 3", n, err)
	}
	seq, _ := s.counter(ctx, seqCounter)
	if cp, err := s.counter(ctx, projectedCounter); err != nil || cp != seq {
		t.Errorf("checkpoint = %d, %v; want %d", cp, err, seq)
	}
}

func TestCount(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	mustWrite(t, s, "Patient", "a", 1)
	mustWrite(t, s, "Patient", "b", 1)
	mustWrite(t, s, "Observation", "o", 1)
	if _, err := s.Write(ctx, fhir.Write{Type: "Patient", ID: "b", Version: 2, Op: fhir.OpDelete, LastUpdated: base}); err != nil {
		t.Fatal(err)
	}
	for typ, want := range map[string]int64{"Patient": 1, "Observation": 1, "Encounter": 0} {
		if n, err := s.Count(ctx, typ); err != nil || n != want {
			t.Errorf("Count(%s) = %d, %v; want %d", typ, n, err, want)
		}
	}
}

// Systems and codes may hold the separators of any naive encoding.
func TestFindTokenEncoding(t *testing.T) {
	s := newTestStore(t)
	tok := func(sys, code string) fhir.Token { return fhir.Token{Param: "identifier", System: sys, Code: code} }
	mustWrite(t, s, "Patient", "a", 1, tok("s|x", "1"), tok("", "%1F"))
	mustWrite(t, s, "Patient", "b", 1, tok("s", "x|1"), tok("s\x1fe\x1fx", "2"))
	mustWrite(t, s, "Patient", "c", 1, fhir.Token{Param: "other", System: "s", Code: "x|1"})
	match := func(vals ...fhir.TokenValue) fhir.Match {
		return fhir.Match{Type: "Patient", Tokens: []fhir.TokenMatch{{Param: "identifier", Values: vals}}}
	}
	tests := []struct {
		name string
		m    fhir.Match
		want string
	}{
		{"PipeInSystem", match(fhir.TokenValue{System: "s|x", Code: "1"}), "[a@1]"},
		{"PipeInCode", match(fhir.TokenValue{System: "s", Code: "x|1"}), "[b@1]"},
		{"SeparatorInSystem", match(fhir.TokenValue{System: "s\x1fe\x1fx", Code: "2"}), "[b@1]"},
		{"SeparatorLookalike", match(fhir.TokenValue{System: "s", Code: "e\x1fx\x1f2"}), "[]"},
		{"EscapeLookalike", match(fhir.TokenValue{Code: "\x1f"}), "[]"},
		{"PercentCode", match(fhir.TokenValue{Code: "%1F"}), "[a@1]"},
		{"SystemOnly", match(fhir.TokenValue{System: "s"}), "[b@1]"},
		{"AnyToken", match(fhir.TokenValue{AnySystem: true}), "[a@1 b@1]"},
		{"OtherParam", match(fhir.TokenValue{Code: "x|1", AnySystem: true}), "[b@1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := findIDs(t, s, tt.m); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

// Bounds finer than the stored millisecond compare as the FHIR instant would.
func TestFindLastUpdatedSubMillisecond(t *testing.T) {
	s := newTestStore(t)
	mustWrite(t, s, "Patient", "a", 1) // at base
	half := base.Add(500 * time.Microsecond)
	tests := []struct {
		op   string
		at   time.Time
		want string
	}{
		{"ge", half, "[]"}, {"gt", half, "[]"}, {"lt", half, "[a@1]"}, {"le", half, "[a@1]"},
		{"ge", base, "[a@1]"}, {"gt", base, "[]"}, {"lt", base, "[]"}, {"le", base, "[a@1]"},
		{"lt", base.Add(-500 * time.Microsecond), "[]"}, {"gt", base.Add(-500 * time.Microsecond), "[a@1]"},
	}
	for _, tt := range tests {
		t.Run(tt.op+"/"+tt.at.Format("05.000000"), func(t *testing.T) {
			m := fhir.Match{Type: "Patient", LastUpdated: []fhir.DateBound{{Op: tt.op, Time: tt.at}}}
			if got := findIDs(t, s, m); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
	if _, err := s.Find(context.Background(), fhir.Match{Type: "Patient", LastUpdated: []fhir.DateBound{{Op: "eq", Time: base}}}); err == nil {
		t.Error("Find with op eq: got no error")
	}
}

func TestDatabaseName(t *testing.T) {
	tests := []struct {
		name, uri, database, want string
	}{
		{"Configured", "mongodb://h/fromuri", "configured", "configured"},
		{"FromURI", "mongodb://h:27017/fromuri?replicaSet=rs0", "", "fromuri"},
		{"SeveralHosts", "mongodb://u:p@h1:27017,h2:27017/fromuri", "", "fromuri"},
		{"Default", "mongodb://h:27017/", "", DefaultDatabase},
		{"DefaultNoSlash", "mongodb://h", "", DefaultDatabase},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := databaseName(tt.uri, tt.database)
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if _, err := databaseName("http://h/x", ""); err == nil {
		t.Error("http URI: got no error")
	}
}

// Writers racing on one resource leave current at its latest version, even on
// FerretDB, whose conditional updates are not atomic.
func TestProjectionConvergesUnderConcurrency(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	mustWrite(t, s, "Patient", "hot", 1, mrn("1"))
	const writers, writes = 4, 8
	errs := make(chan error, writers)
	for range writers {
		go func() {
			for range writes {
				for {
					cur, err := s.Read(ctx, "Patient", "hot")
					if err != nil {
						errs <- err
						return
					}
					v := cur.Version + 1
					_, err = s.Write(ctx, fhir.Write{Type: "Patient", ID: "hot", Version: v, Op: fhir.OpUpdate, LastUpdated: base,
						JSON: []byte(`{}`), Index: []fhir.Token{mrn(fmt.Sprint(v))}})
					if err == nil {
						break
					}
					if !errors.Is(err, fhir.ErrVersionConflict) {
						errs <- err
						return
					}
				}
			}
			errs <- nil
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	const last = writers*writes + 1
	if v := currentVersion(t, s, "Patient", "hot"); v != last {
		t.Errorf("current holds v%d, want v%d", v, last)
	}
	if got := findIDs(t, s, byMRN(fmt.Sprint(last))); got != fmt.Sprintf("[hot@%d]", last) {
		t.Errorf("Find latest token = %s", got)
	}
	if got := findIDs(t, s, byMRN(fmt.Sprint(last-1))); got != "[]" {
		t.Errorf("Find previous token = %s, want []", got)
	}
}

func TestOpenResolvesDatabase(t *testing.T) {
	u, err := url.Parse(testURI)
	if err != nil {
		t.Skipf("cannot put a database into %s: %v", testURI, err)
	}
	u.Path = "/fhirtest_uri_" + rand.Text()[:12]
	s := New(u.String(), "")
	if err := s.Open(context.Background()); err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close(context.Background())
	defer s.versions.Database().Drop(context.Background())
	if want := u.Path[1:]; s.Database != want {
		t.Errorf("Database = %q, want %q", s.Database, want)
	}
}
