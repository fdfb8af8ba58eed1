package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/fhirhub/fhirhub/fhir"
	"github.com/fhirhub/fhirhub/smart"
	"github.com/labstack/echo/v4"
)

// metaRetries bounds the re-applications after a concurrent write.
const metaRetries = 10

// metaRead answers GET or POST [type]/[id]/$meta with the current meta.
func (s *Server) metaRead(c echo.Context) error {
	setInteraction(c, "operation-meta")
	ctx, typ, id := c.Request().Context(), c.Param("type"), c.Param("id")
	if err := s.permit(ctx, typ, smart.PermRead, "$meta"); err != nil {
		return err
	}
	r, err := s.Service.Read(ctx, typ, id)
	if r.Version > 0 {
		if err := s.mustSee(ctx, r, smart.PermRead, func() error { return fhir.NotFound("%s/%s does not exist", typ, id) }); err != nil {
			return err
		}
	}
	if err != nil {
		return err
	}
	meta, err := storedMeta(r)
	if err != nil {
		return err
	}
	return write(c, http.StatusOK, metaParameters(meta))
}

// metaAdd answers POST [type]/[id]/$meta-add.
func (s *Server) metaAdd(c echo.Context) error {
	setInteraction(c, "operation-meta-add")
	return s.metaChange(c, true)
}

// metaDelete answers POST [type]/[id]/$meta-delete.
func (s *Server) metaDelete(c echo.Context) error {
	setInteraction(c, "operation-meta-delete")
	return s.metaChange(c, false)
}

func (s *Server) metaChange(c echo.Context, add bool) error {
	op := "$meta-delete"
	if add {
		op = "$meta-add"
	}
	if err := s.permit(c.Request().Context(), c.Param("type"), smart.PermUpdate, op); err != nil {
		return err
	}
	body, err := s.readBody(c)
	if err != nil {
		return err
	}
	change, err := metaParameter(body)
	if err != nil {
		return err
	}
	typ, id := c.Param("type"), c.Param("id")
	meta, err := s.changeMeta(c.Request().Context(), typ, id, change, add)
	if err != nil {
		return err
	}
	return write(c, http.StatusOK, metaParameters(meta))
}

// changeMeta applies a $meta-add (add) or $meta-delete to the current
// version of typ/id and returns the resulting meta
// (http://hl7.org/fhir/OperationDefinition/Resource-meta-add, -meta-delete).
//
// R4 says $meta-add and $meta-delete change meta without making a version.
// The store here is append-only, and history, the change feed and
// subscriptions all follow versions, so a change is stored as a new version
// through fhir.Service.Update: the current JSON with only meta changed. A
// call that changes nothing (every tag already there, or none of them
// there) stores nothing. The version read is passed as If-Match, so a
// concurrent write is never lost; the change is re-applied to the newer
// version a few times before giving up with 412.
func (s *Server) changeMeta(ctx context.Context, typ, id string, change map[string]any, add bool) (map[string]any, error) {
	for attempt := 0; ; attempt++ {
		cur, err := s.Service.Read(ctx, typ, id)
		if err != nil {
			return nil, err
		}
		doc, err := fhir.ParseDocument(cur.JSON)
		if err != nil {
			return nil, fhir.Internal(err, "rest: stored %s is not valid JSON", cur.Ref())
		}
		meta, changed := editMeta(doc.Meta(), change, add)
		if !changed {
			return doc.Meta(), nil
		}
		doc.Value["meta"] = meta
		// Encode keeps every other member as stored, in its order.
		next := doc.Encode(cur.ID, cur.VersionID(), fhir.FormatInstant(cur.LastUpdated))
		res, err := s.Service.Update(ctx, typ, id, next, &cur.Version)
		if err == nil {
			return storedMeta(res.Resource)
		}
		if fhir.ErrorStatus(err) != http.StatusPreconditionFailed || attempt >= metaRetries {
			return nil, err
		}
		// Another write came first: wait a little, then apply to it.
		d := time.Duration(1<<min(attempt, 5)) * time.Millisecond
		t := time.NewTimer(d/2 + rand.N(d))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// storedMeta returns the meta of a stored resource.
func storedMeta(r fhir.Resource) (map[string]any, error) {
	doc, err := fhir.ParseDocument(r.JSON)
	if err != nil {
		return nil, fhir.Internal(err, "rest: stored %s is not valid JSON", r.Ref())
	}
	return doc.Meta(), nil
}

// metaParameters renders the operations' output: Parameters with "return".
func metaParameters(meta map[string]any) []byte {
	if meta == nil {
		meta = map[string]any{}
	}
	return encodeJSON(map[string]any{"resourceType": "Parameters",
		"parameter": []any{map[string]any{"name": "return", "valueMeta": meta}}})
}

// metaParameter reads the "meta" parameter (a Meta) of a $meta-add or
// $meta-delete body and checks its profile, tag and security elements.
func metaParameter(body []byte) (map[string]any, error) {
	ps, err := parseParameters(body)
	if err != nil {
		return nil, err
	}
	var raw json.RawMessage
	for _, p := range ps {
		if p.name != "meta" {
			continue
		}
		if raw != nil {
			return nil, fhir.Invalid("meta", "the parameter \"meta\" appears more than once")
		}
		v, ok := p.values["valueMeta"]
		if !ok || len(p.values) != 1 {
			return nil, fhir.Invalid("meta", "the parameter \"meta\" needs a valueMeta")
		}
		raw = v
	}
	if raw == nil {
		return nil, fhir.Invalid("meta", "the Parameters have no \"meta\" parameter (a valueMeta with the profiles, tags and security labels)")
	}
	var meta map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // exact decimals in extensions
	if err := dec.Decode(&meta); err != nil || meta == nil {
		return nil, fhir.Invalid("meta", "valueMeta must be an object")
	}
	if v, ok := meta["profile"]; ok {
		list, ok := v.([]any)
		if !ok {
			return nil, fhir.Invalid("meta.profile", "meta.profile must be an array of canonical URLs")
		}
		for _, p := range list {
			if s, ok := p.(string); !ok || s == "" {
				return nil, fhir.Invalid("meta.profile", "meta.profile must be an array of canonical URLs")
			}
		}
	}
	for _, k := range []string{"tag", "security"} {
		v, ok := meta[k]
		if !ok {
			continue
		}
		list, ok := v.([]any)
		if !ok {
			return nil, fhir.Invalid("meta."+k, "meta.%s must be an array of Codings", k)
		}
		for i, x := range list {
			c, ok := x.(map[string]any)
			sys, _ := c["system"].(string)
			code, _ := c["code"].(string)
			if !ok || (sys == "" && code == "") {
				return nil, fhir.Invalid("meta."+k+"["+itoa64(int64(i))+"]", "meta.%s[%d] must be a Coding with a system or a code", k, i)
			}
		}
	}
	return meta, nil
}

// editMeta returns meta with the profiles, tags and security labels of
// change added (add) or removed, and whether anything changed. Codings are
// the same when system and code are (version and display are ignored);
// profiles when the URL is. meta is not modified.
func editMeta(meta, change map[string]any, add bool) (map[string]any, bool) {
	out := make(map[string]any, len(meta)+3)
	for k, v := range meta {
		out[k] = v
	}
	changed := false
	for _, k := range []string{"profile", "tag", "security"} {
		items, _ := change[k].([]any)
		if len(items) == 0 {
			continue
		}
		have, _ := meta[k].([]any)
		key := func(x any) string {
			if s, ok := x.(string); ok {
				return s
			}
			c, _ := x.(map[string]any)
			sys, _ := c["system"].(string)
			code, _ := c["code"].(string)
			return sys + "|" + code
		}
		var list []any
		if add {
			seen := map[string]bool{}
			list = append(list, have...)
			for _, x := range have {
				seen[key(x)] = true
			}
			for _, x := range items {
				if !seen[key(x)] {
					seen[key(x)] = true
					list = append(list, x)
					changed = true
				}
			}
		} else {
			drop := map[string]bool{}
			for _, x := range items {
				drop[key(x)] = true
			}
			for _, x := range have {
				if drop[key(x)] {
					changed = true
				} else {
					list = append(list, x)
				}
			}
		}
		if len(list) == 0 {
			delete(out, k) // FHIR JSON has no empty arrays
		} else {
			out[k] = list
		}
	}
	return out, changed
}
