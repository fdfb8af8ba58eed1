package search

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fhirhub/fhirhub/fhir"
)

// Reindexing runs $reindex jobs: each recomputes the index entries of every
// current resource of some types (after SearchParameters were added or
// changed) in the background, with progress to be read while it runs.
// Create with NewReindexing; Close cancels running jobs and waits for them.
type Reindexing struct {
	engine *Engine
	store  fhir.Reindexer

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	jobs   map[string]*Job
}

// Job is one $reindex run.
type Job struct {
	ID        string
	Types     []string
	Started   time.Time
	processed atomic.Int64
	total     atomic.Int64
	failed    atomic.Int64

	mu       sync.Mutex
	status   string // running, completed, failed, cancelled
	finished time.Time
	err      string
}

// JobStatus is a snapshot of a job.
type JobStatus struct {
	ID, Status, Error        string
	Types                    []string
	Processed, Total, Failed int64
	Started, Finished        time.Time
}

// Status returns a snapshot of the job.
func (j *Job) Status() JobStatus {
	j.mu.Lock()
	defer j.mu.Unlock()
	return JobStatus{ID: j.ID, Status: j.status, Error: j.err, Types: j.Types, Processed: j.processed.Load(),
		Total: j.total.Load(), Failed: j.failed.Load(), Started: j.Started, Finished: j.finished}
}

func (j *Job) finish(status, err string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.status, j.err, j.finished = status, err, time.Now().UTC()
}

// NewReindexing returns a job runner over the engine's store; store must be
// the same store, able to reindex.
func NewReindexing(engine *Engine, store fhir.Reindexer) *Reindexing {
	ctx, cancel := context.WithCancel(context.Background())
	return &Reindexing{engine: engine, store: store, ctx: ctx, cancel: cancel, jobs: map[string]*Job{}}
}

// Start begins reindexing types (all the registry knows when empty).
func (r *Reindexing) Start(types []string) (*Job, error) {
	if len(types) == 0 {
		types = r.engine.Registry.Types()
	}
	for _, t := range types {
		if _, ok := r.engine.Registry.byTypeHas(t); !ok {
			return nil, fhir.Invalid("type", "%q is not a resource type", t)
		}
	}
	if r.ctx.Err() != nil {
		return nil, fhir.Unavailable(r.ctx.Err(), "search: the server is shutting down")
	}
	j := &Job{ID: fhir.NewUUID(), Types: types, Started: time.Now().UTC(), status: "running"}
	r.mu.Lock()
	r.jobs[j.ID] = j
	r.mu.Unlock()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.run(j)
	}()
	return j, nil
}

// Get returns a job by id.
func (r *Reindexing) Get(id string) (*Job, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	j, ok := r.jobs[id]
	return j, ok
}

// Close cancels running jobs and waits for them to stop.
func (r *Reindexing) Close() {
	r.cancel()
	r.wg.Wait()
}

func (r *Reindexing) run(j *Job) {
	ctx := r.ctx
	e := r.engine
	for _, typ := range j.Types {
		q := &Query{Type: typ}
		res, err := e.Backend.Search(ctx, q, Page{Count: 1, Total: true})
		if err != nil {
			j.finish(status(ctx), fmt.Sprintf("count %s: %v", typ, err))
			return
		}
		j.total.Add(res.Total)
	}
	for _, typ := range j.Types {
		page := Page{Count: 500}
		for {
			res, err := e.Backend.Search(ctx, &Query{Type: typ}, page)
			if err != nil {
				j.finish(status(ctx), fmt.Sprintf("read %s: %v", typ, err))
				return
			}
			for _, rs := range res.Resources {
				if err := r.reindexOne(ctx, rs); err != nil {
					if ctx.Err() != nil {
						j.finish("cancelled", ctx.Err().Error())
						return
					}
					j.failed.Add(1)
				}
				j.processed.Add(1)
			}
			if !res.More || len(res.Cursors) == 0 {
				break
			}
			page.After = &res.Cursors[len(res.Cursors)-1]
		}
	}
	j.finish("completed", "")
}

func status(ctx context.Context) string {
	if ctx.Err() != nil {
		return "cancelled"
	}
	return "failed"
}

func (r *Reindexing) reindexOne(ctx context.Context, rs fhir.Resource) error {
	doc, err := fhir.ParseDocument(rs.JSON)
	if err != nil {
		return err
	}
	entries, err := r.engine.Indexer.Index(rs.Type, doc.Value)
	if err != nil {
		return err
	}
	return r.store.Reindex(ctx, rs.Type, rs.ID, rs.Version, entries)
}

// LoadSearchParameters registers the SearchParameter resources stored in the
// server (at start-up: those created through the API earlier).
func (e *Engine) LoadSearchParameters(ctx context.Context) (int, error) {
	if _, ok := e.Registry.byTypeHas("SearchParameter"); !ok {
		return 0, nil
	}
	n := 0
	page := Page{Count: 500}
	for {
		res, err := e.Backend.Search(ctx, &Query{Type: "SearchParameter"}, page)
		if err != nil {
			return n, fmt.Errorf("search: load SearchParameter resources: %w", err)
		}
		for _, r := range res.Resources {
			doc, err := fhir.ParseDocument(r.JSON)
			if err != nil {
				continue
			}
			if e.Registry.CheckResource(doc.Value, e.compileCheck) != nil {
				continue
			}
			if err := e.Registry.SetResource(r.ID, doc.Value); err == nil {
				n++
			}
		}
		if !res.More || len(res.Cursors) == 0 {
			return n, nil
		}
		page.After = &res.Cursors[len(res.Cursors)-1]
	}
}

// compileCheck compiles a FHIRPath expression (for CheckResource).
func (e *Engine) compileCheck(expr string) error {
	_, err := e.Indexer.compile(expr)
	return err
}

// CheckWrite vets a resource before it is stored (fhir.Service.Check):
// SearchParameter resources must define a usable parameter.
func (e *Engine) CheckWrite(_ context.Context, typ string, value map[string]any) error {
	if typ != "SearchParameter" {
		return nil
	}
	return e.Registry.CheckResource(value, e.compileCheck)
}

// Committed updates the registry after a SearchParameter write
// (fhir.Service.Committed): new writes are indexed with it at once.
func (e *Engine) Committed(ch fhir.Change) {
	if ch.Type != "SearchParameter" {
		return
	}
	if ch.Deleted() {
		e.Registry.RemoveResource(ch.ID)
		return
	}
	doc, err := fhir.ParseDocument(ch.JSON)
	if err != nil {
		return
	}
	_ = e.Registry.SetResource(ch.ID, doc.Value)
}
