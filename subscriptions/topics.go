package subscriptions

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/fhirhub/fhirhub/fhir"
	"github.com/fhirhub/fhirhub/fhir/search"
)

// Topic is a server-defined subscription topic (Subscriptions Backport IG,
// STU 1.1): a Subscription whose criteria is the topic's canonical URL is
// notified of the topic's events, narrowed by its filter criteria.
type Topic struct {
	URL         string
	Title       string
	Description string
	// Resource is the type the topic's events are about.
	Resource string
	// Interactions are the operations that raise an event.
	Interactions []fhir.Op
	// Where, when set, is a search query the version must match
	// (status=final&category=…).
	Where string
	// StatusChange raises an event only when the status element differs
	// from the previous version's (a creation always counts).
	StatusChange bool
	// FilterParameters are the search parameters a subscriber may filter
	// on (backport-filter-criteria); any of the type's when empty.
	FilterParameters []string
}

// TopicBase starts the canonical URLs of the server's topics.
const TopicBase = "https://fhirhub.dev/fhir/SubscriptionTopic/"

// Topics are the server's subscription topics.
var Topics = func() []*Topic {
	all := []fhir.Op{fhir.OpCreate, fhir.OpUpdate, fhir.OpDelete}
	var ts []*Topic
	for _, typ := range []string{"Patient", "Encounter", "MedicationRequest", "Observation", "Consent"} {
		ts = append(ts, &Topic{
			URL:          TopicBase + strings.ToLower(typ) + "-change",
			Title:        typ + " created, updated or deleted",
			Description:  "Any create, update or delete of a " + typ + "; filter with the " + typ + " search parameters (e.g. " + typ + "?_id=… or a patient reference).",
			Resource:     typ,
			Interactions: all,
		})
	}
	ts = append(ts,
		&Topic{
			URL:          TopicBase + "encounter-start-end",
			Title:        "Encounter started or ended",
			Description:  "An Encounter's status becomes in-progress (start) or finished (end), by a create or an update; filter with the Encounter search parameters (Encounter?patient=Patient/…).",
			Resource:     "Encounter",
			Interactions: []fhir.Op{fhir.OpCreate, fhir.OpUpdate},
			Where:        "status=in-progress,finished",
			StatusChange: true,
		},
		&Topic{
			URL:          TopicBase + "lab-result",
			Title:        "Laboratory result",
			Description:  "An Observation of category laboratory is created or updated with status final, amended or corrected; filter with the Observation search parameters, typically Observation?code=http://loinc.org|<code> or a patient.",
			Resource:     "Observation",
			Interactions: []fhir.Op{fhir.OpCreate, fhir.OpUpdate},
			Where:        "category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory&status=final,amended,corrected",
		},
	)
	return ts
}()

// TopicURLs lists the canonical URLs of Topics (for the CapabilityStatement).
func TopicURLs() []string {
	out := make([]string, len(Topics))
	for i, t := range Topics {
		out[i] = t.URL
	}
	return out
}

func topicByURL(u string) *Topic {
	u, _, _ = strings.Cut(u, "|") // a canonical may carry a version
	for _, t := range Topics {
		if t.URL == u {
			return t
		}
	}
	return nil
}

// parseTopics parses the topics' Where queries with the server's search
// parameters.
func (h *Hub) parseTopics(ctx context.Context) error {
	where := map[string][]search.Clause{}
	for _, t := range Topics {
		if t.Where == "" {
			continue
		}
		params, err := url.ParseQuery(t.Where)
		if err != nil {
			return fmt.Errorf("subscriptions: topic %s: %w", t.URL, err)
		}
		cl, err := h.Search.FilterClauses(ctx, t.Resource, params)
		if err != nil {
			return fmt.Errorf("subscriptions: topic %s: %w", t.URL, err)
		}
		where[t.URL] = cl
	}
	h.topicWhere = where
	return nil
}

// has reports whether op raises the topic's events.
func (t *Topic) has(op fhir.Op) bool {
	for _, o := range t.Interactions {
		if o == op {
			return true
		}
	}
	return false
}

// topicClauses validates a topic-based subscription's filter criteria
// and returns the clauses a change must match: the topic's own and the
// filters'.
func (h *Hub) topicClauses(ctx context.Context, s *spec) ([]search.Clause, error) {
	t := s.Topic
	clauses := append([]search.Clause(nil), h.topicWhere[t.URL]...)
	for _, f := range s.Filters {
		typ, query, ok := strings.Cut(f, "?")
		if !ok {
			typ, query = t.Resource, f // "code=…" alone
		}
		if typ != t.Resource {
			return nil, fmt.Errorf("filter criteria %q: the topic %s is about %s", f, t.URL, t.Resource)
		}
		params, err := url.ParseQuery(query)
		if err != nil {
			return nil, fmt.Errorf("filter criteria %q is not a valid query string: %v", f, err)
		}
		if len(t.FilterParameters) > 0 {
			for name := range params {
				base, _, _ := strings.Cut(name, ":")
				if !contains(t.FilterParameters, base) {
					return nil, fmt.Errorf("filter criteria %q: the topic %s filters on %s only", f, t.URL, strings.Join(t.FilterParameters, ", "))
				}
			}
		}
		cl, err := h.Search.FilterClauses(ctx, t.Resource, params)
		if err != nil {
			return nil, fmt.Errorf("filter criteria %q: %s", f, diagnostics(err))
		}
		clauses = append(clauses, cl...)
	}
	return clauses, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
