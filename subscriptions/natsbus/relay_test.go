package natsbus

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/fhirhub/fhirhub/fhir"
	"github.com/fhirhub/fhirhub/fhir/mongostore"
	"github.com/fhirhub/fhirhub/fhir/mongostore/mongotest"
	"github.com/nats-io/nats.go"
)

func TestRelayPublishesBeforeAndAfterStart(t *testing.T) {
	srv := startServer(t)
	b := openBus(t, srv.ClientURL())
	store := openStore(t)
	w := newWriter(store)
	w.write(t, "before", 40)
	r := startRelay(t, store, b, 16)
	w.notify = append(w.notify, r.Notify)
	waitPublished(t, b, store, 10*time.Second)
	w.write(t, "after", 40)
	waitPublished(t, b, store, 10*time.Second)
	checkExactlyOnce(t, b, store)

	t.Run("Headers", func(t *testing.T) {
		st, err := b.js.Stream(context.Background(), StreamName)
		if err != nil {
			t.Fatal(err)
		}
		want := feed(t, store)
		for i, ch := range want {
			m, err := st.GetMsg(context.Background(), uint64(i+1))
			if err != nil {
				t.Fatal(err)
			}
			hdr := map[string]string{
				HeaderSeq: fmt.Sprint(ch.Seq), HeaderType: ch.Type, HeaderID: ch.ID, HeaderVersion: fmt.Sprint(ch.Version),
				HeaderOp: string(ch.Op), HeaderLastUpdated: fhir.FormatInstant(ch.LastUpdated), "Nats-Msg-Id": fmt.Sprint(ch.Seq),
			}
			for k, v := range hdr {
				if got := m.Header.Get(k); got != v {
					t.Errorf("message %d: %s %q, want %q", i+1, k, got, v)
				}
			}
			if ch.Op == fhir.OpDelete && len(m.Data) != 0 {
				t.Errorf("message %d: a delete with a body %q", i+1, m.Data)
			}
			if ch.Op != fhir.OpDelete && string(m.Data) != string(ch.JSON) {
				t.Errorf("message %d: body %q, want %q", i+1, m.Data, ch.JSON)
			}
		}
	})
	t.Run("Stats", func(t *testing.T) {
		want := feed(t, store)
		st := r.Stats()
		if st.Published != uint64(len(want)) || st.LastPublished != want[len(want)-1].Seq || st.Lag() != 0 {
			t.Errorf("got %+v (lag %d), want %d published up to %d, lag 0", st, st.Lag(), len(want), want[len(want)-1].Seq)
		}
	})
}

// A relay stopped abruptly in the middle of a backlog (its context cancelled,
// its connection closed without draining) and a new one started: nothing
// missing, nothing twice.
func TestRelayCrashResumes(t *testing.T) {
	srv := startServer(t)
	store := openStore(t)
	bulk(t, store, "p", 3000)
	for round := range 3 {
		b := New("")
		b.URL = srv.ClientURL()
		if err := b.Open(context.Background()); err != nil {
			t.Fatal(err)
		}
		r := NewRelay(store, b)
		r.BatchSize = 100
		if err := r.Open(context.Background()); err != nil {
			t.Fatal(err)
		}
		start := streamLen(t, b)
		waitFor(t, 10*time.Second, func() error {
			if n := streamLen(t, b); n < start+50 {
				return fmt.Errorf("round %d: %d published", round, n)
			}
			return nil
		})
		// Crash: no drain, no waiting for acknowledgements.
		r.cancel()
		b.nc.Close()
		<-r.done
	}
	if n := streamLen(t, openBus(t, srv.ClientURL())); n >= 3000 {
		t.Logf("the crashes came late: %d of 3000 already published", n)
	}
	b := openBus(t, srv.ClientURL())
	startRelay(t, store, b, 100)
	waitPublished(t, b, store, 20*time.Second)
	checkExactlyOnce(t, b, store)
}

// Two relays on one store and one stream, as two replicas run them, while
// writes go on: every change once, in order.
func TestTwoRelaysPublishOnce(t *testing.T) {
	srv := startServer(t)
	store := openStore(t)
	b1, b2 := openBus(t, srv.ClientURL()), openBus(t, srv.ClientURL())
	r1, r2 := startRelay(t, store, b1, 8), startRelay(t, store, b2, 8)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := newWriter(store, r1.Notify, r2.Notify)
			w.write(t, fmt.Sprintf("g%d-", g), 150)
		}()
	}
	wg.Wait()
	waitPublished(t, b1, store, 20*time.Second)
	checkExactlyOnce(t, b1, store)
	s1, s2 := r1.Stats(), r2.Stats()
	if s1.Published+s2.Published != 600 {
		t.Errorf("relays stored %d + %d messages, want 600 in all", s1.Published, s2.Published)
	}
	t.Logf("relay 1 published %d, relay 2 %d", s1.Published, s2.Published)
}

// NATS stops while writes go on, then starts again on the same directory:
// the changes made meanwhile arrive after it, none lost, none twice.
func TestRelaySurvivesNATSRestart(t *testing.T) {
	dir := t.TempDir()
	srv := NewServer(dir)
	if err := srv.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	addr := srv.Addr()
	b := openBus(t, srv.ClientURL())
	store := openStore(t)
	r := startRelay(t, store, b, 32)
	w := newWriter(store, r.Notify)
	w.write(t, "up", 50)
	waitPublished(t, b, store, 10*time.Second)

	if err := srv.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() error {
		if b.nc.IsConnected() {
			return fmt.Errorf("still connected")
		}
		return nil
	})
	w.write(t, "down", 100) // the store takes writes while NATS is away

	srv2 := NewServer(dir)
	srv2.Listen = addr
	if err := srv2.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv2.Close(context.Background()) })
	waitFor(t, 10*time.Second, func() error {
		if !b.nc.IsConnected() {
			return fmt.Errorf("not reconnected")
		}
		return nil
	})
	w.write(t, "again", 20)
	waitPublished(t, b, store, 20*time.Second)
	checkExactlyOnce(t, b, store)
}

// Every message expired: the relay resumes from its saved position and
// publishes only what is new.
func TestRelayResumesAfterExpiry(t *testing.T) {
	srv := startServer(t)
	b := New("")
	b.URL, b.MaxAge = srv.ClientURL(), time.Second
	if err := b.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	store := openStore(t)
	w := newWriter(store)
	w.write(t, "old", 10)
	r := startRelay(t, store, b, 0)
	waitPublished(t, b, store, 10*time.Second)
	// The position is saved once the relay has caught up.
	waitFor(t, 10*time.Second, func() error {
		pos, err := r.loadPosition(context.Background())
		if err != nil || pos.StreamSeq != 10 {
			return fmt.Errorf("position %+v, %v", pos, err)
		}
		return nil
	})
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, _ := b.js.Stream(context.Background(), StreamName)
	waitFor(t, 10*time.Second, func() error {
		info, err := st.Info(context.Background())
		if err != nil || info.State.Msgs != 0 {
			return fmt.Errorf("%d messages left, %v", info.State.Msgs, err)
		}
		return nil
	})
	w.write(t, "new", 5)
	startRelay(t, store, b, 0)
	waitFor(t, 10*time.Second, func() error {
		if n := streamLen(t, b); n < 15 {
			return fmt.Errorf("last sequence %d, want 15", n)
		}
		return nil
	})
	got := streamChanges(t, b)
	all := feed(t, store)
	if len(got) > 5 {
		got = got[len(got)-5:]
	}
	if len(got) != 5 {
		t.Fatalf("got %d messages after expiry, want 5", len(got))
	}
	for i, ch := range got {
		if err := sameChange(ch, all[10+i]); err != nil {
			t.Error(err)
		}
	}
	if n := streamLen(t, b); n != 15 {
		t.Errorf("last sequence %d, want 15 (nothing published twice)", n)
	}
}

// The same exactly-once property on the MongoDB store (FerretDB embedded),
// whose feed may hold gaps: two relays, concurrent writers.
func TestRelayMongoDB(t *testing.T) {
	if testing.Short() {
		t.Skip("MongoDB (FerretDB) is slow; skipped under -short")
	}
	uri, stop, err := mongotest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	store := mongostore.New(uri, fmt.Sprintf("natsbus_%d", os.Getpid()))
	store.Logger = testLogger
	if err := store.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close(context.Background()) })
	srv := startServer(t)
	b1, b2 := openBus(t, srv.ClientURL()), openBus(t, srv.ClientURL())
	w := newWriter(store)
	w.write(t, "before", 10)
	r1, r2 := startRelay(t, store, b1, 8), startRelay(t, store, b2, 8)
	var wg sync.WaitGroup
	for g := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := newWriter(store, r1.Notify, r2.Notify)
			w.write(t, fmt.Sprintf("g%d-", g), 20)
		}()
	}
	wg.Wait()
	waitPublished(t, b1, store, 30*time.Second)
	checkExactlyOnce(t, b1, store)
}

func TestDecodeChange(t *testing.T) {
	ch := fhir.Change{Seq: 7, Resource: fhir.Resource{Type: "Patient", ID: "a", Version: 2, Op: fhir.OpUpdate,
		LastUpdated: time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC), JSON: []byte(`{"resourceType":"Patient","id":"a"}`)}}
	t.Run("RoundTrip", func(t *testing.T) {
		m := EncodeChange(ch)
		got, err := DecodeChange(m.Header, m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if err := sameChange(got, ch); err != nil {
			t.Error(err)
		}
		if m.Subject != "fhir.changes.Patient" {
			t.Errorf("subject %s", m.Subject)
		}
	})
	t.Run("DeleteHasNoBody", func(t *testing.T) {
		del := ch
		del.Op, del.JSON = fhir.OpDelete, nil
		m := EncodeChange(del)
		if len(m.Data) != 0 {
			t.Errorf("body %q", m.Data)
		}
	})
	for _, tc := range []struct{ name, header, value string }{
		{"BadSeq", HeaderSeq, "x"},
		{"NoType", HeaderType, ""},
		{"BadVersion", HeaderVersion, "0"},
		{"BadOp", HeaderOp, "patch"},
		{"BadLastUpdated", HeaderLastUpdated, "yesterday"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := EncodeChange(ch)
			h := nats.Header{}
			for k, v := range m.Header {
				h[k] = v
			}
			h.Set(tc.header, tc.value)
			if _, err := DecodeChange(h, m.Data); err == nil {
				t.Errorf("%s %q accepted", tc.header, tc.value)
			}
		})
	}
}

// An external NATS that is down when the server starts: Open succeeds, the
// store takes writes, and everything is published once NATS is up.
func TestRelayStartsBeforeNATS(t *testing.T) {
	srv := startServer(t)
	addr := srv.Addr()
	if err := srv.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	b := New("")
	b.URL, b.ConnectTimeout, b.Logger = "nats://"+addr, 200*time.Millisecond, testLogger
	if err := b.Open(context.Background()); err != nil {
		t.Fatalf("Open with NATS down: %v", err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	store := openStore(t)
	r := startRelay(t, store, b, 0)
	w := newWriter(store, r.Notify)
	w.write(t, "early", 20)

	srv2 := NewServer(t.TempDir())
	srv2.Listen = addr
	if err := srv2.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv2.Close(context.Background()) })
	waitFor(t, 10*time.Second, func() error {
		if !b.nc.IsConnected() {
			return fmt.Errorf("not connected")
		}
		return nil
	})
	w.write(t, "late", 5)
	waitPublished(t, b, store, 15*time.Second)
	checkExactlyOnce(t, b, store)
}
