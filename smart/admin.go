package smart

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
)

// admin wraps a handler of the admin API: it needs a bearer token of this
// server with the admin scope (which only clients allowed it explicitly
// can get, through client_credentials).
func (s *Server) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="fhirhub", scope="admin"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token", "error_description": "a bearer token with the admin scope is required"})
			return
		}
		a, err := s.Verify(r.Context(), strings.TrimSpace(token))
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="fhirhub", error="invalid_token"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token", "error_description": err.Error()})
			return
		}
		if !a.HasOther(AdminScope) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="fhirhub", error="insufficient_scope", scope="admin"`)
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "insufficient_scope", "error_description": "the token lacks the admin scope"})
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		h(w, r.WithContext(WithAccess(r.Context(), a)))
	}
}

// readJSON decodes a JSON body of at most 1 MiB, refusing unknown fields.
func readJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return invalidRequest("the JSON body cannot be read: " + err.Error())
	}
	return nil
}

// handleLaunch creates an EHR launch context and returns its opaque
// launch value, for the EHR to pass to the app (?launch=…&iss=…).
func (s *Server) handleLaunch(w http.ResponseWriter, r *http.Request) {
	var in Context
	if err := readJSON(r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	if len(in.FHIRContext) > 0 {
		var arr []json.RawMessage
		if json.Unmarshal(in.FHIRContext, &arr) != nil {
			s.fail(w, r, invalidRequest("fhirContext must be an array"))
			return
		}
	}
	now := s.now()
	l := Launch{ID: randomToken(), Context: in, Created: now, Expires: now.Add(launchLifetime)}
	if err := s.Store.PutLaunch(r.Context(), l); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"launch": l.ID, "iss": s.BaseURL, "expires_in": int(launchLifetime.Seconds())})
}

func (s *Server) handleListClients(w http.ResponseWriter, r *http.Request) {
	cs, err := s.Store.Clients(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]clientView, len(cs))
	for i, c := range cs {
		out[i] = viewOf(c)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleAddClient(w http.ResponseWriter, r *http.Request) {
	var in clientView
	if err := readJSON(r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	c := Client{ID: in.ID, Name: in.Name, Type: in.Type, RedirectURIs: in.RedirectURIs, Scopes: in.Scopes, JWKS: in.JWKS, JWKSURI: in.JWKSURI}
	secret, err := RegisterClient(r.Context(), s.Store, &c, s.now())
	if err != nil {
		if strings.HasPrefix(err.Error(), "smart: ") {
			err = invalidRequest(strings.TrimPrefix(err.Error(), "smart: "))
		}
		s.fail(w, r, err)
		return
	}
	v := viewOf(c)
	v.Secret = secret
	writeJSON(w, http.StatusCreated, v)
}

func (s *Server) handleRemoveClient(w http.ResponseWriter, r *http.Request) {
	s.remove(w, r, s.Store.DeleteClient(r.Context(), r.PathValue("id")))
}

func (s *Server) remove(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, ErrNotFound) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "not_found"})
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// userView is a user as the admin API shows it.
type userView struct {
	Username string `json:"username"`
	Password string `json:"password,omitempty"` // input only
	FHIRUser string `json:"fhir_user,omitempty"`
	Created  string `json:"created,omitempty"`
}

func (s *Server) handleListUsers(w http.ResponseWriter, r *http.Request) {
	us, err := s.Store.Users(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]userView, len(us))
	for i, u := range us {
		out[i] = userView{Username: u.Username, FHIRUser: u.FHIRUser, Created: u.Created.Format("2006-01-02T15:04:05Z")}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleAddUser(w http.ResponseWriter, r *http.Request) {
	var in userView
	if err := readJSON(r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := RegisterUser(r.Context(), s.Store, in.Username, in.Password, in.FHIRUser, s.now()); err != nil {
		s.fail(w, r, invalidRequest(strings.TrimPrefix(err.Error(), "smart: ")))
		return
	}
	writeJSON(w, http.StatusCreated, userView{Username: in.Username, FHIRUser: in.FHIRUser})
}

func (s *Server) handleRemoveUser(w http.ResponseWriter, r *http.Request) {
	s.remove(w, r, s.Store.DeleteUser(r.Context(), r.PathValue("username")))
}

func (s *Server) handleRotateKey(w http.ResponseWriter, r *http.Request) {
	k, err := RotateKey(r.Context(), s.Store, s.now())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.loadKeys(r.Context(), true); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"kid": k.ID})
}
