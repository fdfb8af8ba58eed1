package rest

import (
	"bytes"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/fhirhub/fhirhub/fhir"
	"github.com/labstack/echo/v4"
)

// cursorParam carries the paging position of history pages: the feed position
// of the last entry shown, so later pages do not shift while writes happen.
const cursorParam = "_cursor"

func (s *Server) history(interaction string) echo.HandlerFunc {
	return func(c echo.Context) error {
		setInteraction(c, interaction)
		q, err := s.parseHistory(c)
		if err != nil {
			return err
		}
		want := q.Count
		q.Count = want + 1 // one more tells whether there is a next page
		chs, err := s.Service.History(c.Request().Context(), q)
		if err != nil {
			return err
		}
		more := len(chs) > want
		if more {
			chs = chs[:want]
		}
		return write(c, http.StatusOK, s.historyBundle(c, chs, more))
	}
}

func (s *Server) parseHistory(c echo.Context) (fhir.HistoryQuery, error) {
	q := fhir.HistoryQuery{Type: c.Param("type"), ID: c.Param("id"), Count: s.DefaultCount}
	params := c.QueryParams()
	if v := params.Get("_count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return q, fhir.Invalid("_count", "_count=%s is not a non-negative whole number", v)
		}
		if n > s.MaxCount {
			n = s.MaxCount
		}
		q.Count = n
	}
	if v := params.Get("_since"); v != "" {
		start, _, err := fhir.DateRange(v)
		if err != nil {
			return q, fhir.Invalid("_since", "_since=%s: %s", v, fhir.AsError(err).Issues[0].Diagnostics)
		}
		q.Since = start
	}
	if v := params.Get("_at"); v != "" {
		start, end, err := fhir.DateRange(v)
		if err != nil {
			return q, fhir.Invalid("_at", "_at=%s: %s", v, fhir.AsError(err).Issues[0].Diagnostics)
		}
		q.AtStart, q.AtEnd = start, end.Add(-time.Nanosecond)
	}
	if v := params.Get(cursorParam); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return q, fhir.Invalid(cursorParam, "%s=%s is not a page position this server made", cursorParam, v)
		}
		q.Before = n
	}
	return q, nil
}

// historyBundle renders a history Bundle; resources are copied in as stored.
func (s *Server) historyBundle(c echo.Context, chs []fhir.Change, more bool) []byte {
	base := s.base(c)
	var buf bytes.Buffer
	buf.WriteString(`{"resourceType":"Bundle","id":"`)
	buf.WriteString(fhir.NewUUID())
	buf.WriteString(`","meta":{"lastUpdated":"`)
	buf.WriteString(fhir.FormatInstant(time.Now()))
	buf.WriteString(`"},"type":"history","link":[`)
	link := func(rel string, u string) {
		buf.Write(encodeJSON(map[string]string{"relation": rel, "url": u}))
	}
	self := s.pageURL(c, base, -1)
	link("self", self)
	buf.WriteByte(',')
	link("first", s.pageURL(c, base, 0))
	if more && len(chs) > 0 {
		buf.WriteByte(',')
		link("next", s.pageURL(c, base, chs[len(chs)-1].Seq))
	}
	buf.WriteString(`],"entry":[`)
	for i, ch := range chs {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString(`{"fullUrl":`)
		buf.Write(encodeJSON(base + "/" + ch.Type + "/" + ch.ID))
		if ch.JSON != nil {
			buf.WriteString(`,"resource":`)
			buf.Write(ch.JSON)
		}
		method, reqURL, status := "PUT", ch.Type+"/"+ch.ID, "200 OK"
		switch ch.Op {
		case fhir.OpCreate:
			method, reqURL, status = "POST", ch.Type, "201 Created"
		case fhir.OpDelete:
			method, status = "DELETE", "204 No Content"
		}
		buf.WriteString(`,"request":`)
		buf.Write(encodeJSON(map[string]string{"method": method, "url": reqURL}))
		buf.WriteString(`,"response":`)
		buf.Write(encodeJSON(map[string]string{"status": status, "etag": etag(ch.Version), "lastModified": fhir.FormatInstant(ch.LastUpdated)}))
		buf.WriteByte('}')
	}
	buf.WriteString(`]}`)
	return buf.Bytes()
}

// pageURL rebuilds the request URL on the base with the cursor set (cursor
// 0: no cursor; -1: as requested).
func (s *Server) pageURL(c echo.Context, base string, cursor int64) string {
	r := c.Request()
	q := url.Values{}
	for k, v := range r.URL.Query() {
		q[k] = v
	}
	switch {
	case cursor == 0:
		q.Del(cursorParam)
	case cursor > 0:
		q.Set(cursorParam, strconv.FormatInt(cursor, 10))
	}
	path := r.URL.Path
	if len(path) >= len(BasePath) {
		path = path[len(BasePath):]
	}
	u := base + path
	if enc := q.Encode(); enc != "" {
		u += "?" + enc
	}
	return u
}
