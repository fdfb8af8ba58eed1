// Command fhirbench is the load generator of fhirserver. It starts the server
// binary on a free loopback port with a fresh data directory (or targets a
// running server with --url), preloads Patients, and measures the create, read,
// update, vread and history interactions with concurrent keep-alive clients:
// requests, errors, throughput and exact p50/p99 latencies per run, and the
// median over runs per interaction. It then stops the server, opens its store
// in-process and measures raw Store.Read throughput with the same workload, so
// the cost of the HTTP layer can be read off the ratio of the two.
//
// With --synthea (by default the sample set in ../shared/synthea/smart-r4
// when it exists), it then loads the Synthea transaction Bundles with PUTs and
// measures searches on them (token, reference and date, string, chain,
// accurate count, _revinclude); after the raw store phase it reports the size
// of the search index on disk per current resource.
//
// With --subscriptions N (default 1000; 0 skips it), it last starts another
// fresh server and an HTTP receiver on 127.0.0.1 in this process, creates N
// rest-hook Subscriptions (70% per patient, 25% per code, 5% per type),
// writes Observations, Patients and Encounters open loop at --sub-rate for
// --sub-duration, and reports the notifications expected and received and
// the latency from each create's 201 to the receiver; then it tries 250, 500
// and 1000 changes/s for 10 s each for the highest sustained rate. --only
// subscriptions runs that phase alone.
//
// Usage:
//
//	fhirbench [flags] [-- extra fhirserver serve flags]
//
// Any request that fails (a transport error or a status other than 2xx) is
// reported and makes fhirbench exit with status 1; the throughput and latency
// targets it prints are informational.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// errUsage marks errors in the command line.
var errUsage = errors.New("fhirbench: usage")

// config is what the command line asks for.
type config struct {
	ServerBin    string
	ServerArgs   []string // extra flags for fhirserver serve, after --
	URL          string   // FHIR base of a running server; empty: start one
	KeepData     bool
	Preload      int
	Clients      int
	Duration     time.Duration
	Runs         int
	Seed         uint64
	ReadyTimeout time.Duration
	JSONPath     string
	Synthea      string // the Synthea set to load and search; empty: no search phase
	ImportRuns   int    // runs of the import phase (0: skip it and the large transaction)
	Only         string // "subscriptions": run only that phase

	Subscriptions int           // subscriptions of the subscriptions phase (0: skip it)
	SubRate       float64       // changes/s of its main step
	SubDuration   time.Duration // length of its main step
	SubSearch     bool          // search for the maximum sustainable rate after the main step
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("fhirbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: fhirbench [flags] [-- extra fhirserver serve flags]")
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.ServerBin, "server-bin", "bin/fhirserver", "fhirserver binary to start")
	fs.StringVar(&cfg.URL, "url", "", "FHIR base of an already running server, e.g. http://127.0.0.1:8080/fhir (skips the raw store phase)")
	fs.BoolVar(&cfg.KeepData, "keep-data", false, "keep the temporary data directory of the started server")
	fs.IntVar(&cfg.Preload, "preload", 10000, "Patients to create before the scenarios")
	fs.IntVar(&cfg.Clients, "clients", 8, "concurrent clients")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "length of one run of a scenario")
	fs.IntVar(&cfg.Runs, "runs", 3, "runs per scenario (the report shows the median)")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "seed of the clients' random sources")
	fs.DurationVar(&cfg.ReadyTimeout, "ready-timeout", 60*time.Second, "how long to wait for /readyz")
	fs.StringVar(&cfg.JSONPath, "json", "", "also write the results as JSON to this file")
	fs.StringVar(&cfg.Synthea, "synthea", syntheaDefault(), `directory of Synthea transaction Bundles (*.json.gz) to load and search after the scenarios; "" skips the search phase`)
	fs.IntVar(&cfg.ImportRuns, "import-runs", 3, "runs of the import of the Synthea set into a fresh server (0 skips it and the large transaction)")
	fs.StringVar(&cfg.Only, "only", "", `run one phase only: "subscriptions" (skips the preload, the scenarios, the Synthea and raw store phases)`)
	fs.IntVar(&cfg.Subscriptions, "subscriptions", 1000, "rest-hook subscriptions of the subscriptions phase, on a fresh server (0 skips the phase)")
	fs.Float64Var(&cfg.SubRate, "sub-rate", subTargetRate, "changes/s written in the subscriptions phase")
	fs.DurationVar(&cfg.SubDuration, "sub-duration", 20*time.Second, "how long the subscriptions phase writes at --sub-rate")
	fs.BoolVar(&cfg.SubSearch, "sub-search", true, "after it, try 250, 500 and 1000 changes/s for 10s each and report the highest sustained")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, err
		}
		return cfg, fmt.Errorf("%w: %v", errUsage, err)
	}
	cfg.ServerArgs = fs.Args()
	return cfg, cfg.validate()
}

func (c config) validate() error {
	switch {
	case c.Preload < 1:
		return fmt.Errorf("%w: --preload must be at least 1", errUsage)
	case c.Clients < 1:
		return fmt.Errorf("%w: --clients must be at least 1", errUsage)
	case c.Duration <= 0:
		return fmt.Errorf("%w: --duration must be positive", errUsage)
	case c.Runs < 1:
		return fmt.Errorf("%w: --runs must be at least 1", errUsage)
	case c.URL != "" && len(c.ServerArgs) > 0:
		return fmt.Errorf("%w: server flags after -- need a started server, not --url", errUsage)
	case c.Only != "" && c.Only != "subscriptions":
		return fmt.Errorf("%w: --only %q: want subscriptions", errUsage, c.Only)
	case c.Only == "subscriptions" && (c.Subscriptions < 1 || c.URL != ""):
		return fmt.Errorf("%w: --only subscriptions needs --subscriptions of at least 1 and a started server, not --url", errUsage)
	case c.Subscriptions < 0:
		return fmt.Errorf("%w: --subscriptions must not be negative", errUsage)
	case c.Subscriptions > 0 && (c.SubRate <= 0 || c.SubDuration <= 0):
		return fmt.Errorf("%w: --sub-rate and --sub-duration must be positive", errUsage)
	}
	if c.Synthea != "" && c.Only == "" {
		if fi, err := os.Stat(c.Synthea); err != nil || !fi.IsDir() {
			return fmt.Errorf("%w: --synthea %q is not a directory", errUsage, c.Synthea)
		}
	}
	return nil
}

// syntheaDefault is the default of --synthea: the sample set beside the
// repository when it is there.
func syntheaDefault() string {
	if fi, err := os.Stat(defaultSynthea); err == nil && fi.IsDir() {
		return defaultSynthea
	}
	return ""
}

// run is the whole program; main only maps its error to an exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	b := newBench(cfg, stdout, stderr)
	res, err := b.run(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return errors.New("fhirbench: interrupted")
		}
		return err
	}
	res.check()
	res.print(stdout)
	if cfg.JSONPath != "" {
		if err := res.writeJSON(cfg.JSONPath); err != nil {
			return err
		}
	}
	if res.Errors > 0 {
		return fmt.Errorf("fhirbench: %d requests failed; first: %s", res.Errors, res.FirstError)
	}
	return nil
}
