package subscriptions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/fhirhub/fhirhub/fhir"
	"github.com/fhirhub/fhirhub/fhir/search"
)

// The statuses of an R4 Subscription.
const (
	StatusRequested = "requested"
	StatusActive    = "active"
	StatusError     = "error"
	StatusOff       = "off"
)

// SecretExtension is the URL of the extension, on Subscription.channel, whose
// valueString is the shared secret the hub signs rest-hook notifications
// with (HMAC-SHA256, see the package documentation). At least 16 characters.
const SecretExtension = "https://fhirhub.dev/fhir/StructureDefinition/subscription-hmac-secret"

// Channels beyond R4's rest-hook and websocket are named, as the
// Subscriptions Backport IG has it, by a Coding in the extension
// ChannelTypeExtension on channel.type (in JSON, channel._type).
const (
	ChannelTypeExtension = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-channel-type"
	// ChannelTypeSystem is the code system of this server's channel types.
	ChannelTypeSystem = "https://fhirhub.dev/fhir/CodeSystem/channel-type"
	// ChannelNATS publishes notifications to the stream FHIR_OUT on the
	// subject channel.endpoint names (nats:fhir.out.<…>).
	ChannelNATS     = "nats"
	ChannelRestHook = "rest-hook"
)

// The nats channel's stream and subjects.
const (
	OutStream        = "FHIR_OUT"
	OutSubjectPrefix = "fhir.out."
	natsScheme       = "nats:"
)

// outSubject is the subject of a nats channel endpoint.
func outSubject(endpoint string) string { return strings.TrimPrefix(endpoint, natsScheme) }

// minSecretLen is the shortest signing secret accepted.
const minSecretLen = 16

// spec is what the hub reads of one version of a Subscription.
type spec struct {
	ID       string
	Version  int64
	Status   string
	Error    string
	Criteria string

	Type    string          // the resource type of the criteria
	Clauses []search.Clause // the criteria's conditions, :in expanded

	Channel  string // channel.type
	Endpoint string
	Payload  string   // channel.payload: "" or a JSON media type
	Headers  []string // channel.header, "Name: value"
	Secret   []byte   // from SecretExtension; nil when not signed

	// Topic-based (Backport IG): Topic is the topic the criteria names;
	// nil for an R4 criteria subscription.
	Topic     *Topic
	Filters   []string // backport-filter-criteria
	Content   string   // backport-payload-content: empty, id-only, full-resource
	Heartbeat int64    // backport-heartbeat-period, seconds (0: none)
	Timeout   int64    // backport-timeout, seconds (0: the hub's)
	MaxCount  int64    // backport-max-count
}

// The Subscriptions Backport IG's extensions.
const (
	backportBase         = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
	extFilterCriteria    = backportBase + "backport-filter-criteria"
	extPayloadContent    = backportBase + "backport-payload-content"
	extHeartbeatPeriod   = backportBase + "backport-heartbeat-period"
	extTimeout           = backportBase + "backport-timeout"
	extMaxCount          = backportBase + "backport-max-count"
	subscriptionStatusR4 = backportBase + "backport-subscription-status-r4"
	contentEmpty         = "empty"
	contentIDOnly        = "id-only"
	contentFullResource  = "full-resource"
)

// backportExtension is an extension of the Backport IG's shapes.
type backportExtension struct {
	URL              string `json:"url"`
	ValueString      string `json:"valueString"`
	ValueCode        string `json:"valueCode"`
	ValueUnsignedInt *int64 `json:"valueUnsignedInt"`
	ValuePositiveInt *int64 `json:"valuePositiveInt"`
}

// subscriptionJSON is the part of a Subscription resource the hub uses.
type subscriptionJSON struct {
	Status          string `json:"status"`
	Error           string `json:"error"`
	Criteria        string `json:"criteria"`
	CriteriaElement struct {
		Extension []backportExtension `json:"extension"`
	} `json:"_criteria"`
	Channel struct {
		PayloadElement struct {
			Extension []backportExtension `json:"extension"`
		} `json:"_payload"`
		Type        string              `json:"type"`
		Endpoint    string              `json:"endpoint"`
		Payload     string              `json:"payload"`
		Header      []string            `json:"header"`
		Extension   []backportExtension `json:"extension"`
		TypeElement struct {
			Extension []struct {
				URL         string `json:"url"`
				ValueCoding *struct {
					System string `json:"system"`
					Code   string `json:"code"`
				} `json:"valueCoding"`
			} `json:"extension"`
		} `json:"_type"`
	} `json:"channel"`
}

// decodeSpec reads a stored Subscription version (not a deletion).
func decodeSpec(r fhir.Resource) (*spec, error) {
	var v subscriptionJSON
	if err := json.Unmarshal(r.JSON, &v); err != nil {
		return nil, fmt.Errorf("subscriptions: decode Subscription/%s version %d: %w", r.ID, r.Version, err)
	}
	s := &spec{
		ID: r.ID, Version: r.Version, Status: v.Status, Error: v.Error, Criteria: strings.TrimSpace(v.Criteria),
		Channel: v.Channel.Type, Endpoint: strings.TrimSpace(v.Channel.Endpoint), Payload: strings.TrimSpace(v.Channel.Payload),
		Headers: v.Channel.Header,
	}
	for _, e := range v.Channel.Extension {
		switch {
		case e.URL == SecretExtension:
			s.Secret = []byte(e.ValueString)
		case e.URL == extHeartbeatPeriod && e.ValueUnsignedInt != nil:
			s.Heartbeat = *e.ValueUnsignedInt
		case e.URL == extTimeout && e.ValueUnsignedInt != nil:
			s.Timeout = *e.ValueUnsignedInt
		case e.URL == extMaxCount && e.ValuePositiveInt != nil:
			s.MaxCount = *e.ValuePositiveInt
		}
	}
	if strings.HasPrefix(s.Criteria, "http://") || strings.HasPrefix(s.Criteria, "https://") {
		s.Topic = topicByURL(s.Criteria)
		if s.Topic == nil {
			s.Topic = &Topic{URL: s.Criteria} // unknown: validate says so
		}
		s.Content = contentEmpty
		for _, e := range v.CriteriaElement.Extension {
			if e.URL == extFilterCriteria && strings.TrimSpace(e.ValueString) != "" {
				s.Filters = append(s.Filters, strings.TrimSpace(e.ValueString))
			}
		}
		for _, e := range v.Channel.PayloadElement.Extension {
			if e.URL == extPayloadContent {
				s.Content = e.ValueCode
			}
		}
	}
	for _, e := range v.Channel.TypeElement.Extension {
		if e.URL == ChannelTypeExtension && e.ValueCoding != nil {
			s.Channel = e.ValueCoding.System + "|" + e.ValueCoding.Code
			if e.ValueCoding.System == ChannelTypeSystem {
				s.Channel = e.ValueCoding.Code
			}
		}
	}
	return s, nil
}

// reservedHeaders may not be set by channel.header: the hub sets them.
var reservedHeaders = map[string]bool{"Host": true, "Content-Type": true, "Content-Length": true, "Transfer-Encoding": true, "Connection": true}

// validate checks what the hub needs to deliver s and parses its criteria;
// the error's text is what goes into Subscription.error.
func (h *Hub) validate(ctx context.Context, s *spec) error {
	if s.Criteria == "" {
		return fmt.Errorf("criteria is missing")
	}
	if s.Topic != nil {
		if s.Topic.Resource == "" {
			return fmt.Errorf("criteria %q is not a topic of this server (GET [base]/metadata lists them)", s.Criteria)
		}
		clauses, err := h.topicClauses(ctx, s)
		if err != nil {
			return err
		}
		s.Type, s.Clauses = s.Topic.Resource, clauses
		switch s.Content {
		case contentEmpty, contentIDOnly, contentFullResource:
		default:
			return fmt.Errorf("payload content %q: use empty, id-only or full-resource (extension %s)", s.Content, extPayloadContent)
		}
		if s.Heartbeat < 0 || s.Timeout < 0 {
			return fmt.Errorf("heartbeat period and timeout are numbers of seconds")
		}
		if s.Channel == ChannelWebSocket {
			return fmt.Errorf("topic-based subscriptions use rest-hook or the nats channel; the R4 websocket channel pings criteria subscriptions only")
		}
	} else {
		typ, query, _ := strings.Cut(s.Criteria, "?")
		if h.Service.Validator != nil && !h.Service.Validator.KnownType(typ) {
			return fmt.Errorf("criteria %q: %q is not a resource type", s.Criteria, typ)
		}
		params, err := url.ParseQuery(query)
		if err != nil {
			return fmt.Errorf("criteria %q is not a valid query string: %v", s.Criteria, err)
		}
		clauses, err := h.Search.FilterClauses(ctx, typ, params)
		if err != nil {
			return fmt.Errorf("criteria %q: %s", s.Criteria, diagnostics(err))
		}
		s.Type, s.Clauses = typ, clauses
	}
	switch s.Channel {
	case ChannelRestHook:
		if err := h.policy.check(s.Endpoint); err != nil {
			return err
		}
	case ChannelWebSocket:
		// The client connects to the server; endpoint, payload, header
		// and the signing secret are not used.
		return nil
	case ChannelNATS:
		subj, ok := strings.CutPrefix(s.Endpoint, natsScheme)
		if !ok || !strings.HasPrefix(subj, OutSubjectPrefix) || !validSubject(subj) {
			return fmt.Errorf("channel.endpoint %q: the nats channel needs nats:%s<name>, a NATS subject without wildcards or spaces", s.Endpoint, OutSubjectPrefix)
		}
	default:
		return fmt.Errorf("channel type %q is not supported: use rest-hook, websocket, or the nats channel (extension %s, Coding %s|%s)", s.Channel, ChannelTypeExtension, ChannelTypeSystem, ChannelNATS)
	}
	if s.Payload != "" {
		mt, _, err := mime.ParseMediaType(s.Payload)
		if err != nil || (mt != "application/fhir+json" && mt != "application/json") {
			return fmt.Errorf("channel.payload %q is not supported: leave it empty or use application/fhir+json", s.Payload)
		}
	}
	for _, line := range s.Headers {
		name, _, ok := strings.Cut(line, ":")
		name = strings.TrimSpace(name)
		if !ok || !validHeaderName(name) {
			return fmt.Errorf("channel.header %q is not \"Name: value\"", line)
		}
		ck := http.CanonicalHeaderKey(name)
		if reservedHeaders[ck] || strings.HasPrefix(ck, "X-Fhirhub-") {
			return fmt.Errorf("channel.header %q: the hub sets %s itself", line, ck)
		}
	}
	if s.Secret != nil && len(s.Secret) < minSecretLen {
		return fmt.Errorf("the signing secret (extension %s) is shorter than %d characters", SecretExtension, minSecretLen)
	}
	return nil
}

// diagnostics is the client-facing text of an error: its first issue's
// diagnostics, without internal causes.
func diagnostics(err error) string {
	var fe *fhir.Error
	if errors.As(err, &fe) && len(fe.Issues) > 0 && fe.Issues[0].Diagnostics != "" {
		return fe.Issues[0].Diagnostics
	}
	return err.Error()
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// validSubject reports whether s is a literal NATS subject: dot-separated
// non-empty tokens of printable characters, no wildcards.
func validSubject(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for _, tok := range strings.Split(s, ".") {
		if tok == "" || tok == "*" || tok == ">" {
			return false
		}
		for i := 0; i < len(tok); i++ {
			if c := tok[i]; c <= ' ' || c >= 0x7f || c == '*' || c == '>' {
				return false
			}
		}
	}
	return true
}
