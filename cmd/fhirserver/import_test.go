package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// startImportServer runs a server in-process on a new data directory and
// returns its FHIR base URL.
func startImportServer(t *testing.T) string {
	t.Helper()
	m := NewMain(testConfig(t.TempDir()), io.Discard)
	if err := m.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	return m.URL() + "/fhir"
}

// writeTestFile writes content to path, gzipped when path ends in .gz.
func writeTestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	b := []byte(content)
	if strings.HasSuffix(path, ".gz") {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(b)
		zw.Close()
		b = buf.Bytes()
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// syncBuffer is a bytes.Buffer safe to read while the command writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// importCmd runs fhirserver import with args.
func importCmd(ctx context.Context, stderr *syncBuffer, args ...string) (stdout string, err error) {
	var out bytes.Buffer
	if stderr == nil {
		stderr = &syncBuffer{}
	}
	err = run(ctx, append([]string{"import"}, args...), &out, stderr)
	return out.String(), err
}

// countOf is the total of GET base/query with _summary=count.
func countOf(t *testing.T, base, query string) int {
	t.Helper()
	sep := "?"
	if strings.Contains(query, "?") {
		sep = "&"
	}
	var b struct{ Total int }
	getJSON(t, base+"/"+query+sep+"_summary=count", &b)
	return b.Total
}

func getJSON(t *testing.T, u string, v any) int {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %d, %v", u, resp.StatusCode, err)
	}
	return resp.StatusCode
}

// txPatient is a transaction Bundle creating one Patient with identifier
// urn:test|value.
func txPatient(value string) string {
	return fmt.Sprintf(`{"resourceType":"Bundle","type":"transaction","entry":[
		{"fullUrl":"urn:uuid:%s","resource":{"resourceType":"Patient","identifier":[{"system":"urn:test","value":%q}]},"request":{"method":"POST","url":"Patient"}}]}`,
		"00000000-0000-4000-8000-000000000001", value)
}

// writeDataset writes two transaction Bundles (urn:uuid references between
// their entries), an NDJSON file in a subdirectory, a LICENSE and a dot file.
func writeDataset(t *testing.T, dir string) {
	writeTestFile(t, filepath.Join(dir, "tx1.json"), `{"resourceType":"Bundle","type":"transaction","entry":[
		{"fullUrl":"urn:uuid:11111111-0000-4000-8000-000000000001","resource":{"resourceType":"Patient","identifier":[{"system":"urn:test","value":"tx1"}]},"request":{"method":"POST","url":"Patient"}},
		{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"identifier":[{"system":"urn:test","value":"tx1-obs"}],"subject":{"reference":"urn:uuid:11111111-0000-4000-8000-000000000001"}},"request":{"method":"POST","url":"Observation"}}]}`)
	writeTestFile(t, filepath.Join(dir, "tx2.json.gz"), `{"resourceType":"Bundle","type":"transaction","entry":[
		{"fullUrl":"urn:uuid:22222222-0000-4000-8000-000000000003","resource":{"resourceType":"Observation","status":"final","code":{"text":"y"},"identifier":[{"system":"urn:test","value":"tx2-obs"}],
			"subject":{"reference":"urn:uuid:22222222-0000-4000-8000-000000000001"},"encounter":{"reference":"urn:uuid:22222222-0000-4000-8000-000000000002"}},"request":{"method":"POST","url":"Observation"}},
		{"fullUrl":"urn:uuid:22222222-0000-4000-8000-000000000001","resource":{"resourceType":"Patient","identifier":[{"system":"urn:test","value":"tx2"}]},"request":{"method":"POST","url":"Patient"}},
		{"fullUrl":"urn:uuid:22222222-0000-4000-8000-000000000002","resource":{"resourceType":"Encounter","status":"finished","class":{"code":"AMB"},"subject":{"reference":"urn:uuid:22222222-0000-4000-8000-000000000001"}},"request":{"method":"POST","url":"Encounter"}}]}`)
	writeTestFile(t, filepath.Join(dir, "bulk", "data.ndjson.gz"), strings.Join([]string{
		`{"resourceType":"Patient","id":"nd-1","identifier":[{"system":"urn:test","value":"nd-1"}]}`,
		`{"resourceType":"Patient","id":"nd-2"}`,
		`{"resourceType":"Patient","identifier":[{"system":"urn:test","value":"nd-3"}]}`,
		`{"resourceType":"Observation","id":"nd-obs","status":"final","code":{"text":"z"},"subject":{"reference":"Patient/nd-1"}}`,
		`{"resourceType":"Patient","identifier":[{"system":"urn:test","value":"nd-4"}]}`,
	}, "\n")+"\n")
	writeTestFile(t, filepath.Join(dir, "LICENSE"), "Apache License 2.0\n")
	writeTestFile(t, filepath.Join(dir, ".hidden.json"), "not JSON at all")
}

func TestImportDirectory(t *testing.T) {
	base := startImportServer(t)
	dir := t.TempDir()
	writeDataset(t, dir)

	stderr := &syncBuffer{}
	out, err := importCmd(t.Context(), stderr, "--server", base, "--batch-size", "2", dir)
	if err != nil {
		t.Fatalf("import: %v\n%s%s", err, out, stderr)
	}
	for _, want := range []string{"3 files loaded", "1 not FHIR data", "0 failed", "10 resources"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(stderr.String(), "LICENSE: not .json") {
		t.Errorf("no note of the LICENSE skipped:\n%s", stderr)
	}
	counts := map[string]int{"Patient": 6, "Observation": 3, "Encounter": 1}
	for typ, want := range counts {
		if got := countOf(t, base, typ); got != want {
			t.Errorf("%s: got %d, want %d", typ, got, want)
		}
	}
	// The urn:uuid references of tx2 point at what its entries created.
	var obs struct {
		Entry []struct {
			Resource struct {
				Subject, Encounter struct{ Reference string }
			}
		}
	}
	getJSON(t, base+"/Observation?identifier=urn:test|tx2-obs", &obs)
	if len(obs.Entry) != 1 {
		t.Fatalf("Observation tx2-obs: got %d, want 1", len(obs.Entry))
	}
	var pat struct {
		ResourceType string
		Identifier   []struct{ Value string }
	}
	ref := obs.Entry[0].Resource.Subject.Reference
	if code := getJSON(t, base+"/"+ref, &pat); code != 200 || len(pat.Identifier) != 1 || pat.Identifier[0].Value != "tx2" {
		t.Errorf("subject %q: %d %+v, want the Patient tx2", ref, code, pat)
	}
	var enc struct{ ResourceType string }
	if ref := obs.Entry[0].Resource.Encounter.Reference; getJSON(t, base+"/"+ref, &enc) != 200 || enc.ResourceType != "Encounter" {
		t.Errorf("encounter %q does not resolve", ref)
	}
	statePath := filepath.Join(dir, stateFileName)
	if _, err := os.Stat(statePath); err != nil {
		t.Fatalf("no state file in the directory: %v", err)
	}

	t.Run("SecondRunSkips", func(t *testing.T) {
		stderr := &syncBuffer{}
		out, err := importCmd(t.Context(), stderr, "--server", base, dir)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "0 files loaded, 4 skipped (3 already loaded, 1 not FHIR data)") {
			t.Errorf("got summary\n%s", out)
		}
		if !strings.Contains(stderr.String(), "skipping 3 files already loaded") {
			t.Errorf("no note of the files skipped:\n%s", stderr)
		}
		if got := countOf(t, base, "Patient"); got != 6 {
			t.Errorf("Patients: got %d, want 6", got)
		}
	})
	t.Run("ChangedFileLoadsAgain", func(t *testing.T) {
		later := time.Now().Add(time.Hour)
		if err := os.Chtimes(filepath.Join(dir, "tx1.json"), later, later); err != nil {
			t.Fatal(err)
		}
		stderr := &syncBuffer{}
		out, err := importCmd(t.Context(), stderr, "--server", base, dir)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "1 file loaded") || !strings.Contains(stderr.String(), "tx1.json changed since it was loaded") {
			t.Errorf("got\n%s%s", out, stderr)
		}
	})
	t.Run("OtherTargetRefused", func(t *testing.T) {
		_, err := importCmd(t.Context(), nil, "--server", "http://127.0.0.1:1/fhir", dir)
		if err == nil || !strings.Contains(err.Error(), "--restart") {
			t.Errorf("got %v, want the state file refused", err)
		}
	})
}

func TestImportFailures(t *testing.T) {
	base := startImportServer(t)
	dir := t.TempDir()
	writeTestFile(t, filepath.Join(dir, "a-good.json"), txPatient("good"))
	writeTestFile(t, filepath.Join(dir, "b-bad-tx.json"), `{"resourceType":"Bundle","type":"transaction","entry":[
		{"resource":{"resourceType":"Patient","identifier":[{"system":"urn:test","value":"bad-tx"}]},"request":{"method":"POST","url":"Patient"}},
		{"resource":{"resourceType":"Patient","birthDate":"yesterday"},"request":{"method":"POST","url":"Patient"}}]}`)
	writeTestFile(t, filepath.Join(dir, "c-batch.json"), `{"resourceType":"Bundle","type":"batch","entry":[
		{"resource":{"resourceType":"Patient","identifier":[{"system":"urn:test","value":"batch-0"}]},"request":{"method":"POST","url":"Patient"}},
		{"resource":{"resourceType":"Patient","gender":"robot"},"request":{"method":"POST","url":"Patient"}}]}`)
	writeTestFile(t, filepath.Join(dir, "d-lines.ndjson"), strings.Join([]string{
		`{"resourceType":"Patient","id":"l1"}`,
		`{not json`,
		`{"resourceType":"Patient","id":"l3","gender":"robot"}`,
		``,
		`{"resourceType":"Patient","identifier":[{"system":"urn:test","value":"l5"}]}`,
	}, "\r\n"))

	out, err := importCmd(t.Context(), nil, "--server", base, dir)
	if err == nil || !strings.Contains(err.Error(), "4 failures") {
		t.Errorf("got %v, want 4 failures", err)
	}
	for _, want := range []string{
		"1 file loaded", "3 failed",
		"b-bad-tx.json: 422 Unprocessable Entity: Bundle.entry[1]: \"birthDate\"",
		"c-batch.json entry 1: 422 Unprocessable Entity: \"gender\"",
		"d-lines.ndjson line 2: not a FHIR resource in JSON",
		"d-lines.ndjson line 3 (Patient/l3): 422 Unprocessable Entity: \"gender\"",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the summary lacks %q:\n%s", want, out)
		}
	}
	// The failures are listed by file, in load order.
	if i, j := strings.Index(out, "b-bad-tx.json:"), strings.Index(out, "d-lines.ndjson line 2"); i < 0 || j < i {
		t.Errorf("failures not in file order:\n%s", out)
	}
	if got := countOf(t, base, "Patient"); got != 4 { // good, batch-0, l1, l5
		t.Errorf("Patients: got %d, want 4", got)
	}
	if got := countOf(t, base, "Patient?identifier=urn:test|bad-tx"); got != 0 {
		t.Errorf("the failed transaction wrote %d Patients", got)
	}
	st, err := loadImportState(filepath.Join(dir, stateFileName), base, false)
	if err != nil {
		t.Fatal(err)
	}
	var recorded []string
	for k := range st.files {
		recorded = append(recorded, filepath.Base(k))
	}
	if !slices.Equal(recorded, []string{"a-good.json"}) {
		t.Errorf("state records %v, want only a-good.json", recorded)
	}
}

func TestImportOffline(t *testing.T) {
	src, dataDir := t.TempDir(), t.TempDir()
	writeDataset(t, src)
	statePath := filepath.Join(t.TempDir(), "state.json")
	out, err := importCmd(t.Context(), nil, "--data-dir", dataDir, "--state", statePath, src)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "3 files loaded") {
		t.Errorf("got\n%s", out)
	}
	if b, err := os.ReadFile(statePath); err != nil || !strings.Contains(string(b), `"target":"sqlite `) {
		t.Errorf("state file: %v\n%s", err, b)
	}
	m := NewMain(testConfig(dataDir), io.Discard)
	if err := m.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	if got := countOf(t, m.URL()+"/fhir", "Patient"); got != 6 {
		t.Errorf("Patients served from the data directory: got %d, want 6", got)
	}
}

// gate is a proxy in front of a server's root URL: each POST is passed to
// hook with its number (from 1) and goes on to the server when hook returns
// true. It returns the proxy's FHIR base.
func gate(t *testing.T, base string, hook func(n int, w http.ResponseWriter, r *http.Request) bool) string {
	t.Helper()
	u, err := url.Parse(strings.TrimSuffix(base, "/fhir"))
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && !hook(int(n.Add(1)), w, r) {
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/fhir"
}

func stateFiles(t *testing.T, path, target string) []string {
	t.Helper()
	st, err := loadImportState(path, target, false)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for k := range st.files {
		names = append(names, filepath.Base(k))
	}
	slices.Sort(names)
	return names
}

func TestImportInterrupted(t *testing.T) {
	t.Run("InFlightFinishes", func(t *testing.T) {
		base := startImportServer(t)
		dir := t.TempDir()
		for i := 1; i <= 5; i++ {
			writeTestFile(t, filepath.Join(dir, fmt.Sprintf("tx-%d.json", i)), txPatient(fmt.Sprint(i)))
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		proxied := gate(t, base, func(n int, _ http.ResponseWriter, _ *http.Request) bool {
			if n == 3 {
				cancel() // Ctrl-C while the third file is in flight
			}
			return true
		})
		out, err := importCmd(ctx, nil, "--server", proxied, "--concurrency", "1", dir)
		if err == nil || !strings.Contains(err.Error(), "interrupted") {
			t.Errorf("got %v, want interrupted", err)
		}
		if !strings.Contains(out, "3 files loaded") || !strings.Contains(out, "0 interrupted, 2 not started") {
			t.Errorf("got\n%s", out)
		}
		statePath := filepath.Join(dir, stateFileName)
		if got, want := stateFiles(t, statePath, proxied), []string{"tx-1.json", "tx-2.json", "tx-3.json"}; !slices.Equal(got, want) {
			t.Errorf("state: got %v, want %v", got, want)
		}
		out, err = importCmd(t.Context(), nil, "--server", proxied, dir)
		if err != nil || !strings.Contains(out, "2 files loaded") {
			t.Errorf("rerun: %v\n%s", err, out)
		}
		if got := countOf(t, base, "Patient"); got != 5 {
			t.Errorf("Patients: got %d, want 5", got)
		}
	})
	t.Run("GraceExpires", func(t *testing.T) {
		base := startImportServer(t)
		dir := t.TempDir()
		writeTestFile(t, filepath.Join(dir, "tx-1.json"), txPatient("1"))
		writeTestFile(t, filepath.Join(dir, "tx-2.json"), txPatient("2"))
		var lines []string
		for i := 1; i <= 4; i++ {
			lines = append(lines, fmt.Sprintf(`{"resourceType":"Patient","id":"n%d"}`, i))
		}
		writeTestFile(t, filepath.Join(dir, "x.ndjson"), strings.Join(lines, "\n"))
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var hold atomic.Bool
		hold.Store(true)
		proxied := gate(t, base, func(n int, _ http.ResponseWriter, r *http.Request) bool {
			if n == 4 && hold.Load() { // the NDJSON file's second batch
				cancel()
				io.Copy(io.Discard, r.Body) // so that the server sees the client leave
				<-r.Context().Done()        // never answers: the importer gives up after --grace
				return false
			}
			return true
		})
		out, err := importCmd(ctx, nil, "--server", proxied, "--concurrency", "1", "--batch-size", "2", "--grace", "50ms", dir)
		if err == nil || !strings.Contains(err.Error(), "interrupted") {
			t.Errorf("got %v, want interrupted", err)
		}
		if !strings.Contains(out, "2 files loaded") || !strings.Contains(out, "1 interrupted") {
			t.Errorf("got\n%s", out)
		}
		statePath := filepath.Join(dir, stateFileName)
		if got, want := stateFiles(t, statePath, proxied), []string{"tx-1.json", "tx-2.json"}; !slices.Equal(got, want) {
			t.Errorf("state: got %v, want %v", got, want)
		}
		hold.Store(false)
		out, err = importCmd(t.Context(), nil, "--server", proxied, dir)
		if err != nil || !strings.Contains(out, "1 file loaded") || !strings.Contains(out, "2 already loaded") {
			t.Errorf("rerun: %v\n%s", err, out)
		}
		if got := countOf(t, base, "Patient"); got != 6 {
			t.Errorf("Patients: got %d, want 6", got)
		}
	})
}

func TestImportProgressLog(t *testing.T) {
	base := startImportServer(t)
	dir := t.TempDir()
	writeTestFile(t, filepath.Join(dir, "a.json"), txPatient("a"))
	writeTestFile(t, filepath.Join(dir, "b.json"), txPatient("b"))
	stderr := &syncBuffer{}
	proxied := gate(t, base, func(n int, _ http.ResponseWriter, _ *http.Request) bool {
		if n == 2 {
			// Hold the second file until a progress line shows the first.
			deadline := time.Now().Add(10 * time.Second)
			for !strings.Contains(stderr.String(), "import: files 1/2, 1 resources") {
				if time.Now().After(deadline) {
					t.Errorf("no progress line within 10s:\n%s", stderr)
					break
				}
				time.Sleep(time.Millisecond)
			}
		}
		return true
	})
	if out, err := importCmd(t.Context(), stderr, "--server", proxied, "--concurrency", "1", "--progress-interval", "5ms", dir); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if strings.Contains(stderr.String(), "\r") {
		t.Errorf("terminal output on a pipe:\n%q", stderr)
	}
}

func TestProgressTerminal(t *testing.T) {
	var buf bytes.Buffer
	p := &progress{W: &buf, TTY: true, Interval: time.Hour}
	p.Open(2, 100)
	p.Add(10, 1, 50)
	p.mu.Lock()
	p.show()
	p.mu.Unlock()
	p.Notef("a note")
	p.Close()
	got := buf.String()
	if !strings.HasPrefix(got, "\rfiles 0/2, 10 resources, ") || !strings.Contains(got, "1 failure, ") {
		t.Errorf("got %q", got)
	}
	if !strings.Contains(got, "\r\x1b[Ka note\n\rfiles 0/2") || !strings.HasSuffix(got, "\r\x1b[K") {
		t.Errorf("the note does not clear and redraw the line: %q", got)
	}
}

func TestImportRetries(t *testing.T) {
	base := startImportServer(t)
	dir := t.TempDir()
	writeTestFile(t, filepath.Join(dir, "a.json"), txPatient("a"))
	busy := func(w http.ResponseWriter) bool {
		w.Header().Set("Retry-After", "0")
		w.Header().Set("Content-Type", "application/fhir+json")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"transient","diagnostics":"busy"}]}`)
		return false
	}
	t.Run("Recovers", func(t *testing.T) {
		proxied := gate(t, base, func(n int, w http.ResponseWriter, _ *http.Request) bool {
			if n <= 2 {
				return busy(w)
			}
			return true
		})
		stderr := &syncBuffer{}
		out, err := importCmd(t.Context(), stderr, "--server", proxied, "--state", filepath.Join(t.TempDir(), "s.json"), dir)
		if err != nil || !strings.Contains(out, "1 file loaded") {
			t.Errorf("%v\n%s", err, out)
		}
		if !strings.Contains(stderr.String(), "503 Service Unavailable: busy; retrying") {
			t.Errorf("no note of the retries:\n%s", stderr)
		}
	})
	t.Run("GivesUp", func(t *testing.T) {
		proxied := gate(t, base, func(_ int, w http.ResponseWriter, _ *http.Request) bool { return busy(w) })
		out, err := importCmd(t.Context(), nil, "--server", proxied, "--retries", "2", "--state", filepath.Join(t.TempDir(), "s.json"), dir)
		if err == nil || !strings.Contains(out, "a.json: 503 Service Unavailable: busy (3 attempts)") {
			t.Errorf("%v\n%s", err, out)
		}
	})
	t.Run("NotAServer", func(t *testing.T) {
		_, err := importCmd(t.Context(), nil, "--server", "http://127.0.0.1:1/fhir", "--state", filepath.Join(t.TempDir(), "s.json"), dir)
		if err == nil || !strings.Contains(err.Error(), "metadata") {
			t.Errorf("got %v, want the server check to fail", err)
		}
	})
}

// TestImportOtherJSON loads a collection Bundle and a lone resource as
// batches, and refuses a document Bundle.
func TestImportOtherJSON(t *testing.T) {
	base := startImportServer(t)
	dir := t.TempDir()
	writeTestFile(t, filepath.Join(dir, "collection.json"), `{"resourceType":"Bundle","type":"collection","entry":[
		{"fullUrl":"http://x/Patient/c1","resource":{"resourceType":"Patient","id":"c1"}},
		{"resource":{"resourceType":"Patient","identifier":[{"system":"urn:test","value":"c2"}]}},
		{"resource":{"resourceType":"Observation","id":"c3","status":"final","code":{"text":"c"},"subject":{"reference":"Patient/c1"}}}]}`)
	writeTestFile(t, filepath.Join(dir, "patient.json.gz"), `{"resourceType":"Patient","id":"lone"}`)
	writeTestFile(t, filepath.Join(dir, "zdocument.json"), `{"resourceType":"Bundle","type":"document","entry":[]}`)
	out, err := importCmd(t.Context(), nil, "--server", base, "--batch-size", "2", dir)
	if err == nil || !strings.Contains(out, "2 files loaded") || !strings.Contains(out, `zdocument.json: a Bundle of type "document" is not loaded`) {
		t.Errorf("%v\n%s", err, out)
	}
	var p struct{ ID string }
	if getJSON(t, base+"/Patient/c1", &p) != 200 || getJSON(t, base+"/Patient/lone", &p) != 200 || getJSON(t, base+"/Observation/c3", &p) != 200 {
		t.Error("the resources with ids are not where PUT puts them")
	}
	if got := countOf(t, base, "Patient"); got != 3 {
		t.Errorf("Patients: got %d, want 3", got)
	}
}

// TestReadNDJSON checks the batches made of NDJSON lines.
func TestReadNDJSON(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.ndjson.gz")
	writeTestFile(t, path, "\xef\xbb\xbf"+`{"resourceType":"Patient","id":"a"}`+"\r\n\r\n"+
		`{"resourceType":"Observation","status":"final"}`+"\n"+
		`["not","a","resource"]`+"\n"+
		`{"resourceType":"Patient","id":"a b"}`)
	fi, _ := os.Stat(path)
	f := &importFile{path: path, abs: path, size: fi.Size(), ndjson: true, gz: true}
	im := &importer{BatchSize: 2, Progress: &progress{W: io.Discard}}
	var jobs []*importJob
	err := im.readNDJSON(t.Context(), f, func(j *importJob) error {
		j.file = f
		jobs = append(jobs, j)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 2 || im.nFailures != 1 || im.failures[0].where != "line 4" {
		t.Fatalf("got %d jobs, failures %+v; want 2 jobs and a failure at line 4", len(jobs), im.failures)
	}
	var total int64
	var urls, wheres []string
	for _, j := range jobs {
		total += j.bytes
		var b struct {
			Type  string
			Entry []struct {
				Resource json.RawMessage
				Request  struct{ Method, URL string }
			}
		}
		if err := json.Unmarshal(j.body, &b); err != nil || b.Type != "batch" {
			t.Fatalf("not a batch: %v\n%s", err, j.body)
		}
		for i, e := range b.Entry {
			urls = append(urls, e.Request.Method+" "+e.Request.URL)
			w, _ := j.where(i)
			wheres = append(wheres, w)
		}
	}
	if want := []string{"PUT Patient/a", "POST Observation", "PUT Patient/a%20b"}; !slices.Equal(urls, want) {
		t.Errorf("requests: got %q, want %q", urls, want)
	}
	if want := []string{"line 1 (Patient/a)", "line 3 (Observation)", "line 5 (Patient/a b)"}; !slices.Equal(wheres, want) {
		t.Errorf("entries: got %q, want %q", wheres, want)
	}
	if total != f.size {
		t.Errorf("bytes counted: got %d, want the file's %d", total, f.size)
	}
	if jobs[1].span != "line 5" || jobs[0].span != "lines 1-3" {
		t.Errorf("spans: got %q, %q", jobs[0].span, jobs[1].span)
	}
}

func TestParseImportFlags(t *testing.T) {
	env := func(string) string { return "" }
	t.Run("Defaults", func(t *testing.T) {
		o, err := parseImportFlags([]string{"dir"}, env, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if o.Concurrency != 4 || o.BatchSize != 500 || o.ProgressInterval != 10*time.Second || o.Store.DataDir != "./data" || !slices.Equal(o.Paths, []string{"dir"}) {
			t.Errorf("got %+v", o)
		}
	})
	t.Run("FlagsAfterPaths", func(t *testing.T) {
		o, err := parseImportFlags([]string{"a", "--server", "http://h/fhir/", "b", "--", "--c"}, env, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if o.Server != "http://h/fhir" || !slices.Equal(o.Paths, []string{"a", "b", "--c"}) {
			t.Errorf("got server %q, paths %q", o.Server, o.Paths)
		}
	})
	t.Run("Environment", func(t *testing.T) {
		o, err := parseImportFlags([]string{"dir"}, func(k string) string { return map[string]string{"FHIR_DATA_DIR": "/d"}[k] }, io.Discard)
		if err != nil || o.Store.DataDir != "/d" {
			t.Errorf("got %q, %v; want /d", o.Store.DataDir, err)
		}
	})
	for _, bad := range [][]string{
		{},
		{"--concurrency", "0", "dir"},
		{"--batch-size", "0", "dir"},
		{"--server", "localhost:8080", "dir"},
		{"--server", "http://h/fhir", "--data-dir", "d", "dir"},
		{"--progress-interval", "0s", "dir"},
	} {
		t.Run("Bad"+strings.Join(bad, ""), func(t *testing.T) {
			if _, err := parseImportFlags(bad, env, io.Discard); err == nil {
				t.Errorf("%q accepted", bad)
			}
		})
	}
}

func TestImportSynthea(t *testing.T) {
	if testing.Short() {
		t.Skip("loads Synthea files")
	}
	const src = "../../../shared/synthea/smart-r4"
	names := []string{"hospitalInformation1559319163815.json.gz", "practitionerInformation1559319163815.json.gz", "patient-0001.json.gz"}
	dir := t.TempDir()
	for _, n := range names {
		abs, err := filepath.Abs(filepath.Join(src, n))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(abs); err != nil {
			t.Skipf("no Synthea sample set: %v", err)
		}
		if err := os.Symlink(abs, filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	base := startImportServer(t)
	out, err := importCmd(t.Context(), nil, "--server", base, dir)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "3 files loaded") || !strings.Contains(out, "384 resources") {
		t.Errorf("got\n%s", out)
	}
	if got := countOf(t, base, "Patient"); got != 1 {
		t.Errorf("Patients: got %d, want 1", got)
	}
	if got := countOf(t, base, "Practitioner"); got < 102 {
		t.Errorf("Practitioners: got %d, want at least 102", got)
	}
	t.Log(strings.TrimSpace(out))
}

// TestImportToken sends --token, or FHIR_IMPORT_TOKEN, as a bearer token
// with every request.
func TestImportToken(t *testing.T) {
	base := startImportServer(t)
	dir := t.TempDir()
	writeTestFile(t, filepath.Join(dir, "a.json"), txPatient("a"))
	var mu sync.Mutex
	var seen []string
	proxied := gate(t, base, func(_ int, _ http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		return true
	})
	for _, c := range []struct {
		name string
		args []string
		env  string
		want string
	}{
		{"Flag", []string{"--token", "t1"}, "t2", "Bearer t1"},
		{"Environment", nil, "t2", "Bearer t2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			mu.Lock()
			seen = nil
			mu.Unlock()
			args := append([]string{"import", "--server", proxied, "--restart", "--state", filepath.Join(t.TempDir(), "s.json")}, c.args...)
			var out, errOut bytes.Buffer
			getenv := func(k string) string {
				if k == "FHIR_IMPORT_TOKEN" {
					return c.env
				}
				return ""
			}
			if err := runImport(t.Context(), append(args[1:], dir), getenv, &out, &errOut); err != nil {
				t.Fatalf("import: %v\n%s%s", err, out.String(), errOut.String())
			}
			mu.Lock()
			defer mu.Unlock()
			if len(seen) != 1 || seen[0] != c.want {
				t.Errorf("Authorization of the POSTs: got %q, want [%q]", seen, c.want)
			}
		})
	}
	if _, err := parseImportFlags([]string{"--token", "x", "--data-dir", dir, dir}, func(string) string { return "" }, io.Discard); err == nil {
		t.Error("--token without --server: got no error")
	}
}
