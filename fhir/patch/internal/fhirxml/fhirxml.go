// Package fhirxml converts FHIR XML resources to FHIR JSON, guided by the R4
// model of package fhirpath (which elements are lists, which type a choice
// element has, how a primitive is written in JSON). It is good enough for the
// XML test cases of the FHIR test suites the patch tests read, not a general
// FHIR XML parser: it does not validate, and keeps no member order.
package fhirxml

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/fhirhub/fhirhub/fhir/fhirpath"
)

const xhtmlNS = "http://www.w3.org/1999/xhtml"

// node is an XML element: its attributes, its child elements, or, for an
// XHTML div, its text.
type node struct {
	name     string
	attrs    map[string]string
	children []*node
	xhtml    string
}

// ToJSON converts a FHIR XML resource (leading whitespace and comments
// allowed) to JSON.
func ToJSON(doc []byte) ([]byte, error) {
	v, err := Resource(doc)
	if err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// Resource converts a FHIR XML resource to its JSON form as decoded with
// UseNumber: map[string]any, []any, string, bool and json.Number.
func Resource(doc []byte) (map[string]any, error) {
	root, err := parseTree(doc)
	if err != nil {
		return nil, err
	}
	return resource(root)
}

func parseTree(body []byte) (*node, error) {
	dec := xml.NewDecoder(bytes.NewReader(body))
	var stack []*node
	var root *node
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("fhirxml: %w", err)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			n := &node{name: el.Name.Local, attrs: map[string]string{}}
			if el.Name.Space == xhtmlNS && el.Name.Local == "div" {
				if len(stack) == 0 {
					return nil, errors.New("fhirxml: a div is not a resource")
				}
				var inner struct {
					Body string `xml:",innerxml"`
				}
				if err := dec.DecodeElement(&inner, &el); err != nil {
					return nil, fmt.Errorf("fhirxml: %w", err)
				}
				n.xhtml = `<div xmlns="` + xhtmlNS + `">` + inner.Body + `</div>`
				stack[len(stack)-1].children = append(stack[len(stack)-1].children, n)
				continue
			}
			for _, a := range el.Attr {
				if a.Name.Space == "" {
					n.attrs[a.Name.Local] = a.Value
				}
			}
			if len(stack) > 0 {
				stack[len(stack)-1].children = append(stack[len(stack)-1].children, n)
			} else if root == nil {
				root = n
			} else {
				return nil, errors.New("fhirxml: more than one root element")
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		}
	}
	if root == nil {
		return nil, errors.New("fhirxml: no root element")
	}
	return root, nil
}

func lookup(name string) *fhirpath.Type {
	t, _ := fhirpath.LookupType("FHIR." + name)
	return t
}

func isResource(t *fhirpath.Type) bool { return t != nil && t.Is(lookup("Resource")) }

// isPrimitive: FHIR primitive type names, and only they, start lowercase.
func isPrimitive(t *fhirpath.Type) bool {
	return t != nil && t.Name != "" && t.Name[0] >= 'a' && t.Name[0] <= 'z'
}

func resource(n *node) (map[string]any, error) {
	t := lookup(n.name)
	if !isResource(t) {
		return nil, fmt.Errorf("fhirxml: %s is not a resource type", n.name)
	}
	obj, err := object(n, t)
	if err != nil {
		return nil, err
	}
	obj["resourceType"] = n.name
	return obj, nil
}

// element finds the element an XML name stands for, with its JSON name and
// type (valueQuantity is value[x] as a Quantity).
func element(t *fhirpath.Type, name string) (fhirpath.Element, string, *fhirpath.Type, bool) {
	if el, ok := t.Element(name); ok && !el.Choice {
		return el, name, el.Types[0], true
	}
	for i := 1; i < len(name); i++ {
		if name[i] < 'A' || name[i] > 'Z' {
			continue
		}
		if el, ok := t.Element(name[:i]); ok && el.Choice {
			for j, k := range el.Keys {
				if k == name {
					return el, k, el.Types[j], true
				}
			}
		}
	}
	return fhirpath.Element{}, "", nil, false
}

func object(n *node, t *fhirpath.Type) (map[string]any, error) {
	obj := map[string]any{}
	for _, a := range []string{"id", "url"} {
		if v, ok := n.attrs[a]; ok {
			if _, ok := t.Element(a); ok {
				obj[a] = v
			}
		}
	}
	type list struct{ values, exts []any }
	lists := map[string]*list{}
	var order []string
	for _, c := range n.children {
		el, key, ct, ok := element(t, c.name)
		if !ok {
			return nil, fmt.Errorf("fhirxml: %s has no element %s", t.Name, c.name)
		}
		var val, ext any
		switch {
		case isResource(ct):
			if len(c.children) != 1 {
				return nil, fmt.Errorf("fhirxml: %s.%s should hold one resource", t.Name, c.name)
			}
			r, err := resource(c.children[0])
			if err != nil {
				return nil, err
			}
			val = r
		case ct.Name == "xhtml":
			val = c.xhtml
		case isPrimitive(ct):
			if v, ok := c.attrs["value"]; ok {
				val = primitive(v, ct)
			}
			if len(c.children) > 0 || c.attrs["id"] != "" {
				m, err := object(c, lookup("Element"))
				if err != nil {
					return nil, err
				}
				ext = m
			}
		default:
			m, err := object(c, ct)
			if err != nil {
				return nil, err
			}
			val = m
		}
		if !el.Many {
			if _, dup := obj[key]; dup {
				return nil, fmt.Errorf("fhirxml: %s.%s repeats", t.Name, key)
			}
			if val != nil {
				obj[key] = val
			}
			if ext != nil {
				obj["_"+key] = ext
			}
			continue
		}
		l := lists[key]
		if l == nil {
			l = &list{}
			lists[key] = l
			order = append(order, key)
		}
		l.values = append(l.values, val)
		l.exts = append(l.exts, ext)
	}
	for _, key := range order {
		l := lists[key]
		if anyNonNil(l.values) {
			obj[key] = l.values
		}
		if anyNonNil(l.exts) {
			obj["_"+key] = l.exts
		}
	}
	return obj, nil
}

func primitive(v string, t *fhirpath.Type) any {
	switch t.Name {
	case "boolean":
		return v == "true"
	case "integer", "decimal", "positiveInt", "unsignedInt":
		return json.Number(strings.TrimSpace(v))
	}
	return v
}

func anyNonNil(list []any) bool {
	for _, v := range list {
		if v != nil {
			return true
		}
	}
	return false
}
