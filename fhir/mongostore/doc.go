// Package mongostore is the MongoDB storage engine: a fhir.Store (and
// fhir.Counter) for MongoDB 6 or later, replica set or sharded cluster, which
// also runs on FerretDB 1.24, the stand-in the tests use. It needs no
// multi-document transactions, change streams, $lookup or $elemMatch, which
// FerretDB 1.x lacks, and it does not rely on updates being atomic, which they
// are not on FerretDB 1.x (findAndModify and update read, then write): every
// guarantee rests on inserts into unique indexes; updates only speed things up.
//
// # Data model
//
// Three collections in one database:
//
//   - versions, the source of truth: one document per version, _id
//     "Type/id/version", with type, rid (the resource id), v (version), seq
//     (position in the change feed), op, ts (lastUpdated), at (the writer's
//     clock when it inserted the document), json (the resource exactly as
//     written, as BSON binary; absent for a deletion) and tok (token keys, see
//     below). The same collection holds void documents {_id: "void/<seq>",
//     seq, void: true, at}, which mark a feed position no version will ever
//     use. The unique _id lets each version be inserted once; a unique index
//     on seq lets each feed position be used once, by a version or a void.
//   - counters: {_id: "seq", n} hands out feed positions ($inc);
//     {_id: "projected", n} is the projection checkpoint (see below).
//   - current, a projection for Find and Count: one document per resource,
//     _id "Type/id", with its latest version's type, rid, v, seq, op, ts, tok
//     and json.
//
// Read, VRead, History and Changes read only versions, so they are right
// whatever state current is in. Find and Count read current.
//
// # Writes
//
// Write of version n of Type/id:
//
//  1. Check by _id that version n-1 exists (when n > 1) and version n does not;
//     otherwise fail with fhir.ErrVersionConflict, having changed nothing.
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
//  4. Project: upsert current with the filter {_id, v < n}, so it only moves
//     forward, then read the latest version of the resource and, if it is
//     later than n, project that one too. MongoDB applies the conditional
//     upsert atomically; FerretDB may let an older version overwrite a newer
//     one, and this check after the write undoes that. Then move the
//     checkpoint from seq-1 to seq if it stands at seq-1.
//
// Write returns nil only once step 3 is acknowledged with write concern
// majority and journal, so the version survives a crash of the process or of
// a node. A failure in step 4 does not fail the write (the version is
// committed, and Read and the feed show it); the projection is repaired.
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
// after it, without bodies (two small queries when nothing is behind); they project
// every resource whose current document is older than the latest version
// scanned, close holes older than GapTimeout as Changes does, and advance the
// checkpoint over the consecutive positions they settled. Find then checks
// each candidate against versions: a candidate that is no longer the latest
// version is replaced by the latest one if that matches, and dropped if not.
// So Find and Count reflect every write that returned before they started,
// even one whose writer crashed between steps 3 and 4, and Find never returns
// a replaced version.
//
// One case remains on FerretDB only: if a writer overwrites a newer version in
// current (a non-atomic update) and crashes before its check in step 4, the
// resource stays behind in current until it is written again. Find still never
// returns the replaced version, but misses the resource when only its latest
// version matches. On MongoDB the conditional upsert cannot go backwards.
//
// # Tokens
//
// FerretDB lacks $elemMatch, so each fhir.Token of a version becomes plain
// strings in tok, matched with $in (the values of one fhir.TokenMatch) inside
// an $and (one entry per TokenMatch): param|e|system|code (exact; the system
// may be empty), param|c|code (any system), param|s|system (any code in the
// system; the empty system means tokens without one) and param|p (any token
// of the param). The separator is U+001F, and '%' and U+001F inside a part are
// percent-escaped, so no two different tokens share a key.
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
//     guarantees rest on the uniqueness of _id and seq. current may be sharded
//     on _id.
//   - Every write updates the one "seq" counter document, which bounds the
//     write rate of a database.
//   - A version must fit in a 16 MiB BSON document with its token keys, and so
//     must its current document.
package mongostore
