package natsbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Names of what the bus creates in NATS.
const (
	// StreamName is the JetStream stream of committed changes.
	StreamName = "FHIR_CHANGES"
	// SubjectPrefix starts every change's subject; the resource type ends it.
	SubjectPrefix = "fhir.changes."
	// PositionBucket is the KeyValue bucket of the relay's position hint.
	PositionBucket = "FHIR_RELAY"
)

// Subject is the subject of a change to a resource of type typ.
func Subject(typ string) string { return SubjectPrefix + typ }

// Bus is a connection to NATS with the FHIR_CHANGES stream: to an external
// server or cluster (URL), or to a NATS server it embeds (URL empty).
type Bus struct {
	// URL of an external NATS server or cluster (comma-separated URLs);
	// empty: start an embedded server on Dir.
	URL string
	// CredsFile, CAFile, CertFile and KeyFile authenticate to an external
	// server: a credentials file (JWT and NKey), the CA to trust, and a
	// client certificate and key for mutual TLS.
	CredsFile, CAFile, CertFile, KeyFile string

	// Dir holds the embedded server's JetStream files.
	Dir string
	// Listen is the embedded server's client address (default 127.0.0.1:0,
	// a random free port); MonitorListen its HTTP monitoring (default off).
	Listen, MonitorListen string

	// Replicas of the stream (default 1; 3 on a production cluster).
	Replicas int
	// MaxAge is how long the stream keeps a change (default 7 days).
	MaxAge time.Duration
	// MaxBytes bounds the stream's size (default 0: unlimited); the oldest
	// changes go first.
	MaxBytes int64
	// ConnectTimeout bounds Open's wait for the stream (default 10 s).
	ConnectTimeout time.Duration

	Logger *slog.Logger

	server *Server
	nc     *nats.Conn
	js     jetstream.JetStream
}

// New returns a bus with the defaults: an embedded server on dir.
func New(dir string) *Bus {
	return &Bus{Dir: dir, Listen: "127.0.0.1:0", Replicas: 1, MaxAge: 7 * 24 * time.Hour, ConnectTimeout: 10 * time.Second}
}

func (b *Bus) logger() *slog.Logger {
	if b.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return b.Logger
}

// Open starts the embedded server (without URL), connects, and creates or
// updates the stream. An external server that cannot be reached within
// ConnectTimeout is no error: the connection keeps trying, and the relay
// creates the stream once it answers.
func (b *Bus) Open(ctx context.Context) error {
	url := b.URL
	if url == "" {
		if b.Dir == "" {
			return errors.New("natsbus: neither a URL nor a directory for the embedded server")
		}
		b.server = NewServer(filepath.Clean(b.Dir))
		if b.Listen != "" {
			b.server.Listen = b.Listen
		}
		b.server.MonitorListen = b.MonitorListen
		if err := b.server.Open(ctx); err != nil {
			b.server = nil
			return err
		}
		url = b.server.ClientURL()
	}
	opts := []nats.Option{
		nats.Name("fhirhub"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(true),
		// Nothing is buffered while disconnected: the relay sees the
		// failure and resumes from the stream head after reconnecting.
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				b.logger().Warn("natsbus: disconnected from NATS", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			b.logger().Info("natsbus: reconnected to NATS", "url", nc.ConnectedUrlRedacted())
		}),
	}
	if b.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(b.CredsFile))
	}
	if b.CAFile != "" {
		opts = append(opts, nats.RootCAs(b.CAFile))
	}
	if b.CertFile != "" || b.KeyFile != "" {
		opts = append(opts, nats.ClientCert(b.CertFile, b.KeyFile))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		b.closeServer(ctx)
		return fmt.Errorf("natsbus: connect to %s: %w", url, err)
	}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncTimeout(10*time.Second),
		jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		nc.Close()
		b.closeServer(ctx)
		return fmt.Errorf("natsbus: jetstream: %w", err)
	}
	b.nc, b.js = nc, js
	sctx, cancel := context.WithTimeout(ctx, b.ConnectTimeout)
	defer cancel()
	for attempt := 0; ; attempt++ {
		err = b.EnsureStream(sctx)
		if err == nil {
			return nil
		}
		if sctx.Err() != nil || !retryable(err) {
			break
		}
		if werr := wait(sctx, backoffDelay(attempt)); werr != nil {
			break
		}
	}
	if b.server == nil && retryable(err) {
		// An external NATS that cannot be reached now: the connection keeps
		// trying and the relay creates the stream once it answers.
		b.logger().Warn("natsbus: NATS cannot be reached; the change feed is published once it can", "err", err)
		return nil
	}
	_ = b.Close(context.WithoutCancel(ctx))
	return fmt.Errorf("natsbus: create the stream %s at %s: %w", StreamName, url, err)
}

// EnsureStream creates or updates the FHIR_CHANGES stream and the position
// bucket to the bus's configuration.
func (b *Bus) EnsureStream(ctx context.Context) error {
	cfg := b.StreamConfig()
	if _, err := b.js.CreateOrUpdateStream(ctx, cfg); err != nil {
		return err
	}
	_, err := b.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      PositionBucket,
		Description: "the FHIR change relay's last published position (a hint used when every message of " + StreamName + " has expired)",
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		History:     1,
	})
	return err
}

// StreamConfig is the configuration of FHIR_CHANGES.
func (b *Bus) StreamConfig() jetstream.StreamConfig {
	replicas := b.Replicas
	if replicas < 1 {
		replicas = 1
	}
	maxBytes := b.MaxBytes
	if maxBytes <= 0 {
		maxBytes = -1
	}
	dupWindow := 2 * time.Minute
	if b.MaxAge > 0 {
		dupWindow = min(dupWindow, b.MaxAge)
	}
	return jetstream.StreamConfig{
		Name:        StreamName,
		Description: "committed FHIR changes, one message per version, in the store's feed order",
		Subjects:    []string{SubjectPrefix + ">"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      b.MaxAge,
		MaxBytes:    maxBytes,
		MaxMsgs:     -1,
		Replicas:    replicas,
		Duplicates:  dupWindow,
	}
}

// retryable reports whether err may pass: not an answer of the server
// refusing what was asked.
func retryable(err error) bool {
	var apiErr *jetstream.APIError
	return !errors.As(err, &apiErr) || apiErr.Code == 503
}

// JetStream is the JetStream context of the bus's connection.
func (b *Bus) JetStream() jetstream.JetStream { return b.js }

// Conn is the bus's NATS connection.
func (b *Bus) Conn() *nats.Conn { return b.nc }

// ClientURL is the URL of the embedded server (empty with an external one).
func (b *Bus) ClientURL() string {
	if b.server == nil {
		return ""
	}
	return b.server.ClientURL()
}

// Close drains the connection and stops the embedded server, waiting for both.
func (b *Bus) Close(ctx context.Context) error {
	var errs []error
	if b.nc != nil {
		nc := b.nc
		b.nc = nil
		closed := make(chan struct{})
		nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
		if nc.IsClosed() {
			// Nothing to drain.
		} else if err := nc.Drain(); err != nil {
			// Reconnecting: nothing can be drained.
			nc.Close()
		} else {
			select {
			case <-closed:
			case <-ctx.Done():
				nc.Close()
				errs = append(errs, fmt.Errorf("natsbus: drain the connection: %w", ctx.Err()))
			}
		}
	}
	if err := b.closeServer(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (b *Bus) closeServer(ctx context.Context) error {
	if b.server == nil {
		return nil
	}
	err := b.server.Close(ctx)
	b.server = nil
	return err
}

// backoffDelay is the wait before retry attempt n: 100 ms doubling to 5 s.
func backoffDelay(attempt int) time.Duration {
	d := 100 * time.Millisecond << min(attempt, 6)
	return min(d, 5*time.Second)
}

func wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
