// Package mongostate keeps the SMART authorization server's state (a
// smart.Store) in MongoDB, in the FHIR database beside the FHIR store's
// collections. It works on FerretDB 1.24 as on MongoDB: single use rests on
// inserts into the unique _id only, never on updates being atomic.
package mongostate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readconcern"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"

	"github.com/fhirhub/fhirhub/smart"
)

// Store is the smart.Store in MongoDB: collections auth_keys, auth_clients,
// auth_users, auth_codes, auth_refresh, auth_launches, auth_sessions,
// auth_requests and auth_marks in the FHIR database, each document
// {_id, data (the record as JSON), exp (absent: never)}. It works on
// FerretDB 1.24: single use rests on inserts into the unique _id only
// (Mark), never on updates being atomic.
type Store struct {
	smart.RecordStore
	URI      string
	Database string // empty: the URI's path, else "fhir"

	client *mongo.Client
}

var _ smart.Store = (*Store)(nil)

// New returns a store for the database at uri; call Open.
func New(uri, database string) *Store {
	return &Store{URI: uri, Database: database}
}

// Open connects and creates the indexes.
func (s *Store) Open(ctx context.Context) error {
	name := s.Database
	if name == "" {
		cs, err := connstring.Parse(s.URI)
		if err != nil {
			return fmt.Errorf("mongostate: open auth store: parse uri: %w", err)
		}
		name = cs.Database
		if name == "" {
			name = "fhir"
		}
		s.Database = name
	}
	client, err := mongo.Connect(options.Client().ApplyURI(s.URI))
	if err != nil {
		return fmt.Errorf("mongostate: open auth store: connect: %w", err)
	}
	journal := true
	db := client.Database(name, options.Database().
		SetWriteConcern(&writeconcern.WriteConcern{W: "majority", Journal: &journal}).
		SetReadConcern(readconcern.Majority()).
		SetReadPreference(readpref.Primary()))
	if err := client.Ping(ctx, readpref.Primary()); err != nil {
		_ = client.Disconnect(context.WithoutCancel(ctx))
		return fmt.Errorf("mongostate: open auth store: ping: %w", err)
	}
	r := records{db: db}
	for _, kind := range smart.RecordKinds() {
		_, err := r.coll(kind).Indexes().CreateOne(ctx, mongo.IndexModel{
			Keys: bson.D{{Key: "exp", Value: 1}}, Options: options.Index().SetName("exp"),
		})
		if err != nil {
			_ = client.Disconnect(context.WithoutCancel(ctx))
			return fmt.Errorf("mongostate: open auth store: create index on %s: %w", r.coll(kind).Name(), err)
		}
	}
	s.client = client
	s.Records = r
	return nil
}

// Close disconnects.
func (s *Store) Close(ctx context.Context) error {
	if s.client == nil {
		return nil
	}
	err := s.client.Disconnect(ctx)
	s.client = nil
	return err
}

// records is smart.Records in one collection per kind.
type records struct{ db *mongo.Database }

var _ smart.Records = records{}

func (r records) coll(kind string) *mongo.Collection { return r.db.Collection("auth_" + kind) }

type mongoRecord struct {
	ID   string     `bson:"_id"`
	Data string     `bson:"data"`
	Exp  *time.Time `bson:"exp,omitempty"`
}

// live selects the records not expired at now.
func live(now time.Time) bson.D {
	return bson.D{{Key: "$or", Value: bson.A{
		bson.D{{Key: "exp", Value: bson.D{{Key: "$exists", Value: false}}}},
		bson.D{{Key: "exp", Value: bson.D{{Key: "$gt", Value: now}}}},
	}}}
}

func (r records) Put(ctx context.Context, kind, id string, data []byte, exp time.Time, replace bool) error {
	doc := mongoRecord{ID: id, Data: string(data)}
	if !exp.IsZero() {
		doc.Exp = &exp
	}
	c := r.coll(kind)
	if replace {
		_, err := c.ReplaceOne(ctx, bson.D{{Key: "_id", Value: id}}, doc, options.Replace().SetUpsert(true))
		if err != nil {
			return fmt.Errorf("mongostate: write %s: %w", kind, err)
		}
		return nil
	}
	for attempt := 0; ; attempt++ {
		_, err := c.InsertOne(ctx, doc)
		if err == nil {
			return nil
		}
		if !mongo.IsDuplicateKeyError(err) {
			return fmt.Errorf("mongostate: write %s: %w", kind, err)
		}
		if attempt > 0 {
			return smart.ErrExists
		}
		// An expired record may be taken over: delete it if it is one, then
		// insert again. Of several writers doing so, one insert wins.
		res, err := c.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "exp", Value: bson.D{{Key: "$lte", Value: time.Now()}}}})
		if err != nil {
			return fmt.Errorf("mongostate: write %s: %w", kind, err)
		}
		if res.DeletedCount == 0 {
			return smart.ErrExists
		}
	}
}

func (r records) Get(ctx context.Context, kind, id string) ([]byte, error) {
	var doc mongoRecord
	err := r.coll(kind).FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, smart.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("mongostate: read %s: %w", kind, err)
	}
	if doc.Exp != nil && !doc.Exp.After(time.Now()) {
		return nil, smart.ErrNotFound
	}
	return []byte(doc.Data), nil
}

func (r records) List(ctx context.Context, kind string) ([][]byte, error) {
	cur, err := r.coll(kind).Find(ctx, live(time.Now()), options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("mongostate: list %s: %w", kind, err)
	}
	var docs []mongoRecord
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("mongostate: list %s: %w", kind, err)
	}
	out := make([][]byte, len(docs))
	for i, d := range docs {
		out[i] = []byte(d.Data)
	}
	return out, nil
}

func (r records) Delete(ctx context.Context, kind, id string) error {
	res, err := r.coll(kind).DeleteOne(ctx, bson.D{{Key: "_id", Value: id}})
	if err != nil {
		return fmt.Errorf("mongostate: delete %s: %w", kind, err)
	}
	if res.DeletedCount == 0 {
		return smart.ErrNotFound
	}
	return nil
}

func (r records) Prune(ctx context.Context, now time.Time) error {
	for _, kind := range smart.RecordKinds() {
		_, err := r.coll(kind).DeleteMany(ctx, bson.D{{Key: "exp", Value: bson.D{{Key: "$lte", Value: now}}}})
		if err != nil {
			return fmt.Errorf("mongostate: prune %s: %w", kind, err)
		}
	}
	return nil
}
