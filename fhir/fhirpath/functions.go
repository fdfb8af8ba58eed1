package fhirpath

import (
	"fmt"
	"sort"
)

// function is a FHIRPath function: its arity and implementation. Arguments
// are passed unevaluated so that iterating functions (where, select, all,
// ...) can evaluate them once per item with $this set.
type function struct {
	minArgs, maxArgs int
	typeArg          bool // the argument is a type name (is, as, ofType)
	call             func(e *env, n *funcNode, input Collection) (Collection, error)
}

func (f *function) arity() string {
	switch {
	case f.minArgs == f.maxArgs && f.minArgs == 1:
		return "1 argument"
	case f.minArgs == f.maxArgs:
		return fmt.Sprintf("%d arguments", f.minArgs)
	}
	return fmt.Sprintf("%d to %d arguments", f.minArgs, f.maxArgs)
}

// maxRepeatItems bounds repeat(), whose projection may never stop giving
// new items (1.repeat($this + 1)).
const maxRepeatItems = 5000

// functions is filled in by init functions, by concern, in the function*.go
// files (a map literal here would make an initialization cycle).
var functions = map[string]*function{}

func register(name string, minArgs, maxArgs int, call func(e *env, n *funcNode, input Collection) (Collection, error)) {
	functions[name] = &function{minArgs: minArgs, maxArgs: maxArgs, call: call}
}

func (n *funcNode) eval(e *env, focus Collection) (Collection, error) {
	out, err := n.fn.call(e, n, focus)
	if err != nil {
		return nil, errAt(err, n.pos)
	}
	return out, nil
}

// arg evaluates argument i in the enclosing context ($this unchanged).
func (n *funcNode) arg(e *env, i int) (Collection, error) {
	if i >= len(n.args) {
		return nil, nil
	}
	return n.args[i].eval(e, e.this)
}

// argFor evaluates argument i with $this set to it.
func (n *funcNode) argFor(e *env, i int, it Item, index int) (Collection, error) {
	return n.args[i].eval(e.with(it, index), Collection{it})
}

// singleInput returns the only input item; ok is false when there is none.
func singleInput(input Collection) (Item, bool, error) { return singleton(input) }

func init() {
	// Existence.
	register("empty", 0, 0, func(_ *env, _ *funcNode, in Collection) (Collection, error) {
		return boolColl(len(in) == 0), nil
	})
	register("exists", 0, 1, func(e *env, n *funcNode, in Collection) (Collection, error) {
		if len(n.args) == 0 {
			return boolColl(len(in) > 0), nil
		}
		for i, it := range in {
			ok, err := n.test(e, it, i)
			if err != nil || ok {
				return boolColl(ok), err
			}
		}
		return falseItem, nil
	})
	register("all", 1, 1, func(e *env, n *funcNode, in Collection) (Collection, error) {
		for i, it := range in {
			ok, err := n.test(e, it, i)
			if err != nil || !ok {
				return boolColl(ok), err
			}
		}
		return trueItem, nil
	})
	for _, name := range []string{"allTrue", "anyTrue", "allFalse", "anyFalse"} {
		name := name
		register(name, 0, 0, func(_ *env, _ *funcNode, in Collection) (Collection, error) {
			want := name == "allTrue" || name == "anyTrue"
			all := name == "allTrue" || name == "allFalse"
			for _, it := range in {
				b, ok := it.system().(bool)
				if !ok {
					return nil, evalErr("%s() needs booleans, got %s", name, describe(it))
				}
				if all && b != want {
					return falseItem, nil
				}
				if !all && b == want {
					return trueItem, nil
				}
			}
			return boolColl(all), nil
		})
	}
	register("subsetOf", 1, 1, func(e *env, n *funcNode, in Collection) (Collection, error) {
		other, err := n.arg(e, 0)
		if err != nil {
			return nil, err
		}
		return boolColl(subset(in, other)), nil
	})
	register("supersetOf", 1, 1, func(e *env, n *funcNode, in Collection) (Collection, error) {
		other, err := n.arg(e, 0)
		if err != nil {
			return nil, err
		}
		return boolColl(subset(other, in)), nil
	})
	register("count", 0, 0, func(_ *env, _ *funcNode, in Collection) (Collection, error) {
		return Collection{sysItem(int64(len(in)))}, nil
	})
	register("distinct", 0, 0, func(_ *env, _ *funcNode, in Collection) (Collection, error) {
		return union(in, nil), nil
	})
	register("isDistinct", 0, 0, func(_ *env, _ *funcNode, in Collection) (Collection, error) {
		return boolColl(len(union(in, nil)) == len(in)), nil
	})

	// Filtering and projection.
	register("where", 1, 1, func(e *env, n *funcNode, in Collection) (Collection, error) {
		var out Collection
		for i, it := range in {
			ok, err := n.test(e, it, i)
			if err != nil {
				return nil, err
			}
			if ok {
				out = append(out, it)
			}
		}
		return out, nil
	})
	register("select", 1, 1, func(e *env, n *funcNode, in Collection) (Collection, error) {
		var out Collection
		for i, it := range in {
			c, err := n.argFor(e, 0, it, i)
			if err != nil {
				return nil, err
			}
			out = append(out, c...)
		}
		return out, nil
	})
	register("repeat", 1, 1, func(e *env, n *funcNode, in Collection) (Collection, error) {
		var out Collection
		queue := in
		for len(queue) > 0 {
			var next Collection
			for i, it := range queue {
				c, err := n.argFor(e, 0, it, i)
				if err != nil {
					return nil, err
				}
				for _, x := range c {
					if !containsItem(out, x) {
						if len(out) >= maxRepeatItems {
							return nil, evalErr("repeat() gave more than %d items", maxRepeatItems)
						}
						out = append(out, x)
						next = append(next, x)
					}
				}
			}
			queue = next
		}
		return out, nil
	})
	functions["ofType"] = &function{minArgs: 1, maxArgs: 1, typeArg: true, call: func(_ *env, n *funcNode, in Collection) (Collection, error) {
		var out Collection
		for _, it := range in {
			if asType(it, n.typ) {
				out = append(out, it)
			}
		}
		return out, nil
	}}
	functions["is"] = &function{minArgs: 1, maxArgs: 1, typeArg: true, call: func(_ *env, n *funcNode, in Collection) (Collection, error) {
		it, ok, err := singleInput(in)
		if !ok || err != nil {
			return nil, err
		}
		return boolColl(isType(it, n.typ)), nil
	}}
	functions["as"] = &function{minArgs: 1, maxArgs: 1, typeArg: true, call: func(_ *env, n *funcNode, in Collection) (Collection, error) {
		it, ok, err := singleInput(in)
		if !ok || err != nil {
			return nil, err
		}
		if asType(it, n.typ) {
			return in, nil
		}
		return nil, nil
	}}

	// Subsetting.
	register("single", 0, 0, func(_ *env, _ *funcNode, in Collection) (Collection, error) {
		if len(in) > 1 {
			return nil, evalErr("single() got %d items", len(in))
		}
		return in, nil
	})
	register("first", 0, 0, func(_ *env, _ *funcNode, in Collection) (Collection, error) {
		if len(in) == 0 {
			return nil, nil
		}
		return in[:1:1], nil
	})
	register("last", 0, 0, func(_ *env, _ *funcNode, in Collection) (Collection, error) {
		if len(in) == 0 {
			return nil, nil
		}
		return in[len(in)-1:], nil
	})
	register("tail", 0, 0, func(_ *env, _ *funcNode, in Collection) (Collection, error) {
		if len(in) <= 1 {
			return nil, nil
		}
		return in[1:], nil
	})
	register("skip", 1, 1, func(e *env, n *funcNode, in Collection) (Collection, error) {
		k, ok, err := n.intArg(e, 0)
		if err != nil || !ok {
			return nil, err
		}
		if k <= 0 {
			return in, nil
		}
		if k >= int64(len(in)) {
			return nil, nil
		}
		return in[k:], nil
	})
	register("take", 1, 1, func(e *env, n *funcNode, in Collection) (Collection, error) {
		k, ok, err := n.intArg(e, 0)
		if err != nil || !ok || k <= 0 {
			return nil, err
		}
		if k >= int64(len(in)) {
			return in, nil
		}
		return in[:k:k], nil
	})
	register("intersect", 1, 1, func(e *env, n *funcNode, in Collection) (Collection, error) {
		other, err := n.arg(e, 0)
		if err != nil {
			return nil, err
		}
		var out Collection
		for _, it := range in {
			if containsItem(other, it) && !containsItem(out, it) {
				out = append(out, it)
			}
		}
		return out, nil
	})
	register("exclude", 1, 1, func(e *env, n *funcNode, in Collection) (Collection, error) {
		other, err := n.arg(e, 0)
		if err != nil {
			return nil, err
		}
		var out Collection
		for _, it := range in {
			if !containsItem(other, it) {
				out = append(out, it)
			}
		}
		return out, nil
	})

	// Combining.
	register("union", 1, 1, func(e *env, n *funcNode, in Collection) (Collection, error) {
		other, err := n.arg(e, 0)
		if err != nil {
			return nil, err
		}
		return union(in, other), nil
	})
	register("combine", 1, 1, func(e *env, n *funcNode, in Collection) (Collection, error) {
		other, err := n.arg(e, 0)
		if err != nil {
			return nil, err
		}
		out := make(Collection, 0, len(in)+len(other))
		return append(append(out, in...), other...), nil
	})

	// Boolean.
	register("not", 0, 0, func(_ *env, _ *funcNode, in Collection) (Collection, error) {
		b, ok, err := singletonBool(in)
		if err != nil || !ok {
			return nil, err
		}
		return boolColl(!b), nil
	})
	register("iif", 2, 3, func(e *env, n *funcNode, in Collection) (Collection, error) {
		if len(in) > 1 {
			return nil, evalErr("iif() needs at most one input item, got %d", len(in))
		}
		sub := e
		focus := e.this
		if len(in) == 1 && !n.root {
			sub = e.with(in[0], 0)
			focus = in
		}
		crit, err := n.args[0].eval(sub, focus)
		if err != nil {
			return nil, err
		}
		it, ok, err := singleton(crit)
		if err != nil {
			return nil, err
		}
		b := false
		if ok {
			if b, ok = it.system().(bool); !ok {
				return nil, evalErr("iif() needs a boolean criterion, got %s", describe(it))
			}
		}
		switch {
		case b:
			return n.args[1].eval(sub, focus)
		case len(n.args) == 3:
			return n.args[2].eval(sub, focus)
		}
		return nil, nil
	})

	// Aggregation.
	register("aggregate", 1, 2, func(e *env, n *funcNode, in Collection) (Collection, error) {
		total, err := n.arg(e, 1)
		if err != nil {
			return nil, err
		}
		for i, it := range in {
			sub := e.with(it, i)
			sub.total = total
			sub.hasTotal = true
			if total, err = n.args[0].eval(sub, Collection{it}); err != nil {
				return nil, err
			}
		}
		return total, nil
	})
	register("sort", 0, -1, sortItems)
	functions["sort"].maxArgs = 8
}

// test evaluates argument 0 as a criterion for one item: true only when it
// gives true (or, by singleton evaluation, one non-boolean item).
func (n *funcNode) test(e *env, it Item, index int) (bool, error) {
	c, err := n.argFor(e, 0, it, index)
	if err != nil {
		return false, err
	}
	b, ok, err := singletonBool(c)
	return ok && b, err
}

func (n *funcNode) intArg(e *env, i int) (int64, bool, error) {
	c, err := n.arg(e, i)
	if err != nil {
		return 0, false, err
	}
	return singletonInt(c)
}

func (n *funcNode) stringArg(e *env, i int) (string, bool, error) {
	c, err := n.arg(e, i)
	if err != nil {
		return "", false, err
	}
	return singletonString(c)
}

func subset(a, b Collection) bool {
	for _, it := range a {
		if !containsItem(b, it) {
			return false
		}
	}
	return true
}

// sortItems sorts by the arguments' values (a leading - sorts descending),
// or by the items themselves.
func sortItems(e *env, n *funcNode, in Collection) (Collection, error) {
	type key struct {
		node node
		desc bool
	}
	var keys []key
	for _, a := range n.args {
		if u, ok := a.(*unaryNode); ok && u.op == "-" {
			keys = append(keys, key{u.operand, true})
		} else {
			keys = append(keys, key{a, false})
		}
	}
	vals := make([][]Item, len(in))
	for i, it := range in {
		for _, k := range keys {
			c, err := k.node.eval(e.with(it, i), Collection{it})
			if err != nil {
				return nil, err
			}
			v, _, err := singleton(c)
			if err != nil {
				return nil, err
			}
			vals[i] = append(vals[i], v)
		}
	}
	idx := make([]int, len(in))
	for i := range idx {
		idx[i] = i
	}
	var sortErr error
	sort.SliceStable(idx, func(x, y int) bool {
		a, b := idx[x], idx[y]
		if len(keys) == 0 {
			c, _, err := order(in[a], in[b])
			if err != nil {
				sortErr = err
			}
			return c < 0
		}
		for k := range keys {
			va, vb := vals[a][k], vals[b][k]
			if va.value == nil || vb.value == nil {
				if (va.value == nil) != (vb.value == nil) {
					return (va.value == nil) == keys[k].desc
				}
				continue
			}
			c, _, err := order(va, vb)
			if err != nil {
				sortErr = err
				return false
			}
			if c != 0 {
				return (c < 0) != keys[k].desc
			}
		}
		return false
	})
	if sortErr != nil {
		return nil, sortErr
	}
	out := make(Collection, len(in))
	for i, j := range idx {
		out[i] = in[j]
	}
	return out, nil
}
