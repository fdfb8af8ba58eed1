package rest_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

// BenchmarkHTTPRead reads stored Patients through a real loopback server with
// 8 keep-alive clients; compare with sqlitestore's BenchmarkReadParallel.
func BenchmarkHTTPRead(b *testing.B) {
	s := newTestServer(b)
	const n = 2000
	for i := 0; i < n; i++ {
		r := s.do("PUT", fmt.Sprintf("/Patient/p%d", i), patientWithID(fmt.Sprintf("p%d", i), `,"name":[{"family":"Chalmers","given":["Peter"]}],"birthDate":"1974-12-25"`))
		if r.Status != 201 {
			b.Fatalf("preload: %d %s", r.Status, r.Body)
		}
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true}}
	var k atomic.Int64
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := k.Add(7919) % n
			req, _ := http.NewRequestWithContext(context.Background(), "GET", fmt.Sprintf("%s/Patient/p%d", s.URL, i), nil)
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("read: %d", resp.StatusCode)
			}
		}
	})
}

// BenchmarkCreate creates Patients through the whole write path (HTTP,
// parsing, schema validation, store) with 8 clients.
func BenchmarkHTTPCreate(b *testing.B) {
	s := newTestServer(b)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true}}
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("POST", s.URL+"/Patient", strings.NewReader(patient))
			req.Header.Set("Content-Type", "application/fhir+json")
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 201 {
				b.Fatalf("create: %d", resp.StatusCode)
			}
		}
	})
}
