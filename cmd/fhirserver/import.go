package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fhirhub/fhirhub/fhir/rest"
)

const importUsage = `Usage: fhirserver import [flags] PATH...

Loads FHIR data. Each PATH is a file, or a directory walked recursively in
path order, of:
  *.json, *.json.gz      a Bundle of type transaction or batch, POSTed as it is;
                         a Bundle of type collection or searchset, or a single
                         resource, is sent as batches of PUT Type/id (resources
                         with an id) and POST Type (without)
  *.ndjson, *.ndjson.gz  one resource a line (as Bulk Data exports write them),
                         sent as batch Bundles of --batch-size PUT/POST entries
Other files in directories are skipped with a note, as are names starting with
a dot. Synthea's hospitalInformation* and practitionerInformation* files (the
Organizations and Practitioners its patient Bundles refer to) are loaded
before all others.

Where to: --server sends to a running server (its FHIR base URL). Without
--server, the data goes straight into the store of --data-dir (or of
--mongodb-uri): the server is started inside this command for the run. No
server may be running on that data directory meanwhile: stop it first, or
import through it with --server. (SQLite's locking keeps the database whole,
but the running server would not learn of SearchParameters loaded underneath
it, and the two would contend for the write lock.)

Resuming: each file loaded completely is recorded in the state file (by path,
size and modification time), written after every file; the next run skips the
files recorded unless they changed. A file that failed or was interrupted is
not recorded and is sent whole next time: its PUT entries write the same
resources again, but POST entries (resources without an id, and Synthea's
transaction entries) create new ones.

Failures do not stop the run. A transaction that fails, a batch entry refused,
an NDJSON line that is not a resource: each is listed at the end (the first 50)
and the exit status is non-zero. A request that meets a network error, 429 or
5xx is retried --retries times with growing waits. Ctrl-C stops sending, lets
the requests in flight finish (for up to --grace), prints the summary and exits
non-zero.

Flags:
`

// importOptions is the command line of fhirserver import.
type importOptions struct {
	Server           string
	Token            string // bearer token for Server
	Concurrency      int
	BatchSize        int
	State            string
	Restart          bool
	ProgressInterval time.Duration
	Retries          int
	Timeout          time.Duration
	Grace            time.Duration
	Store            Config // without Server: the store to open
	Paths            []string
}

// storeFlags are the flags that choose the store of an offline import.
var storeFlags = []string{"data-dir", "mongodb-uri", "mongodb-database", "sqlite-synchronous", "base-url"}

func parseImportFlags(args []string, getenv func(string) string, stderr io.Writer) (importOptions, error) {
	// The store flags take serve's defaults and FHIR_* environment.
	store, err := parseServeFlags(nil, getenv, io.Discard)
	if err != nil {
		return importOptions{}, err
	}
	o := importOptions{Store: store}
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, importUsage)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.Server, "server", "", "FHIR base URL of a running server to load into, e.g. http://127.0.0.1:8080/fhir")
	fs.StringVar(&o.Token, "token", "", "with --server: a bearer access token (system/*.cu or wider), for a server with authorization on; read from FHIR_IMPORT_TOKEN when not given, which keeps it out of the process list")
	fs.IntVar(&o.Concurrency, "concurrency", 4, "requests sent at the same time")
	fs.IntVar(&o.BatchSize, "batch-size", 500, "entries per batch Bundle made of NDJSON lines or a collection Bundle's resources (each batch also stays under 16 MiB)")
	fs.StringVar(&o.State, "state", "", "the state file of the files loaded; default: "+stateFileName+" in the first PATH if a directory, else in its directory (in the working directory if that cannot be written)")
	fs.BoolVar(&o.Restart, "restart", false, "ignore the state file: load every file again")
	fs.DurationVar(&o.ProgressInterval, "progress-interval", 10*time.Second, "how often progress is logged when stderr is not a terminal (on a terminal, one line is redrawn)")
	fs.IntVar(&o.Retries, "retries", 4, "times a request is retried after a network error, 429 or 5xx")
	fs.DurationVar(&o.Timeout, "timeout", 10*time.Minute, "time limit of each request")
	fs.DurationVar(&o.Grace, "grace", 10*time.Second, "after Ctrl-C, how long the requests in flight may take before they are cancelled")
	fs.StringVar(&o.Store.DataDir, "data-dir", store.DataDir, "without --server: the data directory of the embedded store to load into; no server may run on it (FHIR_DATA_DIR)")
	fs.StringVar(&o.Store.MongoURI, "mongodb-uri", store.MongoURI, "without --server: load into the MongoDB store at this URI instead (FHIR_MONGODB_URI)")
	fs.StringVar(&o.Store.MongoDatabase, "mongodb-database", store.MongoDatabase, "MongoDB database name; default: from the URI path, else fhir (FHIR_MONGODB_DATABASE)")
	fs.StringVar(&o.Store.SQLiteSynchronous, "sqlite-synchronous", store.SQLiteSynchronous, "embedded store durability while loading: FULL or NORMAL (FHIR_SQLITE_SYNCHRONOUS)")
	fs.StringVar(&o.Store.BaseURL, "base-url", store.BaseURL, "without --server: the server's public FHIR base URL, as serve has it, for the references under it (FHIR_BASE_URL)")

	// Flags may come after PATHs too: fhirserver import ./data --server URL.
	for {
		if err := fs.Parse(args); err != nil {
			return o, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if consumed := args[:len(args)-len(rest)]; len(consumed) > 0 && consumed[len(consumed)-1] == "--" {
			o.Paths = append(o.Paths, rest...)
			break
		}
		o.Paths = append(o.Paths, rest[0])
		args = rest[1:]
	}
	if len(o.Paths) == 0 {
		fs.Usage()
		return o, errors.New("import: no PATH given")
	}
	switch {
	case o.Concurrency < 1:
		return o, fmt.Errorf("--concurrency %d: at least 1", o.Concurrency)
	case o.BatchSize < 1:
		return o, fmt.Errorf("--batch-size %d: at least 1", o.BatchSize)
	case o.Retries < 0:
		return o, fmt.Errorf("--retries %d: 0 or more", o.Retries)
	case o.ProgressInterval <= 0:
		return o, fmt.Errorf("--progress-interval %s: more than 0", o.ProgressInterval)
	case o.Timeout <= 0:
		return o, fmt.Errorf("--timeout %s: more than 0", o.Timeout)
	case o.Grace < 0:
		return o, fmt.Errorf("--grace %s: 0 or more", o.Grace)
	}
	if o.Token != "" && o.Server == "" {
		return o, errors.New("--token: only with --server (an import into a data directory needs none)")
	}
	if o.Server != "" {
		if o.Token == "" {
			o.Token = getenv("FHIR_IMPORT_TOKEN")
		}
		u, err := url.Parse(o.Server)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return o, fmt.Errorf("--server %q: give the FHIR base URL, e.g. http://127.0.0.1:8080/fhir", o.Server)
		}
		o.Server = strings.TrimSuffix(o.Server, "/")
		var given []string
		fs.Visit(func(f *flag.Flag) {
			if slices.Contains(storeFlags, f.Name) {
				given = append(given, "--"+f.Name)
			}
		})
		if len(given) > 0 {
			return o, fmt.Errorf("%s: only without --server (the server given has its own store)", strings.Join(given, ", "))
		}
	}
	return o, nil
}

// importFile is a file to load.
type importFile struct {
	path    string // as found, for messages
	abs     string // the state file's key
	index   int    // in load order
	size    int64
	modTime time.Time
	ndjson  bool
	gz      bool
	first   bool // a Synthea shared file: loaded before the others

	attributed int64 // bytes counted done by the jobs sent (producer only)

	// Guarded by importer.mu.
	pending     int  // jobs made and not finished
	sent        int  // jobs handed to a sender
	produced    bool // all jobs sent
	failed      bool
	interrupted bool
	resources   int64
	done        func()
}

// skippedFile is a file of a directory that is not loaded.
type skippedFile struct{ path, reason string }

// importKind reads a file name's extension.
func importKind(name string) (ndjson, gz, ok bool) {
	n := strings.ToLower(name)
	switch {
	case strings.HasSuffix(n, ".ndjson.gz"):
		return true, true, true
	case strings.HasSuffix(n, ".ndjson"):
		return true, false, true
	case strings.HasSuffix(n, ".json.gz"):
		return false, true, true
	case strings.HasSuffix(n, ".json"):
		return false, false, true
	}
	return false, false, false
}

// syntheaShared says whether a file holds Synthea's shared resources,
// which its patient Bundles refer to.
func syntheaShared(path string) bool {
	base := filepath.Base(path)
	return strings.HasPrefix(base, "hospitalInformation") || strings.HasPrefix(base, "practitionerInformation")
}

// findImportFiles lists the files of paths in load order, and the files of
// its directories that are not loaded. A file named directly must be one
// that loads. The state file is never loaded.
func findImportFiles(paths []string, stateAbs string) ([]*importFile, []skippedFile, error) {
	var files []*importFile
	var skipped []skippedFile
	seen := map[string]bool{stateAbs: true}
	add := func(path string, fi fs.FileInfo) error {
		abs, err := filepath.Abs(path)
		if err != nil {
			return err
		}
		if seen[abs] {
			return nil
		}
		seen[abs] = true
		ndjson, gz, _ := importKind(path)
		files = append(files, &importFile{path: path, abs: abs, size: fi.Size(), modTime: fi.ModTime(), ndjson: ndjson, gz: gz, first: syntheaShared(path)})
		return nil
	}
	for _, root := range paths {
		fi, err := os.Stat(root)
		if err != nil {
			return nil, nil, err
		}
		if !fi.IsDir() {
			if _, _, ok := importKind(root); !ok || !fi.Mode().IsRegular() {
				return nil, nil, fmt.Errorf("%s: not a .json, .json.gz, .ndjson or .ndjson.gz file", root)
			}
			if err := add(root, fi); err != nil {
				return nil, nil, err
			}
			continue
		}
		err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if path != root && strings.HasPrefix(d.Name(), ".") {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if d.IsDir() {
				return nil
			}
			fi, err := os.Stat(path) // through symbolic links
			if err != nil {
				return err
			}
			if _, _, ok := importKind(path); !ok {
				skipped = append(skipped, skippedFile{path, "not .json, .json.gz, .ndjson or .ndjson.gz"})
				return nil
			}
			if !fi.Mode().IsRegular() {
				skipped = append(skipped, skippedFile{path, "not a regular file"})
				return nil
			}
			return add(path, fi)
		})
		if err != nil {
			return nil, nil, err
		}
	}
	slices.SortStableFunc(files, func(a, b *importFile) int {
		return cmp.Compare(b2i(!a.first), b2i(!b.first))
	})
	for i, f := range files {
		f.index = i
	}
	return files, skipped, nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// importTarget names where an import goes, for the state file.
func importTarget(o importOptions) string {
	switch {
	case o.Server != "":
		return o.Server
	case o.Store.MongoURI != "":
		t := "mongodb " + o.Store.MongoURI
		if u, err := url.Parse(o.Store.MongoURI); err == nil {
			t = "mongodb " + u.Redacted()
		}
		if o.Store.MongoDatabase != "" {
			t += " database " + o.Store.MongoDatabase
		}
		return t
	default:
		abs, err := filepath.Abs(o.Store.DataDir)
		if err != nil {
			abs = o.Store.DataDir
		}
		return "sqlite " + abs
	}
}

// runImport is fhirserver import.
func runImport(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	o, err := parseImportFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	statePath := o.State
	if statePath == "" {
		statePath = defaultStatePath(o.Paths[0])
	}
	stateAbs, err := filepath.Abs(statePath)
	if err != nil {
		return err
	}
	files, skipped, err := findImportFiles(o.Paths, stateAbs)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	state, err := loadImportState(statePath, importTarget(o), o.Restart)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	prog := &progress{W: stderr, TTY: isTerminal(stderr), Interval: o.ProgressInterval}

	const maxNotes = 10
	for i, s := range skipped {
		if i == maxNotes {
			prog.Notef("skipped %d more files that are not FHIR data", len(skipped)-maxNotes)
			break
		}
		prog.Notef("skipped %s: %s", s.path, s.reason)
	}
	var todo []*importFile
	var bytesTotal int64
	already, changed := 0, 0
	for _, f := range files {
		loaded, known := state.Loaded(f.abs, f.size, f.modTime)
		if loaded {
			already++
			continue
		}
		if known {
			if changed++; changed <= maxNotes {
				prog.Notef("%s changed since it was loaded: loading it again", f.path)
			}
		}
		todo = append(todo, f)
		bytesTotal += f.size
	}
	if already > 0 {
		prog.Notef("skipping %s already loaded (recorded in %s; --restart loads them again)", plural(int64(already), "file"), statePath)
	}

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = o.Concurrency
	defer tr.CloseIdleConnections()
	im := &importer{
		Base:        o.Server,
		Token:       o.Token,
		Client:      &http.Client{Transport: tr},
		Concurrency: o.Concurrency,
		BatchSize:   o.BatchSize,
		Retries:     o.Retries,
		RetryDelay:  time.Second,
		Timeout:     o.Timeout,
		Grace:       o.Grace,
		Progress:    prog,
		State:       state,
	}
	var elapsed time.Duration
	if len(todo) > 0 {
		if im.Base == "" {
			m, err := openImportStore(ctx, o.Store, prog)
			if err != nil {
				return fmt.Errorf("import: %w", err)
			}
			defer func() {
				closeCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if err := m.Close(closeCtx); err != nil {
					fmt.Fprintf(stderr, "import: close the store: %v\n", err)
				}
			}()
			im.Base = m.URL() + rest.BasePath
		} else if err := im.ping(ctx); err != nil {
			return fmt.Errorf("import: %w", err)
		}
		prog.Notef("loading %s (%s MiB) into %s; state file: %s", plural(int64(len(todo)), "file"), commas((bytesTotal+1<<19)>>20), importTarget(o), statePath)
		start := time.Now()
		prog.Open(len(todo), bytesTotal)
		im.run(ctx, todo)
		prog.Close()
		elapsed = time.Since(start)
	}

	interrupted := ctx.Err() != nil && (im.interrupted > 0 || im.notStarted > 0)
	im.summary(stdout, len(skipped), already, len(todo) > 0, elapsed)
	switch {
	case interrupted:
		return errors.New("import: interrupted")
	case im.nFailures > 0:
		return fmt.Errorf("import: %s", plural(int64(im.nFailures), "failure"))
	case im.stateErr != nil:
		return fmt.Errorf("import: %w", im.stateErr)
	}
	return nil
}

// openImportStore starts a server on cfg's store for an offline import,
// on a port of 127.0.0.1; its errors go to prog.
func openImportStore(ctx context.Context, cfg Config, prog *progress) (*Main, error) {
	if cfg.MongoURI == "" {
		if _, err := os.Stat(filepath.Join(cfg.DataDir, "fhir.db-wal")); err == nil {
			prog.Notef("note: %s is open or was not closed cleanly (fhir.db-wal exists); if a server runs on it, stop it or import with --server", cfg.DataDir)
		}
	}
	cfg.Listen = "127.0.0.1:0"
	// The in-process server is this command's own, on loopback for the run.
	cfg.Auth = "off"
	cfg.DebugListen = ""
	cfg.LogLevel = "error"
	cfg.LogFormat = "text"
	// No NATS: the server's relay publishes what is imported when it runs.
	cfg.NATSOff = true
	m := NewMain(cfg, noteWriter{prog})
	if err := m.Open(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

// noteWriter prints each write (a log line) as a note.
type noteWriter struct{ p *progress }

func (w noteWriter) Write(b []byte) (int, error) {
	w.p.Notef("%s", strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// maxFailuresListed caps the failures the summary lists.
const maxFailuresListed = 50

// summary prints what the run did, then its failures.
func (im *importer) summary(w io.Writer, notData, already int, ran bool, elapsed time.Duration) {
	im.mu.Lock()
	defer im.mu.Unlock()
	fmt.Fprintf(w, "import: %s loaded, %d skipped (%d already loaded, %d not FHIR data), %d failed",
		plural(int64(im.loaded), "file"), notData+already, already, notData, im.failed)
	if im.interrupted > 0 || im.notStarted > 0 {
		fmt.Fprintf(w, ", %d interrupted, %d not started", im.interrupted, im.notStarted)
	}
	fmt.Fprintln(w)
	if !ran {
		return
	}
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(im.resources) / s
	}
	fmt.Fprintf(w, "import: %s resources in %s, %s resources/s\n", commas(im.resources), roundDuration(elapsed), commas(int64(rate+0.5)))
	if im.nFailures == 0 {
		return
	}
	fmt.Fprintf(w, "import: %s:\n", plural(int64(im.nFailures), "failure"))
	list := slices.Clone(im.failures)
	slices.SortStableFunc(list, func(a, b importFailure) int {
		return cmp.Or(cmp.Compare(a.file.index, b.file.index), cmp.Compare(a.num, b.num))
	})
	for _, f := range list {
		where := f.file.path
		if f.where != "" {
			where += " " + f.where
		}
		fmt.Fprintf(w, "  %s: %s\n", where, f.msg)
	}
	if more := im.nFailures - len(list); more > 0 {
		fmt.Fprintf(w, "  … and %s more\n", commas(int64(more)))
	}
}
