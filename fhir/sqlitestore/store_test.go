package sqlitestore_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/fhirhub/fhirhub/fhir"
	"github.com/fhirhub/fhirhub/fhir/search/searchtest"
	"github.com/fhirhub/fhirhub/fhir/sqlitestore"
	"github.com/fhirhub/fhirhub/fhir/storetest"
)

func newStore(t *testing.T) fhir.Store {
	t.Helper()
	s := sqlitestore.New(t.TempDir())
	if err := s.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, newStore, storetest.Options{})
}

func TestReopenKeepsEverything(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := sqlitestore.New(dir)
	if err := s.Open(ctx); err != nil {
		t.Fatal(err)
	}
	for v := int64(1); v <= 3; v++ {
		op := fhir.OpUpdate
		if v == 1 {
			op = fhir.OpCreate
		}
		if _, err := s.Write(ctx, fhir.Write{Type: "Patient", ID: "p", Version: v, Op: op, JSON: []byte(`{"resourceType":"Patient","id":"p"}`)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s = sqlitestore.New(dir)
	if err := s.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	r, err := s.Read(ctx, "Patient", "p")
	if err != nil || r.Version != 3 {
		t.Fatalf("after reopen: got v%d, %v; want v3", r.Version, err)
	}
	chs, err := s.Changes(ctx, 0, 10)
	if err != nil || len(chs) != 3 {
		t.Fatalf("after reopen: %d changes, %v; want 3", len(chs), err)
	}
	if _, err := s.Write(ctx, fhir.Write{Type: "Patient", ID: "p", Version: 4, Op: fhir.OpUpdate, JSON: []byte(`{}`)}); err != nil {
		t.Fatalf("write after reopen: %v", err)
	}
	if chs, _ := s.Changes(ctx, 3, 10); len(chs) != 1 || chs[0].Seq != 4 {
		t.Fatalf("feed after reopen: got %v, want one change at seq 4", chs)
	}
}

func TestWriteAfterClose(t *testing.T) {
	ctx := context.Background()
	s := sqlitestore.New(t.TempDir())
	if err := s.Open(ctx); err != nil {
		t.Fatal(err)
	}
	s.Close(ctx)
	if _, err := s.Write(ctx, fhir.Write{Type: "Patient", ID: "p", Version: 1, Op: fhir.OpCreate, JSON: []byte(`{}`)}); err == nil {
		t.Fatal("write after close succeeded")
	}
}

func TestSearchAgreesWithMatcher(t *testing.T) {
	s := sqlitestore.New(t.TempDir())
	s.Synchronous = "NORMAL"
	if err := s.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	searchtest.Run(t, s, searchtest.Options{})
}

func TestSearchAgreesWithMatcherSeeds(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("long: more seeds of the differential test (run without -short and -race)")
	}
	for seed := uint64(2); seed <= 6; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			s := sqlitestore.New(t.TempDir())
			s.Synchronous = "NORMAL"
			if err := s.Open(context.Background()); err != nil {
				t.Fatal(err)
			}
			defer s.Close(context.Background())
			searchtest.Run(t, s, searchtest.Options{Seed: seed, Queries: 1500})
		})
	}
}
