package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fhirhub/fhirhub/fhir/mongostore/mongotest"
)

// TestSubscriptionEndToEnd: the served API with its hub (--auth off, so
// loopback endpoints are allowed): a rest-hook Subscription becomes active
// and its receiver gets the matching Observation.
func TestSubscriptionEndToEnd(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
	}))
	defer rc.Close()
	m := NewMain(testConfig(t.TempDir()), io.Discard)
	if err := m.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer m.Close(t.Context())
	select {
	case <-m.Hub().Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("the hub did not start")
	}
	put := func(path, body string) {
		t.Helper()
		req, _ := http.NewRequest("PUT", m.URL()+"/fhir/"+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/fhir+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 && resp.StatusCode != 201 {
			t.Fatalf("PUT %s: %d", path, resp.StatusCode)
		}
	}
	put("Subscription/s1", fmt.Sprintf(`{"resourceType":"Subscription","id":"s1","status":"requested","reason":"test","criteria":"Observation?subject=Patient/p1",
		"channel":{"type":"rest-hook","endpoint":%q,"payload":"application/fhir+json"}}`, rc.URL+"/hook"))
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(m.URL() + "/fhir/Subscription/s1")
		if err != nil {
			t.Fatal(err)
		}
		var v struct{ Status, Error string }
		_ = json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		if v.Status == "active" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %q (%s), want active", v.Status, v.Error)
		}
		time.Sleep(10 * time.Millisecond)
	}
	put("Observation/o2", `{"resourceType":"Observation","id":"o2","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p2"}}`)
	put("Observation/o1", `{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p1"}}`)
	for {
		mu.Lock()
		n := len(bodies)
		got := strings.Join(bodies, "\n")
		mu.Unlock()
		if n >= 1 {
			if n != 1 || !strings.Contains(got, `"id":"o1"`) {
				t.Errorf("the receiver got %d notifications: %s; want o1 only", n, got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no notification")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSubscriptionTwoReplicasMongoDB: two servers share one MongoDB store
// (FerretDB) and one NATS; writes go to both; each notification reaches the
// receiver once, in order.
func TestSubscriptionTwoReplicasMongoDB(t *testing.T) {
	if testing.Short() {
		t.Skip("MongoDB (FerretDB) is slow; skipped under -short")
	}
	uri, stop, err := mongotest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	var mu sync.Mutex
	var events []string
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		events = append(events, r.Header.Get("X-Fhirhub-Event")+" "+r.Header.Get("X-Fhirhub-Resource"))
		mu.Unlock()
	}))
	defer rc.Close()
	var mains []*Main
	for i := range 2 {
		cfg := testConfig(t.TempDir())
		cfg.MongoURI, cfg.MongoDatabase = uri, "subscriptions"
		if i > 0 {
			cfg.NATSURL = mains[0].NATSURL()
		}
		m := NewMain(cfg, io.Discard)
		if err := m.Open(t.Context()); err != nil {
			t.Fatal(err)
		}
		defer m.Close(context.Background())
		select {
		case <-m.Hub().Ready():
		case <-time.After(30 * time.Second):
			t.Fatalf("hub %d did not start", i)
		}
		mains = append(mains, m)
	}
	put := func(m *Main, path, body string) {
		t.Helper()
		req, _ := http.NewRequest("PUT", m.URL()+"/fhir/"+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/fhir+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 && resp.StatusCode != 201 {
			t.Fatalf("PUT %s: %d", path, resp.StatusCode)
		}
	}
	put(mains[0], "Subscription/s1", fmt.Sprintf(`{"resourceType":"Subscription","id":"s1","status":"requested","reason":"test","criteria":"Observation?subject=Patient/p1",
		"channel":{"type":"rest-hook","endpoint":%q,"payload":"application/fhir+json"}}`, rc.URL))
	poll := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	poll("both hubs to know the active subscription", func() bool {
		return mains[0].Hub().Stats().Subscriptions == 1 && mains[1].Hub().Stats().Subscriptions == 1
	})
	const n = 10
	for i := range n {
		put(mains[i%2], fmt.Sprintf("Observation/o%d", i), fmt.Sprintf(`{"resourceType":"Observation","id":"o%d","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p1"}}`, i))
	}
	poll("the notifications", func() bool { mu.Lock(); defer mu.Unlock(); return len(events) >= n })
	mu.Lock()
	defer mu.Unlock()
	if len(events) != n {
		t.Fatalf("got %d notifications, want %d: %v", len(events), n, events)
	}
	for i, ev := range events {
		if want := fmt.Sprintf("Observation/o%d/_history/1", i); !strings.HasSuffix(ev, " "+want) {
			t.Errorf("notification %d: %s, want %s", i, ev, want)
		}
	}
	t.Logf("hub A %+v, hub B %+v", mains[0].Hub().Stats(), mains[1].Hub().Stats())
}

func TestParseSubscriptionFlags(t *testing.T) {
	env := func(string) string { return "" }
	cfg, err := parseServeFlags([]string{"--subscription-endpoints", "https://*.example.org, http://127.0.0.1:9000", "--subscription-max-attempts", "3",
		"--subscription-retry-initial", "10ms", "--subscription-retry-max", "1s"}, env, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.SubscriptionEndpoints, " ") != "https://*.example.org http://127.0.0.1:9000" || cfg.SubscriptionMaxAttempts != 3 ||
		cfg.SubscriptionRetryFirst != 10*time.Millisecond || cfg.SubscriptionRetryMax != time.Second || cfg.SubscriptionTimeout != 10*time.Second {
		t.Errorf("got %+v", cfg)
	}
	for _, bad := range [][]string{{"--subscription-max-attempts", "0"}, {"--subscription-retry-initial", "2m", "--subscription-retry-max", "1m"}, {"--subscription-timeout", "0s"}} {
		if _, err := parseServeFlags(bad, env, io.Discard); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
