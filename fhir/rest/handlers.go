package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/fhirhub/fhirhub/fhir"
	"github.com/fhirhub/fhirhub/smart"
	"github.com/labstack/echo/v4"
)

// Subsetter applies _summary and _elements to a decoded resource
// (conformance provides it from the StructureDefinitions).
type Subsetter interface {
	Summarize(typ string, res map[string]any, mode string) (map[string]any, error)
	SelectElements(typ string, res map[string]any, elements []string) (map[string]any, error)
}

func (s *Server) read(c echo.Context) error {
	setInteraction(c, "read")
	ctx, typ, id := c.Request().Context(), c.Param("type"), c.Param("id")
	if err := s.permit(ctx, typ, smart.PermRead, "read"); err != nil {
		return err
	}
	r, err := s.Service.Read(ctx, typ, id)
	if r.Version > 0 {
		// A resource outside the token's rules does not exist for it.
		if err := s.mustSee(ctx, r, smart.PermRead, func() error { return fhir.NotFound("%s/%s does not exist", typ, id) }); err != nil {
			return err
		}
	}
	if err != nil {
		if r.Deleted() {
			c.Response().Header().Set("ETag", etag(r.Version))
		}
		return err
	}
	if notModified(c.Request(), r) {
		h := c.Response().Header()
		h.Set("ETag", etag(r.Version))
		h.Set("Last-Modified", r.LastUpdated.UTC().Format(http.TimeFormat))
		return c.NoContent(http.StatusNotModified)
	}
	return s.renderResource(c, http.StatusOK, r)
}

func (s *Server) vread(c echo.Context) error {
	setInteraction(c, "vread")
	ctx, typ, id, vid := c.Request().Context(), c.Param("type"), c.Param("id"), c.Param("vid")
	if err := s.permit(ctx, typ, smart.PermRead, "vread"); err != nil {
		return err
	}
	r, err := s.Service.VRead(ctx, typ, id, vid)
	if r.Version > 0 {
		if err := s.mustSee(ctx, r, smart.PermRead, func() error { return fhir.NotFound("%s/%s has no version %d", typ, id, r.Version) }); err != nil {
			return err
		}
	}
	if err != nil {
		return err
	}
	if notModified(c.Request(), r) {
		c.Response().Header().Set("ETag", etag(r.Version))
		return c.NoContent(http.StatusNotModified)
	}
	return s.renderResource(c, http.StatusOK, r)
}

// notModified evaluates If-None-Match, then If-Modified-Since (RFC 9110 order).
func notModified(r *http.Request, res fhir.Resource) bool {
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		for _, tag := range strings.Split(inm, ",") {
			tag = strings.TrimSpace(tag)
			if tag == "*" {
				return true
			}
			if v, err := fhir.ParseIfMatch(tag); err == nil && v == res.Version {
				return true
			}
		}
		return false
	}
	if ims := r.Header.Get("If-Modified-Since"); ims != "" {
		if t, err := http.ParseTime(ims); err == nil {
			return !res.LastUpdated.Truncate(time.Second).After(t)
		}
	}
	return false
}

// renderResource writes a resource with its headers, applying _summary and _elements.
func (s *Server) renderResource(c echo.Context, status int, r fhir.Resource) error {
	h := c.Response().Header()
	h.Set("ETag", etag(r.Version))
	h.Set("Last-Modified", r.LastUpdated.UTC().Format(http.TimeFormat))
	body, err := s.subset(c, r)
	if err != nil {
		return err
	}
	return write(c, status, body)
}

func (s *Server) subset(c echo.Context, r fhir.Resource) ([]byte, error) {
	q := c.QueryParams()
	summary, elements := q.Get("_summary"), q.Get("_elements")
	if summary == "" && elements == "" {
		return r.JSON, nil
	}
	if summary == "count" {
		return nil, fhir.Invalid("_summary", "_summary=count applies to searches, not to reading one resource")
	}
	var names []string
	for _, e := range strings.Split(elements, ",") {
		if e = strings.TrimSpace(e); e != "" {
			names = append(names, e)
		}
	}
	return s.subsetWith(r, summary, names)
}

// subsetWith applies _summary and _elements to a stored resource.
func (s *Server) subsetWith(r fhir.Resource, summary string, names []string) ([]byte, error) {
	if summary == "false" && len(names) == 0 {
		return r.JSON, nil
	}
	if s.Subsetter == nil {
		return nil, fhir.NotSupported(http.StatusBadRequest, "_summary and _elements are not supported by this server")
	}
	doc, err := fhir.ParseDocument(r.JSON)
	if err != nil {
		return nil, fhir.Internal(err, "rest: stored %s is not valid JSON", r.Ref())
	}
	v := doc.Value
	if summary != "" && summary != "false" {
		if v, err = s.Subsetter.Summarize(r.Type, v, summary); err != nil {
			return nil, err
		}
	}
	if len(names) > 0 {
		if v, err = s.Subsetter.SelectElements(r.Type, v, names); err != nil {
			return nil, err
		}
	}
	return fhir.EncodeValue(v), nil
}

// ifMatch reads If-Match as a version; nil when absent.
func ifMatch(c echo.Context) (*int64, error) {
	h := c.Request().Header.Get("If-Match")
	if h == "" {
		return nil, nil
	}
	v, err := fhir.ParseIfMatch(strings.TrimSpace(h))
	if err != nil {
		return nil, err
	}
	return &v, nil
}

func (s *Server) create(c echo.Context) error {
	setInteraction(c, "create")
	ctx, typ := c.Request().Context(), c.Param("type")
	if err := s.permit(ctx, typ, smart.PermCreate, "create"); err != nil {
		return err
	}
	body, err := s.readBody(c)
	if err != nil {
		return err
	}
	res, err := s.Service.Create(ctx, typ, body, c.Request().Header.Get("If-None-Exist"))
	if err != nil {
		return err
	}
	status := http.StatusCreated
	if res.Existing {
		status = http.StatusOK
		if err := s.existingVisible(ctx, res.Resource, "If-None-Exist"); err != nil {
			return err
		}
	}
	return s.respondWrite(c, status, res.Resource, "created")
}

func (s *Server) update(c echo.Context) error {
	setInteraction(c, "update")
	typ, id := c.Param("type"), c.Param("id")
	if err := s.permit(c.Request().Context(), typ, smart.PermUpdate, "update"); err != nil {
		return err
	}
	return s.put(c, func(ctx context.Context, body []byte, im *int64) (fhir.WriteResult, error) {
		return s.Service.Update(ctx, typ, id, body, im)
	})
}

func (s *Server) conditionalUpdate(c echo.Context) error {
	setInteraction(c, "conditional-update")
	typ, criteria := c.Param("type"), c.Request().URL.RawQuery
	if err := s.permit(c.Request().Context(), typ, smart.PermUpdate, "conditional update"); err != nil {
		return err
	}
	return s.put(c, func(ctx context.Context, body []byte, im *int64) (fhir.WriteResult, error) {
		return s.Service.ConditionalUpdate(ctx, typ, criteria, body, im)
	})
}

// put reads the body and If-Match of an update, applies it and answers 200,
// or 201 when the update created the resource.
func (s *Server) put(c echo.Context, apply func(context.Context, []byte, *int64) (fhir.WriteResult, error)) error {
	body, err := s.readBody(c)
	if err != nil {
		return err
	}
	im, err := ifMatch(c)
	if err != nil {
		return err
	}
	res, err := apply(c.Request().Context(), body, im)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if res.Created {
		status = http.StatusCreated
	}
	return s.respondWrite(c, status, res.Resource, "updated")
}

// respondWrite answers a create or update: headers, then the body Prefer asks for.
func (s *Server) respondWrite(c echo.Context, status int, r fhir.Resource, verb string) error {
	h := c.Response().Header()
	h.Set("ETag", etag(r.Version))
	h.Set("Last-Modified", r.LastUpdated.UTC().Format(http.TimeFormat))
	h.Set("Location", s.base(c)+"/"+r.Type+"/"+r.ID+"/_history/"+r.VersionID())
	switch preferReturn(c.Request()) {
	case "minimal":
		return c.NoContent(status)
	case "OperationOutcome":
		return write(c, status, informational(r.Ref()+" "+verb+" (version "+r.VersionID()+")"))
	}
	return write(c, status, r.JSON)
}

func preferReturn(r *http.Request) string {
	for _, p := range r.Header.Values("Prefer") {
		for _, part := range strings.Split(p, ";") {
			part = strings.TrimSpace(part)
			if v, ok := strings.CutPrefix(part, "return="); ok {
				v = strings.Trim(v, `"`)
				if strings.EqualFold(v, "operationoutcome") {
					return "OperationOutcome"
				}
				return strings.ToLower(v)
			}
		}
	}
	return "representation"
}

func (s *Server) delete(c echo.Context) error {
	setInteraction(c, "delete")
	typ, id := c.Param("type"), c.Param("id")
	if err := s.permit(c.Request().Context(), typ, smart.PermDelete, "delete"); err != nil {
		return err
	}
	im, err := ifMatch(c)
	if err != nil {
		return err
	}
	r, err := s.Service.Delete(c.Request().Context(), typ, id, im)
	if err != nil {
		return err
	}
	return s.respondDelete(c, r, typ+"/"+id)
}

func (s *Server) conditionalDelete(c echo.Context) error {
	setInteraction(c, "conditional-delete")
	if err := s.permit(c.Request().Context(), c.Param("type"), smart.PermDelete, "conditional delete"); err != nil {
		return err
	}
	r, err := s.Service.ConditionalDelete(c.Request().Context(), c.Param("type"), c.Request().URL.RawQuery)
	if err != nil {
		return err
	}
	return s.respondDelete(c, r, "")
}

func (s *Server) respondDelete(c echo.Context, r fhir.Resource, ref string) error {
	msg := "nothing matched; nothing was deleted"
	if r.Version > 0 {
		c.Response().Header().Set("ETag", etag(r.Version))
		msg = r.Ref() + " deleted (version " + r.VersionID() + ")"
	} else if ref != "" {
		msg = ref + " does not exist; nothing was deleted"
	}
	if preferReturn(c.Request()) == "minimal" {
		return c.NoContent(http.StatusNoContent)
	}
	return write(c, http.StatusOK, informational(msg))
}

// encodeJSON marshals without HTML escaping.
func encodeJSON(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return bytes.TrimRight(buf.Bytes(), "\n")
}
