package search

import (
	"fmt"
	"sync"

	"github.com/fhirhub/fhirhub/fhir"
	"github.com/fhirhub/fhirhub/fhir/fhirpath"
)

var _ fhir.Indexer = (*Indexer)(nil)

// Indexer computes the index entries of resources by evaluating the FHIRPath
// expressions of their type's search parameters (it is the fhir.Indexer the
// server uses).
type Indexer struct {
	Registry *Registry
	// BaseURL is the server's FHIR base: absolute references to it are
	// indexed as local ones.
	BaseURL string
	// OnError is told of a parameter that could not be evaluated on a
	// resource (the resource is still stored, without that parameter's
	// entries).
	OnError func(typ, code string, err error)

	cache sync.Map // expression → *fhirpath.Expression or error
}

func (ix *Indexer) compile(expr string) (*fhirpath.Expression, error) {
	if v, ok := ix.cache.Load(expr); ok {
		if err, isErr := v.(error); isErr {
			return nil, err
		}
		return v.(*fhirpath.Expression), nil
	}
	x, err := fhirpath.Compile(expr)
	if err != nil {
		ix.cache.Store(expr, err)
		return nil, err
	}
	ix.cache.Store(expr, x)
	return x, nil
}

// Index returns the entries of every search parameter of typ for value.
func (ix *Indexer) Index(typ string, value map[string]any) ([]fhir.IndexEntry, error) {
	var out []fhir.IndexEntry
	for _, p := range ix.Registry.Params(typ) {
		es, err := ix.ParamEntries(p, value)
		if err != nil {
			if ix.OnError != nil {
				ix.OnError(typ, p.Code, err)
			}
			continue
		}
		out = append(out, es...)
	}
	return out, nil
}

// ParamEntries returns the entries of one parameter for a resource.
func (ix *Indexer) ParamEntries(p *Param, value map[string]any) ([]fhir.IndexEntry, error) {
	if p.Expression == "" {
		return nil, nil
	}
	x, err := ix.compile(p.Expression)
	if err != nil {
		return nil, fmt.Errorf("search: compile %s: %w", p.Code, err)
	}
	col, err := x.Evaluate(value, nil)
	if err != nil {
		return nil, fmt.Errorf("search: evaluate %s: %w", p.Code, err)
	}
	if p.Type != TypeComposite {
		return entriesFor(p, p.Type, items(col), ix.BaseURL, 0, 0), nil
	}
	// A composite value is the tuple of its components: a row lacking one
	// component has no value (it could never match), so it is not indexed.
	var out []fhir.IndexEntry
rows:
	for g, row := range col {
		start := len(out)
		for i, c := range p.Components {
			cx, err := ix.compile(c.Expression)
			if err != nil {
				return nil, fmt.Errorf("search: compile %s component %d: %w", p.Code, i+1, err)
			}
			sub, err := cx.Evaluate(value, &fhirpath.Options{Context: row})
			if err != nil {
				return nil, fmt.Errorf("search: evaluate %s component %d: %w", p.Code, i+1, err)
			}
			es := entriesFor(p, c.Type, items(sub), ix.BaseURL, i+1, g)
			if len(es) == 0 {
				out = out[:start]
				continue rows
			}
			out = append(out, es...)
		}
	}
	return out, nil
}

func items(col fhirpath.Collection) []Item {
	out := make([]Item, 0, len(col))
	for _, it := range col {
		out = append(out, Item{Type: it.TypeName(), Value: it.Value()})
	}
	return out
}
