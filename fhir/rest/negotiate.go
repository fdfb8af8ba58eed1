package rest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/fhirhub/fhirhub/fhir"
	"github.com/labstack/echo/v4"
)

// mediaTypeKey holds the negotiated response media type in the echo context.
const mediaTypeKey = "fhir.mediatype"

const (
	mimeFHIRJSON  = "application/fhir+json"
	mimeJSON      = "application/json"
	mimeJSONPatch = "application/json-patch+json"
)

// responseType decides the response media type from _format and Accept. It
// answers 406 when only XML (or nothing JSON) is acceptable.
func responseType(r *http.Request) (string, error) {
	if f := r.URL.Query().Get("_format"); f != "" {
		switch strings.ToLower(strings.TrimSpace(strings.SplitN(f, ";", 2)[0])) {
		case "json", mimeFHIRJSON:
			return mimeFHIRJSON, nil
		case mimeJSON:
			return mimeJSON, nil
		case "xml", "text/xml", "application/xml", "application/fhir+xml", "html", "text/html", "ttl", "text/turtle":
			return "", fhir.NotSupported(http.StatusNotAcceptable, "_format=%s is not supported; this server speaks JSON (application/fhir+json)", f)
		default:
			return "", fhir.NotSupported(http.StatusNotAcceptable, "_format=%s is not a format this server knows; use json", f)
		}
	}
	accept := r.Header.Get("Accept")
	if accept == "" {
		return mimeFHIRJSON, nil
	}
	sawXML := false
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		if q, ok := params["q"]; ok && (q == "0" || q == "0.0" || q == "0.00" || q == "0.000") {
			continue
		}
		switch mt {
		case mimeFHIRJSON, "*/*", "application/*", "json":
			return mimeFHIRJSON, nil
		case mimeJSON:
			return mimeJSON, nil
		case "application/fhir+xml", "application/xml", "text/xml", "xml":
			sawXML = true
		default:
			if strings.HasSuffix(mt, "+json") {
				return mimeFHIRJSON, nil
			}
		}
	}
	if sawXML {
		return "", fhir.NotSupported(http.StatusNotAcceptable, "XML is not supported yet; ask for application/fhir+json (Accept: %s)", accept)
	}
	return "", fhir.NotSupported(http.StatusNotAcceptable, "none of the media types in Accept: %s can be produced; this server produces application/fhir+json", accept)
}

// readRawBody reads a request body of any type within the size limit.
func (s *Server) readRawBody(c echo.Context) ([]byte, error) {
	r := c.Request()
	limit := s.MaxBodyBytes
	if r.ContentLength > limit {
		return nil, fhir.TooLarge("the body is %d bytes; the limit is %d", r.ContentLength, limit)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, fhir.Invalid("", "reading the request body: %v", err)
	}
	if int64(len(body)) > limit {
		return nil, fhir.TooLarge("the body is over the limit of %d bytes", limit)
	}
	return body, nil
}

// readBody reads a JSON request body, enforcing the size limit and content type.
func (s *Server) readBody(c echo.Context) ([]byte, error) {
	return s.readBodyLimit(c, s.MaxBodyBytes)
}

// readBodyLimit is readBody with another size limit.
func (s *Server) readBodyLimit(c echo.Context, limit int64) ([]byte, error) {
	r := c.Request()
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil {
			return nil, fhir.NotSupported(http.StatusUnsupportedMediaType, "Content-Type %q cannot be parsed", ct)
		}
		switch {
		case mt == mimeFHIRJSON || mt == mimeJSON:
		case mt == "application/fhir+xml" || mt == "application/xml" || mt == "text/xml":
			return nil, fhir.NotSupported(http.StatusUnsupportedMediaType, "XML bodies are not supported yet; send application/fhir+json")
		default:
			return nil, fhir.NotSupported(http.StatusUnsupportedMediaType, "Content-Type %q is not supported; send application/fhir+json", mt)
		}
	}
	if r.ContentLength > limit {
		return nil, fhir.TooLarge("the body is %d bytes; the limit is %d", r.ContentLength, limit)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, fhir.TooLarge("the body is over the limit of %d bytes", limit)
		}
		return nil, fhir.Invalid("", "reading the request body: %v", err)
	}
	if int64(len(body)) > limit {
		return nil, fhir.TooLarge("the body is over the limit of %d bytes", limit)
	}
	return body, nil
}

// write sends a JSON body with the negotiated media type, indented on _pretty=true.
func write(c echo.Context, status int, body []byte) error {
	mt, _ := c.Get(mediaTypeKey).(string)
	if mt == "" {
		var err error
		if mt, err = responseType(c.Request()); err != nil {
			mt = mimeFHIRJSON // the error itself is still JSON
		}
	}
	if c.QueryParam("_pretty") == "true" {
		var buf bytes.Buffer
		if json.Indent(&buf, body, "", "  ") == nil {
			body = buf.Bytes()
		}
	}
	return c.Blob(status, mt+"; charset=utf-8", body)
}
