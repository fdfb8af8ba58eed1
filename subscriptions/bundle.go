package subscriptions

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/url"
	"strconv"

	"github.com/fhirhub/fhirhub/fhir"
	"github.com/fhirhub/fhirhub/subscriptions/natsbus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The notification types of the Backport IG (SubscriptionStatus.type).
const (
	kindEvent       = "event-notification"
	kindHandshake   = "handshake"
	kindHeartbeat   = "heartbeat"
	kindQueryStatus = "query-status"
	kindQueryEvent  = "query-event"
)

// The event log: every event of a topic-based subscription, kept for
// $events (limits retention: MaxAge as FHIR_CHANGES, at most
// eventLogPerSubscription per subscription).
const (
	EventLogStream          = "FHIR_EVENTS"
	eventLogSubjectPrefix   = "fhir.events."
	eventLogPerSubscription = 10000
	eventsMaxReturned       = 1000
)

func eventLogSubject(id string) string { return eventLogSubjectPrefix + id }

// HeaderNotification marks a job that is not an event: handshake.
const HeaderNotification = "Fhir-Notification"

// notice is one notification to deliver: an event (a change, and for a
// topic-based subscription its number), or a handshake or heartbeat.
type notice struct {
	fhir.Change
	kind   string // kindEvent, kindHandshake or kindHeartbeat
	number int64  // the event number (topic-based subscriptions)
}

// decodeNotice reads a job's headers.
func decodeNotice(hd nats.Header) (notice, error) {
	if k := hd.Get(HeaderNotification); k != "" {
		return notice{kind: k}, nil
	}
	ch, err := natsbus.DecodeChange(hd, nil)
	if err != nil {
		return notice{}, err
	}
	n := notice{Change: ch, kind: kindEvent}
	n.number, _ = strconv.ParseInt(hd.Get(HeaderEventNumber), 10, 64)
	return n, nil
}

// ref is a reference to a resource of this server: absolute under BaseURL
// when it is set.
func (h *Hub) ref(path string) string {
	if h.BaseURL == "" {
		return path
	}
	return h.BaseURL + "/" + path
}

// statusParameters is the SubscriptionStatus (R4: a Parameters resource
// of the backport-subscription-status-r4 profile) of s.
func (h *Hub) statusParameters(s *spec, kind, status string, since int64, evs []notice) map[string]any {
	params := []any{
		map[string]any{"name": "subscription", "valueReference": map[string]any{"reference": h.ref("Subscription/" + s.ID)}},
		map[string]any{"name": "topic", "valueCanonical": s.Topic.URL},
		map[string]any{"name": "status", "valueCode": status},
		map[string]any{"name": "type", "valueCode": kind},
		map[string]any{"name": "events-since-subscription-start", "valueString": strconv.FormatInt(since, 10)},
	}
	for _, ev := range evs {
		parts := []any{
			map[string]any{"name": "event-number", "valueString": strconv.FormatInt(ev.number, 10)},
			map[string]any{"name": "timestamp", "valueInstant": fhir.FormatInstant(ev.LastUpdated)},
		}
		if s.Content != contentEmpty {
			parts = append(parts, map[string]any{"name": "focus", "valueReference": map[string]any{
				"reference": h.ref(ev.Type + "/" + ev.ID + "/_history/" + strconv.FormatInt(ev.Version, 10))}})
		}
		params = append(params, map[string]any{"name": "notification-event", "part": parts})
	}
	if s.Error != "" && status == StatusError {
		params = append(params, map[string]any{"name": "error", "valueCodeableConcept": map[string]any{"text": s.Error}})
	}
	return map[string]any{
		"resourceType": "Parameters",
		"id":           newID(),
		"meta":         map[string]any{"profile": []string{subscriptionStatusR4}},
		"parameter":    params,
	}
}

// notificationBundle is the body of a topic-based subscription's
// notification: a history Bundle, the SubscriptionStatus first, then the
// event's resource (id-only: its reference; full-resource: the version).
func (h *Hub) notificationBundle(ctx context.Context, s *sub, n notice) ([]byte, error) {
	since := n.number
	if n.kind != kindEvent {
		c, err := h.readCounter(ctx, s.ID)
		if err != nil {
			return nil, err
		}
		since = c.n
	}
	var evs []notice
	if n.kind == kindEvent {
		evs = []notice{n}
	}
	status := StatusActive
	if n.kind == kindHandshake {
		status = StatusRequested
	}
	entries, err := h.eventEntries(ctx, s.spec, n.kind, status, since, evs)
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{
		"resourceType": "Bundle",
		"id":           newID(),
		"type":         "history",
		"timestamp":    fhir.FormatInstant(h.now()),
		"entry":        entries,
	})
}

// eventEntries are a notification bundle's entries: the SubscriptionStatus
// then, unless the content is empty, one entry per event.
func (h *Hub) eventEntries(ctx context.Context, s *spec, kind, status string, since int64, evs []notice) ([]any, error) {
	entries := []any{map[string]any{
		"fullUrl":  "urn:uuid:" + newUUID(),
		"resource": h.statusParameters(s, kind, status, since, evs),
		"request":  map[string]any{"method": "GET", "url": h.ref("Subscription/" + s.ID + "/$status")},
		"response": map[string]any{"status": "200"},
	}}
	if s.Content == contentEmpty {
		return entries, nil
	}
	for _, ev := range evs {
		e := map[string]any{"fullUrl": h.ref(ev.Type + "/" + ev.ID)}
		switch ev.Op {
		case fhir.OpCreate:
			e["request"] = map[string]any{"method": "POST", "url": ev.Type}
			e["response"] = map[string]any{"status": "201"}
		case fhir.OpDelete:
			e["request"] = map[string]any{"method": "DELETE", "url": ev.Type + "/" + ev.ID}
			e["response"] = map[string]any{"status": "204"}
		default:
			e["request"] = map[string]any{"method": "PUT", "url": ev.Type + "/" + ev.ID}
			e["response"] = map[string]any{"status": "200"}
		}
		if s.Content == contentFullResource && !ev.Deleted() {
			body, err := h.versionJSON(ctx, ev.Change)
			if err != nil {
				return nil, err
			}
			e["resource"] = json.RawMessage(body)
		}
		entries = append(entries, e)
	}
	return entries, nil
}

// versionJSON is a version's JSON, from the matcher's cache or the store.
func (h *Hub) versionJSON(ctx context.Context, ch fhir.Change) ([]byte, error) {
	if body := h.bodies.get(bodyKey(ch.Type, ch.ID, ch.Version)); body != nil {
		return body, nil
	}
	r, err := h.Service.Store.VRead(ctx, ch.Type, ch.ID, ch.Version)
	if err != nil {
		return nil, err
	}
	return r.JSON, nil
}

// queryStatus is the $status answer for one Subscription version: a
// searchset Bundle holding its SubscriptionStatus.
func (h *Hub) queryStatus(ctx context.Context, s *spec) ([]byte, error) {
	c, err := h.readCounter(ctx, s.ID)
	if err != nil {
		return nil, err
	}
	p := h.statusParameters(s, kindQueryStatus, s.Status, c.n, nil)
	return json.Marshal(map[string]any{
		"resourceType": "Bundle",
		"id":           newID(),
		"type":         "searchset",
		"timestamp":    fhir.FormatInstant(h.now()),
		"total":        1,
		"entry": []any{map[string]any{
			"fullUrl":  "urn:uuid:" + newUUID(),
			"resource": p,
			"search":   map[string]any{"mode": "match"},
		}},
	})
}

// SubscriptionStatus answers GET [base]/Subscription/<id>/$status for the
// version r (already read and authorized by the caller). A criteria
// (non-topic) Subscription gets 400.
func (h *Hub) SubscriptionStatus(ctx context.Context, r fhir.Resource) ([]byte, error) {
	s, err := decodeSpec(r)
	if err != nil {
		return nil, fhir.Internal(err, "subscriptions: read the Subscription")
	}
	if s.Topic == nil || s.Topic.Resource == "" {
		return nil, &fhir.Error{Status: http.StatusBadRequest, Issues: []fhir.Issue{{Severity: fhir.SeverityError, Code: fhir.IssueNotSupported,
			Diagnostics: "Subscription/" + r.ID + " is not topic-based: $status applies to Subscriptions whose criteria is a topic of this server"}}}
	}
	return h.queryStatus(ctx, s)
}

// SubscriptionEvents answers GET [base]/Subscription/<id>/$events for the
// version r (read and authorized by the caller): a history Bundle with the
// query-event SubscriptionStatus and the events numbered eventsSinceNumber
// to eventsUntilNumber (default: all kept, at most 1,000), with the
// subscription's payload content or the content parameter's.
func (h *Hub) SubscriptionEvents(ctx context.Context, r fhir.Resource, params url.Values) ([]byte, error) {
	s, err := decodeSpec(r)
	if err != nil {
		return nil, fhir.Internal(err, "subscriptions: read the Subscription")
	}
	if s.Topic == nil || s.Topic.Resource == "" {
		return nil, badRequest("Subscription/" + r.ID + " is not topic-based: $events applies to Subscriptions whose criteria is a topic of this server")
	}
	from, until := int64(1), int64(math.MaxInt64)
	for name, dst := range map[string]*int64{"eventsSinceNumber": &from, "eventsUntilNumber": &until} {
		if v := params.Get(name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1 {
				return nil, badRequest(name + " must be a positive integer, not " + strconv.Quote(v))
			}
			*dst = n
		}
	}
	if c := params.Get("content"); c != "" {
		switch c {
		case contentEmpty, contentIDOnly, contentFullResource:
			s.Content = c
		default:
			return nil, badRequest("content must be empty, id-only or full-resource, not " + strconv.Quote(c))
		}
	}
	c, err := h.readCounter(ctx, s.ID)
	if err != nil {
		return nil, err
	}
	var evs []notice
	var next uint64
	for len(evs) < eventsMaxReturned {
		raw, err := h.eventLog.GetMsg(ctx, next, jetstream.WithGetMsgSubject(eventLogSubject(s.ID)))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, fhir.Internal(err, "subscriptions: read the event log")
		}
		next = raw.Sequence + 1
		n, err := decodeNotice(raw.Header)
		if err != nil || n.number < from {
			continue
		}
		if n.number > until {
			break
		}
		evs = append(evs, n)
	}
	entries, err := h.eventEntries(ctx, s, kindQueryEvent, s.Status, c.n, evs)
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{
		"resourceType": "Bundle",
		"id":           newID(),
		"type":         "history",
		"timestamp":    fhir.FormatInstant(h.now()),
		"entry":        entries,
	})
}

func badRequest(msg string) error {
	return &fhir.Error{Status: http.StatusBadRequest, Issues: []fhir.Issue{{Severity: fhir.SeverityError, Code: fhir.IssueInvalid, Diagnostics: msg}}}
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
