package conformance

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Capabilities is what the server can do, filled in by the REST layer from
// what is really registered; JSON renders it as the CapabilityStatement of
// GET /metadata. Empty fields are left out of the statement.
type Capabilities struct {
	// BaseURL is the server's base (implementation.url).
	BaseURL string
	// Name, Title, Publisher and Description describe the statement itself.
	Name, Title, Publisher, Description string
	// ImplementationDescription describes this installation
	// (implementation.description, required; default "<SoftwareName> FHIR
	// server").
	ImplementationDescription string
	SoftwareName              string
	SoftwareVersion           string
	SoftwareReleaseDate       time.Time
	// Date is when the statement was published (the start of the server,
	// say); zero means now.
	Date time.Time
	// Formats are the content types served (default application/fhir+json
	// and json); PatchFormats those PATCH accepts
	// (application/json-patch+json, application/fhir+json).
	Formats      []string
	PatchFormats []string
	// Documentation is rest.documentation; ConditionalNote, when set, is
	// added to it (how conditional references and requests are resolved).
	Documentation   string
	ConditionalNote string
	Security        *SecurityCapability
	// Resources are the resource types served, rendered sorted by type.
	Resources []ResourceCapability
	// SystemInteractions are among transaction, batch, search-system and
	// history-system.
	SystemInteractions []string
	// SystemSearchParams are the parameters of a search across all types.
	SystemSearchParams []SearchParamCapability
	// Operations are the system-level operations ($export, say).
	Operations []OperationCapability
	// WebSocketURL, when set, is where clients bind R4 websocket
	// Subscriptions (the capabilitystatement-websocket extension on rest).
	WebSocketURL string
}

// ResourceCapability is what the server does with one resource type.
type ResourceCapability struct {
	Type string
	// SubscriptionTopics are the canonical URLs of the subscription topics
	// offered (on Subscription only).
	SubscriptionTopics []string
	// Profile defaults to the base definition,
	// http://hl7.org/fhir/StructureDefinition/<Type>.
	Profile           string
	SupportedProfiles []string
	Documentation     string
	// Interactions are among read, vread, update, patch, delete,
	// history-instance, history-type, create and search-type.
	Interactions []string
	// Versioning is no-version, versioned or versioned-update.
	Versioning        string
	ReadHistory       bool
	UpdateCreate      bool
	ConditionalCreate bool
	ConditionalUpdate bool
	// ConditionalRead is not-supported, modified-since, not-match or
	// full-support; ConditionalDelete not-supported, single or multiple.
	ConditionalRead   string
	ConditionalDelete string
	// ReferencePolicy holds literal, logical, resolves, enforced or local.
	ReferencePolicy  []string
	SearchInclude    []string
	SearchRevInclude []string
	SearchParams     []SearchParamCapability
	Operations       []OperationCapability
}

// SearchParamCapability is one supported search parameter.
type SearchParamCapability struct {
	Name string
	// Definition is the canonical URL of the SearchParameter.
	Definition string
	// Type is number, date, string, token, reference, composite, quantity,
	// uri or special.
	Type          string
	Documentation string
}

// OperationCapability is one supported operation.
type OperationCapability struct {
	// Name is the operation's name without the $ ("export").
	Name string
	// Definition is the canonical URL of the OperationDefinition (required).
	Definition    string
	Documentation string
}

// SecurityCapability describes how clients authenticate, with the SMART on
// FHIR OAuth endpoints (the oauth-uris extension SMART clients read).
type SecurityCapability struct {
	CORS bool
	// Services are codes of
	// http://terminology.hl7.org/CodeSystem/restful-security-service
	// (SMART-on-FHIR, OAuth...).
	Services    []string
	Description string
	// The OAuth endpoints; empty ones are left out.
	AuthorizeURL, TokenURL, RegisterURL, ManageURL, IntrospectURL, RevokeURL string
}

// The allowed codes of the statement's coded elements.
var (
	resourceInteractions = []string{"read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create", "search-type"}
	systemInteractions   = []string{"transaction", "batch", "search-system", "history-system"}
	searchParamTypes     = []string{"number", "date", "string", "token", "reference", "composite", "quantity", "uri", "special"}
	versionings          = []string{"no-version", "versioned", "versioned-update"}
	conditionalReads     = []string{"not-supported", "modified-since", "not-match", "full-support"}
	conditionalDeletes   = []string{"not-supported", "single", "multiple"}
	referencePolicies    = []string{"literal", "logical", "resolves", "enforced", "local"}
)

// JSON renders the CapabilityStatement (FHIR R4, kind instance, status
// active). It fails when a field holds a code R4 does not define.
func (c Capabilities) JSON() ([]byte, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	date := c.Date
	if date.IsZero() {
		date = time.Now()
	}
	st := capabilityStatement{
		ResourceType: "CapabilityStatement",
		Name:         c.Name,
		Title:        c.Title,
		Status:       "active",
		Date:         formatDateTime(date),
		Publisher:    c.Publisher,
		Description:  c.Description,
		Kind:         "instance",
		FHIRVersion:  "4.0.1",
		Format:       c.Formats,
		PatchFormat:  c.PatchFormats,
	}
	if len(st.Format) == 0 {
		st.Format = []string{"application/fhir+json", "json"}
	}
	if c.SoftwareName != "" {
		st.Software = &software{Name: c.SoftwareName, Version: c.SoftwareVersion}
		if !c.SoftwareReleaseDate.IsZero() {
			st.Software.ReleaseDate = formatDateTime(c.SoftwareReleaseDate)
		}
	}
	st.Implementation = &implementation{Description: c.ImplementationDescription, URL: c.BaseURL}
	if st.Implementation.Description == "" {
		st.Implementation.Description = strings.TrimSpace(c.SoftwareName + " FHIR server")
	}
	r := rest{Mode: "server", Documentation: c.Documentation}
	if c.WebSocketURL != "" {
		r.Extension = []extension{{URL: websocketExtension, ValueURI: c.WebSocketURL}}
	}
	if c.ConditionalNote != "" {
		r.Documentation = strings.TrimSpace(r.Documentation + "\n\n" + c.ConditionalNote)
	}
	if c.Security != nil {
		r.Security = renderSecurity(c.Security)
	}
	resources := slices.Clone(c.Resources)
	slices.SortStableFunc(resources, func(a, b ResourceCapability) int { return strings.Compare(a.Type, b.Type) })
	for _, rc := range resources {
		r.Resource = append(r.Resource, renderResource(rc))
	}
	for _, code := range c.SystemInteractions {
		r.Interaction = append(r.Interaction, interaction{Code: code})
	}
	r.SearchParam = renderSearchParams(c.SystemSearchParams)
	r.Operation = renderOperations(c.Operations)
	st.Rest = []rest{r}
	return json.Marshal(st)
}

// check refuses codes R4 does not define.
func (c Capabilities) check() error {
	bad := func(what, code string, allowed []string) error {
		if slices.Contains(allowed, code) {
			return nil
		}
		return fmt.Errorf("conformance: %s %q is not one of %s", what, code, strings.Join(allowed, ", "))
	}
	var errs []error
	for _, code := range c.SystemInteractions {
		errs = append(errs, bad("system interaction", code, systemInteractions))
	}
	for _, sp := range c.SystemSearchParams {
		errs = append(errs, bad("search parameter type", sp.Type, searchParamTypes))
	}
	for _, op := range c.Operations {
		if op.Name == "" || op.Definition == "" {
			errs = append(errs, fmt.Errorf("conformance: operation %q needs a name and a definition", op.Name))
		}
	}
	for _, rc := range c.Resources {
		if !isType(rc.Type) {
			errs = append(errs, fmt.Errorf("conformance: %q is not a resource type", rc.Type))
		}
		for _, code := range rc.Interactions {
			errs = append(errs, bad(rc.Type+" interaction", code, resourceInteractions))
		}
		for _, sp := range rc.SearchParams {
			errs = append(errs, bad(rc.Type+" search parameter type", sp.Type, searchParamTypes))
		}
		for _, p := range rc.ReferencePolicy {
			errs = append(errs, bad(rc.Type+" reference policy", p, referencePolicies))
		}
		for _, op := range rc.Operations {
			if op.Name == "" || op.Definition == "" {
				errs = append(errs, fmt.Errorf("conformance: %s operation %q needs a name and a definition", rc.Type, op.Name))
			}
		}
		if rc.Versioning != "" {
			errs = append(errs, bad(rc.Type+" versioning", rc.Versioning, versionings))
		}
		if rc.ConditionalRead != "" {
			errs = append(errs, bad(rc.Type+" conditional read", rc.ConditionalRead, conditionalReads))
		}
		if rc.ConditionalDelete != "" {
			errs = append(errs, bad(rc.Type+" conditional delete", rc.ConditionalDelete, conditionalDeletes))
		}
	}
	return errors.Join(errs...)
}

func renderResource(rc ResourceCapability) resource {
	var exts []extension
	for _, t := range rc.SubscriptionTopics {
		exts = append(exts, extension{URL: topicCanonicalExtension, ValueCanonical: t})
	}
	out := resource{
		Extension:         exts,
		Type:              rc.Type,
		Profile:           rc.Profile,
		SupportedProfile:  rc.SupportedProfiles,
		Documentation:     rc.Documentation,
		Versioning:        rc.Versioning,
		ReadHistory:       rc.ReadHistory,
		UpdateCreate:      rc.UpdateCreate,
		ConditionalCreate: rc.ConditionalCreate,
		ConditionalRead:   rc.ConditionalRead,
		ConditionalUpdate: rc.ConditionalUpdate,
		ConditionalDelete: rc.ConditionalDelete,
		ReferencePolicy:   rc.ReferencePolicy,
		SearchInclude:     rc.SearchInclude,
		SearchRevInclude:  rc.SearchRevInclude,
		SearchParam:       renderSearchParams(rc.SearchParams),
		Operation:         renderOperations(rc.Operations),
	}
	if out.Profile == "" {
		out.Profile = "http://hl7.org/fhir/StructureDefinition/" + rc.Type
	}
	for _, code := range rc.Interactions {
		out.Interaction = append(out.Interaction, interaction{Code: code})
	}
	return out
}

func renderSearchParams(sps []SearchParamCapability) []searchParam {
	var out []searchParam
	for _, sp := range sps {
		out = append(out, searchParam(sp))
	}
	return out
}

func renderOperations(ops []OperationCapability) []operation {
	var out []operation
	for _, op := range ops {
		out = append(out, operation(op))
	}
	return out
}

// oauthURIs is the SMART extension carrying the OAuth endpoints.
// topicCanonicalExtension lists a subscription topic the server offers, on
// the Subscription resource (Subscriptions Backport IG).
const topicCanonicalExtension = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/capabilitystatement-subscriptiontopic-canonical"

const websocketExtension = "http://hl7.org/fhir/StructureDefinition/capabilitystatement-websocket"

const oauthURIs = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"

func renderSecurity(s *SecurityCapability) *security {
	out := &security{CORS: s.CORS, Description: s.Description}
	for _, code := range s.Services {
		cc := codeableConcept{Coding: []coding{{
			System: "http://terminology.hl7.org/CodeSystem/restful-security-service",
			Code:   code,
		}}}
		if code == "SMART-on-FHIR" {
			cc.Text = "OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)"
		}
		out.Service = append(out.Service, cc)
	}
	var uris []extension
	for _, u := range []struct{ name, url string }{
		{"authorize", s.AuthorizeURL}, {"token", s.TokenURL}, {"register", s.RegisterURL},
		{"manage", s.ManageURL}, {"introspect", s.IntrospectURL}, {"revoke", s.RevokeURL},
	} {
		if u.url != "" {
			uris = append(uris, extension{URL: u.name, ValueURI: u.url})
		}
	}
	if len(uris) > 0 {
		out.Extension = []extension{{URL: oauthURIs, Extension: uris}}
	}
	return out
}

// formatDateTime renders a FHIR dateTime in UTC to the second.
func formatDateTime(t time.Time) string {
	return t.UTC().Truncate(time.Second).Format(time.RFC3339)
}

// The CapabilityStatement as JSON, fields in the order of the specification.
type (
	capabilityStatement struct {
		ResourceType   string          `json:"resourceType"`
		Name           string          `json:"name,omitempty"`
		Title          string          `json:"title,omitempty"`
		Status         string          `json:"status"`
		Date           string          `json:"date"`
		Publisher      string          `json:"publisher,omitempty"`
		Description    string          `json:"description,omitempty"`
		Kind           string          `json:"kind"`
		Software       *software       `json:"software,omitempty"`
		Implementation *implementation `json:"implementation,omitempty"`
		FHIRVersion    string          `json:"fhirVersion"`
		Format         []string        `json:"format"`
		PatchFormat    []string        `json:"patchFormat,omitempty"`
		Rest           []rest          `json:"rest"`
	}
	software struct {
		Name        string `json:"name"`
		Version     string `json:"version,omitempty"`
		ReleaseDate string `json:"releaseDate,omitempty"`
	}
	implementation struct {
		Description string `json:"description"`
		URL         string `json:"url,omitempty"`
	}
	rest struct {
		Extension     []extension   `json:"extension,omitempty"`
		Mode          string        `json:"mode"`
		Documentation string        `json:"documentation,omitempty"`
		Security      *security     `json:"security,omitempty"`
		Resource      []resource    `json:"resource,omitempty"`
		Interaction   []interaction `json:"interaction,omitempty"`
		SearchParam   []searchParam `json:"searchParam,omitempty"`
		Operation     []operation   `json:"operation,omitempty"`
	}
	security struct {
		Extension   []extension       `json:"extension,omitempty"`
		CORS        bool              `json:"cors"`
		Service     []codeableConcept `json:"service,omitempty"`
		Description string            `json:"description,omitempty"`
	}
	extension struct {
		URL            string      `json:"url"`
		Extension      []extension `json:"extension,omitempty"`
		ValueURI       string      `json:"valueUri,omitempty"`
		ValueCanonical string      `json:"valueCanonical,omitempty"`
	}
	codeableConcept struct {
		Coding []coding `json:"coding"`
		Text   string   `json:"text,omitempty"`
	}
	coding struct {
		System string `json:"system"`
		Code   string `json:"code"`
	}
	resource struct {
		Extension         []extension   `json:"extension,omitempty"`
		Type              string        `json:"type"`
		Profile           string        `json:"profile,omitempty"`
		SupportedProfile  []string      `json:"supportedProfile,omitempty"`
		Documentation     string        `json:"documentation,omitempty"`
		Interaction       []interaction `json:"interaction,omitempty"`
		Versioning        string        `json:"versioning,omitempty"`
		ReadHistory       bool          `json:"readHistory"`
		UpdateCreate      bool          `json:"updateCreate"`
		ConditionalCreate bool          `json:"conditionalCreate"`
		ConditionalRead   string        `json:"conditionalRead,omitempty"`
		ConditionalUpdate bool          `json:"conditionalUpdate"`
		ConditionalDelete string        `json:"conditionalDelete,omitempty"`
		ReferencePolicy   []string      `json:"referencePolicy,omitempty"`
		SearchInclude     []string      `json:"searchInclude,omitempty"`
		SearchRevInclude  []string      `json:"searchRevInclude,omitempty"`
		SearchParam       []searchParam `json:"searchParam,omitempty"`
		Operation         []operation   `json:"operation,omitempty"`
	}
	interaction struct {
		Code string `json:"code"`
	}
	searchParam struct {
		Name          string `json:"name"`
		Definition    string `json:"definition,omitempty"`
		Type          string `json:"type"`
		Documentation string `json:"documentation,omitempty"`
	}
	operation struct {
		Name          string `json:"name"`
		Definition    string `json:"definition"`
		Documentation string `json:"documentation,omitempty"`
	}
)
