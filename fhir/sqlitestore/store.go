package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fhirhub/fhirhub/fhir"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

var (
	_ fhir.Store      = (*Store)(nil)
	_ fhir.Counter    = (*Store)(nil)
	_ fhir.Reindexer  = (*Store)(nil)
	_ fhir.Transactor = (*Store)(nil)
)

// Store is the SQLite engine. Set the fields, then Open.
type Store struct {
	// Dir is the data directory; the database is Dir/fhir.db.
	Dir string
	// Synchronous is SQLite's synchronous setting: "FULL" (default) or "NORMAL".
	Synchronous string
	// MaxBatch bounds how many writes one commit groups (default 256).
	MaxBatch int
	// ReadConns is the size of the read pool (default 8).
	ReadConns int
	// CommitDelay is how long the writer waits for more writes to join a
	// batch that holds only one, when the last batch also held more than one
	// (so a lone writer never waits). Each commit costs an fsync under FULL;
	// a short wait lets concurrent writers share it. Default 1ms; negative: off.
	CommitDelay time.Duration

	wdb, rdb  *sql.DB
	w         writeStmts
	ix        indexStmts
	readStmt  *sql.Stmt
	vreadStmt *sql.Stmt
	reqs      chan *writeReq
	quit      chan struct{}
	wg        sync.WaitGroup
	closeMu   sync.RWMutex
	closed    bool
}

// New returns a store in dir with defaults; call Open.
func New(dir string) *Store { return &Store{Dir: dir} }

type writeReq struct {
	ctx     context.Context
	w       fhir.Write
	reindex bool         // replace the index of version w.Version only
	ws      []fhir.Write // a transaction: all of ws or none, instead of w
	res     fhir.Change
	chs     []fhir.Change // the changes of ws
	err     error
	done    chan struct{}
}

const schema = `
CREATE TABLE IF NOT EXISTS versions (
	seq     INTEGER PRIMARY KEY AUTOINCREMENT,
	type    TEXT    NOT NULL,
	id      TEXT    NOT NULL,
	version INTEGER NOT NULL,
	op      TEXT    NOT NULL,
	ts      INTEGER NOT NULL,
	json    BLOB,
	UNIQUE (type, id, version)
);
CREATE INDEX IF NOT EXISTS versions_type_seq ON versions (type, seq);
CREATE INDEX IF NOT EXISTS versions_ts ON versions (ts);
-- current (the latest version of each resource) is made by migrate.

`

func (s *Store) dsn(readOnly bool) string {
	sync := s.Synchronous
	if sync == "" {
		sync = "FULL"
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous("+sync+")")
	q.Add("_pragma", "foreign_keys(OFF)")
	// Savepoint journals live in memory, not in temporary files.
	q.Add("_pragma", "temp_store(MEMORY)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
		// 16 MiB of page cache per reader (8 readers by default).
		q.Add("_pragma", "cache_size(-16384)")
	} else {
		q.Set("_txlock", "immediate")
		// The writer touches index pages all over the database: 64 MiB of
		// cache saves rereading them, and folding the WAL into the database
		// every 8,192 pages (32 MiB) instead of 1,000 writes a page that
		// changes often once per checkpoint rather than many times.
		q.Add("_pragma", "cache_size(-65536)")
		q.Add("_pragma", "wal_autocheckpoint(8192)")
	}
	return "file:" + filepath.Join(s.Dir, "fhir.db") + "?" + q.Encode()
}

// Open creates the directory and schema and starts the writer.
func (s *Store) Open(ctx context.Context) error {
	switch strings.ToUpper(s.Synchronous) {
	case "", "FULL", "NORMAL":
	default:
		return fmt.Errorf("sqlitestore: synchronous must be FULL or NORMAL, not %q", s.Synchronous)
	}
	if s.MaxBatch <= 0 {
		s.MaxBatch = 256
	}
	if s.ReadConns <= 0 {
		s.ReadConns = 8
	}
	if s.CommitDelay == 0 {
		s.CommitDelay = time.Millisecond
	}
	if err := os.MkdirAll(s.Dir, 0o750); err != nil {
		return fmt.Errorf("sqlitestore: create data directory: %w", err)
	}
	wdb, err := sql.Open("sqlite", s.dsn(false))
	if err != nil {
		return fmt.Errorf("sqlitestore: open: %w", err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetConnMaxLifetime(0)
	if _, err := wdb.ExecContext(ctx, schema); err != nil {
		wdb.Close()
		return fmt.Errorf("sqlitestore: create schema in %s: %w", s.Dir, err)
	}
	if err := migrate(ctx, wdb); err != nil {
		wdb.Close()
		return err
	}
	rdb, err := sql.Open("sqlite", s.dsn(true))
	if err != nil {
		wdb.Close()
		return fmt.Errorf("sqlitestore: open read pool: %w", err)
	}
	rdb.SetMaxOpenConns(s.ReadConns)
	rdb.SetMaxIdleConns(s.ReadConns)
	if err := rdb.PingContext(ctx); err != nil {
		wdb.Close()
		rdb.Close()
		return fmt.Errorf("sqlitestore: open read pool: %w", err)
	}
	s.wdb, s.rdb = wdb, rdb
	if err := s.prepare(ctx); err != nil {
		wdb.Close()
		rdb.Close()
		return err
	}
	if err := s.prepareIndex(ctx); err != nil {
		wdb.Close()
		rdb.Close()
		return err
	}
	s.reqs = make(chan *writeReq, s.MaxBatch)
	s.quit = make(chan struct{})
	s.wg.Add(1)
	go s.writer()
	return nil
}

// writeStmts are the writer's statements, prepared once on its connection.
type writeStmts struct {
	version, insert, current *sql.Stmt
}

func (s *Store) prepare(ctx context.Context) error {
	var err error
	p := func(db *sql.DB, q string) *sql.Stmt {
		if err != nil {
			return nil
		}
		var st *sql.Stmt
		st, err = db.PrepareContext(ctx, q)
		return st
	}
	s.w = writeStmts{
		version: p(s.wdb, "SELECT rk, version FROM current WHERE type = ? AND id = ?"),
		insert:  p(s.wdb, "INSERT INTO versions (type, id, version, op, ts, json) VALUES (?, ?, ?, ?, ?, ?)"),
		current: p(s.wdb, `INSERT INTO current (type, id, version, seq, deleted, ts) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (type, id) DO UPDATE SET version = excluded.version, seq = excluded.seq, deleted = excluded.deleted, ts = excluded.ts
		RETURNING rk`),
	}
	s.readStmt = p(s.rdb, "SELECT "+versionCols+" FROM versions WHERE seq = (SELECT seq FROM current WHERE type = ? AND id = ?)")
	s.vreadStmt = p(s.rdb, "SELECT "+versionCols+" FROM versions WHERE type = ? AND id = ? AND version = ?")
	if err != nil {
		return fmt.Errorf("sqlitestore: prepare statements: %w", err)
	}
	return nil
}

// Close stops the writer after the writes in flight and closes the database.
func (s *Store) Close(ctx context.Context) error {
	s.closeMu.Lock()
	if s.closed || s.wdb == nil {
		s.closeMu.Unlock()
		return nil
	}
	s.closed = true
	s.closeMu.Unlock()
	close(s.quit)
	s.wg.Wait()
	for _, st := range []*sql.Stmt{s.readStmt, s.vreadStmt, s.w.version, s.w.insert, s.w.current} {
		_ = st.Close()
	}
	s.closeIndexStmts()
	err1 := s.rdb.Close()
	// Fold the WAL back so the directory holds one file when the server is down.
	_, _ = s.wdb.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
	err2 := s.wdb.Close()
	return errors.Join(err1, err2)
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	var n int
	if err := s.rdb.QueryRowContext(ctx, "SELECT 1").Scan(&n); err != nil {
		return fmt.Errorf("sqlitestore: ping: %w", err)
	}
	return nil
}

// Write queues the write for the writer and waits for its commit.
func (s *Store) Write(ctx context.Context, w fhir.Write) (fhir.Change, error) {
	if w.Version < 1 {
		return fhir.Change{}, fmt.Errorf("sqlitestore: write %s/%s version %d: %w", w.Type, w.ID, w.Version, fhir.ErrVersionConflict)
	}
	return s.submit(ctx, &writeReq{ctx: ctx, w: w, done: make(chan struct{})})
}

// WriteAll applies ws in one transaction, all or none (fhir.Transactor).
func (s *Store) WriteAll(ctx context.Context, ws []fhir.Write) ([]fhir.Change, error) {
	for i, w := range ws {
		if w.Version < 1 {
			return nil, &fhir.TxConflict{Index: i, Err: fmt.Errorf("sqlitestore: write %s/%s version %d", w.Type, w.ID, w.Version)}
		}
	}
	req := &writeReq{ctx: ctx, ws: ws, done: make(chan struct{})}
	if _, err := s.submit(ctx, req); err != nil {
		return nil, err
	}
	return req.chs, nil
}

// applyAll applies the writes of one transaction: first it checks every
// version (as the writes will find them, earlier writes of the transaction
// included), so a conflict fails it before anything is written.
func (s *Store) applyAll(ctx context.Context, tx *sql.Tx, ws []fhir.Write) ([]fhir.Change, error) {
	current := make(map[string]int64, len(ws))
	for i, w := range ws {
		key := w.Type + "/" + w.ID
		cur, ok := current[key]
		if !ok {
			var rk int64
			err := tx.StmtContext(ctx, s.w.version).QueryRowContext(ctx, w.Type, w.ID).Scan(&rk, &cur)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return nil, fmt.Errorf("sqlitestore: read version of %s/%s: %w", w.Type, w.ID, err)
			}
		}
		if cur != w.Version-1 {
			return nil, &fhir.TxConflict{Index: i, Err: fmt.Errorf("sqlitestore: write %s/%s version %d over version %d", w.Type, w.ID, w.Version, cur)}
		}
		current[key] = w.Version
	}
	chs := make([]fhir.Change, len(ws))
	for i, w := range ws {
		ch, err := s.apply(ctx, tx, w)
		if errors.Is(err, fhir.ErrVersionConflict) {
			// Checked above, so impossible; never report it as a conflict,
			// which would keep the writes before it.
			return nil, fmt.Errorf("sqlitestore: transaction write %d: version changed after the check: %v", i, err)
		}
		if err != nil {
			return nil, fmt.Errorf("sqlitestore: transaction write %d: %w", i, err)
		}
		chs[i] = ch
	}
	return chs, nil
}

// Reindex replaces the index entries of typ/id when version is current.
func (s *Store) Reindex(ctx context.Context, typ, id string, version int64, entries []fhir.IndexEntry) error {
	_, err := s.submit(ctx, &writeReq{ctx: ctx, w: fhir.Write{Type: typ, ID: id, Version: version, Index: entries}, reindex: true, done: make(chan struct{})})
	return err
}

func (s *Store) applyReindex(ctx context.Context, tx *sql.Tx, w fhir.Write) error {
	var rk, cur int64
	var deleted bool
	err := tx.QueryRowContext(ctx, "SELECT rk, version, deleted FROM current WHERE type = ? AND id = ?", w.Type, w.ID).Scan(&rk, &cur, &deleted)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && (cur != w.Version || deleted)) {
		return nil // gone or rewritten since: nothing to do
	}
	if err != nil {
		return fmt.Errorf("sqlitestore: reindex %s/%s: %w", w.Type, w.ID, err)
	}
	return s.writeIndex(ctx, tx, w.Type, rk, true, w.Index)
}

func (s *Store) submit(ctx context.Context, req *writeReq) (fhir.Change, error) {
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return fhir.Change{}, errors.New("sqlitestore: write after close")
	}
	select {
	case s.reqs <- req:
	case <-ctx.Done():
		s.closeMu.RUnlock()
		return fhir.Change{}, ctx.Err()
	}
	s.closeMu.RUnlock()
	// Once queued the write is committed or failed by the writer; wait for it
	// even if ctx ends, so the caller never reports a failure for a commit.
	<-req.done
	return req.res, req.err
}

func (s *Store) writer() {
	defer s.wg.Done()
	batch := make([]*writeReq, 0, s.MaxBatch)
	lastBatch := 0
	var delay *time.Timer
	for {
		var first *writeReq
		select {
		case first = <-s.reqs:
		case <-s.quit:
			// Drain what was queued before Close.
			for {
				select {
				case r := <-s.reqs:
					s.commit([]*writeReq{r})
				default:
					return
				}
			}
		}
		batch = append(batch[:0], first)
	fill:
		for len(batch) < s.MaxBatch {
			select {
			case r := <-s.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		if len(batch) == 1 && lastBatch > 1 && s.CommitDelay > 0 {
			// Others were writing a moment ago: give them a moment to join.
			if delay == nil {
				delay = time.NewTimer(s.CommitDelay)
			} else {
				delay.Reset(s.CommitDelay)
			}
		wait:
			for len(batch) < lastBatch && len(batch) < s.MaxBatch {
				select {
				case r := <-s.reqs:
					batch = append(batch, r)
				case <-delay.C:
					break wait
				}
			}
			if !delay.Stop() {
				select {
				case <-delay.C:
				default:
				}
			}
		}
		lastBatch = len(batch)
		s.commit(batch)
	}
}

// commit applies a batch in one SQL transaction. A write that fails its
// version check fails before it changes anything (apply checks first, a
// transaction request checks all its writes first), so it needs no
// savepoint and the others proceed. Any other failure is the engine's: the
// whole batch is rolled back and every write in it fails (none was
// acknowledged). Savepoints are avoided on purpose: with one open, SQLite's
// in-memory statement journal makes each multi-row INSERT cost time in
// proportion to everything written since the savepoint, which made a
// 250-resource transaction spend 40% of its time truncating that journal.
func (s *Store) commit(batch []*writeReq) {
	ctx := context.Background()
	finish := func(err error) {
		for _, r := range batch {
			if err != nil && r.err == nil {
				r.err = err
				r.res, r.chs = fhir.Change{}, nil
			}
			close(r.done)
		}
	}
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		finish(fmt.Errorf("sqlitestore: begin: %w", err))
		return
	}
	applied := 0
	for _, r := range batch {
		if r.ctx.Err() != nil {
			r.err = r.ctx.Err()
			continue
		}
		switch {
		case r.reindex:
			r.err = s.applyReindex(ctx, tx, r.w)
		case r.ws != nil:
			r.chs, r.err = s.applyAll(ctx, tx, r.ws)
		default:
			r.res, r.err = s.apply(ctx, tx, r.w)
		}
		switch {
		case r.err == nil:
			applied++
		case errors.Is(r.err, fhir.ErrVersionConflict):
			// Nothing of it was written.
		default:
			_ = tx.Rollback()
			err := r.err
			for _, o := range batch {
				o.err = nil // fail them all with the engine's error
			}
			finish(err)
			return
		}
	}
	if applied == 0 {
		_ = tx.Rollback()
		finish(nil)
		return
	}
	if err := tx.Commit(); err != nil {
		finish(fmt.Errorf("sqlitestore: commit: %w", err))
		return
	}
	finish(nil)
}

func (s *Store) apply(ctx context.Context, tx *sql.Tx, w fhir.Write) (fhir.Change, error) {
	var rk, cur int64
	err := tx.StmtContext(ctx, s.w.version).QueryRowContext(ctx, w.Type, w.ID).Scan(&rk, &cur)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fhir.Change{}, fmt.Errorf("sqlitestore: read version of %s/%s: %w", w.Type, w.ID, err)
	}
	if cur != w.Version-1 {
		return fhir.Change{}, fmt.Errorf("sqlitestore: write %s/%s version %d over version %d: %w", w.Type, w.ID, w.Version, cur, fhir.ErrVersionConflict)
	}
	ts := w.LastUpdated.UnixNano()
	var js any
	if w.JSON != nil {
		js = w.JSON
	}
	res, err := tx.StmtContext(ctx, s.w.insert).ExecContext(ctx, w.Type, w.ID, w.Version, string(w.Op), ts, js)
	if err != nil {
		return fhir.Change{}, fmt.Errorf("sqlitestore: insert %s/%s/%d: %w", w.Type, w.ID, w.Version, err)
	}
	seq, err := res.LastInsertId()
	if err != nil {
		return fhir.Change{}, fmt.Errorf("sqlitestore: insert %s/%s/%d: %w", w.Type, w.ID, w.Version, err)
	}
	deleted := 0
	if w.Op == fhir.OpDelete {
		deleted = 1
	}
	if err := tx.StmtContext(ctx, s.w.current).QueryRowContext(ctx, w.Type, w.ID, w.Version, seq, deleted, ts).Scan(&rk); err != nil {
		return fhir.Change{}, fmt.Errorf("sqlitestore: update current %s/%s: %w", w.Type, w.ID, err)
	}
	if err := s.writeIndex(ctx, tx, w.Type, rk, cur > 0, w.Index); err != nil {
		return fhir.Change{}, err
	}
	return fhir.Change{Seq: seq, Resource: fhir.Resource{Type: w.Type, ID: w.ID, Version: w.Version, LastUpdated: time.Unix(0, ts).UTC(), Op: w.Op, JSON: w.JSON}}, nil
}

const versionCols = "seq, type, id, version, op, ts, json"

type scanner interface{ Scan(dest ...any) error }

func scanChange(sc scanner) (fhir.Change, error) {
	var c fhir.Change
	var op string
	var ts int64
	var js []byte
	if err := sc.Scan(&c.Seq, &c.Type, &c.ID, &c.Version, &op, &ts, &js); err != nil {
		return c, err
	}
	c.Op = fhir.Op(op)
	c.LastUpdated = time.Unix(0, ts).UTC()
	c.JSON = js
	return c, nil
}

// Read returns the current version of typ/id.
func (s *Store) Read(ctx context.Context, typ, id string) (fhir.Resource, error) {
	row := s.readStmt.QueryRowContext(ctx, typ, id)
	c, err := scanChange(row)
	if errors.Is(err, sql.ErrNoRows) {
		return fhir.Resource{}, fhir.ErrNotFound
	}
	if err != nil {
		return fhir.Resource{}, fmt.Errorf("sqlitestore: read %s/%s: %w", typ, id, err)
	}
	return c.Resource, nil
}

// VRead returns one version of typ/id.
func (s *Store) VRead(ctx context.Context, typ, id string, version int64) (fhir.Resource, error) {
	row := s.vreadStmt.QueryRowContext(ctx, typ, id, version)
	c, err := scanChange(row)
	if errors.Is(err, sql.ErrNoRows) {
		return fhir.Resource{}, fhir.ErrNotFound
	}
	if err != nil {
		return fhir.Resource{}, fmt.Errorf("sqlitestore: vread %s/%s/%d: %w", typ, id, version, err)
	}
	return c.Resource, nil
}

func (s *Store) queryChanges(ctx context.Context, what, q string, args ...any) ([]fhir.Change, error) {
	rows, err := s.rdb.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: %s: %w", what, err)
	}
	defer rows.Close()
	var out []fhir.Change
	for rows.Next() {
		c, err := scanChange(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlitestore: %s: %w", what, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlitestore: %s: %w", what, err)
	}
	return out, nil
}

// History lists versions newest first.
func (s *Store) History(ctx context.Context, q fhir.HistoryQuery) ([]fhir.Change, error) {
	var where []string
	var args []any
	if q.Type != "" {
		where = append(where, "v.type = ?")
		args = append(args, q.Type)
	}
	if q.ID != "" {
		where = append(where, "v.id = ?")
		args = append(args, q.ID)
	}
	if q.Before > 0 {
		where = append(where, "v.seq < ?")
		args = append(args, q.Before)
	}
	if !q.Since.IsZero() {
		where = append(where, "v.ts >= ?")
		args = append(args, q.Since.UnixNano())
	}
	if !q.AtEnd.IsZero() {
		where = append(where, "v.ts <= ?", "NOT EXISTS (SELECT 1 FROM versions n WHERE n.type = v.type AND n.id = v.id AND n.version = v.version + 1 AND n.ts <= ?)")
		args = append(args, q.AtEnd.UnixNano(), q.AtStart.UnixNano())
	}
	count := q.Count
	if count <= 0 {
		count = 100
	}
	sqlq := "SELECT v.seq, v.type, v.id, v.version, v.op, v.ts, v.json FROM versions v"
	if len(where) > 0 {
		sqlq += " WHERE " + strings.Join(where, " AND ")
	}
	if q.ID != "" {
		// Per resource, version order is seq order; this uses the (type, id, version) key.
		sqlq += " ORDER BY v.version DESC LIMIT ?"
	} else {
		sqlq += " ORDER BY v.seq DESC LIMIT ?"
	}
	args = append(args, count)
	return s.queryChanges(ctx, "history", sqlq, args...)
}

// Changes lists committed changes after a feed position, oldest first.
func (s *Store) Changes(ctx context.Context, after int64, limit int) ([]fhir.Change, error) {
	if limit <= 0 {
		limit = 100
	}
	return s.queryChanges(ctx, "changes", "SELECT "+versionCols+" FROM versions WHERE seq > ? ORDER BY seq LIMIT ?", after, limit)
}

// Find lists current resources matching m.
func (s *Store) Find(ctx context.Context, m fhir.Match) ([]fhir.Resource, error) {
	where := []string{"c.type = ?", "c.deleted = 0"}
	args := []any{m.Type}
	if len(m.IDs) > 0 {
		where = append(where, "c.id IN ("+placeholders(len(m.IDs))+")")
		for _, id := range m.IDs {
			args = append(args, id)
		}
	}
	for _, b := range m.LastUpdated {
		op, ok := map[string]string{"gt": ">", "ge": ">=", "lt": "<", "le": "<="}[b.Op]
		if !ok {
			return nil, fmt.Errorf("sqlitestore: find: unknown date comparison %q", b.Op)
		}
		where = append(where, "c.ts "+op+" ?")
		args = append(args, b.Time.UnixNano())
	}
	for _, tm := range m.Tokens {
		var ors []string
		targs := []any{tm.Param}
		for _, v := range tm.Values {
			switch {
			case v.AnySystem:
				ors = append(ors, "t.code = ?")
				targs = append(targs, v.Code)
			case v.Code == "":
				ors = append(ors, "t.system = ?")
				targs = append(targs, v.System)
			default:
				ors = append(ors, "(t.system = ? AND t.code = ?)")
				targs = append(targs, v.System, v.Code)
			}
		}
		if len(ors) == 0 {
			where = append(where, "0")
			continue
		}
		where = append(where, "EXISTS (SELECT 1 FROM idx_token t WHERE t.rk = c.rk AND t.param = ? AND t.comp = 0 AND ("+strings.Join(ors, " OR ")+"))")
		args = append(args, targs...)
	}
	q := "SELECT v.seq, v.type, v.id, v.version, v.op, v.ts, v.json FROM current c JOIN versions v ON v.seq = c.seq WHERE " + strings.Join(where, " AND ") + " ORDER BY c.id"
	if m.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", m.Limit)
	}
	chs, err := s.queryChanges(ctx, "find", q, args...)
	if err != nil {
		return nil, err
	}
	out := make([]fhir.Resource, len(chs))
	for i, c := range chs {
		out[i] = c.Resource
	}
	return out, nil
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

// Count returns how many current, not deleted resources of typ there are.
func (s *Store) Count(ctx context.Context, typ string) (int64, error) {
	var n int64
	if err := s.rdb.QueryRowContext(ctx, "SELECT count(*) FROM current WHERE type = ? AND deleted = 0", typ).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlitestore: count %s: %w", typ, err)
	}
	return n, nil
}
