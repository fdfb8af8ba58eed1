package subscriptions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fhirhub/fhirhub/conformance"
	"github.com/fhirhub/fhirhub/fhir"
	"github.com/fhirhub/fhirhub/fhir/rest"
	"github.com/fhirhub/fhirhub/fhir/search"
	"github.com/fhirhub/fhirhub/fhir/sqlitestore"
	"github.com/fhirhub/fhirhub/smart"
	"github.com/fhirhub/fhirhub/subscriptions/natsbus"
)

var testLogger = func() *slog.Logger {
	if os.Getenv("SUBSCRIPTIONS_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}()

var (
	sharedOnce      sync.Once
	sharedValidator *conformance.Validator
	sharedRegistry  *search.Registry
	sharedErr       error
)

func shared(t testing.TB) (*conformance.Validator, *search.Registry) {
	sharedOnce.Do(func() {
		if sharedValidator, sharedErr = conformance.NewValidator(); sharedErr == nil {
			sharedRegistry, sharedErr = search.NewRegistry(conformance.ResourceTypes())
		}
	})
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return sharedValidator, sharedRegistry
}

// testVerifier maps opaque test tokens to what they grant.
type testVerifier map[string]*smart.Access

func (v testVerifier) Verify(_ context.Context, token string) (*smart.Access, error) {
	if a, ok := v[token]; ok {
		return a, nil
	}
	return nil, errors.New("unknown token")
}

func access(scopes, patient string) *smart.Access {
	g, bad := smart.ParseGrant(scopes)
	if len(bad) > 0 {
		panic(fmt.Sprintf("bad test scopes %v", bad))
	}
	return &smart.Access{Grant: g, Patient: patient, ClientID: "test"}
}

// env is a whole server in the test process: the SQLite store, the search
// engine, the embedded NATS with the relay, the HTTP API and hubs.
type env struct {
	t      *testing.T
	svc    *fhir.Service
	engine *search.Engine
	api    *rest.Server
	base   string // the FHIR base URL
	nats   *natsbus.Server
	bus    *natsbus.Bus
	hubs   []*Hub
	token  string // the bearer token requests send ("" without authorization)
}

type envOptions struct {
	verifier testVerifier // nil: authorization off
	retry    Retry
	hubs     int
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	ctx := context.Background()
	validator, registry := shared(t)
	store := sqlitestore.New(t.TempDir())
	store.Synchronous = "NORMAL"
	if err := store.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close(context.Background()) })
	indexer := &search.Indexer{Registry: registry}
	svc := &fhir.Service{Store: store, Validator: validator, Indexer: indexer}
	engine := &search.Engine{Registry: registry, Backend: store, Store: store, Indexer: indexer}
	svc.Finder, svc.Check = engine, engine.CheckWrite

	srv := natsbus.NewServer(t.TempDir())
	if err := srv.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close(context.Background()) })
	e := &env{t: t, svc: svc, engine: engine, nats: srv}
	e.bus = e.openBus()
	relay := natsbus.NewRelay(store, e.bus)
	relay.PollInterval = 50 * time.Millisecond
	if err := relay.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = relay.Close(context.Background()) })
	svc.Committed = func(ch fhir.Change) { engine.Committed(ch); relay.Notify(ch.Seq) }

	e.api = &rest.Server{Service: svc, Search: engine, Logger: testLogger}
	if o.verifier != nil {
		e.api.Verifier = o.verifier
	}
	// The websocket endpoint is served by the last hub: with two, pings
	// cross from the replica that delivers to the one the client is on.
	e.api.WebSocket = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.hubs[len(e.hubs)-1].WebSocket().ServeHTTP(w, r)
	})
	e.api.SubscriptionTopics = TopicURLs()
	e.api.SubscriptionStatus = func(ctx context.Context, r fhir.Resource) ([]byte, error) {
		return e.hubs[0].SubscriptionStatus(ctx, r)
	}
	e.api.SubscriptionEvents = func(ctx context.Context, r fhir.Resource, params url.Values) ([]byte, error) {
		return e.hubs[0].SubscriptionEvents(ctx, r, params)
	}
	hs := httptest.NewServer(e.api.Handler())
	t.Cleanup(hs.Close)
	e.base = hs.URL + rest.BasePath

	if o.hubs == 0 {
		o.hubs = 1
	}
	if o.retry.MaxAttempts == 0 {
		o.retry = Retry{Initial: time.Millisecond, Max: 20 * time.Millisecond, MaxAttempts: 5}
	}
	for i := range o.hubs {
		bus := e.bus
		if i > 0 {
			bus = e.openBus() // another replica: its own connection
		}
		h := New(svc, engine, bus)
		h.Logger = testLogger.With("hub", i)
		h.Endpoints = []string{"http://127.0.0.1"}
		h.Retry = o.retry
		h.timing = timings{matcherAckWait: 2 * time.Second, matcherPinnedTTL: 3 * time.Second, laneAckWait: 2 * time.Second, lanePinnedTTL: 3 * time.Second, laneIdle: time.Second}
		h.AttemptTimeout = 5 * time.Second
		if o.verifier != nil {
			h.ReadCheck = e.api.ReadCheck
		}
		if err := h.Open(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := h.Close(context.Background()); err != nil {
				t.Error(err)
			}
		})
		e.hubs = append(e.hubs, h)
	}
	if o.verifier != nil {
		prev := svc.Authorize
		svc.Authorize = func(ctx context.Context, w fhir.Write, cur *fhir.Resource) error {
			if err := prev(ctx, w, cur); err != nil {
				return err
			}
			return e.hubs[0].RecordCreator(ctx, w, cur)
		}
	}
	for _, h := range e.hubs {
		select {
		case <-h.Ready():
		case <-time.After(10 * time.Second):
			t.Fatal("the hub did not start")
		}
	}
	return e
}

func (e *env) openBus() *natsbus.Bus {
	b := natsbus.New("")
	b.URL, b.Logger = e.nats.ClientURL(), testLogger
	if err := b.Open(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = b.Close(context.Background()) })
	return b
}

// do sends a request to the API with the env's token and decodes a JSON
// answer into out (when not nil); it returns the status.
func (e *env) do(method, path, body string, out any) int {
	e.t.Helper()
	return e.doAs(e.token, method, path, body, out)
}

func (e *env) doAs(token, method, path, body string, out any) int {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, e.base+path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
	}
	return resp.StatusCode
}

// put writes a resource with a given id (create or update), failing the
// test unless it succeeds.
func (e *env) put(token, typ, id, body string) {
	e.t.Helper()
	var oo map[string]any
	if st := e.doAs(token, "PUT", "/"+typ+"/"+id, body, &oo); st != 200 && st != 201 {
		e.t.Fatalf("PUT %s/%s: %d %v", typ, id, st, oo)
	}
}

func (e *env) del(token, typ, id string) {
	e.t.Helper()
	if st := e.doAs(token, "DELETE", "/"+typ+"/"+id, "", nil); st != 200 && st != 204 {
		e.t.Fatalf("DELETE %s/%s: %d", typ, id, st)
	}
}

// subscription is the JSON of a rest-hook Subscription.
func subscription(id, status, criteria, endpoint, payload string, extra ...string) string {
	ch := fmt.Sprintf(`"type":"rest-hook","endpoint":%q`, endpoint)
	if payload != "" {
		ch += fmt.Sprintf(`,"payload":%q`, payload)
	}
	for _, x := range extra {
		ch += "," + x
	}
	return fmt.Sprintf(`{"resourceType":"Subscription","id":%q,"status":%q,"reason":"test","criteria":%q,"channel":{%s}}`, id, status, criteria, ch)
}

// status reads a Subscription's status and error.
func (e *env) status(id string) (status, reason string) {
	e.t.Helper()
	var v struct{ Status, Error string }
	e.doAs(adminToken, "GET", "/Subscription/"+id, "", &v)
	return v.Status, v.Error
}

// waitStatus polls until the Subscription has status.
func (e *env) waitStatus(id, status string) string {
	e.t.Helper()
	var reason string
	waitFor(e.t, 10*time.Second, func() error {
		var got string
		got, reason = e.status(id)
		if got != status {
			return fmt.Errorf("Subscription/%s is %q (%s), want %q", id, got, reason, status)
		}
		return nil
	})
	return reason
}

func observation(id, patient, code string) string {
	return fmt.Sprintf(`{"resourceType":"Observation","id":%q,"status":"final","code":{"coding":[{"system":"http://loinc.org","code":%q}]},"subject":{"reference":"Patient/%s"}}`, id, code, patient)
}

// waitFor polls cond every 10 ms until it returns nil or the time is up.
func waitFor(t testing.TB, d time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", d, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// notification is one request a receiver got.
type notification struct {
	Method string
	Header http.Header
	Body   []byte
}

func (n notification) event() string { return n.Header.Get(HeaderEvent) }

// receiver is an httptest endpoint on 127.0.0.1 recording every request;
// answer decides each status (nil: 200), from the attempt number (1-based).
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	got    []notification // answered 2xx
	tries  int
	answer func(n int, r *http.Request) int
}

func newReceiver(t *testing.T, answer func(n int, r *http.Request) int) *receiver {
	rc := &receiver{answer: answer}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.tries++
		n, answer := rc.tries, rc.answer
		rc.mu.Unlock()
		code := 200
		if answer != nil {
			code = answer(n, r)
		}
		if code >= 200 && code < 300 {
			rc.mu.Lock()
			rc.got = append(rc.got, notification{Method: r.Method, Header: r.Header.Clone(), Body: body})
			rc.mu.Unlock()
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) setAnswer(f func(n int, r *http.Request) int) {
	rc.mu.Lock()
	rc.answer = f
	rc.mu.Unlock()
}

func (rc *receiver) notifications() []notification {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]notification(nil), rc.got...)
}

func (rc *receiver) attempts() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.tries
}

// waitCount polls until the receiver has n notifications.
func (rc *receiver) waitCount(t *testing.T, n int) []notification {
	t.Helper()
	var got []notification
	waitFor(t, 15*time.Second, func() error {
		if got = rc.notifications(); len(got) < n {
			var names []string
			for _, g := range got {
				names = append(names, resourceOf(g))
			}
			return fmt.Errorf("the receiver has %d notifications, want %d: %v", len(got), n, names)
		}
		return nil
	})
	return got
}

// resourceOf names what a notification with a payload is about.
func resourceOf(n notification) string {
	return n.Header.Get(HeaderOp) + " " + n.Header.Get(HeaderResource)
}

const adminToken = "admin"
