package fhirpath

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
)

// The suite's inputs are FHIR XML; most have a JSON twin among the official
// examples. For those that have none, xmlToJSON converts the XML, guided by
// the R4 model (cardinality, choice types, primitive types).

type xmlNode struct {
	name     string
	attrs    map[string]string
	children []*xmlNode
	xhtml    string // a narrative div, as XML text
}

const xhtmlNS = "http://www.w3.org/1999/xhtml"

func parseXMLTree(body []byte) (*xmlNode, error) {
	dec := xml.NewDecoder(bytes.NewReader(body))
	var stack []*xmlNode
	var root *xmlNode
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		switch el := tok.(type) {
		case xml.StartElement:
			n := &xmlNode{name: el.Name.Local, attrs: map[string]string{}}
			if el.Name.Space == xhtmlNS && el.Name.Local == "div" {
				var inner struct {
					Body string `xml:",innerxml"`
				}
				if err := dec.DecodeElement(&inner, &el); err != nil {
					return nil, err
				}
				n.xhtml = `<div xmlns="` + xhtmlNS + `">` + inner.Body + `</div>`
				stack[len(stack)-1].children = append(stack[len(stack)-1].children, n)
				continue
			}
			for _, a := range el.Attr {
				n.attrs[a.Name.Local] = a.Value
			}
			if len(stack) > 0 {
				stack[len(stack)-1].children = append(stack[len(stack)-1].children, n)
			} else {
				root = n
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		}
	}
	if root == nil {
		return nil, fmt.Errorf("no root element")
	}
	return root, nil
}

// xmlToJSON converts a FHIR XML resource into its JSON form, as decoded with
// UseNumber.
func xmlToJSON(body []byte) (map[string]any, error) {
	root, err := parseXMLTree(body)
	if err != nil {
		return nil, err
	}
	return xmlResource(root)
}

func xmlResource(n *xmlNode) (map[string]any, error) {
	t := fhirType(n.name)
	if t == nil || t.kind != kindResource {
		return nil, fmt.Errorf("%s is not a resource type", n.name)
	}
	obj, err := xmlObject(n, t)
	if err != nil {
		return nil, err
	}
	obj["resourceType"] = n.name
	return obj, nil
}

func xmlObject(n *xmlNode, t *Type) (map[string]any, error) {
	obj := map[string]any{}
	for _, a := range []string{"id", "url"} {
		if v, ok := n.attrs[a]; ok && t.elements[a] != nil {
			obj[a] = v
		}
	}
	type list struct{ values, exts []any }
	lists := map[string]*list{}
	var order []string
	for _, c := range n.children {
		el, key, ct := xmlElement(t, c.name)
		if el == nil {
			return nil, fmt.Errorf("%s has no element %s", t.Name, c.name)
		}
		var val, ext any
		switch {
		case ct.kind == kindResource:
			if len(c.children) != 1 {
				return nil, fmt.Errorf("%s.%s should hold one resource", t.Name, c.name)
			}
			r, err := xmlResource(c.children[0])
			if err != nil {
				return nil, err
			}
			val = r
		case ct.Name == "xhtml":
			val = c.xhtml
		case ct.kind == kindPrimitive:
			if v, ok := c.attrs["value"]; ok {
				val = xmlPrimitive(v, ct)
			}
			if len(c.children) > 0 || c.attrs["id"] != "" {
				m, err := xmlObject(c, fhirType("Element"))
				if err != nil {
					return nil, err
				}
				ext = m
			}
		default:
			m, err := xmlObject(c, ct)
			if err != nil {
				return nil, err
			}
			val = m
		}
		if !el.many {
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

// xmlElement finds the element an XML child name stands for, with its JSON
// key and type (valueQuantity is the value element, of type Quantity).
func xmlElement(t *Type, name string) (*element, string, *Type) {
	if el := t.elements[name]; el != nil && !el.choice {
		return el, name, el.types[0]
	}
	for _, el := range t.order {
		if !el.choice {
			continue
		}
		for i, k := range el.keys {
			if k == name {
				return el, k, el.types[i]
			}
		}
	}
	return nil, "", nil
}

func xmlPrimitive(v string, t *Type) any {
	switch t.sys {
	case typeBoolean:
		return v == "true"
	case typeInteger, typeDecimal:
		return json.Number(v)
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
