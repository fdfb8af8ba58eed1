package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fhirhub/fhirhub/fhir/mongostore/mongotest"
)

func TestParseServeFlags(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	t.Run("Defaults", func(t *testing.T) {
		cfg, err := parseServeFlags(nil, env(nil), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Listen != ":8080" || cfg.DataDir != "./data" || cfg.MaxBodyBytes != 16<<20 || cfg.Auth != "smart" || cfg.AccessLifetime != time.Hour || cfg.RefreshLifetime != 90*24*time.Hour {
			t.Errorf("got %+v", cfg)
		}
	})
	t.Run("Environment", func(t *testing.T) {
		cfg, err := parseServeFlags(nil, env(map[string]string{"FHIR_LISTEN": "127.0.0.1:9", "FHIR_DATA_DIR": "/x", "FHIR_MONGODB_URI": "mongodb://h/db", "FHIR_MAX_BODY": "1MiB", "FHIR_REQUIRE_IF_MATCH": "true"}), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Listen != "127.0.0.1:9" || cfg.DataDir != "/x" || cfg.MongoURI != "mongodb://h/db" || cfg.MaxBodyBytes != 1<<20 || !cfg.RequireIfMatch {
			t.Errorf("got %+v", cfg)
		}
	})
	t.Run("FlagBeatsEnvironment", func(t *testing.T) {
		cfg, err := parseServeFlags([]string{"--listen", ":1"}, env(map[string]string{"FHIR_LISTEN": ":2"}), io.Discard)
		if err != nil || cfg.Listen != ":1" {
			t.Errorf("got %q, %v; want :1", cfg.Listen, err)
		}
	})
	for _, bad := range [][]string{{"--auth", "bogus"}, {"--auth", "external"}, {"--refresh-token-lifetime", "forever"}, {"--max-body", "lots"}, {"--log-format", "xml"}, {"extra"}} {
		t.Run("Bad"+strings.Join(bad, ""), func(t *testing.T) {
			if _, err := parseServeFlags(bad, env(nil), io.Discard); err == nil {
				t.Errorf("%v accepted", bad)
			}
		})
	}
	t.Run("BadEnvironment", func(t *testing.T) {
		if _, err := parseServeFlags(nil, env(map[string]string{"FHIR_REQUIRE_IF_MATCH": "perhaps"}), io.Discard); err == nil {
			t.Error("FHIR_REQUIRE_IF_MATCH=perhaps accepted")
		}
	})
}

func TestVersionCommand(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "fhirserver ") {
		t.Errorf("got %q", out.String())
	}
	if err := run(context.Background(), []string{"frobnicate"}, io.Discard, io.Discard); err == nil {
		t.Error("an unknown command succeeded")
	}
}

func testConfig(dir string) Config {
	return Config{Listen: "127.0.0.1:0", DataDir: dir, Auth: "off", MaxBodyBytes: 1 << 20, SQLiteSynchronous: "FULL", LogLevel: "warn", LogFormat: "text"}
}

func TestMainServesAndReopens(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	m := NewMain(testConfig(dir), io.Discard)
	if err := m.Open(ctx); err != nil {
		t.Fatal(err)
	}
	body := `{"resourceType":"Patient","id":"keep","active":true}`
	req, _ := http.NewRequest("PUT", m.URL()+"/fhir/Patient/keep", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/fhir+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("PUT: %d", resp.StatusCode)
	}
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	m = NewMain(testConfig(dir), io.Discard)
	if err := m.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer m.Close(ctx)
	resp, err = http.Get(m.URL() + "/fhir/Patient/keep")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("after restart: %d, want 200", resp.StatusCode)
	}
}

// TestKill9LosesNothing starts the real binary, writes concurrently, kills it
// with SIGKILL mid-stream, restarts it, and checks that every write the server
// acknowledged is there, with complete, gap-free history.
func TestKill9LosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("long: builds and kills the server binary")
	}
	bin := buildServer(t)
	t.Run("SQLite", func(t *testing.T) {
		testKill9(t, bin, 200, "--data-dir", t.TempDir())
	})
	t.Run("MongoDB", func(t *testing.T) {
		uri, stop, err := mongotest.Start()
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
		testKill9(t, bin, 60, "--mongodb-uri", uri, "--mongodb-database", "kill9")
	})
}

// buildServer builds the binary into a temporary directory.
func buildServer(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "fhirserver")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

func testKill9(t *testing.T, bin string, target int, storeArgs ...string) {
	base, proc := startServer(t, bin, storeArgs...)

	const writers = 6
	var mu sync.Mutex
	acked := map[string]int{} // Patient id -> highest acknowledged version
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("w%d-%d", w, i/3) // each id gets 3 versions
				body := fmt.Sprintf(`{"resourceType":"Patient","id":%q,"birthDate":"2000-01-0%d"}`, id, i%3+1)
				req, _ := http.NewRequest("PUT", base+"/Patient/"+id, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/fhir+json")
				resp, err := client.Do(req)
				if err != nil {
					return // the server is gone
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 && resp.StatusCode != 201 {
					t.Errorf("PUT %s: %d", id, resp.StatusCode)
					return
				}
				var v int
				fmt.Sscanf(resp.Header.Get("ETag"), `W/"%d"`, &v)
				mu.Lock()
				acked[id] = v
				mu.Unlock()
			}
		}(w)
	}
	// Let writes flow, then kill without warning.
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= target || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := proc.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = proc.Wait()
	close(stop)
	wg.Wait()
	if len(acked) == 0 {
		t.Fatal("no write was acknowledged before the kill")
	}

	base, proc = startServer(t, bin, storeArgs...)
	defer func() { proc.Process.Signal(syscall.SIGTERM); proc.Wait() }()
	for id, v := range acked {
		resp, err := client.Get(base + "/Patient/" + id)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		var got int
		fmt.Sscanf(resp.Header.Get("ETag"), `W/"%d"`, &got)
		if resp.StatusCode != 200 || got < v {
			t.Errorf("Patient/%s after kill -9: status %d version %d, want 200 and version >= %d", id, resp.StatusCode, got, v)
			continue
		}
		resp, err = client.Get(fmt.Sprintf("%s/Patient/%s/_history?_count=100", base, id))
		if err != nil {
			t.Fatal(err)
		}
		var h struct {
			Entry []struct {
				Response struct{ Etag string }
			}
		}
		json.NewDecoder(resp.Body).Decode(&h)
		resp.Body.Close()
		if len(h.Entry) != got {
			t.Errorf("Patient/%s: history has %d versions, want %d", id, len(h.Entry), got)
		}
	}
	t.Logf("%d resources acknowledged before kill -9; all present after restart", len(acked))
}

// startServer runs the binary on a free port and returns its FHIR base.
func startServer(t *testing.T, bin string, storeArgs ...string) (string, *exec.Cmd) {
	t.Helper()
	args := append([]string{"serve", "--listen", "127.0.0.1:0", "--auth", "off", "--log-format", "json"}, storeArgs...)
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
				addr <- line.Addr
			}
		}
	}()
	select {
	case a := <-addr:
		return "http://" + a + "/fhir", cmd
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the server did not start within 30s")
	}
	return "", nil
}
