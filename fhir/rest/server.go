package rest

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fhirhub/fhirhub/fhir"
	"github.com/fhirhub/fhirhub/fhir/search"
	"github.com/fhirhub/fhirhub/smart"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Server serves the FHIR API. Set the fields, then use Handler.
type Server struct {
	Service *fhir.Service
	// BaseURL is the public FHIR base (https://host/fhir); empty means derived
	// from each request's Host and the /fhir path.
	BaseURL string
	// MaxBodyBytes limits request bodies (default 16 MiB).
	MaxBodyBytes int64
	// MaxBundleBytes limits batch and transaction Bundles (default 256 MiB).
	MaxBundleBytes int64
	// DefaultCount and MaxCount bound _count on history (defaults 50, 1000).
	DefaultCount, MaxCount int
	// CORSOrigins are the origins whose scripts may call the API (default:
	// any, "*": the API takes bearer tokens, not cookies, so a page of
	// another origin can only use a token it was given).
	CORSOrigins []string
	// SoftwareVersion is reported in the CapabilityStatement.
	SoftwareVersion string
	// Search runs searches (nil: search answers 501).
	Search *search.Engine
	// Reindexing runs $reindex jobs (nil: $reindex answers 501).
	Reindexing *search.Reindexing
	// Subsetter applies _summary and _elements (nil: both refused).
	Subsetter Subsetter
	Logger    *slog.Logger
	// Registry receives the server's metrics (default: a new registry).
	Registry *prometheus.Registry
	// Verifier checks the bearer tokens of SMART on FHIR clients; nil turns
	// authorization off (every request may do everything). With it, every
	// request under /fhir but GET /fhir/metadata needs a token, and each
	// interaction is limited to what the token's scopes grant (see authz.go).
	Verifier smart.Verifier
	// AuthEndpoints are the OAuth endpoints the CapabilityStatement
	// advertises (keys authorize, token, introspect, revoke, register,
	// manage; absolute URLs).
	AuthEndpoints map[string]string

	metrics *metrics
	// WebSocket, when set, serves GET [base]/websocket, after
	// authentication (the caller's smart.Access is in the request's
	// context): the R4 websocket channel of Subscriptions.
	WebSocket http.Handler

	// SubscriptionStatus, when set, answers GET
	// [base]/Subscription/<id>/$status for a Subscription version the
	// caller may read; SubscriptionTopics are advertised on Subscription.
	SubscriptionStatus func(ctx context.Context, r fhir.Resource) ([]byte, error)
	SubscriptionTopics []string
	// SubscriptionEvents answers GET [base]/Subscription/<id>/$events
	// (501 when nil).
	SubscriptionEvents func(ctx context.Context, r fhir.Resource, params url.Values) ([]byte, error)

	handler  http.Handler // what Handler returned: bundles dispatch entries to it
	capMu    sync.Mutex
	capCache map[string][]byte
}

// BasePath is where the FHIR API lives.
const BasePath = "/fhir"

// Handler builds the HTTP handler: the FHIR API under /fhir plus /healthz,
// /readyz and /metrics.
func (s *Server) Handler() http.Handler {
	if s.MaxBodyBytes <= 0 {
		s.MaxBodyBytes = 16 << 20
	}
	if s.MaxBundleBytes <= 0 {
		s.MaxBundleBytes = 256 << 20
	}
	if s.DefaultCount <= 0 {
		s.DefaultCount = 50
	}
	if s.MaxCount <= 0 {
		s.MaxCount = 1000
	}
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	if s.Registry == nil {
		s.Registry = prometheus.NewRegistry()
		s.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	s.metrics = newMetrics(s.Registry)
	if s.Service.OnStoreError == nil {
		s.Service.OnStoreError = func(op string, err error) {
			s.metrics.storeErrors.WithLabelValues(op).Inc()
			s.Logger.Error("store failure", "op", op, "err", err)
		}
	}

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.Use(s.metrics.middleware)
	// Browser apps (SMART apps) call the API from their own origin with a
	// bearer token: answer CORS preflights before authentication, and let
	// scripts read the headers a FHIR client needs.
	e.Use(s.cors)

	e.GET("/healthz", func(c echo.Context) error {
		setInteraction(c, "healthz")
		return c.String(http.StatusOK, "ok\n")
	})
	e.GET("/readyz", s.ready)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{})))

	if s.Service.Authorize == nil {
		s.Service.Authorize = s.authorizeWrite // a no-op for requests without an Access
	}
	g := e.Group(BasePath, s.negotiate, s.authenticate)
	g.GET("/metadata", s.capabilities)
	if s.SubscriptionStatus != nil {
		g.GET("/Subscription/:id/$status", s.subscriptionStatus)
		g.GET("/Subscription/:id/$events", s.subscriptionEvents)
	}
	if s.WebSocket != nil {
		g.GET("/websocket", func(c echo.Context) error {
			setInteraction(c, "websocket")
			s.WebSocket.ServeHTTP(c.Response(), c.Request())
			return nil
		})
	}
	g.GET("", s.searchSystem)
	g.POST("/_search", s.searchSystem)
	g.POST("", s.bundle)
	g.GET("/_history", s.history("history-system"))
	g.POST("/$reindex", s.reindex)
	g.POST("/:type/$reindex", s.reindex)
	g.GET("/$reindex-status/:job", s.reindexStatus)
	g.GET("/:type/$everything", s.everything)
	g.POST("/:type/$everything", s.everything)
	g.GET("/:type/:id/$everything", s.everything)
	g.POST("/:type/:id/$everything", s.everything)
	g.GET("/:type/:id/$meta", s.metaRead)
	g.POST("/:type/:id/$meta", s.metaRead)
	g.POST("/:type/:id/$meta-add", s.metaAdd)
	g.POST("/:type/:id/$meta-delete", s.metaDelete)
	g.GET("/:type", s.searchType)
	g.POST("/:type/_search", s.searchType)
	g.POST("/:type", s.create)
	g.PUT("/:type", s.conditionalUpdate)
	g.DELETE("/:type", s.conditionalDelete)
	g.GET("/:type/_history", s.history("history-type"))
	g.GET("/:type/:id", s.read)
	g.HEAD("/:type/:id", s.read)
	g.PATCH("/:type/:id", s.patch)
	g.PATCH("/:type", s.patch)
	g.PUT("/:type/:id", s.update)
	g.DELETE("/:type/:id", s.delete)
	g.GET("/:type/:id/_history", s.history("history-instance"))
	g.GET("/:type/:id/:rtype", s.searchCompartment)
	g.POST("/:type/:id/:rtype/_search", s.searchCompartment)
	g.GET("/:type/:id/_history/:vid", s.vread)
	s.handler = e
	return e
}

// negotiate refuses requests whose response cannot be JSON before any work.
func (s *Server) negotiate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		mt, err := responseType(c.Request())
		if err != nil {
			return err
		}
		c.Set(mediaTypeKey, mt)
		return next(c)
	}
}

func (s *Server) base(c echo.Context) string {
	if s.BaseURL != "" {
		return strings.TrimSuffix(s.BaseURL, "/")
	}
	r := c.Request()
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p == "https" || p == "http" {
		scheme = p
	}
	return scheme + "://" + r.Host + BasePath
}

func (s *Server) ready(c echo.Context) error {
	setInteraction(c, "readyz")
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	if err := s.Service.Store.Ping(ctx); err != nil {
		s.Logger.Warn("store not reachable", "err", err)
		return c.String(http.StatusServiceUnavailable, "store not reachable\n")
	}
	return c.String(http.StatusOK, "ok\n")
}

func (s *Server) capabilities(c echo.Context) error {
	setInteraction(c, "capabilities")
	b, err := s.capabilityStatement(s.base(c))
	if err != nil {
		return fhir.Internal(err, "rest: render the CapabilityStatement")
	}
	return write(c, http.StatusOK, b)
}

// handleError is the one place where errors become OperationOutcomes.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var he *echo.HTTPError
	if errors.As(err, &he) && fhir.AsError(err) == nil {
		msg := http.StatusText(he.Code)
		switch he.Code {
		case http.StatusNotFound:
			msg = "no FHIR interaction at " + c.Request().Method + " " + c.Request().URL.Path
		case http.StatusMethodNotAllowed:
			msg = c.Request().Method + " is not allowed on " + c.Request().URL.Path
		}
		code := fhir.IssueNotSupported
		if he.Code == http.StatusNotFound {
			code = fhir.IssueNotFound
		}
		err = &fhir.Error{Status: he.Code, Issues: []fhir.Issue{{Severity: fhir.SeverityError, Code: code, Diagnostics: msg}}}
	}
	fe := fhir.AsError(err)
	if fe == nil {
		s.Logger.Error("request failed", "method", c.Request().Method, "path", c.Request().URL.Path, "err", err)
		fe = fhir.Internal(err, "the server failed to process the request")
	} else if st := fe.HTTPStatus(); st >= 500 && st != http.StatusNotImplemented {
		s.Logger.Error("request failed", "method", c.Request().Method, "path", c.Request().URL.Path, "err", err)
	}
	for k, v := range fe.Header {
		c.Response().Header().Set(k, v)
	}
	status := fe.HTTPStatus()
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(status)
		return
	}
	if err := write(c, status, outcomeJSON(fe.Issues)); err != nil {
		s.Logger.Error("write error response", "err", err)
	}
}

func etag(version int64) string { return `W/"` + strconv.FormatInt(version, 10) + `"` }

// subscriptionStatus answers $status, subscriptionEvents $events: the
// Subscription is read as a read would be (scopes, compartment), then
// rendered by SubscriptionStatus or SubscriptionEvents.
func (s *Server) subscriptionStatus(c echo.Context) error {
	return s.subscriptionOperation(c, func(ctx context.Context, r fhir.Resource) ([]byte, error) { return s.SubscriptionStatus(ctx, r) })
}

func (s *Server) subscriptionEvents(c echo.Context) error {
	if s.SubscriptionEvents == nil {
		setInteraction(c, "operation")
		return &fhir.Error{Status: http.StatusNotImplemented, Issues: []fhir.Issue{{Severity: fhir.SeverityError, Code: fhir.IssueNotSupported, Diagnostics: "$events is not supported"}}}
	}
	params := c.QueryParams()
	return s.subscriptionOperation(c, func(ctx context.Context, r fhir.Resource) ([]byte, error) {
		return s.SubscriptionEvents(ctx, r, params)
	})
}

func (s *Server) subscriptionOperation(c echo.Context, render func(context.Context, fhir.Resource) ([]byte, error)) error {
	setInteraction(c, "operation")
	ctx, id := c.Request().Context(), c.Param("id")
	if err := s.permit(ctx, "Subscription", smart.PermRead, "read"); err != nil {
		return err
	}
	r, err := s.Service.Read(ctx, "Subscription", id)
	if r.Version > 0 {
		if err := s.mustSee(ctx, r, smart.PermRead, func() error { return fhir.NotFound("Subscription/%s does not exist", id) }); err != nil {
			return err
		}
	}
	if err != nil {
		return err
	}
	b, err := render(ctx, r)
	if err != nil {
		return err
	}
	return write(c, http.StatusOK, b)
}
