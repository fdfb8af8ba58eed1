package rest

import (
	"strings"

	"github.com/fhirhub/fhirhub/conformance"
	"github.com/fhirhub/fhirhub/fhir"
)

// The interactions this package serves; the CapabilityStatement is built from
// these lists, which the route table in Handler mirrors.
var (
	typeInteractions   = []string{"read", "vread", "update", "delete", "history-instance", "history-type", "create"}
	systemInteractions = []string{"history-system"}
)

// capabilityStatement renders the CapabilityStatement for a base URL from what
// is registered: the resource types the validator accepts and the
// interactions above.
func (s *Server) capabilityStatement(base string) ([]byte, error) {
	s.capMu.Lock()
	defer s.capMu.Unlock()
	if b, ok := s.capCache[base]; ok {
		return b, nil
	}
	caps := conformance.Capabilities{
		BaseURL:            base,
		SoftwareName:       "fhirhub",
		SoftwareVersion:    s.SoftwareVersion,
		SystemInteractions: systemInteractions,
		Formats:            []string{"application/fhir+json", "json"},
		ConditionalNote: "Conditional create, update and delete accept the criteria " +
			strings.Join(fhir.ConditionalParams, ", ") + " only; other parameters are refused with 400.",
	}
	for _, typ := range conformance.ResourceTypes() {
		if s.Service.Validator != nil && !s.Service.Validator.KnownType(typ) {
			continue
		}
		caps.Resources = append(caps.Resources, conformance.ResourceCapability{
			Type:              typ,
			Interactions:      typeInteractions,
			Versioning:        "versioned-update",
			ReadHistory:       true,
			UpdateCreate:      true,
			ConditionalCreate: true,
			ConditionalUpdate: true,
			ConditionalDelete: "single",
			ConditionalRead:   "full-support",
		})
	}
	b, err := caps.JSON()
	if err != nil {
		return nil, err
	}
	if s.capCache == nil {
		s.capCache = map[string][]byte{}
	}
	s.capCache[base] = b
	return b, nil
}
