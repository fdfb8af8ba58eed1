package fhirpath

// Element describes a child element of a FHIR type, as the R4 model defines
// it. Packages that build or edit resources (FHIRPath Patch) use it to know
// whether a JSON member is an array and which JSON name a choice takes.
type Element struct {
	// Name is the FHIRPath name: "value" for value[x].
	Name string
	// Many reports a maximum cardinality above 1: in JSON the member is an array.
	Many bool
	// Choice reports a [x] element.
	Choice bool
	// Types are the allowed types, one unless Choice; Keys are the JSON
	// member names, parallel to Types ("valueQuantity", "valueString").
	Types []*Type
	Keys  []string
}

// Element returns the child element of a FHIR type by its FHIRPath name (value
// for value[x]), inherited ones included; ok is false when t has no such
// element or is a System type.
func (t *Type) Element(name string) (Element, bool) {
	if t == nil || t.elements == nil {
		return Element{}, false
	}
	el := t.elements[name]
	if el == nil {
		return Element{}, false
	}
	return Element{
		Name:   el.name,
		Many:   el.many,
		Choice: el.choice,
		Types:  append([]*Type(nil), el.types...),
		Keys:   append([]string(nil), el.keys...),
	}, true
}
