package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// stateFileName is the state file's name in the default location.
const stateFileName = ".fhirserver-import.json"

// importState is what `fhirserver import` has loaded: the files loaded
// completely, each by absolute path with the size and modification time it
// had, so that a later run skips them while they are unchanged. It is
// rewritten after each file (a temporary file renamed over it), so it is
// whole whenever the import stops, even by kill -9. Its JSON:
//
//	{"version":1,"target":"http://127.0.0.1:8080/fhir","files":{
//	"/data/synthea/patient-0001.json.gz":{"size":42200,"modTime":"2019-05-31T16:12:43Z","resources":180,"loadedAt":"2026-11-22T08:00:00Z"}
//	}}
//
// target is where the files were loaded (a server's FHIR base, or the
// store of an offline import); a state file of another target is refused.
type importState struct {
	path string

	mu     sync.Mutex
	target string
	files  map[string]stateEntry
}

type stateEntry struct {
	Size      int64     `json:"size"`
	ModTime   time.Time `json:"modTime"`
	Resources int64     `json:"resources"`
	LoadedAt  time.Time `json:"loadedAt"`
}

const stateVersion = 1

// loadImportState reads the state file at path for target; a missing file,
// or restart, gives an empty state.
func loadImportState(path, target string, restart bool) (*importState, error) {
	st := &importState{path: path, target: target, files: map[string]stateEntry{}}
	if restart {
		return st, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the state file: %w", err)
	}
	var doc struct {
		Version int                   `json:"version"`
		Target  string                `json:"target"`
		Files   map[string]stateEntry `json:"files"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("the state file %s cannot be read (%v): pass --restart to start over", path, err)
	}
	if doc.Version != stateVersion {
		return nil, fmt.Errorf("the state file %s has version %d, not %d: pass --restart to start over", path, doc.Version, stateVersion)
	}
	if doc.Target != target {
		return nil, fmt.Errorf("the state file %s records an import into %s, not %s: pass --restart to start over, or --state another file", path, doc.Target, target)
	}
	if doc.Files != nil {
		st.files = doc.Files
	}
	return st, nil
}

// Loaded says whether the file at abs was loaded with this size and
// modification time; known says it was loaded at all.
func (st *importState) Loaded(abs string, size int64, modTime time.Time) (loaded, known bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	e, ok := st.files[abs]
	return ok && e.Size == size && e.ModTime.Equal(modTime), ok
}

// Record notes the file at abs as loaded and writes the state file.
func (st *importState) Record(abs string, size int64, modTime time.Time, resources int64) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.files[abs] = stateEntry{Size: size, ModTime: modTime, Resources: resources, LoadedAt: time.Now().UTC().Truncate(time.Second)}
	return st.write()
}

// write replaces the state file atomically: a temporary file in the same
// directory, synced, then renamed over it. One file a line keeps it readable.
func (st *importState) write() error {
	var buf bytes.Buffer
	head, _ := json.Marshal(struct {
		Version int    `json:"version"`
		Target  string `json:"target"`
	}{stateVersion, st.target})
	buf.Write(head[:len(head)-1])
	buf.WriteString(`,"files":{`)
	keys := make([]string, 0, len(st.files))
	for k := range st.files {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteByte('\n')
		kb, _ := json.Marshal(k)
		eb, _ := json.Marshal(st.files[k])
		buf.Write(kb)
		buf.WriteByte(':')
		buf.Write(eb)
	}
	buf.WriteString("\n}}\n")

	tmp, err := os.CreateTemp(filepath.Dir(st.path), ".fhirserver-import-*.tmp")
	if err != nil {
		return fmt.Errorf("write the state file: %w", err)
	}
	_, err = tmp.Write(buf.Bytes())
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), st.path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write the state file: %w", err)
	}
	return nil
}

// defaultStatePath is the state file beside the first PATH: in it when it is
// a directory, else in its directory; in the working directory when that
// one cannot be written and holds no state file yet.
func defaultStatePath(first string) string {
	dir := first
	if fi, err := os.Stat(first); err != nil || !fi.IsDir() {
		dir = filepath.Dir(first)
	}
	p := filepath.Join(dir, stateFileName)
	if _, err := os.Stat(p); err == nil {
		return p
	}
	if f, err := os.CreateTemp(dir, ".fhirserver-import-*.tmp"); err == nil {
		f.Close()
		os.Remove(f.Name())
		return p
	}
	return stateFileName
}
