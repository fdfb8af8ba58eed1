package search

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/fhirhub/fhirhub/fhir"
)

// ParamType is a search parameter type (see fhir.ParamType).
type ParamType = fhir.ParamType

// The search parameter types of R4.
const (
	TypeNumber    = fhir.TypeNumber
	TypeDate      = fhir.TypeDate
	TypeString    = fhir.TypeString
	TypeToken     = fhir.TypeToken
	TypeReference = fhir.TypeReference
	TypeComposite = fhir.TypeComposite
	TypeQuantity  = fhir.TypeQuantity
	TypeURI       = fhir.TypeURI
	TypeSpecial   = fhir.TypeSpecial
)

// Param is a search parameter as it applies to one resource type.
type Param struct {
	Code string
	Type ParamType
	URL  string
	// Expression is the FHIRPath expression for this resource type only (the
	// branches of a multi-type definition that concern other types dropped).
	Expression string
	// Targets are the resource types a reference parameter may point at.
	Targets []string
	// Components are the parts of a composite parameter.
	Components []Component
	// Description is the definition's description, for the CapabilityStatement.
	Description string
}

// Component is one part of a composite parameter: the parameter whose type
// it has (by canonical URL) and the expression relative to the composite's row.
type Component struct {
	Definition string
	Expression string
	// Type is the component's parameter type, looked up from Definition.
	Type ParamType
}

//go:embed definitions/search-parameters.json.gz
var officialGz []byte

// Registry holds the search parameters of every resource type. It is safe
// for concurrent use; Add makes new parameters searchable at once.
type Registry struct {
	mu     sync.RWMutex
	byType map[string]map[string]*Param // resource type → code → param
	byURL  map[string]*Param
	custom map[string]customParam // SearchParameter resource id → what it added
	gen    int64                  // bumped on every change after construction
}

// Generation changes whenever the registry does (for caches of what it holds).
func (r *Registry) Generation() int64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.gen
}

// searchParameter is the part of a SearchParameter resource the registry reads.
type searchParameter struct {
	ResourceType string   `json:"resourceType"`
	URL          string   `json:"url"`
	Code         string   `json:"code"`
	Base         []string `json:"base"`
	Type         string   `json:"type"`
	Expression   string   `json:"expression"`
	Target       []string `json:"target"`
	Description  string   `json:"description"`
	Status       string   `json:"status"`
	Component    []struct {
		Definition string `json:"definition"`
		Expression string `json:"expression"`
	} `json:"component"`
}

// commonParams apply to every resource type (Resource.*): FHIR defines them
// on Resource, and the official bundle carries them as SearchParameters with
// base Resource (_id, _lastUpdated, _tag, _profile, _security, _source).
var resourceLevel = map[string]bool{"_id": true, "_lastUpdated": true, "_tag": true, "_profile": true, "_security": true, "_source": true}

// NewRegistry loads the official R4 SearchParameters for the given resource
// types (all 146 from conformance.ResourceTypes, in the server).
func NewRegistry(types []string) (*Registry, error) {
	zr, err := gzip.NewReader(bytes.NewReader(officialGz))
	if err != nil {
		return nil, fmt.Errorf("search: read the official search parameters: %w", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("search: read the official search parameters: %w", err)
	}
	var bundle struct {
		Entry []struct {
			Resource searchParameter `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(raw, &bundle); err != nil {
		return nil, fmt.Errorf("search: parse the official search parameters: %w", err)
	}
	r := &Registry{byType: map[string]map[string]*Param{}, byURL: map[string]*Param{}}
	for _, t := range types {
		r.byType[t] = map[string]*Param{}
	}
	var resourceParams []searchParameter
	for _, e := range bundle.Entry {
		sp := e.Resource
		if sp.Expression == "" && sp.Type != string(TypeSpecial) {
			continue // _content, _query, _text: not supported
		}
		if len(sp.Base) == 1 && (sp.Base[0] == "Resource" || sp.Base[0] == "DomainResource") {
			resourceParams = append(resourceParams, sp)
			continue
		}
		r.addLocked(sp)
	}
	for _, sp := range resourceParams {
		if !resourceLevel[sp.Code] {
			continue
		}
		for t := range r.byType {
			sp2 := sp
			sp2.Base = []string{t}
			sp2.Expression = strings.Replace(sp.Expression, "Resource.", t+".", 1)
			r.addLocked(sp2)
		}
	}
	// Component types come from the parameters they name.
	for _, params := range r.byType {
		for _, p := range params {
			for i := range p.Components {
				if d, ok := r.byURL[p.Components[i].Definition]; ok {
					p.Components[i].Type = d.Type
				}
			}
		}
	}
	return r, nil
}

func (r *Registry) addLocked(sp searchParameter) {
	for _, base := range sp.Base {
		params, ok := r.byType[base]
		if !ok {
			continue
		}
		p := &Param{
			Code:        sp.Code,
			Type:        ParamType(sp.Type),
			URL:         sp.URL,
			Expression:  ExpressionFor(sp.Expression, base),
			Targets:     sp.Target,
			Description: sp.Description,
		}
		for _, c := range sp.Component {
			p.Components = append(p.Components, Component{Definition: c.Definition, Expression: c.Expression})
		}
		if p.Expression == "" && p.Type != TypeSpecial {
			continue
		}
		params[sp.Code] = p
		if sp.URL != "" {
			r.byURL[sp.URL] = p
		}
	}
}

// Lookup returns the parameter code of resource type typ.
func (r *Registry) Lookup(typ, code string) (*Param, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	p, ok := r.byType[typ][code]
	return p, ok
}

// Params returns the parameters of typ sorted by code.
func (r *Registry) Params(typ string) []*Param {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*Param, 0, len(r.byType[typ]))
	for _, p := range r.byType[typ] {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Code < out[j].Code })
	return out
}

// Types returns the resource types the registry knows, sorted.
func (r *Registry) Types() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.byType))
	for t := range r.byType {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// ExpressionFor keeps the branches of a top-level union that apply to
// resource type typ ("Patient.name | Practitioner.name" → "Patient.name"). A
// branch applies when it starts with typ, with "(typ." or does not start with
// a resource type at all.
func ExpressionFor(expr, typ string) string {
	var keep []string
	for _, b := range splitUnion(expr) {
		b = strings.TrimSpace(b)
		head := strings.TrimLeft(b, "(")
		name := head
		if i := strings.IndexAny(head, ".() "); i >= 0 {
			name = head[:i]
		}
		if name == typ || !startsUpper(name) {
			keep = append(keep, b)
		}
	}
	return strings.Join(keep, " | ")
}

func startsUpper(s string) bool { return s != "" && s[0] >= 'A' && s[0] <= 'Z' }

// splitUnion splits expr at the | operators outside parentheses and strings.
func splitUnion(expr string) []string {
	var out []string
	depth, start := 0, 0
	inStr := false
	for i := 0; i < len(expr); i++ {
		c := expr[i]
		switch {
		case inStr:
			if c == '\\' {
				i++
			} else if c == '\'' {
				inStr = false
			}
		case c == '\'':
			inStr = true
		case c == '(':
			depth++
		case c == ')':
			depth--
		case c == '|' && depth == 0:
			out = append(out, expr[start:i])
			start = i + 1
		}
	}
	return append(out, expr[start:])
}

// custom records which registered parameters came from SearchParameter
// resources of the server (by resource id), so they can be replaced or removed.
type customParam struct {
	bases []string
	code  string
}

// CheckResource vets a SearchParameter resource before it is stored: its
// code, type, bases and expression must be usable (the expression must
// compile). It returns a 422 *fhir.Error naming what is wrong.
func (r *Registry) CheckResource(value map[string]any, compile func(string) error) error {
	sp, err := decodeSearchParameter(value)
	if err != nil {
		return err
	}
	bad := func(expr, format string, args ...any) error {
		return fhir.Unprocessable([]fhir.Issue{{Severity: fhir.SeverityError, Code: fhir.IssueBusinessRule, Diagnostics: fmt.Sprintf(format, args...), Expression: []string{expr}}})
	}
	if sp.Code == "" || strings.ContainsAny(sp.Code, " ,:.$|") {
		return bad("SearchParameter.code", "the code %q cannot be used as a search parameter name", sp.Code)
	}
	switch ParamType(sp.Type) {
	case TypeNumber, TypeDate, TypeString, TypeToken, TypeReference, TypeQuantity, TypeURI:
	case TypeComposite, TypeSpecial:
		return bad("SearchParameter.type", "custom %s parameters are not supported", sp.Type)
	default:
		return bad("SearchParameter.type", "%q is not a search parameter type", sp.Type)
	}
	for _, b := range sp.Base {
		if _, ok := r.byTypeHas(b); !ok {
			return bad("SearchParameter.base", "%q is not a resource type", b)
		}
	}
	if sp.Expression == "" {
		return bad("SearchParameter.expression", "a custom search parameter needs an expression")
	}
	if compile != nil {
		if err := compile(sp.Expression); err != nil {
			return bad("SearchParameter.expression", "the expression does not compile: %v", err)
		}
	}
	for _, b := range sp.Base {
		if p, ok := r.Lookup(b, sp.Code); ok && p.URL != sp.URL && r.isOfficial(p) {
			return bad("SearchParameter.code", "%s already has the parameter %s (%s)", b, sp.Code, p.URL)
		}
	}
	return nil
}

func (r *Registry) isOfficial(p *Param) bool {
	return strings.HasPrefix(p.URL, "http://hl7.org/fhir/SearchParameter/")
}

func decodeSearchParameter(value map[string]any) (searchParameter, error) {
	var sp searchParameter
	b, err := json.Marshal(value)
	if err == nil {
		err = json.Unmarshal(b, &sp)
	}
	if err != nil {
		return sp, fhir.Invalid("SearchParameter", "the SearchParameter cannot be read: %v", err)
	}
	return sp, nil
}

// SetResource registers (or replaces) the parameter a stored SearchParameter
// resource defines; status retired removes it.
func (r *Registry) SetResource(id string, value map[string]any) error {
	sp, err := decodeSearchParameter(value)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gen++
	r.removeLocked(id)
	if sp.Status == "retired" {
		return nil
	}
	if r.custom == nil {
		r.custom = map[string]customParam{}
	}
	r.addLocked(sp)
	r.custom[id] = customParam{bases: sp.Base, code: sp.Code}
	return nil
}

// RemoveResource unregisters the parameter of a deleted SearchParameter resource.
func (r *Registry) RemoveResource(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gen++
	r.removeLocked(id)
}

func (r *Registry) removeLocked(id string) {
	c, ok := r.custom[id]
	if !ok {
		return
	}
	for _, b := range c.bases {
		if p, ok := r.byType[b][c.code]; ok && !strings.HasPrefix(p.URL, "http://hl7.org/fhir/SearchParameter/") {
			delete(r.byType[b], c.code)
			delete(r.byURL, p.URL)
		}
	}
	delete(r.custom, id)
}
