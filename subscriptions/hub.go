package subscriptions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fhirhub/fhirhub/fhir"
	"github.com/fhirhub/fhirhub/fhir/search"
	"github.com/fhirhub/fhirhub/smart"
	"github.com/fhirhub/fhirhub/subscriptions/natsbus"
	"github.com/nats-io/nats.go/jetstream"
)

// Hub runs R4 criteria-based Subscriptions: it keeps the registry of
// subscriptions, activates new ones, matches every change of FHIR_CHANGES
// against them, queues a notification job per match in FHIR_NOTIFY, and
// delivers the jobs to rest-hook endpoints. Every replica runs one; see the
// package documentation for how they share the work.
type Hub struct {
	// Service writes status changes and reads versions to deliver.
	Service *fhir.Service
	// Search parses criteria, indexes changed resources and resolves
	// chains in criteria.
	Search *search.Engine
	// Bus is the open NATS connection with FHIR_CHANGES (the relay's).
	Bus *natsbus.Bus

	// ReadCheck, when set (authorization on), makes the judge of what a
	// subscription's creator may read (rest.Server.ReadCheck). nil: no
	// restriction (authorization off).
	ReadCheck func(a *smart.Access) func(ctx context.Context, r fhir.Resource) (bool, error)

	// BaseURL is the server's public FHIR base (https://host/fhir), for
	// the references in notification bundles; relative when empty.
	BaseURL string

	// Endpoints is the allow-list of rest-hook endpoints (default
	// DefaultEndpoints: any https URL); see the package documentation.
	Endpoints []string

	// Retry bounds the delivery attempts of one notification.
	Retry Retry
	// AttemptTimeout bounds one POST (default 10 s).
	AttemptTimeout time.Duration
	// HTTPClient posts notifications (default: one with AttemptTimeout that
	// follows no redirects).
	HTTPClient *http.Client

	// MatcherName is the durable consumer on FHIR_CHANGES shared by the
	// replicas' matchers (default hub-matcher).
	MatcherName string
	// NotifyMaxAge is how long FHIR_NOTIFY keeps an undelivered job
	// (default: the bus's MaxAge, 7 days).
	NotifyMaxAge time.Duration

	Logger *slog.Logger
	// Now is the clock of signatures (default time.Now).
	Now func() time.Time

	policy  endpointPolicy
	timing  timings // defaultTimings unless a test sets them
	reg     *registry
	kv      atomic.Pointer[jetstream.KeyValue]
	notify  jetstream.Stream
	parked  jetstream.Stream
	changes jetstream.Stream
	ready   chan struct{}
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	stats   counters
	bodies  *bodyCache
	// topicWhere holds the topics' own conditions, parsed at setup.
	topicWhere map[string][]search.Clause
	// events is the bucket of topic-based subscriptions' event counters.
	events jetstream.KeyValue
	// eventLog is the stream of topic-based subscriptions' events.
	eventLog jetstream.Stream
	// counters caches the event counters; the matcher's goroutine only.
	counters map[string]*counter
}

// Retry is the delivery retry policy: exponential backoff with full jitter
// (a random wait in [0, min(Max, Initial·2^n))) between attempts, at most
// MaxAttempts attempts per notification before the subscription goes to
// error.
type Retry struct {
	Initial, Max time.Duration
	MaxAttempts  int
}

// DefaultRetry is 1 s doubling to 5 min, 10 attempts.
var DefaultRetry = Retry{Initial: time.Second, Max: 5 * time.Minute, MaxAttempts: 10}

// Names in NATS.
const (
	// NotifyStream is the JetStream stream of notification jobs.
	NotifyStream = "FHIR_NOTIFY"
	// NotifySubjectPrefix starts a job's subject (NotifySubject).
	NotifySubjectPrefix = "fhir.notify."
	// DefaultMatcherName is the matcher's shared durable consumer.
	DefaultMatcherName = "hub-matcher"
)

// New returns a hub with the defaults.
func New(svc *fhir.Service, engine *search.Engine, bus *natsbus.Bus) *Hub {
	return &Hub{Service: svc, Search: engine, Bus: bus, Retry: DefaultRetry, AttemptTimeout: 10 * time.Second, MatcherName: DefaultMatcherName}
}

func (h *Hub) logger() *slog.Logger {
	if h.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return h.Logger
}

func (h *Hub) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

// Open checks the configuration and starts the hub's goroutines. It returns
// at once: connecting to the streams (retried while NATS cannot be
// reached), loading the subscriptions and starting delivery happen in the
// background; Ready tells when they are done.
func (h *Hub) Open(ctx context.Context) error {
	if h.Service == nil || h.Search == nil || h.Bus == nil || h.Bus.JetStream() == nil {
		return errors.New("subscriptions: the hub needs a service, a search engine and an open bus")
	}
	eps := h.Endpoints
	if len(eps) == 0 {
		eps = DefaultEndpoints
	}
	p, err := parseEndpoints(eps)
	if err != nil {
		return err
	}
	h.policy = p
	if h.Retry.Initial <= 0 {
		h.Retry.Initial = DefaultRetry.Initial
	}
	if h.Retry.Max < h.Retry.Initial {
		h.Retry.Max = max(h.Retry.Initial, DefaultRetry.Max)
	}
	if h.Retry.MaxAttempts <= 0 {
		h.Retry.MaxAttempts = DefaultRetry.MaxAttempts
	}
	if h.AttemptTimeout <= 0 {
		h.AttemptTimeout = 10 * time.Second
	}
	if h.HTTPClient == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 64 // many subscriptions often share a receiver
		h.HTTPClient = &http.Client{
			Transport: tr,
			Timeout:   h.AttemptTimeout,
			// A redirect could lead anywhere: the allow-list is checked
			// on the endpoint only, so a 3xx is a failed attempt.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if h.MatcherName == "" {
		h.MatcherName = DefaultMatcherName
	}
	if h.timing == (timings{}) {
		h.timing = defaultTimings
	}
	h.reg = newRegistry()
	h.bodies = newBodyCache(16 << 20)
	h.counters = map[string]*counter{}
	h.ready = make(chan struct{})
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	h.cancel = cancel
	h.wg.Add(1)
	go h.run(runCtx)
	return nil
}

// Ready is closed once the hub has loaded the subscriptions and runs.
func (h *Hub) Ready() <-chan struct{} { return h.ready }

// Close stops matching and delivery and waits for every goroutine. A
// notification being delivered is left unacknowledged: another replica,
// or this one after a restart, delivers it again.
func (h *Hub) Close(ctx context.Context) error {
	if h.cancel == nil {
		return nil
	}
	h.cancel()
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("subscriptions: stop the hub: %w", ctx.Err())
	}
}

// Stats counts what this hub did.
type Stats struct {
	Subscriptions int    // deliverable subscriptions in the registry
	Matched       uint64 // changes matched with a subscription (jobs published)
	Delivered     uint64 // notifications acknowledged by an endpoint (2xx)
	Failed        uint64 // failed delivery attempts
	Changes       uint64 // changes the matcher handled
}

type counters struct {
	matched, delivered, failed, changes atomic.Uint64
}

// Stats reports the hub's counters; safe at any time after Open.
func (h *Hub) Stats() Stats {
	return Stats{Subscriptions: h.reg.len(), Matched: h.stats.matched.Load(), Delivered: h.stats.delivered.Load(),
		Failed: h.stats.failed.Load(), Changes: h.stats.changes.Load()}
}

func (h *Hub) owners() jetstream.KeyValue {
	if p := h.kv.Load(); p != nil {
		return *p
	}
	return nil
}

// run sets up the streams (retrying), loads the registry, then follows
// Subscription changes and matches changes until ctx ends.
func (h *Hub) run(ctx context.Context) {
	defer h.wg.Done()
	var start uint64
	for attempt := 0; ; attempt++ {
		var err error
		if start, err = h.setup(ctx); err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		if attempt == 0 || attempt%20 == 0 {
			h.logger().Warn("subscriptions: the hub cannot start yet; retrying", "err", err)
		}
		if sleep(ctx, retryWait(attempt)) != nil {
			return
		}
	}
	close(h.ready)
	h.logger().Info("subscriptions: hub running", "subscriptions", h.reg.len(), "notify_stream", NotifyStream, "matcher", h.MatcherName)
	h.wg.Add(1 + Partitions)
	go h.match(ctx, start)
	for p := range Partitions {
		go h.deliver(ctx, p)
	}
	h.follow(ctx, start)
}

func retryWait(attempt int) time.Duration {
	return min(100*time.Millisecond<<min(attempt, 6), 5*time.Second)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// setup creates the stream and bucket, notes FHIR_CHANGES' last sequence,
// and loads the registry from the store; it returns that sequence, after
// which Subscription changes are followed.
func (h *Hub) setup(ctx context.Context) (uint64, error) {
	js := h.Bus.JetStream()
	changes, err := js.Stream(ctx, natsbus.StreamName)
	if err != nil {
		return 0, fmt.Errorf("subscriptions: find the stream %s: %w", natsbus.StreamName, err)
	}
	sc := h.Bus.StreamConfig()
	maxAge := h.NotifyMaxAge
	if maxAge <= 0 {
		maxAge = sc.MaxAge
	}
	notify, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        NotifyStream,
		Description: "notification jobs of FHIR subscriptions, one per matched change and subscription, on fhir.notify.<partition>.<id>, removed once delivered",
		Subjects:    []string{NotifySubjectPrefix + ">"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.WorkQueuePolicy,
		MaxAge:      maxAge,
		MaxMsgs:     -1,
		MaxBytes:    -1,
		Replicas:    sc.Replicas,
		Duplicates:  min(2*time.Minute, maxAge),
	})
	if err != nil {
		return 0, fmt.Errorf("subscriptions: create the stream %s: %w", NotifyStream, err)
	}
	parked, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        ParkedStream,
		Description: "notification jobs of FHIR subscriptions that cannot take them now (error, off, long backlog), on fhir.parked.<id>, deleted once delivered",
		Subjects:    []string{ParkedSubjectPrefix + ">"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      maxAge,
		MaxMsgs:     -1,
		MaxBytes:    -1,
		Replicas:    sc.Replicas,
		Duplicates:  min(2*time.Minute, maxAge),
	})
	if err != nil {
		return 0, fmt.Errorf("subscriptions: create the stream %s: %w", ParkedStream, err)
	}
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        OutStream,
		Description: "notifications of FHIR subscriptions on the nats channel, on fhir.out.<…>, for receivers that consume them from this NATS",
		Subjects:    []string{OutSubjectPrefix + ">"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      maxAge,
		MaxMsgs:     -1,
		MaxBytes:    -1,
		Replicas:    sc.Replicas,
		Duplicates:  min(2*time.Minute, maxAge),
	}); err != nil {
		return 0, fmt.Errorf("subscriptions: create the stream %s: %w", OutStream, err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      OwnersBucket,
		Description: "the scopes of the client that wrote each Subscription",
		Storage:     jetstream.FileStorage,
		Replicas:    sc.Replicas,
		History:     ownerHistory,
	})
	if err != nil {
		return 0, fmt.Errorf("subscriptions: create the bucket %s: %w", OwnersBucket, err)
	}
	h.notify, h.parked, h.changes = notify, parked, changes
	h.kv.Store(&kv)
	eventLog, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              EventLogStream,
		Description:       "the events of topic-based FHIR subscriptions, for $events, on fhir.events.<id>",
		Subjects:          []string{eventLogSubjectPrefix + ">"},
		Storage:           jetstream.FileStorage,
		Retention:         jetstream.LimitsPolicy,
		MaxAge:            maxAge,
		MaxMsgs:           -1,
		MaxBytes:          -1,
		MaxMsgsPerSubject: eventLogPerSubscription,
		Replicas:          sc.Replicas,
		Duplicates:        min(2*time.Minute, maxAge),
	})
	if err != nil {
		return 0, fmt.Errorf("subscriptions: create the stream %s: %w", EventLogStream, err)
	}
	h.eventLog = eventLog
	if err := h.parseTopics(ctx); err != nil {
		return 0, err
	}
	events, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      EventsBucket,
		Description: "the number of events of each topic-based subscription and the feed position of its last one",
		Storage:     jetstream.FileStorage,
		Replicas:    sc.Replicas,
	})
	if err != nil {
		return 0, fmt.Errorf("subscriptions: create the bucket %s: %w", EventsBucket, err)
	}
	h.events = events
	info, err := changes.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("subscriptions: read the stream %s: %w", natsbus.StreamName, err)
	}
	start := info.State.LastSeq
	if err := h.load(ctx); err != nil {
		return 0, err
	}
	h.reg.setApplied(start)
	return start, nil
}

// load reads every Subscription that is requested, active or error from
// the store and considers it.
func (h *Hub) load(ctx context.Context) error {
	q, err := h.Search.Registry.Parse("Subscription", map[string][]string{"status": {"requested,active,error"}}, true)
	if err != nil {
		return fmt.Errorf("subscriptions: the status search: %w", err)
	}
	page := search.Page{Count: 500}
	for {
		res, err := h.Search.Backend.Search(ctx, q, page)
		if err != nil {
			return fmt.Errorf("subscriptions: load the subscriptions: %w", err)
		}
		for _, r := range res.Resources {
			h.consider(ctx, r, 0)
		}
		if !res.More || len(res.Cursors) == 0 {
			return nil
		}
		page.After = &res.Cursors[len(res.Cursors)-1]
	}
}

// follow applies every Subscription change after stream sequence start to
// the registry, with an ordered consumer of this replica's own.
func (h *Hub) follow(ctx context.Context, start uint64) {
	for ctx.Err() == nil {
		err := h.followOnce(ctx, start)
		if ctx.Err() != nil {
			return
		}
		h.logger().Warn("subscriptions: following Subscription changes failed; retrying", "err", err)
		h.reg.mu.RLock()
		start = h.reg.applied
		h.reg.mu.RUnlock()
		if sleep(ctx, time.Second) != nil {
			return
		}
	}
}

func (h *Hub) followOnce(ctx context.Context, start uint64) error {
	oc, err := h.Bus.JetStream().OrderedConsumer(ctx, natsbus.StreamName, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{natsbus.Subject("Subscription")},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    start + 1,
	})
	if err != nil {
		return err
	}
	it, err := oc.Messages()
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
		meta, err := msg.Metadata()
		if err != nil {
			continue
		}
		ch, err := natsbus.DecodeChange(msg.Headers(), msg.Data())
		if err == nil {
			h.apply(ctx, ch)
		} else {
			h.logger().Warn("subscriptions: a change message that cannot be read", "err", err)
		}
		h.reg.setApplied(meta.Sequence.Stream)
	}
}

// apply updates the registry with one Subscription change.
func (h *Hub) apply(ctx context.Context, ch fhir.Change) {
	if ch.Deleted() {
		h.reg.markGone(ch.ID)
		h.dropQueue(ctx, ch.ID)
		return
	}
	if cur := h.reg.get(ch.ID); cur != nil && cur.Version >= ch.Version {
		return // already known (loaded from the store after this change)
	}
	// A change published after the hub loaded the store may be older than
	// the stored version; the newer version's own change follows.
	if r, err := h.Service.Store.Read(ctx, "Subscription", ch.ID); err == nil && r.Version > ch.Version {
		return
	}
	h.consider(ctx, ch.Resource, ch.Seq)
}

// consider brings the registry and the subscription's status in line with
// one version of it: seq is its feed position (0 when loaded from the
// store).
func (h *Hub) consider(ctx context.Context, r fhir.Resource, seq int64) {
	defer h.reg.noteVersion(r.ID, r.Version)
	s, err := decodeSpec(r)
	if err != nil {
		h.logger().Warn("subscriptions: a Subscription that cannot be read", "id", r.ID, "err", err)
		h.reg.remove(r.ID)
		return
	}
	switch s.Status {
	case StatusRequested, StatusActive, StatusError:
	default: // off, or anything else: no matching, no delivery; queued jobs stay (parked)
		h.reg.remove(s.ID)
		return
	}
	problem := h.validate(ctx, s)
	var a *smart.Access
	if problem == nil && h.ReadCheck != nil {
		var ok bool
		a, ok, err = h.creator(ctx, s.ID, s.Version)
		switch {
		case err != nil:
			h.logger().Error("subscriptions: the creator's scopes cannot be read; the subscription is left as it is", "id", s.ID, "err", err)
			return
		case !ok:
			problem = errors.New("the scopes of the client that wrote this Subscription are not on record (written with authorization off, or not through the API): write it again with a token")
		}
	}
	if problem != nil {
		h.reg.remove(s.ID)
		if s.Status != StatusError {
			h.setStatus(ctx, s.ID, s.Version, StatusError, problem.Error())
		}
		return
	}
	if s.Status == StatusRequested {
		if s.Topic != nil {
			// Topic-based: active after a handshake the endpoint accepts,
			// sent by the replica pinned to the subscription's partition.
			h.requestHandshake(s.ID, s.Version)
			return
		}
		h.setStatus(ctx, s.ID, s.Version, StatusActive, "")
		return
	}
	ns := &sub{spec: s, access: a}
	if h.ReadCheck != nil {
		ns.readable = h.ReadCheck(a)
	}
	switch old := h.reg.get(s.ID); {
	case old != nil:
		ns.since = old.since // still deliverable: events go on from where they were
	case seq > 0:
		ns.since = seq
	default:
		ns.since = h.deliverableSince(ctx, r)
	}
	h.reg.put(ns)
	if s.Status != StatusActive {
		return
	}
	// Parked jobs (from a time in error or off) go out now; at load only
	// when there are some, not to wake every subscription at each start.
	if seq == 0 && s.Heartbeat == 0 { // heartbeats need the partition's pinned replica to look
		if has, err := h.hasParked(ctx, s.ID); err != nil || !has {
			return
		}
	}
	h.wake(s.ID, s.Version)
}

// deliverableSince finds, for a subscription loaded from the store, the
// feed position of the oldest version in its latest unbroken run of active
// and error versions: changes before it are never notified.
func (h *Hub) deliverableSince(ctx context.Context, r fhir.Resource) int64 {
	hist, err := h.Service.Store.History(ctx, fhir.HistoryQuery{Type: r.Type, ID: r.ID, Count: 100})
	if err != nil {
		h.logger().Warn("subscriptions: read a Subscription's history", "id", r.ID, "err", err)
		return 0
	}
	var since int64
	for _, ch := range hist { // newest first
		if ch.Deleted() {
			break
		}
		var v struct {
			Status string `json:"status"`
		}
		if json.Unmarshal(ch.JSON, &v) != nil || (v.Status != StatusActive && v.Status != StatusError) {
			break
		}
		since = ch.Seq
	}
	return since
}

// setStatus writes a new version of Subscription id with status and error
// (removed when empty), through the service, if its current version is
// still version: another writer (a replica doing the same, the client)
// wins, and its version is considered in turn.
func (h *Hub) setStatus(ctx context.Context, id string, version int64, status, reason string) bool {
	r, err := h.Service.Read(ctx, "Subscription", id)
	if err != nil || r.Deleted() || (version > 0 && r.Version != version) {
		return false
	}
	dec := json.NewDecoder(strings.NewReader(string(r.JSON)))
	dec.UseNumber()
	var v map[string]any
	if err := dec.Decode(&v); err != nil {
		return false
	}
	v["status"] = status
	if reason == "" {
		delete(v, "error")
	} else {
		v["error"] = reason
	}
	body, _ := json.Marshal(v)
	cur := r.Version
	if _, err := h.Service.Update(ctx, "Subscription", id, body, &cur); err != nil {
		if st := fhir.ErrorStatus(err); st != http.StatusPreconditionFailed && st != http.StatusConflict {
			h.logger().Error("subscriptions: update a Subscription's status", "id", id, "status", status, "err", err)
		}
		return false
	}
	h.logger().Info("subscriptions: status set", "id", id, "status", status, "error", reason)
	return true
}

// dropQueue removes a deleted subscription's parked jobs (lanes drop its
// queued ones).
func (h *Hub) dropQueue(ctx context.Context, id string) {
	if err := h.parked.Purge(ctx, jetstream.WithPurgeSubject(parkedSubject(id))); err != nil {
		h.logger().Warn("subscriptions: purge a subscription's parked jobs", "id", id, "err", err)
	}
	if err := h.eventLog.Purge(ctx, jetstream.WithPurgeSubject(eventLogSubject(id))); err != nil {
		h.logger().Warn("subscriptions: purge a subscription's events", "id", id, "err", err)
	}
	// A Subscription created again under the id counts its events anew.
	if err := h.events.Delete(ctx, id); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		h.logger().Warn("subscriptions: delete a subscription's event counter", "id", id, "err", err)
	}
}
