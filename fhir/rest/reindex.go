package rest

import (
	"net/http"

	"github.com/fhirhub/fhirhub/fhir"
	"github.com/labstack/echo/v4"
)

// reindex starts a $reindex job (system level, or for one type) and answers
// 202 with the job's status URL in Content-Location.
func (s *Server) reindex(c echo.Context) error {
	setInteraction(c, "operation-reindex")
	var types []string
	if typ := c.Param("type"); typ != "" {
		if s.Service.Validator != nil && !s.Service.Validator.KnownType(typ) {
			return fhir.NotFound("unknown resource type %q", typ)
		}
		types = []string{typ}
	}
	if err := s.requireAdmin(c.Request().Context(), types, "$reindex"); err != nil {
		return err
	}
	if s.Reindexing == nil {
		return fhir.NotSupported(http.StatusNotImplemented, "$reindex is not supported by this store")
	}
	job, err := s.Reindexing.Start(types)
	if err != nil {
		return err
	}
	status := s.base(c) + "/$reindex-status/" + job.ID
	c.Response().Header().Set("Content-Location", status)
	return write(c, http.StatusAccepted, informational("reindexing started; progress at "+status))
}

// reindexStatus reports a job's progress as a Parameters resource.
func (s *Server) reindexStatus(c echo.Context) error {
	setInteraction(c, "operation-reindex-status")
	if err := s.requireAdmin(c.Request().Context(), nil, "$reindex-status"); err != nil {
		return err
	}
	if s.Reindexing == nil {
		return fhir.NotSupported(http.StatusNotImplemented, "$reindex is not supported by this store")
	}
	job, ok := s.Reindexing.Get(c.Param("job"))
	if !ok {
		return fhir.NotFound("there is no $reindex job %q (jobs are kept until the server restarts)", c.Param("job"))
	}
	st := job.Status()
	type param struct {
		Name         string `json:"name"`
		ValueString  string `json:"valueString,omitempty"`
		ValueInteger *int64 `json:"valueInteger,omitempty"`
		ValueInstant string `json:"valueInstant,omitempty"`
	}
	n := func(v int64) *int64 { return &v }
	ps := []param{{Name: "id", ValueString: st.ID}, {Name: "status", ValueString: st.Status},
		{Name: "processed", ValueInteger: n(st.Processed)}, {Name: "total", ValueInteger: n(st.Total)},
		{Name: "failed", ValueInteger: n(st.Failed)}, {Name: "started", ValueInstant: fhir.FormatInstant(st.Started)}}
	for _, t := range st.Types {
		ps = append(ps, param{Name: "type", ValueString: t})
	}
	if !st.Finished.IsZero() {
		ps = append(ps, param{Name: "finished", ValueInstant: fhir.FormatInstant(st.Finished)})
	}
	if st.Error != "" {
		ps = append(ps, param{Name: "error", ValueString: st.Error})
	}
	if st.Status == "running" {
		c.Response().Header().Set("Retry-After", "2")
	}
	return write(c, http.StatusOK, encodeJSON(map[string]any{"resourceType": "Parameters", "parameter": ps}))
}
