// Package mongotest gives tests a MongoDB to talk to: the server named by
// FHIR_TEST_MONGODB_URI, or FerretDB 1.24 embedded in the test process (SQLite
// handler in a temporary directory), which stands in for MongoDB on machines
// where no MongoDB server can be installed.
package mongotest

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// Start returns a MongoDB URI and a function that stops what Start started.
func Start() (uri string, stop func(), err error) {
	if uri := os.Getenv("FHIR_TEST_MONGODB_URI"); uri != "" {
		return uri, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "ferretdb-")
	if err != nil {
		return "", nil, fmt.Errorf("mongotest: %w", err)
	}
	f, err := ferretdb.New(&ferretdb.Config{
		Logger:    slog.New(slog.DiscardHandler),
		Listener:  ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
		Handler:   "sqlite",
		SQLiteURL: "file:" + dir + "/",
	})
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("mongotest: start FerretDB: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = f.Run(ctx)
	}()
	return f.MongoDBURI(), func() { cancel(); <-done; os.RemoveAll(dir) }, nil
}
