package smart

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// sessionCookie holds the browser session's id; it is scoped to /auth.
const sessionCookie = "fhirhub_auth"

// handleAuthorize is the authorization endpoint (GET, and POST for
// authorize-post): it checks the request, stores it, and sends the browser
// to the login, picker or consent page.
func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	}
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, http.StatusBadRequest, "The authorization request cannot be read.")
		return
	}
	p := r.Form
	ctx := r.Context()
	c, err := s.Store.Client(ctx, p.Get("client_id"))
	if errors.Is(err, ErrNotFound) {
		s.errorPage(w, http.StatusBadRequest, "The app is not registered with this server (unknown client_id).")
		return
	}
	if err != nil {
		s.Logger.Error("authorize: reading the client failed", "err", err)
		s.errorPage(w, http.StatusInternalServerError, "The server failed; try again later.")
		return
	}
	redirect := p.Get("redirect_uri")
	if redirect == "" || !slices.Contains(c.RedirectURIs, redirect) {
		s.errorPage(w, http.StatusBadRequest, "The app's redirect_uri is missing or not one it registered.")
		return
	}
	state := p.Get("state")
	fail := func(code, desc string) { redirectError(w, r, redirect, state, code, desc) }
	if p.Get("response_type") != "code" {
		fail("unsupported_response_type", "response_type must be code")
		return
	}
	aud := strings.TrimSuffix(p.Get("aud"), "/")
	if !slices.Contains(s.audience, aud) {
		fail("invalid_request", "aud must be this server's FHIR base URL, "+s.BaseURL)
		return
	}
	challenge, method := p.Get("code_challenge"), p.Get("code_challenge_method")
	switch {
	case challenge == "" && c.Type == ClientPublic:
		fail("invalid_request", "public clients must use PKCE (code_challenge with S256)")
		return
	case challenge != "" && method != "S256":
		fail("invalid_request", "code_challenge_method must be S256")
		return
	case challenge == "" && method != "":
		fail("invalid_request", "code_challenge is missing")
		return
	case challenge != "" && len(challenge) != 43:
		fail("invalid_request", "code_challenge must be the base64url SHA-256 of the verifier (43 characters)")
		return
	}
	g, err := grantFor(c, p.Get("scope"), true)
	if err != nil {
		var oe *OAuthError
		errors.As(err, &oe)
		fail(oe.Code, oe.Description)
		return
	}
	var lctx Context
	if launch := p.Get("launch"); launch != "" {
		l, err := s.Store.Launch(ctx, launch)
		if errors.Is(err, ErrNotFound) {
			fail("invalid_request", "the launch is unknown or expired")
			return
		}
		if err != nil {
			s.Logger.Error("authorize: reading the launch failed", "err", err)
			fail("server_error", "")
			return
		}
		lctx = l.Context
		if !g.HasOther("launch") {
			g.Other = append(g.Other, "launch")
		}
	} else {
		// Without an EHR launch there is no encounter to give: the
		// standalone encounter picker is not built.
		g = narrow(g, dropScope(g, "launch/encounter", "launch"), nil)
	}
	sess, err := s.session(w, r, true)
	if err != nil {
		s.Logger.Error("authorize: session failed", "err", err)
		fail("server_error", "")
		return
	}
	req := AuthRequest{
		ID: randomToken(), SessionID: sess.ID, ClientID: c.ID, RedirectURI: redirect, Scope: g.String(),
		State: state, Nonce: p.Get("nonce"), Challenge: challenge, Audience: aud, Context: lctx,
		Expires: s.now().Add(requestLifetime),
	}
	if err := s.Store.PutRequest(ctx, req); err != nil {
		s.Logger.Error("authorize: storing the request failed", "err", err)
		fail("server_error", "")
		return
	}
	s.next(w, r, req, sess)
}

// dropScope lists g's scopes but the ones named.
func dropScope(g Grant, names ...string) []string {
	var keep []string
	for _, f := range strings.Fields(g.String()) {
		if !slices.Contains(names, f) {
			keep = append(keep, f)
		}
	}
	return keep
}

// redirectError sends the browser back to the client with an error
// (RFC 6749 section 4.1.2.1).
func redirectError(w http.ResponseWriter, r *http.Request, redirect, state, code, desc string) {
	q := url.Values{"error": {code}}
	if desc != "" {
		q.Set("error_description", desc)
	}
	if state != "" {
		q.Set("state", state)
	}
	http.Redirect(w, r, withQuery(redirect, q), http.StatusSeeOther)
}

func withQuery(u string, q url.Values) string {
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	return u + sep + q.Encode()
}

// session returns the browser's session, creating one (and its cookie)
// when create is set and there is none.
func (s *Server) session(w http.ResponseWriter, r *http.Request, create bool) (Session, error) {
	if ck, err := r.Cookie(sessionCookie); err == nil && ck.Value != "" {
		sess, err := s.Store.Session(r.Context(), ck.Value)
		if err == nil {
			return sess, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return sess, err
		}
	}
	if !create {
		return Session{}, ErrNotFound
	}
	sess := Session{ID: randomToken(), CSRF: randomToken(), Expires: s.now().Add(s.SessionLifetime)}
	if err := s.Store.PutSession(r.Context(), sess); err != nil {
		return sess, err
	}
	s.setSessionCookie(w, sess)
	return sess, nil
}

func (s *Server) setSessionCookie(w http.ResponseWriter, sess Session) {
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: sess.ID, Path: AuthPath, Expires: sess.Expires,
		HttpOnly: true, Secure: s.secureCookies(), SameSite: http.SameSiteLaxMode,
	})
}

// pending loads the authorization request named by the req parameter and
// the session it belongs to; on failure it has answered.
func (s *Server) pending(w http.ResponseWriter, r *http.Request) (AuthRequest, Session, Client, bool) {
	var c Client
	sess, err := s.session(w, r, false)
	if err != nil {
		s.errorPage(w, http.StatusBadRequest, "Your session has ended. Go back to the app and start again.")
		return AuthRequest{}, sess, c, false
	}
	req, err := s.Store.Request(r.Context(), r.FormValue("req"))
	if err != nil || req.SessionID != sess.ID {
		s.errorPage(w, http.StatusBadRequest, "This authorization request has expired or belongs to another session. Go back to the app and start again.")
		return req, sess, c, false
	}
	c, err = s.Store.Client(r.Context(), req.ClientID)
	if err != nil {
		s.errorPage(w, http.StatusBadRequest, "The app is no longer registered.")
		return req, sess, c, false
	}
	return req, sess, c, true
}

// postedForm starts the handling of a page's form: the body limited to
// limit bytes, the pending request and its session (see pending), and the
// form's CSRF token checked, and, when loggedIn, a logged-in session. When
// ok is false the answer has been written.
func (s *Server) postedForm(w http.ResponseWriter, r *http.Request, limit int64, loggedIn bool) (AuthRequest, Session, Client, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	req, sess, c, ok := s.pending(w, r)
	if !ok {
		return req, sess, c, false
	}
	if !checkCSRF(r, sess) || (loggedIn && sess.Username == "") {
		s.errorPage(w, http.StatusForbidden, "The form expired. Go back to the app and start again.")
		return req, sess, c, false
	}
	return req, sess, c, true
}

// checkCSRF compares the form's csrf with the session's.
func checkCSRF(r *http.Request, sess Session) bool {
	got := r.PostFormValue("csrf")
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(sess.CSRF)) == 1
}

// next sends the browser to the step the request needs next: login, the
// patient picker, then consent.
func (s *Server) next(w http.ResponseWriter, r *http.Request, req AuthRequest, sess Session) {
	q := url.Values{"req": {req.ID}}.Encode()
	if sess.Username == "" {
		http.Redirect(w, r, AuthPath+"/login?"+q, http.StatusSeeOther)
		return
	}
	if s.needsPatient(req) {
		http.Redirect(w, r, AuthPath+"/pick?"+q, http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, AuthPath+"/consent?"+q, http.StatusSeeOther)
}

func (s *Server) needsPatient(req AuthRequest) bool {
	g, _ := ParseGrant(req.Scope)
	return g.HasOther("launch/patient") && req.Context.Patient == ""
}

// patientOf returns the Patient id of a user who is a Patient.
func patientOf(u User) (string, bool) {
	id, ok := strings.CutPrefix(u.FHIRUser, "Patient/")
	return id, ok
}

func (s *Server) handleLoginPage(w http.ResponseWriter, r *http.Request) {
	req, sess, c, ok := s.pending(w, r)
	if !ok {
		return
	}
	s.render(w, http.StatusOK, "login", pageData{Title: "Log in", Client: clientName(c), CSRF: sess.CSRF, Req: req.ID})
}

func clientName(c Client) string {
	if c.Name != "" {
		return c.Name
	}
	return c.ID
}

// dummyHash is checked when the username is unknown, so both failures
// take the same time.
var dummyHash, _ = HashPassword("not a password anyone has")

func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	req, sess, c, ok := s.postedForm(w, r, 16<<10, false)
	if !ok {
		return
	}
	ctx := r.Context()
	username := r.PostFormValue("username")
	u, err := s.Store.User(ctx, username)
	if err != nil && !errors.Is(err, ErrNotFound) {
		s.Logger.Error("login: reading the user failed", "err", err)
		s.errorPage(w, http.StatusInternalServerError, "The server failed; try again later.")
		return
	}
	hash := u.PasswordHash
	if err != nil {
		hash = dummyHash
	}
	if !CheckPassword(hash, r.PostFormValue("password")) || err != nil {
		s.Logger.Info("login failed", "username", username, "client_id", c.ID)
		s.render(w, http.StatusUnauthorized, "login", pageData{Title: "Log in", Client: clientName(c), CSRF: sess.CSRF,
			Req: req.ID, Username: username, Error: "Wrong username or password."})
		return
	}
	// A new session id at login (no fixation), the request moved to it.
	old := sess.ID
	sess = Session{ID: randomToken(), CSRF: randomToken(), Username: u.Username, AuthTime: s.now(), Expires: s.now().Add(s.SessionLifetime)}
	if err := s.Store.PutSession(ctx, sess); err != nil {
		s.Logger.Error("login: storing the session failed", "err", err)
		s.errorPage(w, http.StatusInternalServerError, "The server failed; try again later.")
		return
	}
	_ = s.Store.DeleteSession(ctx, old)
	s.setSessionCookie(w, sess)
	req.SessionID = sess.ID
	if err := s.applyUser(ctx, &req, u); err != nil {
		var oe *OAuthError
		errors.As(err, &oe)
		redirectError(w, r, req.RedirectURI, req.State, oe.Code, oe.Description)
		return
	}
	if err := s.Store.PutRequest(ctx, req); err != nil {
		s.Logger.Error("login: storing the request failed", "err", err)
		s.errorPage(w, http.StatusInternalServerError, "The server failed; try again later.")
		return
	}
	s.Logger.Info("login", "username", u.Username, "client_id", c.ID)
	s.next(w, r, req, sess)
}

// applyUser fits the request to the user who logged in: a Patient user's
// own record is the patient (and may not be another one, nor use user/
// scopes); others need a picker to choose one.
func (s *Server) applyUser(ctx context.Context, req *AuthRequest, u User) error {
	g, _ := ParseGrant(req.Scope)
	if pid, ok := patientOf(u); ok {
		if req.Context.Patient != "" && req.Context.Patient != pid {
			return oauthErr("access_denied", "the launch is for another patient than the user")
		}
		req.Context.Patient = pid
		g = forPatientUser(g)
		req.Scope = g.String()
		return nil
	}
	if s.needsPatient(*req) {
		if s.Patients == nil {
			return oauthErr("access_denied", "this server has no patient picker; launch from the EHR instead")
		}
		if typ, _, _ := strings.Cut(u.FHIRUser, "/"); u.FHIRUser != "" && typ != "Practitioner" && typ != "PractitionerRole" {
			return oauthErr("access_denied", "only practitioners may pick a patient")
		}
	}
	return nil
}

func (s *Server) handlePickPage(w http.ResponseWriter, r *http.Request) {
	req, sess, c, ok := s.pending(w, r)
	if !ok {
		return
	}
	if sess.Username == "" || !s.needsPatient(req) || s.Patients == nil {
		s.next(w, r, req, sess)
		return
	}
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	list, err := s.Patients.ListPatients(r.Context(), q, 50)
	d := pageData{Title: "Choose a patient", Client: clientName(c), CSRF: sess.CSRF, Req: req.ID, Query: q, Patients: list}
	if err != nil {
		s.Logger.Error("picker: listing patients failed", "err", err)
		d.Error = "The patients could not be listed."
	}
	s.render(w, http.StatusOK, "picker", d)
}

func (s *Server) handlePick(w http.ResponseWriter, r *http.Request) {
	req, sess, _, ok := s.postedForm(w, r, 16<<10, true)
	if !ok {
		return
	}
	if !s.needsPatient(req) || s.Patients == nil {
		s.next(w, r, req, sess)
		return
	}
	id := r.PostFormValue("patient")
	p, err := s.Patients.Patient(r.Context(), id)
	if err != nil || id == "" {
		http.Redirect(w, r, AuthPath+"/pick?"+url.Values{"req": {req.ID}}.Encode(), http.StatusSeeOther)
		return
	}
	req.Context.Patient = p.ID
	req.Context.NeedBanner = true
	if err := s.Store.PutRequest(r.Context(), req); err != nil {
		s.Logger.Error("picker: storing the request failed", "err", err)
		s.errorPage(w, http.StatusInternalServerError, "The server failed; try again later.")
		return
	}
	s.next(w, r, req, sess)
}

func (s *Server) handleConsentPage(w http.ResponseWriter, r *http.Request) {
	req, sess, c, ok := s.pending(w, r)
	if !ok {
		return
	}
	if sess.Username == "" || s.needsPatient(req) {
		s.next(w, r, req, sess)
		return
	}
	d := pageData{Title: "Allow access?", Client: clientName(c), CSRF: sess.CSRF, Req: req.ID}
	if id := req.Context.Patient; id != "" {
		d.Patient = "Patient/" + id
		if s.Patients != nil {
			if p, err := s.Patients.Patient(r.Context(), id); err == nil && p.Name != "" {
				d.Patient = p.Name + " (Patient/" + id + ")"
			}
		}
	}
	for _, sc := range strings.Fields(req.Scope) {
		d.Scopes = append(d.Scopes, scopeItem{Value: sc, Label: describeScope(sc), Required: slices.Contains(requiredScopes, sc)})
	}
	s.render(w, http.StatusOK, "consent", d)
}

func (s *Server) handleConsent(w http.ResponseWriter, r *http.Request) {
	req, sess, _, ok := s.postedForm(w, r, 64<<10, true)
	if !ok {
		return
	}
	if s.needsPatient(req) {
		s.next(w, r, req, sess)
		return
	}
	ctx := r.Context()
	// The request is answered once, whatever the answer.
	req.Expires = s.now()
	_ = s.Store.PutRequest(ctx, req)
	if r.PostFormValue("action") != "allow" {
		redirectError(w, r, req.RedirectURI, req.State, "access_denied", "the user denied access")
		return
	}
	asked, _ := ParseGrant(req.Scope)
	g := narrow(asked, r.PostForm["scope"], requiredScopes)
	if len(g.Scopes) == 0 && len(g.Other) == 0 {
		redirectError(w, r, req.RedirectURI, req.State, "access_denied", "the user allowed no scope")
		return
	}
	u, err := s.Store.User(ctx, sess.Username)
	if err != nil {
		s.errorPage(w, http.StatusBadRequest, "Your user account is gone.")
		return
	}
	code := randomToken()
	now := s.now()
	err = s.Store.PutCode(ctx, Code{
		ID: hashSecret(code), ClientID: req.ClientID, RedirectURI: req.RedirectURI, Challenge: req.Challenge,
		Scope: g.String(), Audience: req.Audience, Username: u.Username, FHIRUser: u.FHIRUser, Nonce: req.Nonce,
		Family: randomToken(), Context: req.Context, AuthTime: sess.AuthTime.Truncate(time.Second), Expires: now.Add(codeLifetime),
	})
	if err != nil {
		s.Logger.Error("consent: storing the code failed", "err", err)
		redirectError(w, r, req.RedirectURI, req.State, "server_error", "")
		return
	}
	q := url.Values{"code": {code}}
	if req.State != "" {
		q.Set("state", req.State)
	}
	http.Redirect(w, r, withQuery(req.RedirectURI, q), http.StatusSeeOther)
}
