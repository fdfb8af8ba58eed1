package search

import (
	"context"
	"encoding/base64"
	"encoding/json"

	"github.com/fhirhub/fhirhub/fhir"
)

// Backend is the optional power of a store to search its index. A store
// implements it over the entries it keeps from fhir.Write.Index; its answers
// must equal Match's on the same entries.
type Backend interface {
	Search(ctx context.Context, q *Query, page Page) (*Result, error)
}

// Page selects one page of results in the query's order (its _sort keys,
// then type and id).
type Page struct {
	Count int // at most this many (required, > 0)
	// After continues after the position of a previous page's last result;
	// Before pages backwards from a previous page's first result. Both nil:
	// the first page.
	After, Before *Cursor
	// Total asks for the number of all matches.
	Total bool
}

// Cursor is a position in a result order: the sort values and the type and
// id of a result. It is opaque to clients (see Encode).
type Cursor struct {
	Keys []SortValue `json:"k,omitempty"`
	Type string      `json:"t,omitempty"`
	ID   string      `json:"i"`
}

// SortValue is one sort key's value at a position (Null when the resource
// has no value; those sort last).
type SortValue struct {
	Str  string  `json:"s,omitempty"`
	Num  float64 `json:"n,omitempty"`
	Int  int64   `json:"i,omitempty"` // dates and times: exact
	Null bool    `json:"z,omitempty"`
}

// Result is one page of matches.
type Result struct {
	Resources []fhir.Resource
	// Cursors holds the position of each resource, for paging links.
	Cursors []Cursor
	// More is true when results exist beyond this page in its direction.
	More bool
	// Total is the number of all matches when Page.Total asked, else -1.
	Total int64
}

// Encode writes the cursor as an opaque token for a paging link.
func (c Cursor) Encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeCursor reads a token made by Encode.
func DecodeCursor(s string) (*Cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, fhir.Invalid("_cursor", "the page position %q was not made by this server", s)
	}
	var c Cursor
	if err := json.Unmarshal(b, &c); err != nil || c.ID == "" {
		return nil, fhir.Invalid("_cursor", "the page position %q was not made by this server", s)
	}
	return &c, nil
}
