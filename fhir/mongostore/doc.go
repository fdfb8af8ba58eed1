// Package mongostore is the MongoDB storage engine: a fhir.Store (and
// fhir.Counter, fhir.Reindexer, fhir.Transactor and search.Backend) for MongoDB 6 or later,
// replica set or sharded cluster, which
// also runs on FerretDB 1.24, the stand-in the tests use. It needs no
// multi-document transactions, change streams, $lookup or $elemMatch, which
// FerretDB 1.x lacks, and it does not rely on updates being atomic, which they
// are not on FerretDB 1.x (findAndModify and update read, then write): every
// guarantee rests on inserts into unique indexes; updates only speed things up.
//
// # Data model
//
// Collections in one database:
//
//   - versions, the source of truth: one document per version, _id
//     "Type/id/version", with type, rid (the resource id), v (version), seq
//     (position in the change feed), op, ts (lastUpdated), at (the writer's
//     clock when it inserted the document), json (the resource exactly as
//     written, as BSON binary; absent for a deletion) and ix (the version's
//     search index entries, fhir.Write.Index, as one BSON binary value; see
//     Search). The same collection holds void documents {_id: "void/<seq>",
//     seq, void: true, at}, which mark a feed position no version will ever
//     use. The unique _id lets each version be inserted once; a unique index
//     on seq lets each feed position be used once, by a version or a void.
//   - counters: {_id: "seq", n} hands out feed positions ($inc);
//     {_id: "projection", n} is the projection checkpoint (see below).
//   - current.<Type>, one per resource type, a projection for Find, Count and
//     Search: one document per resource, _id "Type/id", with its latest
//     version's type, rid, v, seq, op, ts, ix and json, and the search fields
//     derived from ix (k, n, d, sk; see Search). One collection per type keeps
//     every query of a type to that type's documents and indexes, which need
//     no type prefix; FerretDB, which scans a collection for every query but
//     a lookup by _id, needs it to search at all.
//
// Read, VRead, History and Changes read only versions, so they are right
// whatever state current is in. Find, Count and Search read current.
//
// # Writes
//
// Write of version n of Type/id:
//
//  1. Check by _id that version n-1 exists (when n > 1) and version n does not
//     (a version of an undecided transaction counts as existing, one of an
//     aborted transaction does not: see Transactions); otherwise fail with
//     fhir.ErrVersionConflict, having changed nothing.
//     Versions are never deleted and version n is inserted only after n-1 was
//     seen, so every resource's versions are gap-free and this check means
//     "n-1 is the latest version".
//  2. Take a feed position from the "seq" counter.
//  3. Insert the version document: the commit point. The unique _id is the
//     compare-and-swap on the version. On a duplicate key the writer looks its
//     _id up. If another writer holds it, the write lost the race: it inserts
//     the void for its own position, so readers need not wait for it, and
//     fails with fhir.ErrVersionConflict. If the _id is free, the position was
//     taken (a reader voided it, see below, or FerretDB handed it out twice)
//     and the writer goes back to step 2. On any other error the outcome is
//     unknown, so the writer voids its own position: if that works, the
//     version can no longer land and the error is returned; if the position
//     turns out to hold exactly this version, the write succeeded after all.
//  4. Project: upsert the current document, with the search fields computed
//     from the version's entries, with the filter {_id, v < n}, so it only
//     moves forward; then look up version n+1 by _id and, if it exists,
//     project it too (and so on). MongoDB applies the conditional upsert
//     atomically; FerretDB may let an older version overwrite a newer one,
//     and this check after the write undoes that. (On FerretDB, detected by
//     buildInfo, the store reads the current version by _id and updates by
//     _id itself: that is what FerretDB does with the conditional filter
//     anyway, but a filter on _id alone is the one it looks up rather than
//     scans.) Then move the checkpoint from seq-1 to seq if it stands at
//     seq-1.
//
// Write returns nil only once step 3 is acknowledged with write concern
// majority and journal, so the version survives a crash of the process or of
// a node. A failure in step 4 does not fail the write (the version is
// committed, and Read and the feed show it); the projection is repaired.
//
// # Transactions
//
// WriteAll (fhir.Transactor) applies a group of writes all or none without
// multi-document transactions, which FerretDB 1.x and a standalone mongod
// lack. A transaction has a random id T and two documents in the txns
// collection: the heartbeat {_id: "live/T", at} and, once decided, the
// decision {_id: "tx/T", outcome: "commit" | "abort", at}.
//
//  1. Check every version as Write does (step 1 below), before anything is
//     written; a conflict fails the transaction with a *fhir.TxConflict
//     naming the write.
//  2. Insert the heartbeat, then the versions in batches (500 a command),
//     each at a fresh feed position and carrying tx: T. After each batch
//     the writer refreshes the heartbeat, and stops if a reader has aborted
//     T. A duplicate _id is a conflict (another writer won that version):
//     the transaction aborts.
//  3. Insert the decision "commit": the commit point. The unique _id lets one
//     decision in, so a writer and a reader that presumes it dead cannot both
//     win: whoever inserts first decides, and the other reads what stands.
//  4. Project the versions into current, move the checkpoint, remove the tx
//     field from the versions and delete the heartbeat. Each of these only
//     saves later lookups: a crash anywhere here leaves a committed
//     transaction that readers see whole.
//
// Readers resolve a version that carries tx by its decision (cached in
// memory, since decisions never change): committed, it is an ordinary
// version; aborted, it is as if it were not there; undecided (pending), it
// is invisible to Read, VRead, History, Find and Search, a Write of the same
// version fails with fhir.ErrVersionConflict, and Changes stops at it as at
// a hole, so the feed never shows part of a transaction and never skips one
// that may still commit. When a pending transaction's heartbeat (or its
// versions' at) is older than TxTimeout (default 30 s), the reader inserts the
// decision "abort": a writer killed before step 3 holds the feed back for at
// most TxTimeout, after which none of its writes exists. A writer that
// aborts itself (a conflict, an error) inserts the same decision and turns
// its versions into voids at once.
//
// An aborted version keeps its document, turned into a void that keeps its
// _id and seq, so its feed position stays used and its _id cannot be
// inserted again. The next attempt at the same version goes to the next
// slot: "Type/id/v~1", "~2", … Attempts are inserted only after the one
// before is seen aborted, so at most one attempt of a version is live
// (committed or pending) and it is the last; checkVersion, VRead and the
// projection walk the slots by _id. Readers that meet versions of decided
// transactions older than TxTimeout finish what a crashed writer left: they
// remove tx from committed versions, void aborted ones and delete the
// heartbeat.
//
// The guarantee rests, as for Write, on unique inserts only: one decision
// per transaction, one document per version slot, one per feed position.
// A transaction's versions become visible together at the decision, with
// the durability of an insert with write concern majority and journal.
// The cost: every version is written twice (the insert, then unsetting tx),
// plus the projection; and decision documents are kept (about 60 bytes per
// transaction). On a replica set the same design is used, so one code path
// is tested for both.
//
// # Change feed
//
// Positions are taken before the insert, so a reader can see seq 6 while seq 5
// is still in flight. Changes(after, limit) therefore returns only the run of
// consecutive positions after "after", leaving out voids, and stops at the
// first position that holds nothing. Such a hole is a write in flight or one
// that will never come: its writer crashed between steps 2 and 3. When the
// document after the hole is older than GapTimeout by its at field (its
// writer took its position after the hole's writer took its own, so the hole
// is at least that old), Changes inserts voids for the hole. The unique seq
// index lets either the late version or the void land, never both, and a
// writer whose position was voided takes a fresh one. So a consumer that
// resumes from the last Seq it saw misses nothing and sees nothing twice, in
// seq order. A crashed writer holds the feed back until GapTimeout after the
// next write. Clocks only decide when a hole is closed: skew between hosts
// can delay the feed or make a slow writer retry, but never loses or repeats a
// change.
//
// # Projection repair
//
// current can fall behind versions: a writer between steps 3 and 4, a failed
// step 4, or a crash between them. The checkpoint is a feed position up to
// which current is known to reflect every version (each position up to it
// holds a void or a version that current holds, or has replaced). Open, and
// Find and Count before they query, read the checkpoint and scan versions
// after it, without bodies; they project every resource whose current
// document is older than the latest version scanned, close holes older than
// GapTimeout as Changes does, and advance the checkpoint over the
// consecutive positions they settled. When the checkpoint has reached the
// "seq" counter (read in the same query) nothing can be behind, and the scan
// is skipped: every write that returned has a position at or below the
// counter. Find then checks each candidate against versions: a candidate that
// is no longer the latest version is replaced by the latest one if that
// matches, and dropped if not; Search does the same with its page when the
// counter moved while it ran. So Find, Count and Search reflect every write
// that returned before they started, even one whose writer crashed between
// steps 3 and 4 (the projection, search fields included, is rebuilt from the
// entries on the version), and Find and Search never return a version that
// was replaced before they checked.
//
// One case remains on FerretDB only: if a writer overwrites a newer version in
// current (a non-atomic update) and crashes before its check in step 4, the
// resource stays behind in current until it is written again. Find still never
// returns the replaced version, but misses the resource when only its latest
// version matches (Search, which checks only when the counter moved, may
// return it). On MongoDB the conditional upsert cannot go backwards. The
// shortcut of the repair also relies on the "seq" counter never going back,
// which $inc guarantees on MongoDB only.
//
// # Search
//
// Search implements search.Backend: its answers equal search.Match's on the
// entries of the current, not deleted versions, in the SQLite engine's order.
// Without $elemMatch, one condition on an array may only be met by one
// element: the current document holds the entries (ix, for checks in
// memory) and fields derived from them (fieldsOf) that single conditions
// match:
//
//   - k, an array of keys: the parameter code, the component (0 for plain
//     entries), a kind and values, joined by U+001F; every part but the last
//     is percent-escaped (see tokenEscaper), the last is raw. Tokens give
//     te (system, code) and tc (code); strings sn (normalised) and sx (as
//     written); uris u; local references r (id, type) and rv (with version);
//     URLs ru (url, version); :text tx; :of-type ot; entries of composite
//     components a present key. A value is matched with $in, "system|" and
//     string, :below, :text and id-only reference prefixes with an anchored
//     $regex, :contains with an anchored $regex over the string keys,
//     :above with $in over the prefixes of the value, :not with $nin.
//   - n and d: per parameter, arrays of the low and high bounds of number,
//     quantity and near entries (n.<param>~l, ~h) and of the starts and ends
//     of date entries (d.<param>~s, ~e), for range conditions.
//   - sk: per parameter and sort kind, the least (~a) and greatest (~d) sort
//     value, as the SQLite engine computes them, and a flag (~f) present
//     exactly when they are; the flag also marks that the parameter has a
//     plain entry, for :missing.
//
// A clause compiles to a condition that selects at least its matches, and
// exactly them for tokens, strings, uris, references, :missing, :not, and
// single-bound number and date prefixes. Two-bound prefixes (eq, ap) may be
// met by two different entries, and quantities' units, composites' groups,
// ne, date ap and near are not expressed at all: those candidates are
// confirmed in memory with search.Match on ix. Chains search their targets
// first and select the references to them with $in; _has searches the
// referring resources and selects their targets by _id; OR clauses join
// their conditions with $or.
//
// The page is one query per type: the condition, the keyset condition of
// the cursor, sorted by the flags and values of sk (a flag first, so
// resources without a value come last both ways), then _id (within a type,
// the order of id), limited to the page size plus one; candidates that fail
// the check in memory are skipped and the query continues after them.
// Searches of several types merge the per-type pages in Go. Total counts
// in the database when the condition is exact, and by checking every
// candidate otherwise.
//
// What scales on MongoDB: conditions on k use the multikey index k of the
// type's collection; _lastUpdated uses ts_id; the default order is _id.
// What does not: number and date conditions and sorting on a parameter read
// every document the key conditions select (every resource of the type
// when there are none) and sort them in memory (top-k; a wildcard index on
// n.$** and d.$**, which FerretDB cannot create, would serve the range
// conditions); a chain sends every matching target to the outer query ($in),
// and _has every matching referrer's target, so an unselective inner clause
// makes a large query (bounded by the 16 MiB command size); a total over an
// inexact condition reads every candidate; paging forward re-runs the query
// from the cursor. On FerretDB every query but a lookup by _id scans the
// type's collection and decodes every value of every document, so the
// fields are kept lean (ix is one binary value, empty fields are left out).
//
// Find selects with the same keys: an identifier's system|code with te, a
// code in any system with tc, any code in a system with a prefix of te, an
// empty value in any system with the entry flags.
//
// # Migration
//
// Databases made before search kept one current collection and token keys
// (tok) on versions. The checkpoint now has another name, so Open rebuilds
// the per-type collections from versions; the identifiers of versions that
// have only tok are recovered from it, other search parameters of them are
// searchable after a $reindex (Reindex writes the new entries to the
// version and its current document). The old current collection is no
// longer read and can be dropped.
//
// # History
//
// History reads versions newest first by seq, with Before as an exclusive upper
// bound on seq and Since as a lower bound on ts. With AtEnd set it keeps the
// versions with ts <= AtEnd whose next version (looked up by _id, one query per
// page of candidates) does not exist or has ts > AtStart.
//
// # Deployment notes
//
//   - Times are BSON dates, so LastUpdated has millisecond precision (the fhir
//     write path already truncates to it); date bounds finer than that compare
//     as they would against the instant.
//   - Every operation uses read concern majority, write concern majority with
//     journal, and the primary, whatever the URI says.
//   - versions and counters must not be sharded: MongoDB enforces a unique
//     index across shards only when the shard key is a prefix of it, and the
//     guarantees rest on the uniqueness of _id and seq. The current
//     collections may be sharded on _id.
//   - Every write updates the one "seq" counter document, which bounds the
//     write rate of a database.
//   - A version must fit in a 16 MiB BSON document with its index entries,
//     and so must its current document, which also holds the search fields.
package mongostore
