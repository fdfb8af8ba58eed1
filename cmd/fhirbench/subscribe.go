package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The subscriptions phase: the mix of criteria, the pools they draw from, the
// mix of writes, and the limits of one step.
const (
	subPatientPool  = 1000 // Patients created before the subscriptions; per-patient criteria and writes draw from them
	subCodePool     = 100  // LOINC codes the Observations carry
	subCodesWatched = 50   // the first subCodesWatched of them have per-code subscriptions
	subDrainLimit   = 10 * time.Second
	subGrace        = 60 * time.Second // how long after the writes a notification still counts as received
	subSearchStep   = 10 * time.Second
	subSustainP99   = time.Second
	subTargetRate   = 500
	subTargetP99    = 200 * time.Millisecond
	sentSystem      = "https://fhirhub.dev/fhirbench/sent" // identifier whose value is the send time, Unix ns
)

// subSearchRates are the rates of the search for the maximum sustainable rate.
var subSearchRates = []float64{250, 500, 1000}

// subKind is what a subscription's criteria filter on.
type subKind int

const (
	subPerPatient subKind = iota // Observation?patient=Patient/<id>
	subPerCode                   // Observation?code=http://loinc.org|<code>
	subPerType                   // Encounter? or Patient?
)

// subSpec is one subscription of the mix.
type subSpec struct {
	kind  subKind
	value string // the patient id, the code, or the resource type
}

// criteria is the Subscription.criteria of s.
func (s subSpec) criteria() string {
	switch s.kind {
	case subPerPatient:
		return "Observation?patient=Patient/" + s.value
	case subPerCode:
		return "Observation?code=http://loinc.org|" + s.value
	default:
		return s.value + "?"
	}
}

// subMix builds n subscriptions: 70% per patient over patients, 25% per
// code over codes, the rest per type, alternating Encounter and Patient.
// Each pool is used round robin, so the subscriptions spread evenly.
func subMix(n int, patients, codes []string) []subSpec {
	perPatient, perCode := n*70/100, n*25/100
	specs := make([]subSpec, 0, n)
	for i := range perPatient {
		specs = append(specs, subSpec{subPerPatient, patients[i%len(patients)]})
	}
	for i := range perCode {
		specs = append(specs, subSpec{subPerCode, codes[i%len(codes)]})
	}
	for i := range n - perPatient - perCode {
		specs = append(specs, subSpec{subPerType, []string{"Encounter", "Patient"}[i%2]})
	}
	return specs
}

// subWrite is one resource the phase writes: what the matcher sees of it.
type subWrite struct {
	typ     string // Observation, Patient or Encounter
	patient string // the subject of an Observation or Encounter
	code    string // the LOINC code of an Observation
}

// subIndex answers which subscriptions a write matches, as the hub should.
type subIndex struct {
	byPatient map[string][]int
	byCode    map[string][]int
	byType    map[string][]int
}

func newSubIndex(specs []subSpec) *subIndex {
	x := &subIndex{byPatient: map[string][]int{}, byCode: map[string][]int{}, byType: map[string][]int{}}
	for i, s := range specs {
		switch s.kind {
		case subPerPatient:
			x.byPatient[s.value] = append(x.byPatient[s.value], i)
		case subPerCode:
			x.byCode[s.value] = append(x.byCode[s.value], i)
		default:
			x.byType[s.value] = append(x.byType[s.value], i)
		}
	}
	return x
}

// matching returns the indexes of the subscriptions w matches, ascending.
func (x *subIndex) matching(w subWrite) []int {
	out := slices.Clone(x.byType[w.typ])
	if w.typ == "Observation" {
		out = append(out, x.byPatient[w.patient]...)
		out = append(out, x.byCode[w.code]...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// subRun is one step of the phase: writes at a fixed rate, and what arrived.
type subRun struct {
	Rate         float64 `json:"target_rate"`
	Seconds      float64 `json:"seconds"`
	Writes       int     `json:"writes"`
	WriteErrors  int     `json:"write_errors"`
	FirstError   string  `json:"first_error,omitempty"`
	AchievedRate float64 `json:"achieved_rate"`
	LateSends    int     `json:"late_sends"` // sent more than 100 ms after their scheduled time
	WriteP50     latency `json:"write_p50_ms"`
	WriteP99     latency `json:"write_p99_ms"`
	Expected     int     `json:"notifications_expected"`
	Received     int     `json:"notifications_received"` // distinct expected ones that arrived within the grace
	Missing      int     `json:"notifications_missing"`
	Duplicates   int     `json:"duplicates"`
	Unexpected   int     `json:"unexpected"`
	P50          latency `json:"latency_p50_ms"` // 201 of the create to the receiver
	P99          latency `json:"latency_p99_ms"`
	Max          latency `json:"latency_max_ms"`
	SentP99      latency `json:"sent_to_received_p99_ms"` // the send time carried in the resource to the receiver
	Drained      bool    `json:"drained_within_10s"`
	DrainSeconds float64 `json:"drain_seconds"` // from the last write's 201 to the last expected notification
}

// subResult is the subscriptions phase.
type subResult struct {
	Subscriptions  int      `json:"subscriptions"`
	PerPatient     int      `json:"per_patient"`
	PerCode        int      `json:"per_code"`
	PerType        int      `json:"per_type"`
	Patients       int      `json:"patient_pool"`
	Codes          int      `json:"codes_watched"`
	SetupSeconds   float64  `json:"setup_seconds"` // creating the subscriptions until all are active
	Main           subRun   `json:"main"`
	Search         []subRun `json:"rate_search,omitempty"`
	MaxSustainable float64  `json:"max_sustainable_rate,omitempty"`
	SearchNote     string   `json:"rate_search_note,omitempty"`
}

// sustained reports whether a step kept up: the rate was achieved, every
// notification arrived, p99 stayed under subSustainP99 and the backlog drained.
func (r subRun) sustained() bool {
	return r.WriteErrors == 0 && r.AchievedRate >= 0.95*r.Rate && r.Missing == 0 &&
		r.P99 < latency(subSustainP99) && r.Drained
}

// delivery is one notification as the receiver saw it.
type delivery struct {
	sub  int    // the subscription's index in the mix; -1 when not one of ours
	key  string // Type/id of the resource
	at   time.Time
	sent time.Time // from the resource's sentSystem identifier; zero when absent
}

// receiver is the rest-hook endpoint: it records every notification.
type receiver struct {
	mu   sync.Mutex
	got  []delivery
	seen map[[2]string]bool // (subscription, resource) pairs, for draining
	bad  atomic.Int64
}

func newReceiver() *receiver { return &receiver{seen: map[[2]string]bool{}} }

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	at := time.Now()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		rc.bad.Add(1)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	d := delivery{sub: -1, at: at}
	sub := strings.TrimPrefix(r.Header.Get("X-Fhirhub-Subscription"), "Subscription/")
	if n, ok := strings.CutPrefix(sub, "fb-"); ok {
		if i, err := strconv.Atoi(n); err == nil {
			d.sub = i
		}
	}
	res := strings.Split(r.Header.Get("X-Fhirhub-Resource"), "/")
	if len(res) >= 2 {
		d.key = res[0] + "/" + res[1]
	}
	d.sent = sentTime(body)
	rc.mu.Lock()
	rc.got = append(rc.got, d)
	rc.seen[[2]string{sub, d.key}] = true
	rc.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// sentTime reads the send time out of a delivered resource.
func sentTime(body []byte) time.Time {
	var r struct {
		Identifier []struct {
			System string `json:"system"`
			Value  string `json:"value"`
		} `json:"identifier"`
	}
	if json.Unmarshal(body, &r) != nil {
		return time.Time{}
	}
	for _, id := range r.Identifier {
		if id.System == sentSystem {
			if ns, err := strconv.ParseInt(id.Value, 10, 64); err == nil {
				return time.Unix(0, ns)
			}
		}
	}
	return time.Time{}
}

// has reports whether the pair (subscription index, resource key) arrived.
func (rc *receiver) has(sub int, key string) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.seen[[2]string{"fb-" + strconv.Itoa(sub), key}]
}

// snapshot returns the deliveries so far.
func (rc *receiver) snapshot() []delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got)
}

// written is one write of a step as the writer saw it.
type written struct {
	key     string // Type/id; empty when the create failed
	subs    []int  // the subscriptions it should notify
	sched   time.Time
	sent    time.Time
	created time.Time // when the 201 was read
}

// subscriptionsPhase starts a fresh server, creates the subscriptions,
// measures cfg.SubRate for cfg.SubDuration, then searches for the highest
// sustainable rate.
func (b *bench) subscriptionsPhase(ctx context.Context) (sr *subResult, err error) {
	dir, err := b.makeDataDir()
	if err != nil {
		return nil, err
	}
	defer b.dropDataDir(dir)
	srv, err := b.startServer(ctx, filepath.Join(dir, "data"))
	if err != nil {
		return nil, err
	}
	defer func() {
		if stopErr := srv.stop(stopTimeout); stopErr != nil && err == nil {
			err = stopErr
		}
	}()
	rc := newReceiver()
	hook := httptest.NewServer(rc) // 127.0.0.1, allowed with --auth off
	defer hook.Close()

	fmt.Fprintf(b.out, "\nsubscriptions: %d rest-hook subscriptions to %s, a fresh server\n", b.cfg.Subscriptions, hook.URL)
	patients, err := b.createPool(ctx, subPatientPool)
	if err != nil {
		return nil, err
	}
	codes := loincCodes(subCodePool)
	specs := subMix(b.cfg.Subscriptions, patients, codes[:subCodesWatched])
	sr = &subResult{Subscriptions: len(specs), Patients: len(patients), Codes: subCodesWatched}
	for _, s := range specs {
		switch s.kind {
		case subPerPatient:
			sr.PerPatient++
		case subPerCode:
			sr.PerCode++
		default:
			sr.PerType++
		}
	}
	start := time.Now()
	if err := b.createSubscriptions(ctx, specs, hook.URL+"/hook"); err != nil {
		return nil, err
	}
	sr.SetupSeconds = time.Since(start).Seconds()
	fmt.Fprintf(b.out, "subscriptions: %d per patient (over %d Patients), %d per code (over %d codes), %d per type; all active after %.1fs\n",
		sr.PerPatient, len(patients), sr.PerCode, subCodesWatched, sr.PerType, sr.SetupSeconds)

	w := &subWriter{b: b, idx: newSubIndex(specs), patients: patients, codes: codes, rc: rc}
	sr.Main, err = w.step(ctx, b.cfg.SubRate, b.cfg.SubDuration, 1)
	if err != nil {
		return nil, err
	}
	if !b.cfg.SubSearch {
		return sr, nil
	}
	if sr.Main.Missing > 0 {
		sr.SearchNote = "skipped: the main step's backlog did not drain"
		fmt.Fprintln(b.out, "rate search", sr.SearchNote)
		return sr, nil
	}
	for i, rate := range subSearchRates {
		run, err := w.step(ctx, rate, subSearchStep, uint64(i+2))
		if err != nil {
			return nil, err
		}
		sr.Search = append(sr.Search, run)
		if !run.sustained() {
			break
		}
		sr.MaxSustainable = rate
	}
	if sr.MaxSustainable == 0 {
		sr.SearchNote = fmt.Sprintf("none of the rates tried was sustained (p99 < %v, drained within %v)", subSustainP99, subDrainLimit)
	}
	return sr, nil
}

// loincCodes returns n code values of the pool: real codes first, then made-up ones.
func loincCodes(n int) []string {
	known := []string{"8867-4", "8480-6", "8462-4", "8310-5", "9279-1", "29463-7", "8302-2", "39156-5", "2339-0", "2708-6",
		"718-7", "4548-4", "2093-3", "2571-8", "2085-9", "18262-6", "6690-2", "789-8", "785-6", "786-4"}
	out := make([]string, n)
	for i := range out {
		if i < len(known) {
			out[i] = known[i]
		} else {
			out[i] = fmt.Sprintf("%d-%d", 90000+i, i%10)
		}
	}
	return out
}

// createPool creates n Patients with the clients and returns their ids.
func (b *bench) createPool(ctx context.Context, n int) ([]string, error) {
	ids := make([]string, n)
	var next atomic.Int64
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for range b.cfg.Clients {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) || ctx.Err() != nil {
					return
				}
				id, err := b.createPatient(ctx, uint64(1<<32+i))
				if err != nil {
					mu.Lock()
					firstErr = cmp(firstErr, err)
					mu.Unlock()
					return
				}
				ids[i] = id
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, fmt.Errorf("fhirbench: create the Patients of the subscriptions phase: %w", firstErr)
	}
	return ids, ctx.Err()
}

// cmp keeps the first error.
func cmp(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// createSubscriptions PUTs the subscriptions as fb-<i>, requested, and polls
// until the hub has set every one active (failing on any in error).
func (b *bench) createSubscriptions(ctx context.Context, specs []subSpec, endpoint string) error {
	var next atomic.Int64
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for range b.cfg.Clients {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(specs) || ctx.Err() != nil {
					return
				}
				body, err := json.Marshal(map[string]any{
					"resourceType": "Subscription", "id": "fb-" + strconv.Itoa(i), "status": "requested",
					"reason": "fhirbench", "criteria": specs[i].criteria(),
					"channel": map[string]any{"type": "rest-hook", "endpoint": endpoint, "payload": fhirJSON},
				})
				if err == nil {
					_, err = b.send(ctx, http.MethodPut, "/Subscription/fb-"+strconv.Itoa(i), body)
				}
				if err != nil {
					mu.Lock()
					firstErr = cmp(firstErr, err)
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return fmt.Errorf("fhirbench: create the subscriptions: %w", firstErr)
	}
	deadline := time.Now().Add(b.cfg.ReadyTimeout + time.Duration(len(specs))*20*time.Millisecond)
	for {
		active, err := b.total(ctx, "/Subscription?status=active&_summary=count")
		if err != nil {
			return err
		}
		if active >= int64(len(specs)) {
			return nil
		}
		failed, err := b.total(ctx, "/Subscription?status=error&_summary=count")
		if err != nil {
			return err
		}
		if failed > 0 {
			return fmt.Errorf("fhirbench: %d subscriptions went to error (GET %s/Subscription?status=error says why)", failed, b.base)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("fhirbench: %d of %d subscriptions active after %s", active, len(specs), time.Until(deadline))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// subWriter writes the resources of the phase's steps.
type subWriter struct {
	b        *bench
	idx      *subIndex
	patients []string
	codes    []string
	rc       *receiver
}

// step writes at rate for d, open loop: a scheduler hands each write to
// the clients at its time whatever the responses do; then it waits for the
// notifications and sums up.
func (w *subWriter) step(ctx context.Context, rate float64, d time.Duration, stream uint64) (subRun, error) {
	b := w.b
	n := int(rate * d.Seconds())
	rng := rand.New(rand.NewPCG(b.cfg.Seed, stream<<40|1<<39))
	plan := make([]subWrite, n)
	for i := range plan {
		plan[i] = w.randomWrite(rng)
	}
	writes := make([]written, n)
	queue := make(chan int, n)
	var errs atomic.Int64
	var firstMu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now().Add(50 * time.Millisecond)
	for range b.cfg.Clients {
		wg.Go(func() {
			for i := range queue {
				wr := &writes[i]
				wr.subs = w.idx.matching(plan[i])
				wr.sent = time.Now()
				key, err := w.write(ctx, plan[i], wr.sent)
				if err != nil {
					errs.Add(1)
					firstMu.Lock()
					firstErr = cmp(firstErr, err)
					firstMu.Unlock()
					continue
				}
				wr.key, wr.created = key, time.Now()
			}
		})
	}
	interval := time.Duration(float64(time.Second) / rate)
	for i := range n {
		at := start.Add(time.Duration(i) * interval)
		writes[i].sched = at
		if wait := time.Until(at); wait > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
		}
		if ctx.Err() != nil {
			break
		}
		queue <- i
	}
	close(queue)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return subRun{}, err
	}
	run := subRun{Rate: rate, Writes: n, WriteErrors: int(errs.Load())}
	if firstErr != nil {
		run.FirstError = firstErr.Error()
	}
	w.await(ctx, writes)
	if err := ctx.Err(); err != nil {
		return subRun{}, err
	}
	summarizeStep(writes, w.rc.snapshot(), &run)
	b.printStep(run)
	return run, nil
}

// randomWrite picks the next write: 94% Observations, 3% Patients, 3% Encounters.
func (w *subWriter) randomWrite(rng *rand.Rand) subWrite {
	switch p := rng.IntN(100); {
	case p < 3:
		return subWrite{typ: "Patient"}
	case p < 6:
		return subWrite{typ: "Encounter", patient: pick(rng, w.patients)}
	default:
		return subWrite{typ: "Observation", patient: pick(rng, w.patients), code: pick(rng, w.codes)}
	}
}

// write creates the resource and returns its Type/id.
func (w *subWriter) write(ctx context.Context, sw subWrite, sent time.Time) (string, error) {
	ident := []map[string]string{{"system": sentSystem, "value": strconv.FormatInt(sent.UnixNano(), 10)}}
	var res any
	switch sw.typ {
	case "Patient":
		p := newPatient(rand.New(rand.NewPCG(uint64(sent.UnixNano()), 7)))
		res = map[string]any{"resourceType": "Patient", "identifier": ident, "name": p.Name, "gender": p.Gender, "birthDate": p.BirthDate}
	case "Encounter":
		res = map[string]any{"resourceType": "Encounter", "status": "finished", "identifier": ident,
			"class":   map[string]string{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
			"subject": map[string]string{"reference": "Patient/" + sw.patient}}
	default:
		res = map[string]any{"resourceType": "Observation", "status": "final", "identifier": ident,
			"category":          []any{map[string]any{"coding": []map[string]string{{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}}}},
			"code":              map[string]any{"coding": []map[string]string{{"system": "http://loinc.org", "code": sw.code}}},
			"subject":           map[string]string{"reference": "Patient/" + sw.patient},
			"effectiveDateTime": sent.UTC().Format(time.RFC3339),
			"valueQuantity":     map[string]any{"value": 72, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}}
	}
	body, err := json.Marshal(res)
	if err != nil {
		return "", err
	}
	h, err := w.b.send(ctx, http.MethodPost, "/"+sw.typ, body)
	if err != nil {
		return "", err
	}
	return keyFromLocation(sw.typ, h.Get("Location"))
}

// keyFromLocation reads Type/id out of a create's Location.
func keyFromLocation(typ, loc string) (string, error) {
	i := strings.LastIndex(loc, typ+"/")
	if i < 0 {
		return "", fmt.Errorf("create %s: Location %q names no %s", typ, loc, typ)
	}
	id, _, _ := strings.Cut(loc[i+len(typ)+1:], "/")
	if id == "" {
		return "", fmt.Errorf("create %s: Location %q has no id", typ, loc)
	}
	return typ + "/" + id, nil
}

// await polls the receiver until every expected notification of writes has
// arrived or subGrace has passed since the last write.
func (w *subWriter) await(ctx context.Context, writes []written) {
	var last time.Time
	for _, wr := range writes {
		if wr.created.After(last) {
			last = wr.created
		}
	}
	pending := 0
	for _, wr := range writes {
		if wr.key != "" {
			pending += len(wr.subs)
		}
	}
	done := make([][]bool, len(writes))
	for i, wr := range writes {
		done[i] = make([]bool, len(wr.subs))
	}
	deadline := last.Add(subGrace)
	for pending > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		for i, wr := range writes {
			if wr.key == "" {
				continue
			}
			for j, s := range wr.subs {
				if !done[i][j] && w.rc.has(s, wr.key) {
					done[i][j] = true
					pending--
				}
			}
		}
		if pending > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

// summarizeStep compares the deliveries with the writes: expected against
// received, duplicates, unexpected ones, and the latencies.
func summarizeStep(writes []written, got []delivery, run *subRun) {
	type pair struct {
		sub int
		key string
	}
	created := map[string]*written{}
	expected := map[pair]bool{}
	var first, last time.Time
	var writeLat []time.Duration
	for i := range writes {
		wr := &writes[i]
		if wr.key == "" {
			continue
		}
		created[wr.key] = wr
		for _, s := range wr.subs {
			expected[pair{s, wr.key}] = true
		}
		if first.IsZero() || wr.sched.Before(first) {
			first = wr.sched
		}
		if wr.created.After(last) {
			last = wr.created
		}
		writeLat = append(writeLat, wr.created.Sub(wr.sent))
		if wr.sent.Sub(wr.sched) > 100*time.Millisecond {
			run.LateSends++
		}
	}
	run.Expected = len(expected)
	run.Seconds = last.Sub(first).Seconds()
	if run.Seconds > 0 {
		run.AchievedRate = float64(len(created)) / run.Seconds
	}
	slices.Sort(writeLat)
	run.WriteP50, run.WriteP99 = latency(percentile(writeLat, 50)), latency(percentile(writeLat, 99))
	count := map[pair]int{}
	var lat, sentLat []time.Duration
	var lastAt time.Time
	for _, d := range got {
		wr, ok := created[d.key]
		if !ok {
			continue // another step's write
		}
		p := pair{d.sub, d.key}
		if !expected[p] {
			run.Unexpected++
			continue
		}
		count[p]++
		if count[p] > 1 {
			run.Duplicates++
			continue
		}
		lat = append(lat, d.at.Sub(wr.created))
		if !d.sent.IsZero() {
			sentLat = append(sentLat, d.at.Sub(d.sent))
		}
		if d.at.After(lastAt) {
			lastAt = d.at
		}
	}
	run.Received = len(count)
	run.Missing = run.Expected - run.Received
	slices.Sort(lat)
	slices.Sort(sentLat)
	run.P50, run.P99 = latency(percentile(lat, 50)), latency(percentile(lat, 99))
	if len(lat) > 0 {
		run.Max = latency(lat[len(lat)-1])
	}
	run.SentP99 = latency(percentile(sentLat, 99))
	if run.Missing == 0 {
		run.DrainSeconds = max(lastAt.Sub(last).Seconds(), 0)
	}
	run.Drained = run.Missing == 0 && run.DrainSeconds <= subDrainLimit.Seconds()
}

func (b *bench) printStep(r subRun) {
	fmt.Fprintf(b.out, "subs %5.0f/s for %.1fs: %d writes (%.0f/s achieved, %d late, %d errors; create p50 %s, p99 %s); notifications %d expected, %d received, %d missing, %d duplicates, %d unexpected; 201-to-receiver p50 %s, p99 %s, max %s; ",
		r.Rate, r.Seconds, r.Writes, r.AchievedRate, r.LateSends, r.WriteErrors, r.WriteP50, r.WriteP99,
		r.Expected, r.Received, r.Missing, r.Duplicates, r.Unexpected, r.P50, r.P99, r.Max)
	if r.Missing == 0 {
		fmt.Fprintf(b.out, "drained %.1fs after the last write\n", r.DrainSeconds)
	} else {
		fmt.Fprintf(b.out, "not drained %v after the last write\n", subGrace)
	}
	if r.FirstError != "" {
		fmt.Fprintf(b.out, "         first error: %s\n", r.FirstError)
	}
}
