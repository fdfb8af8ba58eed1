package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fhirhub/fhirhub/subscriptions/natsbus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// streamMessages reads every message of FHIR_CHANGES at url.
func streamMessages(t *testing.T, url string) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, natsbus.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// waitMessages polls the stream until it holds n messages.
func waitMessages(t *testing.T, url string, n int) []*jetstream.RawStreamMsg {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		msgs := streamMessages(t, url)
		if len(msgs) >= n {
			return msgs
		}
		if time.Now().After(deadline) {
			t.Fatalf("FHIR_CHANGES holds %d messages, want %d", len(msgs), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func createPatient(t *testing.T, m *Main, family string) (id string, body []byte) {
	t.Helper()
	resp, err := http.Post(m.URL()+"/fhir/Patient", "application/fhir+json",
		strings.NewReader(`{"resourceType":"Patient","name":[{"family":"`+family+`"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("POST: %d, want 201", resp.StatusCode)
	}
	loc := resp.Header.Get("Location") // …/Patient/{id}/_history/1
	parts := strings.Split(loc, "/")
	id = parts[len(parts)-3]
	resp, err = http.Get(m.URL() + "/fhir/Patient/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ = io.ReadAll(resp.Body)
	return id, body
}

// The server embeds NATS, publishes each create to FHIR_CHANGES, and a
// restart on the same data directory goes on without duplicates.
func TestServeRelaysChangesToNATS(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	m := NewMain(testConfig(dir), io.Discard)
	if err := m.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if m.NATSURL() == "" || !strings.HasPrefix(m.NATSURL(), "nats://127.0.0.1:") {
		t.Fatalf("NATSURL %q, want nats://127.0.0.1:port", m.NATSURL())
	}
	id1, body1 := createPatient(t, m, "One")
	msgs := waitMessages(t, m.NATSURL(), 1)
	if got := msgs[0]; got.Subject != "fhir.changes.Patient" || got.Header.Get("Fhir-Id") != id1 || got.Header.Get("Fhir-Op") != "create" ||
		got.Header.Get("Fhir-Version") != "1" || string(got.Data) != string(body1) {
		t.Errorf("got %s %v %s, want the create of Patient/%s %s", got.Subject, got.Header, got.Data, id1, body1)
	}
	// The relay counts the message once its acknowledgement is in.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		resp, err := http.Get(m.URL() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		metrics, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var missing []string
		for _, want := range []string{"fhir_relay_published_total 1", "fhir_relay_lag 0", "fhir_relay_last_published_seq 1", "fhir_http_requests_total"} {
			if !strings.Contains(string(metrics), want) {
				missing = append(missing, want)
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics lacks %q", missing)
		}
	}
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}

	m = NewMain(testConfig(dir), io.Discard)
	if err := m.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer m.Close(ctx)
	id2, _ := createPatient(t, m, "Two")
	msgs = waitMessages(t, m.NATSURL(), 2)
	if len(msgs) != 2 {
		t.Fatalf("got %d messages, want 2", len(msgs))
	}
	for i, want := range []struct {
		seq, id string
	}{{"1", id1}, {"2", id2}} {
		if got := msgs[i]; got.Header.Get("Fhir-Seq") != want.seq || got.Header.Get("Fhir-Id") != want.id {
			t.Errorf("message %d: Seq %s id %s, want %s %s", i+1, got.Header.Get("Fhir-Seq"), got.Header.Get("Fhir-Id"), want.seq, want.id)
		}
	}
}

func TestParseNATSFlags(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	t.Run("Defaults", func(t *testing.T) {
		cfg, err := parseServeFlags(nil, env(nil), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.NATSURL != "" || cfg.NATSListen != "127.0.0.1:0" || cfg.NATSReplicas != 1 || cfg.NATSMaxAge != 7*24*time.Hour || cfg.NATSMaxBytes != 0 || cfg.NATSMonitorListen != "" {
			t.Errorf("got %+v", cfg)
		}
	})
	t.Run("External", func(t *testing.T) {
		cfg, err := parseServeFlags([]string{"--nats-url", "nats://a:4222,nats://b:4222", "--nats-creds", "/c", "--nats-replicas", "3", "--nats-max-bytes", "10GiB"},
			env(map[string]string{"FHIR_NATS_MAX_AGE": "12h"}), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.NATSURL != "nats://a:4222,nats://b:4222" || cfg.NATSCreds != "/c" || cfg.NATSReplicas != 3 || cfg.NATSMaxBytes != 10<<30 || cfg.NATSMaxAge != 12*time.Hour {
			t.Errorf("got %+v", cfg)
		}
	})
	for _, bad := range [][]string{
		{"--nats-replicas", "3"},
		{"--nats-url", "nats://a", "--nats-replicas", "0"},
		{"--nats-creds", "/c"},
		{"--nats-url", "nats://a", "--nats-cert", "/c"},
		{"--nats-max-age", "forever"},
		{"--nats-max-bytes", "lots"},
	} {
		t.Run(fmt.Sprint("Bad", bad), func(t *testing.T) {
			if _, err := parseServeFlags(bad, env(nil), io.Discard); err == nil {
				t.Errorf("%v accepted", bad)
			}
		})
	}
}
