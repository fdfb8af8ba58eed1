package main

import (
	"context"
	"slices"
	"sync"
	"time"
)

// An op is one request of a workload. Every client goroutine has its own op,
// so an op may keep state (its random source) without locking.
type op func(ctx context.Context) error

// runResult is one run of one workload.
type runResult struct {
	Requests   int     `json:"requests"`
	Errors     int     `json:"errors"`
	Seconds    float64 `json:"seconds"`
	RPS        float64 `json:"rps"`
	P50        latency `json:"p50_ms"`
	P99        latency `json:"p99_ms"`
	FirstError string  `json:"first_error,omitempty"`
}

// clientResult is what one client goroutine saw.
type clientResult struct {
	latencies []time.Duration
	errors    int
	firstErr  error
}

// measure runs one op per client, each in a loop that starts requests until d
// has passed, and records the latency of every request. Requests in flight at
// the end finish and count; the throughput divides by the time until the last
// one finished. ctx ending stops the clients early.
func measure(ctx context.Context, clients int, d time.Duration, newOp func(client int) op) runResult {
	end := time.Now().Add(d)
	return measureWhile(ctx, clients, func() bool { return time.Now().Before(end) }, newOp)
}

// measureWhile is measure with a condition, checked before each request, in
// place of the duration. The clients share more; it must be safe for them.
func measureWhile(ctx context.Context, clients int, more func() bool, newOp func(client int) op) runResult {
	results := make([]clientResult, clients)
	ops := make([]op, clients)
	for c := range ops {
		ops[c] = newOp(c)
	}
	var wg sync.WaitGroup
	start := time.Now()
	for c, do := range ops {
		wg.Go(func() { results[c] = drive(ctx, more, do) })
	}
	wg.Wait()
	return summarize(results, time.Since(start))
}

// drive calls do while more says so and ctx lasts.
func drive(ctx context.Context, more func() bool, do op) clientResult {
	r := clientResult{latencies: make([]time.Duration, 0, 1<<14)}
	for ctx.Err() == nil && more() {
		t0 := time.Now()
		err := do(ctx)
		if err != nil && ctx.Err() != nil {
			break // interrupted, not failed
		}
		r.latencies = append(r.latencies, time.Since(t0))
		if err != nil {
			r.errors++
			if r.firstErr == nil {
				r.firstErr = err
			}
		}
	}
	return r
}

// summarize merges the clients' results of one run.
func summarize(results []clientResult, elapsed time.Duration) runResult {
	var all []time.Duration
	var rr runResult
	for _, r := range results {
		all = append(all, r.latencies...)
		rr.Errors += r.errors
		if r.firstErr != nil && rr.FirstError == "" {
			rr.FirstError = r.firstErr.Error()
		}
	}
	slices.Sort(all)
	rr.Requests = len(all)
	rr.Seconds = elapsed.Seconds()
	if rr.Seconds > 0 {
		rr.RPS = float64(rr.Requests) / rr.Seconds
	}
	rr.P50 = latency(percentile(all, 50))
	rr.P99 = latency(percentile(all, 99))
	return rr
}
