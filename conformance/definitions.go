package conformance

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
)

var (
	//go:embed definitions/fhir.schema.json.gz
	schemaGz []byte
	//go:embed definitions/elements.json.gz
	elementsGz []byte
)

// element is one element of a resource type's definition (from the snapshot of
// its StructureDefinition).
type element struct {
	// Path is relative to the resource type: "contact.name", "value[x]".
	Path string `json:"p"`
	// Summary is the element's isSummary.
	Summary bool `json:"s"`
	// Min is the minimum cardinality.
	Min int `json:"m"`
	// Types are the type codes; several only for a choice element.
	Types []string `json:"t"`
	// Ref is the path of the element whose definition this one reuses
	// (contentReference), or "".
	Ref string `json:"r"`

	// name is the last segment of Path ("value[x]"); base is name without
	// the [x] of a choice element ("value").
	name, base string
	// children are the elements defined inside this one (a backbone element),
	// those of Ref for an element defined by reference.
	children []*element
	// keys maps each JSON property name of the children to its element
	// ("valueQuantity" and "valueString" to value[x]).
	keys map[string]*element
}

// choice reports whether e is a choice element (value[x]).
func (e *element) choice() bool { return e.base != e.name }

// resource reports whether the element holds a whole resource (contained,
// Bundle.entry.resource, Parameters.parameter.resource).
func (e *element) resource() bool { return len(e.Types) == 1 && e.Types[0] == "Resource" }

// backbone reports whether the element has elements of its own defined in the
// resource (a BackboneElement, or a reference to one).
func (e *element) backbone() bool { return len(e.children) > 0 }

// child returns the child element a JSON property name stands for; a leading
// underscore (the extensions of a primitive) names the same element.
func (e *element) child(key string) *element {
	if c, ok := e.keys[key]; ok {
		return c
	}
	if strings.HasPrefix(key, "_") {
		return e.keys[key[1:]]
	}
	return nil
}

// present reports whether obj holds a value for e: its own property, the
// underscore property of a primitive, or one of the typed properties of a
// choice element.
func (e *element) present(obj map[string]any) bool {
	if !e.choice() {
		_, ok := obj[e.name]
		if !ok {
			_, ok = obj["_"+e.name]
		}
		return ok
	}
	for _, t := range e.Types {
		k := e.base + upperFirst(t)
		if _, ok := obj[k]; ok {
			return true
		}
		if _, ok := obj["_"+k]; ok {
			return true
		}
	}
	return false
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// typeDef is a resource type's element tree; root holds the top-level
// elements as its children.
type typeDef struct {
	name string
	root *element
}

// definitions is the element table, loaded once.
type definitions struct {
	fhirVersion string
	types       map[string]*typeDef
	names       []string
}

var (
	defsOnce sync.Once
	defs     *definitions
	defsErr  error
)

// loadDefinitions returns the embedded element table.
func loadDefinitions() (*definitions, error) {
	defsOnce.Do(func() {
		defs, defsErr = parseDefinitions(elementsGz)
	})
	return defs, defsErr
}

func parseDefinitions(gz []byte) (*definitions, error) {
	raw, err := gunzip(gz)
	if err != nil {
		return nil, fmt.Errorf("conformance: reading the element table: %w", err)
	}
	var f struct {
		FHIRVersion string                `json:"fhirVersion"`
		Types       map[string][]*element `json:"types"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("conformance: decoding the element table: %w", err)
	}
	d := &definitions{fhirVersion: f.FHIRVersion, types: make(map[string]*typeDef, len(f.Types))}
	for name, els := range f.Types {
		td, err := buildType(name, els)
		if err != nil {
			return nil, err
		}
		d.types[name] = td
		d.names = append(d.names, name)
	}
	slices.Sort(d.names)
	return d, nil
}

// buildType links a type's elements into a tree.
func buildType(name string, els []*element) (*typeDef, error) {
	root := &element{name: name, base: name, keys: make(map[string]*element)}
	byPath := map[string]*element{"": root}
	for _, e := range els {
		parent, last := "", e.Path
		if i := strings.LastIndexByte(e.Path, '.'); i >= 0 {
			parent, last = e.Path[:i], e.Path[i+1:]
		}
		p, ok := byPath[parent]
		if !ok {
			return nil, fmt.Errorf("conformance: element %s.%s comes before its parent", name, e.Path)
		}
		e.name, e.base = last, strings.TrimSuffix(last, "[x]")
		p.children = append(p.children, e)
		byPath[e.Path] = e
	}
	for _, e := range els {
		if e.Ref == "" {
			continue
		}
		target, ok := byPath[e.Ref]
		if !ok {
			return nil, fmt.Errorf("conformance: element %s.%s refers to the unknown %s", name, e.Path, e.Ref)
		}
		e.children = target.children
	}
	for _, e := range append(els, root) {
		if e.keys == nil {
			e.keys = make(map[string]*element, len(e.children))
		}
		for _, c := range e.children {
			if !c.choice() {
				e.keys[c.name] = c
				continue
			}
			for _, t := range c.Types {
				e.keys[c.base+upperFirst(t)] = c
			}
		}
	}
	return &typeDef{name: name, root: root}, nil
}

func gunzip(gz []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}

// ResourceTypes returns the names of the 146 FHIR R4 resource types, sorted.
func ResourceTypes() []string {
	d, err := loadDefinitions()
	if err != nil {
		return nil
	}
	return slices.Clone(d.names)
}

// lookupType returns the definition of a resource type, or nil.
func lookupType(typ string) (*typeDef, error) {
	d, err := loadDefinitions()
	if err != nil {
		return nil, err
	}
	return d.types[typ], nil
}
