package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fhirhub/fhirhub/fhir/mongostore/mongotest"
	"github.com/fhirhub/fhirhub/subscriptions/natsbus"
)

// TestSubscriptionReplicasKill: three fhirserver processes share one MongoDB
// store (FerretDB) and one NATS server (in the test process, so that it
// survives the kill). Three rest-hook Subscriptions are created; a burst of
// Observations is written round-robin over the replicas, and replica 0 (the
// first started, most likely the pinned matcher) is killed with SIGKILL a
// third of the way through, while deliveries are in flight. Writes cut by
// the kill are retried on a live replica.
//
// Every Observation version the store holds afterwards (acknowledged or cut
// by the kill) must reach every subscription it matches, with
// X-Fhirhub-Event equal to its Fhir-Seq in FHIR_CHANGES, in feed order per
// subscription, with at most one repeat per subscription (the notification
// in flight at the kill: at-least-once), and nothing else.
//
// On failure it logs what each subscription received (arrival number,
// event, resource, time since the kill), the durable NATS consumers before
// the kill and whenever one changed after it, and the replicas' logs.
func TestSubscriptionReplicasKill(t *testing.T) {
	if testing.Short() {
		t.Skip("MongoDB (FerretDB) is slow, and the failover takes up to a minute; skipped under -short")
	}
	const (
		replicas = 3
		total    = 90 // Observations written
		writers  = 4
	)
	started := time.Now()
	bin := buildServer(t)

	uri, stopMongo, err := mongotest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stopMongo)
	ns := natsbus.NewServer(t.TempDir())
	if err := ns.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = ns.Close(ctx)
	})
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}

	hooks := &hookRecorder{delay: 50 * time.Millisecond}
	rc := httptest.NewServer(hooks)
	t.Cleanup(rc.Close) // after the replicas are stopped (cleanups run last first)

	db := fmt.Sprintf("replicaskill%d", time.Now().UnixNano())
	reps := make([]*replicaProc, replicas)
	for i := range reps {
		reps[i] = startReplica(t, bin, i, "--data-dir", t.TempDir(), "--log-level", "debug",
			"--mongodb-uri", uri, "--mongodb-database", db, "--nats-url", ns.ClientURL())
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, r := range reps {
				r.dumpLog(t)
			}
		}
	})
	t.Logf("%d replicas running after %s", replicas, time.Since(started).Round(time.Millisecond))

	client := &http.Client{Timeout: 90 * time.Second}

	// The subscriptions, created through replica 0.
	subs := []struct{ id, criteria string }{
		{"rk-p1", "Observation?subject=Patient/p1"},
		{"rk-p2", "Observation?subject=Patient/p2"},
		{"rk-code", "Observation?code=http://loinc.org|1234-5"},
	}
	for _, s := range subs {
		body := fmt.Sprintf(`{"resourceType":"Subscription","id":%q,"status":"requested","reason":"replicas kill test","criteria":%q,
			"channel":{"type":"rest-hook","endpoint":%q,"payload":"application/fhir+json"}}`, s.id, s.criteria, rc.URL+"/hook/"+s.id)
		if status, _, err := putResource(client, reps[0].base, "Subscription/"+s.id, body); err != nil || (status != 200 && status != 201) {
			t.Fatalf("PUT Subscription/%s: status %d, %v", s.id, status, err)
		}
	}
	for _, s := range subs {
		for _, r := range reps {
			waitFor(t, 90*time.Second, fmt.Sprintf("Subscription/%s to be active (read through replica %d)", s.id, r.idx), func() (bool, string) {
				st, msg := subscriptionStatus(client, r.base, s.id)
				if st == "error" {
					t.Fatalf("Subscription/%s went to error: %s", s.id, msg)
				}
				return st == "active", "status " + st + " " + msg
			})
		}
	}
	t.Logf("subscriptions active after %s", time.Since(started).Round(time.Millisecond))

	// The burst. Observation o<i> has a fixed content (so a retried write
	// matches as the first one would); matches(i) is what it should reach.
	type obsSpec struct{ subject, code string }
	spec := func(i int) obsSpec {
		switch i % 5 {
		case 0:
			return obsSpec{"p1", "1234-5"} // rk-p1, rk-code
		case 1:
			return obsSpec{"p2", "9999-9"} // rk-p2
		case 2:
			return obsSpec{"p3", "1234-5"} // rk-code
		case 3:
			return obsSpec{"p1", "9999-9"} // rk-p1
		default:
			return obsSpec{"p2", "1234-5"} // rk-p2, rk-code
		}
	}
	matches := func(i int) []string {
		sp := spec(i)
		var out []string
		switch sp.subject {
		case "p1":
			out = append(out, "rk-p1")
		case "p2":
			out = append(out, "rk-p2")
		}
		if sp.code == "1234-5" {
			out = append(out, "rk-code")
		}
		return out
	}
	obsBody := func(i int) string {
		sp := spec(i)
		return fmt.Sprintf(`{"resourceType":"Observation","id":"o%d","status":"final","code":{"coding":[{"system":"http://loinc.org","code":%q}]},"subject":{"reference":"Patient/%s"},"valueQuantity":{"value":%d}}`,
			i, sp.code, sp.subject, i)
	}

	var (
		wmu       sync.Mutex
		acked     = map[int]int{}      // Observation index -> acknowledged version
		uncertain = map[int][]string{} // index -> failed attempts (the write may or may not have committed)
		nAcked    atomic.Int32
	)
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				path := fmt.Sprintf("Observation/o%d", i)
				done := false
				for attempt := 0; attempt < 4*replicas && !done; attempt++ {
					r := reps[(i+attempt)%replicas]
					if r.dead.Load() {
						continue
					}
					status, version, err := putResource(client, r.base, path, obsBody(i))
					switch {
					case err != nil:
						wmu.Lock()
						uncertain[i] = append(uncertain[i], fmt.Sprintf("replica %d: %v", r.idx, err))
						wmu.Unlock()
						time.Sleep(100 * time.Millisecond)
					case status == 200 || status == 201:
						wmu.Lock()
						acked[i] = version
						wmu.Unlock()
						nAcked.Add(1)
						done = true
					default:
						t.Errorf("PUT %s through replica %d: status %d", path, r.idx, status)
						done = true
					}
				}
				if !done {
					t.Errorf("PUT %s: no replica acknowledged it", path)
				}
			}
		}()
	}
	burstStart := time.Now()
	var killedAt time.Time
	var killInfo string
	var ackedAtKill int32
	var timeline *consumerTimeline
	killDone, writesDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(killDone)
		for nAcked.Load() < total/3 {
			select {
			case <-writesDone:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
		// Kill while every subscription has a delivery in flight, so that
		// the killed replica most likely holds one.
		for t0 := time.Now(); hooks.inFlight.Load() < int32(len(subs)) && time.Since(t0) < time.Second; {
			time.Sleep(time.Millisecond)
		}
		consumers, _ := consumerStates(js)
		reps[0].dead.Store(true) // new writes go elsewhere
		inFlight := hooks.inFlight.Load()
		hooks.mu.Lock()
		received := len(hooks.notes)
		hooks.mu.Unlock()
		ackedAtKill = nAcked.Load()
		reps[0].kill()
		killedAt = time.Now()
		timeline = watchConsumers(js, killedAt)
		killInfo = fmt.Sprintf("replica 0 killed %s into the burst, after %d acknowledged writes; %d notifications received, %d deliveries in flight; consumers just before the kill:%s",
			killedAt.Sub(burstStart).Round(time.Millisecond), ackedAtKill, received, inFlight, consumers)
	}()
	for i := range total {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	close(writesDone)
	<-killDone
	burstEnd := time.Now()
	if killedAt.IsZero() {
		t.Fatalf("the kill never happened: %d writes acknowledged", nAcked.Load())
	}
	t.Log(killInfo)
	t.Cleanup(func() {
		lines := timeline.stop()
		if t.Failed() {
			t.Logf("durable consumers after the kill, whenever one changed (t since the kill: delivered stream seq/ack floor, ack pending, pending, pin):\n%s", strings.Join(lines, "\n"))
		}
	})
	if ackedAtKill >= total {
		t.Errorf("the kill came after the burst (all %d writes acknowledged): it must come in the middle", total)
	}
	t.Logf("burst: %d writes acknowledged in %s (%d with a failed attempt)", len(acked), burstEnd.Sub(burstStart).Round(time.Millisecond), len(uncertain))
	if t.Failed() {
		t.FailNow()
	}
	for i, errs := range uncertain {
		t.Logf("o%d: failed attempts before the acknowledged version %d: %s", i, acked[i], strings.Join(errs, "; "))
	}

	// What the store holds: every version of every Observation, read
	// through a live replica. Each must be notified, acknowledged or not.
	live := reps[1]
	expected := map[noteKey]bool{}
	expectedOf := map[string][]string{} // resource version -> subscriptions
	for i := range total {
		versions, err := historyVersions(client, live.base, fmt.Sprintf("Observation/o%d", i))
		if err != nil {
			t.Fatalf("history of Observation/o%d: %v", i, err)
		}
		if v, ok := acked[i]; ok && !slices.Contains(versions, v) {
			t.Errorf("Observation/o%d: version %d was acknowledged but the history has %v", i, v, versions)
		}
		if len(versions) == 0 {
			t.Errorf("Observation/o%d: no version in the store (acknowledged %v)", i, acked[i])
		}
		for _, v := range versions {
			res := fmt.Sprintf("Observation/o%d/_history/%d", i, v)
			if _, ok := acked[i]; !ok || v != acked[i] {
				t.Logf("%s is in the store but was not acknowledged (a write cut by the kill); it must be notified too", res)
			}
			for _, s := range matches(i) {
				expected[noteKey{s, res}] = true
				expectedOf[res] = append(expectedOf[res], s)
			}
		}
	}
	t.Logf("%d notifications expected", len(expected))

	// Wait until every expected notification has arrived.
	// It stops early when nothing can come any more: every durable consumer
	// drained (each job is acknowledged only after its POST) and no POST
	// for 15 s.
	waitStart := time.Now()
	lastReport, lastDrainCheck := time.Now(), time.Now()
	var missing []noteKey
	for {
		missing = hooks.missing(expected)
		if len(missing) == 0 {
			break
		}
		if time.Since(waitStart) > 150*time.Second {
			break
		}
		if time.Since(lastDrainCheck) > time.Second {
			lastDrainCheck = time.Now()
			if _, drained := consumerStates(js); drained && time.Since(hooks.last()) > 15*time.Second {
				t.Logf("%s after the burst: every NATS consumer is drained and nothing was posted for 15s; %d notifications will not come", time.Since(waitStart).Round(time.Second), len(missing))
				break
			}
		}
		if time.Since(lastReport) > 15*time.Second {
			t.Logf("%s after the burst: %d notifications still missing", time.Since(waitStart).Round(time.Second), len(missing))
			lastReport = time.Now()
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(missing) > 0 {
		var sb strings.Builder
		for _, k := range missing {
			fmt.Fprintf(&sb, "\n  Subscription/%s: %s", k.sub, k.resource)
		}
		t.Errorf("%d of %d notifications never arrived (waited %s after the burst, %s after the kill):%s",
			len(missing), len(expected), time.Since(waitStart).Round(time.Second), time.Since(killedAt).Round(time.Second), sb.String())
		st, _ := consumerStates(js)
		t.Logf("NATS consumers now:%s", st)
	} else {
		t.Logf("all %d notifications arrived %s after the burst, %s after the kill", len(expected),
			time.Since(burstEnd).Round(time.Millisecond), time.Since(killedAt).Round(time.Millisecond))
	}

	// Quiescence: no job left pending or unacknowledged (a redelivery of
	// the notification in flight at the kill comes at most AckWait later).
	waitFor(t, 120*time.Second, "the NATS consumers to be drained", func() (bool, string) {
		st, drained := consumerStates(js)
		return drained, st
	})
	if st, _ := consumerStates(js); testing.Verbose() {
		t.Logf("NATS consumers at the end:%s", st)
	}

	// The feed as published: each Observation version once, with its position.
	seqOf, err := feedPositions(js)
	if err != nil {
		t.Fatalf("read %s: %v", natsbus.StreamName, err)
	}
	for res := range expectedOf {
		if _, ok := seqOf[res]; !ok {
			t.Errorf("%s is in the store but not in %s", res, natsbus.StreamName)
		}
	}

	// The checks.
	hooks.mu.Lock()
	notes := slices.Clone(hooks.notes)
	hooks.mu.Unlock()
	bySub := map[string][]hookNote{}
	for _, n := range notes {
		if n.problem != "" {
			t.Errorf("notification #%d (%s %s event %d): %s", n.n, n.sub, n.resource, n.event, n.problem)
		}
		k := noteKey{n.sub, n.resource}
		if !expected[k] {
			t.Errorf("unexpected notification #%d: Subscription/%s event %d %s %s (the store's versions match %v)", n.n, n.sub, n.event, n.op, n.resource, expectedOf[n.resource])
		}
		if seq, ok := seqOf[n.resource]; ok && seq != n.event {
			t.Errorf("notification #%d: Subscription/%s %s has event %d, but the change is at feed position %d", n.n, n.sub, n.resource, n.event, seq)
		}
		wantOp := "update"
		if strings.HasSuffix(n.resource, "/_history/1") {
			wantOp = "create"
		}
		if n.op != wantOp {
			t.Errorf("notification #%d: Subscription/%s %s has op %q, want %q", n.n, n.sub, n.resource, n.op, wantOp)
		}
		bySub[n.sub] = append(bySub[n.sub], n)
	}
	for _, s := range subs {
		list := bySub[s.id]
		repeats := 0
		for j := 1; j < len(list); j++ {
			prev, cur := list[j-1], list[j]
			switch {
			case cur.event < prev.event:
				t.Errorf("Subscription/%s: out of order: notification #%d event %d (%s) after #%d event %d (%s)",
					s.id, cur.n, cur.event, cur.resource, prev.n, prev.event, prev.resource)
			case cur.event == prev.event:
				repeats++
				if cur.resource != prev.resource {
					t.Errorf("Subscription/%s: event %d names %s in notification #%d and %s in #%d", s.id, cur.event, prev.resource, prev.n, cur.resource, cur.n)
				}
				t.Logf("Subscription/%s: event %d (%s) delivered again: #%d at %s, #%d at %s (%s after the kill)", s.id, cur.event, cur.resource,
					prev.n, prev.at.Sub(burstStart).Round(time.Millisecond), cur.n, cur.at.Sub(burstStart).Round(time.Millisecond), cur.at.Sub(killedAt).Round(time.Millisecond))
			}
		}
		t.Logf("Subscription/%s: %d notifications, %d repeated", s.id, len(list), repeats)
		if repeats > 1 {
			t.Errorf("Subscription/%s: %d repeated notifications, want at most 1 (the one in flight at the kill)", s.id, repeats)
		}
		if st, msg := subscriptionStatus(client, live.base, s.id); st != "active" {
			t.Errorf("Subscription/%s is %q at the end (%s), want active", s.id, st, msg)
		}
	}
	if t.Failed() {
		t.Logf("what each subscription received, in order (#arrival:event:resource@time since the kill):%s", hooks.describe(killedAt))
	}
	t.Logf("total %s", time.Since(started).Round(time.Millisecond))
}

// noteKey is a notification as expected: subscription id and resource version.
type noteKey struct{ sub, resource string }

// hookNote is one POST the receiver got.
type hookNote struct {
	n        int // arrival number
	sub      string
	event    int64
	resource string
	op       string
	at       time.Time
	problem  string
}

// hookRecorder is the rest-hook receiver: it records every POST, then
// answers 200 after delay (so deliveries are in flight when a replica dies).
type hookRecorder struct {
	delay    time.Duration
	inFlight atomic.Int32
	mu       sync.Mutex
	notes    []hookNote
}

func (h *hookRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.inFlight.Add(1)
	defer h.inFlight.Add(-1)
	body, err := io.ReadAll(r.Body)
	note := hookNote{
		sub:      strings.TrimPrefix(r.Header.Get("X-Fhirhub-Subscription"), "Subscription/"),
		resource: r.Header.Get("X-Fhirhub-Resource"),
		op:       r.Header.Get("X-Fhirhub-Op"),
		at:       time.Now(),
	}
	var problems []string
	if err != nil {
		problems = append(problems, "reading the body: "+err.Error())
	}
	if note.event, err = strconv.ParseInt(r.Header.Get("X-Fhirhub-Event"), 10, 64); err != nil {
		problems = append(problems, fmt.Sprintf("X-Fhirhub-Event %q", r.Header.Get("X-Fhirhub-Event")))
	}
	if want := "/hook/" + note.sub; r.URL.Path != want {
		problems = append(problems, fmt.Sprintf("posted to %s, want %s", r.URL.Path, want))
	}
	var res struct {
		ResourceType, ID string
		Meta             struct{ VersionID string }
	}
	if err := json.Unmarshal(body, &res); err != nil {
		problems = append(problems, "body: "+err.Error())
	} else if got := res.ResourceType + "/" + res.ID + "/_history/" + res.Meta.VersionID; got != note.resource {
		problems = append(problems, "the body is "+got)
	}
	note.problem = strings.Join(problems, "; ")
	h.mu.Lock()
	note.n = len(h.notes) + 1
	h.notes = append(h.notes, note)
	h.mu.Unlock()
	time.Sleep(h.delay)
	w.WriteHeader(http.StatusOK)
}

// last is when the last POST arrived.
func (h *hookRecorder) last() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.notes) == 0 {
		return time.Time{}
	}
	return h.notes[len(h.notes)-1].at
}

// missing lists the expected notifications not received yet, sorted.
func (h *hookRecorder) missing(expected map[noteKey]bool) []noteKey {
	h.mu.Lock()
	got := make(map[noteKey]bool, len(h.notes))
	for _, n := range h.notes {
		got[noteKey{n.sub, n.resource}] = true
	}
	h.mu.Unlock()
	var out []noteKey
	for k := range expected {
		if !got[k] {
			out = append(out, k)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].sub != out[j].sub {
			return out[i].sub < out[j].sub
		}
		return out[i].resource < out[j].resource
	})
	return out
}

// describe lists what each subscription received, in arrival order:
// #arrival:event:resource@time since ref.
func (h *hookRecorder) describe(ref time.Time) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	by := map[string][]string{}
	var ids []string
	for _, n := range h.notes {
		if _, ok := by[n.sub]; !ok {
			ids = append(ids, n.sub)
		}
		by[n.sub] = append(by[n.sub], fmt.Sprintf("#%d:%d:%s@%+.2fs", n.n, n.event, strings.TrimPrefix(n.resource, "Observation/"), n.at.Sub(ref).Seconds()))
	}
	sort.Strings(ids)
	var sb strings.Builder
	for _, id := range ids {
		fmt.Fprintf(&sb, "\n  %s (%d): %s", id, len(by[id]), strings.Join(by[id], " "))
	}
	return sb.String()
}

// replicaProc is one fhirserver process; its log (JSON lines) goes to a file.
type replicaProc struct {
	idx     int
	base    string
	cmd     *exec.Cmd
	logPath string
	dead    atomic.Bool
	exited  chan struct{}
}

// startReplica runs the binary like startServer, with its log in a file, and
// waits until it listens and its subscription hub runs.
func startReplica(t *testing.T, bin string, idx int, args ...string) *replicaProc {
	t.Helper()
	r := &replicaProc{idx: idx, logPath: filepath.Join(t.TempDir(), fmt.Sprintf("replica%d.log", idx)), exited: make(chan struct{})}
	f, err := os.Create(r.logPath)
	if err != nil {
		t.Fatal(err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.cmd = exec.Command(bin, append([]string{"serve", "--listen", "127.0.0.1:0", "--auth", "off", "--log-format", "json"}, args...)...)
	r.cmd.Stderr, r.cmd.Stdout = pw, pw
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	addr, hub := make(chan string, 1), make(chan struct{}, 1)
	go func() {
		defer f.Close()
		defer pr.Close()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			f.Write(sc.Bytes())
			f.Write([]byte{'\n'})
			var line struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(sc.Bytes(), &line) != nil {
				continue
			}
			switch line.Msg {
			case "listening":
				select {
				case addr <- line.Addr:
				default:
				}
			case "subscriptions: hub running":
				select {
				case hub <- struct{}{}:
				default:
				}
			}
		}
	}()
	go func() { _ = r.cmd.Wait(); close(r.exited) }()
	t.Cleanup(func() {
		select {
		case <-r.exited:
			return
		default:
		}
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.exited:
		case <-time.After(20 * time.Second):
			t.Logf("replica %d did not stop on SIGTERM within 20s; killing it", idx)
			r.kill()
		}
	})
	deadline := time.After(120 * time.Second)
	for got := 0; got < 2; got++ {
		select {
		case a := <-addr:
			r.base = "http://" + a + "/fhir"
			addr = nil
		case <-hub:
			hub = nil
		case <-r.exited:
			r.dumpLog(t)
			t.Fatalf("replica %d exited while starting: %v", idx, r.cmd.ProcessState)
		case <-deadline:
			r.dumpLog(t)
			t.Fatalf("replica %d: not listening with its hub running within 120s (listening: %t)", idx, r.base != "")
		}
	}
	return r
}

// kill sends SIGKILL and waits for the process to be gone.
func (r *replicaProc) kill() {
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.exited
}

// dumpLog logs the replica's warnings and errors, its subscription and
// relay lines, and its last lines.
func (r *replicaProc) dumpLog(t *testing.T) {
	b, err := os.ReadFile(r.logPath)
	if err != nil {
		t.Logf("replica %d log: %v", r.idx, err)
		return
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	var keep []string
	for i, l := range lines {
		if i >= len(lines)-20 || strings.Contains(l, `"level":"WARN"`) || strings.Contains(l, `"level":"ERROR"`) ||
			strings.Contains(l, "subscriptions:") || strings.Contains(l, "natsbus:") || !strings.HasPrefix(l, "{") {
			keep = append(keep, l)
		}
	}
	if len(keep) > 300 {
		keep = append(keep[:100:100], append([]string{fmt.Sprintf("... %d lines left out ...", len(keep)-300)}, keep[len(keep)-200:]...)...)
	}
	t.Logf("replica %d (%s, %d lines; exited: %t):\n%s", r.idx, r.base, len(lines), r.cmd.ProcessState != nil, strings.Join(keep, "\n"))
}

// putResource PUTs body at base/path and returns the status and the
// version of the ETag.
func putResource(client *http.Client, base, path, body string) (int, int, error) {
	req, err := http.NewRequest("PUT", base+"/"+path, strings.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	var v int
	fmt.Sscanf(resp.Header.Get("ETag"), `W/"%d"`, &v)
	return resp.StatusCode, v, nil
}

// subscriptionStatus reads a Subscription's status and error.
func subscriptionStatus(client *http.Client, base, id string) (string, string) {
	resp, err := client.Get(base + "/Subscription/" + id)
	if err != nil {
		return "", err.Error()
	}
	defer resp.Body.Close()
	var v struct{ Status, Error string }
	if resp.StatusCode != 200 {
		return "", fmt.Sprintf("GET status %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return "", err.Error()
	}
	return v.Status, v.Error
}

// historyVersions returns the versions of a resource's history, ascending.
func historyVersions(client *http.Client, base, path string) ([]int, error) {
	resp, err := client.Get(base + "/" + path + "/_history?_count=100")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	var b struct {
		Entry []struct {
			Resource struct {
				Meta struct{ VersionID string }
			}
			Request struct{ Method string }
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&b); err != nil {
		return nil, err
	}
	var out []int
	for _, e := range b.Entry {
		v, err := strconv.Atoi(e.Resource.Meta.VersionID)
		if err != nil {
			return nil, fmt.Errorf("an entry without a version (%s): %v", e.Request.Method, err)
		}
		out = append(out, v)
	}
	slices.Sort(out)
	return out, nil
}

// waitFor polls cond until it holds, failing with what it last said after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s; last: %s", d, what, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// consumerStates describes every durable consumer of every stream (the
// matcher's, the delivery consumers, whatever the hub uses): counts and
// pinned client. It reports whether all are drained (nothing pending, nothing
// unacknowledged).
func consumerStates(js jetstream.JetStream) (string, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var sb strings.Builder
	drained := true
	streams := js.StreamNames(ctx)
	var names []string
	for n := range streams.Name() {
		names = append(names, n)
	}
	if err := streams.Err(); err != nil {
		return "ERR list streams: " + err.Error(), false
	}
	sort.Strings(names)
	for _, sn := range names {
		st, err := js.Stream(ctx, sn)
		if err != nil {
			fmt.Fprintf(&sb, "\n  %s: ERR %v", sn, err)
			drained = false
			continue
		}
		fmt.Fprintf(&sb, "\n  stream %s: %d messages, last seq %d", sn, st.CachedInfo().State.Msgs, st.CachedInfo().State.LastSeq)
		infos := st.ListConsumers(ctx)
		var list []*jetstream.ConsumerInfo
		for info := range infos.Info() {
			if info.Config.Durable != "" {
				list = append(list, info)
			}
		}
		if err := infos.Err(); err != nil {
			fmt.Fprintf(&sb, "\n    ERR list consumers: %v", err)
			drained = false
		}
		sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
		for _, info := range list {
			busy := ""
			if info.NumPending > 0 || info.NumAckPending > 0 {
				busy, drained = " BUSY", false
			}
			var pins []string
			for _, g := range info.PriorityGroups {
				if g.PinnedClientID != "" {
					pins = append(pins, fmt.Sprintf("%s pinned %s since %s", g.Group, g.PinnedClientID, g.PinnedTS.Format("15:04:05.000")))
				}
			}
			fmt.Fprintf(&sb, "\n    %s:%s pending %d, ack pending %d, redelivered %d, waiting %d, delivered seq %d, ack floor %d %s",
				info.Name, busy, info.NumPending, info.NumAckPending, info.NumRedelivered, info.NumWaiting, info.Delivered.Stream, info.AckFloor.Stream, strings.Join(pins, ", "))
		}
	}
	return sb.String(), drained
}

// consumerTimeline samples the durable consumers every 250 ms and keeps a
// line for each one whose state changed.
type consumerTimeline struct {
	done  chan struct{}
	ended chan struct{}
	lines []string
}

func watchConsumers(js jetstream.JetStream, ref time.Time) *consumerTimeline {
	tl := &consumerTimeline{done: make(chan struct{}), ended: make(chan struct{})}
	go func() {
		defer close(tl.ended)
		last := map[string]string{}
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			var names []string
			for n := range js.StreamNames(ctx).Name() {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, sn := range names {
				st, err := js.Stream(ctx, sn)
				if err != nil {
					continue
				}
				infos := st.ListConsumers(ctx)
				for info := range infos.Info() {
					if info.Config.Durable == "" {
						continue
					}
					pin := ""
					for _, g := range info.PriorityGroups {
						pin += g.PinnedClientID
					}
					state := fmt.Sprintf("%d/%d, ack pending %d, pending %d, pin %s", info.Delivered.Stream, info.AckFloor.Stream, info.NumAckPending, info.NumPending, pin)
					if last[info.Name] != state {
						last[info.Name] = state
						tl.lines = append(tl.lines, fmt.Sprintf("  %+7.2fs %s: %s", time.Since(ref).Seconds(), info.Name, state))
					}
				}
			}
			cancel()
			select {
			case <-tl.done:
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()
	return tl
}

// stop ends the sampling and returns the lines.
func (tl *consumerTimeline) stop() []string {
	if tl == nil {
		return nil
	}
	select {
	case <-tl.done:
	default:
		close(tl.done)
	}
	<-tl.ended
	return tl.lines
}

// feedPositions reads the Observation changes of FHIR_CHANGES: for each
// "Observation/id/_history/version", its Fhir-Seq. A version published
// twice is an error.
func feedPositions(js jetstream.JetStream) (map[string]int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := js.OrderedConsumer(ctx, natsbus.StreamName, jetstream.OrderedConsumerConfig{FilterSubjects: []string{natsbus.Subject("Observation")}})
	if err != nil {
		return nil, err
	}
	info, err := c.Info(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	var dups bytes.Buffer
	for left := info.NumPending; left > 0; {
		m, err := c.Next(jetstream.FetchMaxWait(10 * time.Second))
		if err != nil {
			return nil, fmt.Errorf("after %d changes: %w", len(out), err)
		}
		md, err := m.Metadata()
		if err != nil {
			return nil, err
		}
		left = md.NumPending
		h := m.Headers()
		res := h.Get(natsbus.HeaderType) + "/" + h.Get(natsbus.HeaderID) + "/_history/" + h.Get(natsbus.HeaderVersion)
		seq, err := strconv.ParseInt(h.Get(natsbus.HeaderSeq), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %s %q", res, natsbus.HeaderSeq, h.Get(natsbus.HeaderSeq))
		}
		if prev, ok := out[res]; ok {
			fmt.Fprintf(&dups, " %s at %d and %d;", res, prev, seq)
		}
		out[res] = seq
	}
	if dups.Len() > 0 {
		return out, fmt.Errorf("published more than once:%s", dups.String())
	}
	return out, nil
}
