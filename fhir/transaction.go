package fhir

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Transactor is an optional power of a Store: apply several writes as one,
// all or none, each with the compare-and-swap on its version that Write has.
// A version conflict on any write fails them all with an error wrapping
// ErrVersionConflict (a *TxConflict says which). A transaction writes each
// resource at most once.
type Transactor interface {
	WriteAll(ctx context.Context, ws []Write) ([]Change, error)
}

// TxConflict is the error of a WriteAll whose write Index lost its version
// race; it wraps ErrVersionConflict.
type TxConflict struct {
	Index int
	Err   error
}

func (e *TxConflict) Error() string {
	return fmt.Sprintf("write %d of the transaction: %v", e.Index, e.Err)
}

func (e *TxConflict) Unwrap() error { return ErrVersionConflict }

// TxWrite is one write of a transaction, its target resolved: the bundle layer
// has already picked the ids of new resources, matched conditional URLs and
// rewritten references, so each write names one resource.
type TxWrite struct {
	// Op is OpCreate (a new resource with the ID given, which must not exist),
	// OpUpdate (create or update, like PUT) or OpDelete.
	Op       Op
	Type, ID string
	Body     []byte // the resource, for OpCreate and OpUpdate
	IfMatch  *int64 // the version the client expects to replace
	Entry    int    // the index of the Bundle entry, for errors
}

// TxResult is what a transaction did to one resource.
type TxResult struct {
	Resource Resource
	Created  bool // a resource came into being (201)
	// Unchanged: a delete of a resource that was missing or already deleted,
	// which stores nothing.
	Unchanged bool
}

// AtEntry turns err into an *Error located at Bundle entry i: diagnostics
// start with "Bundle.entry[i]" and expressions are prefixed with the
// entry's resource path.
func AtEntry(err error, i int) *Error {
	e := AsError(err)
	if e == nil {
		return nil
	}
	prefix := "Bundle.entry[" + strconv.Itoa(i) + "]"
	out := &Error{Status: e.HTTPStatus(), Header: e.Header, cause: e.cause}
	for _, is := range e.Issues {
		c := is
		if !strings.HasPrefix(c.Diagnostics, "Bundle.entry[") {
			c.Diagnostics = prefix + ": " + c.Diagnostics
		}
		c.Expression = nil
		for _, x := range is.Expression {
			if strings.HasPrefix(x, "Bundle.") {
				c.Expression = append(c.Expression, x)
			} else {
				// Patient.name[0] → Bundle.entry[i].resource.name[0]
				head, rest, _ := strings.Cut(x, ".")
				if head != "" && head[0] >= 'A' && head[0] <= 'Z' && !strings.ContainsAny(head, "[(") {
					x = rest
				}
				path := prefix + ".resource"
				if x != "" {
					path += "." + x
				}
				c.Expression = append(c.Expression, path)
			}
		}
		if len(c.Expression) == 0 {
			c.Expression = []string{prefix}
		}
		out.Issues = append(out.Issues, c)
	}
	return out
}

// Transaction applies writes all or none: every body is validated and
// indexed, every If-Match checked against the current version, and the
// store commits the lot in one transaction. A write that lost a race to
// another writer (and had no If-Match) makes the whole transaction start
// again, a few times. Errors are located at the failing write's Entry.
func (s *Service) Transaction(ctx context.Context, ws []TxWrite) ([]TxResult, error) {
	tx, ok := s.Store.(Transactor)
	if !ok {
		return nil, NotSupported(501, "this store cannot apply transactions")
	}
	seen := make(map[string]int, len(ws))
	docs := make([]*Document, len(ws))
	index := make([][]IndexEntry, len(ws))
	// One lastUpdated for the whole transaction, decided now so that each
	// resource is indexed (with its meta as stored) in the first pass, after
	// which only its raw members are kept: the decoded tree costs about ten
	// times the JSON, and a transaction may hold 10,000 resources.
	now := s.now()
	hasIfMatch := false
	for i, w := range ws {
		if err := s.checkType(w.Type); err != nil {
			return nil, AtEntry(err, w.Entry)
		}
		if !ValidID(w.ID) {
			return nil, AtEntry(Invalid("id", "%q is not a valid id", w.ID), w.Entry)
		}
		key := w.Type + "/" + w.ID
		if j, dup := seen[key]; dup {
			return nil, AtEntry(Invalid("", "%s is the target of entries %d and %d; a transaction may write a resource once", key, ws[j].Entry, w.Entry), w.Entry)
		}
		seen[key] = i
		hasIfMatch = hasIfMatch || w.IfMatch != nil
	}
	// Parse, validate and index in parallel: this is most of the work.
	if err := parallel(ctx, len(ws), func(i int) error {
		w := ws[i]
		if w.Op == OpDelete {
			return nil
		}
		doc, err := s.parseBody(ctx, w.Type, w.Body)
		if err != nil {
			return AtEntry(err, w.Entry)
		}
		if w.Op != OpCreate && doc.ID != "" && doc.ID != w.ID { // a create ignores the body's id
			return AtEntry(Invalid(w.Type+".id", "the body's id %q does not match the id %q the entry writes", doc.ID, w.ID), w.Entry)
		}
		// The index does not depend on the version number (no search
		// parameter reads meta.versionId), so 1 stands in for it here.
		entries, err := s.index(w.Type, stored(doc, w.ID, 1, now))
		if err != nil {
			return AtEntry(err, w.Entry)
		}
		doc.Compact()
		docs[i], index[i] = doc, entries
		return nil
	}); err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if err := backoff(ctx, attempt); err != nil {
				return nil, err
			}
		}
		writes, at, results, err := s.prepareTx(ctx, ws, docs, index, now)
		if err != nil {
			return nil, err
		}
		if len(writes) == 0 {
			return results, nil
		}
		chs, err := tx.WriteAll(ctx, writes)
		if err == nil {
			for i, k := range at {
				if k >= 0 {
					results[i].Resource = chs[k].Resource
				}
			}
			if s.Committed != nil {
				for _, ch := range chs {
					s.Committed(ch)
				}
			}
			return results, nil
		}
		var conflict *TxConflict
		if !errors.Is(err, ErrVersionConflict) {
			return nil, s.storeErr("transaction", err)
		}
		entry := -1
		if errors.As(err, &conflict) {
			for i, k := range at {
				if k == conflict.Index {
					entry = ws[i].Entry
				}
			}
		}
		if hasIfMatch || attempt >= maxRetries {
			e := Conflict("a resource of the transaction changed while it was being written; nothing was stored, try again")
			if entry >= 0 {
				return nil, AtEntry(e, entry)
			}
			return nil, e
		}
	}
}

// prepareTx reads the current version of each target and builds the store
// writes, in ws order; at[i] is the index of ws[i]'s write (-1: none), and
// results holds each outcome so far (the committed change is put in after the
// commit).
func (s *Service) prepareTx(ctx context.Context, ws []TxWrite, docs []*Document, index [][]IndexEntry, now time.Time) (writes []Write, at []int, results []TxResult, err error) {
	writes = make([]Write, 0, len(ws))
	at = make([]int, len(ws))
	results = make([]TxResult, len(ws))
	current := make([]Resource, len(ws))
	found := make([]bool, len(ws))
	if err := parallel(ctx, len(ws), func(i int) error {
		w := ws[i]
		cur, err := s.Store.Read(ctx, w.Type, w.ID)
		switch {
		case err == nil:
			current[i], found[i] = cur, true
		case errors.Is(err, ErrNotFound):
		default:
			return s.storeErr("read", err)
		}
		return nil
	}); err != nil {
		return nil, nil, nil, err
	}
	stamp := FormatInstant(now)
	for i, w := range ws {
		at[i] = -1
		cur, exists := current[i], found[i]
		version := int64(0)
		if exists {
			version = cur.Version
		}
		if w.IfMatch != nil && *w.IfMatch != version {
			if version == 0 {
				return nil, nil, nil, AtEntry(PreconditionFailed(IssueConflict, "ifMatch names version %d of %s/%s, which does not exist", *w.IfMatch, w.Type, w.ID), w.Entry)
			}
			return nil, nil, nil, AtEntry(PreconditionFailed(IssueConflict, "ifMatch names version %d of %s/%s but the current version is %d", *w.IfMatch, w.Type, w.ID, version), w.Entry)
		}
		switch w.Op {
		case OpDelete:
			if !exists || cur.Deleted() {
				results[i] = TxResult{Resource: cur, Unchanged: true}
				continue
			}
			at[i] = len(writes)
			writes = append(writes, Write{Type: w.Type, ID: w.ID, Version: version + 1, LastUpdated: now, Op: OpDelete})
			results[i] = TxResult{Resource: Resource{Type: w.Type, ID: w.ID}}
		default:
			if w.Op == OpCreate && exists {
				return nil, nil, nil, AtEntry(Conflict("%s/%s already exists", w.Type, w.ID), w.Entry)
			}
			if s.RequireIfMatch && w.IfMatch == nil && w.Op != OpCreate && exists && !cur.Deleted() {
				return nil, nil, nil, AtEntry(PreconditionRequired("this server requires ifMatch on updates of existing resources"), w.Entry)
			}
			created := !exists || cur.Deleted()
			wr := Write{Type: w.Type, ID: w.ID, Version: version + 1, LastUpdated: now, Op: OpUpdate}
			if created {
				wr.Op = OpCreate
			}
			wr.JSON = docs[i].Encode(w.ID, strconv.FormatInt(wr.Version, 10), stamp)
			at[i] = len(writes)
			writes = append(writes, wr)
			results[i] = TxResult{Resource: Resource{Type: w.Type, ID: w.ID}, Created: created}
		}
	}
	for i, k := range at {
		if k >= 0 && docs[i] != nil {
			writes[k].Index = index[i]
		}
	}
	if s.Authorize != nil {
		for i, k := range at {
			if k < 0 {
				continue
			}
			var replaced *Resource
			if found[i] && !current[i].Deleted() {
				replaced = &current[i]
			}
			if err := s.Authorize(ctx, writes[k], replaced); err != nil {
				if fe := AtEntry(err, ws[i].Entry); fe != nil {
					return nil, nil, nil, fe
				}
				return nil, nil, nil, err
			}
		}
	}
	return writes, at, results, nil
}

// parallel runs f(0..n-1) on up to GOMAXPROCS goroutines and returns the
// error of the lowest index that failed.
func parallel(ctx context.Context, n int, f func(i int) error) error {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		for i := range n {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := f(i); err != nil {
				return err
			}
		}
		return nil
	}
	errs := make([]error, n)
	var next sync.Mutex
	i := 0
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				next.Lock()
				j := i
				i++
				next.Unlock()
				if j >= n || ctx.Err() != nil {
					return
				}
				errs[j] = f(j)
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
