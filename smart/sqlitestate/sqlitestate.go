// Package sqlitestate keeps the SMART authorization server's state (a
// smart.Store: signing keys, clients, users, codes, refresh tokens,
// sessions and single-use marks) in its own SQLite database, auth.db in the
// data directory beside the embedded FHIR store's fhir.db. It uses the
// pure-Go driver modernc.org/sqlite.
package sqlitestate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/fhirhub/fhirhub/smart"

	_ "modernc.org/sqlite" // the database/sql driver "sqlite"
)

// Store is the smart.Store in its own SQLite database, File in Dir (WAL
// mode): one table of records (kind, id, data, exp).
type Store struct {
	smart.RecordStore
	Dir string

	db *sql.DB
}

var _ smart.Store = (*Store)(nil)

// File is the database's file name in its directory.
const File = "auth.db"

// New returns a store in dir; call Open.
func New(dir string) *Store { return &Store{Dir: dir} }

// Open creates the directory and the schema.
func (s *Store) Open(ctx context.Context) error {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("sqlitestate: open auth store: %w", err)
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+filepath.Join(s.Dir, File)+"?"+q.Encode())
	if err != nil {
		return fmt.Errorf("sqlitestate: open auth store: %w", err)
	}
	// One connection: every statement is short, and SQLite has one writer.
	db.SetMaxOpenConns(1)
	const schema = `CREATE TABLE IF NOT EXISTS records (
	kind TEXT    NOT NULL,
	id   TEXT    NOT NULL,
	data BLOB    NOT NULL,
	exp  INTEGER NOT NULL, -- Unix milliseconds; 0: never
	PRIMARY KEY (kind, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS records_exp ON records (exp) WHERE exp > 0;`
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		return fmt.Errorf("sqlitestate: open auth store: create schema: %w", err)
	}
	s.db = db
	s.Records = records{db}
	return nil
}

// Close closes the database, folding the WAL back into it.
func (s *Store) Close(ctx context.Context) error {
	if s.db == nil {
		return nil
	}
	_, _ = s.db.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
	err := s.db.Close()
	s.db = nil
	return err
}

// records is smart.Records in the records table.
type records struct{ db *sql.DB }

var _ smart.Records = records{}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func (r records) Put(ctx context.Context, kind, id string, data []byte, exp time.Time, replace bool) error {
	q := `INSERT INTO records (kind, id, data, exp) VALUES (?, ?, ?, ?)
ON CONFLICT (kind, id) DO UPDATE SET data = excluded.data, exp = excluded.exp`
	if !replace {
		// Only a record that has expired may be taken over.
		q += ` WHERE records.exp > 0 AND records.exp <= ?`
	}
	res, err := r.db.ExecContext(ctx, q, kind, id, data, ms(exp), time.Now().UnixMilli())
	if err != nil {
		return fmt.Errorf("sqlitestate: write %s: %w", kind, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return smart.ErrExists
	}
	return nil
}

func (r records) Get(ctx context.Context, kind, id string) ([]byte, error) {
	var data []byte
	err := r.db.QueryRowContext(ctx, `SELECT data FROM records WHERE kind = ? AND id = ? AND (exp = 0 OR exp > ?)`,
		kind, id, time.Now().UnixMilli()).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, smart.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlitestate: read %s: %w", kind, err)
	}
	return data, nil
}

func (r records) List(ctx context.Context, kind string) ([][]byte, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT data FROM records WHERE kind = ? AND (exp = 0 OR exp > ?) ORDER BY id`,
		kind, time.Now().UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("sqlitestate: list %s: %w", kind, err)
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			return nil, fmt.Errorf("sqlitestate: list %s: %w", kind, err)
		}
		out = append(out, data)
	}
	return out, rows.Err()
}

func (r records) Delete(ctx context.Context, kind, id string) error {
	res, err := r.db.ExecContext(ctx, `DELETE FROM records WHERE kind = ? AND id = ?`, kind, id)
	if err != nil {
		return fmt.Errorf("sqlitestate: delete %s: %w", kind, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return smart.ErrNotFound
	}
	return nil
}

func (r records) Prune(ctx context.Context, now time.Time) error {
	if _, err := r.db.ExecContext(ctx, `DELETE FROM records WHERE exp > 0 AND exp <= ?`, now.UnixMilli()); err != nil {
		return fmt.Errorf("sqlitestate: prune: %w", err)
	}
	return nil
}
