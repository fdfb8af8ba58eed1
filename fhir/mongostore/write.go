package mongostore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/fhirhub/fhirhub/fhir"
)

// maxSeqAttempts bounds how often one write takes a fresh feed position because
// the previous one was taken: on MongoDB only after a reader voided it, which
// needs a hole older than GapTimeout; on FerretDB 1.x, whose $inc is not atomic,
// whenever two writers were handed the same position.
const maxSeqAttempts = 100

// settleTimeout bounds the clean-up after a failed insert, which runs even when
// the caller's context is done.
const settleTimeout = 10 * time.Second

// Write appends version w.Version of w.Type/w.ID (see the package
// documentation for the steps and why they are safe without transactions).
func (s *Store) Write(ctx context.Context, w fhir.Write) (fhir.Change, error) {
	ref := versionID(w.Type, w.ID, w.Version)
	if !validType(w.Type) || w.ID == "" {
		return fhir.Change{}, fmt.Errorf("mongostore: write %s: invalid type or id", ref)
	}
	if w.Version < 1 {
		return fhir.Change{}, fmt.Errorf("mongostore: write %s: %w", ref, fhir.ErrVersionConflict)
	}
	slot, err := s.checkVersion(ctx, w.Type, w.ID, w.Version)
	if err != nil {
		return fhir.Change{}, fmt.Errorf("mongostore: write %s: %w", ref, err)
	}
	doc := &versionDoc{
		ID:   slot,
		Type: w.Type,
		RID:  w.ID,
		V:    w.Version,
		Op:   string(w.Op),
		TS:   bson.NewDateTimeFromTime(w.LastUpdated),
		JSON: w.JSON,
		Ix:   toEntryList(w.Index),
	}
	if err := s.commit(ctx, doc); err != nil {
		return fhir.Change{}, fmt.Errorf("mongostore: write %s: %w", ref, err)
	}
	if err := s.project(ctx, doc); err != nil {
		// The version is committed; Find repairs the projection (see repair).
		s.log.Warn("mongostore: projection not updated; the next Find repairs it", "version", ref, "seq", doc.Seq, "err", err)
	} else {
		s.advance(ctx, doc.Seq)
	}
	return doc.change(), nil
}

// checkVersion fails with ErrVersionConflict unless version v-1 is
// committed (v > 1) and version v has no live document (committed or in a
// pending transaction); it returns the _id to insert version v under: the
// first slot after the aborted attempts (see liveVersion). Since committed
// versions are gap-free and never deleted, this means v-1 is the latest
// version. Every lookup is by _id, which FerretDB, unlike other filters,
// answers without scanning the collection.
func (s *Store) checkVersion(ctx context.Context, typ, id string, v int64) (string, error) {
	_, st, slot, err := s.liveVersion(ctx, typ, id, v, stateOnly)
	if err != nil {
		return "", fmt.Errorf("check current version: %w", err)
	}
	if st != stAbsent {
		return "", fhir.ErrVersionConflict
	}
	if v == 1 {
		return slot, nil
	}
	if _, st, _, err = s.liveVersion(ctx, typ, id, v-1, stateOnly); err != nil {
		return "", fmt.Errorf("check current version: %w", err)
	}
	if st != stCommitted {
		return "", fhir.ErrVersionConflict
	}
	return slot, nil
}

// commit takes a feed position and inserts doc with it: the commit point.
func (s *Store) commit(ctx context.Context, doc *versionDoc) error {
	for range maxSeqAttempts {
		seq, err := s.nextSeq(ctx)
		if err != nil {
			return err
		}
		doc.Seq = seq
		doc.At = bson.NewDateTimeFromTime(time.Now())
		_, err = s.versions.InsertOne(ctx, doc)
		if err == nil {
			return nil
		}
		if !mongo.IsDuplicateKeyError(err) {
			if s.settle(ctx, doc) {
				return nil
			}
			return fmt.Errorf("insert version: %w", err)
		}
		// Either the _id (another writer won this version) or the seq (a
		// reader voided the position, or FerretDB handed it out twice) is
		// taken; the _id tells which.
		found, ferr := s.exists(ctx, doc.ID)
		switch {
		case ferr != nil:
			if s.settle(ctx, doc) {
				return nil
			}
			return ferr
		case found:
			if voided, verr := s.void(ctx, seq); verr != nil {
				s.log.Warn("mongostore: could not void the position of a lost write; readers wait GapTimeout", "seq", seq, "err", verr)
			} else if voided {
				s.advance(ctx, seq)
			}
			return fhir.ErrVersionConflict
		}
		// The position is taken: take a fresh one.
	}
	return fmt.Errorf("insert version: feed position taken %d times in a row", maxSeqAttempts)
}

// settle decides a failed insert of doc whose outcome is unknown: it voids
// doc's position, so the version can no longer land there, and reports whether
// the version had landed after all (the position is taken and doc's _id holds
// exactly doc).
func (s *Store) settle(ctx context.Context, doc *versionDoc) (landed bool) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	voided, err := s.void(ctx, doc.Seq)
	if err != nil || voided {
		return false
	}
	var got versionDoc
	if err := s.versions.FindOne(ctx, bson.D{{Key: "_id", Value: doc.ID}}).Decode(&got); err != nil {
		return false
	}
	return got.Seq == doc.Seq && got.Op == doc.Op && got.TS == doc.TS &&
		bytes.Equal(got.JSON, doc.JSON) && slices.Equal(got.Ix, doc.Ix)
}

// nextSeq takes the next feed position.
func (s *Store) nextSeq(ctx context.Context) (int64, error) {
	return s.takeSeqs(ctx, 1)
}

// takeSeqs takes n consecutive feed positions and returns the last.
func (s *Store) takeSeqs(ctx context.Context, n int) (int64, error) {
	var c struct {
		N int64 `bson:"n"`
	}
	err := s.counters.FindOneAndUpdate(ctx,
		bson.D{{Key: "_id", Value: seqCounter}},
		bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: int64(n)}}}},
		options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After),
	).Decode(&c)
	if err != nil {
		return 0, fmt.Errorf("take feed position: %w", err)
	}
	return c.N, nil
}

// exists reports whether the versions collection has a document with this _id.
func (s *Store) exists(ctx context.Context, id string) (bool, error) {
	err := s.versions.FindOne(ctx, bson.D{{Key: "_id", Value: id}},
		options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up %s: %w", id, err)
	}
	return true, nil
}

// void marks a feed position as never to hold a version. It reports false
// without error when the position is already taken (by a version or a void).
func (s *Store) void(ctx context.Context, seq int64) (bool, error) {
	_, err := s.versions.InsertOne(ctx, bson.D{
		{Key: "_id", Value: voidID(seq)},
		{Key: "seq", Value: seq},
		{Key: "void", Value: true},
		{Key: "at", Value: bson.NewDateTimeFromTime(time.Now())},
	})
	if mongo.IsDuplicateKeyError(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("void feed position %d: %w", seq, err)
	}
	return true, nil
}

// project moves the current document of doc's resource forward to doc; it
// leaves it alone when it already holds doc's version or a later one.
//
// MongoDB applies the conditional upsert atomically. FerretDB 1.x does not (it
// reads, then writes), so this write may overwrite a later version projected
// meanwhile; hence, after writing, project looks for the next version (by
// _id: versions are gap-free) and projects that too, once committed. Whoever writes current
// last checks afterwards, so current ends at the latest version.
func (s *Store) project(ctx context.Context, doc *versionDoc) error {
	return s.projectAt(ctx, doc, false)
}

// projectAt is project; with again, it also rewrites current when it holds
// doc's version (for Reindex).
func (s *Store) projectAt(ctx context.Context, doc *versionDoc, again bool) error {
	for {
		wrote, err := s.upsertCurrent(ctx, doc, again)
		again = false
		if err != nil || !wrote {
			return err
		}
		next, st, _, err := s.liveVersion(ctx, doc.Type, doc.RID, doc.V+1, nil)
		if err != nil {
			return fmt.Errorf("look for a version after %s: %w", doc.ID, err)
		}
		if st != stCommitted {
			return nil
		}
		doc = &next
	}
}

// upsertCurrent writes doc to current unless current holds doc's version
// (unless again) or a later one; it reports whether it wrote. The current
// document carries the version's entries and the search fields derived from
// them (see fieldsOf).
func (s *Store) upsertCurrent(ctx context.Context, doc *versionDoc, again bool) (bool, error) {
	var body any // null for a deletion
	if doc.JSON != nil {
		body = doc.JSON
	}
	ix := doc.entryList()
	if ix == nil {
		ix = entryList{}
	}
	sf := fieldsOf(ix)
	set := bson.D{
		{Key: "type", Value: doc.Type},
		{Key: "rid", Value: doc.RID},
		{Key: "v", Value: doc.V},
		{Key: "seq", Value: doc.Seq},
		{Key: "op", Value: doc.Op},
		{Key: "ts", Value: doc.TS},
		{Key: "ix", Value: ix},
		{Key: "k", Value: sf.keys},
		{Key: "json", Value: body},
	}
	var unset bson.D // empty fields are left out: FerretDB's scans pay for every value
	for _, f := range []bson.E{{Key: "n", Value: sf.num}, {Key: "d", Value: sf.date}, {Key: "sk", Value: sf.sortValues}} {
		if len(f.Value.(bson.D)) > 0 {
			set = append(set, f)
		} else {
			unset = append(unset, bson.E{Key: f.Key, Value: ""})
		}
	}
	update := bson.D{{Key: "$set", Value: set}}
	if len(unset) > 0 {
		update = append(update, bson.E{Key: "$unset", Value: unset})
	}
	if err := s.ensureIndexes(ctx, doc.Type); err != nil {
		return false, fmt.Errorf("project %s: %w", doc.ID, err)
	}
	current := s.currentOf(doc.Type)
	id := currentID(doc.Type, doc.RID)
	older := "$lt"
	if again {
		older = "$lte"
	}
	filter := bson.D{{Key: "_id", Value: id}, {Key: "v", Value: bson.D{{Key: older, Value: doc.V}}}}
	if s.readThenWrite {
		// What FerretDB would do with the conditional filter, but by _id,
		// which it looks up instead of scanning the collection.
		var cur struct {
			V int64 `bson:"v"`
		}
		err := current.FindOne(ctx, bson.D{{Key: "_id", Value: id}}, options.FindOne().SetProjection(bson.D{{Key: "v", Value: 1}})).Decode(&cur)
		switch {
		case err == nil && (cur.V > doc.V || cur.V == doc.V && !again):
			return false, nil
		case err != nil && !errors.Is(err, mongo.ErrNoDocuments):
			return false, fmt.Errorf("project %s: %w", doc.ID, err)
		}
		filter = bson.D{{Key: "_id", Value: id}}
	}
	res, err := current.UpdateOne(ctx, filter, update, options.UpdateOne().SetUpsert(true))
	if mongo.IsDuplicateKeyError(err) {
		return false, nil // current holds a later version: no match, and the upsert could not insert
	}
	if err != nil {
		return false, fmt.Errorf("project %s: %w", doc.ID, err)
	}
	return res.MatchedCount+res.UpsertedCount > 0, nil
}

// advance moves the projection checkpoint from seq-1 to seq, if it stands
// there; otherwise a later repair moves it.
func (s *Store) advance(ctx context.Context, seq int64) {
	_, err := s.counters.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: projectedCounter}, {Key: "n", Value: seq - 1}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "n", Value: seq}}}})
	if err != nil {
		s.log.Debug("mongostore: checkpoint not advanced", "seq", seq, "err", err)
	}
}

// Reindex replaces the index entries of version of typ/id if it is the latest
// version and not a deletion (fhir.Reindexer): on the version document, from
// which the projection and its repair take them, then on the current
// document.
func (s *Store) Reindex(ctx context.Context, typ, id string, version int64, entries []fhir.IndexEntry) error {
	ref := versionID(typ, id, version)
	doc, st, _, err := s.liveVersion(ctx, typ, id, version, nil)
	if err != nil {
		return fmt.Errorf("mongostore: reindex %s: %w", ref, err)
	}
	if st != stCommitted || doc.Op == string(fhir.OpDelete) {
		return nil
	}
	if _, st, _, err := s.liveVersion(ctx, typ, id, version+1, stateOnly); err != nil || st == stCommitted {
		if err != nil {
			return fmt.Errorf("mongostore: reindex %s: %w", ref, err)
		}
		return nil // replaced: the newer version has its own entries
	}
	doc.Ix, doc.Tok = toEntryList(entries), nil
	ix := doc.Ix
	if ix == nil {
		ix = entryList{}
	}
	if _, err := s.versions.UpdateOne(ctx, bson.D{{Key: "_id", Value: doc.ID}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "ix", Value: ix}}}, {Key: "$unset", Value: bson.D{{Key: "tok", Value: ""}}}}); err != nil {
		return fmt.Errorf("mongostore: reindex %s: %w", ref, err)
	}
	if err := s.projectAt(ctx, &doc, true); err != nil {
		return fmt.Errorf("mongostore: reindex %s: %w", ref, err)
	}
	return nil
}
