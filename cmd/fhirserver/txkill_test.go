package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fhirhub/fhirhub/fhir/mongostore/mongotest"
)

// TestKill9MidTransaction starts the real binary, sends a transaction of
// many entries, kills the server with SIGKILL while it works on it (at
// several moments, from parsing to commit), restarts it and checks that the
// transaction is there whole or not at all.
func TestKill9MidTransaction(t *testing.T) {
	if testing.Short() {
		t.Skip("long: builds and kills the server binary")
	}
	bin := buildServer(t)
	t.Run("SQLite", func(t *testing.T) {
		testKillTransaction(t, bin, 1500, "--data-dir", t.TempDir())
	})
	t.Run("MongoDB", func(t *testing.T) {
		uri, stop, err := mongotest.Start()
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
		testKillTransaction(t, bin, 100, "--mongodb-uri", uri, "--mongodb-database", "txkill")
	})
}

// txBundle is a transaction of n Patients, each with an Observation that
// references it, all tagged with the identifier system urn:round:<round>.
func txBundle(round, n int) string {
	var sb strings.Builder
	sb.WriteString(`{"resourceType":"Bundle","type":"transaction","entry":[`)
	for i := range n {
		if i > 0 {
			sb.WriteString(",")
		}
		fmt.Fprintf(&sb, `{"fullUrl":"urn:uuid:00000000-0000-4000-8000-%012d","resource":{"resourceType":"Patient","identifier":[{"system":"urn:round:%d","value":"%d"}]},"request":{"method":"POST","url":"Patient"}},`, i, round, i)
		fmt.Fprintf(&sb, `{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"identifier":[{"system":"urn:round:%d","value":"%d"}],"subject":{"reference":"urn:uuid:00000000-0000-4000-8000-%012d"}},"request":{"method":"POST","url":"Observation"}}`, round, i, i)
	}
	sb.WriteString("]}")
	return sb.String()
}

func countRound(t *testing.T, client *http.Client, base, typ string, round int) int {
	t.Helper()
	resp, err := client.Get(fmt.Sprintf("%s/%s?identifier=urn:round:%d|&_summary=count", base, typ, round))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b struct {
		Total int `json:"total"`
	}
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&b) != nil {
		t.Fatalf("count %s of round %d: status %d", typ, round, resp.StatusCode)
	}
	return b.Total
}

func testKillTransaction(t *testing.T, bin string, n int, storeArgs ...string) {
	client := &http.Client{Timeout: 5 * time.Minute}
	post := func(base, body string) (int, error) {
		resp, err := client.Post(base, "application/fhir+json", strings.NewReader(body))
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	// Round 0 runs to the end, to learn how long a transaction takes.
	base, proc := startServer(t, bin, storeArgs...)
	start := time.Now()
	if status, err := post(base, txBundle(0, n)); err != nil || status != 200 {
		t.Fatalf("the transaction without a kill: status %d, %v", status, err)
	}
	full := time.Since(start)
	t.Logf("a transaction of %d entries takes %s", 2*n, full.Round(time.Millisecond))

	outcomes := map[string]int{}
	for round, frac := range []float64{0.2, 0.5, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2} {
		round++
		body := txBundle(round, n)
		done := make(chan int, 1)
		go func() {
			status, err := post(base, body)
			if err != nil {
				status = 0 // killed before it answered
			}
			done <- status
		}()
		time.Sleep(time.Duration(float64(full) * frac))
		if err := proc.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = proc.Wait()
		status := <-done

		base, proc = startServer(t, bin, storeArgs...)
		pats := countRound(t, client, base, "Patient", round)
		obs := countRound(t, client, base, "Observation", round)
		switch {
		case pats == 0 && obs == 0 && status != 200:
			outcomes["none"]++
		case pats == n && obs == n:
			outcomes["all"]++
		default:
			t.Errorf("round %d (kill at %.0f%% of the time): %d Patients and %d Observations after the restart, want 0 or %d of each (the client saw status %d)",
				round, 100*frac, pats, obs, n, status)
		}
		if pats == n && obs == n {
			// Every Observation points at a Patient of its own round.
			resp, err := client.Get(fmt.Sprintf("%s/Observation?identifier=urn:round:%d|&subject:Patient.identifier=urn:round:%d|&_summary=count", base, round, round))
			if err == nil {
				var b struct{ Total int }
				json.NewDecoder(resp.Body).Decode(&b)
				resp.Body.Close()
				if b.Total != n {
					t.Errorf("round %d: %d Observations reference a Patient of the round, want %d", round, b.Total, n)
				}
			}
		}
	}
	proc.Process.Signal(syscall.SIGTERM)
	proc.Wait()
	t.Logf("outcomes over the killed rounds: %v", outcomes)
	if outcomes["none"] == 0 {
		t.Log("no kill landed before the commit; the all-or-nothing check only saw whole transactions")
	}
}
