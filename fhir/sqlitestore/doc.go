// Package sqlitestore is the embedded storage engine: SQLite in a data
// directory, pure Go (modernc.org/sqlite, so the binary builds with
// CGO_ENABLED=0), in WAL mode.
//
// Data model: the table versions holds every version of every resource; its
// INTEGER PRIMARY KEY is the change-feed position (Seq). The table current
// points at the latest version of each resource, and tokens holds the index
// entries of current versions only.
//
// Writes go through one writer goroutine that commits waiting writes together
// (group commit): each write is checked and applied inside its own SAVEPOINT, so
// a write that loses its version check is rolled back alone, and the batch
// commits once. One writer means Seq order is commit order, so the change feed
// has no gaps and a reader resuming from a saved Seq misses nothing. Reads use a
// separate pool of connections, which WAL lets run while a write commits.
//
// Durability: synchronous=FULL by default, so a write that returned survives a
// crash of the process and of the machine; NORMAL (Options.Synchronous)
// survives a process crash (kill -9) only.
package sqlitestore
