package natsbus

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/fhirhub/fhirhub/fhir"
)

func TestConsumer(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	b := openBus(t, srv.ClientURL())
	store := openStore(t)
	w := newWriter(store)
	w.write(t, "c", 30)
	startRelay(t, store, b, 0)
	waitPublished(t, b, store, 10*time.Second)
	var patients []fhir.Change
	for _, ch := range feed(t, store) {
		if ch.Type == "Patient" {
			patients = append(patients, ch)
		}
	}

	// fetch reads n changes from a consumer, acknowledging each.
	fetch := func(t *testing.T, c *Consumer, n int) []fhir.Change {
		t.Helper()
		var got []fhir.Change
		waitFor(t, 10*time.Second, func() error {
			ds, err := c.Fetch(ctx, n-len(got), 100*time.Millisecond)
			if err != nil {
				return err
			}
			for _, d := range ds {
				if err := d.Ack(ctx); err != nil {
					return err
				}
				got = append(got, d.Change)
			}
			if len(got) < n {
				return fmt.Errorf("got %d changes, want %d", len(got), n)
			}
			return nil
		})
		return got
	}

	t.Run("FilteredByType", func(t *testing.T) {
		c, err := b.Consumer(ctx, ConsumerConfig{Durable: "patients", Types: []string{"Patient"}})
		if err != nil {
			t.Fatal(err)
		}
		half := len(patients) / 2
		got := fetch(t, c, half)
		// The same durable consumer, created again, goes on after what was acknowledged.
		c, err = b.Consumer(ctx, ConsumerConfig{Durable: "patients", Types: []string{"Patient"}})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fetch(t, c, len(patients)-half)...)
		for i := range patients {
			if err := sameChange(got[i], patients[i]); err != nil {
				t.Errorf("change %d: %v", i, err)
			}
		}
		if ds, err := c.Fetch(ctx, 1, 50*time.Millisecond); err != nil || len(ds) != 0 {
			t.Errorf("after the last: got %d changes, %v; want none", len(ds), err)
		}
	})
	t.Run("NakRedelivers", func(t *testing.T) {
		c, err := b.Consumer(ctx, ConsumerConfig{Durable: "all"})
		if err != nil {
			t.Fatal(err)
		}
		var first *Delivery
		waitFor(t, 5*time.Second, func() error {
			ds, err := c.Fetch(ctx, 1, 100*time.Millisecond)
			if err != nil || len(ds) != 1 {
				return fmt.Errorf("got %d, %v", len(ds), err)
			}
			first = ds[0]
			return nil
		})
		if first.StreamSeq != 1 {
			t.Errorf("first delivery at stream sequence %d, want 1", first.StreamSeq)
		}
		if err := first.Nak(); err != nil {
			t.Fatal(err)
		}
		// It comes again (not necessarily before the next ones).
		waitFor(t, 5*time.Second, func() error {
			ds, err := c.Fetch(ctx, 10, 100*time.Millisecond)
			if err != nil {
				return err
			}
			for _, d := range ds {
				if d.Seq == first.Seq {
					return nil
				}
			}
			return fmt.Errorf("change %d not delivered again", first.Seq)
		})
	})
	t.Run("NoName", func(t *testing.T) {
		if _, err := b.Consumer(ctx, ConsumerConfig{}); err == nil {
			t.Error("a consumer without a name was created")
		}
	})
}
