package natsbus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Server is an in-process NATS server with JetStream on file storage.
type Server struct {
	// Dir is where JetStream keeps its files (required).
	Dir string
	// Listen is the client address, host:port; default 127.0.0.1 on a
	// random free port.
	Listen string
	// MonitorListen, when set, serves the HTTP monitoring endpoints there.
	MonitorListen string
	// Name is the server's name (default fhirhub).
	Name string
	// ReadyTimeout bounds the wait for the server to accept clients (default 10 s).
	ReadyTimeout time.Duration

	srv *server.Server
}

// NewServer returns an embedded server storing its JetStream files in dir.
func NewServer(dir string) *Server {
	return &Server{Dir: dir, Listen: "127.0.0.1:0", Name: "fhirhub", ReadyTimeout: 10 * time.Second}
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return host, port, nil
}

// Open starts the server and waits until it accepts clients.
func (s *Server) Open(ctx context.Context) error {
	if s.Dir == "" {
		return errors.New("natsbus: the embedded server needs a directory")
	}
	host, port, err := splitHostPort(s.Listen)
	if err != nil {
		return fmt.Errorf("natsbus: listen address %q: %w", s.Listen, err)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts := &server.Options{
		ServerName: s.Name,
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   s.Dir,
		NoSigs:     true,
		NoLog:      true,
		// Tells nothing the logs need: the server runs inside fhirserver.
		DisableJetStreamBanner: true,
	}
	if s.MonitorListen != "" {
		mh, mp, err := splitHostPort(s.MonitorListen)
		if err != nil {
			return fmt.Errorf("natsbus: monitor address %q: %w", s.MonitorListen, err)
		}
		opts.HTTPHost, opts.HTTPPort = mh, mp
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("natsbus: configure the embedded server: %w", err)
	}
	go srv.Start()
	ready := s.ReadyTimeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < ready {
		ready = time.Until(dl)
	}
	if !srv.ReadyForConnections(ready) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return fmt.Errorf("natsbus: the embedded server did not start within %s (address %s, dir %s)", ready, s.Listen, s.Dir)
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		srv.WaitForShutdown()
		return fmt.Errorf("natsbus: the embedded server started without JetStream (dir %s)", s.Dir)
	}
	s.srv = srv
	return nil
}

// ClientURL is the URL clients connect to (nats://127.0.0.1:port) once open.
func (s *Server) ClientURL() string {
	if s.srv == nil {
		return ""
	}
	return s.srv.ClientURL()
}

// Addr is the address the server listens on, once open.
func (s *Server) Addr() string {
	if s.srv == nil {
		return ""
	}
	return s.srv.Addr().String()
}

// Close shuts the server down and waits until it has stopped.
func (s *Server) Close(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	srv := s.srv
	s.srv = nil
	done := make(chan struct{})
	go func() {
		srv.Shutdown()
		srv.WaitForShutdown()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("natsbus: shut the embedded server down: %w", ctx.Err())
	}
}
