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

// The matcher's consumer: one replica at a time is pinned to it (the
// priority group matcherGroup), takes the changes in batches of up to
// matcherBatch, and acknowledges a batch once its jobs are stored. A
// replica that stops pulling for matcherPinnedTTL is unpinned; what it
// held is redelivered after matcherAckWait, which is shorter, so the next
// pinned replica gets those changes before any newer one and the jobs stay
// in feed order.
const (
	matcherGroup   = "matcher"
	matcherBatch   = 512
	matcherPending = 4 * matcherBatch
)

// matcherConsumer opens the matcher's durable consumer, creating it, when
// it does not exist yet, to start after stream sequence start: older
// changes precede every subscription this hub knows.
func (h *Hub) matcherConsumer(ctx context.Context, start uint64) (jetstream.Consumer, error) {
	js := h.Bus.JetStream()
	c, err := js.Consumer(ctx, natsbus.StreamName, h.MatcherName)
	if err == nil {
		if cfg := c.CachedInfo().Config; cfg.PriorityPolicy != jetstream.PriorityPolicyPinned {
			// Made by an older version, one change at a time: pin it.
			cfg.PriorityPolicy, cfg.PriorityGroups, cfg.PinnedTTL = jetstream.PriorityPolicyPinned, []string{matcherGroup}, h.timing.matcherPinnedTTL
			cfg.AckWait, cfg.MaxAckPending = h.timing.matcherAckWait, matcherPending
			return js.UpdateConsumer(ctx, natsbus.StreamName, cfg)
		}
		return c, nil
	}
	if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, err
	}
	cfg := jetstream.ConsumerConfig{
		Durable:        h.MatcherName,
		Description:    "subscription matching, shared by the replicas' hubs; one pinned replica at a time keeps the jobs in feed order",
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        h.timing.matcherAckWait,
		MaxAckPending:  matcherPending,
		MaxDeliver:     -1,
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    start + 1,
		PriorityGroups: []string{matcherGroup},
		PriorityPolicy: jetstream.PriorityPolicyPinned,
		PinnedTTL:      h.timing.matcherPinnedTTL,
	}
	c, err = js.CreateConsumer(ctx, natsbus.StreamName, cfg)
	if errors.Is(err, jetstream.ErrConsumerExists) {
		return js.Consumer(ctx, natsbus.StreamName, h.MatcherName) // another replica made it
	}
	return c, err
}

// match runs the matcher: the changes of FHIR_CHANGES, taken in batches
// from the shared consumer, are matched against the registry, a job is
// published for each subscription a change concerns, and a batch is
// acknowledged once all its jobs are stored.
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

// matchMessages matches the consumer's changes batch by batch until ctx
// ends or reading fails. A batch is what has arrived when the previous one
// is done: one change when writes are rare, hundreds under load.
func (h *Hub) matchMessages(ctx context.Context, c jetstream.Consumer) error {
	msgs := make(chan jetstream.Msg, matcherPending)
	failed := make(chan error, 1)
	cc, err := c.Consume(func(m jetstream.Msg) { msgs <- m },
		jetstream.PullMaxMessages(matcherBatch), jetstream.PullExpiry(5*time.Second),
		jetstream.PullPriorityGroup(matcherGroup),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrBadRequest) {
				select {
				case failed <- err:
				default:
				}
			}
		}))
	if err != nil {
		return err
	}
	defer func() {
		cc.Stop()
		if ctx.Err() == nil {
			return
		}
		// Closing: give back what was prefetched. The pin is kept until it
		// times out: what is still in flight to this replica is then
		// redelivered, before anything newer, to the next one.
		<-cc.Closed()
		for {
			select {
			case m := <-msgs:
				_ = m.Nak()
				continue
			default:
			}
			break
		}
	}()
	batch := make([]jetstream.Msg, 0, matcherBatch)
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-failed:
			return err
		case m := <-msgs:
			batch = append(batch, m)
		}
	more:
		for len(batch) < matcherBatch {
			select {
			case m := <-msgs:
				batch = append(batch, m)
			default:
				break more
			}
		}
		// A failed batch is retried in place: giving it back would let
		// newer changes overtake it.
		for attempt := 0; ; attempt++ {
			err := h.matchBatch(ctx, batch)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				for _, m := range batch {
					_ = m.Nak() // in feed order, before what was prefetched
				}
				return ctx.Err()
			}
			if attempt == 0 || attempt%20 == 0 {
				h.logger().Warn("subscriptions: match a batch of changes; retrying", "changes", len(batch), "attempt", attempt+1, "err", err)
			}
			if sleep(ctx, retryWait(attempt)) == nil {
				for _, m := range batch {
					_ = m.InProgress()
				}
			}
		}
	}
}

// matchBatch handles changes in feed order: it queues their jobs, waits
// until every job is stored, then acknowledges the changes.
func (h *Hub) matchBatch(ctx context.Context, batch []jetstream.Msg) error {
	last := batch[len(batch)-1]
	meta, err := last.Metadata()
	if err != nil {
		return err
	}
	// The registry must know every Subscription change up to the batch's
	// last, or a subscription activated just before a change would miss it.
	need := meta.Sequence.Stream
	lastSub, err := h.lastSubscriptionSeq(ctx)
	if err != nil {
		return err
	}
	need = min(need, lastSub)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = h.reg.waitApplied(wctx, need)
	cancel()
	if err != nil {
		return fmt.Errorf("subscriptions: the registry has not caught up with stream sequence %d: %w", need, err)
	}
	var futures []jetstream.PubAckFuture
	var matchedN uint64
	for _, msg := range batch {
		ch, err := natsbus.DecodeChange(msg.Headers(), msg.Data())
		if err != nil {
			h.logger().Warn("subscriptions: a change message that cannot be read", "err", err)
			continue
		}
		matched, err := h.matches(ctx, ch)
		if err != nil {
			return err
		}
		for _, s := range matched {
			f, err := h.publishJob(s, ch)
			if err != nil {
				return err
			}
			futures = append(futures, f)
		}
		if len(matched) > 0 && !ch.Deleted() {
			h.bodies.put(bodyKey(ch.Type, ch.ID, ch.Version), ch.Resource.JSON)
		}
		matchedN += uint64(len(matched))
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("subscriptions: queue a notification: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	h.stats.changes.Add(uint64(len(batch)))
	h.stats.matched.Add(matchedN)
	for _, msg := range batch[:len(batch)-1] {
		_ = msg.Ack()
	}
	// Redelivered if this is lost: matched again, its jobs are duplicates
	// JetStream drops (Nats-Msg-Id), within the stream's duplicate window.
	return last.DoubleAck(ctx)
}

// lastSubscriptionSeq is the stream sequence of the last Subscription change.
func (h *Hub) lastSubscriptionSeq(ctx context.Context) (uint64, error) {
	m, err := h.changes.GetLastMsgForSubject(ctx, natsbus.Subject("Subscription"))
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

// publishJob queues the notification of ch for subscription id, without
// waiting for the stream to store it. The message id makes a republished
// job (a change matched again after a crash) a duplicate JetStream drops.
func (h *Hub) publishJob(s *sub, ch fhir.Change) (jetstream.PubAckFuture, error) {
	id := s.ID
	hd := nats.Header{}
	hd.Set(HeaderSubscription, id)
	hd.Set(HeaderSubscriptionVersion, strconv.FormatInt(s.Version, 10))
	hd.Set(natsbus.HeaderSeq, strconv.FormatInt(ch.Seq, 10))
	hd.Set(natsbus.HeaderType, ch.Type)
	hd.Set(natsbus.HeaderID, ch.ID)
	hd.Set(natsbus.HeaderVersion, strconv.FormatInt(ch.Version, 10))
	hd.Set(natsbus.HeaderOp, string(ch.Op))
	hd.Set(natsbus.HeaderLastUpdated, fhir.FormatInstant(ch.LastUpdated))
	m := &nats.Msg{Subject: NotifySubject(id), Header: hd}
	f, err := h.Bus.JetStream().PublishMsgAsync(m, jetstream.WithMsgID(id+"/"+strconv.FormatInt(ch.Seq, 10)))
	if err != nil {
		return nil, fmt.Errorf("subscriptions: queue the notification of change %d for Subscription/%s: %w", ch.Seq, id, err)
	}
	return f, nil
}
