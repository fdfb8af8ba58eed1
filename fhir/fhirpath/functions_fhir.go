package fhirpath

import (
	"sort"
	"strings"
	"time"
)

func init() {
	register("extension", 1, 1, func(e *env, n *funcNode, in Collection) (Collection, error) {
		url, ok, err := n.stringArg(e, 0)
		if !ok || err != nil {
			return nil, err
		}
		ext := fhirType("Extension")
		var out Collection
		for _, it := range in {
			holder, ok := it.value.(map[string]any)
			if !ok {
				if holder = it.primitiveElement(); holder == nil {
					continue
				}
			}
			list, _ := holder["extension"].([]any)
			for i, x := range list {
				m, ok := x.(map[string]any)
				if ok && m["url"] == url {
					out = append(out, Item{value: m, typ: ext, parent: holder, key: "extension", index: i})
				}
			}
		}
		return out, nil
	})
	register("hasValue", 0, 0, func(_ *env, _ *funcNode, in Collection) (Collection, error) {
		if len(in) != 1 {
			return falseItem, nil
		}
		it := in[0]
		return boolColl(it.typ != nil && it.typ.kind == kindPrimitive && it.value != nil), nil
	})
	register("getValue", 0, 0, func(_ *env, _ *funcNode, in Collection) (Collection, error) {
		if len(in) != 1 || in[0].typ == nil || in[0].typ.kind != kindPrimitive {
			return nil, nil
		}
		v := in[0].system()
		if v == nil {
			return nil, nil
		}
		return Collection{sysItem(v)}, nil
	})
	register("resolve", 0, 0, resolve)
	register("memberOf", 1, 1, func(e *env, n *funcNode, in Collection) (Collection, error) {
		if e.opts.MemberOf == nil {
			return nil, nil
		}
		vs, ok, err := n.stringArg(e, 0)
		if !ok || err != nil {
			return nil, err
		}
		it, ok, err := singleton(in)
		if !ok || err != nil {
			return nil, err
		}
		member, err := e.opts.MemberOf(it, vs)
		if err != nil {
			return nil, err
		}
		return boolColl(member), nil
	})
	register("conformsTo", 1, 1, func(e *env, n *funcNode, in Collection) (Collection, error) {
		url, ok, err := n.stringArg(e, 0)
		if !ok || err != nil {
			return nil, err
		}
		it, ok, err := singleton(in)
		if !ok || err != nil {
			return nil, err
		}
		const core = "http://hl7.org/fhir/StructureDefinition/"
		if !strings.HasPrefix(url, core) || fhirType(url[len(core):]) == nil {
			return nil, evalErr("conformsTo(): the profile %s is not known", url)
		}
		return boolColl(isType(it, fhirType(url[len(core):]))), nil
	})
	register("htmlChecks", 0, 0, func(_ *env, _ *funcNode, in Collection) (Collection, error) {
		return trueItem, nil
	})
	register("trace", 1, 2, func(e *env, n *funcNode, in Collection) (Collection, error) {
		if e.opts.Trace == nil {
			return in, nil
		}
		name, _, err := n.stringArg(e, 0)
		if err != nil {
			return nil, err
		}
		values := in
		if len(n.args) == 2 {
			values = nil
			for i, it := range in {
				c, err := n.argFor(e, 1, it, i)
				if err != nil {
					return nil, err
				}
				values = append(values, c...)
			}
		}
		e.opts.Trace(name, values)
		return in, nil
	})
	register("type", 0, 0, func(_ *env, _ *funcNode, in Collection) (Collection, error) {
		out := make(Collection, 0, len(in))
		for _, it := range in {
			if it.typ == nil {
				continue
			}
			out = append(out, newItem(map[string]any{"namespace": it.typ.Namespace, "name": it.typ.Name}, typeTypeInfo))
		}
		return out, nil
	})
	register("children", 0, 0, func(_ *env, _ *funcNode, in Collection) (Collection, error) {
		var out Collection
		for _, it := range in {
			out = children(out, it)
		}
		return out, nil
	})
	register("descendants", 0, 0, func(_ *env, _ *funcNode, in Collection) (Collection, error) {
		var out Collection
		queue := in
		for len(queue) > 0 {
			start := len(out)
			for _, it := range queue {
				out = children(out, it)
			}
			queue = out[start:]
		}
		return out, nil
	})
	register("now", 0, 0, func(e *env, _ *funcNode, _ Collection) (Collection, error) {
		return Collection{sysItem(nowDateTime(e.clock()))}, nil
	})
	register("today", 0, 0, func(e *env, _ *funcNode, _ Collection) (Collection, error) {
		d := nowDateTime(e.clock())
		d.kind, d.Precision, d.HasZone = kindDate, PrecisionDay, false
		return Collection{sysItem(d)}, nil
	})
	register("timeOfDay", 0, 0, func(e *env, _ *funcNode, _ Collection) (Collection, error) {
		d := nowDateTime(e.clock())
		d.kind, d.HasZone = kindTime, false
		return Collection{sysItem(d)}, nil
	})
}

// clock returns the evaluation's time: Options.Now, else the first call's
// time (now() is the same throughout one evaluation).
func (e *env) clock() time.Time {
	if e.now.IsZero() {
		e.now = time.Now()
	}
	return e.now
}

// children appends the child elements of it, in the model's order.
func children(out Collection, it Item) Collection {
	m, ok := it.value.(map[string]any)
	if !ok {
		return out
	}
	t := it.typ
	if t == nil || t.elements == nil {
		keys := make([]string, 0, len(m))
		for k := range m {
			if k != "resourceType" && !strings.HasPrefix(k, "_") {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			out = appendJSON(out, m, k, m[k], nil)
		}
		return out
	}
	for _, el := range t.order {
		out, _ = navigate(out, it, el.name)
	}
	return out
}

// resolve follows references: through Options.Resolver when set, else to a
// contained resource ("#id") or a stub {resourceType, id} for "Type/id".
func resolve(e *env, _ *funcNode, in Collection) (Collection, error) {
	var out Collection
	for _, it := range in {
		var ref string
		switch v := it.value.(type) {
		case map[string]any:
			ref, _ = v["reference"].(string)
		case string:
			ref = v
		}
		if ref == "" {
			continue
		}
		if e.opts.Resolver != nil {
			if r, ok := e.opts.Resolver(ref); ok {
				out = append(out, toCollection(r)...)
			}
			continue
		}
		if strings.HasPrefix(ref, "#") {
			out = append(out, containedResource(e.resource, ref[1:])...)
			continue
		}
		if typ, id, ok := referenceTarget(ref); ok {
			stub := map[string]any{"resourceType": typ.Name, "id": id}
			out = append(out, newItem(stub, typ))
		}
	}
	return out, nil
}

func containedResource(resource Collection, id string) Collection {
	for _, r := range resource {
		m, ok := r.value.(map[string]any)
		if !ok {
			continue
		}
		list, _ := m["contained"].([]any)
		for i, c := range list {
			cm, ok := c.(map[string]any)
			if ok && cm["id"] == id {
				return Collection{{value: cm, typ: resourceTypeOf(cm), parent: m, key: "contained", index: i}}
			}
		}
	}
	return nil
}

// referenceTarget reads the type and id of a relative or absolute literal
// reference: Patient/1, http://x/fhir/Patient/1/_history/2.
func referenceTarget(ref string) (*Type, string, bool) {
	if i := strings.IndexAny(ref, "?#"); i >= 0 {
		ref = ref[:i]
	}
	parts := strings.Split(ref, "/")
	if n := len(parts); n >= 4 && parts[n-2] == "_history" {
		parts = parts[:n-2]
	}
	n := len(parts)
	if n < 2 || parts[n-1] == "" {
		return nil, "", false
	}
	t := fhirType(parts[n-2])
	if t == nil || t.kind != kindResource {
		return nil, "", false
	}
	return t, parts[n-1], true
}
