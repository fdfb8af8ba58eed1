package subscriptions

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Delivery runs on Partitions durable consumers of FHIR_NOTIFY, each
// pinned to one replica at a time. The pinned replica hands every job to
// the lane of its subscription: a goroutine that delivers that
// subscription's jobs one at a time, in order, and acknowledges each after
// the endpoint's 2xx. Lanes do not wait for each other, so a slow or failing
// endpoint holds up its own subscription only. Jobs a lane cannot deliver
// now (the subscription is in error or off, or its backlog is too long) are
// parked in FHIR_PARKED, in order, and delivered from there first when it
// can again.
const (
	// Partitions is the number of delivery consumers; a subscription's
	// jobs all go to partition partitionOf(id).
	Partitions = 16
	// ParkedStream keeps the jobs of subscriptions that cannot take them
	// now, on fhir.parked.<subscription id>.
	ParkedStream        = "FHIR_PARKED"
	ParkedSubjectPrefix = "fhir.parked."
	// HeaderWake marks a job that only makes the pinned replica look at a
	// subscription (it was set active again and may have parked jobs).
	HeaderWake = "Fhir-Wake"
	// HeaderSubscriptionVersion is the Subscription version a job was
	// matched with.
	HeaderSubscriptionVersion = "Fhir-Subscription-Version"

	deliveryGroup = "delivery"
	// deliveryPending bounds the jobs a partition has unacknowledged.
	deliveryPending = 20000
	// laneMaxQueue is how many jobs a lane holds before it parks the rest.
	laneMaxQueue = 1000
)

// timings are the waits of the hub's consumers; tests shorten them.
type timings struct {
	// matcherAckWait < matcherPinnedTTL, laneAckWait < lanePinnedTTL: what a
	// replica that stopped held is redelivered before another replica is
	// pinned, so it comes before anything newer.
	matcherAckWait, matcherPinnedTTL time.Duration
	laneAckWait, lanePinnedTTL       time.Duration
	// laneIdle is how long a lane with nothing to do lives on.
	laneIdle time.Duration
}

var defaultTimings = timings{
	matcherAckWait: 15 * time.Second, matcherPinnedTTL: 20 * time.Second,
	laneAckWait: 30 * time.Second, lanePinnedTTL: 40 * time.Second,
	laneIdle: 30 * time.Second,
}

// partitionOf is the delivery partition of subscription id.
func partitionOf(id string) int {
	f := fnv.New32a()
	f.Write([]byte(id))
	return int(f.Sum32() % Partitions)
}

// NotifySubject is the subject of the jobs of subscription id:
// fhir.notify.<partition>.<id>.
func NotifySubject(id string) string {
	return NotifySubjectPrefix + strconv.Itoa(partitionOf(id)) + "." + id
}

func parkedSubject(id string) string { return ParkedSubjectPrefix + id }

func partitionConsumer(p int) string { return "deliver-" + strconv.Itoa(p) }

// deliver runs partition p's consumer on this replica until ctx ends.
func (h *Hub) deliver(ctx context.Context, p int) {
	defer h.wg.Done()
	for attempt := 0; ctx.Err() == nil; attempt++ {
		c, err := h.Bus.JetStream().CreateOrUpdateConsumer(ctx, NotifyStream, jetstream.ConsumerConfig{
			Durable:        partitionConsumer(p),
			Description:    "delivery of the notification jobs of partition " + strconv.Itoa(p) + ", pinned to one replica at a time",
			FilterSubject:  NotifySubjectPrefix + strconv.Itoa(p) + ".>",
			AckPolicy:      jetstream.AckExplicitPolicy,
			AckWait:        h.timing.laneAckWait,
			MaxAckPending:  deliveryPending,
			MaxDeliver:     -1,
			DeliverPolicy:  jetstream.DeliverAllPolicy,
			PriorityGroups: []string{deliveryGroup},
			PriorityPolicy: jetstream.PriorityPolicyPinned,
			PinnedTTL:      h.timing.lanePinnedTTL,
		})
		if err == nil {
			attempt = 0
			err = h.consumePartition(ctx, p, c)
		}
		if ctx.Err() != nil {
			return
		}
		if attempt == 0 || attempt%20 == 0 {
			h.logger().Warn("subscriptions: delivery partition stopped; retrying", "partition", p, "err", err)
		}
		if sleep(ctx, retryWait(attempt)) != nil {
			return
		}
	}
}

// partition is this replica's session on one delivery consumer.
type partition struct {
	h        *Hub
	p        int
	ctx      context.Context
	mu       sync.Mutex
	lanes    map[string]*lane
	lastSent map[string]time.Time // when each subscription was last notified (heartbeats)
	wg       sync.WaitGroup
}

// consumePartition receives partition p's jobs (only while this replica is
// pinned) and hands them to lanes, until ctx ends or the consumer fails. On
// the way out every lane gives back what it holds, in order; the pin is
// not released, so the next replica starts after lanePinnedTTL, when what
// was in flight to this one has been redelivered before anything newer.
func (h *Hub) consumePartition(ctx context.Context, p int, c jetstream.Consumer) error {
	pctx, cancel := context.WithCancel(ctx)
	pt := &partition{h: h, p: p, ctx: pctx, lanes: map[string]*lane{}, lastSent: map[string]time.Time{}}
	failed := make(chan error, 1)
	var pinned atomic.Bool // messages come only to the pinned replica
	cc, err := c.Consume(func(m jetstream.Msg) { pinned.Store(true); pt.dispatch(m) },
		jetstream.PullMaxMessages(256), jetstream.PullExpiry(5*time.Second),
		jetstream.PullPriorityGroup(deliveryGroup),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrBadRequest) {
				select {
				case failed <- err:
				default:
				}
			}
		}))
	if err != nil {
		cancel()
		return err
	}
	tick := time.NewTicker(h.timing.laneAckWait / 3)
	defer tick.Stop()
	beat := time.NewTicker(time.Second)
	defer beat.Stop()
	start := time.Now()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err = <-failed:
			break loop
		case <-tick.C:
			pt.keepAlive()
		case now := <-beat.C:
			if pinned.Load() {
				pt.heartbeats(now, start)
			}
		}
	}
	cc.Stop()
	<-cc.Closed()
	cancel()
	pt.wg.Wait()
	return err
}

// dispatch hands a job to its subscription's lane, starting one if needed.
func (pt *partition) dispatch(m jetstream.Msg) {
	id := m.Headers().Get(HeaderSubscription)
	meta, err := m.Metadata()
	if id == "" || err != nil {
		_ = m.Term()
		return
	}
	pt.mu.Lock()
	defer pt.mu.Unlock()
	if pt.ctx.Err() != nil {
		return // left for redelivery
	}
	pt.laneLocked(id).push(m, meta.Sequence.Stream, meta.NumDelivered > 1)
}

// laneLocked returns subscription id's lane, starting one if needed; pt.mu
// is held.
func (pt *partition) laneLocked(id string) *lane {
	l := pt.lanes[id]
	if l == nil {
		l = &lane{pt: pt, id: id, held: map[uint64]jetstream.Msg{}, signal: make(chan struct{}, 1)}
		pt.lanes[id] = l
		pt.wg.Add(1)
		go l.run()
	}
	return l
}

// heartbeats queues a heartbeat in the lane of every active topic-based
// subscription of the partition with a heartbeat period that has had no
// notification for that long. Only the pinned replica sends them; it
// knows it is pinned once it received a job (a wake or handshake counts).
func (pt *partition) heartbeats(now, start time.Time) {
	for _, s := range pt.h.reg.all() {
		if s.Topic == nil || s.Heartbeat <= 0 || s.Status != StatusActive || partitionOf(s.ID) != pt.p {
			continue
		}
		pt.mu.Lock()
		last, ok := pt.lastSent[s.ID]
		if !ok {
			last = start
		}
		if now.Sub(last) >= time.Duration(s.Heartbeat)*time.Second {
			pt.lastSent[s.ID] = now
			l := pt.laneLocked(s.ID)
			l.mu.Lock()
			l.inbox = append(l.inbox, heldMsg{})
			l.mu.Unlock()
			select {
			case l.signal <- struct{}{}:
			default:
			}
		}
		pt.mu.Unlock()
	}
}

// sent records a notification delivered to subscription id.
func (pt *partition) sent(id string) {
	pt.mu.Lock()
	pt.lastSent[id] = time.Now()
	pt.mu.Unlock()
}

// keepAlive tells JetStream that the jobs the lanes hold are in progress.
func (pt *partition) keepAlive() {
	pt.mu.Lock()
	lanes := make([]*lane, 0, len(pt.lanes))
	for _, l := range pt.lanes {
		lanes = append(lanes, l)
	}
	pt.mu.Unlock()
	for _, l := range lanes {
		l.mu.Lock()
		for _, m := range l.held {
			_ = m.InProgress()
		}
		l.mu.Unlock()
	}
}

// lane delivers one subscription's jobs in this partition session.
type lane struct {
	pt *partition
	id string

	mu     sync.Mutex
	inbox  []heldMsg                // arrived, not yet taken by run
	held   map[uint64]jetstream.Msg // every job taken in and not yet acknowledged, by stream sequence
	signal chan struct{}            // something arrived

	// Owned by run.
	queue  []heldMsg // jobs to deliver, in order
	parked bool      // FHIR_PARKED holds jobs of this subscription
	beat   bool      // a heartbeat is due
	// failedAt is the Subscription version whose deliveries ran out of
	// attempts: the lane takes it as not active (the registry learns of
	// the error a moment later) until a newer version.
	failedAt int64
}

type heldMsg struct {
	msg jetstream.Msg // nil: a heartbeat (in the inbox only)
	seq uint64
	// redelivered: delivered before, to this replica or one that
	// stopped. Redeliveries come before any new job, but not in order
	// among themselves (JetStream rotates a pinned consumer's redelivery
	// queue while the pin waits to time out).
	redelivered bool
}

// push takes a job in; a redelivery of one held is ignored.
func (l *lane) push(m jetstream.Msg, seq uint64, redelivered bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.held[seq]; ok {
		return
	}
	l.held[seq] = m
	l.inbox = append(l.inbox, heldMsg{msg: m, seq: seq, redelivered: redelivered})
	select {
	case l.signal <- struct{}{}:
	default:
	}
}

func (l *lane) done(seq uint64) {
	l.mu.Lock()
	delete(l.held, seq)
	l.mu.Unlock()
}

// run is the lane's goroutine.
func (l *lane) run() {
	h, ctx := l.pt.h, l.pt.ctx
	defer l.pt.wg.Done()
	defer l.release()
	for attempt := 0; ; attempt++ {
		has, err := h.hasParked(ctx, l.id)
		if err == nil {
			l.parked = has
			break
		}
		if sleep(ctx, retryWait(attempt)) != nil {
			return
		}
	}
	idle := time.NewTimer(h.timing.laneIdle)
	defer idle.Stop()
	for ctx.Err() == nil {
		if err := l.takeInbox(ctx); err != nil {
			if ctx.Err() == nil {
				h.logger().Warn("subscriptions: park a job", "id", l.id, "err", err)
				_ = sleep(ctx, time.Second)
			}
			continue
		}
		s := h.reg.get(l.id)
		active := s != nil && s.Status == StatusActive && s.Version > l.failedAt
		if len(l.queue) > laneMaxQueue {
			l.parked = true // the queue goes to FHIR_PARKED, in order, and what follows it
		}
		switch {
		case len(l.queue) > 0 && !l.headReady(ctx):
			// An older job of this subscription is still to be
			// redelivered: wait for it.
			select {
			case <-ctx.Done():
			case <-l.signal:
			case <-time.After(200 * time.Millisecond):
			}
		case len(l.queue) > 0 && (l.parked || !active):
			// Parked jobs come first: what is queued goes after them. And
			// a subscription no longer active keeps its jobs parked.
			if err := l.parkHead(ctx); err != nil && ctx.Err() == nil {
				h.logger().Warn("subscriptions: park jobs", "id", l.id, "err", err)
				_ = sleep(ctx, time.Second)
			}
		case active && len(l.queue) > 0:
			l.deliverHead(ctx, s)
		case active && l.beat && !l.parked:
			l.beat = false
			if h.deliverWithRetries(ctx, s, notice{kind: kindHeartbeat}) == failed {
				l.failedAt = s.Version
			} else {
				l.pt.sent(l.id)
			}
		case active && l.parked:
			l.deliverParked(ctx, s)
		default:
			if !idle.Stop() {
				select {
				case <-idle.C:
				default:
				}
			}
			idle.Reset(h.timing.laneIdle)
			select {
			case <-ctx.Done():
			case <-l.signal:
			case <-idle.C:
				if l.retire() {
					return
				}
			}
		}
	}
}

// retire ends an idle lane unless something arrived meanwhile.
func (l *lane) retire() bool {
	l.pt.mu.Lock()
	defer l.pt.mu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.inbox) > 0 || len(l.queue) > 0 || len(l.held) > 0 {
		return false
	}
	delete(l.pt.lanes, l.id)
	return true
}

// release gives back, in order, every job the lane holds when the session
// ends.
func (l *lane) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	seqs := make([]uint64, 0, len(l.held))
	for seq := range l.held {
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	for _, seq := range seqs {
		_ = l.held[seq].Nak()
	}
	clear(l.held)
}

// takeInbox routes what arrived: a wake is acknowledged, a job of a
// deleted subscription dropped, a job the subscription cannot take now
// parked, the rest queued.
func (l *lane) takeInbox(ctx context.Context) error {
	h := l.pt.h
	l.mu.Lock()
	in := l.inbox
	l.inbox = nil
	l.mu.Unlock()
	for i, hm := range in {
		if hm.msg == nil { // a heartbeat is due
			l.beat = true
			continue
		}
		hd := hm.msg.Headers()
		if hd.Get(HeaderNotification) == kindHandshake {
			v, _ := strconv.ParseInt(hd.Get(HeaderSubscriptionVersion), 10, 64)
			h.handshake(ctx, l.id, v)
			if ctx.Err() != nil { // cut short: the next pinned replica does it
				l.mu.Lock()
				l.inbox = append(in[i:], l.inbox...)
				l.mu.Unlock()
				return ctx.Err()
			}
			_ = hm.msg.Ack()
			l.done(hm.seq)
			continue
		}
		if hd.Get(HeaderWake) != "" {
			_ = hm.msg.Ack()
			l.done(hm.seq)
			continue
		}
		version, _ := strconv.ParseInt(hd.Get(HeaderSubscriptionVersion), 10, 64)
		// This replica's registry may lag the matcher's.
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		s, gone := h.reg.awaitVersion(wctx, l.id, version)
		cancel()
		switch {
		case gone:
			_ = hm.msg.Ack()
			l.done(hm.seq)
		default:
			_ = s
			l.enqueue(hm)
		}
	}
	return nil
}

// park copies a job to FHIR_PARKED, then acknowledges it.
func (l *lane) park(ctx context.Context, hm heldMsg) error {
	h := l.pt.h
	m := &nats.Msg{Subject: parkedSubject(l.id), Header: hm.msg.Headers()}
	if _, err := h.Bus.JetStream().PublishMsg(ctx, m, jetstream.WithMsgID("parked/"+l.id+"/"+strconv.FormatUint(hm.seq, 10))); err != nil {
		return err
	}
	l.parked = true
	_ = hm.msg.Ack()
	l.done(hm.seq)
	return nil
}

// parkQueue parks every queued job, in order.
func (l *lane) parkQueue(ctx context.Context) error {
	for len(l.queue) > 0 {
		if !l.headReady(ctx) {
			return nil // the run loop waits for the older job, then parks on
		}
		if err := l.parkHead(ctx); err != nil {
			return err
		}
	}
	return nil
}

// parkHead parks the first queued job.
func (l *lane) parkHead(ctx context.Context) error {
	if err := l.park(ctx, l.queue[0]); err != nil {
		return err
	}
	l.queue = l.queue[1:]
	return nil
}

// enqueue inserts a job in stream order (redeliveries may come out of it).
func (l *lane) enqueue(hm heldMsg) {
	i := len(l.queue)
	for i > 0 && l.queue[i-1].seq > hm.seq {
		i--
	}
	l.queue = slices.Insert(l.queue, i, hm)
}

// headReady reports whether the first queued job may go (delivered or
// parked): a new job always; a redelivered one when no older job of the
// subscription is still unacknowledged in FHIR_NOTIFY (work-queue
// retention: what is there is unacknowledged). A redelivered job already
// acknowledged is dropped here.
func (l *lane) headReady(ctx context.Context) bool {
	for len(l.queue) > 0 {
		hm := l.queue[0]
		if !hm.redelivered {
			return true
		}
		h := l.pt.h
		raw, err := h.notify.GetMsg(ctx, 0, jetstream.WithGetMsgSubject(NotifySubject(l.id)))
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound) || (err == nil && raw.Sequence > hm.seq):
			_ = hm.msg.Ack() // acknowledged before; the acknowledgement was lost
			l.done(hm.seq)
			l.queue = l.queue[1:]
			continue
		case err != nil:
			return false
		case raw.Sequence < hm.seq:
			return false
		}
		l.queue[0].redelivered = false // it is the oldest: checked
		return true
	}
	return true
}

// deliverHead delivers the first queued job; on success it is acknowledged,
// when the subscription fails the queue is parked.
func (l *lane) deliverHead(ctx context.Context, s *sub) {
	h := l.pt.h
	hm := l.queue[0]
	job, err := decodeNotice(hm.msg.Headers())
	if err != nil {
		_ = hm.msg.TermWithReason(err.Error())
		l.done(hm.seq)
		l.queue = l.queue[1:]
		return
	}
	switch h.deliverWithRetries(ctx, s, job) {
	case delivered:
		l.pt.sent(l.id)
		_ = hm.msg.Ack()
		l.done(hm.seq)
		l.queue = l.queue[1:]
	case failed:
		l.failedAt = s.Version
		if err := l.parkQueue(ctx); err != nil && ctx.Err() == nil {
			h.logger().Warn("subscriptions: park jobs", "id", l.id, "err", err)
		}
	case stopped:
	}
}

// deliverParked delivers the oldest parked job and deletes it, or learns
// that none is left.
func (l *lane) deliverParked(ctx context.Context, s *sub) {
	h := l.pt.h
	raw, err := h.parked.GetMsg(ctx, 0, jetstream.WithGetMsgSubject(parkedSubject(l.id)))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		l.parked = false
		return
	}
	if err != nil {
		if ctx.Err() == nil {
			h.logger().Warn("subscriptions: read a parked job", "id", l.id, "err", err)
			_ = sleep(ctx, time.Second)
		}
		return
	}
	job, err := decodeNotice(raw.Header)
	if err == nil {
		switch h.deliverWithRetries(ctx, s, job) {
		case delivered:
			l.pt.sent(l.id)
		case failed:
			l.failedAt = s.Version
			return
		default:
			return
		}
	} else {
		h.logger().Warn("subscriptions: a parked job that cannot be read is dropped", "id", l.id, "err", err)
	}
	if err := h.parked.DeleteMsg(ctx, raw.Sequence); err != nil && ctx.Err() == nil {
		h.logger().Warn("subscriptions: delete a delivered parked job", "id", l.id, "err", err)
	}
}

// hasParked reports whether FHIR_PARKED holds jobs of subscription id.
func (h *Hub) hasParked(ctx context.Context, id string) (bool, error) {
	_, err := h.parked.GetLastMsgForSubject(ctx, parkedSubject(id))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, nil
	}
	return err == nil, err
}

// wake makes the replica pinned to subscription id's partition look at it,
// so that its parked jobs go out; version makes the message id, so the
// replicas that all see the same version send one wake.
func (h *Hub) wake(id string, version int64) {
	hd := nats.Header{}
	hd.Set(HeaderSubscription, id)
	hd.Set(HeaderWake, "1")
	m := &nats.Msg{Subject: NotifySubject(id), Header: hd}
	if _, err := h.Bus.JetStream().PublishMsgAsync(m, jetstream.WithMsgID("wake/"+id+"/"+strconv.FormatInt(version, 10))); err != nil {
		h.logger().Warn("subscriptions: wake a subscription's delivery", "id", id, "err", err)
	}
}

type outcome int

const (
	delivered outcome = iota
	failed            // the attempts ran out: the subscription is set to error
	stopped           // the subscription is no longer active, or ctx ended
)

// deliverWithRetries posts one notification, retrying with backoff.
func (h *Hub) deliverWithRetries(ctx context.Context, s *sub, job notice) outcome {
	var lastErr error
	for attempt := 1; ; attempt++ {
		err := h.post(ctx, s, job)
		if err == nil {
			h.stats.delivered.Add(1)
			return delivered
		}
		if ctx.Err() != nil {
			return stopped
		}
		h.stats.failed.Add(1)
		lastErr = err
		if attempt >= h.Retry.MaxAttempts {
			break
		}
		h.logger().Debug("subscriptions: delivery failed; retrying", "id", s.ID, "seq", job.Seq, "attempt", attempt, "err", err)
		if ok, err := h.backoff(ctx, s.ID, attempt); err != nil || !ok {
			return stopped
		}
		if cur := h.reg.get(s.ID); cur != nil {
			s = cur // a new version may change the endpoint
		}
	}
	reason := fmt.Sprintf("%s %d times", lastErr, h.Retry.MaxAttempts)
	h.logger().Warn("subscriptions: delivery failed; the subscription goes to error", "id", s.ID, "seq", job.Seq, "reason", reason)
	h.fail(ctx, s.ID, reason)
	return failed
}

// requestHandshake queues the handshake of a requested topic-based
// Subscription version; the message id makes the replicas' requests one.
func (h *Hub) requestHandshake(id string, version int64) {
	hd := nats.Header{}
	hd.Set(HeaderSubscription, id)
	hd.Set(HeaderNotification, kindHandshake)
	hd.Set(HeaderSubscriptionVersion, strconv.FormatInt(version, 10))
	m := &nats.Msg{Subject: NotifySubject(id), Header: hd}
	if _, err := h.Bus.JetStream().PublishMsgAsync(m, jetstream.WithMsgID("handshake/"+id+"/"+strconv.FormatInt(version, 10))); err != nil {
		h.logger().Warn("subscriptions: queue a handshake", "id", id, "err", err)
	}
}

// handshakeAttempts bounds the attempts of a handshake.
const handshakeAttempts = 3

// handshake sends the handshake of Subscription id at version, if it is
// still that version and requested, and sets it active when the endpoint
// accepts it, error when not.
func (h *Hub) handshake(ctx context.Context, id string, version int64) {
	r, err := h.Service.Store.Read(ctx, "Subscription", id)
	if err != nil || r.Deleted() || r.Version != version {
		return
	}
	sp, err := decodeSpec(r)
	if err != nil || sp.Status != StatusRequested {
		return
	}
	if problem := h.validate(ctx, sp); problem != nil {
		h.setStatus(ctx, id, version, StatusError, problem.Error())
		return
	}
	s := &sub{spec: sp}
	var lastErr error
	for attempt := 1; attempt <= handshakeAttempts; attempt++ {
		if lastErr = h.post(ctx, s, notice{kind: kindHandshake}); lastErr == nil {
			h.setStatus(ctx, id, version, StatusActive, "")
			return
		}
		if ctx.Err() != nil {
			return
		}
		if attempt < handshakeAttempts {
			if sleep(ctx, min(h.Retry.Initial<<(attempt-1), h.Retry.Max)) != nil {
				return
			}
		}
	}
	h.setStatus(ctx, id, version, StatusError, fmt.Sprintf("handshake failed: %s", lastErr))
}
