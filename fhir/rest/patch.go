package rest

import (
	"context"
	"mime"
	"net/http"

	"github.com/fhirhub/fhirhub/fhir"
	"github.com/fhirhub/fhirhub/fhir/patch"
	"github.com/fhirhub/fhirhub/smart"
	"github.com/labstack/echo/v4"
)

// patcher picks the patch format from the media type: JSON Patch
// (application/json-patch+json) or FHIRPath Patch (a Parameters resource,
// application/fhir+json).
func patcher(contentType string, body []byte) (func([]byte) ([]byte, error), error) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return nil, fhir.NotSupported(http.StatusUnsupportedMediaType, "Content-Type %q cannot be parsed", contentType)
	}
	switch mt {
	case mimeJSONPatch:
		return func(cur []byte) ([]byte, error) { return patch.JSONPatch(cur, body) }, nil
	case mimeFHIRJSON, mimeJSON:
		return func(cur []byte) ([]byte, error) { return patch.FHIRPathPatch(cur, body) }, nil
	}
	return nil, fhir.NotSupported(http.StatusUnsupportedMediaType,
		"PATCH takes application/json-patch+json (JSON Patch) or application/fhir+json (a FHIRPath Patch Parameters resource), not %q", mt)
}

// patch handles PATCH [type]/[id] and, with criteria, PATCH [type]?criteria.
func (s *Server) patch(c echo.Context) error {
	typ, id := c.Param("type"), c.Param("id")
	setInteraction(c, "patch")
	r := c.Request()
	if err := s.permit(r.Context(), typ, smart.PermUpdate, "patch"); err != nil {
		return err
	}
	body, err := s.readRawBody(c)
	if err != nil {
		return err
	}
	apply, err := patcher(r.Header.Get("Content-Type"), body)
	if err != nil {
		return err
	}
	im, err := ifMatch(c)
	if err != nil {
		return err
	}
	ctx := r.Context()
	if id == "" {
		setInteraction(c, "conditional-patch")
		if id, err = s.matchOne(ctx, typ, r.URL.RawQuery, "conditional patch"); err != nil {
			return err
		}
	}
	res, err := s.Service.Patch(ctx, typ, id, im, apply)
	if err != nil {
		return err
	}
	return s.respondWrite(c, http.StatusOK, res.Resource, "patched")
}

// matchOne finds the one resource criteria select: none is 404, several 412.
func (s *Server) matchOne(ctx context.Context, typ, criteria, what string) (string, error) {
	if criteria == "" {
		return "", fhir.Invalid("", "a %s needs search criteria", what)
	}
	found, err := s.Service.Match(ctx, typ, criteria, 2)
	if err != nil {
		return "", err
	}
	switch len(found) {
	case 0:
		return "", fhir.NotFound("the %s criteria %q match no %s", what, criteria, typ)
	case 1:
		return found[0].ID, nil
	}
	return "", fhir.PreconditionFailed(fhir.IssueMultipleMatches, "the %s criteria %q match more than one %s", what, criteria, typ)
}
