package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fhirhub/fhirhub/fhir/search/searchtest"
	_ "modernc.org/sqlite" // the driver of the dbstat query (sqlitestore registers it too)
)

// defaultSynthea is where the Synthea sample set sits beside the repository.
const defaultSynthea = "../shared/synthea/smart-r4"

// syntheaStream tells the search scenarios' random sources apart.
const syntheaStream = 200

// The search targets; informational like the others.
const (
	targetTokenP50 = 10 * time.Millisecond
	targetChainP50 = 50 * time.Millisecond
	targetCountP50 = 100 * time.Millisecond
	countMinimum   = 10000 // the count search must count at least this many
)

// syntheaResult is the search phase: the load of the Synthea set over HTTP
// and the search scenarios on it.
type syntheaResult struct {
	Dir        string           `json:"dir"`
	Resources  int              `json:"resources"`
	Patients   int              `json:"patients"`
	Load       runResult        `json:"load"`
	Searches   []scenarioResult `json:"searches"`
	CountTotal int64            `json:"count_total"` // matches the count search counted
}

// syntheaData is what the searches need from the load.
type syntheaData struct {
	patients []string // ids
	family   string   // the most common family name of the Patients
}

// A syntheaSearch is one search scenario: its name, the query it sends
// (for the report) and the request path of each call.
type syntheaSearch struct {
	name, query string
	path        func(rng *rand.Rand) string
}

// The searches' names, which the targets refer to.
const (
	searchToken   = "token"
	searchPatient = "patient+date"
	searchString  = "string"
	searchChain   = "chain"
	searchCount   = "count"
	searchRevinc  = "revinclude"
)

// countQuery is the accurate count. No Observation code of the SMART set
// has 10,000 Observations (the most frequent, 72514-3 pain severity, has
// 5,681; 8302-2 body height 5,317), so it counts a category: 54,953
// laboratory Observations.
const countQuery = "Observation?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory&_total=accurate"

func (d *syntheaData) searches() []syntheaSearch {
	fixed := func(q string) func(*rand.Rand) string { return func(*rand.Rand) string { return "/" + q } }
	patient := func(rng *rand.Rand) string { return d.patients[rng.IntN(len(d.patients))] }
	return []syntheaSearch{
		{searchToken, "Observation?code=http://loinc.org|8302-2", fixed("Observation?code=http://loinc.org|8302-2")},
		{searchPatient, "Observation?patient=X&date=ge2015", func(rng *rand.Rand) string {
			return "/Observation?patient=" + patient(rng) + "&date=ge2015"
		}},
		{searchString, "Patient?name=smi", fixed("Patient?name=smi")},
		{searchChain, "Encounter?subject.name=" + d.family, fixed("Encounter?subject.name=" + url.QueryEscape(d.family))},
		{searchCount, countQuery, fixed(countQuery)},
		{searchRevinc, "Patient?_id=X&_revinclude=Observation:patient", func(rng *rand.Rand) string {
			return "/Patient?_id=" + patient(rng) + "&_revinclude=Observation:patient"
		}},
	}
}

// syntheaPhase loads the Synthea set and measures the searches.
func (b *bench) syntheaPhase(ctx context.Context) (*syntheaResult, error) {
	sr := &syntheaResult{Dir: b.cfg.Synthea}
	fmt.Fprintf(b.out, "\nsynthea: loading %s with %d clients (PUT /fhir/{type}/{id})\n", b.cfg.Synthea, b.cfg.Clients)
	data, n, rr, err := b.loadSynthea(ctx)
	if err != nil {
		return nil, err
	}
	sr.Resources, sr.Patients, sr.Load = n, len(data.patients), rr
	fmt.Fprintf(b.out, "synthea: %d resources (%d Patients) in %.1fs, %.0f/s, p50 %s, p99 %s, %d errors\n",
		n, len(data.patients), rr.Seconds, rr.RPS, rr.P50, rr.P99, rr.Errors)
	if rr.FirstError != "" {
		fmt.Fprintf(b.out, "         first error: %s\n", rr.FirstError)
	}
	if len(data.patients) == 0 {
		return nil, errors.New("fhirbench: the Synthea load stored no Patient")
	}
	total, err := b.total(ctx, "/"+countQuery)
	if err != nil {
		return nil, err
	}
	sr.CountTotal = total
	fmt.Fprintf(b.out, "synthea: the count search counts %d matches\n\n", total)
	for i, s := range data.searches() {
		res, err := b.repeat(ctx, s.name, syntheaStream+uint64(i), func(rng *rand.Rand) op {
			return func(ctx context.Context) error {
				_, err := b.send(ctx, http.MethodGet, s.path(rng), nil)
				return err
			}
		})
		if err != nil {
			return nil, err
		}
		res.Query = s.query
		sr.Searches = append(sr.Searches, res)
	}
	return sr, nil
}

// loadSynthea PUTs every resource of the set with cfg.Clients clients while
// one goroutine reads the Bundles.
func (b *bench) loadSynthea(parent context.Context) (*syntheaData, int, runResult, error) {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	type item struct {
		path string
		body []byte
	}
	items := make(chan item, 4*b.cfg.Clients)
	data := &syntheaData{}
	families := map[string]int{}
	var (
		n       int
		readErr error
	)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		defer close(items)
		n, readErr = searchtest.Synthea(b.cfg.Synthea, func(typ, id string, body []byte) error {
			if typ == "Patient" {
				data.patients = append(data.patients, id)
				var p struct {
					Name []struct {
						Family string `json:"family"`
					} `json:"name"`
				}
				if err := json.Unmarshal(body, &p); err == nil {
					for _, nm := range p.Name {
						families[nm.Family]++
					}
				}
			}
			select {
			case items <- item{"/" + typ + "/" + id, body}:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	results := make([]clientResult, b.cfg.Clients)
	var wg sync.WaitGroup
	start := time.Now()
	for c := range results {
		wg.Go(func() {
			r := clientResult{latencies: make([]time.Duration, 0, 1<<15)}
			for it := range items {
				t0 := time.Now()
				_, err := b.send(ctx, http.MethodPut, it.path, it.body)
				if err != nil && ctx.Err() != nil {
					break // interrupted, not failed
				}
				r.latencies = append(r.latencies, time.Since(t0))
				if err != nil {
					if r.errors++; r.firstErr == nil {
						r.firstErr = err
					}
				}
			}
			results[c] = r
		})
	}
	wg.Wait()
	cancel() // a client that stopped early must not leave the reader blocked
	<-readDone
	rr := summarize(results, time.Since(start))
	if err := parent.Err(); err != nil {
		return nil, 0, rr, err
	}
	if readErr != nil {
		return nil, 0, rr, fmt.Errorf("fhirbench: read the Synthea set: %w", readErr)
	}
	best := -1
	for f, c := range families {
		if c > best || c == best && f < data.family {
			data.family, best = f, c
		}
	}
	return data, n, rr, nil
}

// total GETs a search and returns its Bundle.total (-1 when absent).
func (b *bench) total(ctx context.Context, path string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.base+path, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", fhirJSON)
	resp, err := b.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("fhirbench: GET %s: %s: %.300s", path, resp.Status, body)
	}
	var bundle struct {
		Total *int64 `json:"total"`
	}
	if err := json.Unmarshal(body, &bundle); err != nil {
		return 0, fmt.Errorf("fhirbench: GET %s: %w", path, err)
	}
	if bundle.Total == nil {
		return -1, nil
	}
	return *bundle.Total, nil
}

// indexSize is the size of the search index on disk.
type indexSize struct {
	IndexBytes  int64   `json:"index_bytes"` // the idx_* tables and their indexes
	DBBytes     int64   `json:"db_bytes"`    // the whole database
	Resources   int64   `json:"current_resources"`
	PerResource float64 `json:"index_bytes_per_resource"`
}

// measureIndex opens the stopped server's database and sums the pages of
// the index tables with the dbstat virtual table.
func measureIndex(ctx context.Context, dataDir string) (*indexSize, error) {
	path := filepath.Join(dataDir, "fhir.db")
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("fhirbench: the index size: %w", err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return nil, fmt.Errorf("fhirbench: open %s: %w", path, err)
	}
	defer db.Close()
	var is indexSize
	for _, q := range []struct {
		sql string
		dst *int64
	}{
		{`SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name LIKE 'idx\_%' ESCAPE '\'`, &is.IndexBytes},
		{`SELECT COALESCE(SUM(pgsize), 0) FROM dbstat`, &is.DBBytes},
		{`SELECT COUNT(*) FROM current WHERE deleted = 0`, &is.Resources},
	} {
		if err := db.QueryRowContext(ctx, q.sql).Scan(q.dst); err != nil {
			return nil, fmt.Errorf("fhirbench: the index size (%s): %w", q.sql, err)
		}
	}
	if is.Resources > 0 {
		is.PerResource = float64(is.IndexBytes) / float64(is.Resources)
	}
	return &is, nil
}
