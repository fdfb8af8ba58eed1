package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"
)

// The targets the report checks; informational, they do not change the exit status.
const (
	targetReadRPS   = 5000
	targetReadP99   = 10 * time.Millisecond
	targetCreateRPS = 1500
	targetReadOfRaw = 0.40
	statusPass      = "PASS"
	statusMiss      = "MISS"
	statusSkip      = "SKIP"
)

// results is everything a session measured, as printed and as written to --json.
type results struct {
	Config     jsonConfig       `json:"config"`
	Preload    runResult        `json:"preload"`
	Scenarios  []scenarioResult `json:"scenarios"`
	Raw        *scenarioResult  `json:"raw_store_read,omitempty"`
	RawNote    string           `json:"raw_store_note,omitempty"`
	Synthea    *syntheaResult   `json:"synthea,omitempty"`
	Import     *loadResult      `json:"import,omitempty"`
	Tx         *txResult        `json:"large_transaction,omitempty"`
	Index      *indexSize       `json:"index_size,omitempty"`
	Subs       *subResult       `json:"subscriptions,omitempty"`
	SubsNote   string           `json:"subscriptions_note,omitempty"`
	ReadOfRaw  float64          `json:"http_read_over_raw_read,omitempty"`
	Targets    []target         `json:"targets"`
	Errors     int              `json:"errors"`
	FirstError string           `json:"first_error,omitempty"`
}

type jsonConfig struct {
	ServerBin string   `json:"server_bin,omitempty"`
	URL       string   `json:"url,omitempty"`
	Args      []string `json:"server_args,omitempty"`
	Preload   int      `json:"preload"`
	Synthea   string   `json:"synthea,omitempty"`
	Clients   int      `json:"clients"`
	Duration  string   `json:"duration"`
	Runs      int      `json:"runs"`
	Seed      uint64   `json:"seed"`
}

// scenarioResult is one workload over all its runs; the medians are over runs.
type scenarioResult struct {
	Name      string      `json:"name"`
	Query     string      `json:"query,omitempty"` // a search scenario's query
	Runs      []runResult `json:"runs"`
	MedianRPS float64     `json:"median_rps"`
	MedianP50 latency     `json:"median_p50_ms"`
	MedianP99 latency     `json:"median_p99_ms"`
	Requests  int         `json:"requests"`
	Errors    int         `json:"errors"`
}

// target is one informational check.
type target struct {
	Name   string `json:"name"`
	Status string `json:"status"` // PASS, MISS or SKIP
	Got    string `json:"got"`
}

func newResults(cfg config) *results {
	jc := jsonConfig{URL: cfg.URL, Args: cfg.ServerArgs, Preload: cfg.Preload, Synthea: cfg.Synthea, Clients: cfg.Clients,
		Duration: cfg.Duration.String(), Runs: cfg.Runs, Seed: cfg.Seed}
	if cfg.URL == "" {
		jc.ServerBin = cfg.ServerBin
	}
	return &results{Config: jc}
}

func (sr *scenarioResult) summarize() {
	var rps []float64
	var p50, p99 []latency
	for _, r := range sr.Runs {
		rps = append(rps, r.RPS)
		p50 = append(p50, r.P50)
		p99 = append(p99, r.P99)
		sr.Requests += r.Requests
		sr.Errors += r.Errors
	}
	sr.MedianRPS, sr.MedianP50, sr.MedianP99 = median(rps), median(p50), median(p99)
}

func (sr *scenarioResult) firstError() string {
	for _, r := range sr.Runs {
		if r.FirstError != "" {
			return r.FirstError
		}
	}
	return ""
}

func (res *results) scenario(name string) *scenarioResult {
	for i := range res.Scenarios {
		if res.Scenarios[i].Name == name {
			return &res.Scenarios[i]
		}
	}
	return nil
}

// check totals the errors, computes the read ratio and evaluates the targets.
func (res *results) check() {
	res.Errors, res.FirstError = res.Preload.Errors, res.Preload.FirstError
	all := res.Scenarios
	if res.Raw != nil {
		all = append(all[:len(all):len(all)], *res.Raw)
	}
	if sy := res.Synthea; sy != nil {
		res.Errors += sy.Load.Errors
		if res.FirstError == "" {
			res.FirstError = sy.Load.FirstError
		}
		all = append(all[:len(all):len(all)], sy.Searches...)
	}
	for i := range all {
		res.Errors += all[i].Errors
		if res.FirstError == "" {
			res.FirstError = all[i].firstError()
		}
	}
	res.Targets = nil
	if read, create := res.scenario("read"), res.scenario("create"); read != nil && create != nil {
		res.Targets = []target{
			{Name: fmt.Sprintf("read ≥ %d/s with p99 ≤ %v", targetReadRPS, targetReadP99),
				Status: passOrMiss(read.MedianRPS >= targetReadRPS && read.MedianP99 <= latency(targetReadP99)),
				Got:    fmt.Sprintf("%.0f/s, p99 %s", read.MedianRPS, read.MedianP99)},
			{Name: fmt.Sprintf("create ≥ %d/s", targetCreateRPS),
				Status: passOrMiss(create.MedianRPS >= targetCreateRPS),
				Got:    fmt.Sprintf("%.0f/s", create.MedianRPS)},
			res.rawTarget(read),
		}
	}
	if sy := res.Synthea; sy != nil {
		res.Targets = append(res.Targets, sy.targets()...)
	}
	if lr := res.Import; lr != nil {
		res.Targets = append(res.Targets, target{Name: fmt.Sprintf("import of the Synthea set ≥ %d resources/s", importTarget),
			Status: passOrMiss(lr.RPS >= importTarget), Got: fmt.Sprintf("%.0f/s (median of %d), server peak RSS %.0f MiB", lr.RPS, len(lr.Seconds), lr.PeakRSSMiB)})
	}
	if sr := res.Subs; sr != nil {
		for _, r := range append([]subRun{sr.Main}, sr.Search...) {
			res.Errors += r.WriteErrors
			if res.FirstError == "" {
				res.FirstError = r.FirstError
			}
		}
		res.Targets = append(res.Targets, sr.target())
	}
}

// target evaluates the subscriptions target: p99 at subTargetRate, every
// notification delivered once. It is skipped when the main step ran at
// another rate.
func (sr *subResult) target() target {
	m := sr.Main
	t := target{Name: fmt.Sprintf("%d subscriptions: p99 ≤ %v at %d changes/s", sr.Subscriptions, subTargetP99, subTargetRate)}
	t.Got = fmt.Sprintf("p99 %s at %.0f/s achieved, %d of %d notifications, %d duplicates", m.P99, m.AchievedRate, m.Received, m.Expected, m.Duplicates)
	switch {
	case m.Rate != subTargetRate:
		t.Status, t.Got = statusSkip, fmt.Sprintf("measured at %.0f/s, not %d/s", m.Rate, subTargetRate)
	default:
		t.Status = passOrMiss(m.P99 <= latency(subTargetP99) && m.Missing == 0 && m.Duplicates == 0 && m.AchievedRate >= 0.95*m.Rate)
	}
	return t
}

// search returns the search scenario called name.
func (sy *syntheaResult) search(name string) *scenarioResult {
	for i := range sy.Searches {
		if sy.Searches[i].Name == name {
			return &sy.Searches[i]
		}
	}
	return nil
}

// targets evaluates the search targets.
func (sy *syntheaResult) targets() []target {
	p50 := func(name string, limit time.Duration) (string, string) {
		s := sy.search(name)
		if s == nil {
			return statusSkip, "not measured"
		}
		return passOrMiss(s.MedianP50 <= latency(limit)), fmt.Sprintf("p50 %s", s.MedianP50)
	}
	token, tokenGot := p50(searchToken, targetTokenP50)
	chain, chainGot := p50(searchChain, targetChainP50)
	count, countGot := p50(searchCount, targetCountP50)
	countGot += fmt.Sprintf(" counting %d matches", sy.CountTotal)
	if sy.CountTotal < countMinimum {
		count, countGot = statusSkip, countGot+fmt.Sprintf(" (fewer than %d)", countMinimum)
	}
	return []target{
		{Name: fmt.Sprintf("single-parameter token search, first page, p50 ≤ %v", targetTokenP50), Status: token, Got: tokenGot},
		{Name: fmt.Sprintf("chained search p50 ≤ %v", targetChainP50), Status: chain, Got: chainGot},
		{Name: fmt.Sprintf("accurate count of %d+ matches p50 ≤ %v", countMinimum, targetCountP50), Status: count, Got: countGot},
	}
}

func (res *results) rawTarget(read *scenarioResult) target {
	t := target{Name: fmt.Sprintf("HTTP read ≥ %.0f%% of raw store read", targetReadOfRaw*100), Status: statusSkip, Got: "no raw store phase"}
	if res.Raw == nil || res.Raw.MedianRPS == 0 {
		return t
	}
	res.ReadOfRaw = read.MedianRPS / res.Raw.MedianRPS
	t.Status = passOrMiss(res.ReadOfRaw >= targetReadOfRaw)
	t.Got = fmt.Sprintf("%.1f%%", res.ReadOfRaw*100)
	return t
}

func passOrMiss(ok bool) string {
	if ok {
		return statusPass
	}
	return statusMiss
}

// print writes the summary table, the raw store lines and the targets.
func (res *results) print(w io.Writer) {
	fmt.Fprintln(w)
	if len(res.Scenarios) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
		fmt.Fprintf(tw, "scenario\treq/s (median of %d)\tp50\tp99\trequests\terrors\n", res.Config.Runs)
		for _, sr := range res.Scenarios {
			fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%d\t%d\n", sr.Name, sr.MedianRPS, sr.MedianP50, sr.MedianP99, sr.Requests, sr.Errors)
		}
		tw.Flush()
		fmt.Fprintln(w)
	}
	if res.Raw != nil {
		fmt.Fprintf(w, "raw store read: %.0f/s (median of %d; p50 %s, p99 %s, %d errors)\n",
			res.Raw.MedianRPS, res.Config.Runs, res.Raw.MedianP50, res.Raw.MedianP99, res.Raw.Errors)
		fmt.Fprintf(w, "HTTP read / raw store read: %.1f%%\n", res.ReadOfRaw*100)
	} else if res.RawNote != "" {
		fmt.Fprintln(w, "raw store read:", res.RawNote)
	}
	if sy := res.Synthea; sy != nil {
		sy.print(w, res.Config.Runs)
	}
	if lr := res.Import; lr != nil {
		fmt.Fprintf(w, "\nimport of %s into an empty store (fhirserver import, 4 connections): %d resources, %.0f resources/s (median of %d runs), server peak RSS %.0f MiB\n",
			lr.Dir, lr.Resources, lr.RPS, len(lr.Seconds), lr.PeakRSSMiB)
	}
	if tr := res.Tx; tr != nil {
		fmt.Fprintf(w, "one transaction of %d entries (%.1f MiB): %.1fs, server RSS %.0f MiB before, peak %.0f MiB\n",
			tr.Entries, tr.BundleMiB, tr.Seconds, tr.BeforeMiB, tr.PeakRSSMiB)
	}
	if is := res.Index; is != nil {
		fmt.Fprintf(w, "search index on disk: %s in the idx_* tables and their indexes (%.0f%% of the %s database), %d current resources: %s per resource\n",
			bytesIEC(float64(is.IndexBytes)), 100*float64(is.IndexBytes)/float64(max(is.DBBytes, 1)), bytesIEC(float64(is.DBBytes)),
			is.Resources, bytesIEC(is.PerResource))
	}
	if sr := res.Subs; sr != nil {
		sr.print(w)
	} else if res.SubsNote != "" {
		fmt.Fprintln(w, "subscriptions phase", res.SubsNote)
	}
	fmt.Fprintln(w, "\ntargets (informational; the exit status depends only on errors):")
	for _, t := range res.Targets {
		fmt.Fprintf(w, "  %s  %s: %s\n", t.Status, t.Name, t.Got)
	}
	fmt.Fprintf(w, "\nerrors: %d\n", res.Errors)
	if res.FirstError != "" {
		fmt.Fprintln(w, "first error:", res.FirstError)
	}
}

func (res *results) writeJSON(path string) error {
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return fmt.Errorf("fhirbench: encode the results: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("fhirbench: write the results: %w", err)
	}
	return nil
}

// print writes the Synthea load and the search table.
func (sy *syntheaResult) print(w io.Writer, runs int) {
	fmt.Fprintf(w, "\nsynthea load (%s): %d resources in %.1fs, %.0f resources/s (p50 %s, p99 %s, %d errors)\n",
		sy.Dir, sy.Resources, sy.Load.Seconds, sy.Load.RPS, sy.Load.P50, sy.Load.P99, sy.Load.Errors)
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintf(tw, "search\treq/s (median of %d)\tp50\tp99\terrors\ttarget\tquery\n", runs)
	goals := map[string]time.Duration{searchToken: targetTokenP50, searchChain: targetChainP50, searchCount: targetCountP50}
	for _, s := range sy.Searches {
		goal := ""
		if g, ok := goals[s.Name]; ok {
			goal = fmt.Sprintf("p50 ≤ %v: %s", g, passOrMiss(s.MedianP50 <= latency(g)))
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%d\t%s\t%s\n", s.Name, s.MedianRPS, s.MedianP50, s.MedianP99, s.Errors, goal, s.Query)
	}
	tw.Flush()
	fmt.Fprintln(w)
}

// bytesIEC prints a size in B, KiB, MiB or GiB.
func bytesIEC(n float64) string {
	for _, u := range []string{"B", "KiB", "MiB"} {
		if n < 1024 {
			return fmt.Sprintf("%.1f %s", n, u)
		}
		n /= 1024
	}
	return fmt.Sprintf("%.2f GiB", n)
}

// print writes the subscriptions phase: the mix, each step, the search.
func (sr *subResult) print(w io.Writer) {
	fmt.Fprintf(w, "\nsubscriptions: %d rest-hook (%d per patient over %d Patients, %d per code over %d codes, %d per type), all active %.1fs after the first create\n",
		sr.Subscriptions, sr.PerPatient, sr.Patients, sr.PerCode, sr.Codes, sr.PerType, sr.SetupSeconds)
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "step\tchanges/s (achieved)\tnotifications expected\treceived\tduplicates\tunexpected\tp50\tp99\tmax\tdrained")
	row := func(name string, r subRun) {
		drained := "no"
		if r.Missing == 0 {
			drained = fmt.Sprintf("%.1fs", r.DrainSeconds)
		}
		fmt.Fprintf(tw, "%s\t%.0f (%.0f)\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\n", name, r.Rate, r.AchievedRate, r.Expected, r.Received,
			r.Duplicates, r.Unexpected, r.P50, r.P99, r.Max, drained)
	}
	row(fmt.Sprintf("main, %.0fs", sr.Main.Seconds), sr.Main)
	for _, r := range sr.Search {
		row(fmt.Sprintf("search, %.0fs", r.Seconds), r)
	}
	tw.Flush()
	fmt.Fprintln(w, "latency: from the create's 201 to the receiver; drained: last notification after the last 201")
	switch {
	case sr.MaxSustainable > 0:
		fmt.Fprintf(w, "highest sustained rate tried: %.0f changes/s (p99 < %v, all delivered, drained within %v)\n", sr.MaxSustainable, subSustainP99, subDrainLimit)
	case sr.SearchNote != "":
		fmt.Fprintln(w, "rate search:", sr.SearchNote)
	}
}
