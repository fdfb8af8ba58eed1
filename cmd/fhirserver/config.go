package main

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Config is everything the server is configured with, from flags and the
// environment (each flag --x-y also reads FHIR_X_Y; a flag given wins).
type Config struct {
	Listen            string
	DataDir           string
	BaseURL           string
	MongoURI          string
	MongoDatabase     string
	Auth              string
	AuthIssuer        string
	AuthJWKSURL       string
	AuthAudience      string
	AuthScopeClaim    string
	AccessLifetime    time.Duration
	RefreshLifetime   time.Duration
	MaxBodyBytes      int64
	MaxBundleBytes    int64
	CORSOrigins       []string
	RequireIfMatch    bool
	SQLiteSynchronous string
	LogLevel          string
	LogFormat         string
	DebugListen       string

	// The change feed over NATS (subscriptions/natsbus).
	NATSURL           string // external NATS; empty: embedded server
	NATSListen        string // embedded server's client address
	NATSMonitorListen string // embedded server's HTTP monitoring; empty: off
	NATSCreds         string
	NATSCA            string
	NATSCert          string
	NATSKey           string
	NATSReplicas      int
	NATSMaxAge        time.Duration
	NATSMaxBytes      int64 // 0: unlimited
	// NATSOff runs without NATS and relay (the offline import: the
	// server's relay publishes its changes when it next runs).
	NATSOff bool

	// Subscriptions (subscriptions.Hub).
	SubscriptionEndpoints   []string // the endpoint allow-list; empty: the default
	SubscriptionRetryFirst  time.Duration
	SubscriptionRetryMax    time.Duration
	SubscriptionMaxAttempts int
	SubscriptionTimeout     time.Duration
}

func parseServeFlags(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	var cfg Config
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var maxBody, maxBundle, accessLife, refreshLife, cors, natsMaxAge, natsMaxBytes, subEndpoints string
	fs.StringVar(&cfg.Listen, "listen", ":8080", "address to listen on (FHIR_LISTEN)")
	fs.StringVar(&cfg.DataDir, "data-dir", "./data", "directory of the embedded store (FHIR_DATA_DIR)")
	fs.StringVar(&cfg.BaseURL, "base-url", "", "public FHIR base URL, e.g. https://fhir.example.org/fhir; default: from each request's Host (FHIR_BASE_URL)")
	fs.StringVar(&cfg.MongoURI, "mongodb-uri", "", "use the MongoDB store at this URI instead of the embedded store (FHIR_MONGODB_URI)")
	fs.StringVar(&cfg.MongoDatabase, "mongodb-database", "", "MongoDB database name; default: from the URI path, else fhir (FHIR_MONGODB_DATABASE)")
	fs.StringVar(&cfg.Auth, "auth", "smart", "authorization: smart (the built-in SMART on FHIR authorization server under /auth), external (tokens of an external identity provider: see --auth-issuer) or off (no authorization, local development only) (FHIR_AUTH)")
	fs.StringVar(&cfg.AuthIssuer, "auth-issuer", "", "--auth external: the identity provider's issuer (the tokens' iss) (FHIR_AUTH_ISSUER)")
	fs.StringVar(&cfg.AuthJWKSURL, "auth-jwks-url", "", "--auth external: the URL of the identity provider's JWK Set (FHIR_AUTH_JWKS_URL)")
	fs.StringVar(&cfg.AuthAudience, "auth-audience", "", "--auth external: the aud the tokens must carry; empty: not checked (FHIR_AUTH_AUDIENCE)")
	fs.StringVar(&cfg.AuthScopeClaim, "auth-scope-claim", "scope", "--auth external: the claim holding the SMART scopes: scope (a string) or scp (an array) (FHIR_AUTH_SCOPE_CLAIM)")
	fs.StringVar(&accessLife, "access-token-lifetime", "1h", "--auth smart: lifetime of access and id tokens (FHIR_ACCESS_TOKEN_LIFETIME)")
	fs.StringVar(&refreshLife, "refresh-token-lifetime", "90d", "--auth smart: lifetime of offline_access refresh tokens, renewed at each use (FHIR_REFRESH_TOKEN_LIFETIME)")
	fs.StringVar(&maxBody, "max-body", "16MiB", "largest request body accepted, e.g. 16MiB, 512KiB, 1000000 (FHIR_MAX_BODY)")
	fs.StringVar(&maxBundle, "max-bundle-size", "256MiB", "largest batch or transaction Bundle accepted (FHIR_MAX_BUNDLE_SIZE)")
	fs.StringVar(&cors, "cors-origins", "*", "origins whose browser apps may call the API, comma-separated, or * for any (FHIR_CORS_ORIGINS)")
	fs.BoolVar(&cfg.RequireIfMatch, "require-if-match", false, "refuse updates and deletes without If-Match (FHIR_REQUIRE_IF_MATCH)")
	fs.StringVar(&cfg.SQLiteSynchronous, "sqlite-synchronous", "FULL", "embedded store durability: FULL (survives power loss) or NORMAL (survives process crashes) (FHIR_SQLITE_SYNCHRONOUS)")
	fs.StringVar(&cfg.LogLevel, "log-level", "info", "debug, info, warn or error (FHIR_LOG_LEVEL)")
	fs.StringVar(&cfg.LogFormat, "log-format", "json", "json or text (FHIR_LOG_FORMAT)")
	fs.StringVar(&cfg.DebugListen, "debug-listen", "", "serve Go profiling (/debug/pprof) on this separate address, e.g. 127.0.0.1:6060; off when empty (FHIR_DEBUG_LISTEN)")
	fs.StringVar(&cfg.NATSURL, "nats-url", "", "publish the change feed to this external NATS server or cluster (comma-separated URLs); default: an embedded NATS server with JetStream in --data-dir/nats (FHIR_NATS_URL)")
	fs.StringVar(&cfg.NATSListen, "nats-listen", "127.0.0.1:0", "embedded NATS: client address, e.g. 127.0.0.1:4222 for other replicas or tools; default a random free port on 127.0.0.1 (FHIR_NATS_LISTEN)")
	fs.StringVar(&cfg.NATSMonitorListen, "nats-monitor-listen", "", "embedded NATS: serve its HTTP monitoring on this address, e.g. 127.0.0.1:8222; off when empty (FHIR_NATS_MONITOR_LISTEN)")
	fs.StringVar(&cfg.NATSCreds, "nats-creds", "", "--nats-url: credentials file (JWT and NKey seed) (FHIR_NATS_CREDS)")
	fs.StringVar(&cfg.NATSCA, "nats-ca", "", "--nats-url: CA certificate file to verify the servers (FHIR_NATS_CA)")
	fs.StringVar(&cfg.NATSCert, "nats-cert", "", "--nats-url: client certificate file for mutual TLS (FHIR_NATS_CERT)")
	fs.StringVar(&cfg.NATSKey, "nats-key", "", "--nats-url: client key file for mutual TLS (FHIR_NATS_KEY)")
	fs.IntVar(&cfg.NATSReplicas, "nats-replicas", 1, "replicas of the FHIR_CHANGES stream; 3 on a production cluster (FHIR_NATS_REPLICAS)")
	fs.StringVar(&natsMaxAge, "nats-max-age", "7d", "how long FHIR_CHANGES keeps a change, e.g. 7d, 12h (FHIR_NATS_MAX_AGE)")
	fs.StringVar(&natsMaxBytes, "nats-max-bytes", "", "largest size of FHIR_CHANGES, e.g. 10GiB, the oldest changes going first; default unlimited (FHIR_NATS_MAX_BYTES)")
	fs.StringVar(&subEndpoints, "subscription-endpoints", "", "rest-hook endpoints subscriptions may use, comma-separated scheme://host[:port][/path] (host * or *.example.org); default https://*, plus http://127.0.0.1, http://localhost and http://[::1] with --auth off (FHIR_SUBSCRIPTION_ENDPOINTS)")
	fs.DurationVar(&cfg.SubscriptionRetryFirst, "subscription-retry-initial", time.Second, "first retry wait bound of a failed notification; doubles after each attempt, with full jitter (FHIR_SUBSCRIPTION_RETRY_INITIAL)")
	fs.DurationVar(&cfg.SubscriptionRetryMax, "subscription-retry-max", 5*time.Minute, "largest retry wait bound of a notification (FHIR_SUBSCRIPTION_RETRY_MAX)")
	fs.IntVar(&cfg.SubscriptionMaxAttempts, "subscription-max-attempts", 10, "attempts to deliver one notification before the subscription goes to error (FHIR_SUBSCRIPTION_MAX_ATTEMPTS)")
	fs.DurationVar(&cfg.SubscriptionTimeout, "subscription-timeout", 10*time.Second, "time limit of one notification POST (FHIR_SUBSCRIPTION_TIMEOUT)")

	// Environment first, so flags given on the command line override it.
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := "FHIR_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(name); v != "" {
			if err := f.Value.Set(v); err != nil && envErr == nil {
				envErr = fmt.Errorf("%s=%q: %v", name, v, err)
			}
		}
	})
	if envErr != nil {
		return cfg, envErr
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("serve takes no arguments, got %q", fs.Args())
	}
	n, err := parseSize(maxBody)
	if err != nil {
		return cfg, fmt.Errorf("--max-body: %v", err)
	}
	cfg.MaxBodyBytes = n
	for o := range strings.SplitSeq(cors, ",") {
		if o = strings.TrimSpace(o); o != "" {
			cfg.CORSOrigins = append(cfg.CORSOrigins, o)
		}
	}
	if cfg.MaxBundleBytes, err = parseSize(maxBundle); err != nil {
		return cfg, fmt.Errorf("--max-bundle-size: %v", err)
	}
	if cfg.AccessLifetime, err = parseLifetime(accessLife); err != nil {
		return cfg, fmt.Errorf("--access-token-lifetime: %v", err)
	}
	if cfg.RefreshLifetime, err = parseLifetime(refreshLife); err != nil {
		return cfg, fmt.Errorf("--refresh-token-lifetime: %v", err)
	}
	if cfg.NATSMaxAge, err = parseLifetime(natsMaxAge); err != nil {
		return cfg, fmt.Errorf("--nats-max-age: %v", err)
	}
	if natsMaxBytes != "" {
		if cfg.NATSMaxBytes, err = parseSize(natsMaxBytes); err != nil {
			return cfg, fmt.Errorf("--nats-max-bytes: %v", err)
		}
	}
	if cfg.NATSReplicas < 1 || cfg.NATSReplicas > 5 {
		return cfg, fmt.Errorf("--nats-replicas %d: use 1 to 5", cfg.NATSReplicas)
	}
	if cfg.NATSURL == "" && cfg.NATSReplicas != 1 {
		return cfg, fmt.Errorf("--nats-replicas %d needs --nats-url (a NATS cluster): the embedded server is a single node", cfg.NATSReplicas)
	}
	if cfg.NATSURL == "" && (cfg.NATSCreds != "" || cfg.NATSCA != "" || cfg.NATSCert != "" || cfg.NATSKey != "") {
		return cfg, fmt.Errorf("--nats-creds, --nats-ca, --nats-cert and --nats-key need --nats-url")
	}
	if (cfg.NATSCert == "") != (cfg.NATSKey == "") {
		return cfg, fmt.Errorf("--nats-cert and --nats-key go together")
	}
	for e := range strings.SplitSeq(subEndpoints, ",") {
		if e = strings.TrimSpace(e); e != "" {
			cfg.SubscriptionEndpoints = append(cfg.SubscriptionEndpoints, e)
		}
	}
	if cfg.SubscriptionRetryFirst <= 0 || cfg.SubscriptionRetryMax < cfg.SubscriptionRetryFirst {
		return cfg, fmt.Errorf("--subscription-retry-initial %s and --subscription-retry-max %s: want 0 < initial <= max", cfg.SubscriptionRetryFirst, cfg.SubscriptionRetryMax)
	}
	if cfg.SubscriptionMaxAttempts < 1 {
		return cfg, fmt.Errorf("--subscription-max-attempts %d: want at least 1", cfg.SubscriptionMaxAttempts)
	}
	if cfg.SubscriptionTimeout <= 0 {
		return cfg, fmt.Errorf("--subscription-timeout %s: want a positive duration", cfg.SubscriptionTimeout)
	}
	switch cfg.Auth {
	case "smart", "off":
	case "external":
		if cfg.AuthIssuer == "" || cfg.AuthJWKSURL == "" {
			return cfg, fmt.Errorf("--auth external needs --auth-issuer and --auth-jwks-url")
		}
		if cfg.AuthScopeClaim != "scope" && cfg.AuthScopeClaim != "scp" {
			return cfg, fmt.Errorf("--auth-scope-claim %q: use scope or scp", cfg.AuthScopeClaim)
		}
	default:
		return cfg, fmt.Errorf("--auth %q: use smart, external or off", cfg.Auth)
	}
	switch cfg.LogFormat {
	case "json", "text":
	default:
		return cfg, fmt.Errorf("--log-format %q: use json or text", cfg.LogFormat)
	}
	return cfg, nil
}

// parseSize reads 1048576, 512KiB, 16MiB, 1GiB (also KB/MB/GB as powers of 1000).
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1000}, {"MB", 1000_000}, {"GB", 1000_000_000}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a positive size", s)
	}
	return n * mult, nil
}
