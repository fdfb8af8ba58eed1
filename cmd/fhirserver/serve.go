package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fhirhub/fhirhub/conformance"
	"github.com/fhirhub/fhirhub/fhir"
	"github.com/fhirhub/fhirhub/fhir/mongostore"
	"github.com/fhirhub/fhirhub/fhir/rest"
	"github.com/fhirhub/fhirhub/fhir/search"
	"github.com/fhirhub/fhirhub/fhir/sqlitestore"
	"github.com/fhirhub/fhirhub/smart"
	"github.com/fhirhub/fhirhub/subscriptions"
	"github.com/fhirhub/fhirhub/subscriptions/natsbus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Main is the running server: Open starts it, Close stops it, Run does both
// around the life of a context. Tests use it in-process.
type Main struct {
	Config Config
	Logger *slog.Logger
	// Stderr receives what is printed once, outside the log (the admin
	// client's secret at first start).
	Stderr io.Writer

	store     fhir.Store
	authStore authStore
	auth      *smart.Server
	listener  net.Listener
	http      *http.Server
	served    chan error
	debug     *http.Server
	bus       *natsbus.Bus
	relay     *natsbus.Relay
	hub       *subscriptions.Hub

	reindexing *search.Reindexing
}

// NewMain returns a server for cfg that logs to logw.
func NewMain(cfg Config, logw io.Writer) *Main {
	level := slog.LevelInfo
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewJSONHandler(logw, opts)
	if cfg.LogFormat == "text" {
		h = slog.NewTextHandler(logw, opts)
	}
	return &Main{Config: cfg, Logger: slog.New(h), Stderr: logw}
}

// Run opens the server, serves until ctx ends, then shuts down gracefully.
func (m *Main) Run(ctx context.Context) error {
	if err := m.Open(ctx); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case err := <-m.served:
		closeCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = m.Close(closeCtx)
		return fmt.Errorf("http server stopped: %w", err)
	}
	m.Logger.Info("shutting down")
	closeCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return m.Close(closeCtx)
}

// Open opens the store, builds the API and starts listening.
func (m *Main) Open(ctx context.Context) error {
	cfg := m.Config
	validator, err := conformance.NewValidator()
	if err != nil {
		return fmt.Errorf("load the FHIR definitions: %w", err)
	}
	if cfg.MongoURI != "" {
		s := mongostore.New(cfg.MongoURI, cfg.MongoDatabase)
		s.Logger = m.Logger
		if err := s.Open(ctx); err != nil {
			return fmt.Errorf("open the MongoDB store: %w", err)
		}
		m.store = s
		m.Logger.Info("store: MongoDB", "database", s.Database)
	} else {
		s := sqlitestore.New(cfg.DataDir)
		s.Synchronous = cfg.SQLiteSynchronous
		if err := s.Open(ctx); err != nil {
			return fmt.Errorf("open the embedded store: %w", err)
		}
		m.store = s
		abs, _ := filepath.Abs(cfg.DataDir)
		m.Logger.Info("store: embedded SQLite", "dir", abs, "synchronous", strings.ToUpper(cfg.SQLiteSynchronous))
	}
	registry, err := search.NewRegistry(conformance.ResourceTypes())
	if err != nil {
		_ = m.store.Close(ctx)
		return fmt.Errorf("load the search parameters: %w", err)
	}
	indexer := &search.Indexer{Registry: registry, BaseURL: strings.TrimSuffix(cfg.BaseURL, "/"), OnError: func(typ, code string, err error) {
		m.Logger.Warn("a search parameter could not be indexed", "type", typ, "param", code, "err", err)
	}}
	svc := &fhir.Service{Store: m.store, Validator: validator, RequireIfMatch: cfg.RequireIfMatch, Indexer: indexer}
	var engine *search.Engine
	var reindexing *search.Reindexing
	if b, ok := m.store.(search.Backend); ok {
		engine = &search.Engine{Registry: registry, Backend: b, Store: m.store, Indexer: indexer}
		svc.Finder = engine
		svc.Check, svc.Committed = engine.CheckWrite, engine.Committed
		n, err := engine.LoadSearchParameters(ctx)
		if err != nil {
			_ = m.store.Close(ctx)
			return err
		}
		if n > 0 {
			m.Logger.Info("custom search parameters registered", "count", n)
		}
		if ri, ok := m.store.(fhir.Reindexer); ok {
			reindexing = search.NewReindexing(engine, ri)
			m.reindexing = reindexing
		}
	} else {
		m.Logger.Warn("this store cannot search; search answers 501 and conditional criteria are limited to _id, identifier and _lastUpdated")
	}
	metrics := prometheus.NewRegistry()
	metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err := m.openBus(ctx, svc, metrics); err != nil {
		_ = m.store.Close(ctx)
		return err
	}
	api := &rest.Server{
		Registry:        metrics,
		Search:          engine,
		Reindexing:      reindexing,
		Service:         svc,
		BaseURL:         cfg.BaseURL,
		MaxBodyBytes:    cfg.MaxBodyBytes,
		MaxBundleBytes:  cfg.MaxBundleBytes,
		CORSOrigins:     cfg.CORSOrigins,
		Logger:          m.Logger,
		Subsetter:       conformance.Subsetter{},
		SoftwareVersion: version,
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		_ = m.Close(ctx)
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	m.listener = ln
	if m.bus != nil && engine != nil {
		// The hub starts after the handler is built (openHub) and before
		// the server serves.
		api.WebSocket = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if m.hub == nil {
				http.Error(w, "subscriptions are not running", http.StatusServiceUnavailable)
				return
			}
			m.hub.WebSocket().ServeHTTP(w, r)
		})
		api.SubscriptionTopics = subscriptions.TopicURLs()
		api.SubscriptionStatus = func(ctx context.Context, r fhir.Resource) ([]byte, error) {
			if m.hub == nil {
				return nil, fhir.Internal(errors.New("subscriptions are not running"), "subscriptions")
			}
			return m.hub.SubscriptionStatus(ctx, r)
		}
		api.SubscriptionEvents = func(ctx context.Context, r fhir.Resource, params url.Values) ([]byte, error) {
			if m.hub == nil {
				return nil, fhir.Internal(errors.New("subscriptions are not running"), "subscriptions")
			}
			return m.hub.SubscriptionEvents(ctx, r, params)
		}
	}
	handler, err := m.openAuth(ctx, api, patientLister{svc: svc, engine: engine})
	if err != nil {
		_ = ln.Close()
		_ = m.Close(ctx)
		return err
	}
	if err := m.openHub(ctx, svc, engine, api); err != nil {
		_ = ln.Close()
		_ = m.Close(ctx)
		return err
	}
	m.http = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(m.Logger.Handler(), slog.LevelWarn),
	}
	m.served = make(chan error, 1)
	go func() {
		err := m.http.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		m.served <- err
	}()
	if cfg.DebugListen != "" {
		if err := m.openDebug(cfg.DebugListen); err != nil {
			_ = m.Close(ctx)
			return err
		}
	}
	m.Logger.Info("listening", "addr", ln.Addr().String(), "fhir_base", m.URL()+rest.BasePath, "version", version)
	return nil
}

// openBus connects to NATS (or starts the embedded server) and starts the
// relay of the change feed, woken by every commit of svc.
func (m *Main) openBus(ctx context.Context, svc *fhir.Service, reg prometheus.Registerer) error {
	cfg := m.Config
	if cfg.NATSOff {
		return nil
	}
	bus := natsbus.New(filepath.Join(cfg.DataDir, "nats"))
	bus.URL, bus.CredsFile, bus.CAFile, bus.CertFile, bus.KeyFile = cfg.NATSURL, cfg.NATSCreds, cfg.NATSCA, cfg.NATSCert, cfg.NATSKey
	if cfg.NATSListen != "" {
		bus.Listen = cfg.NATSListen
	}
	bus.MonitorListen = cfg.NATSMonitorListen
	if cfg.NATSReplicas > 0 {
		bus.Replicas = cfg.NATSReplicas
	}
	if cfg.NATSMaxAge > 0 {
		bus.MaxAge = cfg.NATSMaxAge
	}
	bus.MaxBytes = cfg.NATSMaxBytes
	bus.Logger = m.Logger
	if err := bus.Open(ctx); err != nil {
		return fmt.Errorf("open NATS: %w", err)
	}
	relay := natsbus.NewRelay(m.store, bus)
	relay.Logger = m.Logger
	if err := relay.Open(ctx); err != nil {
		_ = bus.Close(ctx)
		return err
	}
	m.bus, m.relay = bus, relay
	prev := svc.Committed
	svc.Committed = func(ch fhir.Change) {
		if prev != nil {
			prev(ch)
		}
		relay.Notify(ch.Seq)
	}
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "fhir_relay_published_total",
			Help: "Changes this server's relay published to the FHIR_CHANGES stream.",
		}, func() float64 { return float64(relay.Stats().Published) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "fhir_relay_last_published_seq",
			Help: "Feed position of the last change in the FHIR_CHANGES stream, as the relay last saw it.",
		}, func() float64 { return float64(relay.Stats().LastPublished) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "fhir_relay_lag",
			Help: "Feed positions committed but not yet published to FHIR_CHANGES (highest Seq known committed minus the last published).",
		}, func() float64 { return float64(relay.Stats().Lag()) }),
	)
	if cfg.NATSURL == "" {
		m.Logger.Info("change feed: embedded NATS", "url", bus.ClientURL(), "dir", bus.Dir, "stream", natsbus.StreamName)
	} else {
		m.Logger.Info("change feed: external NATS", "stream", natsbus.StreamName, "replicas", bus.Replicas)
	}
	return nil
}

// openHub starts the subscription hub on the relay's bus (nothing without
// NATS or search). It runs after the API's handler is built, so its
// RecordCreator follows the REST layer's authorization of every write.
func (m *Main) openHub(ctx context.Context, svc *fhir.Service, engine *search.Engine, api *rest.Server) error {
	cfg := m.Config
	if m.bus == nil || engine == nil {
		return nil
	}
	hub := subscriptions.New(svc, engine, m.bus)
	hub.Logger = m.Logger
	hub.BaseURL = strings.TrimSuffix(cfg.BaseURL, "/")
	hub.Endpoints = cfg.SubscriptionEndpoints
	if len(hub.Endpoints) == 0 {
		hub.Endpoints = subscriptions.DefaultEndpoints
		if cfg.Auth == "off" {
			hub.Endpoints = append(slices.Clone(hub.Endpoints), subscriptions.LoopbackEndpoints...)
		}
	}
	if cfg.SubscriptionRetryFirst > 0 {
		hub.Retry = subscriptions.Retry{Initial: cfg.SubscriptionRetryFirst, Max: cfg.SubscriptionRetryMax, MaxAttempts: cfg.SubscriptionMaxAttempts}
	}
	if cfg.SubscriptionTimeout > 0 {
		hub.AttemptTimeout = cfg.SubscriptionTimeout
	}
	if cfg.Auth != "off" {
		hub.ReadCheck = api.ReadCheck
		prev := svc.Authorize
		svc.Authorize = func(ctx context.Context, w fhir.Write, current *fhir.Resource) error {
			if prev != nil {
				if err := prev(ctx, w, current); err != nil {
					return err
				}
			}
			return hub.RecordCreator(ctx, w, current)
		}
	}
	if err := hub.Open(ctx); err != nil {
		return fmt.Errorf("start the subscription hub: %w", err)
	}
	m.hub = hub
	return nil
}

// Hub is the subscription hub once open (nil without NATS).
func (m *Main) Hub() *subscriptions.Hub { return m.hub }

// NATSURL is the URL of the embedded NATS server once open (empty with
// --nats-url or without NATS).
func (m *Main) NATSURL() string {
	if m.bus == nil {
		return ""
	}
	return m.bus.ClientURL()
}

// openAuth sets up authorization as --auth says and returns the server's
// handler: the SMART discovery document and /auth/* go to the
// authorization server, everything else to the FHIR API.
func (m *Main) openAuth(ctx context.Context, api *rest.Server, patients smart.PatientLister) (http.Handler, error) {
	cfg := m.Config
	switch cfg.Auth {
	case "off":
		m.Logger.Warn("AUTHORIZATION IS OFF: every client can read and write every record. Use only for local development.")
		return api.Handler(), nil
	case "external":
		api.Verifier = &smart.ExternalVerifier{Issuer: cfg.AuthIssuer, JWKSURL: cfg.AuthJWKSURL, Audience: cfg.AuthAudience, ScopeClaim: cfg.AuthScopeClaim}
		m.Logger.Info("authorization: tokens of an external identity provider", "issuer", cfg.AuthIssuer, "jwks_url", cfg.AuthJWKSURL)
		return api.Handler(), nil
	}
	st := newAuthStore(cfg)
	if err := st.Open(ctx); err != nil {
		return nil, err
	}
	m.authStore = st
	base := strings.TrimSuffix(cfg.BaseURL, "/")
	var aliases []string
	if base == "" {
		// Without --base-url the server is known by its listening address;
		// on a loopback or unspecified address, as localhost and 127.0.0.1.
		base = m.URL() + rest.BasePath
		port := m.listener.Addr().(*net.TCPAddr).Port
		if alias := fmt.Sprintf("http://127.0.0.1:%d%s", port, rest.BasePath); alias != base {
			aliases = append(aliases, alias)
		}
		m.Logger.Warn("no --base-url: tokens are issued for " + base + "; set --base-url to the public FHIR base URL in production")
	}
	m.auth = &smart.Server{
		Store: st, BaseURL: base, Aliases: aliases, Patients: patients, Logger: m.Logger, Bootstrap: m.Stderr,
		AccessTokenLifetime: cfg.AccessLifetime, RefreshTokenLifetime: cfg.RefreshLifetime,
	}
	if err := m.auth.Open(ctx); err != nil {
		_ = st.Close(ctx)
		m.authStore, m.auth = nil, nil
		return nil, err
	}
	api.Verifier = m.auth
	api.AuthEndpoints = m.auth.Endpoints()
	m.Logger.Info("authorization: the built-in SMART on FHIR server", "issuer", m.auth.Issuer(), "discovery", base+"/.well-known/smart-configuration")
	mux := http.NewServeMux()
	authHandler := m.auth.Handler()
	mux.Handle(smart.DiscoveryPath, authHandler)
	mux.Handle(smart.AuthPath+"/", authHandler)
	mux.Handle("/", api.Handler())
	return mux, nil
}

// URL is the server's root URL (http://127.0.0.1:port) once open.
func (m *Main) URL() string {
	addr := m.listener.Addr().(*net.TCPAddr)
	host := addr.IP.String()
	if addr.IP.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, fmt.Sprint(addr.Port))
}

// Close stops accepting requests, waits for those in flight, and closes the store.
func (m *Main) Close(ctx context.Context) error {
	var errs []error
	if m.debug != nil {
		_ = m.debug.Close()
	}
	if m.http != nil {
		if err := m.http.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http shutdown: %w", err))
		}
	}
	if m.reindexing != nil {
		m.reindexing.Close()
	}
	if m.hub != nil {
		if err := m.hub.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if m.relay != nil {
		if err := m.relay.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if m.bus != nil {
		if err := m.bus.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("close NATS: %w", err))
		}
	}
	if m.auth != nil {
		_ = m.auth.Close(ctx)
	}
	if m.authStore != nil {
		if err := m.authStore.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("close auth store: %w", err))
		}
	}
	if m.store != nil {
		if err := m.store.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("close store: %w", err))
		}
	}
	return errors.Join(errs...)
}

// openDebug serves the Go profiler on its own address, never on the API port.
func (m *Main) openDebug(addr string) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("debug listen on %s: %w", addr, err)
	}
	m.debug = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = m.debug.Serve(ln) }()
	m.Logger.Info("profiling enabled", "addr", ln.Addr().String())
	return nil
}
