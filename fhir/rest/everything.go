package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/fhirhub/fhirhub/fhir"
	"github.com/fhirhub/fhirhub/smart"
	"github.com/labstack/echo/v4"
)

// everything answers Patient/[id]/$everything and Patient/$everything (GET,
// or POST with a Parameters or form body); see search.Engine.Everything.
func (s *Server) everything(c echo.Context) error {
	setInteraction(c, "operation-everything")
	if s.Search == nil {
		return fhir.NotSupported(http.StatusNotImplemented, "$everything is not supported by this server (it needs search)")
	}
	if typ := c.Param("type"); typ != "Patient" {
		return fhir.NotFound("$everything is defined on Patient, not on %s", typ)
	}
	params, err := s.operationParams(c)
	if err != nil {
		return err
	}
	id := c.Param("id")
	ctx := c.Request().Context()
	if err := s.permitEverything(ctx, id, params); err != nil {
		return err
	}
	out, err := s.Search.Everything(ctx, id, params, strictHandling(c.Request()), s.searchLimit(ctx, smart.PermRead))
	if err != nil {
		return err
	}
	path := "Patient/$everything"
	if id != "" {
		path = "Patient/" + id + "/$everything"
	}
	b, err := s.searchBundle(c, path, params, out)
	if err != nil {
		return err
	}
	return write(c, http.StatusOK, b)
}

// permitEverything checks $everything against the token: it reads the
// Patient (a patient outside the token's rules is 404, as for a read) and
// each type _type names; without _type it returns the compartment's types
// the token may read, and leaves the others out.
func (s *Server) permitEverything(ctx context.Context, id string, params url.Values) error {
	if s.guardFrom(ctx) == nil {
		return nil
	}
	if err := s.permit(ctx, "Patient", smart.PermRead, "$everything"); err != nil {
		return err
	}
	for _, v := range params["_type"] {
		for _, t := range strings.Split(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				if err := s.permit(ctx, t, smart.PermRead, "$everything"); err != nil {
					return err
				}
			}
		}
	}
	if id == "" || !fhir.ValidID(id) {
		return nil
	}
	r, err := s.Service.Store.Read(ctx, "Patient", id)
	if err != nil || r.Deleted() {
		return nil // $everything answers 404 itself
	}
	return s.mustSee(ctx, r, smart.PermRead, func() error { return fhir.NotFound("Patient/%s does not exist", id) })
}

// operationParams gathers an operation's parameters: the query string, plus
// on POST a form body or a Parameters resource whose parameters have
// primitive values (each becomes name=value, in the form of the query
// string, so paging links can carry them).
func (s *Server) operationParams(c echo.Context) (url.Values, error) {
	r := c.Request()
	if r.Method != http.MethodPost {
		return s.searchParams(c)
	}
	ct := r.Header.Get("Content-Type")
	mt, _, _ := mime.ParseMediaType(ct)
	if ct == "" || mt == "application/x-www-form-urlencoded" {
		return s.searchParams(c)
	}
	params := url.Values{}
	for k, v := range r.URL.Query() {
		params[k] = append(params[k], v...)
	}
	body, err := s.readBody(c)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return params, nil
	}
	ps, err := parseParameters(body)
	if err != nil {
		return nil, err
	}
	for i, p := range ps {
		v, ok := primitiveValue(p.values)
		if !ok {
			return nil, fhir.Invalid("Parameters.parameter["+itoa64(int64(i))+"]", "the parameter %q needs one primitive value[x]", p.name)
		}
		params[p.name] = append(params[p.name], v)
	}
	return params, nil
}

// parameter is one Parameters.parameter: its name and its value[x] (or
// resource, part) members as raw JSON.
type parameter struct {
	name   string
	values map[string]json.RawMessage
}

// parseParameters reads a Parameters resource.
func parseParameters(body []byte) ([]parameter, error) {
	var res struct {
		ResourceType string                       `json:"resourceType"`
		Parameter    []map[string]json.RawMessage `json:"parameter"`
	}
	if _, err := fhir.ParseDocument(body); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(body, &res); err != nil {
		return nil, fhir.Invalid("Parameters", "the body is not a Parameters resource: %v", err)
	}
	if res.ResourceType != "Parameters" {
		return nil, fhir.Invalid("resourceType", "the body must be a Parameters resource, not %s", res.ResourceType)
	}
	out := make([]parameter, 0, len(res.Parameter))
	for i, p := range res.Parameter {
		var name string
		if err := json.Unmarshal(p["name"], &name); err != nil || name == "" {
			return nil, fhir.Invalid("Parameters.parameter["+itoa64(int64(i))+"].name", "every parameter needs a name")
		}
		vals := map[string]json.RawMessage{}
		for k, v := range p {
			if k != "name" && k != "id" && k != "extension" && k != "modifierExtension" {
				vals[k] = v
			}
		}
		out = append(out, parameter{name: name, values: vals})
	}
	return out, nil
}

// primitiveValue returns the one primitive value[x] of a parameter as text.
func primitiveValue(vals map[string]json.RawMessage) (string, bool) {
	if len(vals) != 1 {
		return "", false
	}
	for k, raw := range vals {
		if len(k) < 6 || k[:5] != "value" {
			return "", false
		}
		var v any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if dec.Decode(&v) != nil {
			return "", false
		}
		switch x := v.(type) {
		case string:
			return x, true
		case json.Number:
			return x.String(), true
		case bool:
			if x {
				return "true", true
			}
			return "false", true
		}
	}
	return "", false
}
