package smart

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// DiscoveryPath is where the SMART configuration is served: under the FHIR
// base path, as the spec asks ({base}/.well-known/smart-configuration).
const DiscoveryPath = "/fhir/.well-known/smart-configuration"

// AuthPath is the prefix of the authorization server's endpoints.
const AuthPath = "/auth"

// Defaults of Server's lifetimes.
const (
	DefaultAccessTokenLifetime  = time.Hour
	DefaultRefreshTokenLifetime = 90 * 24 * time.Hour
	DefaultSessionLifetime      = 12 * time.Hour
	codeLifetime                = 60 * time.Second
	requestLifetime             = 15 * time.Minute
	launchLifetime              = 10 * time.Minute
	maxAssertionLifetime        = 5 * time.Minute
)

// Server is the built-in SMART on FHIR authorization server: discovery,
// the authorize and token endpoints, introspection, revocation, the login,
// consent and patient-picker pages and the admin API, all under /auth. It
// is also the Verifier of the tokens it issues. Set the fields, Open, then
// serve Handler.
type Server struct {
	Store Store
	// BaseURL is the FHIR base URL (https://fhir.example.org/fhir): the
	// audience of the tokens; the endpoints are at its origin under /auth.
	BaseURL string
	// Aliases are other FHIR base URLs accepted as aud (the same server
	// reached by another name, such as 127.0.0.1 beside localhost).
	Aliases []string
	// AccessTokenLifetime (default 1 h) is also the id token's.
	AccessTokenLifetime time.Duration
	// RefreshTokenLifetime (default 90 days) is that of offline_access
	// refresh tokens; online_access ones last a SessionLifetime.
	RefreshTokenLifetime time.Duration
	// SessionLifetime is how long a login on the pages lasts (default 12 h).
	SessionLifetime time.Duration
	// KeyReload is how often the signing keys are reread from the store, to
	// pick up a rotation made elsewhere (default 1 min).
	KeyReload time.Duration
	// Patients lets a Practitioner pick the patient of a standalone launch;
	// nil: only users linked to a Patient can launch standalone with
	// launch/patient.
	Patients PatientLister
	// Bootstrap receives the admin client's id and secret when Open creates
	// it (nil: io.Discard).
	Bootstrap io.Writer
	// HTTPClient fetches clients' JWKS URLs (default: 10 s timeout).
	HTTPClient *http.Client
	Logger     *slog.Logger
	// Now is the clock (default time.Now); tests move it.
	Now func() time.Time

	keys     keyring
	jwks     *jwksCache
	origin   string
	audience []string
	quit     chan struct{}
	wg       sync.WaitGroup
}

var _ Verifier = (*Server)(nil)

// PatientLister reads Patients for the patient picker.
type PatientLister interface {
	// ListPatients returns up to limit patients whose name matches query
	// (all when query is empty).
	ListPatients(ctx context.Context, query string, limit int) ([]PatientSummary, error)
	// Patient returns one patient; ErrNotFound when there is none.
	Patient(ctx context.Context, id string) (PatientSummary, error)
}

// PatientSummary is what the picker shows of a patient.
type PatientSummary struct {
	ID        string
	Name      string
	BirthDate string
	Gender    string
}

// AdminClientID is the id of the admin client Open creates in an empty store.
const AdminClientID = "admin"

// AdminScope is the scope of the admin API; only clients allowed it
// explicitly may be granted it.
const AdminScope = "admin"

func (s *Server) now() time.Time { return s.Now() }

// Open checks the configuration, loads (or creates) the signing keys,
// creates the admin client in a new store and starts the pruning of
// expired records.
func (s *Server) Open(ctx context.Context) error {
	if s.Store == nil {
		return errors.New("smart: open: no store")
	}
	u, err := url.Parse(s.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("smart: open: the FHIR base URL %q is not an absolute http(s) URL", s.BaseURL)
	}
	s.BaseURL = strings.TrimSuffix(s.BaseURL, "/")
	s.origin = u.Scheme + "://" + u.Host
	s.audience = []string{s.BaseURL}
	for _, a := range s.Aliases {
		s.audience = append(s.audience, strings.TrimSuffix(a, "/"))
	}
	if s.AccessTokenLifetime <= 0 {
		s.AccessTokenLifetime = DefaultAccessTokenLifetime
	}
	if s.RefreshTokenLifetime <= 0 {
		s.RefreshTokenLifetime = DefaultRefreshTokenLifetime
	}
	if s.SessionLifetime <= 0 {
		s.SessionLifetime = DefaultSessionLifetime
	}
	if s.KeyReload <= 0 {
		s.KeyReload = time.Minute
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	if s.Bootstrap == nil {
		s.Bootstrap = io.Discard
	}
	if s.HTTPClient == nil {
		s.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	s.jwks = newJWKSCache(s.HTTPClient, s.Now)
	if err := s.loadKeys(ctx, true); err != nil {
		return fmt.Errorf("smart: open: load the signing keys: %w", err)
	}
	if err := s.bootstrap(ctx); err != nil {
		return fmt.Errorf("smart: open: create the admin client: %w", err)
	}
	s.quit = make(chan struct{})
	s.wg.Add(1)
	go s.pruneLoop()
	return nil
}

// Close stops the pruning. It does not close the Store.
func (s *Server) Close(ctx context.Context) error {
	if s.quit != nil {
		close(s.quit)
		s.wg.Wait()
		s.quit = nil
	}
	return nil
}

func (s *Server) pruneLoop() {
	defer s.wg.Done()
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-s.quit:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if err := s.Store.Prune(ctx, s.now()); err != nil {
				s.Logger.Warn("pruning expired authorization records failed", "err", err)
			}
			cancel()
		}
	}
}

// bootstrap creates the admin client the first time a server opens the
// store, when it holds no client, and prints its secret once.
func (s *Server) bootstrap(ctx context.Context) error {
	if done, err := s.Store.Marked(ctx, MarkBootstrap, AdminClientID); err != nil || done {
		return err
	}
	clients, err := s.Store.Clients(ctx)
	if err != nil {
		return err
	}
	if len(clients) > 0 {
		return s.Store.Mark(ctx, MarkBootstrap, AdminClientID, time.Time{})
	}
	if err := s.Store.Mark(ctx, MarkBootstrap, AdminClientID, time.Time{}); err != nil {
		if errors.Is(err, ErrUsed) {
			return nil // another server got there first
		}
		return err
	}
	c := Client{
		ID:     AdminClientID,
		Name:   "Administrator (created at first start)",
		Type:   ClientSymmetric,
		Scopes: []string{"system/*.cruds", AdminScope},
	}
	secret, err := RegisterClient(ctx, s.Store, &c, s.now())
	if err != nil {
		return err
	}
	fmt.Fprintf(s.Bootstrap, "\nfhirserver: created the admin client; its secret is shown this once:\n"+
		"  client id:     %s\n  client secret: %s\n"+
		"  get a token:   curl -u %s:%s -d grant_type=client_credentials -d scope='system/*.rs admin' %s\n\n",
		c.ID, secret, c.ID, secret, s.Endpoints()["token"])
	s.Logger.Info("created the admin client; its secret was printed on stderr once", "client_id", c.ID)
	return nil
}

// Endpoints returns the absolute URLs of the authorize, token, introspect,
// revoke and jwks endpoints (for the CapabilityStatement's oauth-uris).
func (s *Server) Endpoints() map[string]string {
	return map[string]string{
		"authorize":  s.origin + AuthPath + "/authorize",
		"token":      s.origin + AuthPath + "/token",
		"introspect": s.origin + AuthPath + "/introspect",
		"revoke":     s.origin + AuthPath + "/revoke",
		"jwks":       s.origin + AuthPath + "/jwks",
	}
}

// Issuer is the iss of the tokens: the origin's /auth.
func (s *Server) Issuer() string { return s.origin + AuthPath }

func (s *Server) secureCookies() bool { return strings.HasPrefix(s.origin, "https://") }

// Handler serves the discovery document and everything under /auth.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+DiscoveryPath, s.handleDiscovery)
	mux.HandleFunc("GET "+AuthPath+"/.well-known/openid-configuration", s.handleOpenIDConfiguration)
	mux.HandleFunc("GET "+AuthPath+"/jwks", s.handleJWKS)
	mux.HandleFunc("GET "+AuthPath+"/authorize", s.handleAuthorize)
	mux.HandleFunc("POST "+AuthPath+"/authorize", s.handleAuthorize)
	mux.HandleFunc("GET "+AuthPath+"/login", s.handleLoginPage)
	mux.HandleFunc("POST "+AuthPath+"/login", s.handleLogin)
	mux.HandleFunc("GET "+AuthPath+"/pick", s.handlePickPage)
	mux.HandleFunc("POST "+AuthPath+"/pick", s.handlePick)
	mux.HandleFunc("GET "+AuthPath+"/consent", s.handleConsentPage)
	mux.HandleFunc("POST "+AuthPath+"/consent", s.handleConsent)
	mux.HandleFunc("GET "+AuthPath+"/style.css", s.handleStyle)
	mux.HandleFunc("POST "+AuthPath+"/token", s.handleToken)
	mux.HandleFunc("POST "+AuthPath+"/introspect", s.handleIntrospect)
	mux.HandleFunc("POST "+AuthPath+"/revoke", s.handleRevoke)
	mux.HandleFunc("POST "+AuthPath+"/launch", s.admin(s.handleLaunch))
	mux.HandleFunc("GET "+AuthPath+"/admin/clients", s.admin(s.handleListClients))
	mux.HandleFunc("POST "+AuthPath+"/admin/clients", s.admin(s.handleAddClient))
	mux.HandleFunc("DELETE "+AuthPath+"/admin/clients/{id}", s.admin(s.handleRemoveClient))
	mux.HandleFunc("GET "+AuthPath+"/admin/users", s.admin(s.handleListUsers))
	mux.HandleFunc("POST "+AuthPath+"/admin/users", s.admin(s.handleAddUser))
	mux.HandleFunc("DELETE "+AuthPath+"/admin/users/{username}", s.admin(s.handleRemoveUser))
	mux.HandleFunc("POST "+AuthPath+"/admin/keys/rotate", s.admin(s.handleRotateKey))
	return cors(mux)
}

// cors lets browser apps (public clients) call discovery, the token
// endpoint and the JWKS from their own origin; the pages and the admin
// API are not opened up.
func cors(next http.Handler) http.Handler {
	open := map[string]bool{
		DiscoveryPath: true, AuthPath + "/token": true, AuthPath + "/jwks": true,
		AuthPath + "/revoke": true, AuthPath + "/.well-known/openid-configuration": true,
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if open[r.URL.Path] && r.Header.Get("Origin") != "" {
			w.Header().Set("Access-Control-Allow-Origin", "*")
			if r.Method == http.MethodOptions {
				w.Header().Set("Access-Control-Allow-Methods", "GET, POST")
				w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
				w.Header().Set("Access-Control-Max-Age", "600")
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// Configuration is the SMART configuration document (SMART App Launch 2.x,
// "Metadata"); registration_endpoint is left out: there is no dynamic
// registration.
type Configuration struct {
	Issuer                                     string   `json:"issuer"`
	JWKSURI                                    string   `json:"jwks_uri"`
	AuthorizationEndpoint                      string   `json:"authorization_endpoint"`
	GrantTypesSupported                        []string `json:"grant_types_supported"`
	TokenEndpoint                              string   `json:"token_endpoint"`
	TokenEndpointAuthMethodsSupported          []string `json:"token_endpoint_auth_methods_supported"`
	TokenEndpointAuthSigningAlgValuesSupported []string `json:"token_endpoint_auth_signing_alg_values_supported"`
	ScopesSupported                            []string `json:"scopes_supported"`
	ResponseTypesSupported                     []string `json:"response_types_supported"`
	ManagementEndpoint                         string   `json:"management_endpoint,omitempty"`
	IntrospectionEndpoint                      string   `json:"introspection_endpoint"`
	RevocationEndpoint                         string   `json:"revocation_endpoint"`
	CodeChallengeMethodsSupported              []string `json:"code_challenge_methods_supported"`
	Capabilities                               []string `json:"capabilities"`
}

// Configuration returns the discovery document.
func (s *Server) Configuration() Configuration {
	e := s.Endpoints()
	return Configuration{
		Issuer:                            s.Issuer(),
		JWKSURI:                           e["jwks"],
		AuthorizationEndpoint:             e["authorize"],
		GrantTypesSupported:               []string{"authorization_code", "client_credentials", "refresh_token"},
		TokenEndpoint:                     e["token"],
		TokenEndpointAuthMethodsSupported: []string{"private_key_jwt", "client_secret_basic"},
		TokenEndpointAuthSigningAlgValuesSupported: []string{"RS384", "ES384"},
		ScopesSupported: []string{
			"openid", "fhirUser", "profile", "launch", "launch/patient", "launch/encounter",
			"offline_access", "online_access",
			"patient/*.cruds", "user/*.cruds", "system/*.cruds",
			"patient/*.read", "patient/*.write", "user/*.read", "user/*.write", "system/*.read", "system/*.write",
			AdminScope,
		},
		ResponseTypesSupported:        []string{"code"},
		IntrospectionEndpoint:         e["introspect"],
		RevocationEndpoint:            e["revoke"],
		CodeChallengeMethodsSupported: []string{"S256"},
		Capabilities: []string{
			"launch-ehr", "launch-standalone", "authorize-post",
			"client-public", "client-confidential-symmetric", "client-confidential-asymmetric",
			"sso-openid-connect",
			"context-banner", "context-ehr-patient", "context-ehr-encounter", "context-standalone-patient",
			"permission-offline", "permission-online", "permission-patient", "permission-user",
			"permission-v1", "permission-v2",
		},
	}
}

func (s *Server) handleDiscovery(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSON(w, http.StatusOK, s.Configuration())
}

// handleOpenIDConfiguration serves the OpenID Connect discovery document
// of the issuer, for OIDC libraries that look for it.
func (s *Server) handleOpenIDConfiguration(w http.ResponseWriter, r *http.Request) {
	e := s.Endpoints()
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                s.Issuer(),
		"jwks_uri":                              e["jwks"],
		"authorization_endpoint":                e["authorize"],
		"token_endpoint":                        e["token"],
		"introspection_endpoint":                e["introspect"],
		"revocation_endpoint":                   e["revoke"],
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{string(signingAlg)},
		"scopes_supported":                      []string{"openid", "fhirUser", "profile"},
		"claims_supported":                      []string{"iss", "sub", "aud", "exp", "iat", "nonce", "fhirUser", "auth_time"},
		"code_challenge_methods_supported":      []string{"S256"},
		"token_endpoint_auth_methods_supported": []string{"private_key_jwt", "client_secret_basic"},
	})
}

func (s *Server) handleJWKS(w http.ResponseWriter, r *http.Request) {
	b, err := s.JWKS(r.Context())
	if err != nil {
		s.Logger.Error("serving the JWKS failed", "err", err)
		writeOAuthError(w, errServer)
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=60")
	_, _ = w.Write(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
