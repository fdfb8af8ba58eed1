package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/fhirhub/fhirhub/fhir"
)

// The index tables hold the search entries (fhir.IndexEntry) of current
// versions only, one table per kind of value. A row names its resource by rk,
// the integer key current gives every resource once, plus its type (so a
// search narrows by type and parameter first). Each table has a search index
// led by (type, param, comp) and ending in rk, covering what its comparisons
// read, so a one-parameter search or count never touches the table itself,
// and an index on (rk, param) for sorting, composites and replacing a
// resource's rows. A write replaces a resource's rows in the same transaction
// as the version, so the index never disagrees with the data.
const indexSchema = `
CREATE TABLE IF NOT EXISTS idx_token (
	rk INTEGER NOT NULL, type TEXT NOT NULL, param TEXT NOT NULL, comp INTEGER NOT NULL, grp INTEGER NOT NULL,
	system TEXT NOT NULL, code TEXT NOT NULL, text TEXT NOT NULL, idtype TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS idx_token_code ON idx_token (type, param, comp, code, system, rk);
CREATE INDEX IF NOT EXISTS idx_token_rk ON idx_token (rk, param);
CREATE TABLE IF NOT EXISTS idx_string (
	rk INTEGER NOT NULL, type TEXT NOT NULL, param TEXT NOT NULL, comp INTEGER NOT NULL, grp INTEGER NOT NULL,
	norm TEXT NOT NULL, exact TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS idx_string_norm ON idx_string (type, param, comp, norm, rk);
CREATE INDEX IF NOT EXISTS idx_string_rk ON idx_string (rk, param);
CREATE TABLE IF NOT EXISTS idx_number (
	rk INTEGER NOT NULL, type TEXT NOT NULL, param TEXT NOT NULL, comp INTEGER NOT NULL, grp INTEGER NOT NULL,
	lo REAL NOT NULL, hi REAL NOT NULL, system TEXT NOT NULL, code TEXT NOT NULL, unit TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS idx_number_lo ON idx_number (type, param, comp, lo, hi, rk);
CREATE INDEX IF NOT EXISTS idx_number_rk ON idx_number (rk, param);
CREATE TABLE IF NOT EXISTS idx_date (
	rk INTEGER NOT NULL, type TEXT NOT NULL, param TEXT NOT NULL, comp INTEGER NOT NULL, grp INTEGER NOT NULL,
	start INTEGER NOT NULL, end INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS idx_date_start ON idx_date (type, param, comp, start, end, rk);
CREATE INDEX IF NOT EXISTS idx_date_rk ON idx_date (rk, param);
CREATE TABLE IF NOT EXISTS idx_ref (
	rk INTEGER NOT NULL, type TEXT NOT NULL, param TEXT NOT NULL, comp INTEGER NOT NULL, grp INTEGER NOT NULL,
	rtype TEXT NOT NULL, rid TEXT NOT NULL, rver TEXT NOT NULL, rurl TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS idx_ref_target ON idx_ref (type, param, comp, rid, rtype, rk);
CREATE INDEX IF NOT EXISTS idx_ref_url ON idx_ref (type, param, comp, rurl, rk);
CREATE INDEX IF NOT EXISTS idx_ref_rk ON idx_ref (rk, param);
`

var indexTables = []string{"idx_token", "idx_string", "idx_number", "idx_date", "idx_ref"}

// indexColumns are each index table's value columns, after rk, type, param,
// comp and grp.
var indexColumns = map[string][]string{
	"idx_token":  {"system", "code", "text", "idtype"},
	"idx_string": {"norm", "exact"},
	"idx_number": {"lo", "hi", "system", "code", "unit"},
	"idx_date":   {"start", "end"},
	"idx_ref":    {"rtype", "rid", "rver", "rurl"},
}

// schemaVersion is PRAGMA user_version of a database this code made.
//
//	1: versions and current (WITHOUT ROWID), a token table for conditionals
//	2: the idx_* search tables, rows named by (type, id)
//	3: current gains rk, the index rows name resources by it
const schemaVersion = 3

const currentSchema = `
CREATE TABLE IF NOT EXISTS current (
	rk      INTEGER PRIMARY KEY,
	type    TEXT    NOT NULL,
	id      TEXT    NOT NULL,
	version INTEGER NOT NULL,
	seq     INTEGER NOT NULL,
	deleted INTEGER NOT NULL,
	ts      INTEGER NOT NULL,
	UNIQUE (type, id)
);
CREATE INDEX IF NOT EXISTS current_type_ts ON current (type, ts);
`

// migrate brings a database made by an older version up to schemaVersion, in
// one transaction: a crash leaves the old schema or the new, never a mix.
func migrate(ctx context.Context, db *sql.DB) (err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlitestore: migrate: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	var v int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("sqlitestore: read schema version: %w", err)
	}
	if v > schemaVersion {
		return fmt.Errorf("sqlitestore: the database has schema version %d, newer than this server's %d", v, schemaVersion)
	}
	if v == schemaVersion {
		return tx.Rollback()
	}
	exec := func(what, q string, args ...any) {
		if err == nil {
			if _, e := tx.ExecContext(ctx, q, args...); e != nil {
				err = fmt.Errorf("sqlitestore: migrate from schema %d: %s: %w", v, what, e)
			}
		}
	}
	var hasCurrent int
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'current'").Scan(&hasCurrent); err != nil {
		return fmt.Errorf("sqlitestore: migrate: %w", err)
	}
	if hasCurrent > 0 && v < 3 {
		// Give every resource its rk: rebuild current as a rowid table.
		exec("rename current", "ALTER TABLE current RENAME TO current_old")
		exec("drop current index", "DROP INDEX IF EXISTS current_type_ts")
		exec("create current", currentSchema)
		exec("copy current", "INSERT INTO current (type, id, version, seq, deleted, ts) SELECT type, id, version, seq, deleted, ts FROM current_old ORDER BY type, id")
		exec("drop old current", "DROP TABLE current_old")
	} else {
		exec("create current", currentSchema)
	}
	exec("drop the version 1 token table", "DROP TABLE IF EXISTS tokens")
	if v == 2 {
		// Keep the entries: rename each table away, drop its indexes (their
		// names stay taken), and copy the rows over with their rk.
		for _, t := range indexTables {
			exec("rename "+t, "ALTER TABLE "+t+" RENAME TO "+t+"_old")
		}
		for _, ix := range []string{"idx_token_code", "idx_token_res", "idx_string_norm", "idx_string_res", "idx_number_lo", "idx_number_res",
			"idx_date_start", "idx_date_res", "idx_ref_target", "idx_ref_back", "idx_ref_url", "idx_ref_res"} {
			exec("drop index "+ix, "DROP INDEX IF EXISTS "+ix)
		}
	}
	exec("create index tables", indexSchema)
	if v == 2 {
		for _, t := range indexTables {
			cols := "param, comp, grp, " + strings.Join(indexColumns[t], ", ")
			exec("copy "+t, "INSERT INTO "+t+" (rk, type, "+cols+") SELECT c.rk, o.type, o."+strings.Join(strings.Split(cols, ", "), ", o.")+
				" FROM "+t+"_old o JOIN current c ON c.type = o.type AND c.id = o.id")
			exec("drop old "+t, "DROP TABLE "+t+"_old")
		}
	}
	// Version 1 had no search index: resources written then are searchable
	// after a $reindex.
	exec("set schema version", fmt.Sprintf("PRAGMA user_version = %d", schemaVersion))
	if err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlitestore: migrate: commit: %w", err)
	}
	return nil
}

// indexStmts are the writer's prepared statements for the index tables:
// a delete per table and multi-row inserts, cached by table and row count.
type indexStmts struct {
	del    map[string]*sql.Stmt
	insert map[insertKey]*sql.Stmt
}

type insertKey struct {
	table string
	rows  int
}

// maxInsertRows is the most rows one INSERT statement carries. Statements
// are prepared for each power of two up to it (before any transaction: the
// writer's one connection is busy during one).
const maxInsertRows = 32

func (s *Store) prepareIndex(ctx context.Context) error {
	s.ix.del = map[string]*sql.Stmt{}
	s.ix.insert = map[insertKey]*sql.Stmt{}
	for _, t := range indexTables {
		st, err := s.wdb.PrepareContext(ctx, "DELETE FROM "+t+" WHERE rk = ?")
		if err != nil {
			return fmt.Errorf("sqlitestore: prepare: %w", err)
		}
		s.ix.del[t] = st
		for n := 1; n <= maxInsertRows; n *= 2 {
			if _, err := s.insertStmt(ctx, t, n); err != nil {
				return err
			}
		}
	}
	return nil
}

// insertStmt prepares the INSERT of n rows into table t.
func (s *Store) insertStmt(ctx context.Context, t string, n int) (*sql.Stmt, error) {
	k := insertKey{t, n}
	if st, ok := s.ix.insert[k]; ok {
		return st, nil
	}
	cols := indexColumns[t]
	row := "(" + placeholders(5+len(cols)) + ")"
	q := "INSERT INTO " + t + " (rk, type, param, comp, grp, " + strings.Join(cols, ", ") + ") VALUES " +
		strings.TrimSuffix(strings.Repeat(row+",", n), ",")
	st, err := s.wdb.PrepareContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: prepare: %w", err)
	}
	s.ix.insert[k] = st
	return st, nil
}

func (s *Store) closeIndexStmts() {
	for _, st := range s.ix.del {
		_ = st.Close()
	}
	for _, st := range s.ix.insert {
		_ = st.Close()
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

// writeIndex replaces the index rows of resource rk (of type typ) with
// entries (none for a delete); existed says it may have rows already.
func (s *Store) writeIndex(ctx context.Context, tx *sql.Tx, typ string, rk int64, existed bool, entries []fhir.IndexEntry) error {
	if existed {
		for _, t := range indexTables {
			if _, err := tx.StmtContext(ctx, s.ix.del[t]).ExecContext(ctx, rk); err != nil {
				return fmt.Errorf("sqlitestore: drop index of %s %d: %w", typ, rk, err)
			}
		}
	}
	rows := map[string][]any{}
	counts := map[string]int{}
	for _, e := range entries {
		t := tableOf(e)
		args := append(rows[t], rk, typ, e.Param, e.Comp, e.Group)
		switch t {
		case "idx_string":
			exact := e.Exact
			if e.Type == fhir.TypeURI {
				exact = e.Str
			}
			args = append(args, e.Str, exact)
		case "idx_number":
			args = append(args, e.Low, e.High, e.System, e.Code, e.Exact)
		case "idx_date":
			args = append(args, e.Start, e.End)
		case "idx_ref":
			args = append(args, e.RefType, e.RefID, e.RefVersion, e.RefURL)
		default:
			args = append(args, e.System, e.Code, e.Text, e.IDType)
		}
		rows[t] = args
		counts[t]++
	}
	for _, t := range indexTables {
		args, n := rows[t], counts[t]
		width := len(args) / max(n, 1)
		for n > 0 {
			k := maxInsertRows
			for k > n {
				k /= 2
			}
			st := s.ix.insert[insertKey{t, k}]
			if _, err := tx.StmtContext(ctx, st).ExecContext(ctx, args[:k*width]...); err != nil {
				return fmt.Errorf("sqlitestore: index %s %d: %w", typ, rk, err)
			}
			args, n = args[k*width:], n-k
		}
	}
	return nil
}
