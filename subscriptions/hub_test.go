package subscriptions

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/fhirhub/fhirhub/subscriptions/natsbus"
	"github.com/nats-io/nats.go/jetstream"
)

// checkOrder fails unless the notifications' events strictly increase.
func checkOrder(t *testing.T, got []notification) {
	t.Helper()
	last := int64(0)
	for i, n := range got {
		ev, err := strconv.ParseInt(n.event(), 10, 64)
		if err != nil || ev <= last {
			t.Errorf("notification %d: event %q after %d: out of order or repeated", i, n.event(), last)
		}
		last = ev
	}
}

func TestRestHook(t *testing.T) {
	e := newEnv(t, envOptions{})
	full := newReceiver(t, nil)
	empty := newReceiver(t, nil)
	e.put("", "Patient", "p1", `{"resourceType":"Patient","id":"p1"}`)
	e.put("", "Patient", "p2", `{"resourceType":"Patient","id":"p2"}`)
	e.put("", "Subscription", "full", subscription("full", "requested", "Observation?subject=Patient/p1", full.URL+"/hook", "application/fhir+json",
		`"header":["Authorization: Bearer receiver-secret","X-Tenant: t1"]`))
	e.put("", "Subscription", "empty", subscription("empty", "requested", "Observation?code=http://loinc.org|1234-5", empty.URL, ""))
	e.waitStatus("full", StatusActive)
	e.waitStatus("empty", StatusActive)

	e.put("", "Observation", "o1", observation("o1", "p1", "1234-5")) // both
	e.put("", "Observation", "o2", observation("o2", "p2", "9999-9")) // neither
	e.put("", "Observation", "o1", observation("o1", "p1", "1111-1")) // full (update)
	e.put("", "Observation", "o2", observation("o2", "p2", "1234-5")) // empty
	e.del("", "Observation", "o1")                                    // full: the deleted version matched
	e.put("", "Observation", "o2", observation("o2", "p1", "9999-9")) // full: now p1's
	e.put("", "Observation", "o3", observation("o3", "p2", "0000-0")) // neither
	e.put("", "Observation", "o4", observation("o4", "p1", "1234-5")) // both: the last

	got := full.waitCount(t, 5)
	t.Run("Payload", func(t *testing.T) {
		want := []string{"create Observation/o1/_history/1", "update Observation/o1/_history/2", "delete Observation/o1/_history/3",
			"update Observation/o2/_history/3", "create Observation/o4/_history/1"}
		if len(got) != len(want) {
			t.Fatalf("got %d notifications, want %d", len(got), len(want))
		}
		for i, n := range got {
			if r := resourceOf(n); r != want[i] {
				t.Errorf("notification %d: %s, want %s", i, r, want[i])
			}
			if n.Method != "POST" || n.Header.Get("Authorization") != "Bearer receiver-secret" || n.Header.Get("X-Tenant") != "t1" ||
				n.Header.Get(HeaderSubscriptionRef) != "Subscription/full" {
				t.Errorf("notification %d: %s with headers %v", i, n.Method, n.Header)
			}
			if n.Header.Get(HeaderOp) == "delete" {
				if len(n.Body) != 0 {
					t.Errorf("notification %d: a deletion with body %s", i, n.Body)
				}
				continue
			}
			var v struct {
				ResourceType, ID string
				Meta             struct{ VersionID string }
			}
			if err := json.Unmarshal(n.Body, &v); err != nil || v.ResourceType != "Observation" || "update Observation/"+v.ID+"/_history/"+v.Meta.VersionID != strings.Replace(want[i], "create", "update", 1) {
				t.Errorf("notification %d: body %s, want %s", i, n.Body, want[i])
			}
			if ct := n.Header.Get("Content-Type"); ct != "application/fhir+json" {
				t.Errorf("notification %d: Content-Type %q", i, ct)
			}
		}
		checkOrder(t, got)
	})
	t.Run("EmptyPayload", func(t *testing.T) {
		got := empty.waitCount(t, 3)
		if len(got) != 3 {
			t.Fatalf("got %d notifications, want 3 (o1 created, o2 updated, o4 created)", len(got))
		}
		for i, n := range got {
			if len(n.Body) != 0 || n.Header.Get(HeaderResource) != "" || n.Header.Get("Content-Type") != "" {
				t.Errorf("notification %d: body %q, headers %v; want neither body nor resource", i, n.Body, n.Header)
			}
		}
		checkOrder(t, got)
	})
	t.Run("Off", func(t *testing.T) {
		e.put("", "Subscription", "empty", subscription("empty", "off", "Observation?code=http://loinc.org|1234-5", empty.URL, ""))
		waitFor(t, 10*time.Second, func() error {
			if s := e.hubs[0].reg.get("empty"); s != nil {
				return fmt.Errorf("still registered")
			}
			return nil
		})
		e.put("", "Observation", "o5", observation("o5", "p1", "1234-5"))
		full.waitCount(t, 6) // the same change reached the other subscription
		if n := len(empty.notifications()); n != 3 {
			t.Errorf("an off subscription got %d notifications, want 3", n)
		}
	})
	t.Run("Deleted", func(t *testing.T) {
		e.del("", "Subscription", "full")
		waitFor(t, 10*time.Second, func() error {
			if s := e.hubs[0].reg.get("full"); s != nil {
				return fmt.Errorf("still registered")
			}
			return nil
		})
		e.put("", "Observation", "o6", observation("o6", "p1", "1234-5"))
		e.put("", "Subscription", "probe", subscription("probe", "requested", "Observation?subject=Patient/p1", empty.URL, ""))
		e.waitStatus("probe", StatusActive)
		e.put("", "Observation", "o7", observation("o7", "p1", "1234-5"))
		empty.waitCount(t, 4) // the probe's notification of o7: o6 has been matched
		if n := len(full.notifications()); n != 6 {
			t.Errorf("a deleted subscription got %d notifications, want 6", n)
		}
	})
}

// A receiver that fails 3 times, then recovers, gets every event once, in
// order.
func TestRetryThenRecover(t *testing.T) {
	e := newEnv(t, envOptions{})
	rc := newReceiver(t, func(n int, _ *http.Request) int {
		if n <= 3 {
			return 503
		}
		return 200
	})
	e.put("", "Subscription", "s", subscription("s", "requested", "Observation?subject=Patient/p1", rc.URL, "application/fhir+json"))
	e.waitStatus("s", StatusActive)
	for i := range 10 {
		e.put("", "Observation", fmt.Sprintf("o%d", i), observation(fmt.Sprintf("o%d", i), "p1", "x"))
	}
	got := rc.waitCount(t, 10)
	if len(got) != 10 {
		t.Fatalf("got %d notifications, want 10", len(got))
	}
	checkOrder(t, got)
	for i, n := range got {
		if want := fmt.Sprintf("create Observation/o%d/_history/1", i); resourceOf(n) != want {
			t.Errorf("notification %d: %s, want %s", i, resourceOf(n), want)
		}
	}
	if a := rc.attempts(); a != 13 {
		t.Errorf("%d attempts, want 13 (3 failures, 10 deliveries)", a)
	}
	if st, _ := e.status("s"); st != StatusActive {
		t.Errorf("status %s, want active", st)
	}
	// Delivered jobs are purged from FHIR_NOTIFY (limits retention).
	waitFor(t, 10*time.Second, func() error {
		info, err := e.hubs[0].notify.Info(t.Context(), jetstream.WithSubjectFilter(NotifySubject("s")))
		if err != nil {
			return err
		}
		if n := info.State.Msgs; n != 0 {
			return fmt.Errorf("%d delivered jobs still in %s", n, NotifyStream)
		}
		return nil
	})
}

// A receiver that always fails puts the subscription in error; set active
// again, it gets everything from the first undelivered event, including
// what changed meanwhile.
func TestErrorThenResume(t *testing.T) {
	e := newEnv(t, envOptions{retry: Retry{Initial: time.Millisecond, Max: 5 * time.Millisecond, MaxAttempts: 4}})
	rc := newReceiver(t, func(int, *http.Request) int { return 503 })
	body := subscription("s", "requested", "Observation?subject=Patient/p1", rc.URL, "application/fhir+json")
	e.put("", "Subscription", "s", body)
	e.waitStatus("s", StatusActive)
	e.put("", "Observation", "o0", observation("o0", "p1", "x"))
	e.put("", "Observation", "o1", observation("o1", "p1", "x"))
	reason := e.waitStatus("s", StatusError)
	if want := "endpoint answered 503 4 times"; reason != want {
		t.Errorf("error %q, want %q", reason, want)
	}
	if a := rc.attempts(); a != 4 {
		t.Errorf("%d attempts, want 4", a)
	}
	e.put("", "Observation", "o2", observation("o2", "p1", "x")) // while in error: queued
	e.put("", "Observation", "o3", observation("o3", "p2", "x")) // not a match
	// The queue holds o0, o1 and o2 before the subscription is resumed.
	waitFor(t, 10*time.Second, func() error {
		if m := e.hubs[0].Stats().Matched; m < 3 {
			return fmt.Errorf("%d matched", m)
		}
		return nil
	})
	rc.setAnswer(nil)
	e.put("", "Subscription", "s", strings.Replace(body, `"requested"`, `"active"`, 1))
	got := rc.waitCount(t, 3)
	e.put("", "Observation", "o4", observation("o4", "p1", "x"))
	got = rc.waitCount(t, 4)
	var names []string
	for _, n := range got {
		names = append(names, resourceOf(n))
	}
	want := "create Observation/o0/_history/1,create Observation/o1/_history/1,create Observation/o2/_history/1,create Observation/o4/_history/1"
	if strings.Join(names, ",") != want {
		t.Errorf("got %v, want %s", names, want)
	}
	checkOrder(t, got)
}

// A slow receiver holds up its own subscription only.
func TestSlowReceiverBlocksOnlyItself(t *testing.T) {
	e := newEnv(t, envOptions{})
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	slow := newReceiver(t, func(int, *http.Request) int { <-release; return 200 })
	fast := newReceiver(t, nil)
	e.put("", "Subscription", "slow", subscription("slow", "requested", "Observation?subject=Patient/p1", slow.URL, ""))
	e.put("", "Subscription", "fast", subscription("fast", "requested", "Observation?subject=Patient/p1", fast.URL, ""))
	e.waitStatus("slow", StatusActive)
	e.waitStatus("fast", StatusActive)
	for i := range 5 {
		e.put("", "Observation", fmt.Sprintf("o%d", i), observation(fmt.Sprintf("o%d", i), "p1", "x"))
	}
	fast.waitCount(t, 5)
	if n := len(slow.notifications()); n != 0 {
		t.Errorf("the slow receiver finished %d, want 0 before release", n)
	}
	once.Do(func() { close(release) })
	got := slow.waitCount(t, 5)
	checkOrder(t, got)
}

func TestSignature(t *testing.T) {
	e := newEnv(t, envOptions{})
	secret := "a-shared-secret-of-32-characters"
	var mu sync.Mutex
	var bad []string
	rc := newReceiver(t, func(_ int, r *http.Request) int { return 200 })
	e.put("", "Subscription", "s", subscription("s", "requested", "Observation?subject=Patient/p1", rc.URL, "application/fhir+json",
		fmt.Sprintf(`"extension":[{"url":%q,"valueString":%q}]`, SecretExtension, secret)))
	e.waitStatus("s", StatusActive)
	e.put("", "Observation", "o1", observation("o1", "p1", "x"))
	e.del("", "Observation", "o1") // no body: the timestamp and '.' only
	got := rc.waitCount(t, 2)
	for i, n := range got {
		ts := n.Header.Get(HeaderTimestamp)
		sec, err := strconv.ParseInt(ts, 10, 64)
		if err != nil || time.Since(time.Unix(sec, 0)) > time.Minute {
			t.Errorf("notification %d: timestamp %q", i, ts)
		}
		// What a receiver does: recompute the MAC over the exact bytes.
		want := Sign([]byte(secret), ts, n.Body)
		if sig := n.Header.Get(HeaderSignature); !hmac.Equal([]byte(sig), []byte(want)) {
			mu.Lock()
			bad = append(bad, fmt.Sprintf("notification %d: signature %q, want %q", i, sig, want))
			mu.Unlock()
		}
		if Sign([]byte("another-secret-of-enough-length"), ts, n.Body) == n.Header.Get(HeaderSignature) {
			t.Errorf("notification %d: another secret gives the same signature", i)
		}
	}
	for _, b := range bad {
		t.Error(b)
	}
	t.Run("Golden", func(t *testing.T) {
		// HMAC-SHA256 keyed "key" over "1700000000.{}", computed with Python's hmac.
		if got, want := Sign([]byte("key"), "1700000000", []byte("{}")), "sha256=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"; got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	})
}

func TestInvalidSubscriptions(t *testing.T) {
	e := newEnv(t, envOptions{})
	rc := newReceiver(t, nil)
	for _, tc := range []struct {
		name, criteria, endpoint, payload, extra, want string
	}{
		{"UnknownParameter", "Observation?flavour=sweet", rc.URL, "", "", "flavour"},
		{"UnknownType", "Pokemon?name=x", rc.URL, "", "", "not a resource type"},
		{"MalformedValue", "Observation?date=yesterday", rc.URL, "", "", "date"},
		{"DisallowedEndpoint", "Observation?subject=Patient/p1", "http://10.1.2.3/hook", "", "", "allow-list"},
		{"HTTPS", "Observation?subject=Patient/p1", "https://receiver.example/hook", "", "", "allow-list"},
		{"Relative", "Observation?subject=Patient/p1", "/hook", "", "", "absolute"},
		{"Credentials", "Observation?subject=Patient/p1", "http://u:p@127.0.0.1/hook", "", "", "credentials"},
		{"Payload", "Observation?subject=Patient/p1", rc.URL, "application/fhir+xml", "", "payload"},
		{"ReservedHeader", "Observation?subject=Patient/p1", rc.URL, "", `"header":["Content-Type: text/plain"]`, "hub sets"},
		{"ShortSecret", "Observation?subject=Patient/p1", rc.URL, "", fmt.Sprintf(`"extension":[{"url":%q,"valueString":"short"}]`, SecretExtension), "shorter"},
		{"NATSOutsideOut", "Observation?subject=Patient/p1", "nats:fhir.changes.Patient", "", natsChannel, "nats:fhir.out."},
		{"NATSWildcard", "Observation?subject=Patient/p1", "nats:fhir.out.*", "", natsChannel, "wildcards"},
		{"NATSNoScheme", "Observation?subject=Patient/p1", "fhir.out.a", "", natsChannel, "nats:fhir.out."},
		{"UnknownChannel", "Observation?subject=Patient/p1", rc.URL, "", `"_type":{"extension":[{"url":"` + ChannelTypeExtension + `","valueCoding":{"system":"http://example.org","code":"pigeon"}}]}`, "not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := strings.ToLower(tc.name)
			var extra []string
			if tc.extra != "" {
				extra = append(extra, tc.extra)
			}
			e.put("", "Subscription", id, subscription(id, "requested", tc.criteria, tc.endpoint, tc.payload, extra...))
			if reason := e.waitStatus(id, StatusError); !strings.Contains(reason, tc.want) {
				t.Errorf("error %q, want it to mention %q", reason, tc.want)
			}
		})
	}
	t.Run("ActiveIsValidatedToo", func(t *testing.T) {
		// A client cannot skip validation by writing active itself.
		e.put("", "Subscription", "direct", subscription("direct", "active", "Observation?subject=Patient/p1", "http://10.1.2.3/hook", ""))
		e.waitStatus("direct", StatusError)
	})
}

// A creator with patient/ scopes gets only its patient's resources.
func TestCreatorScopes(t *testing.T) {
	v := testVerifier{
		adminToken: access("system/*.cruds", ""),
		"pa":       access("user/Subscription.cruds patient/Observation.rs", "p1"),
		"pa-lab":   access("user/Subscription.cruds patient/Observation.rs?category=laboratory", "p1"),
	}
	e := newEnv(t, envOptions{verifier: v})
	rc := newReceiver(t, nil)
	lab := newReceiver(t, nil)
	e.put(adminToken, "Patient", "p1", `{"resourceType":"Patient","id":"p1"}`)
	e.put(adminToken, "Patient", "p2", `{"resourceType":"Patient","id":"p2"}`)
	e.put("pa", "Subscription", "mine", subscription("mine", "requested", "Observation?status=final", rc.URL, "application/fhir+json"))
	e.put("pa-lab", "Subscription", "lab", subscription("lab", "requested", "Observation", lab.URL, "application/fhir+json"))
	e.waitStatus("mine", StatusActive)
	e.waitStatus("lab", StatusActive)
	e.put(adminToken, "Observation", "o1", observation("o1", "p2", "x")) // another patient's
	e.put(adminToken, "Observation", "o2", observation("o2", "p1", "x"))
	e.put(adminToken, "Observation", "o3", strings.Replace(observation("o3", "p1", "x"), `"status"`,
		`"category":[{"coding":[{"code":"laboratory"}]}],"status"`, 1))
	e.del(adminToken, "Observation", "o1") // judged by the version deleted: p2's
	e.put(adminToken, "Observation", "o4", observation("o4", "p1", "x"))
	got := rc.waitCount(t, 3)
	var names []string
	for _, n := range got {
		names = append(names, resourceOf(n))
	}
	if want := "create Observation/o2/_history/1,create Observation/o3/_history/1,create Observation/o4/_history/1"; strings.Join(names, ",") != want {
		t.Errorf("got %v, want %s", names, want)
	}
	if got := lab.waitCount(t, 1); len(got) != 1 || resourceOf(got[0]) != "create Observation/o3/_history/1" {
		t.Errorf("the lab-only creator got %d notifications (%v), want o3 only", len(got), got)
	}
	t.Run("NoRecord", func(t *testing.T) {
		// Written without a token (the server's own write path): no scopes
		// on record, so nothing may be delivered.
		if _, err := e.svc.Update(t.Context(), "Subscription", "orphan", []byte(subscription("orphan", "requested", "Observation", rc.URL, "")), nil); err != nil {
			t.Fatal(err)
		}
		if reason := e.waitStatus("orphan", StatusError); !strings.Contains(reason, "not on record") {
			t.Errorf("error %q", reason)
		}
	})
}

// Two hubs (two replicas sharing the store and NATS) deliver each event
// once per subscription, in order.
func TestTwoHubsDeliverOnce(t *testing.T) {
	e := newEnv(t, envOptions{hubs: 2})
	a, b := newReceiver(t, nil), newReceiver(t, func(n int, _ *http.Request) int {
		if n%4 == 0 {
			return 500 // some retries, so either replica may hold a job
		}
		return 200
	})
	e.put("", "Subscription", "a", subscription("a", "requested", "Observation?subject=Patient/p1", a.URL, ""))
	e.put("", "Subscription", "b", subscription("b", "requested", "Observation?code=http://loinc.org|1234-5", b.URL, ""))
	e.waitStatus("a", StatusActive)
	e.waitStatus("b", StatusActive)
	waitFor(t, 10*time.Second, func() error {
		for i, h := range e.hubs {
			if n := h.Stats().Subscriptions; n != 2 {
				return fmt.Errorf("hub %d knows %d subscriptions", i, n)
			}
		}
		return nil
	})
	const n = 40
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n / 4 {
				id := fmt.Sprintf("g%d-%d", g, i)
				e.put("", "Observation", id, observation(id, "p1", "1234-5"))
			}
		}()
	}
	wg.Wait()
	for _, rc := range []*receiver{a, b} {
		got := rc.waitCount(t, n)
		if len(got) != n {
			t.Errorf("got %d notifications, want %d", len(got), n)
		}
		checkOrder(t, got)
	}
	// A receiver records a notification before it answers; the hub counts
	// it after the acknowledgement.
	var s0, s1 Stats
	waitFor(t, 10*time.Second, func() error {
		if s0, s1 = e.hubs[0].Stats(), e.hubs[1].Stats(); s0.Delivered+s1.Delivered != 2*n {
			return fmt.Errorf("hubs delivered %d + %d, want %d in all", s0.Delivered, s1.Delivered, 2*n)
		}
		return nil
	})
	t.Logf("hub 0: %+v; hub 1: %+v", s0, s1)
}

// A hub that restarts loads its subscriptions from the store and goes on:
// what changed while it was down is delivered, nothing before twice.
func TestHubRestart(t *testing.T) {
	e := newEnv(t, envOptions{})
	rc := newReceiver(t, nil)
	e.put("", "Subscription", "s", subscription("s", "requested", "Observation?subject=Patient/p1", rc.URL, "application/fhir+json"))
	e.waitStatus("s", StatusActive)
	e.put("", "Observation", "o1", observation("o1", "p1", "x"))
	rc.waitCount(t, 1)
	// The receiver records a notification before it answers: close the hub
	// once it has the acknowledgement, or o1 is rightly delivered again.
	waitFor(t, 10*time.Second, func() error {
		if d := e.hubs[0].Stats().Delivered; d != 1 {
			return fmt.Errorf("delivered %d", d)
		}
		return nil
	})
	if err := e.hubs[0].Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	e.put("", "Observation", "o2", observation("o2", "p1", "x")) // while no hub runs
	h := New(e.svc, e.engine, e.bus)
	h.Logger, h.Endpoints, h.Retry = testLogger, []string{"http://127.0.0.1"}, e.hubs[0].Retry
	if err := h.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close(context.Background()) })
	<-h.Ready()
	if s := h.reg.get("s"); s == nil || s.since == 0 {
		t.Fatalf("after the restart the registry holds %+v, want s deliverable since its activation", s)
	}
	e.put("", "Observation", "o3", observation("o3", "p1", "x"))
	got := rc.waitCount(t, 3)
	var names []string
	for _, n := range got {
		names = append(names, resourceOf(n))
	}
	if want := "create Observation/o1/_history/1,create Observation/o2/_history/1,create Observation/o3/_history/1"; strings.Join(names, ",") != want {
		t.Errorf("got %v, want %s", names, want)
	}
	checkOrder(t, got)
}

// NATS goes away while writes continue: what changed during the outage is
// delivered once it is back, nothing lost, nothing twice, in order.
func TestNATSRestart(t *testing.T) {
	e := newEnv(t, envOptions{})
	rc := newReceiver(t, nil)
	e.put("", "Subscription", "s", subscription("s", "requested", "Observation?subject=Patient/p1", rc.URL, "application/fhir+json"))
	e.waitStatus("s", StatusActive)
	write := func(from, to int) {
		for i := from; i < to; i++ {
			e.put("", "Observation", fmt.Sprintf("o%d", i), observation(fmt.Sprintf("o%d", i), "p1", "x"))
		}
	}
	write(0, 10)
	rc.waitCount(t, 10)

	addr, dir := e.nats.Addr(), e.nats.Dir
	if err := e.nats.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	write(10, 30) // the store takes writes while NATS is away
	srv := natsbus.NewServer(dir)
	srv.Listen = addr
	if err := srv.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close(context.Background()) })
	write(30, 40)
	got := rc.waitCount(t, 40)
	time.Sleep(500 * time.Millisecond) // a duplicate would come now
	got = rc.notifications()
	seen := map[string]int{}
	for _, n := range got {
		seen[resourceOf(n)]++
	}
	for i := range 40 {
		if k := fmt.Sprintf("create Observation/o%d/_history/1", i); seen[k] != 1 {
			t.Errorf("%s delivered %d times, want once", k, seen[k])
		}
	}
	if len(got) != 40 {
		t.Errorf("%d notifications, want 40", len(got))
	}
	checkOrder(t, got)
}

// natsChannel is the channel._type extension of the nats channel.
var natsChannel = `"_type":{"extension":[{"url":"` + ChannelTypeExtension + `","valueCoding":{"system":"` + ChannelTypeSystem + `","code":"nats"}}]}`

// The nats channel: notifications are stored in FHIR_OUT on the endpoint's
// subject, in order, with the rest-hook headers and body, signed.
func TestNATSChannel(t *testing.T) {
	e := newEnv(t, envOptions{})
	secret := "a-shared-secret-of-32-characters"
	e.put("", "Subscription", "n", subscription("n", "requested", "Observation?subject=Patient/p1", "nats:fhir.out.hospital-a", "application/fhir+json",
		natsChannel, fmt.Sprintf(`"extension":[{"url":%q,"valueString":%q}]`, SecretExtension, secret)))
	e.waitStatus("n", StatusActive)
	for i := range 5 {
		e.put("", "Observation", fmt.Sprintf("o%d", i), observation(fmt.Sprintf("o%d", i), "p1", "x"))
	}
	e.put("", "Observation", "other", observation("other", "p2", "x"))
	e.del("", "Observation", "o0")
	// What a receiver does: a consumer of its own on its subject.
	oc, err := e.bus.JetStream().OrderedConsumer(t.Context(), OutStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"fhir.out.hospital-a"}})
	if err != nil {
		t.Fatal(err)
	}
	var got []jetstream.Msg
	for len(got) < 6 {
		m, err := oc.Next(jetstream.FetchMaxWait(15 * time.Second))
		if err != nil {
			t.Fatalf("after %d notifications: %v", len(got), err)
		}
		got = append(got, m)
	}
	if m, err := oc.Next(jetstream.FetchMaxWait(500 * time.Millisecond)); err == nil {
		t.Errorf("a 7th notification: %v", m.Headers())
	}
	last := int64(0)
	for i, m := range got {
		hd := http.Header(m.Headers())
		want := fmt.Sprintf("create Observation/o%d/_history/1", i)
		if i == 5 {
			want = "delete Observation/o0/_history/2"
		}
		if g := hd.Get(HeaderOp) + " " + hd.Get(HeaderResource); g != want {
			t.Errorf("notification %d: %s, want %s", i, g, want)
		}
		if hd.Get(HeaderSubscriptionRef) != "Subscription/n" {
			t.Errorf("notification %d: subscription %q", i, hd.Get(HeaderSubscriptionRef))
		}
		ev, _ := strconv.ParseInt(hd.Get(HeaderEvent), 10, 64)
		if ev <= last {
			t.Errorf("notification %d: event %d after %d", i, ev, last)
		}
		last = ev
		if sig := hd.Get(HeaderSignature); sig != Sign([]byte(secret), hd.Get(HeaderTimestamp), m.Data()) {
			t.Errorf("notification %d: signature %q does not verify", i, sig)
		}
		if i < 5 {
			var o struct{ ID string }
			if err := json.Unmarshal(m.Data(), &o); err != nil || o.ID != fmt.Sprintf("o%d", i) {
				t.Errorf("notification %d: body %s", i, m.Data())
			}
		} else if len(m.Data()) != 0 {
			t.Errorf("the deletion's notification has a body: %s", m.Data())
		}
	}
}

// The R4 websocket channel: bind, bound, one ping per notification, across
// replicas (the client is on the second hub).
func TestWebSocket(t *testing.T) {
	e := newEnv(t, envOptions{hubs: 2})
	e.put("", "Subscription", "ws", `{"resourceType":"Subscription","id":"ws","status":"requested","reason":"test","criteria":"Observation?subject=Patient/p1","channel":{"type":"websocket"}}`)
	e.waitStatus("ws", StatusActive)
	rc := newReceiver(t, nil)
	e.put("", "Subscription", "hook", subscription("hook", "requested", "Observation?subject=Patient/p1", rc.URL, ""))
	e.waitStatus("hook", StatusActive)

	var caps struct {
		Rest []struct {
			Extension []struct{ URL, ValueURI string }
		}
	}
	e.do("GET", "/metadata", "", &caps)
	wsURL := ""
	for _, x := range caps.Rest[0].Extension {
		if x.URL == "http://hl7.org/fhir/StructureDefinition/capabilitystatement-websocket" {
			wsURL = x.ValueURI
		}
	}
	if want := "ws" + strings.TrimPrefix(e.base, "http") + "/websocket"; wsURL != want {
		t.Fatalf("CapabilityStatement websocket %q, want %q", wsURL, want)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, wsURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	say := func(msg string) {
		t.Helper()
		if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	hear := func() string {
		t.Helper()
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	say("bind nope")
	if got := hear(); got != "error nope no such Subscription" {
		t.Errorf("bind nope: %q", got)
	}
	say("bind hook")
	if got := hear(); got != "error hook not a websocket Subscription" {
		t.Errorf("bind hook: %q", got)
	}
	say("bind ws")
	if got := hear(); got != "bound ws" {
		t.Fatalf("bind ws: %q", got)
	}
	for i := range 3 {
		e.put("", "Observation", fmt.Sprintf("o%d", i), observation(fmt.Sprintf("o%d", i), "p1", "x"))
	}
	e.put("", "Observation", "other", observation("other", "p2", "x"))
	for i := range 3 {
		if got := hear(); got != "ping ws" {
			t.Errorf("message %d: %q, want ping ws", i, got)
		}
	}
	// The rest-hook subscription saw the same three: nothing more is due.
	rc.waitCount(t, 3)
	qctx, qcancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer qcancel()
	if _, b, err := c.Read(qctx); err == nil {
		t.Errorf("a fourth message: %q", b)
	}
}
