package fhir

import (
	"strconv"
	"time"
)

// Op is what a stored version did to its resource.
type Op string

// The operations a version records.
const (
	OpCreate Op = "create"
	OpUpdate Op = "update"
	OpDelete Op = "delete"
)

// Resource is one stored version of a resource. JSON is the resource exactly as
// the client wrote it, with meta.versionId and meta.lastUpdated set by the
// server; it is nil for a deletion.
type Resource struct {
	Type        string
	ID          string
	Version     int64
	LastUpdated time.Time
	Op          Op
	JSON        []byte
}

// Deleted reports whether this version is a deletion.
func (r *Resource) Deleted() bool { return r.Op == OpDelete }

// VersionID is the version as FHIR writes it (meta.versionId).
func (r *Resource) VersionID() string { return strconv.FormatInt(r.Version, 10) }

// Ref is the relative reference Type/id.
func (r *Resource) Ref() string { return r.Type + "/" + r.ID }

// Change is one committed write: the version it produced and its position in the
// store's change feed. Seq is unique, and a consumer reading the feed in Seq
// order sees every committed write exactly once, in commit order.
type Change struct {
	Seq int64
	Resource
}

// Token is a token index entry (Param, System, Code set).
type Token = IndexEntry

// Write is one version to append. The store applies it only if the resource's
// current version is Version-1 (no version at all when Version is 1); otherwise
// it fails with ErrVersionConflict and changes nothing.
type Write struct {
	Type        string
	ID          string
	Version     int64
	LastUpdated time.Time
	Op          Op
	JSON        []byte       // nil for OpDelete
	Index       []IndexEntry // index entries of this version (none for a delete)
}

// ValidID reports whether id is a valid FHIR resource id: 1 to 64 of
// A-Z a-z 0-9 - and . ([A-Za-z0-9\-\.]{1,64}).
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// FormatInstant writes t as a FHIR instant with millisecond precision in UTC.
func FormatInstant(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}
