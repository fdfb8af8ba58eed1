package sqlitestore_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/fhirhub/fhirhub/fhir"
	"github.com/fhirhub/fhirhub/fhir/sqlitestore"
)

// schemaV2 is the schema as version 2 made it: current WITHOUT ROWID and
// index rows named by (type, id).
const schemaV2 = `
CREATE TABLE versions (seq INTEGER PRIMARY KEY AUTOINCREMENT, type TEXT NOT NULL, id TEXT NOT NULL,
	version INTEGER NOT NULL, op TEXT NOT NULL, ts INTEGER NOT NULL, json BLOB, UNIQUE (type, id, version));
CREATE INDEX versions_type_seq ON versions (type, seq);
CREATE INDEX versions_ts ON versions (ts);
CREATE TABLE current (type TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, seq INTEGER NOT NULL,
	deleted INTEGER NOT NULL, ts INTEGER NOT NULL, PRIMARY KEY (type, id)) WITHOUT ROWID;
CREATE INDEX current_type_ts ON current (type, ts);
CREATE TABLE idx_token (type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL, comp INTEGER NOT NULL, grp INTEGER NOT NULL,
	system TEXT NOT NULL, code TEXT NOT NULL, text TEXT NOT NULL, idtype TEXT NOT NULL);
CREATE INDEX idx_token_code ON idx_token (type, param, code, system);
CREATE INDEX idx_token_res ON idx_token (type, id, param);
CREATE TABLE idx_string (type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL, comp INTEGER NOT NULL, grp INTEGER NOT NULL,
	norm TEXT NOT NULL, exact TEXT NOT NULL);
CREATE INDEX idx_string_norm ON idx_string (type, param, norm);
CREATE INDEX idx_string_res ON idx_string (type, id, param);
CREATE TABLE idx_number (type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL, comp INTEGER NOT NULL, grp INTEGER NOT NULL,
	lo REAL NOT NULL, hi REAL NOT NULL, system TEXT NOT NULL, code TEXT NOT NULL, unit TEXT NOT NULL);
CREATE INDEX idx_number_lo ON idx_number (type, param, lo);
CREATE INDEX idx_number_res ON idx_number (type, id, param);
CREATE TABLE idx_date (type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL, comp INTEGER NOT NULL, grp INTEGER NOT NULL,
	start INTEGER NOT NULL, end INTEGER NOT NULL);
CREATE INDEX idx_date_start ON idx_date (type, param, start);
CREATE INDEX idx_date_res ON idx_date (type, id, param);
CREATE TABLE idx_ref (type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL, comp INTEGER NOT NULL, grp INTEGER NOT NULL,
	rtype TEXT NOT NULL, rid TEXT NOT NULL, rver TEXT NOT NULL, rurl TEXT NOT NULL);
CREATE INDEX idx_ref_target ON idx_ref (type, param, rid, rtype);
CREATE INDEX idx_ref_back ON idx_ref (rtype, rid, param, type);
CREATE INDEX idx_ref_url ON idx_ref (type, param, rurl);
CREATE INDEX idx_ref_res ON idx_ref (type, id, param);
INSERT INTO versions (type, id, version, op, ts, json) VALUES
	('Patient', 'a', 1, 'create', 1000, '{"resourceType":"Patient","id":"a"}'),
	('Patient', 'b', 1, 'create', 2000, '{"resourceType":"Patient","id":"b"}'),
	('Patient', 'a', 2, 'update', 3000, '{"resourceType":"Patient","id":"a","gender":"female"}');
INSERT INTO current VALUES ('Patient', 'a', 2, 3, 0, 3000), ('Patient', 'b', 1, 2, 0, 2000);
INSERT INTO idx_token VALUES ('Patient', 'a', 'gender', 0, 0, 'http://hl7.org/fhir/administrative-gender', 'female', '', ''),
	('Patient', 'b', 'identifier', 0, 0, 'urn:s', 'b1', '', '');
INSERT INTO idx_date VALUES ('Patient', 'b', 'birthdate', 0, 0, 10, 20);
PRAGMA user_version = 2;
`

// TestMigrateFromVersion2 opens a database of schema version 2 and checks
// that every resource, version and index entry is still there and found.
func TestMigrateFromVersion2(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "fhir.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(schemaV2); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s := sqlitestore.New(dir)
	if err := s.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	if r, err := s.Read(ctx, "Patient", "a"); err != nil || r.Version != 2 {
		t.Fatalf("Patient/a after migration: v%d, %v; want v2", r.Version, err)
	}
	if chs, err := s.Changes(ctx, 0, 10); err != nil || len(chs) != 3 {
		t.Fatalf("after migration: %d changes, %v; want 3", len(chs), err)
	}
	find := func(param, system, code string) []string {
		t.Helper()
		rs, err := s.Find(ctx, fhir.Match{Type: "Patient", Tokens: []fhir.TokenMatch{{Param: param, Values: []fhir.TokenValue{{System: system, Code: code}}}}})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range rs {
			ids = append(ids, r.ID)
		}
		return ids
	}
	if got := find("gender", "http://hl7.org/fhir/administrative-gender", "female"); len(got) != 1 || got[0] != "a" {
		t.Errorf("gender=female after migration: %v, want [a]", got)
	}
	if got := find("identifier", "urn:s", "b1"); len(got) != 1 || got[0] != "b" {
		t.Errorf("identifier=urn:s|b1 after migration: %v, want [b]", got)
	}
	// A new version replaces the migrated entries instead of adding to them.
	if _, err := s.Write(ctx, fhir.Write{Type: "Patient", ID: "a", Version: 3, Op: fhir.OpUpdate, JSON: []byte(`{"resourceType":"Patient","id":"a"}`),
		Index: []fhir.IndexEntry{{Param: "gender", Type: fhir.TypeToken, System: "http://hl7.org/fhir/administrative-gender", Code: "male"}}}); err != nil {
		t.Fatal(err)
	}
	if got := find("gender", "http://hl7.org/fhir/administrative-gender", "female"); len(got) != 0 {
		t.Errorf("gender=female after rewriting a: %v, want none", got)
	}
	if got := find("gender", "http://hl7.org/fhir/administrative-gender", "male"); len(got) != 1 {
		t.Errorf("gender=male after rewriting a: %v, want [a]", got)
	}
	if _, err := s.Write(ctx, fhir.Write{Type: "Patient", ID: "c", Version: 1, Op: fhir.OpCreate, JSON: []byte(`{"resourceType":"Patient","id":"c"}`)}); err != nil {
		t.Fatalf("a new resource after migration: %v", err)
	}

	// The database says version 3 and reopens without migrating again.
	s.Close(ctx)
	db, _ = sql.Open("sqlite", "file:"+filepath.Join(dir, "fhir.db"))
	defer db.Close()
	var v, dates int
	db.QueryRow("PRAGMA user_version").Scan(&v)
	db.QueryRow("SELECT count(*) FROM idx_date d JOIN current c ON c.rk = d.rk WHERE c.id = 'b'").Scan(&dates)
	if v != 3 || dates != 1 {
		t.Errorf("after migration: user_version %d, %d date entries of b; want 3 and 1", v, dates)
	}
	s2 := sqlitestore.New(dir)
	if err := s2.Open(ctx); err != nil {
		t.Fatalf("reopen: %v", err)
	}
	s2.Close(ctx)
}
