package smart_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/fhirhub/fhirhub/fhir/mongostore/mongotest"
	"github.com/fhirhub/fhirhub/smart"
	"github.com/fhirhub/fhirhub/smart/mongostate"
	"github.com/fhirhub/fhirhub/smart/sqlitestate"
)

// The MongoDB of the tests that run on both stores: FHIR_TEST_MONGODB_URI,
// or an embedded FerretDB started by the first test that needs it.
var (
	mongoOnce sync.Once
	mongoURI  string
	mongoStop = func() {}
	mongoErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	mongoStop()
	os.Exit(code)
}

// newSQLiteStore opens a store in a temporary directory.
func newSQLiteStore(t testing.TB) smart.Store {
	t.Helper()
	s := sqlitestate.New(t.TempDir())
	if err := s.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// newMongoStore opens a store in a database of its own, dropped by the
// cleanup.
func newMongoStore(t testing.TB) smart.Store {
	t.Helper()
	mongoOnce.Do(func() { mongoURI, mongoStop, mongoErr = mongotest.Start() })
	if mongoErr != nil {
		t.Fatal(mongoErr)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "authtest_" + hex.EncodeToString(b[:])
	s := mongostate.New(mongoURI, name)
	if err := s.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		s.Close(ctx)
		if c, err := mongo.Connect(options.Client().ApplyURI(mongoURI)); err == nil {
			_ = c.Database(name).Drop(ctx)
			_ = c.Disconnect(ctx)
		}
	})
	return s
}
