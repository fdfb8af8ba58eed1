package search

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"net/url"

	"github.com/fhirhub/fhirhub/fhir"
)

// The official R4 CompartmentDefinitions (Patient, Encounter, Practitioner,
// RelatedPerson, Device), reduced to which parameters of which resource types
// place a resource in a compartment.
//
//go:embed definitions/compartments/*.json
var compartmentFiles embed.FS

// Compartments maps a compartment type to, per resource type, the reference
// parameters whose target places a resource in the compartment.
type Compartments map[string]map[string][]string

// LoadCompartments reads the embedded CompartmentDefinitions.
func LoadCompartments() (Compartments, error) {
	files, err := compartmentFiles.ReadDir("definitions/compartments")
	if err != nil {
		return nil, fmt.Errorf("search: read compartment definitions: %w", err)
	}
	out := Compartments{}
	for _, f := range files {
		b, err := compartmentFiles.ReadFile("definitions/compartments/" + f.Name())
		if err != nil {
			return nil, fmt.Errorf("search: read %s: %w", f.Name(), err)
		}
		var def struct {
			Code     string `json:"code"`
			Resource []struct {
				Code  string   `json:"code"`
				Param []string `json:"param"`
			} `json:"resource"`
		}
		if err := json.Unmarshal(b, &def); err != nil {
			return nil, fmt.Errorf("search: parse %s: %w", f.Name(), err)
		}
		m := map[string][]string{}
		for _, r := range def.Resource {
			var params []string
			for _, p := range r.Param {
				if p != "{def}" { // the compartment's own resource
					params = append(params, p)
				}
			}
			if len(params) > 0 {
				m[r.Code] = params
			}
		}
		out[def.Code] = m
	}
	return out, nil
}

// CompartmentSearch searches resources of typ in the compartment of
// compType/compID (GET /Patient/123/Observation): the query's clauses plus
// "refers to the compartment's resource through one of the compartment's
// parameters".
func (e *Engine) CompartmentSearch(ctx context.Context, compType, compID, typ string, params url.Values, strict bool) (*Outcome, error) {
	q, err := e.CompartmentQuery(compType, compID, typ, params, strict)
	if err != nil {
		return nil, err
	}
	return e.Run(ctx, q)
}

// CompartmentQuery parses a compartment search (see CompartmentSearch)
// without running it.
func (e *Engine) CompartmentQuery(compType, compID, typ string, params url.Values, strict bool) (*Query, error) {
	comps, err := e.compartments()
	if err != nil {
		return nil, err
	}
	comp, ok := comps[compType]
	if !ok {
		return nil, fhir.NotFound("%s is not a compartment (compartments: Patient, Encounter, Practitioner, RelatedPerson, Device)", compType)
	}
	if !fhir.ValidID(compID) {
		return nil, fhir.NotFound("%s/%s is not a valid id", compType, compID)
	}
	codes := comp[typ]
	if len(codes) == 0 {
		return nil, fhir.NotFound("%s resources are not in the %s compartment", typ, compType)
	}
	q, err := e.Registry.Parse(typ, params, strict)
	if err != nil {
		return nil, err
	}
	var or []Clause
	for _, code := range codes {
		p, ok := e.Registry.Lookup(typ, code)
		if !ok || p.Type != TypeReference {
			continue
		}
		or = append(or, Clause{Name: code, Param: p, Values: []Value{{Raw: compType + "/" + compID, RefType: compType, RefID: compID}}})
	}
	if len(or) == 0 {
		return nil, fhir.NotFound("%s resources are not in the %s compartment", typ, compType)
	}
	q.Clauses = append([]Clause{{Name: compType + "/" + compID, Or: or}}, q.Clauses...)
	return q, nil
}
