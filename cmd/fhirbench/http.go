package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

const fhirJSON = "application/fhir+json"

// newClient returns the one client all goroutines share: keep-alive
// connections for every client, no proxy, no compression.
func newClient(clients int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        clients,
			MaxIdleConnsPerHost: clients,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
	}
}

// send makes one request and reads the whole response. A transport failure or
// a status other than 2xx is an error that says what was asked and answered.
func (b *bench) send(ctx context.Context, method, path string, body []byte) (http.Header, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, b.base+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", fhirJSON)
	if body != nil {
		req.Header.Set("Content-Type", fhirJSON)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(msg))
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return nil, fmt.Errorf("%s %s: read the body: %w", method, path, err)
	}
	return resp.Header, nil
}

// scenario is one measured interaction; op builds a client's request loop body.
type scenario struct {
	name string
	op   func(b *bench, rng *rand.Rand) op
}

var scenarios = []scenario{
	{"create", (*bench).createOp},
	{"read", (*bench).readOp},
	{"update", (*bench).updateOp},
	{"vread", (*bench).vreadOp},
	{"history", (*bench).historyOp},
}

// createOp POSTs a new random Patient.
func (b *bench) createOp(rng *rand.Rand) op {
	return func(ctx context.Context) error {
		body, err := json.Marshal(newPatient(rng))
		if err != nil {
			return err
		}
		_, err = b.send(ctx, http.MethodPost, "/Patient", body)
		return err
	}
}

// readOp GETs a random preloaded Patient.
func (b *bench) readOp(rng *rand.Rand) op {
	return b.getOp(rng, "")
}

// vreadOp GETs the first version of a random preloaded Patient.
func (b *bench) vreadOp(rng *rand.Rand) op {
	return b.getOp(rng, "/_history/1")
}

// historyOp GETs the history of a random preloaded Patient.
func (b *bench) historyOp(rng *rand.Rand) op {
	return b.getOp(rng, "/_history")
}

func (b *bench) getOp(rng *rand.Rand, suffix string) op {
	return func(ctx context.Context) error {
		_, err := b.send(ctx, http.MethodGet, "/Patient/"+b.randomRecord(rng).id+suffix, nil)
		return err
	}
}

// updateOp PUTs a random preloaded Patient with a new home phone number.
func (b *bench) updateOp(rng *rand.Rand) op {
	return func(ctx context.Context) error {
		rec := b.randomRecord(rng)
		p := newPatient(patientSource(b.cfg.Seed, rec.n))
		p.ID = rec.id
		p.Telecom[0].Value = phone(rng)
		body, err := json.Marshal(p)
		if err != nil {
			return err
		}
		_, err = b.send(ctx, http.MethodPut, "/Patient/"+rec.id, body)
		return err
	}
}

// createPatient POSTs the n-th preloaded Patient and returns its id.
func (b *bench) createPatient(ctx context.Context, n uint64) (string, error) {
	body, err := json.Marshal(newPatient(patientSource(b.cfg.Seed, n)))
	if err != nil {
		return "", err
	}
	h, err := b.send(ctx, http.MethodPost, "/Patient", body)
	if err != nil {
		return "", err
	}
	return idFromLocation(h.Get("Location"))
}

// idFromLocation reads the id out of .../Patient/{id}/_history/{vid}.
func idFromLocation(loc string) (string, error) {
	u, err := url.Parse(loc)
	if err != nil {
		return "", fmt.Errorf("create: Location %q: %w", loc, err)
	}
	path := "/" + u.Path // a relative Location is Patient/{id}/...
	i := strings.LastIndex(path, "/Patient/")
	if i < 0 {
		return "", fmt.Errorf("create: Location %q names no Patient", loc)
	}
	id, _, _ := strings.Cut(path[i+len("/Patient/"):], "/")
	if id == "" {
		return "", fmt.Errorf("create: Location %q has no id", loc)
	}
	return id, nil
}

// preloadPatients creates cfg.Preload Patients with all clients and keeps their ids.
func (b *bench) preloadPatients(ctx context.Context, res *results) error {
	n := int64(b.cfg.Preload)
	recs := make([]record, n)
	var budget, next atomic.Int64
	more := func() bool { return budget.Add(1) <= n }
	rr := measureWhile(ctx, b.cfg.Clients, more, func(int) op {
		return func(ctx context.Context) error {
			i := uint64(next.Add(1) - 1)
			id, err := b.createPatient(ctx, i)
			if err == nil {
				recs[i] = record{id: id, n: i}
			}
			return err
		}
	})
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return b.keepPreloaded(recs, rr, res)
}

func (b *bench) keepPreloaded(recs []record, rr runResult, res *results) error {
	for _, r := range recs {
		if r.id != "" {
			b.recs = append(b.recs, r)
		}
	}
	res.Preload = rr
	fmt.Fprintf(b.out, "preload: %d Patients in %.1fs, %.0f/s, p50 %s, p99 %s, %d errors\n",
		len(b.recs), rr.Seconds, rr.RPS, rr.P50, rr.P99, rr.Errors)
	if rr.FirstError != "" {
		fmt.Fprintf(b.out, "         first error: %s\n", rr.FirstError)
	}
	if len(b.recs) == 0 {
		return errors.New("fhirbench: the preload created no Patient; first error: " + rr.FirstError)
	}
	return nil
}
