package mongostore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/fhirhub/fhirhub/fhir"
)

// Transactions: see the package documentation for the design and why it is
// safe without multi-document transactions.

const (
	// defaultTxBatch is how many versions WriteAll inserts with one command.
	defaultTxBatch = 500
	// idBatch is how many _ids one $in query or update names.
	idBatch = 1000
	// maxSlots bounds the attempts of one version (aborted ones and the
	// live one) that liveVersion walks.
	maxSlots = 1000
	// maxDecisions bounds the decision cache; it starts over when full.
	maxDecisions = 1 << 16

	outcomeCommit = "commit"
	outcomeAbort  = "abort"
)

// txState is what a document of the versions collection is to readers.
type txState int

const (
	stCommitted txState = iota // a version: written by Write, or by a transaction that committed
	stPending                  // a version of a transaction not decided yet: invisible, and a hole in the feed
	stAborted                  // a version of an aborted transaction, or a void: as if it were not there
	stAbsent                   // liveVersion: no live document
)

// stateOnly is the projection of what state needs.
var stateOnly = bson.D{{Key: "seq", Value: 1}, {Key: "tx", Value: 1}, {Key: "void", Value: 1}, {Key: "at", Value: 1}}

func decisionID(tx string) string { return "tx/" + tx }
func liveID(tx string) string     { return "live/" + tx }

// errCrashed is what WriteAll returns when a test's crashAt stops it.
var errCrashed = errors.New("mongostore: stopped by the test as if killed")

func (s *Store) crashed(step string) bool { return s.crashAt != nil && s.crashAt(step) }

// decisionCache remembers the outcomes of transactions.
type decisionCache struct {
	mu sync.Mutex
	m  map[string]txState
}

func (c *decisionCache) get(tx string) (txState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.m[tx]
	return st, ok
}

func (c *decisionCache) put(tx string, st txState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxDecisions {
		c.m = make(map[string]txState)
	}
	c.m[tx] = st
}

func stateOfOutcome(outcome string) txState {
	if outcome == outcomeCommit {
		return stCommitted
	}
	return stAborted
}

// decision reads the decision of tx, if one was made.
func (s *Store) decision(ctx context.Context, tx string) (txState, bool, error) {
	if st, ok := s.decisions.get(tx); ok {
		return st, true, nil
	}
	var d struct {
		Outcome string `bson:"outcome"`
	}
	err := s.txns.FindOne(ctx, bson.D{{Key: "_id", Value: decisionID(tx)}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return stPending, false, nil
	}
	if err != nil {
		return stPending, false, fmt.Errorf("read the decision of transaction %s: %w", tx, err)
	}
	st := stateOfOutcome(d.Outcome)
	s.decisions.put(tx, st)
	return st, true, nil
}

// decide inserts outcome as the decision of tx unless one was made first,
// and returns the decision that stands. The unique _id lets one decision
// in: whoever inserts first decides. On an error the outcome is unknown.
func (s *Store) decide(ctx context.Context, tx, outcome string) (txState, error) {
	_, err := s.txns.InsertOne(ctx, bson.D{
		{Key: "_id", Value: decisionID(tx)},
		{Key: "outcome", Value: outcome},
		{Key: "at", Value: bson.NewDateTimeFromTime(time.Now())},
	})
	if err == nil {
		st := stateOfOutcome(outcome)
		s.decisions.put(tx, st)
		return st, nil
	}
	if !mongo.IsDuplicateKeyError(err) {
		return stPending, fmt.Errorf("insert the decision %s of transaction %s: %w", outcome, tx, err)
	}
	st, found, err := s.decision(ctx, tx)
	if err == nil && !found {
		err = fmt.Errorf("transaction %s: the decision is taken but cannot be read", tx)
	}
	return st, err
}

// outcome is the state of transaction tx, one of whose versions was
// inserted at at: its decision, or pending while its writer shows signs of
// life. A transaction whose heartbeat (else at) is older than TxTimeout is
// presumed dead: outcome inserts the abort decision (if the writer's commit
// got in first, that stands).
func (s *Store) outcome(ctx context.Context, tx string, at bson.DateTime) (txState, error) {
	st, found, err := s.decision(ctx, tx)
	if err != nil || found {
		return st, err
	}
	var hb struct {
		At bson.DateTime `bson:"at"`
	}
	err = s.txns.FindOne(ctx, bson.D{{Key: "_id", Value: liveID(tx)}}).Decode(&hb)
	switch {
	case err == nil:
		at = max(at, hb.At)
	case errors.Is(err, mongo.ErrNoDocuments):
	default:
		return stPending, fmt.Errorf("read the heartbeat of transaction %s: %w", tx, err)
	}
	if age := time.Since(at.Time()); age < s.txTimeout {
		return stPending, nil
	}
	st, err = s.decide(ctx, tx, outcomeAbort)
	if err == nil && st == stAborted {
		s.log.Warn("mongostore: aborted a transaction whose writer is presumed dead", "tx", tx, "last sign of life", at.Time())
	}
	return st, err
}

// resolver tells a reader what the documents it reads are (see state). It
// remembers the transactions it looked up for the length of one call, and
// collects the documents of decided transactions that their writer left
// behind (older than TxTimeout), for tidy.
type resolver struct {
	s     *Store
	memo  map[string]txState
	stale []staleDoc
}

type staleDoc struct {
	id, tx string
	st     txState
}

func (s *Store) resolver() *resolver { return &resolver{s: s} }

// state is what d is: a void or a version of an aborted transaction
// (aborted), a version of a transaction not decided yet (pending), else a
// version (committed).
func (r *resolver) state(ctx context.Context, d *versionDoc) (txState, error) {
	switch {
	case d.Void:
		return stAborted, nil
	case d.Tx == "":
		return stCommitted, nil
	}
	st, ok := r.memo[d.Tx]
	if !ok {
		var err error
		if st, err = r.s.outcome(ctx, d.Tx, d.At); err != nil {
			return stPending, err
		}
		if r.memo == nil {
			r.memo = map[string]txState{}
		}
		r.memo[d.Tx] = st
	}
	if st != stPending && time.Since(d.At.Time()) >= r.s.txTimeout {
		r.stale = append(r.stale, staleDoc{id: d.ID, tx: d.Tx, st: st})
	}
	return st, nil
}

// tidy finishes what the writers of the stale documents seen did not:
// versions of committed transactions lose their tx field, those of aborted
// ones become voids, and heartbeats go. It only saves later lookups, so
// failures are logged, not returned.
func (r *resolver) tidy(ctx context.Context) {
	if len(r.stale) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	var committed, aborted []string
	txs := map[string]bool{}
	for _, d := range r.stale {
		if d.st == stCommitted {
			committed = append(committed, d.id)
		} else {
			aborted = append(aborted, d.id)
		}
		txs[d.tx] = true
	}
	r.stale = nil
	if err := r.s.updateByID(ctx, committed, unsetTx); err != nil {
		r.s.log.Warn("mongostore: could not tidy versions of committed transactions", "err", err)
	}
	if err := r.s.updateByID(ctx, aborted, voidVersion); err != nil {
		r.s.log.Warn("mongostore: could not tidy versions of aborted transactions", "err", err)
	}
	for tx := range txs {
		if _, err := r.s.txns.DeleteOne(ctx, bson.D{{Key: "_id", Value: liveID(tx)}}); err != nil {
			r.s.log.Warn("mongostore: could not remove a heartbeat", "tx", tx, "err", err)
		}
	}
}

var (
	// unsetTx makes a version of a committed transaction a plain version.
	unsetTx = bson.D{{Key: "$unset", Value: bson.D{{Key: "tx", Value: ""}}}}
	// voidVersion makes a version of an aborted transaction a void that
	// keeps its _id (the slot stays used) and its seq.
	voidVersion = bson.D{
		{Key: "$set", Value: bson.D{{Key: "void", Value: true}}},
		{Key: "$unset", Value: bson.D{{Key: "type", Value: ""}, {Key: "rid", Value: ""}, {Key: "v", Value: ""},
			{Key: "op", Value: ""}, {Key: "ts", Value: ""}, {Key: "json", Value: ""}, {Key: "ix", Value: ""}, {Key: "tok", Value: ""}}},
	}
)

// updateByID applies update to the documents of versions with these _ids.
// Callers know each document is the one they mean: version documents are
// never deleted or replaced, so an _id names one document forever. On
// FerretDB, which looks up only an _id equality, one update per document.
func (s *Store) updateByID(ctx context.Context, ids []string, update bson.D) error {
	if len(ids) == 0 {
		return nil
	}
	if s.readThenWrite {
		return forEach(ctx, len(ids), func(i int) error {
			_, err := s.versions.UpdateOne(ctx, bson.D{{Key: "_id", Value: ids[i]}}, update)
			return err
		})
	}
	for chunk := range slices.Chunk(ids, idBatch) {
		if _, err := s.versions.UpdateMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: chunk}}}}, update); err != nil {
			return err
		}
	}
	return nil
}

// forEach runs f(0..n-1) on a few goroutines and returns the first error.
func forEach(ctx context.Context, n int, f func(i int) error) error {
	workers := min(n, max(4, runtime.GOMAXPROCS(0)))
	var (
		mu    sync.Mutex
		next  int
		first error
		wg    sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				stop := first != nil
				mu.Unlock()
				if i >= n || stop {
					return
				}
				err := f(i)
				if err == nil {
					err = ctx.Err()
				}
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return first
}

// liveVersion finds the live document of version v of typ/id: its attempts
// are inserted under slotID(typ, id, v, 0), 1, 2, … and an attempt is
// inserted only once the one before it is seen aborted, so at most one is
// live (committed or pending) and it is the last. It returns that document
// with the projection proj (nil: all of it) and its state, or stAbsent and
// the _id of the free slot after the aborted attempts.
func (s *Store) liveVersion(ctx context.Context, typ, id string, v int64, proj bson.D) (versionDoc, txState, string, error) {
	opts := options.FindOne()
	if proj != nil {
		opts.SetProjection(proj)
	}
	res := s.resolver()
	for k := range maxSlots {
		sid := slotID(typ, id, v, k)
		var d versionDoc
		err := s.versions.FindOne(ctx, bson.D{{Key: "_id", Value: sid}}, opts).Decode(&d)
		if errors.Is(err, mongo.ErrNoDocuments) {
			return versionDoc{}, stAbsent, sid, nil
		}
		if err != nil {
			return versionDoc{}, stAbsent, "", fmt.Errorf("look up %s: %w", sid, err)
		}
		st, err := res.state(ctx, &d)
		if err != nil {
			return versionDoc{}, stAbsent, "", err
		}
		if st != stAborted {
			return d, st, sid, nil
		}
	}
	return versionDoc{}, stAbsent, "", fmt.Errorf("%s has more than %d aborted attempts", versionID(typ, id, v), maxSlots)
}

// WriteAll applies ws all or none (fhir.Transactor): every version is
// checked as Write checks it, inserted as pending with the transaction's
// id, and the insert of the commit decision makes them all visible at once
// (see Transactions in the package documentation). A version conflict fails
// it with a *fhir.TxConflict naming the write; nothing of it is then
// visible.
func (s *Store) WriteAll(ctx context.Context, ws []fhir.Write) ([]fhir.Change, error) {
	chs, err := s.writeAll(ctx, ws)
	if err != nil {
		return nil, fmt.Errorf("mongostore: transaction of %d writes: %w", len(ws), err)
	}
	return chs, nil
}

// insState is what WriteAll knows of one version's insert.
type insState uint8

const (
	notInserted insState = iota
	inserted             // acknowledged
	uncertain            // failed without a definite answer: it may have landed
)

// txn is one WriteAll in progress.
type txn struct {
	s     *Store
	id    string
	ws    []fhir.Write
	docs  []*versionDoc
	ins   []insState
	empty []int64 // positions taken whose insert surely failed, to void
}

func (s *Store) writeAll(ctx context.Context, ws []fhir.Write) ([]fhir.Change, error) {
	if len(ws) == 0 {
		return nil, nil
	}
	seen := make(map[string]bool, len(ws))
	for i, w := range ws {
		ref := versionID(w.Type, w.ID, w.Version)
		if !validType(w.Type) || w.ID == "" {
			return nil, fmt.Errorf("write %d (%s): invalid type or id", i, ref)
		}
		if w.Version < 1 {
			return nil, &fhir.TxConflict{Index: i, Err: fmt.Errorf("write %s: %w", ref, fhir.ErrVersionConflict)}
		}
		key := currentID(w.Type, w.ID)
		if seen[key] {
			return nil, fmt.Errorf("write %d: %s is written twice", i, key)
		}
		seen[key] = true
	}
	t := &txn{s: s, id: rand.Text(), ws: ws, docs: make([]*versionDoc, len(ws)), ins: make([]insState, len(ws))}
	// 1. Check every version as Write does, before anything is written.
	errs := make([]error, len(ws))
	slots := make([]string, len(ws))
	if err := forEach(ctx, len(ws), func(i int) error {
		w := ws[i]
		slots[i], errs[i] = s.checkVersion(ctx, w.Type, w.ID, w.Version)
		if errs[i] != nil && !errors.Is(errs[i], fhir.ErrVersionConflict) {
			return errs[i]
		}
		return nil
	}); err != nil {
		return nil, err
	}
	for i, err := range errs {
		if err != nil {
			return nil, &fhir.TxConflict{Index: i, Err: fmt.Errorf("write %s: %w", versionID(ws[i].Type, ws[i].ID, ws[i].Version), err)}
		}
	}
	for i, w := range ws {
		t.docs[i] = &versionDoc{ID: slots[i], Type: w.Type, RID: w.ID, V: w.Version, Op: string(w.Op),
			TS: bson.NewDateTimeFromTime(w.LastUpdated), JSON: w.JSON, Ix: toEntryList(w.Index), Tx: t.id}
	}
	if s.crashed("checked") {
		return nil, errCrashed
	}
	// 2. The heartbeat, then the versions, pending, in batches.
	if _, err := s.txns.InsertOne(ctx, bson.D{{Key: "_id", Value: liveID(t.id)}, {Key: "at", Value: bson.NewDateTimeFromTime(time.Now())}}); err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	batch := s.txBatch
	if batch <= 0 {
		batch = defaultTxBatch
	}
	for start := 0; start < len(ws); start += batch {
		if err := t.insertBatch(ctx, start, min(start+batch, len(ws))); err != nil {
			return nil, t.abort(ctx, err)
		}
		if s.crashed("inserted") {
			return nil, errCrashed
		}
		if err := t.heartbeat(ctx); err != nil {
			return nil, t.abort(ctx, err)
		}
	}
	// 3. The commit point.
	st, err := s.decide(ctx, t.id, outcomeCommit)
	if err != nil {
		// Unknown: settle it by trying to abort; whichever decision got
		// in first stands.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
		st, err = s.decide(sctx, t.id, outcomeAbort)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("commit: the outcome is unknown (readers settle it): %w", err)
		}
	}
	if st != stCommitted {
		return nil, t.abort(ctx, errors.New("aborted by a reader that presumed the writer dead (no heartbeat for TxTimeout); nothing was stored"))
	}
	if s.crashed("decided") {
		return nil, errCrashed
	}
	// 4. Project, then tidy; the transaction is committed whatever happens now.
	t.finish(ctx)
	chs := make([]fhir.Change, len(ws))
	for i, d := range t.docs {
		chs[i] = d.change()
	}
	return chs, nil
}

// insertBatch inserts the versions start..end-1, each at a fresh feed
// position, as pending. A version whose position turns out to be taken
// gets another; one whose _id is taken is a conflict.
func (t *txn) insertBatch(ctx context.Context, start, end int) error {
	s := t.s
	idx := make([]int, 0, end-start)
	for i := start; i < end; i++ {
		idx = append(idx, i)
	}
	for attempt := 0; len(idx) > 0; attempt++ {
		if attempt == maxSeqAttempts {
			return fmt.Errorf("insert versions: feed positions taken %d times in a row", maxSeqAttempts)
		}
		if err := t.takeSeqs(ctx, idx); err != nil {
			return err
		}
		docs := make([]any, len(idx))
		for j, i := range idx {
			docs[j] = t.docs[i]
			t.ins[i] = uncertain
		}
		_, err := s.versions.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
		if err == nil {
			for _, i := range idx {
				t.ins[i] = inserted
			}
			idx = nil
			break
		}
		var bwe mongo.BulkWriteException
		if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 {
			return fmt.Errorf("insert versions: %w", err) // every insert of the batch is uncertain
		}
		failed := make(map[int]mongo.WriteError, len(bwe.WriteErrors))
		for _, we := range bwe.WriteErrors {
			if we.Index < 0 || we.Index >= len(idx) {
				return fmt.Errorf("insert versions: %w", err)
			}
			failed[idx[we.Index]] = we.WriteError
		}
		var retry []int
		conflict := -1
		var other error
		for _, i := range idx {
			we, bad := failed[i]
			if !bad {
				t.ins[i] = inserted
				continue
			}
			t.ins[i] = notInserted // a write error is a definite failure
			if !isDuplicateKey(we.Code) {
				t.empty = append(t.empty, t.docs[i].Seq)
				if other == nil {
					other = fmt.Errorf("insert %s: %w", t.docs[i].ID, we)
				}
				continue
			}
			// The _id (another writer won this version) or the seq (a
			// reader voided the position, or FerretDB handed it out
			// twice) is taken; the _id tells which.
			found, err := s.exists(ctx, t.docs[i].ID)
			switch {
			case err != nil:
				t.empty = append(t.empty, t.docs[i].Seq)
				if other == nil {
					other = err
				}
			case found:
				t.empty = append(t.empty, t.docs[i].Seq)
				if conflict < 0 || i < conflict {
					conflict = i
				}
			default:
				retry = append(retry, i)
			}
		}
		if conflict >= 0 {
			w := t.ws[conflict]
			return &fhir.TxConflict{Index: conflict, Err: fmt.Errorf("write %s: %w", versionID(w.Type, w.ID, w.Version), fhir.ErrVersionConflict)}
		}
		if other != nil {
			return other
		}
		idx = retry
	}
	return nil
}

// takeSeqs gives the versions idx fresh feed positions, in order. MongoDB's
// $inc is atomic, so one command takes them all; FerretDB's is not (two
// writers may read the same value), and a range handed out twice could send
// the counter back by its length, so there one position at a time.
func (t *txn) takeSeqs(ctx context.Context, idx []int) error {
	if !t.s.readThenWrite {
		last, err := t.s.takeSeqs(ctx, len(idx))
		if err != nil {
			return err
		}
		for j, i := range idx {
			t.docs[i].Seq = last - int64(len(idx)-1-j)
		}
	} else {
		for j, i := range idx {
			seq, err := t.s.nextSeq(ctx)
			if err != nil {
				for _, k := range idx[:j] { // taken, never to be used
					t.empty = append(t.empty, t.docs[k].Seq)
				}
				return err
			}
			t.docs[i].Seq = seq
		}
	}
	at := bson.NewDateTimeFromTime(time.Now())
	for _, i := range idx {
		t.docs[i].At = at
	}
	return nil
}

func isDuplicateKey(code int) bool { return code == 11000 || code == 11001 || code == 12582 }

// heartbeat tells readers the writer is alive, and stops the transaction
// early when a reader has presumed it dead.
func (t *txn) heartbeat(ctx context.Context) error {
	if st, found, err := t.s.decision(ctx, t.id); err != nil {
		return err
	} else if found && st == stAborted {
		return errors.New("aborted by a reader that presumed the writer dead (no heartbeat for TxTimeout); nothing was stored")
	}
	_, err := t.s.txns.UpdateOne(ctx, bson.D{{Key: "_id", Value: liveID(t.id)}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "at", Value: bson.NewDateTimeFromTime(time.Now())}}}})
	if err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	return nil
}

// abort decides the transaction aborted (unless it is already) and undoes
// what it can: the versions that landed become voids, the positions that
// hold nothing get voids. It returns cause. When even the abort cannot be
// inserted, the transaction stays pending until a reader presumes it dead.
func (t *txn) abort(ctx context.Context, cause error) error {
	s := t.s
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	st, err := s.decide(ctx, t.id, outcomeAbort)
	if err != nil {
		s.log.Warn("mongostore: could not abort a transaction; readers will after TxTimeout", "tx", t.id, "err", err)
		return cause
	}
	if st != stAborted { // only this writer commits, and it did not
		return fmt.Errorf("transaction %s: committed while aborting: %w", t.id, cause)
	}
	var landed []string
	voids := t.empty
	for i, d := range t.docs {
		switch t.ins[i] {
		case inserted:
			landed = append(landed, d.ID)
		case uncertain:
			// Void its position: then it can no longer land. If the
			// position is taken, the version may be there: void it as a
			// version, if it is this transaction's.
			voided, err := s.void(ctx, d.Seq)
			if err != nil || voided {
				continue
			}
			var got versionDoc
			if err := s.versions.FindOne(ctx, bson.D{{Key: "_id", Value: d.ID}}, options.FindOne().SetProjection(stateOnly)).Decode(&got); err == nil && got.Tx == t.id {
				landed = append(landed, d.ID)
			}
		}
	}
	for _, seq := range voids {
		if _, err := s.void(ctx, seq); err != nil {
			s.log.Warn("mongostore: could not void the position of an aborted write; readers wait GapTimeout", "seq", seq, "err", err)
		}
	}
	if err := s.updateByID(ctx, landed, voidVersion); err != nil {
		s.log.Warn("mongostore: could not void the versions of an aborted transaction; readers skip them", "tx", t.id, "err", err)
	}
	if _, err := s.txns.DeleteOne(ctx, bson.D{{Key: "_id", Value: liveID(t.id)}}); err != nil {
		s.log.Debug("mongostore: heartbeat not removed", "tx", t.id, "err", err)
	}
	return cause
}

// finish projects the committed versions into current, moves the
// checkpoint over their positions, and makes them plain versions. Failures
// are logged: readers see the versions already, and Find repairs current.
func (t *txn) finish(ctx context.Context) {
	s := t.s
	err := forEach(ctx, len(t.docs), func(i int) error { return s.project(ctx, t.docs[i]) })
	if err != nil {
		s.log.Warn("mongostore: projection of a transaction not updated; the next Find repairs it", "tx", t.id, "err", err)
	} else {
		s.advanceOver(ctx, t.docs)
	}
	if s.crashed("projected") {
		return
	}
	ids := make([]string, len(t.docs))
	for i, d := range t.docs {
		ids[i] = d.ID
	}
	if err := s.updateByID(ctx, ids, unsetTx); err != nil {
		s.log.Warn("mongostore: versions of a committed transaction keep their tx field; readers look the decision up", "tx", t.id, "err", err)
		return
	}
	if _, err := s.txns.DeleteOne(ctx, bson.D{{Key: "_id", Value: liveID(t.id)}}); err != nil {
		s.log.Debug("mongostore: heartbeat not removed", "tx", t.id, "err", err)
	}
}

// advanceOver moves the projection checkpoint over each run of consecutive
// positions of docs (all projected) when it stands within or just before
// the run: every position up to it is settled, and so is the run.
func (s *Store) advanceOver(ctx context.Context, docs []*versionDoc) {
	seqs := make([]int64, len(docs))
	for i, d := range docs {
		seqs[i] = d.Seq
	}
	slices.Sort(seqs)
	for i := 0; i < len(seqs); {
		j := i
		for j+1 < len(seqs) && seqs[j+1] == seqs[j]+1 {
			j++
		}
		a, b := seqs[i], seqs[j]
		_, err := s.counters.UpdateOne(ctx,
			bson.D{{Key: "_id", Value: projectedCounter}, {Key: "n", Value: bson.D{{Key: "$gte", Value: a - 1}, {Key: "$lt", Value: b}}}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "n", Value: b}}}})
		if err != nil {
			s.log.Debug("mongostore: checkpoint not advanced", "seq", b, "err", err)
		}
		i = j + 1
	}
}
