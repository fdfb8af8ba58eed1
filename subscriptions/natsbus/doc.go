// Package natsbus carries the store's change feed over NATS JetStream: an
// embedded NATS server (or a connection to an external cluster), the
// FHIR_CHANGES stream, the relay that publishes every committed change to it
// exactly once and in order, and a small pull-consumer API for what reads it
// (subscription matching and delivery).
//
// # Stream and subjects
//
// The stream FHIR_CHANGES (file storage; limits MaxAge, default 7 days, and
// MaxBytes, default unlimited; Replicas, default 1, 3 on a production
// cluster) holds the subjects
//
//	fhir.changes.<ResourceType>     e.g. fhir.changes.Patient
//
// one message per committed change, in the store's feed order. Headers:
//
//	Fhir-Seq           the change's position in the store's feed (fhir.Change.Seq)
//	Fhir-Type          resource type
//	Fhir-Id            resource id
//	Fhir-Version       version number (meta.versionId)
//	Fhir-Op            create, update or delete
//	Fhir-Last-Updated  meta.lastUpdated, a FHIR instant
//	Nats-Msg-Id        the Seq again (JetStream de-duplication)
//
// The body is the resource JSON exactly as stored; empty for a delete.
// Nothing but the relay may publish to fhir.changes.>.
//
// A KeyValue bucket FHIR_RELAY keeps one key, "position", a hint of the last
// change published (used only when every message of the stream has expired,
// see below).
//
// # Exactly once, in order
//
// The stream itself is the relay's saved position. On start, and after any
// failed publish, the relay reads the stream's last message: its Fhir-Seq is
// the last change published and its stream sequence the head. It then reads
// Store.Changes(after that Seq) and publishes each change with the header
// Nats-Expected-Last-Sequence set to the stream sequence it expects before
// that message (the head, plus one for each message of the batch before it).
// JetStream stores a message only if the stream's last sequence is the
// expected one, so a message can only land directly after the change that
// precedes it in the feed: a relay that crashed and resumes, or another
// replica's relay publishing at the same time, makes the publish fail with
// "wrong last sequence", and the relay re-reads the head instead of
// publishing a duplicate. Nats-Msg-Id de-duplicates on top. The feed's Seqs
// may have gaps (MongoDB voids); the relay never assumes they are
// contiguous.
//
// When every message has expired (MaxAge with no writes for that long) the
// stream's last sequence remains but its last message is gone; the relay then
// resumes from the FHIR_RELAY position, which it writes whenever it has caught
// up. If that position does not name the stream's last sequence (a relay
// crashed after publishing and no relay ran again before expiry) a few changes
// may be published again; the relay logs it.
//
// The relay is woken by Notify (from fhir.Service.Committed, non-blocking)
// and polls every second for changes written by other replicas. When NATS
// cannot be reached it retries with growing waits (up to 5 s) and catches up
// afterwards; writes to the store never wait for it.
package natsbus
