package searchtest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Synthea streams the resources of a Synthea FHIR R4 export: the transaction
// Bundles in dir/*.json.gz (the SMART sample set: one per patient, plus the
// hospitalInformation* and practitionerInformation* Bundles of the shared
// Organizations and Practitioners). It calls each once per resource, in load
// order: the hospital and practitioner Bundles first, then the others sorted
// by file name, each Bundle's entries in their order. It returns how many
// resources it passed to each; an error from each stops it.
//
// Each resource is made ready for a PUT to Type/id:
//   - its id is the uuid of its entry's fullUrl (urn:uuid:X gives X, a valid
//     FHIR id), and the body's id is set to it;
//   - every reference "urn:uuid:X" becomes "Type/X", Type being that of the
//     entry whose fullUrl is urn:uuid:X (in the same Bundle, or a shared
//     resource seen before);
//   - every conditional reference "Type?identifier=system|value" becomes
//     "Type/id" of the resource of Type with that identifier (in the same
//     Bundle, or a shared resource seen before); entries with
//     request.ifNoneExist "identifier=system|value" that match a resource
//     already seen are not loaded again (their fullUrl then stands for it).
//     The SMART set uses neither; newer Synthea exports do;
//   - the body is compact JSON, members in their order, numbers as written.
//
// The patient Bundles repeat the Organizations and Practitioners their
// patients saw, under the same fullUrls as the hospital and practitioner
// Bundles (the copies lack only the utilization extensions). A resource whose
// Type/id was already loaded is skipped: the first copy, the fuller one, is
// the one loaded. In the SMART set that leaves 189,111 resources of the
// 191,093 entries.
//
// Files that are not gzip data are skipped (the SMART set's
// patient-0338.json.gz is the upstream license text). Only one Bundle is in
// memory at a time, plus the ids and identifiers of the shared resources
// (Organization, Practitioner, PractitionerRole, Location, and everything in
// the hospital and practitioner Bundles). each may keep body.
func Synthea(dir string, each func(typ, id string, body []byte) error) (n int, err error) {
	files, err := syntheaFiles(dir)
	if err != nil {
		return 0, err
	}
	l := &loader{
		shared:      map[string]string{},
		sharedIdent: map[string]string{},
		loaded:      map[string]bool{},
	}
	for _, f := range files {
		k, err := l.file(f, each)
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// syntheaFiles lists the Bundles of dir in load order.
func syntheaFiles(dir string) ([]string, error) {
	all, err := filepath.Glob(filepath.Join(dir, "*.json.gz"))
	if err != nil {
		return nil, fmt.Errorf("searchtest: list %s: %w", dir, err)
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("searchtest: no *.json.gz Bundles in %s", dir)
	}
	sort.Slice(all, func(i, j int) bool {
		if si, sj := sharedFile(all[i]), sharedFile(all[j]); si != sj {
			return si
		}
		return all[i] < all[j]
	})
	return all, nil
}

// sharedFile reports whether path is a Bundle of resources shared by the
// patients (hospitalInformation*, practitionerInformation*).
func sharedFile(path string) bool {
	b := filepath.Base(path)
	return strings.HasPrefix(b, "hospitalInformation") || strings.HasPrefix(b, "practitionerInformation")
}

// loader carries what references in later Bundles may resolve to.
type loader struct {
	shared      map[string]string // fullUrl of a shared resource → Type/id
	sharedIdent map[string]string // Type|system|value of a shared resource → id
	loaded      map[string]bool   // Type/id of the shared resources loaded
}

// sharedTypes are the types Synthea lets several patients refer to.
var sharedTypes = map[string]bool{"Organization": true, "Practitioner": true, "PractitionerRole": true, "Location": true}

type syntheaBundle struct {
	Entry []struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Request  struct {
			IfNoneExist string `json:"ifNoneExist"`
		} `json:"request"`
	} `json:"entry"`
}

// head is the part of a resource the loader reads.
type head struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	Identifier   []struct {
		System string `json:"system"`
		Value  string `json:"value"`
	} `json:"identifier"`
}

// file loads one Bundle.
func (l *loader) file(path string, each func(typ, id string, body []byte) error) (int, error) {
	b, err := readBundle(path)
	if err != nil || b == nil {
		return 0, err
	}
	allShared := sharedFile(path)
	// Identifiers are read only where something may look them up.
	conditional := false
	for _, e := range b.Entry {
		if e.Request.IfNoneExist != "" || bytes.Contains(e.Resource, []byte(`?identifier=`)) {
			conditional = true
			break
		}
	}

	// First pass: what every fullUrl and identifier of the Bundle stands for,
	// since references may point forward.
	type item struct {
		typ, id string
		skip    bool
	}
	items := make([]item, len(b.Entry))
	local := map[string]string{}      // fullUrl → Type/id
	localIdent := map[string]string{} // Type|system|value → id
	for i, e := range b.Entry {
		typ, _ := leadingMembers(e.Resource)
		var h head
		if typ == "" || conditional || sharedTypes[typ] || allShared {
			if err := json.Unmarshal(e.Resource, &h); err != nil {
				return 0, fmt.Errorf("searchtest: %s entry %d: %w", path, i, err)
			}
			typ = h.ResourceType
		}
		if typ == "" {
			return 0, fmt.Errorf("searchtest: %s entry %d has no resource", path, i)
		}
		id, ok := strings.CutPrefix(e.FullURL, "urn:uuid:")
		if !ok {
			_, id = leadingMembers(e.Resource)
			if h.ID != "" {
				id = h.ID
			}
		}
		if id == "" {
			return 0, fmt.Errorf("searchtest: %s entry %d: no urn:uuid fullUrl and no id", path, i)
		}
		it := item{typ: typ, id: id}
		if crit := e.Request.IfNoneExist; crit != "" {
			if got, ok := l.resolveIdent(typ, crit, localIdent); ok {
				it.id, it.skip = got, true // the resource exists: refer to it
			}
		}
		ref := it.typ + "/" + it.id
		keep := allShared || sharedTypes[it.typ]
		if keep && l.loaded[ref] {
			it.skip = true
		}
		if e.FullURL != "" {
			local[e.FullURL] = ref
			if keep {
				l.shared[e.FullURL] = ref
			}
		}
		for _, ident := range h.Identifier {
			key := typ + "|" + ident.System + "|" + ident.Value
			if _, dup := localIdent[key]; !dup {
				localIdent[key] = it.id
			}
			if _, dup := l.sharedIdent[key]; keep && !dup {
				l.sharedIdent[key] = it.id
			}
		}
		if keep {
			l.loaded[ref] = true
		}
		items[i] = it
	}

	// Second pass: rewrite and hand over.
	n := 0
	for i, e := range b.Entry {
		it := items[i]
		if it.skip {
			continue
		}
		body, err := rewriteReferences(e.Resource, func(ref string) (string, error) {
			return l.resolve(ref, local, localIdent)
		})
		if err != nil {
			return n, fmt.Errorf("searchtest: %s entry %d (%s/%s): %w", path, i, it.typ, it.id, err)
		}
		if body, err = setID(body, it.id); err != nil {
			return n, fmt.Errorf("searchtest: %s entry %d (%s/%s): %w", path, i, it.typ, it.id, err)
		}
		if err := each(it.typ, it.id, body); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// readBundle reads a gzipped Bundle as compact JSON; nil when the file is
// not gzip data.
func readBundle(path string) (*syntheaBundle, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("searchtest: %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<16)
	if magic, err := br.Peek(2); err != nil || magic[0] != 0x1f || magic[1] != 0x8b {
		return nil, nil
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		return nil, fmt.Errorf("searchtest: %s: %w", path, err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("searchtest: %s: %w", path, err)
	}
	// Compact once: the resources come out compact, and the scans below
	// read a third of the bytes. (Unmarshal checks the JSON.)
	var b syntheaBundle
	if err := json.Unmarshal(stripSpace(raw), &b); err != nil {
		return nil, fmt.Errorf("searchtest: %s: %w", path, err)
	}
	return &b, nil
}

// stripSpace removes the whitespace between the tokens of the JSON text b,
// as json.Compact does for valid JSON but several times faster.
func stripSpace(b []byte) []byte {
	out := make([]byte, 0, len(b)/2)
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case ' ', '\t', '\n', '\r':
		case '"':
			// Copy the string through its closing quote.
			j := i + 1
			for j < len(b) {
				k := bytes.IndexAny(b[j:], "\"\\")
				if k < 0 {
					j = len(b)
					break
				}
				j += k
				if b[j] == '"' {
					break
				}
				j += 2 // an escape and the character it escapes
			}
			end := min(j+1, len(b))
			out = append(out, b[i:end]...)
			i = end - 1
		default:
			out = append(out, c)
		}
	}
	return out
}

// leadingMembers reads the resourceType and id of a compact resource that
// starts {"resourceType":"T","id":"x" (either may be empty: unknown).
func leadingMembers(b []byte) (typ, id string) {
	rest, ok := bytes.CutPrefix(b, []byte(`{"resourceType":"`))
	if !ok {
		return "", ""
	}
	end := bytes.IndexByte(rest, '"')
	if end < 0 || bytes.IndexByte(rest[:end], '\\') >= 0 {
		return "", ""
	}
	typ, rest = string(rest[:end]), rest[end+1:]
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"id":"`)); !ok {
		return typ, ""
	}
	end = bytes.IndexByte(rest, '"')
	if end < 0 || bytes.IndexByte(rest[:end], '\\') >= 0 {
		return typ, ""
	}
	return typ, string(rest[:end])
}

// resolve maps a reference of the Bundle to Type/id; others stay as they are.
func (l *loader) resolve(ref string, local map[string]string, localIdent map[string]string) (string, error) {
	if strings.HasPrefix(ref, "urn:uuid:") {
		if to, ok := local[ref]; ok {
			return to, nil
		}
		if to, ok := l.shared[ref]; ok {
			return to, nil
		}
		return "", fmt.Errorf("the reference %q names no entry of the Bundle nor a shared resource", ref)
	}
	typ, crit, ok := strings.Cut(ref, "?")
	if !ok || typ == "" || strings.ContainsAny(typ, "/:") {
		return ref, nil // Type/id, #contained, an absolute URL
	}
	id, ok := l.resolveIdent(typ, crit, localIdent)
	if !ok {
		return "", fmt.Errorf("the conditional reference %q matches no resource loaded", ref)
	}
	return typ + "/" + id, nil
}

// resolveIdent finds the id of the resource of typ that criteria
// "identifier=system|value" select ("identifier=value": an identifier
// without a system), in the Bundle or among the shared resources.
func (l *loader) resolveIdent(typ, criteria string, localIdent map[string]string) (string, bool) {
	q, err := url.ParseQuery(criteria)
	if err != nil || len(q) != 1 || len(q["identifier"]) != 1 {
		return "", false
	}
	sys, val, ok := strings.Cut(q.Get("identifier"), "|")
	if !ok {
		val, sys = sys, ""
	}
	key := typ + "|" + sys + "|" + val
	if id, ok := localIdent[key]; ok {
		return id, true
	}
	id, ok := l.sharedIdent[key]
	return id, ok
}

// referenceKey is how a reference member starts in compact JSON. Inside a
// JSON string the quotes would be escaped, so it only ever finds members.
var referenceKey = []byte(`"reference":"`)

// rewriteReferences replaces the value of every "reference" member of the
// compact JSON b by resolve's answer.
func rewriteReferences(b []byte, resolve func(string) (string, error)) ([]byte, error) {
	if !bytes.Contains(b, referenceKey) {
		return b, nil
	}
	out := make([]byte, 0, len(b)+len(b)/8)
	for {
		i := bytes.Index(b, referenceKey)
		if i < 0 {
			return append(out, b...), nil
		}
		start := i + len(referenceKey)
		end := bytes.IndexByte(b[start:], '"')
		if end < 0 {
			return nil, errors.New("unterminated reference")
		}
		end += start
		ref := string(b[start:end])
		out = append(out, b[:start]...)
		if strings.IndexByte(ref, '\\') >= 0 {
			// An escaped character: not one of the forms resolved; find the
			// real end of the string and copy it as it is.
			var s string
			dec := json.NewDecoder(bytes.NewReader(b[start-1:]))
			if err := dec.Decode(&s); err != nil {
				return nil, fmt.Errorf("bad reference string: %w", err)
			}
			end = start - 1 + int(dec.InputOffset()) - 1
			out = append(out, b[start:end]...)
		} else {
			to, err := resolve(ref)
			if err != nil {
				return nil, err
			}
			out = append(out, to...)
		}
		b = b[end:]
	}
}

// setID makes the compact resource b carry id.
func setID(b []byte, id string) ([]byte, error) {
	if _, have := leadingMembers(b); have == id {
		return b, nil
	}
	var h struct {
		ID *string `json:"id"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, err
	}
	switch {
	case h.ID != nil && *h.ID == id:
		return b, nil
	case h.ID == nil:
		// Add it after "resourceType" when that comes first, else first.
		quoted, _ := json.Marshal(id)
		at := 1
		if m := afterResourceType(b); m > 0 {
			at = m
		}
		out := make([]byte, 0, len(b)+len(quoted)+8)
		out = append(out, b[:at]...)
		if at > 1 {
			out = append(out, ',')
		}
		out = append(out, `"id":`...)
		out = append(out, quoted...)
		if at == 1 && len(b) > 2 {
			out = append(out, ',')
		}
		return append(out, b[at:]...), nil
	}
	// A different id: rewrite it through a decoded copy.
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	m["id"] = id
	return json.Marshal(m)
}

// afterResourceType returns the offset just after a leading
// {"resourceType":"X" member, or 0.
func afterResourceType(b []byte) int {
	const prefix = `{"resourceType":"`
	if !bytes.HasPrefix(b, []byte(prefix)) {
		return 0
	}
	end := bytes.IndexByte(b[len(prefix):], '"')
	if end < 0 {
		return 0
	}
	return len(prefix) + end + 1
}
