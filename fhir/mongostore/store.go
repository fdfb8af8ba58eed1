package mongostore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readconcern"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"

	"github.com/fhirhub/fhirhub/fhir"
)

var (
	_ fhir.Store      = (*Store)(nil)
	_ fhir.Counter    = (*Store)(nil)
	_ fhir.Reindexer  = (*Store)(nil)
	_ fhir.Transactor = (*Store)(nil)
)

// Defaults.
const (
	DefaultDatabase   = "fhir"
	DefaultGapTimeout = 5 * time.Second
	DefaultTxTimeout  = 30 * time.Second
)

// Names of the collections and of the counter documents.
const (
	versionsName  = "versions"
	currentPrefix = "current." // + resource type
	countersName  = "counters"
	txnsName      = "txns"

	seqCounter = "seq"
	// projectedCounter is the projection checkpoint. Databases made before
	// current was split by type have theirs under "projected": the new name
	// makes Open build the per-type collections from versions.
	projectedCounter = "projection"
)

// Store is a fhir.Store in a MongoDB database. Set the exported fields before
// Open; see the package documentation for the data model.
type Store struct {
	// URI is the MongoDB connection string.
	URI string
	// Database is the database name. Empty: the database of the URI's path
	// (mongodb://host/fhir), else DefaultDatabase; Open sets it to the name
	// it uses.
	Database string
	// GapTimeout is how long a hole in the change feed may stay open before a
	// reader declares the writer dead and voids its position (default
	// DefaultGapTimeout).
	GapTimeout time.Duration
	// TxTimeout is how long a transaction may go without a sign of life
	// from its writer (a heartbeat after each batch of versions) before a
	// reader presumes the writer dead and aborts it (default
	// DefaultTxTimeout). See Transactions in the package documentation.
	TxTimeout time.Duration
	// Logger receives repairs and closed holes (default: discard).
	Logger *slog.Logger

	client     *mongo.Client
	db         *mongo.Database
	versions   *mongo.Collection
	counters   *mongo.Collection
	txns       *mongo.Collection
	gapTimeout time.Duration
	txTimeout  time.Duration
	log        *slog.Logger
	// decisions caches the outcomes of transactions, which never change.
	decisions decisionCache
	// txBatch is how many versions WriteAll inserts at a time (tests
	// shrink it; 0: defaultTxBatch).
	txBatch int
	// crashAt, when set (by tests), is called at the named steps of
	// WriteAll; when it returns true, WriteAll stops there as if the
	// process had been killed, leaving everything as it is.
	crashAt func(step string) bool
	// readThenWrite: the server is FerretDB, whose updates are not atomic
	// and whose only indexed lookup is an _id equality filter; upsertCurrent
	// then checks the version itself (see there).
	readThenWrite bool
	// indexed holds the types whose current collection has its indexes.
	indexed sync.Map
}

// New returns a Store for the database at uri; database may be empty (see
// Store.Database).
func New(uri, database string) *Store {
	return &Store{URI: uri, Database: database, GapTimeout: DefaultGapTimeout, TxTimeout: DefaultTxTimeout}
}

// databaseName resolves the database: the configured name, else the URI's.
func databaseName(uri, database string) (string, error) {
	if database != "" {
		return database, nil
	}
	cs, err := connstring.Parse(uri)
	if err != nil {
		return "", err
	}
	if cs.Database != "" {
		return cs.Database, nil
	}
	return DefaultDatabase, nil
}

// Open connects, checks the server answers, creates the indexes and repairs
// the current projection (see the package documentation).
func (s *Store) Open(ctx context.Context) error {
	if s.client != nil {
		return errors.New("mongostore: open: already open")
	}
	name, err := databaseName(s.URI, s.Database)
	if err != nil {
		return fmt.Errorf("mongostore: open: parse uri: %w", err)
	}
	s.Database = name
	s.gapTimeout = s.GapTimeout
	if s.gapTimeout <= 0 {
		s.gapTimeout = DefaultGapTimeout
	}
	s.txTimeout = s.TxTimeout
	if s.txTimeout <= 0 {
		s.txTimeout = DefaultTxTimeout
	}
	s.log = s.Logger
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	client, err := mongo.Connect(options.Client().ApplyURI(s.URI))
	if err != nil {
		return fmt.Errorf("mongostore: open: connect: %w", err)
	}
	journal := true
	db := client.Database(name, options.Database().
		SetWriteConcern(&writeconcern.WriteConcern{W: "majority", Journal: &journal}).
		SetReadConcern(readconcern.Majority()).
		SetReadPreference(readpref.Primary()))
	s.client = client
	s.db = db
	s.versions = db.Collection(versionsName)
	s.counters = db.Collection(countersName)
	s.txns = db.Collection(txnsName)
	s.indexed.Clear()
	if err := s.setUp(ctx); err != nil {
		_ = client.Disconnect(context.WithoutCancel(ctx))
		s.client = nil
		return fmt.Errorf("mongostore: open %s: %w", name, err)
	}
	return nil
}

func (s *Store) setUp(ctx context.Context) error {
	if err := s.client.Ping(ctx, readpref.Primary()); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	var info bson.M
	if err := s.client.Database("admin").RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err != nil {
		return fmt.Errorf("build info: %w", err)
	}
	_, s.readThenWrite = info["ferretdbVersion"]
	indexes := []struct {
		c     *mongo.Collection
		model mongo.IndexModel
	}{
		{s.versions, mongo.IndexModel{Keys: bson.D{{Key: "seq", Value: 1}}, Options: options.Index().SetName("seq_unique").SetUnique(true)}},
		{s.versions, mongo.IndexModel{Keys: bson.D{{Key: "type", Value: 1}, {Key: "rid", Value: 1}, {Key: "v", Value: -1}}, Options: options.Index().SetName("type_rid_v")}},
		{s.versions, mongo.IndexModel{Keys: bson.D{{Key: "type", Value: 1}, {Key: "seq", Value: -1}}, Options: options.Index().SetName("type_seq")}},
	}
	// One at a time: FerretDB 1.24 panics when one createIndexes command
	// lists several indexes that already exist.
	for _, ix := range indexes {
		if _, err := ix.c.Indexes().CreateOne(ctx, ix.model); err != nil {
			return fmt.Errorf("create index on %s: %w", ix.c.Name(), err)
		}
	}
	for _, id := range []string{seqCounter, projectedCounter} {
		_, err := s.counters.InsertOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "n", Value: int64(0)}})
		if err != nil && !mongo.IsDuplicateKeyError(err) {
			return fmt.Errorf("create counter %s: %w", id, err)
		}
	}
	return s.refresh(ctx)
}

// currentIndexes are the indexes of every current collection: k for the
// conditions on keys (multikey), ts for _lastUpdated (with _id for its ties);
// _id serves the default order (type, then id) and lookups.
var currentIndexes = []mongo.IndexModel{
	{Keys: bson.D{{Key: "k", Value: 1}}, Options: options.Index().SetName("k")},
	{Keys: bson.D{{Key: "ts", Value: 1}, {Key: "_id", Value: 1}}, Options: options.Index().SetName("ts_id")},
}

// currentOf is the current collection of typ.
func (s *Store) currentOf(typ string) *mongo.Collection {
	return s.db.Collection(currentPrefix + typ)
}

// ensureIndexes creates the indexes of typ's current collection, once per
// Open (the projection calls it before it writes to the collection).
func (s *Store) ensureIndexes(ctx context.Context, typ string) error {
	if _, ok := s.indexed.Load(typ); ok {
		return nil
	}
	c := s.currentOf(typ)
	for _, m := range currentIndexes { // one at a time, as in setUp
		if _, err := c.Indexes().CreateOne(ctx, m); err != nil {
			return fmt.Errorf("create index on %s: %w", c.Name(), err)
		}
	}
	s.indexed.Store(typ, true)
	return nil
}

// currentTypes lists the types that have a current collection.
func (s *Store) currentTypes(ctx context.Context) ([]string, error) {
	names, err := s.db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return nil, fmt.Errorf("list collections: %w", err)
	}
	var types []string
	for _, n := range names {
		if t, ok := strings.CutPrefix(n, currentPrefix); ok && validType(t) {
			types = append(types, t)
		}
	}
	slices.Sort(types)
	return types, nil
}

// Close disconnects from the server.
func (s *Store) Close(ctx context.Context) error {
	if s.client == nil {
		return nil
	}
	err := s.client.Disconnect(ctx)
	s.client = nil
	if err != nil {
		return fmt.Errorf("mongostore: close: %w", err)
	}
	return nil
}

// Ping reports whether the primary answers.
func (s *Store) Ping(ctx context.Context) error {
	if s.client == nil {
		return errors.New("mongostore: ping: store not open")
	}
	if err := s.client.Ping(ctx, readpref.Primary()); err != nil {
		return fmt.Errorf("mongostore: ping: %w", err)
	}
	return nil
}

// versionDoc is a document of the versions collection (a version or a void);
// the current collections use the same shape with _id "Type/id", plus the
// search fields (see fieldsOf).
type versionDoc struct {
	ID   string        `bson:"_id"`
	Type string        `bson:"type,omitempty"`
	RID  string        `bson:"rid,omitempty"`
	V    int64         `bson:"v,omitempty"`
	Seq  int64         `bson:"seq"`
	Op   string        `bson:"op,omitempty"`
	TS   bson.DateTime `bson:"ts"`
	At   bson.DateTime `bson:"at"`
	JSON []byte        `bson:"json,omitempty"`
	Tok  []string      `bson:"tok,omitempty"` // token keys of versions written before ix
	Ix   entryList     `bson:"ix,omitempty"`
	Void bool          `bson:"void,omitempty"`
	Tx   string        `bson:"tx,omitempty"` // the transaction that wrote it, until it is tidied (see Transactions)
}

func (d *versionDoc) resource() fhir.Resource {
	return fhir.Resource{
		Type:        d.Type,
		ID:          d.RID,
		Version:     d.V,
		LastUpdated: d.TS.Time().UTC(),
		Op:          fhir.Op(d.Op),
		JSON:        d.JSON,
	}
}

func (d *versionDoc) change() fhir.Change {
	return fhir.Change{Seq: d.Seq, Resource: d.resource()}
}

// withoutBody is the projection that leaves the body and the index entries out.
var withoutBody = bson.D{{Key: "json", Value: 0}, {Key: "ix", Value: 0}}

func versionID(typ, id string, v int64) string {
	return typ + "/" + id + "/" + strconv.FormatInt(v, 10)
}

// slotID is the _id of attempt k of version v: versionID for the first,
// then "Type/id/v~k" after k aborted attempts (see Transactions).
func slotID(typ, id string, v int64, k int) string {
	if k == 0 {
		return versionID(typ, id, v)
	}
	return versionID(typ, id, v) + "~" + strconv.Itoa(k)
}

func currentID(typ, id string) string { return typ + "/" + id }

func voidID(seq int64) string { return "void/" + strconv.FormatInt(seq, 10) }

func validType(typ string) bool { return typ != "" && !strings.Contains(typ, "/") }

// counter reads one counter document (0 when it does not exist).
func (s *Store) counter(ctx context.Context, id string) (int64, error) {
	var c struct {
		N int64 `bson:"n"`
	}
	err := s.counters.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&c)
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return 0, fmt.Errorf("read counter %s: %w", id, err)
	}
	return c.N, nil
}

// findAll runs a find and decodes every document it returns.
func findAll[T any](ctx context.Context, c *mongo.Collection, filter any, opts ...options.Lister[options.FindOptions]) ([]T, error) {
	cur, err := c.Find(ctx, filter, opts...)
	if err != nil {
		return nil, err
	}
	var out []T
	if err := cur.All(ctx, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// idDoc decodes only the _id of a document.
type idDoc struct {
	ID string `bson:"_id"`
}
