package rest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/fhirhub/fhirhub/conformance"
	"github.com/fhirhub/fhirhub/fhir"
	"github.com/fhirhub/fhirhub/fhir/mongostore"
	"github.com/fhirhub/fhirhub/fhir/mongostore/mongotest"
	"github.com/fhirhub/fhirhub/fhir/rest"
	"github.com/fhirhub/fhirhub/fhir/search"
	"github.com/fhirhub/fhirhub/fhir/sqlitestore"
)

var (
	validatorOnce sync.Once
	validator     *conformance.Validator
	validatorErr  error
)

var (
	registryOnce sync.Once
	registry     *search.Registry
	registryErr  error
)

func sharedRegistry(t testing.TB) *search.Registry {
	registryOnce.Do(func() { registry, registryErr = search.NewRegistry(conformance.ResourceTypes()) })
	if registryErr != nil {
		t.Fatal(registryErr)
	}
	return registry
}

func sharedValidator(t testing.TB) *conformance.Validator {
	validatorOnce.Do(func() { validator, validatorErr = conformance.NewValidator() })
	if validatorErr != nil {
		t.Fatal(validatorErr)
	}
	return validator
}

// testServer is a real server on 127.0.0.1:0 over a fresh embedded store.
type testServer struct {
	t       testing.TB
	URL     string // the FHIR base
	Store   fhir.Store
	Service *fhir.Service // the server's write path, for loading data without HTTP
}

// engine selects the store newTestServer uses: "sqlite" or "mongo".
var engine = "sqlite"

var (
	mongoOnce sync.Once
	mongoURI  string
	mongoStop = func() {}
	mongoErr  error
	dbSeq     atomic.Int64
)

func TestMain(m *testing.M) {
	code := m.Run()
	mongoStop()
	os.Exit(code)
}

func openStore(t testing.TB) fhir.Store {
	t.Helper()
	if engine == "mongo" {
		mongoOnce.Do(func() { mongoURI, mongoStop, mongoErr = mongotest.Start() })
		if mongoErr != nil {
			t.Fatal(mongoErr)
		}
		s := mongostore.New(mongoURI, fmt.Sprintf("resttest_%d_%d", os.Getpid(), dbSeq.Add(1)))
		if err := s.Open(context.Background()); err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := sqlitestore.New(t.TempDir())
	s.Synchronous = "NORMAL"
	if err := s.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func newTestServer(t testing.TB, configure ...func(*rest.Server)) *testServer {
	t.Helper()
	store := openStore(t)
	reg := sharedRegistry(t)
	ix := &search.Indexer{Registry: reg, OnError: func(typ, code string, err error) { t.Errorf("index %s.%s: %v", typ, code, err) }}
	svc := &fhir.Service{Store: store, Validator: sharedValidator(t), Indexer: ix}
	api := &rest.Server{Service: svc, Subsetter: conformance.Subsetter{}}
	if b, ok := store.(search.Backend); ok {
		eng := &search.Engine{Registry: reg, Backend: b, Store: store, Indexer: ix}
		svc.Finder = eng
		api.Search = eng
		if ri, ok := store.(fhir.Reindexer); ok && engine == "sqlite" {
			// Custom SearchParameters change the registry: give this server its own.
			own, err := search.NewRegistry(conformance.ResourceTypes())
			if err != nil {
				t.Fatal(err)
			}
			eng.Registry, ix.Registry = own, own
			svc.Check, svc.Committed = eng.CheckWrite, eng.Committed
			api.Reindexing = search.NewReindexing(eng, ri)
			t.Cleanup(api.Reindexing.Close)
		}
	}
	for _, f := range configure {
		f(api)
	}
	hs := httptest.NewServer(api.Handler())
	t.Cleanup(func() {
		hs.Close()
		store.Close(context.Background())
	})
	return &testServer{t: t, URL: hs.URL + "/fhir", Store: store, Service: svc}
}

// response is a received HTTP response with its body read.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r response) JSON(t testing.TB) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(r.Body, &v); err != nil {
		t.Fatalf("body is not JSON (%v): %s", err, r.Body)
	}
	return v
}

// do sends a request; headers are "Name: value" strings.
func (s *testServer) do(method, path string, body string, headers ...string) response {
	s.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	url := path
	if !strings.HasPrefix(path, "http") {
		url = s.URL + path
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// mustStatus fails unless the response has the status.
func mustStatus(t testing.TB, r response, want int) {
	t.Helper()
	if r.Status != want {
		t.Fatalf("got status %d, want %d; body: %s", r.Status, want, r.Body)
	}
}

// outcome checks r is an OperationOutcome with status and returns its first
// issue's diagnostics and expression.
func outcome(t testing.TB, r response, status int) (diag string, expr string) {
	t.Helper()
	mustStatus(t, r, status)
	v := r.JSON(t)
	if v["resourceType"] != "OperationOutcome" {
		t.Fatalf("got %v, want an OperationOutcome", v["resourceType"])
	}
	issues, _ := v["issue"].([]any)
	if len(issues) == 0 {
		t.Fatal("OperationOutcome without issues")
	}
	is := issues[0].(map[string]any)
	diag, _ = is["diagnostics"].(string)
	if e, ok := is["expression"].([]any); ok && len(e) > 0 {
		expr, _ = e[0].(string)
	}
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/fhir+json") {
		t.Errorf("error Content-Type = %q, want application/fhir+json", r.Header.Get("Content-Type"))
	}
	return diag, expr
}

// withoutServerMeta drops meta.versionId and meta.lastUpdated (and meta if
// that empties it) for comparing what was sent with what came back.
func withoutServerMeta(v map[string]any) map[string]any {
	out := map[string]any{}
	for k, x := range v {
		out[k] = x
	}
	if m, ok := out["meta"].(map[string]any); ok {
		mm := map[string]any{}
		for k, x := range m {
			if k != "versionId" && k != "lastUpdated" {
				mm[k] = x
			}
		}
		if len(mm) == 0 {
			delete(out, "meta")
		} else {
			out["meta"] = mm
		}
	}
	return out
}

func canonical(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	_ = json.Indent(&buf, b, "", " ")
	return buf.String()
}
