package mongostore

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/fhirhub/fhirhub/fhir"
)

// Read returns the latest version of typ/id from versions, the source of truth.
func (s *Store) Read(ctx context.Context, typ, id string) (fhir.Resource, error) {
	d, found, err := s.latest(ctx, typ, id, true)
	if err != nil {
		return fhir.Resource{}, fmt.Errorf("mongostore: read %s: %w", currentID(typ, id), err)
	}
	if !found {
		return fhir.Resource{}, fmt.Errorf("mongostore: read %s: %w", currentID(typ, id), fhir.ErrNotFound)
	}
	return d.resource(), nil
}

// latestBatch is how many of a resource's newest documents latest reads
// first: the newest committed version is among them unless a version has
// several aborted attempts that were not tidied yet.
const latestBatch = 4

// latest reads the latest committed version document of typ/id, with or
// without body, skipping versions of pending and aborted transactions.
func (s *Store) latest(ctx context.Context, typ, id string, body bool) (versionDoc, bool, error) {
	opts := options.Find().SetSort(bson.D{{Key: "v", Value: -1}})
	if !body {
		opts.SetProjection(withoutBody)
	}
	filter := bson.D{{Key: "type", Value: typ}, {Key: "rid", Value: id}}
	res := s.resolver()
	for _, limit := range []int64{latestBatch, 0} {
		docs, err := findAll[versionDoc](ctx, s.versions, filter, opts.SetLimit(limit))
		if err != nil {
			return versionDoc{}, false, fmt.Errorf("read latest version of %s: %w", currentID(typ, id), err)
		}
		for i := range docs {
			st, err := res.state(ctx, &docs[i])
			if err != nil {
				return versionDoc{}, false, fmt.Errorf("read latest version of %s: %w", currentID(typ, id), err)
			}
			if st == stCommitted {
				return docs[i], true, nil
			}
		}
		if len(docs) < latestBatch {
			break
		}
	}
	return versionDoc{}, false, nil
}

// VRead returns one version of typ/id.
func (s *Store) VRead(ctx context.Context, typ, id string, version int64) (fhir.Resource, error) {
	ref := versionID(typ, id, version)
	d, st, _, err := s.liveVersion(ctx, typ, id, version, nil)
	if err != nil {
		return fhir.Resource{}, fmt.Errorf("mongostore: vread %s: %w", ref, err)
	}
	if st != stCommitted {
		return fhir.Resource{}, fmt.Errorf("mongostore: vread %s: %w", ref, fhir.ErrNotFound)
	}
	return d.resource(), nil
}

// History lists versions newest first by seq (see fhir.HistoryQuery).
func (s *Store) History(ctx context.Context, q fhir.HistoryQuery) ([]fhir.Change, error) {
	out, err := s.history(ctx, q)
	if err != nil {
		what := "system"
		switch {
		case q.ID != "":
			what = currentID(q.Type, q.ID)
		case q.Type != "":
			what = q.Type
		}
		return nil, fmt.Errorf("mongostore: history of %s: %w", what, err)
	}
	return out, nil
}

func (s *Store) history(ctx context.Context, q fhir.HistoryQuery) ([]fhir.Change, error) {
	if q.Count <= 0 {
		return nil, fmt.Errorf("count %d, want > 0", q.Count)
	}
	var filter bson.D
	if q.Type != "" {
		filter = append(filter, bson.E{Key: "type", Value: q.Type})
	} else {
		filter = append(filter, bson.E{Key: "type", Value: bson.D{{Key: "$exists", Value: true}}}) // not a void
	}
	if q.ID != "" {
		filter = append(filter, bson.E{Key: "rid", Value: q.ID})
	}
	var ts bson.D
	if !q.Since.IsZero() {
		ts = append(ts, dateCond("ge", q.Since))
	}
	at := !q.AtEnd.IsZero()
	if at {
		ts = append(ts, dateCond("le", q.AtEnd))
	}
	if len(ts) > 0 {
		filter = append(filter, bson.E{Key: "ts", Value: ts})
	}
	before := q.Before
	var out []fhir.Change
	res := s.resolver()
	for {
		f := filter[:len(filter):len(filter)]
		if before > 0 {
			f = append(f, bson.E{Key: "seq", Value: bson.D{{Key: "$lt", Value: before}}})
		}
		limit := q.Count - len(out)
		if at {
			// Some candidates will be dropped as replaced: read a little more.
			limit = max(2*limit, 20)
		}
		docs, err := findAll[versionDoc](ctx, s.versions, f, options.Find().
			SetSort(bson.D{{Key: "seq", Value: -1}}).
			SetLimit(int64(limit)))
		if err != nil {
			return nil, err
		}
		n := len(docs)
		visible := docs[:0:0]
		for i := range docs {
			st, err := res.state(ctx, &docs[i])
			if err != nil {
				return nil, err
			}
			if st == stCommitted {
				visible = append(visible, docs[i])
			}
		}
		replaced := map[string]bool{}
		if at && len(visible) > 0 {
			if replaced, err = s.replacedBy(ctx, res, visible, q.AtStart); err != nil {
				return nil, err
			}
		}
		for i := range visible {
			if !replaced[visible[i].ID] {
				out = append(out, visible[i].change())
			}
			if len(out) == q.Count {
				return out, nil
			}
		}
		if n < limit {
			return out, nil
		}
		before = docs[n-1].Seq
	}
}

// replacedBy returns the _ids of the versions among docs whose next
// version was written at or before t.
func (s *Store) replacedBy(ctx context.Context, res *resolver, docs []versionDoc, t time.Time) (map[string]bool, error) {
	next, err := s.nextVersions(ctx, res, docs)
	if err != nil {
		return nil, err
	}
	replaced := make(map[string]bool, len(next))
	for id, n := range next {
		if dateMatches("le", t, n.TS) {
			replaced[id] = true
		}
	}
	return replaced, nil
}

// nextVersions returns, by the _id of each of docs that has one, the
// committed version after it (without body): one query for the first
// attempts of the next versions, then lookups by _id where an attempt
// aborted.
func (s *Store) nextVersions(ctx context.Context, res *resolver, docs []versionDoc) (map[string]versionDoc, error) {
	out := map[string]versionDoc{}
	if len(docs) == 0 {
		return out, nil
	}
	next := make(bson.A, 0, len(docs))
	prev := make(map[string]*versionDoc, len(docs))
	for i := range docs {
		d := &docs[i]
		id := versionID(d.Type, d.RID, d.V+1)
		next = append(next, id)
		prev[id] = d
	}
	found, err := findAll[versionDoc](ctx, s.versions, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: next}}}},
		options.Find().SetProjection(withoutBody))
	if err != nil {
		return nil, fmt.Errorf("look up next versions: %w", err)
	}
	for i := range found {
		f := &found[i]
		d := prev[f.ID]
		st, err := res.state(ctx, f)
		if err != nil {
			return nil, err
		}
		switch st {
		case stCommitted:
			out[d.ID] = *f
		case stAborted: // a later attempt may be live
			live, st, _, err := s.liveVersion(ctx, d.Type, d.RID, d.V+1, withoutBody)
			if err != nil {
				return nil, fmt.Errorf("look up next versions: %w", err)
			}
			if st == stCommitted {
				out[d.ID] = live
			}
		}
	}
	return out, nil
}

// maxGapRetries bounds how often one Changes call re-reads after a hole it
// tried to void turned out to be filled meanwhile.
const maxGapRetries = 3

// Changes lists the changes after position after, oldest first: only the run
// of consecutive positions, so a position still in flight, or held by a
// transaction not decided yet, stops the list (see the package
// documentation).
func (s *Store) Changes(ctx context.Context, after int64, limit int) ([]fhir.Change, error) {
	if limit <= 0 {
		return nil, nil
	}
	var out []fhir.Change
	next := after + 1 // the position the feed needs next
	retries := 0
	res := s.resolver()
	defer res.tidy(ctx)
	for len(out) < limit {
		batch := limit - len(out) + 16 // voids take room too
		docs, err := findAll[versionDoc](ctx, s.versions,
			bson.D{{Key: "seq", Value: bson.D{{Key: "$gte", Value: next}}}},
			options.Find().SetSort(bson.D{{Key: "seq", Value: 1}}).SetLimit(int64(batch)))
		if err != nil {
			return nil, fmt.Errorf("mongostore: changes after %d: %w", after, err)
		}
		stalled, refilled := false, false
		for i := range docs {
			d := &docs[i]
			if d.Seq != next {
				g, err := s.closeGap(ctx, next, d)
				if err != nil {
					return nil, fmt.Errorf("mongostore: changes after %d: %w", after, err)
				}
				if g != gapClosed {
					stalled, refilled = true, g == gapFilled
					break
				}
			}
			st, err := res.state(ctx, d)
			if err != nil {
				return nil, fmt.Errorf("mongostore: changes after %d: %w", after, err)
			}
			if st == stPending {
				stalled = true // a transaction that may still commit: a hole until it is decided
				break
			}
			next = d.Seq + 1
			if st == stCommitted {
				out = append(out, d.change())
				if len(out) == limit {
					break
				}
			}
		}
		if refilled && retries < maxGapRetries {
			retries++
			continue // something landed in the hole while we voided it: read again
		}
		if stalled || len(docs) < batch {
			break
		}
	}
	return out, nil
}

// gapState is what closeGap found.
type gapState int

const (
	gapOpen   gapState = iota // younger than GapTimeout: a write may be in flight
	gapClosed                 // every position in it is voided now
	gapFilled                 // a version or another reader's void landed in it meanwhile
)

// closeGap voids the positions from..following.Seq-1, which held nothing when
// read, if following (the next document of the feed) is older than GapTimeout:
// the writers of those positions took them before following's writer took its
// own, so they have been gone at least that long.
func (s *Store) closeGap(ctx context.Context, from int64, following *versionDoc) (gapState, error) {
	age := time.Since(following.At.Time())
	if age < s.gapTimeout {
		return gapOpen, nil
	}
	for seq := from; seq < following.Seq; seq++ {
		voided, err := s.void(ctx, seq)
		if err != nil {
			return gapOpen, err
		}
		if !voided {
			return gapFilled, nil
		}
		s.log.Warn("mongostore: voided an abandoned feed position", "seq", seq, "next", following.Seq, "age", age)
	}
	return gapClosed, nil
}

// dateCond is the condition on a millisecond BSON date equivalent to op
// (gt, ge, lt, le) against t, which may carry finer precision.
func dateCond(op string, t time.Time) bson.E {
	op, floor := dateBound(op, t)
	return bson.E{Key: op, Value: floor}
}

// dateBound turns op (gt, ge, lt, le) against t into a MongoDB comparison
// operator against t's millisecond floor that selects the same stored dates.
func dateBound(op string, t time.Time) (string, bson.DateTime) {
	floor := bson.NewDateTimeFromTime(t)
	exact := floor.Time().Equal(t)
	switch op {
	case "gt":
		return "$gt", floor
	case "ge":
		if exact {
			return "$gte", floor
		}
		return "$gt", floor
	case "lt":
		if exact {
			return "$lt", floor
		}
		return "$lte", floor
	default: // le
		return "$lte", floor
	}
}

// dateMatches evaluates dateBound's result in memory.
func dateMatches(op string, t time.Time, ts bson.DateTime) bool {
	mop, floor := dateBound(op, t)
	switch mop {
	case "$gt":
		return ts > floor
	case "$gte":
		return ts >= floor
	case "$lt":
		return ts < floor
	default:
		return ts <= floor
	}
}
