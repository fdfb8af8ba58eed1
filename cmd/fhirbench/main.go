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
	}
	if c.Synthea != "" {
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
