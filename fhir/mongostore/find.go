package mongostore

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/fhirhub/fhirhub/fhir"
)

// Find lists the current, not deleted resources of m.Type that match m: it
// brings the projection up to date (see refresh), queries current, and checks
// each candidate against versions (see verify).
func (s *Store) Find(ctx context.Context, m fhir.Match) ([]fhir.Resource, error) {
	out, err := s.find(ctx, m)
	if err != nil {
		return nil, fmt.Errorf("mongostore: find %s: %w", m.Type, err)
	}
	return out, nil
}

func (s *Store) find(ctx context.Context, m fhir.Match) ([]fhir.Resource, error) {
	if !validType(m.Type) {
		return nil, nil
	}
	filter, err := findFilter(m)
	if err != nil {
		return nil, err
	}
	if err := s.refresh(ctx); err != nil {
		return nil, err
	}
	var out []fhir.Resource
	after := "" // page on _id when candidates drop out under a limit
	for {
		f := filter
		if after != "" {
			f = bson.D{{Key: "$and", Value: bson.A{filter, bson.D{{Key: "_id", Value: bson.D{{Key: "$gt", Value: after}}}}}}}
		}
		opts := options.Find().SetSort(bson.D{{Key: "_id", Value: 1}})
		want := m.Limit - len(out)
		if m.Limit > 0 {
			opts.SetLimit(int64(want))
		}
		docs, err := findAll[versionDoc](ctx, s.currentOf(m.Type), f, opts)
		if err != nil {
			return nil, err
		}
		got, err := s.verify(ctx, m, docs)
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
		if m.Limit <= 0 || len(out) >= m.Limit || len(docs) < want {
			return out, nil
		}
		after = docs[len(docs)-1].ID
	}
}

// verify keeps the candidates from current that are still the latest version
// of their resource. current can lag behind versions for a moment (a writer
// between its insert and its projection) or, on FerretDB, after a crash at
// the wrong moment; for such a candidate verify reads the latest version,
// keeps it if it matches m, and moves current forward.
func (s *Store) verify(ctx context.Context, m fhir.Match, docs []versionDoc) ([]fhir.Resource, error) {
	if len(docs) == 0 {
		return nil, nil
	}
	newer, err := s.nextVersions(ctx, s.resolver(), docs)
	if err != nil {
		return nil, fmt.Errorf("check candidates: %w", err)
	}
	out := make([]fhir.Resource, 0, len(docs))
	for i := range docs {
		d := &docs[i]
		if _, stale := newer[d.ID]; !stale {
			out = append(out, d.resource())
			continue
		}
		latest, found, err := s.latest(ctx, d.Type, d.RID, true)
		if err != nil {
			return nil, err
		}
		if !found {
			continue // cannot happen: versions are never deleted
		}
		if err := s.project(ctx, &latest); err != nil {
			s.log.Warn("mongostore: projection not updated", "version", latest.ID, "err", err)
		}
		if matches(m, &latest) {
			out = append(out, latest.resource())
		}
	}
	return out, nil
}

// matches evaluates m against a version in memory, as findFilter does in the
// database.
func matches(m fhir.Match, d *versionDoc) bool {
	if d.Type != m.Type || d.Op == string(fhir.OpDelete) {
		return false
	}
	if len(m.IDs) > 0 && !slices.Contains(m.IDs, d.RID) {
		return false
	}
	ix := d.entryList()
	for _, tm := range m.Tokens {
		if !slices.ContainsFunc(tm.Values, func(v fhir.TokenValue) bool { return hasToken(ix, tm.Param, v) }) {
			return false
		}
	}
	for _, b := range m.LastUpdated {
		if !dateMatches(b.Op, b.Time, d.TS) {
			return false
		}
	}
	return true
}

// Count returns how many resources of typ exist (current and not deleted).
func (s *Store) Count(ctx context.Context, typ string) (int64, error) {
	if err := s.refresh(ctx); err != nil {
		return 0, fmt.Errorf("mongostore: count %s: %w", typ, err)
	}
	if !validType(typ) {
		return 0, nil
	}
	n, err := s.currentOf(typ).CountDocuments(ctx, live)
	if err != nil {
		return 0, fmt.Errorf("mongostore: count %s: %w", typ, err)
	}
	return n, nil
}

// live selects the current documents that are not deletions.
var live = bson.D{{Key: "op", Value: bson.D{{Key: "$ne", Value: string(fhir.OpDelete)}}}}

// findFilter is m as a condition on the search keys of m.Type's current
// documents (see fieldsOf and hasToken).
func findFilter(m fhir.Match) (bson.D, error) {
	filter := slices.Clone(live)
	if len(m.IDs) > 0 {
		ids := make(bson.A, len(m.IDs))
		for i, id := range m.IDs {
			ids[i] = currentID(m.Type, id)
		}
		filter = append(filter, bson.E{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}})
	}
	var and bson.A
	for _, tm := range m.Tokens {
		keys := bson.A{}
		anyEntry := false
		for _, v := range tm.Values {
			if v.AnySystem && v.Code == "" {
				anyEntry = true
			} else {
				keys = append(keys, tokenValueKey(tm.Param, v))
			}
		}
		if anyEntry {
			and = append(and, presence(tm.Param, true))
		} else {
			and = append(and, bson.D{{Key: "k", Value: bson.D{{Key: "$in", Value: keys}}}})
		}
	}
	for _, b := range m.LastUpdated {
		switch b.Op {
		case "gt", "ge", "lt", "le":
		default:
			return nil, fmt.Errorf("unknown lastUpdated comparison %q", b.Op)
		}
		and = append(and, bson.D{{Key: "ts", Value: bson.D{dateCond(b.Op, b.Time)}}})
	}
	if len(and) > 0 {
		filter = append(filter, bson.E{Key: "$and", Value: and})
	}
	return filter, nil
}

// tokenValueKey is the key, or the regex over keys, that a current document
// has exactly when hasToken holds: a token of param with the code in any
// system, any code in the system, or exactly system|code. (An empty value
// in any system selects any entry of param: see findFilter.)
func tokenValueKey(param string, v fhir.TokenValue) any {
	switch {
	case v.AnySystem:
		return compKey(param, 0, kindTokenCode, v.Code)
	case v.Code == "":
		return bson.Regex{Pattern: "^" + regexp.QuoteMeta(compKey(param, 0, kindTokenExact, v.System, ""))}
	}
	return compKey(param, 0, kindTokenExact, v.System, v.Code)
}

// hasToken evaluates tokenValueKey in memory.
func hasToken(ix entryList, param string, v fhir.TokenValue) bool {
	for i := range ix {
		e := &ix[i]
		if e.Param != param {
			continue
		}
		if v.AnySystem && v.Code == "" {
			return true
		}
		if e.Comp != 0 || !hasTokenKeys(e) {
			continue
		}
		switch {
		case v.AnySystem:
			if e.Code == v.Code {
				return true
			}
		case e.System == v.System && (v.Code == "" || e.Code == v.Code):
			return true
		}
	}
	return false
}

// repairBatch is how many versions one repair query reads.
const repairBatch = 500

// refresh makes sure current reflects every version committed so far.
func (s *Store) refresh(ctx context.Context) error {
	_, err := s.refreshSeq(ctx)
	return err
}

// refreshSeq reads the feed counter and the checkpoint, in one query, and
// runs repair from the checkpoint unless it has reached the counter: every
// version of a write that returned before the call has a position at or
// below the counter, and the checkpoint passes a position only once its
// version is projected. So one read suffices when nothing is behind. It
// returns the counter it read.
func (s *Store) refreshSeq(ctx context.Context) (int64, error) {
	cs, err := findAll[struct {
		ID string `bson:"_id"`
		N  int64  `bson:"n"`
	}](ctx, s.counters, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: bson.A{seqCounter, projectedCounter}}}}})
	if err != nil {
		return 0, fmt.Errorf("read counters: %w", err)
	}
	var seq, cp int64
	for _, c := range cs {
		if c.ID == seqCounter {
			seq = c.N
		} else {
			cp = c.N
		}
	}
	if cp >= seq {
		return seq, nil
	}
	if err := s.repair(ctx, cp); err != nil {
		return 0, fmt.Errorf("repair projection: %w", err)
	}
	return seq, nil
}

// repair re-projects every committed version after checkpoint cp that
// current does not reflect yet, closes holes older than GapTimeout, and moves
// the checkpoint over the consecutive positions it settled: a version of a
// transaction not decided yet is not settled (see Transactions).
func (s *Store) repair(ctx context.Context, cp int64) error {
	scanned := cp
	next := cp + 1 // every position before next holds a projected version or a void
	consecutive := true
	res := s.resolver()
	defer res.tidy(ctx)
	for {
		docs, err := findAll[versionDoc](ctx, s.versions,
			bson.D{{Key: "seq", Value: bson.D{{Key: "$gt", Value: scanned}}}},
			options.Find().SetSort(bson.D{{Key: "seq", Value: 1}}).SetLimit(repairBatch).SetProjection(withoutBody))
		if err != nil {
			return fmt.Errorf("scan versions after %d: %w", scanned, err)
		}
		states := make([]txState, len(docs))
		for i := range docs {
			if states[i], err = res.state(ctx, &docs[i]); err != nil {
				return err
			}
		}
		if err := s.reproject(ctx, docs, states); err != nil {
			return err
		}
		for i := range docs {
			d := &docs[i]
			if consecutive && d.Seq != next {
				g, err := s.closeGap(ctx, next, d)
				if err != nil {
					return err
				}
				consecutive = g == gapClosed
			}
			if states[i] == stPending {
				consecutive = false // not settled until its transaction is decided
			}
			if consecutive {
				next = d.Seq + 1
			}
			scanned = d.Seq
		}
		if len(docs) < repairBatch {
			break
		}
	}
	if next-1 > cp {
		_, err := s.counters.UpdateOne(ctx,
			bson.D{{Key: "_id", Value: projectedCounter}, {Key: "n", Value: bson.D{{Key: "$lt", Value: next - 1}}}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "n", Value: next - 1}}}})
		if err != nil {
			return fmt.Errorf("advance checkpoint to %d: %w", next-1, err)
		}
	}
	return nil
}

// reproject brings current up to the latest committed of docs (read
// without bodies; states says what each is) for every resource among them.
func (s *Store) reproject(ctx context.Context, docs []versionDoc, states []txState) error {
	latest := map[string]*versionDoc{}
	for i := range docs {
		d := &docs[i]
		if states[i] != stCommitted {
			continue
		}
		key := currentID(d.Type, d.RID)
		if l, ok := latest[key]; !ok || d.V > l.V {
			latest[key] = d
		}
	}
	if len(latest) == 0 {
		return nil
	}
	byType := map[string]bson.A{}
	for key, d := range latest {
		byType[d.Type] = append(byType[d.Type], key)
	}
	for typ, ids := range byType {
		have, err := findAll[struct {
			ID string `bson:"_id"`
			V  int64  `bson:"v"`
		}](ctx, s.currentOf(typ), bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}},
			options.Find().SetProjection(bson.D{{Key: "v", Value: 1}}))
		if err != nil {
			return fmt.Errorf("read current: %w", err)
		}
		for _, h := range have {
			if h.V >= latest[h.ID].V {
				delete(latest, h.ID)
			}
		}
	}
	for _, d := range latest {
		var full versionDoc
		if err := s.versions.FindOne(ctx, bson.D{{Key: "_id", Value: d.ID}}).Decode(&full); err != nil {
			return fmt.Errorf("read %s: %w", d.ID, err)
		}
		if err := s.project(ctx, &full); err != nil {
			return err
		}
		// A young version is most likely a write between its two steps; an
		// old one was left behind by a crash or a failed update.
		level := slog.LevelDebug
		if time.Since(d.At.Time()) >= s.gapTimeout {
			level = slog.LevelInfo
		}
		s.log.Log(ctx, level, "mongostore: repaired the projection", "version", d.ID, "seq", d.Seq)
	}
	return nil
}
