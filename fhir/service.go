package fhir

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	mrand "math/rand/v2"
	"strconv"
	"sync"
	"time"
)

// Validator checks resources before they are stored. conformance provides the
// JSON Schema one.
type Validator interface {
	// KnownType reports whether typ is a resource type the server accepts.
	KnownType(typ string) bool
	// Validate checks a decoded resource of type typ; it returns an *Error listing
	// every issue, or nil.
	Validate(ctx context.Context, typ string, value map[string]any) error
}

// Indexer computes the search index entries of a resource (fhir/search
// provides it from the SearchParameters).
type Indexer interface {
	Index(typ string, value map[string]any) ([]IndexEntry, error)
}

// Finder resolves the criteria of conditional interactions with the full
// search (fhir/search provides it).
type Finder interface {
	FindMatches(ctx context.Context, typ, criteria string, limit int) ([]Resource, error)
}

// Service is the one write path and the read path of the domain: every create,
// update and delete (from REST, bundles, import or PATCH) ends in its methods,
// which validate, assign ids, versions and meta, and append through the Store.
type Service struct {
	Store     Store
	Validator Validator
	// Now is the clock (default time.Now).
	Now func() time.Time
	// NewID makes server-assigned ids (default: time-ordered random UUIDs).
	NewID func() string
	// RequireIfMatch refuses updates and deletes without If-Match (428).
	RequireIfMatch bool
	// Finder resolves conditional criteria; nil: the Store's Find, which
	// knows _id, identifier and _lastUpdated.
	Finder Finder
	// Indexer computes index entries; nil indexes only identifiers (enough
	// for conditional criteria).
	Indexer Indexer
	// Check, when set, vets a resource before it is stored (after schema
	// validation): the search registry checks SearchParameter resources.
	Check func(ctx context.Context, typ string, value map[string]any) error
	// Committed, when set, is told of every committed write, synchronously
	// and briefly (the search registry learns of SearchParameter changes).
	Committed func(ch Change)
	// OnStoreError is told of every failure of the store (for metrics).
	OnStoreError func(op string, err error)
	// Authorize, when set, vets every write just before the store gets it:
	// w as it will be stored (with its Index; a delete has neither JSON nor
	// Index) and current, the version it replaces (nil when the resource
	// does not exist or is deleted). An error fails the write; in a
	// transaction, the whole transaction (located at the write's entry).
	// The REST layer enforces SMART scopes with it: checked here, the
	// version judged is the one the write's version check replaces.
	Authorize func(ctx context.Context, w Write, current *Resource) error

	condMu sync.Mutex
	cond   map[string]*sync.Mutex
	// stripes serialise writers of one resource in this process, so they do
	// not burn their retries on each other; the store's version check still
	// guards against other processes.
	stripes [256]sync.Mutex
}

func (s *Service) lockResource(typ, id string) func() {
	h := fnv.New32a()
	h.Write([]byte(typ))
	h.Write([]byte{'/'})
	h.Write([]byte(id))
	mu := &s.stripes[h.Sum32()%uint32(len(s.stripes))]
	mu.Lock()
	return mu.Unlock
}

// backoff waits a little, more after each lost race, with jitter.
func backoff(ctx context.Context, attempt int) error {
	d := time.Duration(1<<min(attempt, 6)) * time.Millisecond
	d = d/2 + time.Duration(mrand.Int64N(int64(d)))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// WriteResult is the outcome of a create or update.
type WriteResult struct {
	Resource Resource
	// Created is true when a new resource came into being (201); false for an
	// update, and for a conditional create that found its match (200).
	Created bool
	// Existing is true when a conditional create matched and stored nothing.
	Existing bool
}

// maxRetries bounds the automatic retries of a write that lost a race and
// carried no If-Match.
const maxRetries = 8

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC().Truncate(time.Millisecond)
	}
	return time.Now().UTC().Truncate(time.Millisecond)
}

func (s *Service) newID() string {
	if s.NewID != nil {
		return s.NewID()
	}
	return NewUUID()
}

// NewUUID returns a random, time-ordered UUID (version 7 layout).
func NewUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	ms := uint64(time.Now().UnixMilli())
	binary.BigEndian.PutUint64(b[0:8], ms<<16|uint64(binary.BigEndian.Uint16(b[6:8])&0x0fff)|0x7000)
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func (s *Service) storeErr(op string, err error) error {
	if err == nil || AsError(err) != nil {
		return err
	}
	if errors.Is(err, context.Canceled) {
		// The client went away; not a failure of the store.
		return &Error{Status: StatusClientClosedRequest, Issues: []Issue{{Severity: SeverityError, Code: IssueTimeout, Diagnostics: "the request was cancelled"}}, cause: err}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return Unavailable(err, "fhir: %s timed out in the store", op)
	}
	if s.OnStoreError != nil {
		s.OnStoreError(op, err)
	}
	return Internal(err, "fhir: %s failed in the store", op)
}

func (s *Service) checkType(typ string) error {
	if s.Validator != nil && !s.Validator.KnownType(typ) {
		return NotFound("unknown resource type %q", typ)
	}
	if s.Validator == nil && typ == "" {
		return NotFound("no resource type given")
	}
	return nil
}

// parseBody parses and validates a body meant for type typ.
func (s *Service) parseBody(ctx context.Context, typ string, body []byte) (*Document, error) {
	doc, err := ParseDocument(body)
	if err != nil {
		return nil, err
	}
	if doc.Type != typ {
		return nil, Invalid("resourceType", "the body's resourceType %q does not match the type %q in the URL", doc.Type, typ)
	}
	if doc.ID != "" && !ValidID(doc.ID) {
		return nil, Invalid(typ+".id", "%q is not a valid id (1 to 64 of A-Z a-z 0-9 - .)", doc.ID)
	}
	if s.Validator != nil {
		if err := s.Validator.Validate(ctx, typ, doc.Value); err != nil {
			return nil, err
		}
	}
	if s.Check != nil {
		if err := s.Check(ctx, typ, doc.Value); err != nil {
			return nil, err
		}
	}
	return doc, nil
}

// Create stores a new resource with a server-assigned id. With ifNoneExist (the
// If-None-Exist criteria) it stores nothing when exactly one resource matches
// and returns that one, and fails with 412 when several do.
func (s *Service) Create(ctx context.Context, typ string, body []byte, ifNoneExist string) (WriteResult, error) {
	if err := s.checkType(typ); err != nil {
		return WriteResult{}, err
	}
	doc, err := s.parseBody(ctx, typ, body)
	if err != nil {
		return WriteResult{}, err
	}
	if ifNoneExist == "" {
		return s.put(ctx, doc, s.newID(), nil, true)
	}
	unlock := s.lockCriteria(typ, ifNoneExist)
	defer unlock()
	found, err := s.match(ctx, typ, ifNoneExist, 2)
	if err != nil {
		return WriteResult{}, err
	}
	switch len(found) {
	case 0:
		return s.put(ctx, doc, s.newID(), nil, true)
	case 1:
		return WriteResult{Resource: found[0], Existing: true}, nil
	default:
		return WriteResult{}, PreconditionFailed(IssueMultipleMatches, "If-None-Exist %q matched more than one %s", ifNoneExist, typ)
	}
}

// lockCriteria serialises conditional writes with the same criteria in this
// process, so two identical conditional creates cannot both create.
func (s *Service) lockCriteria(typ, criteria string) func() {
	key := typ + "?" + criteria
	s.condMu.Lock()
	if s.cond == nil {
		s.cond = make(map[string]*sync.Mutex)
	}
	mu, ok := s.cond[key]
	if !ok {
		mu = new(sync.Mutex)
		s.cond[key] = mu
	}
	s.condMu.Unlock()
	mu.Lock()
	return mu.Unlock
}

// Update stores a new version of typ/id, creating it when it does not exist
// (update as create). ifMatch, when not nil, is the version the client expects
// to replace.
func (s *Service) Update(ctx context.Context, typ, id string, body []byte, ifMatch *int64) (WriteResult, error) {
	if err := s.checkType(typ); err != nil {
		return WriteResult{}, err
	}
	if !ValidID(id) {
		return WriteResult{}, Invalid("id", "%q is not a valid id (1 to 64 of A-Z a-z 0-9 - .)", id)
	}
	doc, err := s.parseBody(ctx, typ, body)
	if err != nil {
		return WriteResult{}, err
	}
	if doc.ID == "" {
		return WriteResult{}, Invalid(typ+".id", "an update must carry the resource id in the body (expected %q)", id)
	}
	if doc.ID != id {
		return WriteResult{}, Invalid(typ+".id", "the body's id %q does not match the id %q in the URL", doc.ID, id)
	}
	return s.put(ctx, doc, id, ifMatch, false)
}

func (s *Service) index(typ string, value map[string]any) ([]IndexEntry, error) {
	if s.Indexer == nil {
		return ExtractTokens(value), nil
	}
	entries, err := s.Indexer.Index(typ, value)
	if err != nil {
		return nil, Internal(err, "fhir: index %s", typ)
	}
	return entries, nil
}

// stored is the decoded resource as it will be stored: the client's content
// with the server's id, meta.versionId and meta.lastUpdated (a shallow copy;
// doc is not changed).
func stored(doc *Document, id string, version int64, now time.Time) map[string]any {
	v := make(map[string]any, len(doc.Value)+2)
	for k, x := range doc.Value {
		v[k] = x
	}
	v["id"] = id
	meta := map[string]any{}
	for k, x := range doc.Meta() {
		meta[k] = x
	}
	meta["versionId"] = strconv.FormatInt(version, 10)
	meta["lastUpdated"] = FormatInstant(now)
	v["meta"] = meta
	return v
}

// ConditionalUpdate updates the one resource matching criteria, or creates it
// when none does (with the body's id, or a new one); several matches: 412.
func (s *Service) ConditionalUpdate(ctx context.Context, typ, criteria string, body []byte, ifMatch *int64) (WriteResult, error) {
	if err := s.checkType(typ); err != nil {
		return WriteResult{}, err
	}
	doc, err := s.parseBody(ctx, typ, body)
	if err != nil {
		return WriteResult{}, err
	}
	unlock := s.lockCriteria(typ, criteria)
	defer unlock()
	found, err := s.match(ctx, typ, criteria, 2)
	if err != nil {
		return WriteResult{}, err
	}
	switch len(found) {
	case 0:
		id := doc.ID
		if id == "" {
			id = s.newID()
		}
		return s.put(ctx, doc, id, ifMatch, id != doc.ID)
	case 1:
		if doc.ID != "" && doc.ID != found[0].ID {
			return WriteResult{}, Invalid(typ+".id", "the body's id %q is not the id %q of the resource the criteria matched", doc.ID, found[0].ID)
		}
		return s.put(ctx, doc, found[0].ID, ifMatch, false)
	default:
		return WriteResult{}, PreconditionFailed(IssueMultipleMatches, "the criteria %q matched more than one %s", criteria, typ)
	}
}

// put appends doc as the next version of typ/id. fresh means the id was just
// made by the server, so the resource cannot exist yet.
func (s *Service) put(ctx context.Context, doc *Document, id string, ifMatch *int64, fresh bool) (WriteResult, error) {
	if s.RequireIfMatch && ifMatch == nil && !fresh {
		if _, err := s.Store.Read(ctx, doc.Type, id); err == nil {
			return WriteResult{}, PreconditionRequired("this server requires If-Match on updates of existing resources")
		}
	}
	defer s.lockResource(doc.Type, id)()
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if err := backoff(ctx, attempt); err != nil {
				return WriteResult{}, err
			}
		}
		var current int64
		deleted := false
		var replaced *Resource
		if !fresh {
			cur, err := s.Store.Read(ctx, doc.Type, id)
			switch {
			case err == nil:
				current, deleted = cur.Version, cur.Deleted()
				if !deleted {
					replaced = &cur
				}
			case errors.Is(err, ErrNotFound):
			default:
				return WriteResult{}, s.storeErr("read", err)
			}
		}
		if ifMatch != nil && *ifMatch != current {
			if current == 0 {
				return WriteResult{}, PreconditionFailed(IssueConflict, "If-Match names version %d of %s/%s, which does not exist", *ifMatch, doc.Type, id)
			}
			return WriteResult{}, PreconditionFailed(IssueConflict, "If-Match names version %d of %s/%s but the current version is %d", *ifMatch, doc.Type, id, current)
		}
		now := s.now()
		w := Write{Type: doc.Type, ID: id, Version: current + 1, LastUpdated: now, Op: OpUpdate}
		if current == 0 || deleted {
			w.Op = OpCreate
		}
		w.JSON = doc.Encode(id, strconv.FormatInt(w.Version, 10), FormatInstant(now))
		// Index the resource as stored: with the server's id and meta.
		index, err := s.index(doc.Type, stored(doc, id, w.Version, now))
		if err != nil {
			return WriteResult{}, err
		}
		w.Index = index
		if s.Authorize != nil {
			if err := s.Authorize(ctx, w, replaced); err != nil {
				return WriteResult{}, err
			}
		}
		ch, err := s.Store.Write(ctx, w)
		if err == nil {
			if s.Committed != nil {
				s.Committed(ch)
			}
			return WriteResult{Resource: ch.Resource, Created: current == 0 || deleted}, nil
		}
		if !errors.Is(err, ErrVersionConflict) {
			return WriteResult{}, s.storeErr("write", err)
		}
		if ifMatch != nil {
			return WriteResult{}, PreconditionFailed(IssueConflict, "%s/%s changed while it was being written (If-Match %d)", doc.Type, id, *ifMatch)
		}
		if attempt >= maxRetries {
			return WriteResult{}, Conflict("%s/%s is being written by others; the update lost %d races, try again", doc.Type, id, attempt+1)
		}
	}
}

// Delete deletes typ/id, keeping its history. Deleting a resource that does not
// exist or is already deleted succeeds and stores nothing (the spec's
// idempotent delete); the result's Resource is then zero.
func (s *Service) Delete(ctx context.Context, typ, id string, ifMatch *int64) (Resource, error) {
	if err := s.checkType(typ); err != nil {
		return Resource{}, err
	}
	if !ValidID(id) {
		return Resource{}, Invalid("id", "%q is not a valid id", id)
	}
	if s.RequireIfMatch && ifMatch == nil {
		return Resource{}, PreconditionRequired("this server requires If-Match on deletes")
	}
	defer s.lockResource(typ, id)()
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if err := backoff(ctx, attempt); err != nil {
				return Resource{}, err
			}
		}
		cur, err := s.Store.Read(ctx, typ, id)
		if errors.Is(err, ErrNotFound) {
			if ifMatch != nil {
				return Resource{}, PreconditionFailed(IssueConflict, "If-Match names version %d of %s/%s, which does not exist", *ifMatch, typ, id)
			}
			return Resource{}, nil
		}
		if err != nil {
			return Resource{}, s.storeErr("read", err)
		}
		if ifMatch != nil && *ifMatch != cur.Version {
			return Resource{}, PreconditionFailed(IssueConflict, "If-Match names version %d of %s/%s but the current version is %d", *ifMatch, typ, id, cur.Version)
		}
		if cur.Deleted() {
			return cur, nil
		}
		w := Write{Type: typ, ID: id, Version: cur.Version + 1, LastUpdated: s.now(), Op: OpDelete}
		if s.Authorize != nil {
			if err := s.Authorize(ctx, w, &cur); err != nil {
				return Resource{}, err
			}
		}
		ch, err := s.Store.Write(ctx, w)
		if err == nil {
			if s.Committed != nil {
				s.Committed(ch)
			}
			return ch.Resource, nil
		}
		if !errors.Is(err, ErrVersionConflict) {
			return Resource{}, s.storeErr("write", err)
		}
		if ifMatch != nil || attempt >= maxRetries {
			return Resource{}, PreconditionFailed(IssueConflict, "%s/%s changed while it was being deleted", typ, id)
		}
	}
}

// ConditionalDelete deletes the one resource matching criteria. No match
// succeeds with nothing deleted; several matches fail with 412.
func (s *Service) ConditionalDelete(ctx context.Context, typ, criteria string) (Resource, error) {
	if err := s.checkType(typ); err != nil {
		return Resource{}, err
	}
	unlock := s.lockCriteria(typ, criteria)
	defer unlock()
	found, err := s.match(ctx, typ, criteria, 2)
	if err != nil {
		return Resource{}, err
	}
	switch len(found) {
	case 0:
		return Resource{}, nil
	case 1:
		return s.Delete(ctx, typ, found[0].ID, nil)
	default:
		return Resource{}, PreconditionFailed(IssueMultipleMatches, "the criteria %q matched more than one %s; conditional delete removes one at most", criteria, typ)
	}
}

// Match finds at most limit current resources of typ matching criteria (the
// query string of a conditional interaction or reference).
func (s *Service) Match(ctx context.Context, typ, criteria string, limit int) ([]Resource, error) {
	if err := s.checkType(typ); err != nil {
		return nil, err
	}
	return s.match(ctx, typ, criteria, limit)
}

// AssignID makes a new server-assigned id.
func (s *Service) AssignID() string { return s.newID() }

// match finds at most limit current resources of typ matching criteria.
func (s *Service) match(ctx context.Context, typ, criteria string, limit int) ([]Resource, error) {
	if s.Finder != nil {
		found, err := s.Finder.FindMatches(ctx, typ, criteria, limit)
		if err != nil && AsError(err) == nil {
			return nil, s.storeErr("search", err)
		}
		return found, err
	}
	m, err := ParseCriteria(typ, criteria)
	if err != nil {
		return nil, err
	}
	m.Limit = limit
	found, err := s.Store.Find(ctx, m)
	if err != nil {
		return nil, s.storeErr("find", err)
	}
	return found, nil
}

// Read returns the current version of typ/id. A deleted resource is a 410
// error; the deletion itself is returned alongside it for the headers.
func (s *Service) Read(ctx context.Context, typ, id string) (Resource, error) {
	if err := s.checkType(typ); err != nil {
		return Resource{}, err
	}
	if !ValidID(id) {
		return Resource{}, NotFound("%s/%s is not a valid id, so it does not exist", typ, id)
	}
	r, err := s.Store.Read(ctx, typ, id)
	if errors.Is(err, ErrNotFound) {
		return Resource{}, NotFound("%s/%s does not exist", typ, id)
	}
	if err != nil {
		return Resource{}, s.storeErr("read", err)
	}
	if r.Deleted() {
		return r, Gone("%s/%s was deleted (version %d)", typ, id, r.Version)
	}
	return r, nil
}

// VRead returns one version of typ/id; a version that is a deletion is 410.
func (s *Service) VRead(ctx context.Context, typ, id, version string) (Resource, error) {
	if err := s.checkType(typ); err != nil {
		return Resource{}, err
	}
	v, err := strconv.ParseInt(version, 10, 64)
	if err != nil || v < 1 || !ValidID(id) {
		return Resource{}, NotFound("%s/%s has no version %q", typ, id, version)
	}
	r, err := s.Store.VRead(ctx, typ, id, v)
	if errors.Is(err, ErrNotFound) {
		return Resource{}, NotFound("%s/%s has no version %d", typ, id, v)
	}
	if err != nil {
		return Resource{}, s.storeErr("vread", err)
	}
	if r.Deleted() {
		return r, Gone("version %d of %s/%s is a deletion", v, typ, id)
	}
	return r, nil
}

// History lists versions (see HistoryQuery). For an instance, a resource that
// never existed is a 404.
func (s *Service) History(ctx context.Context, q HistoryQuery) ([]Change, error) {
	if q.Type != "" {
		if err := s.checkType(q.Type); err != nil {
			return nil, err
		}
	}
	if q.ID != "" {
		if _, err := s.Store.Read(ctx, q.Type, q.ID); errors.Is(err, ErrNotFound) {
			return nil, NotFound("%s/%s does not exist", q.Type, q.ID)
		} else if err != nil {
			return nil, s.storeErr("read", err)
		}
	}
	out, err := s.Store.History(ctx, q)
	if err != nil {
		return nil, s.storeErr("history", err)
	}
	return out, nil
}

// ParseIfMatch parses an ETag value W/"n" (or "n", or n) into a version.
func ParseIfMatch(v string) (int64, error) {
	s := v
	if len(s) > 2 && (s[:2] == "W/" || s[:2] == "w/") {
		s = s[2:]
	}
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 {
		return 0, Invalid("If-Match", "If-Match %q is not a version ETag like W/\"3\"", v)
	}
	return n, nil
}

// Patch applies a patch to the current version of typ/id and stores the
// result as the next version, validated like any update. apply turns the
// current JSON into the new JSON; it must keep the resource type and id.
// Without ifMatch, a patch that lost a race to another writer is applied
// again to the newer version (a few times); with it, the version must be
// current (412 otherwise).
func (s *Service) Patch(ctx context.Context, typ, id string, ifMatch *int64, apply func(current []byte) ([]byte, error)) (WriteResult, error) {
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if err := backoff(ctx, attempt); err != nil {
				return WriteResult{}, err
			}
		}
		cur, err := s.Read(ctx, typ, id)
		if err != nil {
			return WriteResult{}, err
		}
		if ifMatch != nil && *ifMatch != cur.Version {
			return WriteResult{}, PreconditionFailed(IssueConflict, "If-Match names version %d of %s/%s but the current version is %d", *ifMatch, typ, id, cur.Version)
		}
		body, err := PatchResult(cur, apply)
		if err != nil {
			return WriteResult{}, err
		}
		v := cur.Version
		res, err := s.Update(ctx, typ, id, body, &v)
		if err == nil || ifMatch != nil || AsError(err) == nil || AsError(err).HTTPStatus() != 412 || attempt >= maxRetries {
			return res, err
		}
	}
}

// PatchResult applies a patch to cur and checks that the result is still
// the same resource.
func PatchResult(cur Resource, apply func(current []byte) ([]byte, error)) ([]byte, error) {
	body, err := apply(cur.JSON)
	if err != nil {
		return nil, err
	}
	var head struct {
		ResourceType string `json:"resourceType"`
		ID           string `json:"id"`
	}
	if err := json.Unmarshal(body, &head); err != nil {
		return nil, Unprocessable([]Issue{{Severity: SeverityError, Code: IssueProcessing, Diagnostics: "the patched resource is not a JSON object: " + err.Error()}})
	}
	if head.ResourceType != cur.Type || head.ID != cur.ID {
		return nil, Unprocessable([]Issue{{Severity: SeverityError, Code: IssueProcessing,
			Diagnostics: fmt.Sprintf("a patch may not change the resource type or id (%s/%s became %s/%s)", cur.Type, cur.ID, head.ResourceType, head.ID)}})
	}
	return body, nil
}
