package fhirpath

// node is a compiled expression. eval evaluates it against focus, the
// collection it is invoked on (the input of a path step or function, or the
// context at the start of an expression).
type node interface {
	eval(e *env, focus Collection) (Collection, error)
}

// literalNode is a constant collection ({}, true, 'text', 5, @2020, 4 'mg').
type literalNode struct {
	value Collection
}

// identNode navigates to a child element, or, at the start of a path,
// matches the context's type name (Patient.name).
type identNode struct {
	name string
	root bool // first step of a path
	pos  int
}

// varNode is $this, $index or $total.
type varNode struct {
	name string
}

// constNode is an environment variable: %resource, %ucum, %`vs-name`, ...
type constNode struct {
	name string
	pos  int
}

// invokeNode evaluates right on the result of left (left.right).
type invokeNode struct {
	left, right node
}

// indexNode is left[index].
type indexNode struct {
	left, index node
}

// funcNode calls a function on its focus.
type funcNode struct {
	name string
	fn   *function
	args []node
	typ  *Type // the type argument of is(), as() and ofType()
	root bool  // called without an input (iif(...) rather than x.iif(...))
	pos  int
}

// unaryNode is +x or -x.
type unaryNode struct {
	op      string
	operand node
	pos     int
}

// binaryNode is an operator with two operands.
type binaryNode struct {
	op          string
	left, right node
	pos         int
}

// typeNode is "x is T" or "x as T".
type typeNode struct {
	op   string
	left node
	typ  *Type
	pos  int
}
