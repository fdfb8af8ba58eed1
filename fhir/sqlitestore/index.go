package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/fhirhub/fhirhub/fhir"
)

// The index tables hold the search entries (fhir.IndexEntry) of current
// versions only, one table per kind of value, each with the indexes its
// comparisons need. A write replaces a resource's rows in the same
// transaction as the version, so the index never disagrees with the data.
const indexSchema = `
CREATE TABLE IF NOT EXISTS idx_token (
	type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL, comp INTEGER NOT NULL, grp INTEGER NOT NULL,
	system TEXT NOT NULL, code TEXT NOT NULL, text TEXT NOT NULL, idtype TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS idx_token_code ON idx_token (type, param, code, system);
CREATE INDEX IF NOT EXISTS idx_token_res ON idx_token (type, id, param);
CREATE TABLE IF NOT EXISTS idx_string (
	type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL, comp INTEGER NOT NULL, grp INTEGER NOT NULL,
	norm TEXT NOT NULL, exact TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS idx_string_norm ON idx_string (type, param, norm);
CREATE INDEX IF NOT EXISTS idx_string_res ON idx_string (type, id, param);
CREATE TABLE IF NOT EXISTS idx_number (
	type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL, comp INTEGER NOT NULL, grp INTEGER NOT NULL,
	lo REAL NOT NULL, hi REAL NOT NULL, system TEXT NOT NULL, code TEXT NOT NULL, unit TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS idx_number_lo ON idx_number (type, param, lo);
CREATE INDEX IF NOT EXISTS idx_number_res ON idx_number (type, id, param);
CREATE TABLE IF NOT EXISTS idx_date (
	type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL, comp INTEGER NOT NULL, grp INTEGER NOT NULL,
	start INTEGER NOT NULL, end INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS idx_date_start ON idx_date (type, param, start);
CREATE INDEX IF NOT EXISTS idx_date_res ON idx_date (type, id, param);
CREATE TABLE IF NOT EXISTS idx_ref (
	type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL, comp INTEGER NOT NULL, grp INTEGER NOT NULL,
	rtype TEXT NOT NULL, rid TEXT NOT NULL, rver TEXT NOT NULL, rurl TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS idx_ref_target ON idx_ref (type, param, rid, rtype);
CREATE INDEX IF NOT EXISTS idx_ref_back ON idx_ref (rtype, rid, param, type);
CREATE INDEX IF NOT EXISTS idx_ref_url ON idx_ref (type, param, rurl);
CREATE INDEX IF NOT EXISTS idx_ref_res ON idx_ref (type, id, param);
`

var indexTables = []string{"idx_token", "idx_string", "idx_number", "idx_date", "idx_ref"}

// schemaVersion is PRAGMA user_version of a database this code made.
const schemaVersion = 2

// migrate brings a database made by an older version up to schemaVersion.
func migrate(ctx context.Context, db *sql.DB) error {
	var v int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("sqlitestore: read schema version: %w", err)
	}
	if v > schemaVersion {
		return fmt.Errorf("sqlitestore: the database has schema version %d, newer than this server's %d", v, schemaVersion)
	}
	if _, err := db.ExecContext(ctx, indexSchema); err != nil {
		return fmt.Errorf("sqlitestore: create index tables: %w", err)
	}
	if _, err := db.ExecContext(ctx, "DROP TABLE IF EXISTS tokens"); err != nil {
		return fmt.Errorf("sqlitestore: drop the version 1 token table: %w", err)
	}
	// Version 1 had no search index: resources written then are searchable
	// after a $reindex. Nothing else changed.
	if _, err := db.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", schemaVersion)); err != nil {
		return fmt.Errorf("sqlitestore: set schema version: %w", err)
	}
	return nil
}

// indexStmts are the writer's prepared statements for the index tables.
type indexStmts struct {
	del                           map[string]*sql.Stmt
	token, str, number, date, ref *sql.Stmt
}

func (s *Store) prepareIndex(ctx context.Context) error {
	s.ix.del = map[string]*sql.Stmt{}
	for _, t := range indexTables {
		st, err := s.wdb.PrepareContext(ctx, "DELETE FROM "+t+" WHERE type = ? AND id = ?")
		if err != nil {
			return fmt.Errorf("sqlitestore: prepare: %w", err)
		}
		s.ix.del[t] = st
	}
	var err error
	p := func(q string) *sql.Stmt {
		if err != nil {
			return nil
		}
		var st *sql.Stmt
		st, err = s.wdb.PrepareContext(ctx, q)
		return st
	}
	s.ix.token = p("INSERT INTO idx_token (type, id, param, comp, grp, system, code, text, idtype) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
	s.ix.str = p("INSERT INTO idx_string (type, id, param, comp, grp, norm, exact) VALUES (?, ?, ?, ?, ?, ?, ?)")
	s.ix.number = p("INSERT INTO idx_number (type, id, param, comp, grp, lo, hi, system, code, unit) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
	s.ix.date = p("INSERT INTO idx_date (type, id, param, comp, grp, start, end) VALUES (?, ?, ?, ?, ?, ?, ?)")
	s.ix.ref = p("INSERT INTO idx_ref (type, id, param, comp, grp, rtype, rid, rver, rurl) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
	if err != nil {
		return fmt.Errorf("sqlitestore: prepare index statements: %w", err)
	}
	return nil
}

func (s *Store) closeIndexStmts() {
	for _, st := range s.ix.del {
		_ = st.Close()
	}
	for _, st := range []*sql.Stmt{s.ix.token, s.ix.str, s.ix.number, s.ix.date, s.ix.ref} {
		if st != nil {
			_ = st.Close()
		}
	}
}

// tableOf is the index table an entry goes to.
func tableOf(e fhir.IndexEntry) string {
	switch e.Type {
	case fhir.TypeString, fhir.TypeURI:
		return "idx_string"
	case fhir.TypeNumber, fhir.TypeQuantity, fhir.TypeSpecial:
		return "idx_number"
	case fhir.TypeDate:
		return "idx_date"
	case fhir.TypeReference:
		if e.RefID == "" && e.RefURL == "" {
			return "idx_token" // Reference.identifier, for :identifier
		}
		return "idx_ref"
	}
	return "idx_token"
}

// writeIndex replaces the index rows of typ/id with entries (none for a delete).
func (s *Store) writeIndex(ctx context.Context, tx *sql.Tx, typ, id string, existed bool, entries []fhir.IndexEntry) error {
	if existed {
		for _, t := range indexTables {
			if _, err := tx.StmtContext(ctx, s.ix.del[t]).ExecContext(ctx, typ, id); err != nil {
				return fmt.Errorf("sqlitestore: drop index of %s/%s: %w", typ, id, err)
			}
		}
	}
	for _, e := range entries {
		var err error
		switch tableOf(e) {
		case "idx_string":
			str := e.Str
			if e.Type == fhir.TypeURI {
				_, err = tx.StmtContext(ctx, s.ix.str).ExecContext(ctx, typ, id, e.Param, e.Comp, e.Group, str, str)
			} else {
				_, err = tx.StmtContext(ctx, s.ix.str).ExecContext(ctx, typ, id, e.Param, e.Comp, e.Group, str, e.Exact)
			}
		case "idx_number":
			_, err = tx.StmtContext(ctx, s.ix.number).ExecContext(ctx, typ, id, e.Param, e.Comp, e.Group, e.Low, e.High, e.System, e.Code, e.Exact)
		case "idx_date":
			_, err = tx.StmtContext(ctx, s.ix.date).ExecContext(ctx, typ, id, e.Param, e.Comp, e.Group, e.Start, e.End)
		case "idx_ref":
			_, err = tx.StmtContext(ctx, s.ix.ref).ExecContext(ctx, typ, id, e.Param, e.Comp, e.Group, e.RefType, e.RefID, e.RefVersion, e.RefURL)
		default:
			_, err = tx.StmtContext(ctx, s.ix.token).ExecContext(ctx, typ, id, e.Param, e.Comp, e.Group, e.System, e.Code, e.Text, e.IDType)
		}
		if err != nil {
			return fmt.Errorf("sqlitestore: index %s/%s: %w", typ, id, err)
		}
	}
	return nil
}
