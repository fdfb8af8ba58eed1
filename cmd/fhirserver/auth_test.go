package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestAuthSmart(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.Auth = "smart"
	cfg.AccessLifetime, cfg.RefreshLifetime = time.Hour, 24*time.Hour
	stderr := &syncBuffer{}
	m := NewMain(cfg, stderr)
	if err := m.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	match := regexp.MustCompile(`client id:\s+(\S+)\s+client secret:\s+(\S+)`).FindStringSubmatch(stderr.String())
	if match == nil {
		t.Fatalf("the admin client was not printed:\n%s", stderr)
	}
	id, secret := match[1], match[2]

	resp, err := http.Get(m.URL() + "/fhir/.well-known/smart-configuration")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("discovery: %v %v", resp, err)
	}
	var conf struct {
		TokenEndpoint string `json:"token_endpoint"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&conf)
	resp.Body.Close()

	req, _ := http.NewRequest("POST", conf.TokenEndpoint, strings.NewReader(url.Values{"grant_type": {"client_credentials"}, "scope": {"system/*.rs"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("token: %v %v", resp, err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()

	for _, tc := range []struct {
		name, token string
		want        int
	}{{"NoToken", "", 401}, {"Token", tok.AccessToken, 200}, {"Garbage", "x.y.z", 401}} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", m.URL()+"/fhir/Patient", nil)
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("got %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}

	// A restart on the same store does not make or print another client.
	m.Close(context.Background())
	stderr2 := &syncBuffer{}
	m2 := NewMain(cfg, stderr2)
	if err := m2.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer m2.Close(context.Background())
	if strings.Contains(stderr2.String(), "client secret") {
		t.Errorf("the second start printed a secret:\n%s", stderr2)
	}
}

func TestAuthCLI(t *testing.T) {
	dir := t.TempDir()
	env := func(string) string { return "" }
	cli := func(stdin string, args ...string) (string, error) {
		t.Helper()
		var out, errOut syncBuffer
		err := runAuthCommand(t.Context(), args[0], append(args[1:], "--data-dir", dir), env, strings.NewReader(stdin), &out, &errOut)
		return out.String(), err
	}
	out, err := cli("", "clients", "add", "--id", "svc", "--type", "confidential-symmetric", "--scope", "system/*.rs")
	if err != nil || !strings.Contains(out, "client secret: ") {
		t.Fatalf("clients add: %q, %v", out, err)
	}
	if _, err := cli("", "clients", "add", "--id", "svc", "--type", "public", "--redirect-uri", "https://a/cb"); err == nil {
		t.Error("a second client svc was added")
	}
	if _, err := cli("", "clients", "add", "--type", "public"); err == nil {
		t.Error("a public client without a redirect URI was added")
	}
	if out, err := cli("", "clients", "list"); err != nil || !strings.Contains(out, "svc") || !strings.Contains(out, "confidential-symmetric") {
		t.Errorf("clients list: %q, %v", out, err)
	}
	if out, err := cli("s3cret-pass\n", "users", "add", "--username", "doc", "--fhir-user", "Practitioner/1"); err != nil || !strings.Contains(out, "added user doc") {
		t.Errorf("users add: %q, %v", out, err)
	}
	if out, err := cli("", "users", "list"); err != nil || !strings.Contains(out, "Practitioner/1") {
		t.Errorf("users list: %q, %v", out, err)
	}
	if _, err := cli("", "users", "add", "--username", "x", "--password", "p", "--fhir-user", "Organization/1"); err == nil {
		t.Error("a user with fhirUser Organization/1 was added")
	}
	if out, err := cli("", "keys", "rotate"); err != nil || !strings.Contains(out, "new signing key") {
		t.Errorf("keys rotate: %q, %v", out, err)
	}
	for _, args := range [][]string{{"clients", "remove", "svc"}, {"users", "remove", "doc"}} {
		if _, err := cli("", args...); err != nil {
			t.Errorf("%v: %v", args, err)
		}
		if _, err := cli("", args...); err == nil {
			t.Errorf("%v twice succeeded", args)
		}
	}
	if out, _ := cli("", "clients", "list"); strings.Contains(out, "svc") {
		t.Errorf("svc still listed: %q", out)
	}
}
