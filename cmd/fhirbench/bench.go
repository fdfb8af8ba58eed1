package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strings"
	"time"
)

// stopTimeout bounds how long the server may take to stop after SIGTERM.
const stopTimeout = 30 * time.Second

// bench is one benchmark session: its configuration, the shared HTTP client,
// the FHIR base under test and the preloaded Patients.
type bench struct {
	cfg    config
	out    io.Writer // the report
	logw   io.Writer // the server's log and notes
	client *http.Client
	base   string   // FHIR base, e.g. http://127.0.0.1:port/fhir
	recs   []record // preloaded Patients
}

// record is a preloaded Patient: its id and the index that generated its body.
type record struct {
	id string
	n  uint64
}

func newBench(cfg config, out, logw io.Writer) *bench {
	return &bench{cfg: cfg, out: out, logw: logw, client: newClient(cfg.Clients)}
}

// run preloads, measures every scenario, and, for a server it started, the raw store.
func (b *bench) run(ctx context.Context) (res *results, err error) {
	res = newResults(b.cfg)
	if b.cfg.Only == "subscriptions" {
		fmt.Fprintf(b.out, "fhirbench: subscriptions phase only, %s, %d clients, %d CPUs shared by server, NATS and clients\n", b.cfg.ServerBin, b.cfg.Clients, runtime.NumCPU())
		res.Subs, err = b.subscriptionsPhase(ctx)
		return res, err
	}
	var srv *server
	var dataDir string
	if b.cfg.URL != "" {
		if err := b.useRunning(ctx); err != nil {
			return nil, err
		}
	} else {
		dataDir, err = b.makeDataDir()
		if err != nil {
			return nil, err
		}
		defer b.dropDataDir(dataDir)
		srv, err = b.startServer(ctx, dataDir)
		if err != nil {
			return nil, err
		}
		defer func() {
			if stopErr := srv.stop(stopTimeout); stopErr != nil && err == nil {
				err = stopErr
			}
		}()
	}
	b.printHeader(dataDir)
	if err := b.preloadPatients(ctx, res); err != nil {
		return nil, err
	}
	for i, sc := range scenarios {
		sr, err := b.repeat(ctx, sc.name, uint64(i+1), func(rng *rand.Rand) op { return sc.op(b, rng) })
		if err != nil {
			return nil, err
		}
		res.Scenarios = append(res.Scenarios, sr)
	}
	if b.cfg.Synthea != "" {
		if res.Synthea, err = b.syntheaPhase(ctx); err != nil {
			return nil, err
		}
	}
	if srv == nil {
		res.RawNote = "skipped: --url targets a server fhirbench did not start, so its store cannot be opened"
		fmt.Fprintln(b.out, "raw store phase", res.RawNote)
		if b.cfg.Subscriptions > 0 {
			res.SubsNote = "skipped: the subscriptions phase starts its own server, not --url"
		}
		return res, nil
	}
	if err := srv.stop(stopTimeout); err != nil {
		return nil, err
	}
	raw, err := b.rawRead(ctx, dataDir)
	if err != nil {
		return nil, err
	}
	res.Raw = &raw
	if res.Index, err = measureIndex(ctx, dataDir); err != nil {
		return nil, err
	}
	if b.cfg.Synthea != "" && b.cfg.ImportRuns > 0 {
		fmt.Fprintln(b.out)
		if res.Tx, err = b.txPhase(ctx); err != nil {
			return nil, err
		}
		if res.Import, err = b.importPhase(ctx); err != nil {
			return nil, err
		}
	}
	if b.cfg.Subscriptions > 0 {
		if res.Subs, err = b.subscriptionsPhase(ctx); err != nil {
			return nil, err
		}
	}
	return res, nil
}

func (b *bench) useRunning(ctx context.Context) error {
	u, err := url.Parse(b.cfg.URL)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%w: --url %q is not an absolute URL", errUsage, b.cfg.URL)
	}
	b.base = strings.TrimSuffix(b.cfg.URL, "/")
	root := u.Scheme + "://" + u.Host
	return waitReady(ctx, b.client, root, b.cfg.ReadyTimeout, nil)
}

func (b *bench) makeDataDir() (string, error) {
	dir, err := os.MkdirTemp("", "fhirbench-")
	if err != nil {
		return "", fmt.Errorf("fhirbench: create the data directory: %w", err)
	}
	return dir, nil
}

func (b *bench) dropDataDir(dir string) {
	if b.cfg.KeepData {
		fmt.Fprintln(b.logw, "fhirbench: data kept in", dir)
		return
	}
	if err := os.RemoveAll(dir); err != nil {
		fmt.Fprintln(b.logw, "fhirbench: remove the data directory:", err)
	}
}

// startServer starts the server on dataDir and waits until it is ready.
func (b *bench) startServer(ctx context.Context, dataDir string) (*server, error) {
	srv, err := startServer(b.cfg.ServerBin, dataDir, b.cfg.ServerArgs, b.logw)
	if err != nil {
		return nil, err
	}
	if err := waitReady(ctx, b.client, srv.root, b.cfg.ReadyTimeout, srv.exited); err != nil {
		_ = srv.stop(stopTimeout)
		return nil, err
	}
	b.base = srv.root + "/fhir"
	return srv, nil
}

func (b *bench) printHeader(dataDir string) {
	c := b.cfg
	fmt.Fprintf(b.out, "fhirbench: %s", b.base)
	if dataDir != "" {
		fmt.Fprintf(b.out, " (%s, data in %s)", c.ServerBin, dataDir)
	}
	fmt.Fprintf(b.out, "\n%d clients, %s per run, %d runs per scenario, %d Patients preloaded, %d CPUs shared by server and clients\n\n",
		c.Clients, c.Duration, c.Runs, c.Preload, runtime.NumCPU())
}

// repeat measures a workload cfg.Runs times. stream tells the workloads' random
// sources apart; newOp builds one client's op from its source.
func (b *bench) repeat(ctx context.Context, name string, stream uint64, newOp func(rng *rand.Rand) op) (scenarioResult, error) {
	sr := scenarioResult{Name: name}
	for run := range b.cfg.Runs {
		rr := measure(ctx, b.cfg.Clients, b.cfg.Duration, func(client int) op {
			return newOp(b.clientRand(stream, run, client))
		})
		if ctx.Err() != nil {
			return sr, ctx.Err()
		}
		b.printRun(name, run, rr)
		sr.Runs = append(sr.Runs, rr)
	}
	sr.summarize()
	return sr, nil
}

// clientRand is the deterministic random source of one client in one run.
func (b *bench) clientRand(stream uint64, run, client int) *rand.Rand {
	return rand.New(rand.NewPCG(b.cfg.Seed, stream<<40|uint64(run)<<20|uint64(client)))
}

func (b *bench) printRun(name string, run int, rr runResult) {
	fmt.Fprintf(b.out, "%-8s run %d/%d: %7d requests in %.1fs, %6.0f/s, p50 %s, p99 %s, %d errors\n",
		name, run+1, b.cfg.Runs, rr.Requests, rr.Seconds, rr.RPS, rr.P50, rr.P99, rr.Errors)
	if rr.FirstError != "" {
		fmt.Fprintf(b.out, "         first error: %s\n", rr.FirstError)
	}
}

// randomRecord picks a preloaded Patient.
func (b *bench) randomRecord(rng *rand.Rand) record {
	return b.recs[rng.IntN(len(b.recs))]
}
