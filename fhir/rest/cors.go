package rest

import (
	"net/http"
	"slices"

	"github.com/labstack/echo/v4"
)

// CORS. Browser apps (SMART apps) call the API from their own origin with a
// bearer token, so preflights are answered before authentication, and
// scripts may read the headers a FHIR client needs. No credentials
// (cookies) are allowed across origins: the API takes bearer tokens only.
const (
	corsMethods = "GET, HEAD, POST, PUT, PATCH, DELETE"
	corsHeaders = "Authorization, Content-Type, Accept, Prefer, If-Match, If-None-Match, If-Modified-Since, If-None-Exist, X-Request-Id"
	corsExpose  = "Location, Content-Location, ETag, Last-Modified, WWW-Authenticate, X-Request-Id"
)

func (s *Server) corsOrigins() []string {
	if len(s.CORSOrigins) == 0 {
		return []string{"*"}
	}
	return s.CORSOrigins
}

// cors answers preflights and marks responses to cross-origin requests.
func (s *Server) cors(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req, h := c.Request(), c.Response().Header()
		origin := req.Header.Get("Origin")
		if origin == "" {
			return next(c)
		}
		h.Add("Vary", "Origin")
		allowed := s.corsOrigins()
		switch {
		case slices.Contains(allowed, "*"):
			h.Set("Access-Control-Allow-Origin", "*")
		case slices.Contains(allowed, origin):
			h.Set("Access-Control-Allow-Origin", origin)
		default:
			return next(c) // no CORS headers: the browser keeps the answer from the script
		}
		if req.Method == http.MethodOptions && req.Header.Get("Access-Control-Request-Method") != "" {
			h.Add("Vary", "Access-Control-Request-Method")
			h.Add("Vary", "Access-Control-Request-Headers")
			h.Set("Access-Control-Allow-Methods", corsMethods)
			h.Set("Access-Control-Allow-Headers", corsHeaders)
			h.Set("Access-Control-Max-Age", "86400")
			setInteraction(c, "cors-preflight")
			return c.NoContent(http.StatusNoContent)
		}
		h.Set("Access-Control-Expose-Headers", corsExpose)
		return next(c)
	}
}
