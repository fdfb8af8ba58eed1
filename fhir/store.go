package fhir

import (
	"context"
	"time"
)

// Store is what every storage engine must do: keep every version of every
// resource, append new versions with a compare-and-swap on the version, answer
// history, and expose the ordered change feed. Engines prove it at compile time
// with var _ fhir.Store = (*Store)(nil) and pass storetest.Run.
//
// Guarantees, on every engine:
//   - Write appends exactly one version or nothing; concurrent writers to one
//     resource cannot both succeed for the same version (no lost update), so
//     versions are gap-free per resource.
//   - A Write that returned nil survives a crash of the process.
//   - Changes lists every committed version once, in commit order; resuming from
//     the last Seq seen misses nothing, even with concurrent writers.
//
// Errors: ErrNotFound and ErrVersionConflict (bare or wrapped) for those
// conditions; anything else is a failure of the engine.
type Store interface {
	// Write appends a version (see Write). It returns the change it committed.
	Write(ctx context.Context, w Write) (Change, error)
	// Read returns the current version of a resource, which may be a deletion.
	Read(ctx context.Context, typ, id string) (Resource, error)
	// VRead returns one version of a resource.
	VRead(ctx context.Context, typ, id string, version int64) (Resource, error)
	// History lists versions newest first (see HistoryQuery).
	History(ctx context.Context, q HistoryQuery) ([]Change, error)
	// Changes lists committed changes with Seq > after, oldest first, at most limit.
	Changes(ctx context.Context, after int64, limit int) ([]Change, error)
	// Find lists the current, not deleted resources of one type that match.
	Find(ctx context.Context, m Match) ([]Resource, error)
	// Ping reports whether the store can be reached.
	Ping(ctx context.Context) error
	// Close releases the store's resources.
	Close(ctx context.Context) error
}

// HistoryQuery selects versions for a history interaction. Type and ID narrow it
// to a type or an instance (both empty: the whole system). Results are ordered
// newest first by Seq and paged by Before: only changes with Seq < Before are
// returned when Before > 0, so a page link stays correct while writes happen.
type HistoryQuery struct {
	Type  string
	ID    string
	Since time.Time // versions with LastUpdated >= Since (zero: no bound)
	// AtStart/AtEnd, when AtEnd is set, keep the versions that were current at
	// some moment of [AtStart, AtEnd]: written at or before AtEnd and not
	// replaced at or before AtStart.
	AtStart time.Time
	AtEnd   time.Time
	Before  int64
	Count   int // at most this many (required, > 0)
}

// Match selects current resources of one type for conditional interactions.
// Every non-empty field must match (AND); within a field any value may (OR).
// The search issue generalises this to the full search language.
type Match struct {
	Type        string
	IDs         []string
	Tokens      []TokenMatch // AND across entries; each entry ORs its values
	LastUpdated []DateBound  // AND of bounds
	Limit       int          // stop after this many (0: no limit)
}

// TokenMatch matches resources with a token of Param equal to any of Values.
type TokenMatch struct {
	Param  string
	Values []TokenValue
}

// TokenValue is one system|code value. AnySystem matches the code in any system;
// otherwise System must equal (an empty System matches tokens without one).
// An empty Code with a System matches any code in that system.
type TokenValue struct {
	System    string
	Code      string
	AnySystem bool
}

// DateBound is one comparison on lastUpdated: Op is one of gt, ge, lt, le.
type DateBound struct {
	Op   string
	Time time.Time
}

// Counter is an optional power: a store that can count resources per type.
type Counter interface {
	Count(ctx context.Context, typ string) (int64, error)
}

// Reindexer is an optional power: replace the index entries of a resource's
// current version without writing a version (after new search parameters).
// It does nothing when version is no longer current: the newer write was
// indexed with the parameters of its time.
type Reindexer interface {
	Reindex(ctx context.Context, typ, id string, version int64, entries []IndexEntry) error
}
