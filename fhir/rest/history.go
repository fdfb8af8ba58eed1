package rest

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/fhirhub/fhirhub/fhir"
	"github.com/fhirhub/fhirhub/smart"
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
		ctx := c.Request().Context()
		if err := s.permitHistory(ctx, q); err != nil {
			return err
		}
		want := q.Count
		q.Count = want + 1 // one more tells whether there is a next page
		chs, err := s.Service.History(ctx, q)
		if err != nil {
			return err
		}
		var next int64 // the position after this page; 0 when it is the last
		if len(chs) > want {
			chs = chs[:want]
			if want > 0 {
				next = chs[want-1].Seq
			}
		}
		// The versions outside the token's rules are left out: the page
		// may hold fewer than _count, and its next link continues after
		// the versions read.
		if chs, err = s.visibleChanges(ctx, chs); err != nil {
			return err
		}
		return write(c, http.StatusOK, s.historyBundle(c, chs, next))
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

// permitHistory checks a history request against the token: read on the
// type (on some type for the system history), and for an instance, that
// the resource is within the token's rules (404 otherwise, as for a read).
func (s *Server) permitHistory(ctx context.Context, q fhir.HistoryQuery) error {
	g := s.guardFrom(ctx)
	if g == nil {
		return nil
	}
	if q.Type == "" {
		if s.Search != nil {
			for _, t := range s.Search.Registry.Types() {
				r, err := g.restrict(ctx, t, smart.PermRead)
				if err != nil || r.ok {
					return err
				}
			}
		}
		return fhir.Forbidden("the system history needs a scope granting read (r) on some type; the token grants none")
	}
	if err := s.permit(ctx, q.Type, smart.PermRead, "history"); err != nil {
		return err
	}
	if q.ID == "" || !fhir.ValidID(q.ID) {
		return nil
	}
	r, err := s.Service.Store.Read(ctx, q.Type, q.ID)
	if err != nil {
		return nil // History answers for a resource that does not exist
	}
	return s.mustSee(ctx, r, smart.PermRead, func() error { return fhir.NotFound("%s/%s does not exist", q.Type, q.ID) })
}

// visibleChanges keeps the versions the token may read, each judged on its
// own content (a deletion on the version it deleted).
func (s *Server) visibleChanges(ctx context.Context, chs []fhir.Change) ([]fhir.Change, error) {
	if s.guardFrom(ctx) == nil {
		return chs, nil
	}
	out := chs[:0:0]
	for _, ch := range chs {
		ok, err := s.visibleTo(ctx, ch.Resource, smart.PermRead)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, ch)
		}
	}
	return out, nil
}

// historyBundle renders a history Bundle; resources are copied in as stored.
func (s *Server) historyBundle(c echo.Context, chs []fhir.Change, next int64) []byte {
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
	if next > 0 {
		buf.WriteByte(',')
		link("next", s.pageURL(c, base, next))
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
