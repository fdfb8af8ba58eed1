package rest

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/fhirhub/fhirhub/fhir"
	"github.com/fhirhub/fhirhub/fhir/search"
	"github.com/fhirhub/fhirhub/smart"
	"github.com/labstack/echo/v4"
)

// searchParams gathers a search's parameters: the query string, plus the
// form body of a POST …/_search.
func (s *Server) searchParams(c echo.Context) (url.Values, error) {
	params := url.Values{}
	for k, v := range c.Request().URL.Query() {
		params[k] = append(params[k], v...)
	}
	if c.Request().Method == http.MethodPost {
		ct := c.Request().Header.Get("Content-Type")
		if ct != "" && !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
			return nil, fhir.NotSupported(http.StatusUnsupportedMediaType, "a POST search takes an application/x-www-form-urlencoded body, not %s", ct)
		}
		body, err := s.readRawBody(c)
		if err != nil {
			return nil, err
		}
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, fhir.Invalid("", "the search body is not a valid form: %v", err)
		}
		for k, v := range form {
			params[k] = append(params[k], v...)
		}
	}
	return params, nil
}

// strictHandling reads Prefer: handling=strict|lenient (lenient by default).
func strictHandling(r *http.Request) bool {
	for _, p := range r.Header.Values("Prefer") {
		for _, part := range strings.Split(p, ";") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(part), "handling="); ok {
				return strings.EqualFold(strings.Trim(v, `"`), "strict")
			}
		}
	}
	return false
}

func (s *Server) searchType(c echo.Context) error {
	setInteraction(c, "search-type")
	typ := c.Param("type")
	if s.Service.Validator != nil && !s.Service.Validator.KnownType(typ) {
		return fhir.NotFound("unknown resource type %q", typ)
	}
	return s.runSearch(c, typ)
}

func (s *Server) searchSystem(c echo.Context) error {
	setInteraction(c, "search-system")
	return s.runSearch(c, "")
}

// searchCompartment answers GET /fhir/Patient/123/Observation.
func (s *Server) searchCompartment(c echo.Context) error {
	setInteraction(c, "search-compartment")
	if s.Search == nil {
		return fhir.NotSupported(http.StatusNotImplemented, "search is not supported by this server")
	}
	compType, compID, typ := c.Param("type"), c.Param("id"), c.Param("rtype")
	if s.Service.Validator != nil && !s.Service.Validator.KnownType(typ) {
		return fhir.NotFound("unknown resource type %q", typ)
	}
	ctx := c.Request().Context()
	if err := s.permit(ctx, typ, smart.PermSearch, "search"); err != nil {
		return err
	}
	params, err := s.searchParams(c)
	if err != nil {
		return err
	}
	q, err := s.Search.CompartmentQuery(compType, compID, typ, params, strictHandling(c.Request()))
	if err != nil {
		return err
	}
	q.Limit = s.searchLimit(ctx, smart.PermSearch)
	out, err := s.Search.Run(ctx, q)
	if err != nil {
		return err
	}
	b, err := s.searchBundle(c, compType+"/"+compID+"/"+typ, params, out)
	if err != nil {
		return err
	}
	return write(c, http.StatusOK, b)
}

func (s *Server) runSearch(c echo.Context, typ string) error {
	if s.Search == nil {
		return fhir.NotSupported(http.StatusNotImplemented, "search is not supported by this server")
	}
	params, err := s.searchParams(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	q, err := s.Search.Registry.Parse(typ, params, strictHandling(c.Request()))
	if err != nil {
		return err
	}
	if err := s.permitSearch(ctx, q); err != nil {
		return err
	}
	q.Limit = s.searchLimit(ctx, smart.PermSearch)
	out, err := s.Search.Run(ctx, q)
	if err != nil {
		return err
	}
	b, err := s.searchBundle(c, typ, params, out)
	if err != nil {
		return err
	}
	return write(c, http.StatusOK, b)
}

// permitSearch checks that the token may search the type of q, or each
// type of a system search's _type, or (without _type) some type at all; a
// system search then returns the types the token may search.
func (s *Server) permitSearch(ctx context.Context, q *search.Query) error {
	if q.Type != "" {
		return s.permit(ctx, q.Type, smart.PermSearch, "search")
	}
	for _, t := range q.Types {
		if err := s.permit(ctx, t, smart.PermSearch, "search"); err != nil {
			return err
		}
	}
	g := s.guardFrom(ctx)
	if g == nil || len(q.Types) > 0 {
		return nil
	}
	for _, t := range s.Search.Registry.Types() {
		r, err := g.restrict(ctx, t, smart.PermSearch)
		if err != nil || r.ok {
			return err
		}
	}
	return fhir.Forbidden("a search of all types needs a scope granting search (s) on some type; the token grants none")
}

// searchBundle renders a searchset Bundle; resources are copied in as
// stored unless _summary or _elements subset them.
func (s *Server) searchBundle(c echo.Context, typ string, params url.Values, out *search.Outcome) ([]byte, error) {
	base := s.base(c)
	// The self link shows the parameters that were used: not the ignored ones.
	used := url.Values{}
	ignored := map[string]bool{}
	for _, is := range out.Warnings {
		if len(is.Expression) > 0 {
			ignored[is.Expression[0]] = true
		}
	}
	for k, v := range params {
		if !ignored[k] && k != "_cursor" && k != "_format" && k != "_pretty" {
			used[k] = v
		}
	}
	path := base
	if typ != "" {
		path += "/" + typ
	}
	link := func(extra string) string {
		q := used.Encode()
		if extra != "" {
			if q != "" {
				q += "&"
			}
			q += "_cursor=" + url.QueryEscape(extra)
		}
		if q == "" {
			return path
		}
		return path + "?" + q
	}
	var buf bytes.Buffer
	buf.WriteString(`{"resourceType":"Bundle","id":"`)
	buf.WriteString(fhir.NewUUID())
	buf.WriteString(`","meta":{"lastUpdated":"`)
	buf.WriteString(fhir.FormatInstant(time.Now()))
	buf.WriteString(`"},"type":"searchset"`)
	if out.Total >= 0 {
		buf.WriteString(`,"total":`)
		buf.WriteString(itoa64(out.Total))
	}
	buf.WriteString(`,"link":[`)
	writeLink := func(rel, u string) {
		buf.Write(encodeJSON(map[string]string{"relation": rel, "url": u}))
	}
	self := link("")
	if cur := params.Get("_cursor"); cur != "" {
		self = link(cur)
	}
	writeLink("self", self)
	buf.WriteByte(',')
	writeLink("first", link(""))
	if out.Next != "" {
		buf.WriteByte(',')
		writeLink("next", link(out.Next))
	}
	if out.Prev != "" {
		buf.WriteByte(',')
		writeLink("previous", link(out.Prev))
	}
	buf.WriteString(`],"entry":[`)
	n := 0
	entry := func(r fhir.Resource, mode string) error {
		body := r.JSON
		if out.Query.Summary != "" || len(out.Query.Elements) > 0 {
			var err error
			if body, err = s.subsetWith(r, out.Query.Summary, out.Query.Elements); err != nil {
				return err
			}
		}
		if n > 0 {
			buf.WriteByte(',')
		}
		n++
		buf.WriteString(`{"fullUrl":`)
		buf.Write(encodeJSON(base + "/" + r.Type + "/" + r.ID))
		buf.WriteString(`,"resource":`)
		buf.Write(body)
		buf.WriteString(`,"search":{"mode":"` + mode + `"}}`)
		return nil
	}
	if out.Query.Summary != "count" {
		for _, r := range out.Matches {
			if err := entry(r, "match"); err != nil {
				return nil, err
			}
		}
		for _, r := range out.Included {
			if err := entry(r, "include"); err != nil {
				return nil, err
			}
		}
	}
	if len(out.Warnings) > 0 {
		if n > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString(`{"resource":`)
		buf.Write(outcomeJSON(out.Warnings))
		buf.WriteString(`,"search":{"mode":"outcome"}}`)
	}
	buf.WriteString(`]}`)
	return buf.Bytes(), nil
}

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }
