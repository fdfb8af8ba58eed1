package subscriptions

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/fhirhub/fhirhub/fhir"
	"github.com/fhirhub/fhirhub/subscriptions/natsbus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Headers of a rest-hook notification.
const (
	// HeaderSignature is "sha256=" and the hex HMAC-SHA256, keyed with the
	// subscription's secret, of the timestamp, a '.', and the body bytes.
	HeaderSignature = "X-Fhirhub-Signature"
	// HeaderTimestamp is the Unix time (seconds) the signature covers.
	HeaderTimestamp = "X-Fhirhub-Timestamp"
	// HeaderSubscriptionRef is Subscription/<id>.
	HeaderSubscriptionRef = "X-Fhirhub-Subscription"
	// HeaderEvent is the change's feed position: increasing per
	// subscription, the same when a notification is delivered again.
	HeaderEvent = "X-Fhirhub-Event"
	// HeaderResource (Type/id/_history/version) and HeaderOp (create,
	// update, delete) say what changed; sent only with a payload.
	HeaderResource = "X-Fhirhub-Resource"
	HeaderOp       = "X-Fhirhub-Op"
)

// worker delivers one subscription's jobs on this replica.
type worker struct {
	cancel context.CancelFunc
}

// startWorker starts delivery for subscription id unless it runs.
func (h *Hub) startWorker(id string) {
	h.workerMu.Lock()
	defer h.workerMu.Unlock()
	if h.workers[id] != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &worker{cancel: cancel}
	h.workers[id] = w
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		defer cancel()
		h.deliverLoop(ctx, id)
		h.workerMu.Lock()
		if h.workers[id] == w {
			delete(h.workers, id)
		}
		h.workerMu.Unlock()
	}()
}

// stopWorker stops delivery for subscription id (without waiting: a
// notification in flight is abandoned and delivered again later).
func (h *Hub) stopWorker(id string) {
	h.workerMu.Lock()
	defer h.workerMu.Unlock()
	if w := h.workers[id]; w != nil {
		w.cancel()
		delete(h.workers, id)
	}
}

// ackWait is how long a worker may hold a job without a sign of progress;
// it signals progress before each attempt and while backing off.
func (h *Hub) ackWait() time.Duration { return max(30*time.Second, 3*h.AttemptTimeout) }

// deliveryConsumerFor creates or opens the durable consumer of a
// subscription's jobs, shared by the replicas: one job in flight at a time,
// so they go out in order.
func (h *Hub) deliveryConsumerFor(ctx context.Context, id string) (jetstream.Consumer, error) {
	return h.Bus.JetStream().CreateOrUpdateConsumer(ctx, NotifyStream, jetstream.ConsumerConfig{
		Durable:       deliveryConsumer(id),
		Description:   "rest-hook delivery of Subscription/" + id,
		FilterSubject: NotifySubject(id),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       h.ackWait(),
		MaxAckPending: 1,
		MaxDeliver:    -1,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
}

// deliverLoop delivers subscription id's jobs until ctx ends or the
// subscription fails.
func (h *Hub) deliverLoop(ctx context.Context, id string) {
	var c jetstream.Consumer
	for attempt := 0; c == nil; attempt++ {
		var err error
		if c, err = h.deliveryConsumerFor(ctx, id); err != nil {
			if ctx.Err() != nil {
				return
			}
			h.logger().Warn("subscriptions: open a delivery consumer", "id", id, "err", err)
			if sleep(ctx, retryWait(attempt)) != nil {
				return
			}
		}
	}
	// One pull of one job at a time: no pull request is outstanding while
	// a job is handled, so a job given back (Nak) when the worker stops
	// cannot be handed to a pull nobody reads any more (it would sit
	// unacknowledged for AckWait, holding the subscription's queue).
	var delivered, purged uint64
	var lastPurge time.Time
	for ctx.Err() == nil {
		fctx, cancel := context.WithTimeout(ctx, h.fetchWait)
		msg, err := c.Next(jetstream.FetchContext(fctx))
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, jetstream.ErrNoMessages) {
				if delivered > purged { // idle: purge the rest
					h.purgeDelivered(ctx, id, delivered)
					purged, lastPurge = delivered, time.Now()
				}
				continue
			}
			h.logger().Warn("subscriptions: read a delivery consumer", "id", id, "err", err)
			if sleep(ctx, time.Second) != nil {
				return
			}
			continue
		}
		if !h.deliverJob(ctx, id, msg) {
			return
		}
		if meta, err := msg.Metadata(); err == nil {
			delivered = meta.Sequence.Stream
		}
		if delivered > purged && time.Since(lastPurge) >= purgeEvery {
			h.purgeDelivered(ctx, id, delivered)
			purged, lastPurge = delivered, time.Now()
		}
	}
}

// purgeEvery is how often a worker removes the jobs it delivered from
// FHIR_NOTIFY (limits retention keeps them otherwise until MaxAge).
const purgeEvery = 5 * time.Second

// purgeDelivered removes subscription id's jobs up to stream sequence seq.
// One job at a time is in flight per subscription, so every job before an
// acknowledged one was acknowledged too.
func (h *Hub) purgeDelivered(ctx context.Context, id string, seq uint64) {
	if h.notify.CachedInfo().Config.Retention == jetstream.WorkQueuePolicy {
		return // removed on acknowledgement
	}
	if err := h.notify.Purge(ctx, jetstream.WithPurgeSubject(NotifySubject(id)), jetstream.WithPurgeSequence(seq+1)); err != nil && ctx.Err() == nil {
		h.logger().Warn("subscriptions: purge delivered jobs", "id", id, "err", err)
	}
}

// defaultFetchWait bounds one pull of a delivery worker; a worker idle
// that long purges what it delivered since its last purge.
const defaultFetchWait = 20 * time.Second

// deliverJob delivers one job, retrying in place; false when the worker
// must stop (the subscription failed or was stopped).
func (h *Hub) deliverJob(ctx context.Context, id string, msg jetstream.Msg) bool {
	job, err := natsbus.DecodeChange(msg.Headers(), nil)
	if err != nil {
		_ = msg.TermWithReason(err.Error())
		return true
	}
	var lastErr error
	for attempt := 1; ; attempt++ {
		s := h.reg.get(id)
		if s == nil || s.Status != StatusActive {
			_ = msg.Nak() // no longer deliverable here: leave it first in line
			return false
		}
		_ = msg.InProgress()
		err := h.post(ctx, s, job)
		if err == nil {
			if err := msg.DoubleAck(ctx); err != nil && ctx.Err() == nil {
				// Not acknowledged: it will be delivered again (at least once).
				h.logger().Warn("subscriptions: acknowledge a delivered notification", "id", id, "seq", job.Seq, "err", err)
			}
			h.stats.delivered.Add(1)
			return true
		}
		if ctx.Err() != nil {
			_ = msg.Nak()
			return false
		}
		h.stats.failed.Add(1)
		lastErr = err
		if attempt >= h.Retry.MaxAttempts {
			break
		}
		h.logger().Debug("subscriptions: delivery failed; retrying", "id", id, "seq", job.Seq, "attempt", attempt, "err", err)
		if h.backoff(ctx, msg, attempt) != nil {
			_ = msg.Nak()
			return false
		}
	}
	reason := fmt.Sprintf("%s %d times", lastErr, h.Retry.MaxAttempts)
	h.logger().Warn("subscriptions: delivery failed; the subscription goes to error", "id", id, "seq", job.Seq, "reason", reason)
	h.fail(ctx, id, reason)
	_ = msg.Nak() // stays first in line for when the subscription is active again
	return false
}

// backoff waits before attempt n+1: full jitter over an exponentially
// growing bound, telling JetStream the job is still in progress.
func (h *Hub) backoff(ctx context.Context, msg jetstream.Msg, n int) error {
	bound := h.Retry.Max
	if n-1 < 40 {
		bound = min(h.Retry.Max, h.Retry.Initial<<(n-1))
	}
	d := time.Duration(rand.Int64N(int64(bound) + 1))
	tick := h.ackWait() / 3
	for d > 0 {
		step := min(d, tick)
		if err := sleep(ctx, step); err != nil {
			return err
		}
		d -= step
		_ = msg.InProgress()
	}
	return nil
}

// fail sets an active subscription to error with reason.
func (h *Hub) fail(ctx context.Context, id, reason string) {
	for range 5 {
		r, err := h.Service.Read(ctx, "Subscription", id)
		if err != nil || r.Deleted() {
			return
		}
		s, err := decodeSpec(r)
		if err != nil || s.Status != StatusActive {
			return
		}
		if h.setStatus(ctx, id, r.Version, StatusError, reason) {
			return
		}
	}
}

// deliveryError is a failed attempt, worded for Subscription.error.
type deliveryError struct {
	status int
	err    error
}

func (e *deliveryError) Error() string {
	if e.err != nil {
		return "endpoint unreachable (" + e.err.Error() + ")"
	}
	return "endpoint answered " + strconv.Itoa(e.status)
}

// post sends one notification: a POST to the endpoint, with the version as
// the body when the subscription asks for a payload (none for a deletion).
func (h *Hub) post(ctx context.Context, s *sub, job fhir.Change) error {
	var body []byte
	if s.Payload != "" && !job.Deleted() {
		r, err := h.Service.Store.VRead(ctx, job.Type, job.ID, job.Version)
		if err != nil {
			return fmt.Errorf("read %s/%s version %d: %w", job.Type, job.ID, job.Version, err)
		}
		body = r.JSON
	}
	actx, cancel := context.WithTimeout(ctx, h.AttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, s.Endpoint, bytes.NewReader(body))
	if err != nil {
		return &deliveryError{err: err}
	}
	for _, line := range s.Headers {
		name, value, _ := strings.Cut(line, ":")
		req.Header.Add(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	req.Header.Set("User-Agent", "fhirhub-subscriptions")
	req.Header.Set(HeaderSubscriptionRef, "Subscription/"+s.ID)
	req.Header.Set(HeaderEvent, strconv.FormatInt(job.Seq, 10))
	if s.Payload != "" {
		req.Header.Set(HeaderResource, job.Type+"/"+job.ID+"/_history/"+strconv.FormatInt(job.Version, 10))
		req.Header.Set(HeaderOp, string(job.Op))
	}
	if len(body) > 0 {
		req.Header.Set("Content-Type", s.Payload)
	}
	if s.Secret != nil {
		ts := strconv.FormatInt(h.now().Unix(), 10)
		req.Header.Set(HeaderTimestamp, ts)
		req.Header.Set(HeaderSignature, Sign(s.Secret, ts, body))
	}
	resp, err := h.HTTPClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ue interface{ Unwrap() error }
		if errors.As(err, &ue) && ue.Unwrap() != nil {
			err = ue.Unwrap() // drop the method and URL url.Error repeats
		}
		return &deliveryError{err: err}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &deliveryError{status: resp.StatusCode}
	}
	return nil
}

// Sign is the value of X-Fhirhub-Signature for a body sent at timestamp
// (Unix seconds, as in X-Fhirhub-Timestamp): "sha256=" and the hex
// HMAC-SHA256, keyed with secret, of timestamp + "." + body.
func Sign(secret []byte, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}
