package fhirpath

import (
	"bufio"
	"bytes"
	"compress/gzip"
	_ "embed"
	"fmt"
	"strings"
	"sync"
)

//go:generate go run ./internal/gen -defs ../../../shared/fhir-r4/definitions -out r4model.gz

// r4model is the generated table of R4 types and their elements (see
// internal/gen for the format).
//
//go:embed r4model.gz
var r4model []byte

// kind says what sort of type a Type is.
type kind uint8

const (
	kindSystem    kind = iota // a FHIRPath System type (String, Integer, ...)
	kindPrimitive             // a FHIR primitive (string, code, dateTime, ...)
	kindComplex               // a FHIR complex data type (Quantity, HumanName, ...)
	kindResource              // a FHIR resource (Patient, Resource, DomainResource, ...)
	kindBackbone              // an element defined inline (Patient.contact)
)

// Type is a FHIR or FHIRPath System type.
type Type struct {
	Namespace string // "FHIR" or "System"
	Name      string // "Quantity", "dateTime", "Patient", "Patient.contact", "String"

	kind     kind
	base     *Type
	sys      *Type // the System type a value of this type converts to; nil if none
	elements map[string]*element
	order    []*element
}

// String returns the qualified name, such as FHIR.Quantity or System.String.
func (t *Type) String() string {
	if t == nil {
		return "(unknown)"
	}
	return t.Namespace + "." + t.Name
}

// Is reports whether t is u or derives from it.
func (t *Type) Is(u *Type) bool {
	for ; t != nil; t = t.base {
		if t == u {
			return true
		}
	}
	return false
}

// element is a child element of a FHIR type.
type element struct {
	name   string   // the FHIRPath name: "value" for value[x]
	many   bool     // max cardinality above 1
	choice bool     // a [x] element
	types  []*Type  // one for a non-choice element
	keys   []string // the JSON member names, parallel to types
	ukeys  []string // the JSON names of the primitive extension siblings ("_"+key)
}

// The System types.
var (
	typeAny      = &Type{Namespace: "System", Name: "Any"}
	typeBoolean  = &Type{Namespace: "System", Name: "Boolean", base: typeAny}
	typeString   = &Type{Namespace: "System", Name: "String", base: typeAny}
	typeInteger  = &Type{Namespace: "System", Name: "Integer", base: typeAny}
	typeDecimal  = &Type{Namespace: "System", Name: "Decimal", base: typeAny}
	typeDate     = &Type{Namespace: "System", Name: "Date", base: typeAny}
	typeDateTime = &Type{Namespace: "System", Name: "DateTime", base: typeAny}
	typeTime     = &Type{Namespace: "System", Name: "Time", base: typeAny}
	typeQuantity = &Type{Namespace: "System", Name: "Quantity", base: typeAny}
	// typeTypeInfo types the result of type().
	typeTypeInfo = &Type{Namespace: "System", Name: "SimpleTypeInfo", base: typeAny}
)

var systemTypes = map[string]*Type{}

func init() {
	for _, t := range []*Type{typeAny, typeBoolean, typeString, typeInteger, typeDecimal, typeDate, typeDateTime, typeTime, typeQuantity, typeTypeInfo} {
		t.sys = t
		systemTypes[t.Name] = t
	}
}

// primitiveSystem maps FHIR primitive types to the System type of their value.
var primitiveSystem = map[string]*Type{
	"boolean": typeBoolean, "integer": typeInteger, "positiveInt": typeInteger, "unsignedInt": typeInteger,
	"decimal": typeDecimal, "date": typeDate, "dateTime": typeDateTime, "instant": typeDateTime, "time": typeTime,
}

var (
	modelOnce  sync.Once
	modelTypes map[string]*Type
	modelErr   error
)

// fhirTypes returns the R4 model, loading it on first use.
func fhirTypes() (map[string]*Type, error) {
	modelOnce.Do(func() { modelTypes, modelErr = loadModel(r4model) })
	return modelTypes, modelErr
}

// fhirType returns the named FHIR type, or nil.
func fhirType(name string) *Type {
	types, _ := fhirTypes()
	return types[name]
}

// LookupType returns a FHIR type by name ("Patient", "Quantity", "code"), or
// a System type when the name is qualified ("System.String").
func LookupType(name string) (*Type, bool) {
	t := resolveTypeName(name)
	return t, t != nil
}

func loadModel(gz []byte) (map[string]*Type, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, fmt.Errorf("fhirpath: reading the R4 model: %w", err)
	}
	types := map[string]*Type{}
	bases := map[*Type]string{}
	type pending struct {
		el    *element
		names []string
	}
	var els []pending
	var cur *Type
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 4 && f[0] == "T":
			cur = &Type{Namespace: "FHIR", Name: f[2], elements: map[string]*element{}}
			switch f[1] {
			case "P":
				cur.kind = kindPrimitive
				cur.sys = primitiveSystem[cur.Name]
				if cur.sys == nil {
					cur.sys = typeString
				}
			case "C":
				cur.kind = kindComplex
			case "R":
				cur.kind = kindResource
			case "B":
				cur.kind = kindBackbone
			}
			if f[3] != "-" {
				bases[cur] = f[3]
			}
			types[cur.Name] = cur
		case len(f) == 4 && f[0] == "E" && cur != nil:
			el := &element{name: f[1], many: f[2] == "*"}
			if strings.HasSuffix(el.name, "[x]") {
				el.name = strings.TrimSuffix(el.name, "[x]")
				el.choice = true
			}
			cur.elements[el.name] = el
			cur.order = append(cur.order, el)
			els = append(els, pending{el, strings.Split(f[3], ",")})
		default:
			return nil, fmt.Errorf("fhirpath: the R4 model has a bad line %q", sc.Text())
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("fhirpath: reading the R4 model: %w", err)
	}
	for t, b := range bases {
		if t.base = types[b]; t.base == nil {
			return nil, fmt.Errorf("fhirpath: the R4 model: %s has an unknown base %s", t.Name, b)
		}
	}
	quantity := types["Quantity"]
	for _, t := range types {
		if t.Is(quantity) {
			t.sys = typeQuantity
		}
	}
	for _, p := range els {
		for _, n := range p.names {
			t := types[n]
			if t == nil {
				return nil, fmt.Errorf("fhirpath: the R4 model: element %s has an unknown type %s", p.el.name, n)
			}
			key := p.el.name
			if p.el.choice {
				key += strings.ToUpper(n[:1]) + n[1:]
			}
			p.el.types = append(p.el.types, t)
			p.el.keys = append(p.el.keys, key)
			p.el.ukeys = append(p.el.ukeys, "_"+key)
		}
	}
	return types, nil
}

// resolveTypeName finds a type named in an expression: FHIR types first,
// then System types; "FHIR." and "System." qualify the name.
func resolveTypeName(name string) *Type {
	switch {
	case strings.HasPrefix(name, "FHIR."):
		return fhirType(name[len("FHIR."):])
	case strings.HasPrefix(name, "System."):
		if t := systemTypes[name[len("System."):]]; t != nil {
			return t
		}
		// A System type the engine does not have: nothing is of it.
		return &Type{Namespace: "System", Name: name[len("System."):]}
	}
	if t := fhirType(name); t != nil {
		return t
	}
	return systemTypes[name]
}
