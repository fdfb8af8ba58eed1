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

// backoff waits before attempt n+1: full jitter over an exponentially
// growing bound. It returns early, with false, when the subscription stops
// being active meanwhile.
func (h *Hub) backoff(ctx context.Context, id string, n int) (bool, error) {
	bound := h.Retry.Max
	if n-1 < 40 {
		bound = min(h.Retry.Max, h.Retry.Initial<<(n-1))
	}
	d := time.Duration(rand.Int64N(int64(bound) + 1))
	for d > 0 {
		step := min(d, time.Second)
		if err := sleep(ctx, step); err != nil {
			return false, err
		}
		d -= step
		if s := h.reg.get(id); s == nil || s.Status != StatusActive {
			return false, nil
		}
	}
	return true, nil
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
func (h *Hub) post(ctx context.Context, s *sub, job notice) error {
	if s.Channel == ChannelWebSocket {
		return h.pingWebSocket(s, strconv.FormatInt(job.Seq, 10))
	}
	var body []byte
	contentType := s.Payload
	hd := http.Header{}
	for _, line := range s.Headers {
		name, value, _ := strings.Cut(line, ":")
		hd.Add(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	hd.Set(HeaderSubscriptionRef, "Subscription/"+s.ID)
	if s.Topic != nil {
		b, err := h.notificationBundle(ctx, s, job)
		if err != nil {
			return fmt.Errorf("build the notification: %w", err)
		}
		body = b
		if contentType == "" {
			contentType = "application/fhir+json"
		}
		if job.kind == kindEvent {
			hd.Set(HeaderEvent, strconv.FormatInt(job.Seq, 10))
		}
	} else {
		if s.Payload != "" && !job.Deleted() {
			b, err := h.versionJSON(ctx, job.Change)
			if err != nil {
				return fmt.Errorf("read %s/%s version %d: %w", job.Type, job.ID, job.Version, err)
			}
			body = b
		}
		hd.Set(HeaderEvent, strconv.FormatInt(job.Seq, 10))
		if s.Payload != "" {
			hd.Set(HeaderResource, job.Type+"/"+job.ID+"/_history/"+strconv.FormatInt(job.Version, 10))
			hd.Set(HeaderOp, string(job.Op))
		}
	}
	if len(body) > 0 {
		hd.Set("Content-Type", contentType)
	}
	if s.Secret != nil {
		ts := strconv.FormatInt(h.now().Unix(), 10)
		hd.Set(HeaderTimestamp, ts)
		hd.Set(HeaderSignature, Sign(s.Secret, ts, body))
	}
	timeout := h.AttemptTimeout
	if s.Timeout > 0 {
		timeout = min(timeout, time.Duration(s.Timeout)*time.Second)
	}
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if s.Channel == ChannelNATS {
		return h.publishOut(actx, ctx, s, job, hd, body)
	}
	req, err := http.NewRequestWithContext(actx, http.MethodPost, s.Endpoint, bytes.NewReader(body))
	if err != nil {
		return &deliveryError{err: err}
	}
	req.Header = hd
	req.Header.Set("User-Agent", "fhirhub-subscriptions")
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

// publishOut delivers a notification on the nats channel: a message on
// the subscription's subject in FHIR_OUT, with the rest-hook headers, the
// same body, and Nats-Msg-Id <subscription id>/<event>, so a notification
// delivered again within two minutes is stored once. Delivered once
// JetStream has stored it.
func (h *Hub) publishOut(actx, ctx context.Context, s *sub, job notice, hd http.Header, body []byte) error {
	m := &nats.Msg{Subject: outSubject(s.Endpoint), Header: nats.Header(hd), Data: body}
	var opts []jetstream.PublishOpt
	if job.kind == kindEvent {
		opts = append(opts, jetstream.WithMsgID(s.ID+"/"+strconv.FormatInt(job.Seq, 10)))
	}
	_, err := h.Bus.JetStream().PublishMsg(actx, m, opts...)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &deliveryError{err: fmt.Errorf("NATS: %w", err)}
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
