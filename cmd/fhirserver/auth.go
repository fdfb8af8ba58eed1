package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fhirhub/fhirhub/fhir"
	"github.com/fhirhub/fhirhub/fhir/search"
	"github.com/fhirhub/fhirhub/smart"
	"github.com/fhirhub/fhirhub/smart/mongostate"
	"github.com/fhirhub/fhirhub/smart/sqlitestate"
)

// authStore is the SMART authorization server's store of cfg: auth.db in
// the data directory, or the auth_* collections of the MongoDB database.
type authStore interface {
	smart.Store
	Open(ctx context.Context) error
}

func newAuthStore(cfg Config) authStore {
	if cfg.MongoURI != "" {
		return mongostate.New(cfg.MongoURI, cfg.MongoDatabase)
	}
	return sqlitestate.New(cfg.DataDir)
}

// patientLister lets the patient picker search Patients by name.
type patientLister struct {
	svc    *fhir.Service
	engine *search.Engine
}

func (p patientLister) ListPatients(ctx context.Context, query string, limit int) ([]smart.PatientSummary, error) {
	if p.engine == nil {
		return nil, errors.New("this store cannot search")
	}
	params := url.Values{"_count": {strconv.Itoa(limit)}, "_sort": {"family"}}
	if query != "" {
		params.Set("name", query)
	}
	out, err := p.engine.Search(ctx, "Patient", params, false)
	if err != nil {
		return nil, err
	}
	list := make([]smart.PatientSummary, 0, len(out.Matches))
	for _, r := range out.Matches {
		list = append(list, summarize(r))
	}
	return list, nil
}

func (p patientLister) Patient(ctx context.Context, id string) (smart.PatientSummary, error) {
	r, err := p.svc.Read(ctx, "Patient", id)
	if err != nil {
		var fe *fhir.Error
		if errors.As(err, &fe) && fe.HTTPStatus() >= 400 && fe.HTTPStatus() < 500 {
			return smart.PatientSummary{}, smart.ErrNotFound
		}
		return smart.PatientSummary{}, err
	}
	return summarize(r), nil
}

// summarize reads a Patient's first name, birth date and gender.
func summarize(r fhir.Resource) smart.PatientSummary {
	var p struct {
		Name []struct {
			Text   string
			Family string
			Given  []string
		}
		BirthDate string
		Gender    string
	}
	_ = json.Unmarshal(r.JSON, &p)
	s := smart.PatientSummary{ID: r.ID, BirthDate: p.BirthDate, Gender: p.Gender}
	if len(p.Name) > 0 {
		n := p.Name[0]
		s.Name = n.Text
		if s.Name == "" {
			s.Name = strings.TrimSpace(strings.Join(append(n.Given, n.Family), " "))
		}
	}
	return s
}

const clientsUsage = `Usage:
  fhirserver clients add --type TYPE [--id ID] [--name NAME] [--redirect-uri URI]...
                         [--scope PATTERNS] [--jwks-file FILE | --jwks-uri URL]
  fhirserver clients list
  fhirserver clients remove ID
  fhirserver users add --username NAME [--fhir-user Practitioner/ID | Patient/ID]
                       (the password is read from stdin, or --password)
  fhirserver users list
  fhirserver users remove NAME
  fhirserver keys rotate

They act on the authorization store of --data-dir (auth.db) or of
--mongodb-uri directly; a running server sees the change at once (keys
within a minute). TYPE is public, confidential-symmetric (a secret is
generated and printed once) or confidential-asymmetric (give the client's
public keys). Scope patterns are space-separated: patient/*.rs allows every
patient scope within it (patient/Observation.r, patient/*.s, …); admin lets
the client manage this server through /auth/admin.

Flags:
`

// runAuthCommand runs fhirserver clients|users|keys.
func runAuthCommand(ctx context.Context, cmd string, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	base, err := parseServeFlags(nil, getenv, io.Discard)
	if err != nil {
		return err
	}
	if len(args) == 0 {
		fmt.Fprint(stderr, clientsUsage)
		return fmt.Errorf("%s: no subcommand given", cmd)
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet(cmd+" "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, clientsUsage); fs.PrintDefaults() }
	cfg := base
	fs.StringVar(&cfg.DataDir, "data-dir", base.DataDir, "the data directory whose auth.db to use (FHIR_DATA_DIR)")
	fs.StringVar(&cfg.MongoURI, "mongodb-uri", base.MongoURI, "use the MongoDB database at this URI instead (FHIR_MONGODB_URI)")
	fs.StringVar(&cfg.MongoDatabase, "mongodb-database", base.MongoDatabase, "MongoDB database name; default: from the URI path, else fhir (FHIR_MONGODB_DATABASE)")
	var c smart.Client
	var redirects multiFlag
	var scopes, jwksFile, username, password, fhirUser, typ string
	switch cmd + " " + sub {
	case "clients add":
		fs.StringVar(&c.ID, "id", "", "the client id (default: generated)")
		fs.StringVar(&c.Name, "name", "", "a name shown on the login and consent pages")
		fs.StringVar(&typ, "type", "", "public, confidential-symmetric or confidential-asymmetric")
		fs.Var(&redirects, "redirect-uri", "a redirect URI (repeat for several)")
		fs.StringVar(&scopes, "scope", "", "allowed scope patterns, space-separated, e.g. 'patient/*.rs user/*.rs' or 'system/*.rs'")
		fs.StringVar(&jwksFile, "jwks-file", "", "confidential-asymmetric: a file holding the client's public JWK Set")
		fs.StringVar(&c.JWKSURI, "jwks-uri", "", "confidential-asymmetric: the URL of the client's JWK Set")
	case "users add":
		fs.StringVar(&username, "username", "", "the login name")
		fs.StringVar(&password, "password", "", "the password (default: read a line from stdin, which keeps it out of the shell history)")
		fs.StringVar(&fhirUser, "fhir-user", "", "the user's FHIR record: Practitioner/ID (picks any patient) or Patient/ID (sees only that patient)")
	case "clients list", "clients remove", "users list", "users remove", "keys rotate":
	default:
		fmt.Fprint(stderr, clientsUsage)
		return fmt.Errorf("%s %s: unknown subcommand", cmd, sub)
	}
	// Flags may follow the argument too: clients remove ID --data-dir DIR.
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
	wantArgs := 0
	if sub == "remove" {
		wantArgs = 1
	}
	if len(rest) != wantArgs {
		return fmt.Errorf("%s %s: takes %d argument(s), got %q", cmd, sub, wantArgs, rest)
	}
	if sub == "add" && cmd == "users" && password == "" {
		fmt.Fprint(stderr, "password: ")
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && line == "" {
			return fmt.Errorf("users add: read the password from stdin: %v", err)
		}
		password = strings.TrimRight(line, "\r\n")
	}
	if jwksFile != "" {
		b, err := os.ReadFile(jwksFile)
		if err != nil {
			return fmt.Errorf("clients add: %v", err)
		}
		c.JWKS = b
	}
	st := newAuthStore(cfg)
	if err := st.Open(ctx); err != nil {
		return err
	}
	defer st.Close(context.WithoutCancel(ctx))
	now := time.Now()
	switch cmd + " " + sub {
	case "clients add":
		c.Type = smart.ClientType(typ)
		c.RedirectURIs = redirects
		c.Scopes = strings.Fields(scopes)
		secret, err := smart.RegisterClient(ctx, st, &c, now)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "client id: %s\n", c.ID)
		if secret != "" {
			fmt.Fprintf(stdout, "client secret: %s\n(shown this once; it is stored hashed)\n", secret)
		}
	case "clients list":
		cs, err := st.Clients(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tTYPE\tNAME\tSCOPES\tREDIRECT URIS")
		for _, c := range cs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.ID, c.Type, c.Name, strings.Join(c.Scopes, " "), strings.Join(c.RedirectURIs, " "))
		}
		return tw.Flush()
	case "clients remove":
		if err := st.DeleteClient(ctx, rest[0]); err != nil {
			return fmt.Errorf("clients remove %s: %w", rest[0], err)
		}
		fmt.Fprintf(stdout, "removed client %s\n", rest[0])
	case "users add":
		if err := smart.RegisterUser(ctx, st, username, password, fhirUser, now); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "added user %s\n", username)
	case "users list":
		us, err := st.Users(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "USERNAME\tFHIR USER\tCREATED")
		for _, u := range us {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", u.Username, u.FHIRUser, u.Created.Format(time.RFC3339))
		}
		return tw.Flush()
	case "users remove":
		if err := st.DeleteUser(ctx, rest[0]); err != nil {
			return fmt.Errorf("users remove %s: %w", rest[0], err)
		}
		fmt.Fprintf(stdout, "removed user %s\n", rest[0])
	case "keys rotate":
		k, err := smart.RotateKey(ctx, st, now)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "new signing key %s; the others are retired (they verify until the tokens they signed expire)\n", k.ID)
	}
	return nil
}

// multiFlag collects a repeated flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// parseLifetime reads a Go duration, or a whole number of days ("90d").
func parseLifetime(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("%q is not a positive number of days", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is not a positive duration (like 1h, 30m, 90d)", s)
	}
	return d, nil
}
