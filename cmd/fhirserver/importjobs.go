package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// importer sends files to a FHIR server's batch/transaction endpoint
// (POST [base]), Concurrency requests at a time, and records each file
// loaded in State.
type importer struct {
	Base        string // the FHIR base URL
	Token       string // a bearer token, or ""
	Client      *http.Client
	Concurrency int
	BatchSize   int
	Retries     int
	RetryDelay  time.Duration // before the first retry; doubles
	Timeout     time.Duration // of each request
	Grace       time.Duration // for requests in flight once interrupted
	Progress    *progress
	State       *importState

	mu          sync.Mutex
	loaded      int
	failed      int
	interrupted int
	notStarted  int
	resources   int64
	failures    []importFailure // the first maxFailuresListed
	nFailures   int
	stateErr    error
}

// importJob is one request: a Bundle to POST.
type importJob struct {
	file    *importFile
	body    []byte
	entries int
	bytes   int64 // of the file, counted done when the job is
	// Of a batch made here: where each entry came from ("line 7",
	// "entry 3"), its Type/id, and the span of all ("lines 1-500").
	unit string
	nums []int
	refs []string
	span string
}

// importFailure is something not loaded.
type importFailure struct {
	file  *importFile
	where string // "entry 3", "line 7 (Patient/p1)"; "" for the whole file
	num   int    // entry or line number, for sorting
	msg   string
}

// errInterrupted ends work cut short by the cancellation of the run.
var errInterrupted = errors.New("interrupted")

// maxBatchBytes caps the batch Bundles made here (besides BatchSize).
const maxBatchBytes = 16 << 20

// maxResponseBytes caps the response read.
const maxResponseBytes = 256 << 20

// maxLiveFailures is how many failures are printed as they happen.
const maxLiveFailures = 10

// run loads files in order, Synthea's shared files first (all finished
// before the others start). When ctx ends it sends nothing more, gives the
// requests in flight Grace to finish, and cancels them.
func (im *importer) run(ctx context.Context, files []*importFile) {
	sendCtx, cancelSend := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSend()
	finished := make(chan struct{})
	var watch sync.WaitGroup
	watch.Go(func() {
		select {
		case <-finished:
			return
		case <-ctx.Done():
		}
		im.Progress.Notef("interrupted: sending nothing more; the requests in flight have %s to finish", im.Grace)
		t := time.NewTimer(im.Grace)
		defer t.Stop()
		select {
		case <-finished:
		case <-t.C:
			cancelSend()
		}
	})
	jobs := make(chan *importJob)
	var workers sync.WaitGroup
	for range im.Concurrency {
		workers.Go(func() {
			for j := range jobs {
				im.send(ctx, sendCtx, j)
			}
		})
	}
	n := 0
	for n < len(files) && files[n].first {
		n++
	}
	for _, group := range [][]*importFile{files[:n], files[n:]} {
		var wg sync.WaitGroup
		for _, f := range group {
			if ctx.Err() != nil {
				im.mu.Lock()
				im.notStarted++
				im.mu.Unlock()
				continue
			}
			wg.Add(1)
			f.done = wg.Done
			err := im.produce(ctx, f, jobs)
			im.produced(f, err)
		}
		wg.Wait()
	}
	close(jobs)
	workers.Wait()
	close(finished)
	watch.Wait()
}

// produce reads f and sends its jobs.
func (im *importer) produce(ctx context.Context, f *importFile, jobs chan<- *importJob) error {
	emit := func(j *importJob) error {
		j.file = f
		f.attributed += j.bytes
		im.mu.Lock()
		f.pending++
		im.mu.Unlock()
		if ctx.Err() == nil {
			select {
			case jobs <- j:
				im.mu.Lock()
				f.sent++
				im.mu.Unlock()
				return nil
			case <-ctx.Done():
			}
		}
		im.finish(j, 0, true)
		return errInterrupted
	}
	if f.ndjson {
		return im.readNDJSON(ctx, f, emit)
	}
	return im.readJSON(f, emit)
}

// open opens f, gzip-decoded if it is .gz; n counts the bytes read of the
// file itself.
func (f *importFile) open() (r io.Reader, n *countingReader, close func(), err error) {
	fh, err := os.Open(f.abs)
	if err != nil {
		return nil, nil, nil, err
	}
	n = &countingReader{r: fh}
	if !f.gz {
		return n, n, func() { fh.Close() }, nil
	}
	zr, err := gzip.NewReader(n)
	if err != nil {
		fh.Close()
		return nil, nil, nil, fmt.Errorf("not gzip data: %w", err)
	}
	return zr, n, func() { zr.Close(); fh.Close() }, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// resourceHead is what is read of a resource to send it.
type resourceHead struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
}

func (h resourceHead) ref() string {
	if h.ID == "" {
		return h.ResourceType
	}
	return h.ResourceType + "/" + h.ID
}

// readJSON sends a .json file: a transaction or batch Bundle as it is, a
// collection or searchset Bundle's resources (or a lone resource) as
// batches of PUT/POST entries.
func (im *importer) readJSON(f *importFile, emit func(*importJob) error) error {
	r, _, closeFile, err := f.open()
	if err != nil {
		return err
	}
	data, err := io.ReadAll(r)
	closeFile()
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	var head struct {
		ResourceType string     `json:"resourceType"`
		ID           string     `json:"id"`
		Type         string     `json:"type"`
		Entry        []struct{} `json:"entry"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return fmt.Errorf("not a FHIR resource in JSON: %v", err)
	}
	switch {
	case head.ResourceType == "":
		return errors.New("not a FHIR resource: no resourceType")
	case head.ResourceType != "Bundle":
		b := batchBuilder{unit: "resource"}
		b.add(data, resourceHead{head.ResourceType, head.ID}, 1)
		return emit(b.take(f.size))
	case head.Type == "transaction" || head.Type == "batch":
		return emit(&importJob{body: data, entries: len(head.Entry), bytes: f.size})
	case head.Type == "collection" || head.Type == "searchset":
		var list struct {
			Entry []struct {
				Resource json.RawMessage `json:"resource"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(data, &list); err != nil {
			return fmt.Errorf("not a Bundle: %v", err)
		}
		data = nil
		b := batchBuilder{unit: "entry"}
		var done int64
		for i, e := range list.Entry {
			var h resourceHead
			if len(e.Resource) == 0 || json.Unmarshal(e.Resource, &h) != nil || h.ResourceType == "" {
				im.fail(f, fmt.Sprintf("entry %d", i), i, "no resource")
				continue
			}
			if b.full(im.BatchSize, len(e.Resource)) {
				share := f.size*int64(i)/int64(len(list.Entry)) - done
				done += share
				if err := emit(b.take(share)); err != nil {
					return err
				}
			}
			b.add(e.Resource, h, i)
		}
		if b.n > 0 {
			return emit(b.take(f.size - done))
		}
		return nil
	}
	return fmt.Errorf("a Bundle of type %q is not loaded: only transaction, batch, collection and searchset Bundles are (a document or message Bundle is a resource of its own: POST it to [base]/Bundle)", head.Type)
}

// utf8BOM may start a file.
var utf8BOM = []byte("\xef\xbb\xbf")

// readNDJSON streams an .ndjson file: its lines become batches of PUT/POST
// entries; a line that is not a resource is a failure of its own.
func (im *importer) readNDJSON(ctx context.Context, f *importFile, emit func(*importJob) error) error {
	r, raw, closeFile, err := f.open()
	if err != nil {
		return err
	}
	defer closeFile()
	br := bufio.NewReaderSize(r, 256<<10)
	b := batchBuilder{unit: "line"}
	var sent int64
	flush := func(last bool) error {
		n := raw.n - sent
		if last {
			n = f.size - sent
		}
		sent += n
		return emit(b.take(n))
	}
	for lineNo := 1; ; lineNo++ {
		if ctx.Err() != nil {
			return errInterrupted
		}
		line, err := readLine(br)
		if err != nil && err != io.EOF {
			return fmt.Errorf("line %d: read: %w", lineNo, err)
		}
		text := bytes.TrimSpace(line)
		if lineNo == 1 {
			text = bytes.TrimPrefix(text, utf8BOM)
		}
		if len(text) > 0 {
			var h resourceHead
			if jerr := json.Unmarshal(text, &h); jerr != nil {
				im.fail(f, fmt.Sprintf("line %d", lineNo), lineNo, "not a FHIR resource in JSON: "+jerr.Error())
			} else if h.ResourceType == "" {
				im.fail(f, fmt.Sprintf("line %d", lineNo), lineNo, "not a FHIR resource: no resourceType")
			} else {
				if b.full(im.BatchSize, len(text)) {
					if err := flush(false); err != nil {
						return err
					}
				}
				b.add(text, h, lineNo)
			}
		}
		if err == io.EOF {
			break
		}
	}
	if b.n > 0 {
		return flush(true)
	}
	return nil
}

// readLine reads a line, however long.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err != bufio.ErrBufferFull {
		return line, err
	}
	long := append([]byte(nil), line...)
	for err == bufio.ErrBufferFull {
		line, err = br.ReadSlice('\n')
		long = append(long, line...)
	}
	return long, err
}

// batchBuilder makes a batch Bundle of resources: PUT Type/id for those
// with an id, POST Type for the others.
type batchBuilder struct {
	unit string // what nums count: "line", "entry"
	buf  *bytes.Buffer
	n    int
	nums []int
	refs []string
}

// full says whether a resource of size bytes must go into the next batch.
func (b *batchBuilder) full(limit, size int) bool {
	return b.n >= limit || (b.n > 0 && b.buf.Len()+size > maxBatchBytes)
}

func (b *batchBuilder) add(resource []byte, h resourceHead, num int) {
	if b.buf == nil {
		b.buf = bytes.NewBuffer(make([]byte, 0, 64<<10))
		b.buf.WriteString(`{"resourceType":"Bundle","type":"batch","entry":[`)
	} else {
		b.buf.WriteByte(',')
	}
	method, u := "POST", url.PathEscape(h.ResourceType)
	if h.ID != "" {
		method, u = "PUT", u+"/"+url.PathEscape(h.ID)
	}
	b.buf.WriteString(`{"resource":`)
	b.buf.Write(resource)
	b.buf.WriteString(`,"request":{"method":"` + method + `","url":`)
	q, _ := json.Marshal(u)
	b.buf.Write(q)
	b.buf.WriteString(`}}`)
	b.n++
	b.nums = append(b.nums, num)
	b.refs = append(b.refs, h.ref())
}

// take ends the batch as a job that completes bytes of its file.
func (b *batchBuilder) take(bytes int64) *importJob {
	b.buf.WriteString("]}")
	j := &importJob{body: b.buf.Bytes(), entries: b.n, bytes: bytes, unit: b.unit, nums: b.nums, refs: b.refs}
	if first, last := b.nums[0], b.nums[b.n-1]; first == last {
		j.span = fmt.Sprintf("%s %d", b.unit, first)
	} else {
		j.span = fmt.Sprintf("%ss %d-%d", b.unit, first, last)
	}
	if b.unit == "resource" {
		j.span = "(" + b.refs[0] + ")"
	}
	*b = batchBuilder{unit: b.unit}
	return j
}

// where says where a job's entry i came from, and its number for sorting.
func (j *importJob) where(i int) (string, int) {
	switch {
	case j.nums == nil:
		return fmt.Sprintf("entry %d", i), i
	case j.unit == "resource":
		return j.span, 0
	}
	return fmt.Sprintf("%s %d (%s)", j.unit, j.nums[i], j.refs[i]), j.nums[i]
}

// send posts a job and counts the outcome of each entry.
func (im *importer) send(ctx, sendCtx context.Context, j *importJob) {
	status, body, err := im.post(ctx, sendCtx, j)
	switch {
	case errors.Is(err, errInterrupted):
		im.finish(j, 0, true)
		return
	case err != nil:
		im.fail(j.file, j.span, firstNum(j), err.Error())
		im.finish(j, 0, false)
		return
	case status != http.StatusOK:
		im.fail(j.file, j.span, firstNum(j), statusText(status)+": "+diagnostics(body))
		im.finish(j, 0, false)
		return
	}
	var resp struct {
		ResourceType string `json:"resourceType"`
		Entry        []struct {
			Response struct {
				Status  string          `json:"status"`
				Outcome json.RawMessage `json:"outcome"`
			} `json:"response"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(body, &resp); err != nil || resp.ResourceType != "Bundle" || len(resp.Entry) != j.entries {
		im.fail(j.file, j.span, firstNum(j), fmt.Sprintf("the server answered 200 OK but not with a Bundle of %d entries: %s", j.entries, clip(body)))
		im.finish(j, 0, false)
		return
	}
	ok := 0
	for i, e := range resp.Entry {
		code, _, _ := strings.Cut(e.Response.Status, " ")
		if n, err := strconv.Atoi(code); err == nil && n >= 200 && n < 400 {
			ok++
			continue
		}
		where, num := j.where(i)
		im.fail(j.file, where, num, e.Response.Status+": "+diagnostics(e.Response.Outcome))
	}
	im.finish(j, ok, false)
}

func firstNum(j *importJob) int {
	if len(j.nums) > 0 {
		return j.nums[0]
	}
	return -1
}

// post sends a job's Bundle, retrying network errors, 429 and 5xx. It
// returns the status and body of the final answer; errInterrupted when the
// run was cancelled first.
func (im *importer) post(ctx, sendCtx context.Context, j *importJob) (int, []byte, error) {
	delay := im.RetryDelay
	for attempt := 1; ; attempt++ {
		status, body, retryAfter, err := im.postOnce(sendCtx, j.body)
		if sendCtx.Err() != nil || (err != nil && ctx.Err() != nil) {
			return 0, nil, errInterrupted
		}
		if err == nil && status != http.StatusTooManyRequests && (status < 500 || status == http.StatusNotImplemented) {
			return status, body, nil
		}
		why := ""
		if err != nil {
			why = err.Error()
		} else {
			why = statusText(status) + ": " + diagnostics(body)
		}
		if attempt > im.Retries {
			if attempt > 1 {
				why += fmt.Sprintf(" (%d attempts)", attempt)
			}
			return 0, nil, errors.New(why)
		}
		if ctx.Err() != nil {
			return 0, nil, errInterrupted
		}
		wait := delay + rand.N(delay/5+1)
		if retryAfter >= 0 {
			wait = min(retryAfter, time.Minute)
		}
		im.Progress.Notef("%s %s: %s; retrying in %s", j.file.path, j.span, why, roundDuration(wait))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, nil, errInterrupted
		case <-t.C:
		}
		delay = min(2*delay, 30*time.Second)
	}
}

// ping checks that Base answers GET [base]/metadata with a
// CapabilityStatement, so that a wrong --server fails at once rather than
// file by file.
func (im *importer) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, im.Base+"/metadata", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/fhir+json")
	im.authorize(req)
	res, err := im.Client.Do(req)
	if err != nil {
		return fmt.Errorf("--server %s: %w", im.Base, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	var head resourceHead
	if res.StatusCode != http.StatusOK || json.Unmarshal(body, &head) != nil || head.ResourceType != "CapabilityStatement" {
		return fmt.Errorf("--server %s: GET %s/metadata answered %s, not a CapabilityStatement: is it a FHIR base URL?", im.Base, im.Base, statusText(res.StatusCode))
	}
	return nil
}

// postOnce sends body to the base; retryAfter is the server's Retry-After,
// or -1.
func (im *importer) postOnce(ctx context.Context, body []byte) (status int, resp []byte, retryAfter time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, im.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, im.Base, bytes.NewReader(body))
	if err != nil {
		return 0, nil, -1, err
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("Accept", "application/fhir+json")
	req.Header.Set("Prefer", "return=minimal")
	im.authorize(req)
	res, err := im.Client.Do(req)
	if err != nil {
		return 0, nil, -1, err
	}
	defer res.Body.Close()
	resp, err = io.ReadAll(io.LimitReader(res.Body, maxResponseBytes))
	if err != nil {
		return 0, nil, -1, fmt.Errorf("read the response: %w", err)
	}
	retryAfter = -1
	if v := res.Header.Get("Retry-After"); v != "" {
		if s, err := strconv.Atoi(v); err == nil && s >= 0 {
			retryAfter = time.Duration(s) * time.Second
		} else if t, err := http.ParseTime(v); err == nil {
			retryAfter = max(0, time.Until(t))
		}
	}
	return res.StatusCode, resp, retryAfter, nil
}

func statusText(code int) string {
	return strconv.Itoa(code) + " " + http.StatusText(code)
}

// diagnostics reads an OperationOutcome's error issues (all its issues if
// none is an error), or shows the start of another body.
func diagnostics(body []byte) string {
	var oo struct {
		ResourceType string `json:"resourceType"`
		Issue        []struct {
			Severity    string `json:"severity"`
			Code        string `json:"code"`
			Diagnostics string `json:"diagnostics"`
		} `json:"issue"`
	}
	if json.Unmarshal(body, &oo) != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 {
		return clip(body)
	}
	var errs, all []string
	for _, is := range oo.Issue {
		d := is.Diagnostics
		if d == "" {
			d = is.Code
		}
		all = append(all, d)
		if is.Severity == "error" || is.Severity == "fatal" {
			errs = append(errs, d)
		}
	}
	if len(errs) == 0 {
		errs = all
	}
	return strings.Join(errs, "; ")
}

// clip shows the start of a body that is not an OperationOutcome.
func clip(body []byte) string {
	s := strings.Join(strings.Fields(string(body)), " ")
	if s == "" {
		return "no details"
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// fail records a failure of f.
func (im *importer) fail(f *importFile, where string, num int, msg string) {
	im.mu.Lock()
	defer im.mu.Unlock()
	im.failLocked(f, where, num, msg)
}

func (im *importer) failLocked(f *importFile, where string, num int, msg string) {
	f.failed = true
	im.nFailures++
	if len(im.failures) < maxFailuresListed {
		im.failures = append(im.failures, importFailure{file: f, where: where, num: num, msg: msg})
	}
	if im.nFailures <= maxLiveFailures {
		at := f.path
		if where != "" {
			at += " " + where
		}
		im.Progress.Notef("failed: %s: %s", at, msg)
		if im.nFailures == maxLiveFailures {
			im.Progress.Notef("(further failures are listed at the end)")
		}
	}
	im.Progress.Add(0, 1, 0)
}

// finish counts a job done: ok entries loaded, or interrupted.
func (im *importer) finish(j *importJob, ok int, interrupted bool) {
	im.mu.Lock()
	defer im.mu.Unlock()
	f := j.file
	f.pending--
	f.resources += int64(ok)
	im.resources += int64(ok)
	if interrupted {
		f.interrupted = true
	}
	im.Progress.Add(int64(ok), 0, j.bytes)
	im.fileDone(f)
}

// produced notes that all of f's jobs were sent, or why not.
func (im *importer) produced(f *importFile, err error) {
	im.mu.Lock()
	defer im.mu.Unlock()
	switch {
	case errors.Is(err, errInterrupted):
		f.interrupted = true
	case err != nil:
		im.failLocked(f, "", -1, err.Error())
	}
	f.produced = true
	if left := f.size - f.attributed; left > 0 {
		im.Progress.Add(0, 0, left)
	}
	im.fileDone(f)
}

// fileDone ends f once all its jobs are: a file loaded whole is recorded
// in the state file. Call with mu held.
func (im *importer) fileDone(f *importFile) {
	if !f.produced || f.pending > 0 {
		return
	}
	switch {
	case f.failed:
		im.failed++
	case f.interrupted && f.sent == 0:
		im.notStarted++
	case f.interrupted:
		im.interrupted++
	default:
		im.loaded++
		if err := im.State.Record(f.abs, f.size, f.modTime, f.resources); err != nil && im.stateErr == nil {
			im.stateErr = err
			im.Progress.Notef("%v: the files loaded from now on are not recorded", err)
		}
	}
	im.Progress.FileDone()
	if f.done != nil {
		f.done()
	}
}

// authorize adds the bearer token, if any.
func (im *importer) authorize(req *http.Request) {
	if im.Token != "" {
		req.Header.Set("Authorization", "Bearer "+im.Token)
	}
}
