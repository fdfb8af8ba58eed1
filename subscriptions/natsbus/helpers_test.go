package natsbus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/fhirhub/fhirhub/fhir"
	"github.com/fhirhub/fhirhub/fhir/sqlitestore"
	"github.com/nats-io/nats.go/jetstream"
)

var testLogger = func() *slog.Logger {
	if os.Getenv("NATSBUS_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}()

// startServer runs an embedded NATS server with JetStream in a temporary
// directory until the test ends.
func startServer(tb testing.TB) *Server {
	tb.Helper()
	s := NewServer(tb.TempDir())
	if err := s.Open(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// openBus connects a bus to url (the stream created) until the test ends.
func openBus(tb testing.TB, url string) *Bus {
	tb.Helper()
	b := New("")
	b.URL = url
	b.Logger = testLogger
	if err := b.Open(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = b.Close(context.Background()) })
	return b
}

// openStore opens the embedded SQLite store in a temporary directory.
func openStore(tb testing.TB) *sqlitestore.Store {
	tb.Helper()
	s := sqlitestore.New(tb.TempDir())
	s.Synchronous = "NORMAL"
	if err := s.Open(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// startRelay runs a relay from feed to b until the test ends.
func startRelay(tb testing.TB, feed ChangeFeed, b *Bus, batch int) *Relay {
	tb.Helper()
	r := NewRelay(feed, b)
	r.Logger = testLogger
	if batch > 0 {
		r.BatchSize = batch
	}
	if err := r.Open(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = r.Close(context.Background()) })
	return r
}

// writer makes resources in a store: creates, updates and deletes of a few
// types, remembering each resource's version.
type writer struct {
	mu       sync.Mutex
	store    fhir.Store
	versions map[string]int64
	n        int
	notify   []func(int64)
}

func newWriter(s fhir.Store, notify ...func(int64)) *writer {
	return &writer{store: s, versions: map[string]int64{}, notify: notify}
}

var testTypes = []string{"Patient", "Observation", "Encounter"}

// next is the i-th write: a create of a new resource, an update of one, or
// every seventh a delete.
func (w *writer) next(prefix string) fhir.Write {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n++
	typ := testTypes[w.n%len(testTypes)]
	id := fmt.Sprintf("%s%d", prefix, w.n/2)
	key := typ + "/" + id
	v := w.versions[key] + 1
	w.versions[key] = v
	op := fhir.OpCreate
	if v > 1 {
		op = fhir.OpUpdate
	}
	wr := fhir.Write{Type: typ, ID: id, Version: v, LastUpdated: time.Now().UTC().Truncate(time.Millisecond), Op: op}
	if w.n%7 == 0 && v > 1 {
		wr.Op = fhir.OpDelete
	} else {
		wr.JSON = fmt.Appendf(nil, `{"resourceType":%q,"id":%q,"meta":{"versionId":"%d"},"n":%d}`, typ, id, v, w.n)
	}
	return wr
}

// write makes n writes one at a time and returns their changes.
func (w *writer) write(tb testing.TB, prefix string, n int) []fhir.Change {
	tb.Helper()
	var out []fhir.Change
	for range n {
		ch, err := w.store.Write(context.Background(), w.next(prefix))
		if err != nil {
			tb.Fatal(err)
		}
		for _, f := range w.notify {
			f(ch.Seq)
		}
		out = append(out, ch)
	}
	return out
}

// bulk makes n creates in transactions of up to 500 (fast set-up).
func bulk(tb testing.TB, s fhir.Store, prefix string, n int) {
	tb.Helper()
	t, ok := s.(fhir.Transactor)
	if !ok {
		tb.Fatalf("%T cannot write transactions", s)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	for i := 0; i < n; i += 500 {
		var ws []fhir.Write
		for j := i; j < min(n, i+500); j++ {
			id := fmt.Sprintf("%s%d", prefix, j)
			ws = append(ws, fhir.Write{Type: "Patient", ID: id, Version: 1, LastUpdated: now, Op: fhir.OpCreate,
				JSON: fmt.Appendf(nil, `{"resourceType":"Patient","id":%q,"meta":{"versionId":"1"},"active":true}`, id)})
		}
		if _, err := t.WriteAll(context.Background(), ws); err != nil {
			tb.Fatal(err)
		}
	}
}

// feed is the store's whole change feed.
func feed(tb testing.TB, s fhir.Store) []fhir.Change {
	tb.Helper()
	var out []fhir.Change
	var after int64
	for {
		chs, err := s.Changes(context.Background(), after, 1000)
		if err != nil {
			tb.Fatal(err)
		}
		if len(chs) == 0 {
			return out
		}
		out = append(out, chs...)
		after = chs[len(chs)-1].Seq
	}
}

// streamLen is the stream's last sequence (0 before the stream exists).
func streamLen(tb testing.TB, b *Bus) uint64 {
	tb.Helper()
	st, err := b.js.Stream(context.Background(), StreamName)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0
	}
	if err != nil {
		tb.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return info.State.LastSeq
}

// streamChanges decodes every message of the stream, in stream order.
func streamChanges(tb testing.TB, b *Bus) []fhir.Change {
	tb.Helper()
	ctx := context.Background()
	st, err := b.js.Stream(ctx, StreamName)
	if err != nil {
		tb.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	var out []fhir.Change
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			tb.Fatalf("stream message %d: %v", seq, err)
		}
		ch, err := DecodeChange(m.Header, m.Data)
		if err != nil {
			tb.Fatalf("stream message %d: %v", seq, err)
		}
		if m.Subject != Subject(ch.Type) {
			tb.Errorf("message %d: subject %s, want %s", seq, m.Subject, Subject(ch.Type))
		}
		if got := m.Header.Get(jetstream.MsgIDHeader); got != fmt.Sprint(ch.Seq) {
			tb.Errorf("message %d: Nats-Msg-Id %q, want %d", seq, got, ch.Seq)
		}
		out = append(out, ch)
	}
	return out
}

// waitFor polls cond until it returns nil or the deadline passes.
func waitFor(tb testing.TB, timeout time.Duration, cond func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("after %s: %v", timeout, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitPublished waits until the stream holds as many messages as the feed has changes.
func waitPublished(tb testing.TB, b *Bus, s fhir.Store, timeout time.Duration) {
	tb.Helper()
	want := len(feed(tb, s))
	waitFor(tb, timeout, func() error {
		if got := streamLen(tb, b); got < uint64(want) {
			return fmt.Errorf("stream holds %d messages, want %d", got, want)
		}
		return nil
	})
}

// checkExactlyOnce compares the stream with the feed: every change once, in
// order, with its content.
func checkExactlyOnce(tb testing.TB, b *Bus, s fhir.Store) {
	tb.Helper()
	want := feed(tb, s)
	got := streamChanges(tb, b)
	for i := 1; i < len(got); i++ {
		if got[i].Seq <= got[i-1].Seq {
			tb.Fatalf("stream messages %d and %d: Seq %d then %d, want strictly increasing", i, i+1, got[i-1].Seq, got[i].Seq)
		}
	}
	if len(got) != len(want) {
		tb.Fatalf("got %d messages, want %d changes", len(got), len(want))
	}
	for i := range want {
		if err := sameChange(got[i], want[i]); err != nil {
			tb.Fatalf("message %d: %v", i+1, err)
		}
	}
}

func sameChange(got, want fhir.Change) error {
	if got.Seq != want.Seq || got.Type != want.Type || got.ID != want.ID || got.Version != want.Version || got.Op != want.Op || !got.LastUpdated.Equal(want.LastUpdated) || string(got.JSON) != string(want.JSON) {
		return fmt.Errorf("got %d %s/%s v%d %s %s %q, want %d %s/%s v%d %s %s %q",
			got.Seq, got.Type, got.ID, got.Version, got.Op, got.LastUpdated, got.JSON,
			want.Seq, want.Type, want.ID, want.Version, want.Op, want.LastUpdated, want.JSON)
	}
	return nil
}
