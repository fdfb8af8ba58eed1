package smart

import (
	"bytes"
	"embed"
	"html/template"
	"net/http"
	"strings"
)

// The pages' forms, which a browser test drives (keep these stable):
//
//	login (/auth/login):     form#login-form; input#username [name=username],
//	                         input#password [name=password], button#login
//	consent (/auth/consent): form#consent-form; one checkbox
//	                         input[name=scope][value=<scope>] (id scope-<n>) per
//	                         scope, checked; required ones (launch, launch/…)
//	                         are disabled and granted anyway; button#allow
//	                         [name=action][value=allow], button#deny
//	picker (/auth/pick):     search form#patient-search-form with
//	                         input#patient-search [name=q], button#search;
//	                         list ul#patients, each item a
//	                         button[name=patient][value=<Patient id>]
//	every POST form:         hidden inputs csrf and req
//	errors:                  p#error
//
//go:embed templates/*.html templates/style.css
var pageFiles embed.FS

var pages = template.Must(template.ParseFS(pageFiles, "templates/*.html"))

var styleCSS, _ = pageFiles.ReadFile("templates/style.css")

// pageData is what every page template reads.
type pageData struct {
	Title    string
	Client   string // the client's name
	Error    string
	CSRF     string
	Req      string // the authorization request's id
	Username string
	Patient  string
	Query    string
	Scopes   []scopeItem
	Patients []PatientSummary
}

type scopeItem struct {
	Value    string
	Label    string
	Required bool
}

// render writes a page with the headers every page gets.
func (s *Server) render(w http.ResponseWriter, status int, name string, d pageData) {
	var b bytes.Buffer
	if err := pages.ExecuteTemplate(&b, name, d); err != nil {
		s.Logger.Error("rendering a page failed", "page", name, "err", err)
		http.Error(w, "the page could not be shown", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

// errorPage shows an error that cannot go back to the client (no valid
// redirect URI).
func (s *Server) errorPage(w http.ResponseWriter, status int, msg string) {
	s.render(w, status, "error", pageData{Title: "Authorization failed", Error: msg})
}

func (s *Server) handleStyle(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(styleCSS)
}

// describeScope says what a scope allows, in plain words.
func describeScope(raw string) string {
	switch raw {
	case "openid":
		return "Confirm who you are to the app"
	case "fhirUser":
		return "Know your user record (who you are in the health record)"
	case "profile":
		return "Know your name and profile"
	case "launch":
		return "Open with the context of your current session (patient, encounter)"
	case "launch/patient":
		return "Know which patient is selected"
	case "launch/encounter":
		return "Know which encounter is selected"
	case "offline_access":
		return "Keep access while you are away, until you revoke it"
	case "online_access":
		return "Keep access while you stay logged in"
	case AdminScope:
		return "Administer this server"
	}
	sc, ok := ParseScope(raw)
	if !ok {
		return raw
	}
	var verbs []string
	for _, v := range []struct {
		p    Perms
		word string
	}{{PermRead, "read"}, {PermSearch, "search"}, {PermCreate, "create"}, {PermUpdate, "update"}, {PermDelete, "delete"}} {
		if sc.Perms.Has(v.p) {
			verbs = append(verbs, v.word)
		}
	}
	what := "all kinds of records"
	if sc.Type != "*" {
		what = sc.Type + " records"
	}
	whose := ""
	switch sc.Context {
	case ContextPatient:
		whose = " of the selected patient"
	case ContextUser:
		whose = " you have access to"
	case ContextSystem:
		whose = " (any patient)"
	}
	text := strings.Join(verbs, ", ")
	if i := strings.LastIndex(text, ", "); i >= 0 {
		text = text[:i] + " and " + text[i+2:]
	}
	text = strings.ToUpper(text[:1]) + text[1:] + " " + what + whose
	if sc.Filter != nil {
		text += ", only where " + sc.Filter.Encode()
	}
	return text
}
