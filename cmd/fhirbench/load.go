package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The load phases measure bulk loading into an empty embedded store: the
// import command loading the whole Synthea set over HTTP (median of
// --import-runs runs, each on a fresh server), and one transaction of
// 10,000 or more entries.

// loadResult is the import phase.
type loadResult struct {
	Dir        string    `json:"dir"`
	Resources  int       `json:"resources"`
	Seconds    []float64 `json:"seconds"`      // per run
	RPS        float64   `json:"rps"`          // median
	PeakRSSMiB float64   `json:"peak_rss_mib"` // median of the runs' server peaks
}

// txResult is the large-transaction phase.
type txResult struct {
	Entries    int     `json:"entries"`
	BundleMiB  float64 `json:"bundle_mib"`
	Seconds    float64 `json:"seconds"`
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	BeforeMiB  float64 `json:"rss_before_mib"`
}

// importTarget is the import throughput target (resources/s).
const importTarget = 3000

// importPhase runs the import command over the Synthea set into fresh servers.
func (b *bench) importPhase(ctx context.Context) (*loadResult, error) {
	lr := &loadResult{Dir: b.cfg.Synthea}
	n, files, err := countEntries(b.cfg.Synthea)
	if err != nil {
		return nil, err
	}
	lr.Resources = n
	var rates, peaks []float64
	for run := 1; run <= b.cfg.ImportRuns; run++ {
		secs, peak, err := b.importOnce(ctx, files)
		if err != nil {
			return nil, err
		}
		lr.Seconds = append(lr.Seconds, secs)
		rates = append(rates, float64(n)/secs)
		peaks = append(peaks, peak)
		fmt.Fprintf(b.out, "import   run %d/%d: %d resources in %.1fs, %.0f/s, server peak RSS %.0f MiB\n", run, b.cfg.ImportRuns, n, secs, float64(n)/secs, peak)
	}
	lr.RPS, lr.PeakRSSMiB = median(rates), median(peaks)
	return lr, nil
}

func (b *bench) importOnce(ctx context.Context, files []string) (float64, float64, error) {
	dir, err := b.makeDataDir()
	if err != nil {
		return 0, 0, err
	}
	defer b.dropDataDir(dir)
	srv, err := b.startServer(ctx, filepath.Join(dir, "data"))
	if err != nil {
		return 0, 0, err
	}
	defer srv.stop(stopTimeout)
	// The Bundles by name: the set holds a license text named .json.gz,
	// which the import would report as a failure.
	args := append([]string{"import", "--server", b.base, "--concurrency", "4",
		"--state", filepath.Join(dir, "import-state.json"), "--restart"}, files...)
	cmd := exec.CommandContext(ctx, b.cfg.ServerBin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, 0, fmt.Errorf("fhirbench: import: %v\n%s", err, tail(out.String(), 2000))
	}
	secs := time.Since(start).Seconds()
	peak, err := peakRSS(srv.cmd.Process.Pid)
	if err != nil {
		return 0, 0, err
	}
	return secs, peak, nil
}

// txPhase posts one transaction made of whole Synthea patient Bundles, at
// least 10,000 entries, to a fresh server (after the shared Organization and
// Practitioner Bundles, which the patients' conditional references need).
func (b *bench) txPhase(ctx context.Context) (*txResult, error) {
	files, err := filepath.Glob(filepath.Join(b.cfg.Synthea, "*.json.gz"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("fhirbench: no Synthea Bundles in %s", b.cfg.Synthea)
	}
	slices.Sort(files)
	var shared, patients []string
	for _, f := range files {
		if strings.Contains(filepath.Base(f), "Information") {
			shared = append(shared, f)
		} else {
			patients = append(patients, f)
		}
	}
	var entries []json.RawMessage
	for _, f := range patients {
		if !isGzip(f) {
			continue
		}
		es, err := bundleEntries(f)
		if err != nil {
			return nil, err
		}
		entries = append(entries, es...)
		if len(entries) >= 10000 {
			break
		}
	}
	body, err := json.Marshal(map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": entries})
	if err != nil {
		return nil, err
	}
	dir, err := b.makeDataDir()
	if err != nil {
		return nil, err
	}
	defer b.dropDataDir(dir)
	srv, err := b.startServer(ctx, filepath.Join(dir, "data"))
	if err != nil {
		return nil, err
	}
	defer srv.stop(stopTimeout)
	for _, f := range shared {
		raw, err := readGz(f)
		if err != nil {
			return nil, err
		}
		if _, err := b.postBundle(ctx, raw); err != nil {
			return nil, err
		}
	}
	tr := &txResult{Entries: len(entries), BundleMiB: float64(len(body)) / (1 << 20)}
	if tr.BeforeMiB, err = currentRSS(srv.cmd.Process.Pid); err != nil {
		return nil, err
	}
	start := time.Now()
	if _, err := b.postBundle(ctx, body); err != nil {
		return nil, err
	}
	tr.Seconds = time.Since(start).Seconds()
	if tr.PeakRSSMiB, err = peakRSS(srv.cmd.Process.Pid); err != nil {
		return nil, err
	}
	fmt.Fprintf(b.out, "transaction of %d entries (%.1f MiB): %.1fs, server RSS %.0f MiB before, peak %.0f MiB\n",
		tr.Entries, tr.BundleMiB, tr.Seconds, tr.BeforeMiB, tr.PeakRSSMiB)
	return tr, nil
}

func (b *bench) postBundle(ctx context.Context, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.base, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("Prefer", "return=minimal")
	client := &http.Client{Timeout: 30 * time.Minute}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fhirbench: POST a Bundle: %w", err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fhirbench: POST a Bundle: status %d: %s", resp.StatusCode, tail(string(out), 500))
	}
	return out, nil
}

// countEntries counts the entries of every Bundle in dir and lists those
// Bundles. Files that are not gzip data are left out (the SMART set's
// patient-0338.json.gz is the upstream license text).
func countEntries(dir string) (int, []string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json.gz"))
	if err != nil {
		return 0, nil, err
	}
	n := 0
	var bundles []string
	for _, f := range files {
		if !isGzip(f) {
			continue
		}
		es, err := bundleEntries(f)
		if err != nil {
			return 0, nil, err
		}
		n += len(es)
		bundles = append(bundles, f)
	}
	return n, bundles, nil
}

func isGzip(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var magic [2]byte
	_, err = io.ReadFull(f, magic[:])
	return err == nil && magic == [2]byte{0x1f, 0x8b}
}

func bundleEntries(path string) ([]json.RawMessage, error) {
	raw, err := readGz(path)
	if err != nil {
		return nil, err
	}
	var b struct {
		Entry []json.RawMessage `json:"entry"`
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		return nil, fmt.Errorf("fhirbench: %s: %w", path, err)
	}
	return b.Entry, nil
}

func readGz(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("fhirbench: %s: %w", path, err)
	}
	return io.ReadAll(zr)
}

// peakRSS is the process's peak resident set (VmHWM) in MiB.
func peakRSS(pid int) (float64, error) { return procStatus(pid, "VmHWM:") }

// currentRSS is the process's resident set (VmRSS) in MiB.
func currentRSS(pid int) (float64, error) { return procStatus(pid, "VmRSS:") }

func procStatus(pid int, field string) (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("fhirbench: read the server's memory use: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				return 0, err
			}
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("fhirbench: no %s in /proc/%d/status", field, pid)
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
