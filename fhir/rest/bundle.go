package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fhirhub/fhirhub/fhir"
	"github.com/fhirhub/fhirhub/smart"
	"github.com/labstack/echo/v4"
)

// Batch and transaction Bundles (POST [base] with a Bundle).
//
// A transaction is all or nothing: its writes are resolved (new ids for
// POSTs, conditional URLs matched, references to other entries and
// conditional references rewritten), validated and indexed, then committed
// by the store in one transaction (fhir.Service.Transaction); its reads run
// after the commit. A batch runs each entry on its own, as if it were a
// request of its own, through this server's handler, and reports each
// failure in that entry's response.outcome. Both process entries in the
// spec's order (DELETE, POST, PUT and PATCH, then GET and HEAD) and answer
// in the order of the request.

// bundleIn is a Bundle as received: entries' resources stay raw JSON.
type bundleIn struct {
	ResourceType string        `json:"resourceType"`
	Type         string        `json:"type"`
	Entry        []bundleEntry `json:"entry"`
}

type bundleEntry struct {
	FullURL  string          `json:"fullUrl"`
	Resource json.RawMessage `json:"resource"`
	Request  *entryRequest   `json:"request"`
}

type entryRequest struct {
	Method          string `json:"method"`
	URL             string `json:"url"`
	IfNoneMatch     string `json:"ifNoneMatch"`
	IfModifiedSince string `json:"ifModifiedSince"`
	IfMatch         string `json:"ifMatch"`
	IfNoneExist     string `json:"ifNoneExist"`
}

// entryResponse is Bundle.entry.response.
type entryResponse struct {
	Status       string          `json:"status"`
	Location     string          `json:"location,omitempty"`
	Etag         string          `json:"etag,omitempty"`
	LastModified string          `json:"lastModified,omitempty"`
	Outcome      json.RawMessage `json:"outcome,omitempty"`
}

type entryOut struct {
	FullURL  string          `json:"fullUrl,omitempty"`
	Resource json.RawMessage `json:"resource,omitempty"`
	Response entryResponse   `json:"response"`
}

// methodOrder is the spec's processing order.
var methodOrder = map[string]int{"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}

// bundle handles POST [base].
func (s *Server) bundle(c echo.Context) error {
	setInteraction(c, "batch")
	body, err := s.readBundleBody(c)
	if err != nil {
		return err
	}
	var b bundleIn
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&b); err != nil {
		return fhir.Invalid("", "the body is not a Bundle: %v", err)
	}
	body = nil // the entries hold what is needed
	if b.ResourceType != "Bundle" {
		return fhir.Invalid("resourceType", "POST to the base takes a Bundle of type batch or transaction, not a %q", b.ResourceType)
	}
	for i, e := range b.Entry {
		if e.Request == nil {
			return fhir.Invalid(fmt.Sprintf("Bundle.entry[%d].request", i), "Bundle.entry[%d] has no request", i)
		}
		e.Request.Method = strings.ToUpper(e.Request.Method)
		if _, ok := methodOrder[e.Request.Method]; !ok {
			return fhir.Invalid(fmt.Sprintf("Bundle.entry[%d].request.method", i), "Bundle.entry[%d]: method %q is not GET, HEAD, POST, PUT, DELETE or PATCH", i, e.Request.Method)
		}
		if e.Request.URL == "" {
			return fhir.Invalid(fmt.Sprintf("Bundle.entry[%d].request.url", i), "Bundle.entry[%d] has no request.url", i)
		}
	}
	var out []entryOut
	switch b.Type {
	case "transaction":
		setInteraction(c, "transaction")
		out, err = s.transaction(c, b.Entry)
	case "batch":
		out = s.batch(c, b.Entry)
	default:
		return fhir.Invalid("Bundle.type", "POST to the base takes a Bundle of type batch or transaction, not %q", b.Type)
	}
	if err != nil {
		return err
	}
	resp := struct {
		ResourceType string     `json:"resourceType"`
		ID           string     `json:"id"`
		Type         string     `json:"type"`
		Timestamp    string     `json:"timestamp"`
		Entry        []entryOut `json:"entry"`
	}{"Bundle", s.Service.AssignID(), b.Type + "-response", fhir.FormatInstant(time.Now()), out}
	return write(c, http.StatusOK, encodeJSON(resp))
}

// readBundleBody reads the body within MaxBundleBytes.
func (s *Server) readBundleBody(c echo.Context) ([]byte, error) {
	return s.readBodyLimit(c, max(s.MaxBodyBytes, s.MaxBundleBytes))
}

// target is where an entry's request.url points.
type target struct {
	typ, id, query string
	version        string // _history/{vid} on GET
}

// parseEntryURL reads request.url: relative (Patient/1, Patient?x=y) or
// absolute under this server's base.
func parseEntryURL(base, raw string) (target, error) {
	u := raw
	if strings.HasPrefix(u, base+"/") {
		u = strings.TrimPrefix(u, base+"/")
	} else if strings.Contains(u, "://") {
		return target{}, fmt.Errorf("request.url %q is not on this server (%s)", raw, base)
	}
	u = strings.TrimPrefix(u, "/")
	var t target
	path, query, _ := strings.Cut(u, "?")
	t.query = query
	parts := strings.Split(path, "/")
	t.typ = parts[0]
	if len(parts) > 1 {
		t.id = parts[1]
	}
	if len(parts) == 4 && parts[2] == "_history" {
		t.version = parts[3]
	}
	return t, nil
}

// txEntry is a transaction entry being resolved.
type txEntry struct {
	i   int
	e   bundleEntry
	t   target
	op  fhir.Op // what it writes; "" for reads and writes that write nothing
	id  string  // the resolved target id
	doc []byte  // the resource to write, references rewritten
	// existing is the resource a POST's ifNoneExist matched (nothing written).
	existing *fhir.Resource
	ifMatch  *int64
	noMatch  bool // a conditional DELETE that matched nothing
}

// transaction processes a transaction Bundle's entries, all or none.
func (s *Server) transaction(c echo.Context, entries []bundleEntry) ([]entryOut, error) {
	ctx := c.Request().Context()
	base := s.base(c)
	txs := make([]*txEntry, len(entries))
	for i, e := range entries {
		t, err := parseEntryURL(base, e.Request.URL)
		if err != nil {
			return nil, fhir.AtEntry(fhir.Invalid("request.url", "%v", err), i)
		}
		txs[i] = &txEntry{i: i, e: e, t: t}
		// Every entry is checked against the token before anything is
		// resolved or written: a denial fails the whole transaction.
		if err := s.permitEntry(ctx, e.Request.Method, t); err != nil {
			return nil, fhir.AtEntry(err, i)
		}
	}
	// Resolve targets in processing order; a later entry's conditional
	// match sees the database before the transaction, as the spec has it.
	order := processingOrder(entries)
	fullURLs := map[string]string{} // fullUrl → Type/id
	seen := map[string]int{}
	for _, i := range order {
		x := txs[i]
		if err := s.resolveTarget(ctx, x); err != nil {
			return nil, fhir.AtEntry(err, i)
		}
		if x.existing != nil {
			if err := s.existingVisible(ctx, *x.existing, "ifNoneExist"); err != nil {
				return nil, fhir.AtEntry(err, i)
			}
		}
		if x.op != "" {
			key := x.t.typ + "/" + x.id
			if j, dup := seen[key]; dup {
				return nil, fhir.AtEntry(fhir.Invalid("", "entries %d and %d both write %s; a transaction may write a resource once", j, i, key), i)
			}
			seen[key] = i
		}
		if fu := x.e.FullURL; fu != "" && (x.op == fhir.OpCreate || x.op == fhir.OpUpdate || x.existing != nil) {
			ref := x.t.typ + "/" + x.id
			if x.existing != nil {
				ref = x.existing.Ref()
			}
			fullURLs[fu] = ref
		}
	}
	// Rewrite references to other entries and conditional references.
	cond := map[string]string{}
	for _, i := range order {
		x := txs[i]
		if x.op != fhir.OpCreate && x.op != fhir.OpUpdate {
			continue
		}
		doc, err := rewriteReferences(x.e.Resource, func(ref string) (string, error) {
			return s.resolveReference(ctx, base, ref, fullURLs, cond)
		})
		if err != nil {
			return nil, fhir.AtEntry(err, i)
		}
		x.doc = doc
	}
	var writes []fhir.TxWrite
	var at []int
	for _, i := range order {
		x := txs[i]
		if x.op == "" {
			continue
		}
		writes = append(writes, fhir.TxWrite{Op: x.op, Type: x.t.typ, ID: x.id, Body: x.doc, IfMatch: x.ifMatch, Entry: i})
		at = append(at, i)
	}
	results, err := s.Service.Transaction(ctx, writes)
	if err != nil {
		return nil, err
	}
	out := make([]entryOut, len(entries))
	prefer := preferReturn(c.Request())
	for k, i := range at {
		x, r := txs[i], results[k]
		o := &out[i]
		switch {
		case x.op == fhir.OpDelete:
			o.Response.Status = "204 No Content"
			if !r.Unchanged {
				o.Response.Etag = etag(r.Resource.Version)
			}
		default:
			o.Response.Status = "200 OK"
			if r.Created {
				o.Response.Status = "201 Created"
			}
			s.fillWritten(o, base, r.Resource, prefer, "written")
		}
	}
	for _, i := range order {
		x := txs[i]
		o := &out[i]
		switch {
		case x.existing != nil:
			o.Response.Status = "200 OK"
			s.fillWritten(o, base, *x.existing, prefer, "already existed")
		case x.noMatch:
			o.Response.Status = "204 No Content"
		case x.e.Request.Method == "GET" || x.e.Request.Method == "HEAD":
			*o = s.dispatch(c, x.e)
		}
	}
	return out, nil
}

// fillWritten sets the response of an entry that wrote (or found) r.
func (s *Server) fillWritten(o *entryOut, base string, r fhir.Resource, prefer, verb string) {
	o.FullURL = base + "/" + r.Ref()
	o.Response.Location = r.Ref() + "/_history/" + r.VersionID()
	o.Response.Etag = etag(r.Version)
	o.Response.LastModified = fhir.FormatInstant(r.LastUpdated)
	switch prefer {
	case "minimal":
	case "OperationOutcome":
		o.Response.Outcome = informational(r.Ref() + " " + verb + " (version " + r.VersionID() + ")")
	default:
		o.Resource = r.JSON
	}
}

// processingOrder lists entry indexes in the spec's order, stable within a
// method.
func processingOrder(entries []bundleEntry) []int {
	var order []int
	for pass := 0; pass <= 3; pass++ {
		for i, e := range entries {
			if methodOrder[e.Request.Method] == pass {
				order = append(order, i)
			}
		}
	}
	return order
}

// permitEntry checks that the token may do what a transaction entry asks
// of its type: GET and HEAD read (an instance) or search, POST creates,
// PUT and PATCH update, DELETE deletes.
func (s *Server) permitEntry(ctx context.Context, method string, t target) error {
	if s.guardFrom(ctx) == nil || t.typ == "" || strings.HasPrefix(t.typ, "$") || strings.HasPrefix(t.typ, "_") {
		return nil // the entry's own request answers (or is checked by its handler)
	}
	switch method {
	case "GET", "HEAD":
		if t.id == "" || t.id == "_search" || strings.HasPrefix(t.id, "$") {
			if t.id == "" || t.id == "_search" {
				return s.permit(ctx, t.typ, smart.PermSearch, "search")
			}
			return nil
		}
		if t.id == "_history" {
			return s.permit(ctx, t.typ, smart.PermRead, "history")
		}
		return s.permit(ctx, t.typ, smart.PermRead, "read")
	case "POST":
		return s.permit(ctx, t.typ, smart.PermCreate, "create")
	case "PUT":
		return s.permit(ctx, t.typ, smart.PermUpdate, "update")
	case "PATCH":
		return s.permit(ctx, t.typ, smart.PermUpdate, "patch")
	case "DELETE":
		return s.permit(ctx, t.typ, smart.PermDelete, "delete")
	}
	return nil
}

// resolveTarget works out what a write entry writes.
func (s *Server) resolveTarget(ctx context.Context, x *txEntry) error {
	req := x.e.Request
	if req.IfMatch != "" {
		v, err := fhir.ParseIfMatch(req.IfMatch)
		if err != nil {
			return err
		}
		x.ifMatch = &v
	}
	typ := x.t.typ
	switch req.Method {
	case "GET", "HEAD":
		return nil
	case "POST":
		if x.t.id != "" || x.t.query != "" {
			return fhir.Invalid("request.url", "a POST entry's url is the resource type, not %q", req.URL)
		}
		if err := s.entryResourceType(x); err != nil {
			return err
		}
		if req.IfNoneExist != "" {
			found, err := s.Service.Match(ctx, typ, strings.TrimPrefix(req.IfNoneExist, "?"), 2)
			if err != nil {
				return err
			}
			switch len(found) {
			case 1:
				x.existing = &found[0]
				return nil
			case 2:
				return fhir.PreconditionFailed(fhir.IssueMultipleMatches, "ifNoneExist %q matched more than one %s", req.IfNoneExist, typ)
			}
		}
		x.op, x.id = fhir.OpCreate, s.Service.AssignID()
	case "PUT":
		if err := s.entryResourceType(x); err != nil {
			return err
		}
		x.op = fhir.OpUpdate
		if x.t.query == "" {
			if x.t.id == "" {
				return fhir.Invalid("request.url", "a PUT entry's url is Type/id or Type?criteria, not %q", req.URL)
			}
			x.id = x.t.id
			return nil
		}
		found, err := s.Service.Match(ctx, typ, x.t.query, 2)
		if err != nil {
			return err
		}
		switch len(found) {
		case 0:
			if x.id = bodyID(x.e.Resource); x.id == "" {
				x.id = s.Service.AssignID()
			}
		case 1:
			x.id = found[0].ID
		default:
			return fhir.PreconditionFailed(fhir.IssueMultipleMatches, "the conditional update %q matched more than one %s", req.URL, typ)
		}
	case "DELETE":
		x.op = fhir.OpDelete
		if x.t.query == "" {
			if x.t.id == "" {
				return fhir.Invalid("request.url", "a DELETE entry's url is Type/id or Type?criteria, not %q", req.URL)
			}
			x.id = x.t.id
			return nil
		}
		found, err := s.Service.Match(ctx, typ, x.t.query, 2)
		if err != nil {
			return err
		}
		switch len(found) {
		case 0:
			x.op, x.noMatch = "", true
		case 1:
			x.id = found[0].ID
		default:
			return fhir.PreconditionFailed(fhir.IssueMultipleMatches, "the conditional delete %q matched more than one %s", req.URL, typ)
		}
	case "PATCH":
		return s.resolvePatch(ctx, x)
	}
	return nil
}

// entryResourceType checks that a POST or PUT entry carries a resource of
// the type its url names.
func (s *Server) entryResourceType(x *txEntry) error {
	if len(x.e.Resource) == 0 {
		return fhir.Invalid("resource", "a %s entry needs a resource", x.e.Request.Method)
	}
	var head struct {
		ResourceType string `json:"resourceType"`
	}
	if err := json.Unmarshal(x.e.Resource, &head); err != nil {
		return fhir.Invalid("resource", "the resource is not JSON: %v", err)
	}
	if head.ResourceType != x.t.typ {
		return fhir.Invalid("resource.resourceType", "the resource is a %q but request.url names %q", head.ResourceType, x.t.typ)
	}
	return nil
}

func bodyID(raw []byte) string {
	var head struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(raw, &head)
	return head.ID
}

// resolveReference maps one reference of a transaction entry: to the entry
// whose fullUrl it names, to the one resource a conditional reference
// (Type?criteria) matches, or unchanged.
func (s *Server) resolveReference(ctx context.Context, base, ref string, fullURLs, cond map[string]string) (string, error) {
	if ref == "" || ref[0] == '#' {
		return ref, nil
	}
	if to, ok := fullURLs[ref]; ok {
		return to, nil
	}
	if strings.HasPrefix(ref, "urn:uuid:") || strings.HasPrefix(ref, "urn:oid:") {
		return "", fhir.Invalid("", "the reference %q names no entry's fullUrl", ref)
	}
	if abs, ok := strings.CutPrefix(ref, base+"/"); ok {
		if to, ok := fullURLs[abs]; ok {
			return to, nil
		}
	} else if to, ok := fullURLs[base+"/"+ref]; ok {
		return to, nil
	}
	typ, criteria, isCond := strings.Cut(ref, "?")
	if !isCond || strings.Contains(typ, "/") {
		return ref, nil
	}
	if to, ok := cond[ref]; ok {
		return to, nil
	}
	found, err := s.Service.Match(ctx, typ, criteria, 2)
	if err != nil {
		return "", err
	}
	switch len(found) {
	case 0:
		return "", fhir.PreconditionFailed(fhir.IssueNotFound, "the conditional reference %q matches no resource", ref)
	case 1:
		cond[ref] = found[0].Ref()
		return found[0].Ref(), nil
	default:
		return "", fhir.PreconditionFailed(fhir.IssueMultipleMatches, "the conditional reference %q matches more than one resource", ref)
	}
}

// batch runs each entry as a request of its own, a few at a time within
// each step of the processing order.
func (s *Server) batch(c echo.Context, entries []bundleEntry) []entryOut {
	out := make([]entryOut, len(entries))
	order := processingOrder(entries)
	const workers = 4
	for start := 0; start < len(order); {
		pass := methodOrder[entries[order[start]].Request.Method]
		end := start
		for end < len(order) && methodOrder[entries[order[end]].Request.Method] == pass {
			end++
		}
		var wg sync.WaitGroup
		next := make(chan int)
		for range workers {
			wg.Go(func() {
				for i := range next {
					out[i] = s.dispatch(c, entries[i])
				}
			})
		}
		for _, i := range order[start:end] {
			next <- i
		}
		close(next)
		wg.Wait()
		start = end
	}
	return out
}

// dispatch runs one entry through this server's handler as a request of its
// own (with the outer request's Prefer and authorization) and turns the
// response into the entry's response.
func (s *Server) dispatch(c echo.Context, e bundleEntry) entryOut {
	outer := c.Request()
	base := s.base(c)
	u := e.Request.URL
	if strings.HasPrefix(u, base+"/") {
		u = strings.TrimPrefix(u, base)
	} else {
		u = "/" + strings.TrimPrefix(u, "/")
	}
	var payload []byte
	contentType := mimeFHIRJSON
	if len(e.Resource) > 0 && e.Request.Method != "GET" && e.Request.Method != "HEAD" && e.Request.Method != "DELETE" {
		payload = e.Resource
		if e.Request.Method == "PATCH" {
			var err error
			if payload, contentType, err = patchPayload(e.Resource); err != nil {
				return errorEntry(err)
			}
		}
	}
	req, err := http.NewRequestWithContext(outer.Context(), e.Request.Method, BasePath+u, bytes.NewReader(payload))
	if err != nil {
		return errorEntry(fhir.Invalid("request.url", "request.url %q: %v", e.Request.URL, err))
	}
	req.Host = outer.Host
	req.RemoteAddr = outer.RemoteAddr
	req.TLS = outer.TLS
	for _, h := range []string{"Prefer", "X-Forwarded-Proto", "X-Forwarded-Host"} {
		if v := outer.Header.Values(h); len(v) > 0 {
			req.Header[h] = v
		}
	}
	req.Header.Set("Accept", mimeFHIRJSON)
	if len(payload) > 0 {
		req.Header.Set("Content-Type", contentType)
	}
	// The entry runs with the outer request's context, which carries the
	// verified Access: the token itself is not passed on (nor verified
	// again, nor logged).
	for h, v := range map[string]string{"If-None-Match": e.Request.IfNoneMatch, "If-Modified-Since": e.Request.IfModifiedSince,
		"If-Match": e.Request.IfMatch, "If-None-Exist": e.Request.IfNoneExist} {
		if v != "" {
			req.Header.Set(h, v)
		}
	}
	rec := httptest.NewRecorder()
	s.handler.ServeHTTP(rec, req)
	res := rec.Result()
	var o entryOut
	o.Response.Status = strconv.Itoa(res.StatusCode) + " " + http.StatusText(res.StatusCode)
	o.Response.Etag = res.Header.Get("ETag")
	if lm := res.Header.Get("Last-Modified"); lm != "" {
		if t, err := http.ParseTime(lm); err == nil {
			o.Response.LastModified = fhir.FormatInstant(t)
		}
	}
	if loc := res.Header.Get("Location"); loc != "" {
		o.Response.Location = strings.TrimPrefix(strings.TrimPrefix(loc, base), "/")
		if ref, _, ok := strings.Cut(o.Response.Location, "/_history/"); ok {
			o.FullURL = base + "/" + ref
		}
	}
	b := rec.Body.Bytes()
	if len(b) > 0 && e.Request.Method != "HEAD" {
		var head struct {
			ResourceType string `json:"resourceType"`
		}
		_ = json.Unmarshal(b, &head)
		if res.StatusCode >= 400 || (head.ResourceType == "OperationOutcome" && e.Request.Method != "GET") {
			o.Response.Outcome = append(json.RawMessage(nil), b...)
		} else {
			o.Resource = append(json.RawMessage(nil), b...)
		}
	}
	return o
}

// patchPayload is the patch a PATCH entry carries: a Binary holds a JSON
// Patch (base64 in data, its media type in contentType); a Parameters
// resource is a FHIRPath Patch.
func patchPayload(resource []byte) ([]byte, string, error) {
	var head struct {
		ResourceType string `json:"resourceType"`
		ContentType  string `json:"contentType"`
		Data         []byte `json:"data"` // base64
	}
	if err := json.Unmarshal(resource, &head); err != nil {
		return nil, "", fhir.Invalid("resource", "the PATCH entry's resource cannot be read: %v", err)
	}
	switch head.ResourceType {
	case "Binary":
		ct := head.ContentType
		if ct == "" {
			ct = mimeJSONPatch
		}
		return head.Data, ct, nil
	case "Parameters":
		return resource, mimeFHIRJSON, nil
	}
	return nil, "", fhir.Invalid("resource.resourceType", "a PATCH entry carries a Binary (JSON Patch) or a Parameters (FHIRPath Patch), not a %q", head.ResourceType)
}

func errorEntry(err error) entryOut {
	fe := fhir.AsError(err)
	var o entryOut
	o.Response.Status = strconv.Itoa(fe.HTTPStatus()) + " " + http.StatusText(fe.HTTPStatus())
	o.Response.Outcome = outcomeJSON(fe.Issues)
	return o
}

// resolvePatch resolves a PATCH entry of a transaction: the target (by id or
// criteria) is read and patched now, and written with the version read as
// its ifMatch, so a concurrent change fails the transaction (409) rather
// than being overwritten.
func (s *Server) resolvePatch(ctx context.Context, x *txEntry) error {
	id := x.t.id
	if x.t.query != "" {
		var err error
		if id, err = s.matchOne(ctx, x.t.typ, x.t.query, "conditional patch"); err != nil {
			return err
		}
	}
	if id == "" {
		return fhir.Invalid("request.url", "a PATCH entry's url is Type/id or Type?criteria, not %q", x.e.Request.URL)
	}
	payload, ct, err := patchPayload(x.e.Resource)
	if err != nil {
		return err
	}
	apply, err := patcher(ct, payload)
	if err != nil {
		return err
	}
	cur, err := s.Service.Read(ctx, x.t.typ, id)
	if err != nil {
		return err
	}
	if x.ifMatch != nil && *x.ifMatch != cur.Version {
		return fhir.PreconditionFailed(fhir.IssueConflict, "ifMatch names version %d of %s/%s but the current version is %d", *x.ifMatch, x.t.typ, id, cur.Version)
	}
	body, err := fhir.PatchResult(cur, apply)
	if err != nil {
		return err
	}
	v := cur.Version
	x.op, x.id, x.ifMatch, x.e.Resource = fhir.OpUpdate, id, &v, body
	return nil
}
