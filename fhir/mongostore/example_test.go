package mongostore_test

import (
	"context"
	"log"
	"log/slog"
	"time"

	"github.com/fhirhub/fhirhub/fhir"
	"github.com/fhirhub/fhirhub/fhir/mongostore"
)

func ExampleNew() {
	ctx := context.Background()
	// The database comes from the URI path ("fhir") when the name is empty.
	s := mongostore.New("mongodb://db1:27017,db2:27017,db3:27017/fhir?replicaSet=rs0", "")
	s.GapTimeout = 2 * time.Second // how long a crashed writer may hold the change feed back
	s.Logger = slog.Default()
	if err := s.Open(ctx); err != nil { // connects, creates indexes, repairs the projection
		log.Fatal(err)
	}
	defer s.Close(ctx)

	var store fhir.Store = s
	_, err := store.Write(ctx, fhir.Write{Type: "Patient", ID: "p1", Version: 1, Op: fhir.OpCreate,
		LastUpdated: time.Now().UTC().Truncate(time.Millisecond), JSON: []byte(`{"resourceType":"Patient","id":"p1"}`)})
	if err != nil {
		log.Fatal(err)
	}
}
