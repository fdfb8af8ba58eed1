package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v5"

	"github.com/fhirhub/fhirhub/fhir"
)

// schemaURL is the id of the FHIR R4 JSON Schema; each resource type is
// compiled from schemaURL#/definitions/<Type>.
const schemaURL = "http://hl7.org/fhir/json-schema/4.0"

// maxIssues bounds the issues one validation reports; one more issue says how
// many were left out.
const maxIssues = 100

// Validator validates resources against the FHIR R4 JSON Schema, one compiled
// schema per resource type, and checks the minimum cardinalities of the
// resource's own elements, which the schema cannot express for primitives.
// It implements fhir.Validator and is safe for concurrent use.
//
// NewValidator tightens the official schema in memory where it accepts what
// FHIR JSON does not, or rejects what FHIR JSON allows:
//   - every complex type and resource must be a JSON object (the schema gives
//     them no type, so "maritalStatus": "M" passed);
//   - integer, positiveInt and unsignedInt must be whole numbers in their
//     32-bit ranges; xhtml (Narrative.div) must be a string;
//   - arrays of primitives and of their extensions ("given", "_given") may hold
//     null, as FHIR JSON does to keep the two arrays aligned;
//   - a resource inside another (contained, Bundle.entry.resource,
//     Parameters.parameter.resource, Bundle.entry.response.outcome) is checked
//     against the definition its resourceType names and no other, instead of
//     the schema's oneOf over all 146 types, which tried every type for every
//     nested resource (5 ms each) and reported a failure per type ("value must
//     be Account"). The schema itself only requires such a value to be an
//     object with a known resourceType; Validate then validates it with the
//     compiled schema of that type, as it does the resource itself.
type Validator struct {
	schemas map[string]*jsonschema.Schema
	// defs are the (tightened) schema definitions, read to word the issues.
	defs  map[string]any
	types *definitions
}

var _ fhir.Validator = (*Validator)(nil)

// NewValidator loads the embedded schema and compiles the definition of every
// resource type.
func NewValidator() (*Validator, error) {
	types, err := loadDefinitions()
	if err != nil {
		return nil, err
	}
	raw, err := gunzip(schemaGz)
	if err != nil {
		return nil, fmt.Errorf("conformance: reading the JSON schema: %w", err)
	}
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("conformance: decoding the JSON schema: %w", err)
	}
	names, err := schemaTypes(doc)
	if err != nil {
		return nil, err
	}
	if !slices.Equal(names, types.names) {
		return nil, fmt.Errorf("conformance: the JSON schema's %d resource types differ from the element table's %d", len(names), len(types.names))
	}
	if err := tighten(doc, names); err != nil {
		return nil, err
	}
	patched, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("conformance: encoding the JSON schema: %w", err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(schemaURL, bytes.NewReader(patched)); err != nil {
		return nil, fmt.Errorf("conformance: loading the JSON schema: %w", err)
	}
	v := &Validator{
		schemas: make(map[string]*jsonschema.Schema, len(names)),
		defs:    doc["definitions"].(map[string]any),
		types:   types,
	}
	for _, name := range names {
		s, err := c.Compile(schemaURL + "#/definitions/" + name)
		if err != nil {
			return nil, fmt.Errorf("conformance: compiling the JSON schema of %s: %w", name, err)
		}
		v.schemas[name] = s
	}
	return v, nil
}

// schemaTypes returns the resource types of the schema's discriminator, sorted.
func schemaTypes(doc map[string]any) ([]string, error) {
	disc, _ := doc["discriminator"].(map[string]any)
	mapping, _ := disc["mapping"].(map[string]any)
	if len(mapping) == 0 {
		return nil, fmt.Errorf("conformance: the JSON schema has no discriminator mapping")
	}
	defs, _ := doc["definitions"].(map[string]any)
	names := make([]string, 0, len(mapping))
	for name := range mapping {
		if _, ok := defs[name].(map[string]any); !ok {
			return nil, fmt.Errorf("conformance: the JSON schema has no definition of %s", name)
		}
		names = append(names, name)
	}
	slices.Sort(names)
	return names, nil
}

// nullSuffix names the copies of primitive definitions that also accept null,
// used for the items of primitive arrays ("stringOrNull").
const nullSuffix = "OrNull"

// tighten rewrites the decoded schema as described on Validator.
func tighten(doc map[string]any, types []string) error {
	delete(doc, "oneOf")
	dropDescriptions(doc)
	defs := doc["definitions"].(map[string]any)
	typeInline(defs)
	for name := range integerBounds {
		d, ok := defs[name].(map[string]any)
		if !ok {
			return fmt.Errorf("conformance: the JSON schema has no definition of %s", name)
		}
		setInteger(d, name)
	}
	if d, ok := defs["xhtml"].(map[string]any); ok {
		d["type"] = "string"
	}
	nullable := make(map[string]bool)
	for name, d := range defs {
		d, ok := d.(map[string]any)
		if !ok {
			continue
		}
		if _, ok := d["properties"]; ok {
			if _, typed := d["type"]; !typed {
				d["type"] = "object"
			}
			if name == "Element" {
				nullable[name] = true
			}
			continue
		}
		if name != "ResourceList" && name != "xhtml" {
			nullable[name] = true
		}
	}
	// Arrays of primitives or of primitive extensions may hold null.
	for _, d := range defs {
		d, _ := d.(map[string]any)
		props, _ := d["properties"].(map[string]any)
		for _, p := range props {
			p, _ := p.(map[string]any)
			if p["type"] != "array" {
				continue
			}
			items, _ := p["items"].(map[string]any)
			ref, _ := items["$ref"].(string)
			target, ok := strings.CutPrefix(ref, "#/definitions/")
			if !ok || !nullable[target] {
				continue
			}
			items["$ref"] = "#/definitions/" + target + nullSuffix
		}
	}
	for name := range nullable {
		src := defs[name].(map[string]any)
		cp := make(map[string]any, len(src))
		for k, v := range src {
			cp[k] = v
		}
		cp["type"] = []any{src["type"], "null"}
		defs[name+nullSuffix] = cp
	}
	// A nested resource only needs a known resourceType here: Validate checks
	// it against the definition of that type.
	enum := make([]any, len(types))
	for i, t := range types {
		enum[i] = t
	}
	defs["ResourceList"] = map[string]any{
		"type":       "object",
		"required":   []any{"resourceType"},
		"properties": map[string]any{"resourceType": map[string]any{"enum": enum}},
	}
	return nil
}

// dropDescriptions removes the descriptions from the schema, three quarters of
// its size, which validation never reads.
func dropDescriptions(node any) {
	switch n := node.(type) {
	case map[string]any:
		if d, ok := n["description"]; ok {
			if _, text := d.(string); text {
				delete(n, "description")
			}
		}
		for _, v := range n {
			dropDescriptions(v)
		}
	case []any:
		for _, v := range n {
			dropDescriptions(v)
		}
	}
}

// integerBounds are the ranges of the FHIR integer types.
var integerBounds = map[string][2]int64{
	"integer":     {-1 << 31, 1<<31 - 1},
	"positiveInt": {1, 1<<31 - 1},
	"unsignedInt": {0, 1<<31 - 1},
}

func setInteger(node map[string]any, prim string) {
	b := integerBounds[prim]
	node["type"] = "integer"
	node["minimum"] = b[0]
	node["maximum"] = b[1]
}

// fhirTypeKey marks the schema of a property that spells out a primitive
// instead of referring to its definition (the typed properties of choice
// elements, "deceasedBoolean") with the primitive's name, for the messages.
const fhirTypeKey = "x-fhir-type"

// typeInline names the primitive of every inline primitive property and
// tightens the integer ones as their definitions are.
func typeInline(defs map[string]any) {
	prims := make(map[string]any)
	for name, d := range defs {
		d, _ := d.(map[string]any)
		if _, complex := d["properties"]; !complex && d["type"] != nil {
			prims[name] = d["type"]
		}
	}
	for _, d := range defs {
		d, _ := d.(map[string]any)
		props, _ := d["properties"].(map[string]any)
		for pname, p := range props {
			p, _ := p.(map[string]any)
			if p["$ref"] != nil || p["items"] != nil || p["type"] == nil {
				continue
			}
			// The longest primitive name the property name ends with:
			// valueDateTime is a dateTime, not a time.
			best := ""
			for prim, typ := range prims {
				if typ == p["type"] && len(prim) > len(best) && strings.HasSuffix(pname, upperFirst(prim)) {
					best = prim
				}
			}
			if best == "" {
				continue
			}
			p[fhirTypeKey] = best
			if _, ok := integerBounds[best]; ok {
				setInteger(p, best)
			}
		}
	}
}

// KnownType reports whether typ is one of the 146 R4 resource types.
func (v *Validator) KnownType(typ string) bool {
	_, ok := v.schemas[typ]
	return ok
}

// Validate checks value, a resource of type typ decoded from JSON (numbers as
// json.Number or float64), against the JSON Schema of typ and the minimum
// cardinalities of its elements. It returns nil, or a 422 *fhir.Error with one
// issue per problem found (at most 100, then a note of how many more).
// Validation is quick and does no I/O; ctx is not consulted.
func (v *Validator) Validate(_ context.Context, typ string, value map[string]any) error {
	s, ok := v.schemas[typ]
	if !ok {
		return fhir.Unprocessable([]fhir.Issue{{
			Severity:    fhir.SeverityError,
			Code:        fhir.IssueNotSupported,
			Diagnostics: fmt.Sprintf("unknown resource type %q", typ),
		}})
	}
	if value == nil {
		return fhir.Unprocessable([]fhir.Issue{{
			Severity:    fhir.SeverityError,
			Code:        fhir.IssueStructure,
			Diagnostics: "the resource is empty",
			Expression:  []string{typ},
		}})
	}
	r := report{v: v, typ: typ, root: value, seen: make(map[issueKey]bool)}
	r.check(s, v.types.types[typ], value, "")
	if len(r.issues) == 0 {
		return nil
	}
	return fhir.Unprocessable(r.finish())
}
