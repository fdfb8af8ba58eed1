package smart

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Errors of a Store.
var (
	ErrNotFound = errors.New("smart: not found")
	ErrExists   = errors.New("smart: already exists")
	// ErrUsed is Mark's answer for a mark already set: a code or refresh
	// token used twice, an assertion jti replayed.
	ErrUsed = errors.New("smart: already used")
)

// Store holds the authorization server's state. Records with an expiry
// read as absent once it has passed and are removed by Prune. The
// guarantees rest on inserts into unique keys (CreateClient, CreateUser,
// Mark): updates (the Put methods) may be last-writer-wins, as on
// FerretDB 1.x, and only ever touch records one actor owns. The backends
// are smart/sqlitestate and smart/mongostate; smart/statetest checks them.
type Store interface {
	// Keys lists the signing keys; PutKey inserts or replaces one by kid.
	Keys(ctx context.Context) ([]SigningKey, error)
	PutKey(ctx context.Context, k SigningKey) error
	DeleteKey(ctx context.Context, kid string) error

	Client(ctx context.Context, id string) (Client, error)
	Clients(ctx context.Context) ([]Client, error)
	CreateClient(ctx context.Context, c Client) error // ErrExists
	DeleteClient(ctx context.Context, id string) error

	User(ctx context.Context, username string) (User, error)
	Users(ctx context.Context) ([]User, error)
	CreateUser(ctx context.Context, u User) error // ErrExists
	DeleteUser(ctx context.Context, username string) error

	// PutCode stores an authorization code; TakeCode returns it once: a
	// second take (or one after expiry) is ErrUsed or ErrNotFound.
	PutCode(ctx context.Context, c Code) error
	TakeCode(ctx context.Context, id string) (Code, error)

	PutRefresh(ctx context.Context, r Refresh) error
	Refresh(ctx context.Context, id string) (Refresh, error)

	PutLaunch(ctx context.Context, l Launch) error
	Launch(ctx context.Context, id string) (Launch, error)

	PutSession(ctx context.Context, s Session) error
	Session(ctx context.Context, id string) (Session, error)
	DeleteSession(ctx context.Context, id string) error

	PutRequest(ctx context.Context, r AuthRequest) error
	Request(ctx context.Context, id string) (AuthRequest, error)

	// Mark sets the mark kind/id until the given time (zero: for ever) and
	// fails with ErrUsed when it is already set: the one atomic step the
	// server builds single use on.
	Mark(ctx context.Context, kind MarkKind, id string, until time.Time) error
	Marked(ctx context.Context, kind MarkKind, id string) (bool, error)

	// Prune removes the records expired at now.
	Prune(ctx context.Context, now time.Time) error
	Close(ctx context.Context) error
}

// MarkKind names a set of marks.
type MarkKind string

// The marks the server sets.
const (
	MarkCode      MarkKind = "code"      // an authorization code was redeemed
	MarkRefresh   MarkKind = "refresh"   // a refresh token was rotated
	MarkFamily    MarkKind = "family"    // a refresh-token family is revoked
	MarkAssertion MarkKind = "assertion" // a client assertion's jti (client|jti) was used
	MarkRevoked   MarkKind = "revoked"   // an access token (jti) is revoked
	MarkBootstrap MarkKind = "bootstrap" // the admin client was created once
)

// SigningKey is one of the server's token-signing keys.
type SigningKey struct {
	ID      string          `json:"kid"`
	JWK     json.RawMessage `json:"jwk"` // the private key as a JWK
	Created time.Time       `json:"created"`
	Retired time.Time       `json:"retired,omitzero"` // zero while current
}

// ClientType is how a client authenticates.
type ClientType string

// The client types.
const (
	ClientPublic     ClientType = "public"                  // no credentials; PKCE required
	ClientSymmetric  ClientType = "confidential-symmetric"  // client_secret_basic
	ClientAsymmetric ClientType = "confidential-asymmetric" // private_key_jwt
)

// Client is a registered application.
type Client struct {
	ID           string          `json:"id"`
	Name         string          `json:"name,omitempty"`
	Type         ClientType      `json:"type"`
	RedirectURIs []string        `json:"redirect_uris,omitempty"`
	Scopes       []string        `json:"scopes,omitempty"`   // allowed scope patterns
	JWKS         json.RawMessage `json:"jwks,omitempty"`     // public keys, inline
	JWKSURI      string          `json:"jwks_uri,omitempty"` // or by URL
	SecretHash   string          `json:"secret_hash,omitempty"`
	Created      time.Time       `json:"created"`
}

// User is someone who logs in on the login page.
type User struct {
	Username     string    `json:"username"`
	PasswordHash string    `json:"password_hash"` // argon2id, PHC string form
	FHIRUser     string    `json:"fhir_user,omitempty"`
	Created      time.Time `json:"created"`
}

// Context is the launch context a token carries.
type Context struct {
	Patient     string          `json:"patient,omitempty"`
	Encounter   string          `json:"encounter,omitempty"`
	FHIRContext json.RawMessage `json:"fhirContext,omitempty"`
	Intent      string          `json:"intent,omitempty"`
	NeedBanner  bool            `json:"need_patient_banner,omitempty"`
}

// Code is an authorization code, stored under the hash of its value.
type Code struct {
	ID          string    `json:"id"`
	ClientID    string    `json:"client_id"`
	RedirectURI string    `json:"redirect_uri"`
	Challenge   string    `json:"code_challenge,omitempty"`
	Scope       string    `json:"scope"`
	Audience    string    `json:"aud"`
	Username    string    `json:"username"`
	FHIRUser    string    `json:"fhir_user,omitempty"`
	Nonce       string    `json:"nonce,omitempty"`
	Family      string    `json:"family"` // of the refresh tokens it yields
	Context     Context   `json:"context"`
	AuthTime    time.Time `json:"auth_time"`
	Expires     time.Time `json:"exp"`
}

// Refresh is a refresh token, stored under the hash of its value. Each use
// replaces it by a new one of the same family; using a replaced one
// revokes the family.
type Refresh struct {
	ID       string    `json:"id"`
	Family   string    `json:"family"`
	ClientID string    `json:"client_id"`
	Scope    string    `json:"scope"`
	Audience string    `json:"aud"`
	Username string    `json:"username"`
	FHIRUser string    `json:"fhir_user,omitempty"`
	Context  Context   `json:"context"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"exp"`
}

// Launch is an EHR launch context, named by the opaque launch value.
type Launch struct {
	ID      string    `json:"id"`
	Context Context   `json:"context"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"exp"`
}

// Session is a browser's session with the login pages (the session
// cookie's value is its ID).
type Session struct {
	ID       string    `json:"id"`
	CSRF     string    `json:"csrf"`
	Username string    `json:"username,omitempty"` // empty until logged in
	AuthTime time.Time `json:"auth_time,omitzero"`
	Expires  time.Time `json:"exp"`
}

// AuthRequest is an authorization request between /auth/authorize and the
// redirect back to the client, bound to the session that started it.
type AuthRequest struct {
	ID          string    `json:"id"`
	SessionID   string    `json:"session"`
	ClientID    string    `json:"client_id"`
	RedirectURI string    `json:"redirect_uri"`
	Scope       string    `json:"scope"`
	State       string    `json:"state,omitempty"`
	Nonce       string    `json:"nonce,omitempty"`
	Challenge   string    `json:"code_challenge,omitempty"`
	Audience    string    `json:"aud"`
	Context     Context   `json:"context"`
	Expires     time.Time `json:"exp"`
}

// Records is what a Store backend provides: JSON records by kind and id,
// each with an optional expiry. A record whose expiry has passed reads as
// absent. RecordStore builds the Store's methods on it.
type Records interface {
	// Put writes a record (exp zero: it never expires); with replace false
	// it fails with ErrExists when the id is taken by a record not yet
	// expired, atomically: of concurrent puts of one id, one wins.
	Put(ctx context.Context, kind, id string, data []byte, exp time.Time, replace bool) error
	// Get reads a live record; ErrNotFound when there is none.
	Get(ctx context.Context, kind, id string) ([]byte, error)
	// List reads the live records of a kind, in id order.
	List(ctx context.Context, kind string) ([][]byte, error)
	// Delete removes a record; ErrNotFound when there is none.
	Delete(ctx context.Context, kind, id string) error
	// Prune removes the records of every kind expired at now.
	Prune(ctx context.Context, now time.Time) error
}

// The record kinds; each is a table's kind value in SQLite and the
// collection auth_<kind> in MongoDB.
const (
	kindKeys     = "keys"
	kindClients  = "clients"
	kindUsers    = "users"
	kindCodes    = "codes"
	kindRefresh  = "refresh"
	kindLaunches = "launches"
	kindSessions = "sessions"
	kindRequests = "requests"
	kindMarks    = "marks"
)

// RecordKinds lists the kinds of record a RecordStore writes, for backends
// that keep each kind apart (a collection per kind).
func RecordKinds() []string {
	return []string{kindKeys, kindClients, kindUsers, kindCodes, kindRefresh, kindLaunches, kindSessions, kindRequests, kindMarks}
}

// RecordStore implements Store on Records, all but Close. A backend embeds
// it, sets Records when it opens, and adds Close.
type RecordStore struct {
	Records Records
}

func putJSON(ctx context.Context, r Records, kind, id string, v any, exp time.Time, replace bool) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("smart: encode %s: %w", kind, err)
	}
	return r.Put(ctx, kind, id, b, exp, replace)
}

func getJSON[T any](ctx context.Context, r Records, kind, id string) (T, error) {
	var v T
	b, err := r.Get(ctx, kind, id)
	if err != nil {
		return v, err
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("smart: decode %s %q: %w", kind, id, err)
	}
	return v, nil
}

func listJSON[T any](ctx context.Context, r Records, kind string) ([]T, error) {
	bs, err := r.List(ctx, kind)
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(bs))
	for _, b := range bs {
		var v T
		if err := json.Unmarshal(b, &v); err != nil {
			return nil, fmt.Errorf("smart: decode %s: %w", kind, err)
		}
		out = append(out, v)
	}
	return out, nil
}

func (rs RecordStore) Keys(ctx context.Context) ([]SigningKey, error) {
	return listJSON[SigningKey](ctx, rs.Records, kindKeys)
}
func (rs RecordStore) PutKey(ctx context.Context, k SigningKey) error {
	return putJSON(ctx, rs.Records, kindKeys, k.ID, k, time.Time{}, true)
}
func (rs RecordStore) DeleteKey(ctx context.Context, kid string) error {
	return rs.Records.Delete(ctx, kindKeys, kid)
}

func (rs RecordStore) Client(ctx context.Context, id string) (Client, error) {
	return getJSON[Client](ctx, rs.Records, kindClients, id)
}
func (rs RecordStore) Clients(ctx context.Context) ([]Client, error) {
	return listJSON[Client](ctx, rs.Records, kindClients)
}
func (rs RecordStore) CreateClient(ctx context.Context, c Client) error {
	return putJSON(ctx, rs.Records, kindClients, c.ID, c, time.Time{}, false)
}
func (rs RecordStore) DeleteClient(ctx context.Context, id string) error {
	return rs.Records.Delete(ctx, kindClients, id)
}

func (rs RecordStore) User(ctx context.Context, username string) (User, error) {
	return getJSON[User](ctx, rs.Records, kindUsers, username)
}
func (rs RecordStore) Users(ctx context.Context) ([]User, error) {
	return listJSON[User](ctx, rs.Records, kindUsers)
}
func (rs RecordStore) CreateUser(ctx context.Context, u User) error {
	return putJSON(ctx, rs.Records, kindUsers, u.Username, u, time.Time{}, false)
}
func (rs RecordStore) DeleteUser(ctx context.Context, username string) error {
	return rs.Records.Delete(ctx, kindUsers, username)
}

func (rs RecordStore) PutCode(ctx context.Context, c Code) error {
	return putJSON(ctx, rs.Records, kindCodes, c.ID, c, c.Expires, false)
}
func (rs RecordStore) TakeCode(ctx context.Context, id string) (Code, error) {
	c, err := getJSON[Code](ctx, rs.Records, kindCodes, id)
	if err != nil {
		return c, err
	}
	if err := rs.Mark(ctx, MarkCode, id, c.Expires); err != nil {
		return c, err
	}
	return c, nil
}

func (rs RecordStore) PutRefresh(ctx context.Context, r Refresh) error {
	return putJSON(ctx, rs.Records, kindRefresh, r.ID, r, r.Expires, false)
}
func (rs RecordStore) Refresh(ctx context.Context, id string) (Refresh, error) {
	return getJSON[Refresh](ctx, rs.Records, kindRefresh, id)
}

func (rs RecordStore) PutLaunch(ctx context.Context, l Launch) error {
	return putJSON(ctx, rs.Records, kindLaunches, l.ID, l, l.Expires, false)
}
func (rs RecordStore) Launch(ctx context.Context, id string) (Launch, error) {
	return getJSON[Launch](ctx, rs.Records, kindLaunches, id)
}

func (rs RecordStore) PutSession(ctx context.Context, s Session) error {
	return putJSON(ctx, rs.Records, kindSessions, s.ID, s, s.Expires, true)
}
func (rs RecordStore) Session(ctx context.Context, id string) (Session, error) {
	return getJSON[Session](ctx, rs.Records, kindSessions, id)
}
func (rs RecordStore) DeleteSession(ctx context.Context, id string) error {
	return rs.Records.Delete(ctx, kindSessions, id)
}

func (rs RecordStore) PutRequest(ctx context.Context, r AuthRequest) error {
	return putJSON(ctx, rs.Records, kindRequests, r.ID, r, r.Expires, true)
}
func (rs RecordStore) Request(ctx context.Context, id string) (AuthRequest, error) {
	return getJSON[AuthRequest](ctx, rs.Records, kindRequests, id)
}

func (rs RecordStore) Mark(ctx context.Context, kind MarkKind, id string, until time.Time) error {
	err := rs.Records.Put(ctx, kindMarks, string(kind)+"/"+id, []byte("{}"), until, false)
	if errors.Is(err, ErrExists) {
		return ErrUsed
	}
	return err
}
func (rs RecordStore) Marked(ctx context.Context, kind MarkKind, id string) (bool, error) {
	_, err := rs.Records.Get(ctx, kindMarks, string(kind)+"/"+id)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ErrNotFound):
		return false, nil
	}
	return false, err
}

func (rs RecordStore) Prune(ctx context.Context, now time.Time) error {
	return rs.Records.Prune(ctx, now)
}
