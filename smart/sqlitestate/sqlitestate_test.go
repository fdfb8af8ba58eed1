package sqlitestate_test

import (
	"context"
	"testing"

	"github.com/fhirhub/fhirhub/smart"
	"github.com/fhirhub/fhirhub/smart/sqlitestate"
	"github.com/fhirhub/fhirhub/smart/statetest"
)

func newStore(t *testing.T) smart.Store {
	t.Helper()
	s := sqlitestate.New(t.TempDir())
	if err := s.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func TestStore(t *testing.T) { statetest.Run(t, newStore) }
