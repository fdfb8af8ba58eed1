package subscriptions

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
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
		if redelivered(batch) {
			batch = h.settle(ctx, c, msgs, batch)
		}
		// A failed batch is retried in place: giving it back would let
		// newer changes overtake it.
		for attempt := 0; ; attempt++ {
			err := h.matchBatch(ctx, batch)
			if err == nil {
				break
			}
			clear(h.counters) // the retry numbers events from the bucket again
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

// redelivered reports whether a batch holds a change delivered before.
func redelivered(batch []jetstream.Msg) bool {
	for _, m := range batch {
		if meta, err := m.Metadata(); err == nil && meta.NumDelivered > 1 {
			return true
		}
	}
	return false
}

// settle gathers, after a replica stopped, every change the consumer has
// unacknowledged before matching any: JetStream hands a new pinned replica
// the changes its predecessor held before any newer one, but not in order
// among themselves (it rotates a pinned consumer's redelivery queue while
// the old pin times out). The batch is then sorted by stream sequence.
func (h *Hub) settle(ctx context.Context, c jetstream.Consumer, msgs <-chan jetstream.Msg, batch []jetstream.Msg) []jetstream.Msg {
	deadline := time.Now().Add(2 * h.timing.matcherAckWait)
	n := 0
	for time.Now().Before(deadline) && ctx.Err() == nil {
	drain:
		for {
			select {
			case m := <-msgs:
				batch = append(batch, m)
			default:
				break drain
			}
		}
		info, err := c.Info(ctx)
		if err == nil && info.NumAckPending <= len(batch) {
			break
		}
		_ = sleep(ctx, 100*time.Millisecond)
		if n++; n%20 == 0 {
			for _, m := range batch {
				_ = m.InProgress()
			}
		}
	}
	seq := func(m jetstream.Msg) uint64 {
		if meta, err := m.Metadata(); err == nil {
			return meta.Sequence.Stream
		}
		return 0
	}
	slices.SortStableFunc(batch, func(a, b jetstream.Msg) int { return cmp.Compare(seq(a), seq(b)) })
	return batch
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
	moved := map[string]*counter{}
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
			var number int64
			if s.Topic != nil {
				c, err := h.counterOf(ctx, s.ID)
				if err != nil {
					return err
				}
				if ch.Seq > c.seq { // else matched again after a crash: the job is a duplicate
					c.n, c.seq = c.n+1, ch.Seq
					moved[s.ID] = c
				}
				number = c.n
			}
			if s.Topic != nil && moved[s.ID] != nil && moved[s.ID].seq == ch.Seq {
				f, err := h.logEvent(s.ID, ch, number)
				if err != nil {
					return err
				}
				futures = append(futures, f)
			}
			f, err := h.publishJob(s, ch, number)
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
	if err := h.saveCounters(ctx, moved); err != nil {
		return err
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
	if !h.reg.watches(ch.Type) {
		return nil, nil
	}
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
	statusChanged := -1 // unknown yet
	for _, s := range h.reg.candidates(ch.Type, entries) {
		if ch.Seq <= s.since {
			continue
		}
		if t := s.Topic; t != nil {
			if !t.has(ch.Op) {
				continue
			}
			if t.StatusChange {
				if statusChanged < 0 {
					changed, err := h.statusChanged(ctx, ch)
					if err != nil {
						return nil, err
					}
					statusChanged = 0
					if changed {
						statusChanged = 1
					}
				}
				if statusChanged == 0 {
					continue
				}
			}
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

// statusChanged reports whether a created or updated version's status
// differs from the previous version's.
func (h *Hub) statusChanged(ctx context.Context, ch fhir.Change) (bool, error) {
	if ch.Version <= 1 || ch.Op == fhir.OpCreate {
		return true, nil
	}
	prev, err := h.Service.Store.VRead(ctx, ch.Type, ch.ID, ch.Version-1)
	if errors.Is(err, fhir.ErrNotFound) || (err == nil && prev.Deleted()) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("subscriptions: read %s/%s version %d: %w", ch.Type, ch.ID, ch.Version-1, err)
	}
	var a, b struct {
		Status string `json:"status"`
	}
	_ = json.Unmarshal(prev.JSON, &a)
	_ = json.Unmarshal(ch.Resource.JSON, &b)
	return a.Status != b.Status, nil
}

// Headers of a notification job (and of the change it is about).
const (
	HeaderSubscription = "Fhir-Subscription"
	// HeaderEventNumber is a topic-based subscription's event number.
	HeaderEventNumber = "Fhir-Event-Number"
)

// EventsBucket is the KeyValue bucket of topic-based subscriptions' event
// counters: key the subscription id, value "<events> <feed position of the
// last>".
const EventsBucket = "FHIR_SUBSCRIPTION_EVENTS"

// counter is a topic-based subscription's event count as the matcher
// knows it; rev is the bucket revision it was read at (0: no entry).
type counter struct {
	n, seq int64
	rev    uint64
}

// counterOf returns subscription id's counter from the matcher's cache or
// the bucket.
func (h *Hub) counterOf(ctx context.Context, id string) (*counter, error) {
	if c := h.counters[id]; c != nil {
		return c, nil
	}
	c, err := h.readCounter(ctx, id)
	if err != nil {
		return nil, err
	}
	h.counters[id] = c
	return c, nil
}

// readCounter reads subscription id's counter from the bucket.
func (h *Hub) readCounter(ctx context.Context, id string) (*counter, error) {
	c := &counter{}
	e, err := h.events.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("subscriptions: read the event counter of %s: %w", id, err)
	}
	if _, err := fmt.Sscan(string(e.Value()), &c.n, &c.seq); err != nil {
		return nil, fmt.Errorf("subscriptions: the event counter of %s reads %q", id, e.Value())
	}
	c.rev = e.Revision()
	return c, nil
}

// saveCounters writes the counters a batch moved; on a conflict (another
// replica matched meanwhile) the cache is dropped and the batch retried.
func (h *Hub) saveCounters(ctx context.Context, moved map[string]*counter) error {
	for id, c := range moved {
		v := []byte(strconv.FormatInt(c.n, 10) + " " + strconv.FormatInt(c.seq, 10))
		var rev uint64
		var err error
		if c.rev == 0 {
			rev, err = h.events.Create(ctx, id, v)
		} else {
			rev, err = h.events.Update(ctx, id, v, c.rev)
		}
		if err != nil {
			clear(h.counters)
			return fmt.Errorf("subscriptions: save the event counter of %s: %w", id, err)
		}
		c.rev = rev
	}
	return nil
}

// publishJob queues the notification of ch for subscription id, without
// waiting for the stream to store it. The message id makes a republished
// job (a change matched again after a crash) a duplicate JetStream drops.
func (h *Hub) publishJob(s *sub, ch fhir.Change, number int64) (jetstream.PubAckFuture, error) {
	id := s.ID
	hd := nats.Header{}
	hd.Set(HeaderSubscription, id)
	if number > 0 {
		hd.Set(HeaderEventNumber, strconv.FormatInt(number, 10))
	}
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

// logEvent keeps an event of a topic-based subscription for $events.
func (h *Hub) logEvent(id string, ch fhir.Change, number int64) (jetstream.PubAckFuture, error) {
	hd := nats.Header{}
	hd.Set(HeaderSubscription, id)
	hd.Set(HeaderEventNumber, strconv.FormatInt(number, 10))
	hd.Set(natsbus.HeaderSeq, strconv.FormatInt(ch.Seq, 10))
	hd.Set(natsbus.HeaderType, ch.Type)
	hd.Set(natsbus.HeaderID, ch.ID)
	hd.Set(natsbus.HeaderVersion, strconv.FormatInt(ch.Version, 10))
	hd.Set(natsbus.HeaderOp, string(ch.Op))
	hd.Set(natsbus.HeaderLastUpdated, fhir.FormatInstant(ch.LastUpdated))
	m := &nats.Msg{Subject: eventLogSubject(id), Header: hd}
	f, err := h.Bus.JetStream().PublishMsgAsync(m, jetstream.WithMsgID("event/"+id+"/"+strconv.FormatInt(ch.Seq, 10)))
	if err != nil {
		return nil, fmt.Errorf("subscriptions: log event %d of Subscription/%s: %w", number, id, err)
	}
	return f, nil
}
