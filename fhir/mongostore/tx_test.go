package mongostore

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/fhirhub/fhirhub/fhir"
)

// txWrite is version v of Patient/id (an update when v > 1) with the
// identifier http://hospital/mrn|code.
func txWrite(id string, v int64, code string) fhir.Write {
	op := fhir.OpCreate
	if v > 1 {
		op = fhir.OpUpdate
	}
	return fhir.Write{Type: "Patient", ID: id, Version: v, Op: op, LastUpdated: base,
		JSON:  fmt.Appendf(nil, `{"resourceType":"Patient","id":%q,"v":%d}`, id, v),
		Index: []fhir.IndexEntry{{Param: "identifier", Type: fhir.TypeToken, System: "http://hospital/mrn", Code: code}}}
}

// crashAt stops WriteAll the n-th time it reaches step.
func crashAt(step string, n int) func(string) bool {
	return func(s string) bool {
		if s == step {
			n--
			return n == 0
		}
		return false
	}
}

func readVersion(t *testing.T, s *Store, id string) string {
	t.Helper()
	r, err := s.Read(context.Background(), "Patient", id)
	switch {
	case errors.Is(err, fhir.ErrNotFound):
		return "none"
	case err != nil:
		t.Fatalf("Read %s: %v", id, err)
	}
	return fmt.Sprintf("v%d %s", r.Version, r.JSON)
}

func historyOf(t *testing.T, s *Store, id string) string {
	t.Helper()
	h, err := s.History(context.Background(), fhir.HistoryQuery{Type: "Patient", ID: id, Count: 10})
	if err != nil {
		t.Fatalf("History %s: %v", id, err)
	}
	vs := make([]int64, len(h))
	for i, c := range h {
		vs[i] = c.Version
	}
	return fmt.Sprint(vs)
}

// pendingDocs counts the version documents that still carry a transaction.
func pendingDocs(t *testing.T, s *Store) int64 {
	t.Helper()
	n, err := s.versions.CountDocuments(context.Background(), bson.D{{Key: "tx", Value: bson.D{{Key: "$exists", Value: true}}}, {Key: "void", Value: bson.D{{Key: "$ne", Value: true}}}})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A writer killed after some versions went in and before the decision: a
// restarted store shows none of them, holds the feed at them until
// TxTimeout, then aborts the transaction, lets the feed go on and the
// versions be written again.
func TestTxCrashBeforeDecision(t *testing.T) {
	ctx := context.Background()
	fast := func(s *Store) { s.TxTimeout, s.GapTimeout, s.txBatch = time.Second, 200*time.Millisecond, 2 }
	s := newTestStore(t, fast)
	mustWrite(t, s, "Patient", "a", 1, mrn("1"))
	s.crashAt = crashAt("inserted", 1) // after the first batch: a/2 and b/1 in, c/1 not
	_, err := s.WriteAll(ctx, []fhir.Write{txWrite("a", 2, "2"), txWrite("b", 1, "3"), txWrite("c", 1, "4")})
	if !errors.Is(err, errCrashed) {
		t.Fatalf("WriteAll: got %v, want the crash", err)
	}
	if n := pendingDocs(t, s); n != 2 {
		t.Fatalf("%d pending versions after the crash, want 2 (the first batch)", n)
	}
	mustWrite(t, s, "Patient", "z", 1)

	s2 := openTestStore(t, s.Database, fast) // the restart
	if got := readVersion(t, s2, "a"); got != `v1 {"resourceType":"Patient","id":"a","v":1}` {
		t.Errorf("Read a while pending = %s, want v1", got)
	}
	if got := readVersion(t, s2, "b"); got != "none" {
		t.Errorf("Read b while pending = %s, want none", got)
	}
	if _, err := s2.VRead(ctx, "Patient", "a", 2); !errors.Is(err, fhir.ErrNotFound) {
		t.Errorf("VRead a/2 while pending: got %v, want ErrNotFound", err)
	}
	if got := fmt.Sprint(feed(t, s2, 0)); got != "[Patient/a/1]" {
		t.Errorf("feed while pending = %s, want [Patient/a/1] (a hole at the transaction)", got)
	}
	if _, err := s2.Write(ctx, txWrite("a", 2, "x")); !errors.Is(err, fhir.ErrVersionConflict) {
		t.Errorf("Write a/2 while pending: got %v, want ErrVersionConflict", err)
	}

	eventually(t, 10*time.Second, "the feed goes past the dead transaction", func() bool {
		return fmt.Sprint(feed(t, s2, 0)) == "[Patient/a/1 Patient/z/1]"
	})
	s3 := openTestStore(t, s.Database, fast) // another restart: the abort is durable
	if got := readVersion(t, s3, "a"); got != `v1 {"resourceType":"Patient","id":"a","v":1}` {
		t.Errorf("Read a after the abort = %s, want v1", got)
	}
	for _, id := range []string{"b", "c"} {
		if got := readVersion(t, s3, id); got != "none" {
			t.Errorf("Read %s after the abort = %s, want none", id, got)
		}
	}
	if got := historyOf(t, s3, "a"); got != "[1]" {
		t.Errorf("History of a = %s, want [1]", got)
	}
	if got := findIDs(t, s3, fhir.Match{Type: "Patient"}); got != "[a@1 z@1]" {
		t.Errorf("Find = %s, want [a@1 z@1]", got)
	}
	if got := searchIDs(t, s3, "Patient", "identifier=http://hospital/mrn|3"); got != "[]" {
		t.Errorf("Search for b's identifier = %s, want []", got)
	}
	if n := pendingDocs(t, s3); n != 0 {
		t.Errorf("%d versions of the aborted transaction are not voided", n)
	}
	// The aborted versions do not block their resources.
	mustWrite(t, s3, "Patient", "a", 2, mrn("22"))
	mustWrite(t, s3, "Patient", "b", 1, mrn("33"))
	if got := readVersion(t, s3, "a"); got != `v2 {"resourceType":"Patient","id":"a","v":2}` {
		t.Errorf("Read a after the rewrite = %s", got)
	}
	if r, err := s3.VRead(ctx, "Patient", "b", 1); err != nil || r.Version != 1 {
		t.Errorf("VRead b/1 after the rewrite: %+v, %v", r, err)
	}
	if got := historyOf(t, s3, "a"); got != "[2 1]" {
		t.Errorf("History of a after the rewrite = %s, want [2 1]", got)
	}
	if got := fmt.Sprint(feed(t, s3, 0)); got != "[Patient/a/1 Patient/z/1 Patient/a/2 Patient/b/1]" {
		t.Errorf("feed after the rewrite = %s", got)
	}
	if got := findIDs(t, s3, byMRN("22")); got != "[a@2]" {
		t.Errorf("Find a's new identifier = %s, want [a@2]", got)
	}
}

// A writer killed right after the commit decision, before the projection:
// a restarted store shows every version, and Find and Search find them.
func TestTxCrashAfterCommit(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t, func(s *Store) { s.GapTimeout = time.Hour; s.TxTimeout = time.Hour })
	mustWrite(t, s, "Patient", "a", 1, mrn("1"))
	s.crashAt = crashAt("decided", 1)
	obs := fhir.Write{Type: "Observation", ID: "o", Version: 1, Op: fhir.OpCreate, LastUpdated: base, JSON: []byte(`{"resourceType":"Observation","id":"o"}`)}
	_, err := s.WriteAll(ctx, []fhir.Write{txWrite("a", 2, "2"), txWrite("b", 1, "3"), obs})
	if !errors.Is(err, errCrashed) {
		t.Fatalf("WriteAll: got %v, want the crash", err)
	}
	if v := currentVersion(t, s, "Patient", "a"); v != 1 {
		t.Fatalf("current holds a/%d before the restart, want the stale a/1", v)
	}

	s2 := openTestStore(t, s.Database)
	if got := readVersion(t, s2, "a"); got != `v2 {"resourceType":"Patient","id":"a","v":2}` {
		t.Errorf("Read a = %s, want v2", got)
	}
	if r, err := s2.VRead(ctx, "Patient", "b", 1); err != nil || r.Version != 1 {
		t.Errorf("VRead b/1: %+v, %v", r, err)
	}
	if r, err := s2.Read(ctx, "Observation", "o"); err != nil || r.Version != 1 {
		t.Errorf("Read o: %+v, %v", r, err)
	}
	if got := historyOf(t, s2, "a"); got != "[2 1]" {
		t.Errorf("History of a = %s, want [2 1]", got)
	}
	if got := fmt.Sprint(feed(t, s2, 0)); got != "[Patient/a/1 Patient/a/2 Patient/b/1 Observation/o/1]" {
		t.Errorf("feed = %s", got)
	}
	if v := currentVersion(t, s2, "Patient", "a"); v != 2 {
		t.Errorf("current holds a/%d after Open, want a/2", v)
	}
	if got := findIDs(t, s2, fhir.Match{Type: "Patient"}); got != "[a@2 b@1]" {
		t.Errorf("Find = %s, want [a@2 b@1]", got)
	}
	if got := searchIDs(t, s2, "Patient", "identifier=http://hospital/mrn|2,http://hospital/mrn|3"); got != "[a@2 b@1]" {
		t.Errorf("Search = %s, want [a@2 b@1]", got)
	}
	if n, err := s2.Count(ctx, "Observation"); err != nil || n != 1 {
		t.Errorf("Count Observation = %d, %v; want 1", n, err)
	}
	// The next version of a goes on top of the transaction's.
	mustWrite(t, s2, "Patient", "a", 3)
}

// While a transaction is in flight, its versions are invisible and a
// single write to one of its resources loses.
func TestTxPendingBlocksWrites(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	mustWrite(t, s, "Patient", "a", 1)
	var during []string
	s.crashAt = func(step string) bool {
		if step != "inserted" {
			return false
		}
		_, err2 := s.Write(ctx, txWrite("a", 2, "w"))
		_, err3 := s.Write(ctx, txWrite("a", 3, "w"))
		during = []string{fmt.Sprint(errors.Is(err2, fhir.ErrVersionConflict)), fmt.Sprint(errors.Is(err3, fhir.ErrVersionConflict)),
			readVersion(t, s, "a"), readVersion(t, s, "b"), fmt.Sprint(feed(t, s, 0))}
		return false
	}
	chs, err := s.WriteAll(ctx, []fhir.Write{txWrite("a", 2, "2"), txWrite("b", 1, "3")})
	if err != nil || len(chs) != 2 {
		t.Fatalf("WriteAll: %d changes, %v", len(chs), err)
	}
	want := fmt.Sprint([]string{"true", "true", `v1 {"resourceType":"Patient","id":"a","v":1}`, "none", "[Patient/a/1]"})
	if got := fmt.Sprint(during); got != want {
		t.Errorf("while pending (conflict on a/2, on a/3, Read a, Read b, feed):\n got %s\nwant %s", got, want)
	}
	if got := readVersion(t, s, "a"); got != `v2 {"resourceType":"Patient","id":"a","v":2}` {
		t.Errorf("Read a after the commit = %s, want v2", got)
	}
	if got := fmt.Sprint(feed(t, s, 0)); got != "[Patient/a/1 Patient/a/2 Patient/b/1]" {
		t.Errorf("feed after the commit = %s", got)
	}
	if n := pendingDocs(t, s); n != 0 {
		t.Errorf("%d versions keep their tx field after the commit", n)
	}
}

// A version lost to another writer between the check and the insert
// aborts the transaction: what it inserted is voided at once (the feed does
// not wait for it), and nothing of it is visible.
func TestTxConflictDuringInsert(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t, func(s *Store) { s.GapTimeout = time.Hour; s.TxTimeout = time.Hour; s.txBatch = 2 })
	mustWrite(t, s, "Patient", "a", 1)
	s.crashAt = func(step string) bool {
		if step == "checked" {
			mustWrite(t, s, "Patient", "c", 1, mrn("other"))
		}
		return false
	}
	_, err := s.WriteAll(ctx, []fhir.Write{txWrite("a", 2, "2"), txWrite("b", 1, "3"), txWrite("c", 1, "4")})
	var conflict *fhir.TxConflict
	if !errors.Is(err, fhir.ErrVersionConflict) || !errors.As(err, &conflict) || conflict.Index != 2 {
		t.Fatalf("WriteAll: got %v, want a *TxConflict at index 2", err)
	}
	s.crashAt = nil
	mustWrite(t, s, "Patient", "z", 1)
	if got := fmt.Sprint(feed(t, s, 0)); got != "[Patient/a/1 Patient/c/1 Patient/z/1]" {
		t.Errorf("feed = %s, want no transaction and no wait", got)
	}
	if got := readVersion(t, s, "a"); got != `v1 {"resourceType":"Patient","id":"a","v":1}` {
		t.Errorf("Read a = %s, want v1", got)
	}
	if got := readVersion(t, s, "b"); got != "none" {
		t.Errorf("Read b = %s, want none", got)
	}
	if got := findIDs(t, s, byMRN("3")); got != "[]" {
		t.Errorf("Find b's identifier = %s, want []", got)
	}
	if n := pendingDocs(t, s); n != 0 {
		t.Errorf("%d versions of the aborted transaction are not voided", n)
	}
	if n, err := s.versions.CountDocuments(ctx, bson.D{{Key: "tx", Value: bson.D{{Key: "$exists", Value: true}}}, {Key: "void", Value: true}}); err != nil || n != 2 {
		t.Errorf("%d voided versions of the aborted transaction, %v; want 2 (the first batch)", n, err)
	}
	// A retry of the transaction, on the current versions, goes in.
	chs, err := s.WriteAll(ctx, []fhir.Write{txWrite("a", 2, "2"), txWrite("b", 1, "3"), txWrite("c", 2, "4")})
	if err != nil || len(chs) != 3 {
		t.Fatalf("WriteAll again: %d changes, %v", len(chs), err)
	}
	if got := historyOf(t, s, "a"); got != "[2 1]" {
		t.Errorf("History of a = %s, want [2 1]", got)
	}
	if got := fmt.Sprint(feed(t, s, 0)); got != "[Patient/a/1 Patient/c/1 Patient/z/1 Patient/a/2 Patient/b/1 Patient/c/2]" {
		t.Errorf("feed = %s", got)
	}
}

// BenchmarkWriteAll measures a transaction of 1,000 new resources.
func BenchmarkWriteAll(b *testing.B) {
	ctx := context.Background()
	s := newTestStore(b)
	for round := 0; b.Loop(); round++ {
		ws := make([]fhir.Write, 1000)
		for i := range ws {
			ws[i] = txWrite(fmt.Sprintf("r%d-%d", round, i), 1, fmt.Sprint(i))
		}
		if _, err := s.WriteAll(ctx, ws); err != nil {
			b.Fatal(err)
		}
	}
}
