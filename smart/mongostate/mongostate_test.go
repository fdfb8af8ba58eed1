package mongostate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"testing"

	"github.com/fhirhub/fhirhub/fhir/mongostore/mongotest"
	"github.com/fhirhub/fhirhub/smart"
	"github.com/fhirhub/fhirhub/smart/statetest"
)

// mongoURI is FHIR_TEST_MONGODB_URI or an embedded FerretDB.
var mongoURI string

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	uri, stop, err := mongotest.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stop()
	mongoURI = uri
	return m.Run()
}

// newStore opens a store in a database of its own, dropped by the cleanup.
func newStore(t *testing.T) smart.Store {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	s := New(mongoURI, "authtest_"+hex.EncodeToString(b[:]))
	if err := s.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.client.Database(s.Database).Drop(context.Background())
		s.Close(context.Background())
	})
	return s
}

func TestStore(t *testing.T) { statetest.Run(t, newStore) }
