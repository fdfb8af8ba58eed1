package subscriptions

import (
	"context"
	"sync"

	"github.com/fhirhub/fhirhub/fhir"
	"github.com/fhirhub/fhirhub/fhir/search"
	"github.com/fhirhub/fhirhub/smart"
)

// sub is a subscription the registry knows: a valid spec whose changes are
// matched (status active, or error after failed deliveries: events keep
// queueing until it is active again).
type sub struct {
	*spec
	// since is the feed position (fhir.Change.Seq) from which changes are
	// matched: the version that made the subscription deliverable.
	since int64
	// readable judges a version for the creator's scopes; nil: no limit.
	readable func(ctx context.Context, r fhir.Resource) (bool, error)
	access   *smart.Access
	keys     []string // the index keys it is filed under; none: the fallback list
}

// registry files deliverable subscriptions by resource type and, where the
// criteria has an equality token or reference condition, by its values, so
// a change meets only the subscriptions that could match it.
type registry struct {
	mu     sync.RWMutex
	subs   map[string]*sub // by subscription id
	byType map[string]*typeIndex
	// applied is the FHIR_CHANGES stream sequence up to which Subscription
	// changes have been applied; waiters learn of progress through moved.
	applied uint64
	moved   chan struct{}
	// known is the newest version of each Subscription considered
	// (deliverable or not); gone the deleted ones. Delivery lanes wait on
	// them for the version a job was matched with.
	known map[string]int64
	gone  map[string]bool
}

type typeIndex struct {
	byKey map[string]map[string]*sub
	rest  map[string]*sub // subscriptions without an indexable condition
}

func newRegistry() *registry {
	return &registry{subs: map[string]*sub{}, byType: map[string]*typeIndex{}, moved: make(chan struct{}),
		known: map[string]int64{}, gone: map[string]bool{}}
}

func (g *registry) get(id string) *sub {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.subs[id]
}

// all lists the deliverable subscriptions.
func (g *registry) all() []*sub {
	g.mu.RLock()
	defer g.mu.RUnlock()
	out := make([]*sub, 0, len(g.subs))
	for _, s := range g.subs {
		out = append(out, s)
	}
	return out
}

func (g *registry) len() int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return len(g.subs)
}

// put files s, replacing the subscription of the same id.
func (g *registry) put(s *sub) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.removeLocked(s.ID)
	s.keys = indexKeys(s.Clauses)
	g.subs[s.ID] = s
	ti := g.byType[s.Type]
	if ti == nil {
		ti = &typeIndex{byKey: map[string]map[string]*sub{}, rest: map[string]*sub{}}
		g.byType[s.Type] = ti
	}
	if len(s.keys) == 0 {
		ti.rest[s.ID] = s
		return
	}
	for _, k := range s.keys {
		m := ti.byKey[k]
		if m == nil {
			m = map[string]*sub{}
			ti.byKey[k] = m
		}
		m[s.ID] = s
	}
}

func (g *registry) remove(id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.removeLocked(id)
}

func (g *registry) removeLocked(id string) {
	old := g.subs[id]
	if old == nil {
		return
	}
	delete(g.subs, id)
	ti := g.byType[old.Type]
	if ti == nil {
		return
	}
	delete(ti.rest, id)
	for _, k := range old.keys {
		if m := ti.byKey[k]; m != nil {
			delete(m, id)
			if len(m) == 0 {
				delete(ti.byKey, k)
			}
		}
	}
	if len(ti.rest) == 0 && len(ti.byKey) == 0 {
		delete(g.byType, old.Type)
	}
}

// candidates lists the subscriptions on typ that a resource with entries
// could match: those filed under a key the entries produce, and the
// fallback list.
// watches reports whether any subscription is on resources of type typ,
// so the matcher can skip indexing the others' changes.
func (g *registry) watches(typ string) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.byType[typ] != nil
}

func (g *registry) candidates(typ string, entries []fhir.IndexEntry) []*sub {
	g.mu.RLock()
	defer g.mu.RUnlock()
	ti := g.byType[typ]
	if ti == nil {
		return nil
	}
	out := make([]*sub, 0, len(ti.rest))
	for _, s := range ti.rest {
		out = append(out, s)
	}
	if len(ti.byKey) == 0 {
		return out
	}
	var seen map[string]bool
	for _, e := range entries {
		for _, k := range entryKeys(e) {
			for id, s := range ti.byKey[k] {
				if seen == nil {
					seen = map[string]bool{}
				}
				if !seen[id] {
					seen[id] = true
					out = append(out, s)
				}
			}
		}
	}
	return out
}

// setApplied records that Subscription changes up to stream sequence seq
// are applied.
func (g *registry) setApplied(seq uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if seq > g.applied {
		g.applied = seq
		g.bumpLocked()
	}
}

// bumpLocked wakes the waiters.
func (g *registry) bumpLocked() {
	close(g.moved)
	g.moved = make(chan struct{})
}

// noteVersion records that version of Subscription id was considered.
func (g *registry) noteVersion(id string, version int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if version > g.known[id] {
		g.known[id] = version
	}
	delete(g.gone, id)
	g.bumpLocked()
}

// markGone records the deletion of Subscription id.
func (g *registry) markGone(id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.removeLocked(id)
	g.gone[id] = true
	g.bumpLocked()
}

// awaitVersion waits until the registry has considered version of
// Subscription id, or its deletion, and returns what it holds then: the
// deliverable subscription (nil when it is not), and whether it is gone.
// When ctx ends first it returns what it holds at that moment.
func (g *registry) awaitVersion(ctx context.Context, id string, version int64) (*sub, bool) {
	for {
		g.mu.RLock()
		s, gone, known, moved := g.subs[id], g.gone[id], g.known[id], g.moved
		g.mu.RUnlock()
		if gone || known >= version {
			return s, gone
		}
		select {
		case <-moved:
		case <-ctx.Done():
			return s, gone
		}
	}
}

// waitApplied waits until Subscription changes up to seq are applied.
func (g *registry) waitApplied(ctx context.Context, seq uint64) error {
	for {
		g.mu.RLock()
		done, moved := g.applied >= seq, g.moved
		g.mu.RUnlock()
		if done {
			return nil
		}
		select {
		case <-moved:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Index keys. A token condition system|code is filed under
// "param\x00s\x00system\x00code", a code without system under
// "param\x00c\x00code"; a reference Type/id under "param\x00r\x00Type/id",
// an id without type under "param\x00r\x00/id". A resource's entries
// produce every key that a condition matching them could have.

func tokenKey(param, system string, hasSystem bool, code string) string {
	if hasSystem {
		return param + "\x00s\x00" + system + "\x00" + code
	}
	return param + "\x00c\x00" + code
}

func refKey(param, typ, id string) string { return param + "\x00r\x00" + typ + "/" + id }

// indexKeys picks one top-level condition of the criteria (they are AND-ed,
// so each is necessary) that is an equality on token codes or on local
// references, and returns the keys of its values; none when there is no
// such condition.
func indexKeys(clauses []search.Clause) []string {
	for i := range clauses {
		c := &clauses[i]
		if c.Param == nil || c.Modifier != "" || len(c.Chain) > 0 || c.Has != nil || len(c.Or) > 0 || c.IsGroup() || len(c.Values) == 0 {
			continue
		}
		var keys []string
		ok := true
		for _, v := range c.Values {
			switch c.Param.Type {
			case fhir.TypeToken:
				if v.Code == "" {
					ok = false
				} else {
					keys = append(keys, tokenKey(c.Param.Code, v.System, v.HasSystem, v.Code))
				}
			case fhir.TypeReference:
				if v.RefID == "" || v.RefURL != "" {
					ok = false
				} else {
					keys = append(keys, refKey(c.Param.Code, v.RefType, v.RefID))
				}
			default:
				ok = false
			}
			if !ok {
				break
			}
		}
		if ok {
			return keys
		}
	}
	return nil
}

// entryKeys are the keys an index entry produces.
func entryKeys(e fhir.IndexEntry) []string {
	if e.Comp != 0 {
		return nil
	}
	switch {
	case e.RefID != "":
		if e.RefType == "" {
			return []string{refKey(e.Param, "", e.RefID)}
		}
		return []string{refKey(e.Param, e.RefType, e.RefID), refKey(e.Param, "", e.RefID)}
	case e.Code != "" && e.RefURL == "":
		return []string{tokenKey(e.Param, e.System, true, e.Code), tokenKey(e.Param, "", false, e.Code)}
	}
	return nil
}
