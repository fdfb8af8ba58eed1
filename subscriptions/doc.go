// Package subscriptions runs FHIR R4 criteria-based Subscriptions with
// rest-hook delivery: the Hub follows the change feed that natsbus
// publishes to FHIR_CHANGES, matches each change against the active
// subscriptions with the search package's in-memory matcher, and delivers
// notifications at least once, in order per subscription, across replicas.
//
// # Subscriptions are resources
//
// A Subscription is written through the API like any other resource. Every
// replica's Hub keeps an in-memory registry of the deliverable ones
// (status active, or error after failed deliveries), loaded at start from
// the store (Subscription?status=requested,active,error) and kept current
// by an ordered consumer of its own on fhir.changes.Subscription, started
// just after the stream position noted before loading.
//
// A version with status requested, active or error is validated: criteria
// parses as Type?params with search.Engine.FilterClauses (unknown or result
// parameters refused; :in expanded from the stored ValueSets when the
// version is considered), channel.type is rest-hook (websocket, email, …
// are refused for now), channel.endpoint is an absolute URL the allow-list
// permits, channel.payload is empty, application/fhir+json or
// application/json, channel.header lines are "Name: value" and do not set
// what the hub sets. A valid requested version is updated to active; an
// invalid one to error with the reason in Subscription.error. Both writes go
// through fhir.Service with If-Match on the version read, so when several
// replicas do it at once one wins and the others get 412 and move on. Status
// off stops matching and delivery (queued jobs are kept); a deletion stops
// both and drops the queued jobs.
//
// # Matching
//
// One durable consumer on FHIR_CHANGES, hub-matcher, is shared by every
// replica's hub. It has a pinned priority group: one replica at a time
// receives changes, so jobs are published in feed order. The pinned
// replica takes what has arrived in batches (up to 512 changes, up to 2,048
// unacknowledged); for a batch it first waits until its registry has
// applied every Subscription change up to the batch's last change (or the
// stream's last Subscription message, whichever is older), then, change by
// change, computes the resource's index entries (search.Engine.EntriesOf)
// and asks the registry for the candidates: subscriptions on the type filed
// under an equality token (code=system|code) or local reference
// (patient=Patient/1) value the entries produce, plus those without such a
// condition. Each candidate's criteria is evaluated with search.Match
// (chains and _has resolved against the store). A batch that fails is
// retried in place, never given back while newer changes are taken. A
// replica that stops pulling for 20 s is unpinned; the changes it held are
// redelivered after AckWait (15 s, shorter on purpose) and so come to the
// next pinned replica before any newer change. A hub that closes gives its
// prefetched changes back and keeps its pin until it times out, for the same
// reason.
//
// Deactivation is judged per batch: a subscription set off or deleted
// within a batch gets no notification for the changes of that batch before
// it. A
// deletion matches when the version it deleted matched (the deletion itself
// has no content); this goes beyond R4, which notifies only creates and
// updates. Changes at or before the version that made a subscription
// deliverable are never notified.
//
// For each match a job is published, asynchronously, to the stream
// FHIR_NOTIFY (work-queue retention, file storage, MaxAge as FHIR_CHANGES) on
// fhir.notify.<partition>.<subscription id>, with Nats-Msg-Id <subscription id>/<change
// seq> (a change matched again after a crash does not queue a second job,
// within the stream's two-minute duplicate window) and the change's headers
// (Fhir-Seq, Fhir-Type, Fhir-Id, Fhir-Version, Fhir-Op, Fhir-Last-Updated,
// plus Fhir-Subscription and Fhir-Subscription-Version); the batch is
// acknowledged only after every job
// is stored.
//
// # Authorization
//
// With authorization on (Hub.ReadCheck set), a subscription delivers only
// what the client that wrote it may read. RecordCreator, chained into
// fhir.Service.Authorize, records the scopes and launch context of the token
// of every Subscription create or update made through the API in the
// KeyValue bucket FHIR_SUBSCRIPTION_OWNERS (key: the subscription id; value:
// the Subscription version, scope string, patient, encounter, fhirUser,
// client id, subject; 16 versions of history), before the write commits.
// The hub uses the newest record for a version at or before the one it
// considers (its own status updates add versions without records). Each
// matched version is then judged as a read by that token would be
// (rest.Server.ReadCheck: the SMART rules and the matcher; a deletion by the
// version it deleted); what it may not read is not notified. A subscription
// with no record (written with authorization off, or offline) goes to error.
// With authorization off there is no restriction.
//
// # Delivery
//
// A job's subject is fhir.notify.<partition>.<id>, the partition being
// FNV-1a(id) mod Partitions (16). Each partition has a durable consumer on
// FHIR_NOTIFY (work-queue retention), deliver-<partition>, shared by the
// replicas with a pinned priority group: one replica at a time receives a
// partition's jobs, in stream order. It hands each job to the lane of its
// subscription, a goroutine that delivers that subscription's jobs one at a
// time, in order; lanes do not wait for each other, so a slow or failing
// endpoint holds up its own subscription only. A lane POSTs a job:
//
//   - payload empty: no body;
//   - payload application/fhir+json (or application/json): the version as
//     stored, with that Content-Type; a deletion has no body;
//   - every channel.header line as a header; X-Fhirhub-Subscription
//     (Subscription/<id>) and X-Fhirhub-Event (the change's feed position,
//     increasing per subscription, repeated on a redelivery); with a
//     payload also X-Fhirhub-Resource (Type/id/_history/version) and
//     X-Fhirhub-Op (create, update or delete);
//   - signed when the channel carries the extension SecretExtension
//     (valueString, at least 16 characters): X-Fhirhub-Timestamp (Unix
//     seconds) and X-Fhirhub-Signature: sha256=<hex HMAC-SHA256 keyed with
//     the secret over timestamp + "." + the exact body bytes>.
//
// A 2xx acknowledges the job. Anything else (another status, a redirect,
// a network error, AttemptTimeout) is retried in place, the job staying
// first, after a random wait in [0, min(Retry.Max, Retry.Initial·2^(n-1)));
// the partition tells JetStream every 10 s that the jobs its lanes hold are
// in progress (AckWait 30 s). After Retry.MaxAttempts attempts the
// subscription is set to error with the reason ("endpoint answered 503 10
// times").
//
// Jobs a lane cannot deliver now are parked: copied, in order, to the
// stream FHIR_PARKED (limits retention, MaxAge as FHIR_CHANGES) on
// fhir.parked.<id>, then acknowledged. That happens to the queue of a
// subscription that goes to error or off, to every job of a subscription
// that is not active or already has parked jobs, and to the jobs beyond
// the first 1,000 queued in a lane, so that one subscription cannot hold up
// its partition (20,000 unacknowledged jobs at most). When the subscription
// is active, its lane delivers the parked jobs first, oldest first,
// deleting each from FHIR_PARKED once delivered, then the queued ones. A
// subscription set active again is woken: a job with the header Fhir-Wake
// makes the pinned replica open its lane. Matching goes on while a
// subscription is in error, so notifications resume from the first
// undelivered event. A deleted subscription's parked jobs are purged and
// its queued jobs dropped.
//
// A job carries the Subscription version it was matched with
// (Fhir-Subscription-Version); a lane waits (up to 10 s) until its
// replica's registry has considered that version before judging the job.
//
// A replica that stops (or dies) keeps its pin until it times out (40 s);
// what its lanes held is redelivered after AckWait (30 s), so the next
// replica gets those jobs before newer ones, though not in order among
// themselves (JetStream rotates a pinned consumer's redelivery queue while
// the old pin waits to time out). A lane therefore keeps its queue sorted
// by stream sequence and lets a redelivered job go only when no older job
// of its subscription is left in FHIR_NOTIFY (work-queue retention: what is
// there is unacknowledged); one already acknowledged is acknowledged again
// and dropped. The matcher likewise, on a redelivered change, first gathers
// every change the consumer has unacknowledged (ConsumerInfo.NumAckPending)
// and sorts them. A replica that closes gives back what its lanes hold. A job
// being posted when its replica dies is posted again by the next one
// (at-least-once).
//
// # Endpoint allow-list
//
// Hub.Endpoints lists the endpoints permitted: scheme://host[:port][/path],
// where host "*" is any host, "*.example.org" any subdomain, no port any
// port, and a path a prefix. The default is DefaultEndpoints (https://*);
// cmd/fhirserver adds LoopbackEndpoints with --auth off. URLs with
// credentials are refused, and redirects are not followed.
package subscriptions
