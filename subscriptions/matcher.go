package subscriptions

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/fhirhub/fhirhub/fhir"
	"github.com/fhirhub/fhirhub/fhir/search"
	"github.com/fhirhub/fhirhub/subscriptions/natsbus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// matcherAckWait is how long the matcher may hold a change.
const matcherAckWait = 30 * time.Second

// matcherConsumer opens the matcher's durable consumer, creating it, when
// it does not exist yet, to start after stream sequence start: older
// changes precede every subscription this hub knows.
func (h *Hub) matcherConsumer(ctx context.Context, start uint64) (jetstream.Consumer, error) {
	js := h.Bus.JetStream()
	c, err := js.Consumer(ctx, natsbus.StreamName, h.MatcherName)
	if err == nil {
		return c, nil
	}
	if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, err
	}
	cfg := jetstream.ConsumerConfig{
		Durable:     h.MatcherName,
		Description: "subscription matching, shared by the replicas' hubs; one change at a time keeps the jobs in feed order",
		AckPolicy:   jetstream.AckExplicitPolicy,
		AckWait:     matcherAckWait,
		// One change in flight across all replicas: jobs are published in
		// the feed's order, which delivery keeps per subscription.
		MaxAckPending: 1,
		MaxDeliver:    -1,
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   start + 1,
	}
	c, err = js.CreateConsumer(ctx, natsbus.StreamName, cfg)
	if errors.Is(err, jetstream.ErrConsumerExists) {
		return js.Consumer(ctx, natsbus.StreamName, h.MatcherName) // another replica made it
	}
	return c, err
}

// match runs the matcher: each change of FHIR_CHANGES, taken one at a time
// from the shared consumer, is matched against the registry, a job is
// published for each subscription it concerns, and only then is the
// change acknowledged.
func (h *Hub) match(ctx context.Context, start uint64) {
	defer h.wg.Done()
	var c jetstream.Consumer
	for attempt := 0; c == nil; attempt++ {
		var err error
		if c, err = h.matcherConsumer(ctx, start); err != nil {
			if ctx.Err() != nil {
				return
			}
			h.logger().Warn("subscriptions: open the matcher's consumer", "err", err)
			if sleep(ctx, retryWait(attempt)) != nil {
				return
			}
		}
	}
	for ctx.Err() == nil {
		err := h.matchMessages(ctx, c)
		if ctx.Err() != nil {
			return
		}
		h.logger().Warn("subscriptions: reading changes failed; retrying", "err", err)
		if sleep(ctx, time.Second) != nil {
			return
		}
	}
}

// matchMessages matches the consumer's changes one at a time until ctx
// ends or reading fails.
func (h *Hub) matchMessages(ctx context.Context, c jetstream.Consumer) error {
	it, err := c.Messages(jetstream.PullMaxMessages(1))
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	for {
		msg, err := it.Next()
		if err != nil {
			return err
		}
		if err := h.matchOne(ctx, msg); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			h.logger().Warn("subscriptions: match a change; it will be retried", "err", err)
			_ = msg.NakWithDelay(time.Second)
		}
	}
}

// matchOne handles one change message.
func (h *Hub) matchOne(ctx context.Context, msg jetstream.Msg) error {
	meta, err := msg.Metadata()
	if err != nil {
		return err
	}
	ch, err := natsbus.DecodeChange(msg.Headers(), msg.Data())
	if err != nil {
		return msg.TermWithReason(err.Error())
	}
	// The registry must know every Subscription change before this one,
	// or a subscription activated just before it would miss it.
	need := meta.Sequence.Stream
	last, err := h.lastSubscriptionSeq(ctx)
	if err != nil {
		return err
	}
	need = min(need, last)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = h.reg.waitApplied(wctx, need)
	cancel()
	if err != nil {
		return fmt.Errorf("subscriptions: the registry has not caught up with stream sequence %d: %w", need, err)
	}
	matched, err := h.matches(ctx, ch)
	if err != nil {
		return err
	}
	for _, s := range matched {
		if err := h.publishJob(ctx, s.ID, ch); err != nil {
			return err
		}
	}
	h.stats.changes.Add(1)
	h.stats.matched.Add(uint64(len(matched)))
	return msg.DoubleAck(ctx)
}

// lastSubscriptionSeq is the stream sequence of the last Subscription change.
func (h *Hub) lastSubscriptionSeq(ctx context.Context) (uint64, error) {
	st, err := h.Bus.JetStream().Stream(ctx, natsbus.StreamName)
	if err != nil {
		return 0, err
	}
	m, err := st.GetLastMsgForSubject(ctx, natsbus.Subject("Subscription"))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return m.Sequence, nil
}

// matches lists the deliverable subscriptions a change concerns: its
// content (for a deletion, the version it deleted) matches the criteria,
// it comes after the subscription became deliverable, and the
// subscription's creator may read it.
func (h *Hub) matches(ctx context.Context, ch fhir.Change) ([]*sub, error) {
	judged := ch.Resource
	if ch.Deleted() {
		if ch.Version <= 1 {
			return nil, nil
		}
		prev, err := h.Service.Store.VRead(ctx, ch.Type, ch.ID, ch.Version-1)
		if errors.Is(err, fhir.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("subscriptions: read %s/%s version %d: %w", ch.Type, ch.ID, ch.Version-1, err)
		}
		judged = prev
	}
	entries, err := h.Search.EntriesOf(judged)
	if err != nil {
		return nil, err
	}
	var out []*sub
	var resolver search.Resolver
	for _, s := range h.reg.candidates(ch.Type, entries) {
		if ch.Seq <= s.since {
			continue
		}
		if resolver == nil {
			resolver = h.Search.Resolver(ctx)
		}
		if !search.Match(s.Clauses, ch.Type, ch.ID, entries, resolver) {
			continue
		}
		if s.readable != nil {
			ok, err := s.readable(ctx, ch.Resource)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// Headers of a notification job (and of the change it is about).
const (
	HeaderSubscription = "Fhir-Subscription"
)

// publishJob queues the notification of ch for subscription id. The
// message id makes a republished job (a change matched again after a
// crash) a duplicate JetStream drops.
func (h *Hub) publishJob(ctx context.Context, id string, ch fhir.Change) error {
	hd := nats.Header{}
	hd.Set(HeaderSubscription, id)
	hd.Set(natsbus.HeaderSeq, strconv.FormatInt(ch.Seq, 10))
	hd.Set(natsbus.HeaderType, ch.Type)
	hd.Set(natsbus.HeaderID, ch.ID)
	hd.Set(natsbus.HeaderVersion, strconv.FormatInt(ch.Version, 10))
	hd.Set(natsbus.HeaderOp, string(ch.Op))
	hd.Set(natsbus.HeaderLastUpdated, fhir.FormatInstant(ch.LastUpdated))
	m := &nats.Msg{Subject: NotifySubject(id), Header: hd}
	if _, err := h.Bus.JetStream().PublishMsg(ctx, m, jetstream.WithMsgID(id+"/"+strconv.FormatInt(ch.Seq, 10))); err != nil {
		return fmt.Errorf("subscriptions: queue the notification of change %d for Subscription/%s: %w", ch.Seq, id, err)
	}
	return nil
}
