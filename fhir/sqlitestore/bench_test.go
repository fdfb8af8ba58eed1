package sqlitestore_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fhirhub/fhirhub/fhir"
	"github.com/fhirhub/fhirhub/fhir/sqlitestore"
)

func openBench(b *testing.B, sync string) *sqlitestore.Store {
	b.Helper()
	s := sqlitestore.New(b.TempDir())
	s.Synchronous = sync
	if err := s.Open(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close(context.Background()) })
	return s
}

var benchBody = []byte(`{"resourceType":"Patient","id":"x","meta":{"versionId":"1","lastUpdated":"2025-01-01T00:00:00.000Z"},"identifier":[{"system":"http://hospital.example/mrn","value":"12345"}],"name":[{"family":"Chalmers","given":["Peter","James"]}],"gender":"male","birthDate":"1974-12-25","address":[{"line":["534 Erewhon St"],"city":"PleasantVille","postalCode":"3999"}]}`)

// BenchmarkCreateParallel: 8 writers creating resources through group commit.
func BenchmarkCreateParallel(b *testing.B) {
	for _, sync := range []string{"FULL", "NORMAL"} {
		b.Run(sync, func(b *testing.B) {
			s := openBench(b, sync)
			var n atomic.Int64
			b.SetParallelism(4) // 2 cores × 4 = 8 writers
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					id := fmt.Sprintf("p%d", n.Add(1))
					_, err := s.Write(context.Background(), fhir.Write{Type: "Patient", ID: id, Version: 1, Op: fhir.OpCreate, LastUpdated: time.Now(), JSON: benchBody,
						Index: []fhir.Token{{Param: "identifier", System: "http://hospital.example/mrn", Code: id}}})
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkReadParallel: raw reads of 10,000 stored resources.
func BenchmarkReadParallel(b *testing.B) {
	s := openBench(b, "NORMAL")
	ctx := context.Background()
	const n = 10000
	for i := 0; i < n; i++ {
		if _, err := s.Write(ctx, fhir.Write{Type: "Patient", ID: fmt.Sprintf("p%d", i), Version: 1, Op: fhir.OpCreate, LastUpdated: time.Now(), JSON: benchBody}); err != nil {
			b.Fatal(err)
		}
	}
	var k atomic.Int64
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := k.Add(7919) % n
			if _, err := s.Read(ctx, "Patient", fmt.Sprintf("p%d", i)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
