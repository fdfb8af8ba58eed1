package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// server is a fhirserver child process. startServer starts it and its waiter;
// stop ends it and is safe to call more than once.
type server struct {
	root    string // http://127.0.0.1:port
	cmd     *exec.Cmd
	exited  chan struct{} // closed once the process has exited; then waitErr is set
	waitErr error

	stopOnce sync.Once
	stopErr  error
}

// freeAddr returns a loopback address with a port nobody listened on a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("fhirbench: find a free port: %w", err)
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// startServer starts bin serving the embedded store in dataDir; its output goes to logw.
func startServer(bin, dataDir string, extra []string, logw io.Writer) (*server, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	args := append([]string{"serve", "--listen", addr, "--data-dir", dataDir, "--auth", "off", "--log-level", "warn"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logw, logw
	ownProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("fhirbench: start the server (build it with make build, or pass --server-bin): %w", err)
	}
	s := &server{root: "http://" + addr, cmd: cmd, exited: make(chan struct{})}
	go func() {
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()
	return s, nil
}

// stop sends SIGTERM and waits for the process, killing it after timeout.
func (s *server) stop(timeout time.Duration) error {
	s.stopOnce.Do(func() { s.stopErr = s.terminate(timeout) })
	return s.stopErr
}

func (s *server) terminate(timeout time.Duration) error {
	select {
	case <-s.exited:
		return fmt.Errorf("fhirbench: the server exited on its own: %v", s.waitErr)
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("fhirbench: stop the server: %w", err)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-s.exited:
		if s.waitErr != nil {
			return fmt.Errorf("fhirbench: the server stopped with an error: %w", s.waitErr)
		}
		return nil
	case <-timer.C:
		_ = s.cmd.Process.Kill()
		<-s.exited
		return fmt.Errorf("fhirbench: the server did not stop within %s of SIGTERM and was killed", timeout)
	}
}

// waitReady polls root/readyz until it answers 200, the deadline passes, or
// exited (nil for a server fhirbench did not start) is closed.
func waitReady(ctx context.Context, client *http.Client, root string, timeout time.Duration, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if ready(ctx, client, root+"/readyz") {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("fhirbench: the server exited before it was ready (its log is above)")
		case <-ctx.Done():
			return fmt.Errorf("fhirbench: %s/readyz did not answer 200 within %s: %w", root, timeout, ctx.Err())
		case <-tick.C:
		}
	}
}

func ready(ctx context.Context, client *http.Client, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK
}
