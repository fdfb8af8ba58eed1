package rest

import (
	"strconv"
	"strings"

	"github.com/fhirhub/fhirhub/conformance"
	"github.com/fhirhub/fhirhub/fhir"
	"github.com/fhirhub/fhirhub/fhir/search"
)

// The interactions this package serves; the CapabilityStatement is built from
// these lists, which the route table in Handler mirrors.
var (
	typeInteractions   = []string{"read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create"}
	systemInteractions = []string{"transaction", "batch", "history-system"}
)

// The operations the route table serves. The meta operations apply to every
// type, so they are listed once at rest.operation rather than on each type.
var (
	metaOperations = []conformance.OperationCapability{
		{Name: "meta", Definition: "http://hl7.org/fhir/OperationDefinition/Resource-meta",
			Documentation: "Instance level only: [type]/[id]/$meta (GET or POST) returns the current meta."},
		{Name: "meta-add", Definition: "http://hl7.org/fhir/OperationDefinition/Resource-meta-add",
			Documentation: "Instance level. A change is stored as a new version (so history and subscriptions see it); adding what is already there stores nothing."},
		{Name: "meta-delete", Definition: "http://hl7.org/fhir/OperationDefinition/Resource-meta-delete",
			Documentation: "Instance level. A change is stored as a new version; removing what is not there stores nothing."},
	}
	everythingOperation = conformance.OperationCapability{Name: "everything", Definition: "http://hl7.org/fhir/OperationDefinition/Patient-everything",
		Documentation: "Patient/[id]/$everything and Patient/$everything (GET, or POST with Parameters or a form): the Patient compartment (official CompartmentDefinition), " +
			"plus the Practitioner, PractitionerRole, Organization, Location, Medication and Device resources it refers to (search.mode include). " +
			"start/end filter each type on its \"date\" search parameter (types without one, and resources without a date, are kept); " +
			"_since filters on meta.lastUpdated; _type limits the types returned; _count sets the page size; paging by cursor."}
)

// capabilityStatement renders the CapabilityStatement for a base URL from what
// is registered: the resource types the validator accepts and the
// interactions above.
func (s *Server) capabilityStatement(base string) ([]byte, error) {
	s.capMu.Lock()
	defer s.capMu.Unlock()
	key := base
	if s.Search != nil {
		key += "#" + strconv.FormatInt(s.Search.Registry.Generation(), 10)
	}
	if b, ok := s.capCache[key]; ok {
		return b, nil
	}
	interactions := typeInteractions
	sysInteractions := systemInteractions
	note := "Conditional create, update and delete accept the criteria " +
		strings.Join(fhir.ConditionalParams, ", ") + " only; other parameters are refused with 400."
	if s.Search != nil {
		interactions = append(append([]string{}, typeInteractions...), "search-type")
		sysInteractions = append(append([]string{}, systemInteractions...), "search-system")
		note = "Conditional create, update and delete resolve their criteria with the full search; unknown parameters are refused with 400, never ignored."
	}
	caps := conformance.Capabilities{
		BaseURL:            base,
		SoftwareName:       "fhirhub",
		SoftwareVersion:    s.SoftwareVersion,
		SystemInteractions: sysInteractions,
		Formats:            []string{"application/fhir+json", "json"},
		ConditionalNote:    note,
		Operations:         metaOperations,
	}
	if s.WebSocket != nil {
		caps.WebSocketURL = websocketURL(base)
	}
	if s.Verifier != nil {
		ep := s.AuthEndpoints
		caps.Security = &conformance.SecurityCapability{
			CORS:     true,
			Services: []string{"SMART-on-FHIR"},
			Description: "SMART App Launch 2 (scopes v1 and v2, granular scopes). Every request but GET [base]/metadata needs a bearer token. " +
				"A token's scopes limit each interaction: a type it grants nothing on answers 403; a resource outside its rules (patient compartment, granular filter) reads as 404 and is never returned by a search, include or count.",
			AuthorizeURL: ep["authorize"], TokenURL: ep["token"], RegisterURL: ep["register"], ManageURL: ep["manage"],
			IntrospectURL: ep["introspect"], RevokeURL: ep["revoke"],
		}
	}
	if caps.Security == nil {
		caps.Security = &conformance.SecurityCapability{CORS: true,
			Description: "No authorization: every client can read and write every record (local development only)."}
	}
	if s.Search != nil {
		caps.Documentation = "Search: every R4 SearchParameter of every type, chaining at any depth and _has (reverse chaining); prefixes eq ne gt lt ge le sa eb ap; " +
			"_sort on several keys, _count, _total, _summary, _elements, _include and _revinclude (with :iterate and *); paging by cursor. " +
			"Unknown parameters are ignored and reported in an OperationOutcome entry, or refused with Prefer: handling=strict. " +
			"Compartment search (GET /Patient/123/Observation) uses the official CompartmentDefinitions. :in and :not-in use ValueSets stored in this server (explicit concepts or a stored expansion). SearchParameter resources created through the API are searchable at once for new writes; POST [base]/$reindex or [base]/[type]/$reindex indexes existing data in the background. Not yet: :above/:below on tokens (terminology)."
		for _, p := range []string{"_id", "_lastUpdated", "_tag", "_profile", "_security", "_source"} {
			if sp, ok := s.Search.Registry.Lookup("Patient", p); ok {
				caps.SystemSearchParams = append(caps.SystemSearchParams, conformance.SearchParamCapability{Name: p, Definition: sp.URL, Type: string(sp.Type)})
			}
		}
	}
	for _, typ := range conformance.ResourceTypes() {
		if s.Service.Validator != nil && !s.Service.Validator.KnownType(typ) {
			continue
		}
		rc := conformance.ResourceCapability{
			Type:              typ,
			Interactions:      interactions,
			Versioning:        "versioned-update",
			ReadHistory:       true,
			UpdateCreate:      true,
			ConditionalCreate: true,
			ConditionalUpdate: true,
			ConditionalDelete: "single",
			ConditionalRead:   "full-support",
		}
		if s.Search != nil && typ == "Patient" {
			rc.Operations = []conformance.OperationCapability{everythingOperation}
		}
		if typ == "Subscription" && s.SubscriptionStatus != nil {
			rc.SubscriptionTopics = s.SubscriptionTopics
			rc.Operations = append(rc.Operations, conformance.OperationCapability{Name: "status",
				Definition: "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-status"})
			if s.SubscriptionEvents != nil {
				rc.Operations = append(rc.Operations, conformance.OperationCapability{Name: "events",
					Definition: "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-events"})
			}
		}
		if s.Search != nil {
			rc.SearchInclude, rc.SearchRevInclude = []string{"*"}, []string{"*"}
			for _, p := range s.Search.Registry.Params(typ) {
				doc := "modifiers: " + strings.Join(search.Modifiers(p.Type), ", ")
				if p.Type == fhir.TypeReference {
					rc.SearchInclude = append(rc.SearchInclude, typ+":"+p.Code)
					doc += ", [type]; chainable"
				}
				rc.SearchParams = append(rc.SearchParams, conformance.SearchParamCapability{Name: p.Code, Definition: p.URL, Type: string(p.Type), Documentation: doc})
			}
		}
		caps.Resources = append(caps.Resources, rc)
	}
	b, err := caps.JSON()
	if err != nil {
		return nil, err
	}
	if s.capCache == nil {
		s.capCache = map[string][]byte{}
	}
	if len(s.capCache) > 16 {
		clear(s.capCache)
	}
	s.capCache[key] = b
	return b, nil
}

// websocketURL is the ws(s) URL of the websocket endpoint under base.
func websocketURL(base string) string {
	if rest, ok := strings.CutPrefix(base, "https://"); ok {
		return "wss://" + rest + "/websocket"
	}
	return "ws://" + strings.TrimPrefix(base, "http://") + "/websocket"
}
