package fhirpath

import "fmt"

// checkPaths looks, at compile time, at each path that starts with a
// resource type (Observation.value.unit) and reports an element the R4 model
// does not have (Observation.valueQuantity: choice elements are named
// without their type). It follows a path while each step has one known type.
func checkPaths(n node) error {
	switch x := n.(type) {
	case *invokeNode:
		if err := checkChain(x); err != nil {
			return err
		}
		if err := checkPaths(x.left); err != nil {
			return err
		}
		return checkPaths(x.right)
	case *indexNode:
		if err := checkPaths(x.left); err != nil {
			return err
		}
		return checkPaths(x.index)
	case *funcNode:
		for _, a := range x.args {
			if err := checkPaths(a); err != nil {
				return err
			}
		}
	case *unaryNode:
		return checkPaths(x.operand)
	case *binaryNode:
		if err := checkPaths(x.left); err != nil {
			return err
		}
		return checkPaths(x.right)
	case *typeNode:
		return checkPaths(x.left)
	}
	return nil
}

// typePreserving lists the functions whose result has the type of their
// input, so that a path can be followed through them.
var typePreserving = map[string]bool{
	"where": true, "first": true, "last": true, "single": true, "tail": true,
	"skip": true, "take": true, "distinct": true, "trace": true,
}

// checkChain checks the steps of a path that starts with a resource type
// (Observation.value) or a cast ((value as Quantity).unit).
func checkChain(n *invokeNode) error {
	var steps []node
	var cur node = n
	for {
		inv, ok := cur.(*invokeNode)
		if !ok {
			break
		}
		steps = append(steps, inv.right)
		cur = inv.left
	}
	var t *Type
	switch first := cur.(type) {
	case *identNode:
		if !first.root {
			return nil
		}
		if t = fhirType(first.name); t == nil || t.kind != kindResource {
			return nil
		}
	case *typeNode:
		if first.op != "as" || first.typ.Namespace != "FHIR" {
			return nil
		}
		t = first.typ
	default:
		return nil
	}
	for i := len(steps) - 1; i >= 0; i-- {
		switch step := steps[i].(type) {
		case *identNode:
			if t.elements == nil {
				return nil
			}
			el := t.elements[step.name]
			if el == nil {
				return syntaxErr(step.pos, "%s", fmt.Sprintf("%s has no element %q", t.Name, step.name))
			}
			if len(el.types) != 1 || el.types[0].kind == kindResource {
				return nil
			}
			t = el.types[0]
		case *funcNode:
			switch {
			case (step.name == "as" || step.name == "ofType") && step.typ.Namespace == "FHIR":
				t = step.typ
			case !typePreserving[step.name]:
				return nil
			}
		default:
			return nil
		}
	}
	return nil
}
