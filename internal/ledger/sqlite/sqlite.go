// Package sqlite implements ledger.Store on an embedded SQLite database
// (modernc.org/sqlite through internal/sqlitedb): the default ledger.
//
// # Guarantees
//
// Beyond ledger.Store's (checked by ledgertest.TestStore, which this
// package's tests run): the file is mode 0600; WAL with synchronous=FULL,
// so a committed Update survives a crash or power loss; one writer
// connection whose transactions take the write lock when they begin, so
// Updates from several processes serialise; a versioned schema
// (migrations/NNNN_name.sql) and a database newer than the binary is
// refused.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/vmtrust/vmtrust/internal/ledger"
	"github.com/vmtrust/vmtrust/internal/sqlitedb"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Store is the SQLite ledger store.
type Store struct {
	conns *sqlitedb.Conns
	path  string
}

var _ ledger.Store = (*Store)(nil)

// Open opens (creating) the ledger database at path.
func Open(ctx context.Context, path string, log *slog.Logger) (*Store, error) {
	ms, err := sqlitedb.LoadMigrations("ledger", migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	c, err := sqlitedb.Open(ctx, path, ms, sqlitedb.Options{Subject: "ledger", Log: log})
	if err != nil {
		return nil, err
	}
	return &Store{conns: c, path: c.Path}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.conns.Close() }

// Path is the database file.
func (s *Store) Path() string { return s.path }

// querier is what reads need: *sql.DB or *sql.Tx.
type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
}

func (s *Store) errf(format string, args ...any) error {
	return fmt.Errorf("ledger %s: "+format, append([]any{s.path}, args...)...)
}

// Update runs fn in one write transaction.
func (s *Store) Update(ctx context.Context, fn func(ledger.Tx) error) error {
	tx, err := s.conns.W.BeginTx(ctx, nil)
	if err != nil {
		return s.errf("begin: %w", err)
	}
	if err := fn(&txn{s: s, q: tx}); err != nil {
		tx.Rollback()
		return err
	}
	if err := ctx.Err(); err != nil {
		tx.Rollback()
		return s.errf("%w", err)
	}
	if err := tx.Commit(); err != nil {
		return s.errf("commit: %w", err)
	}
	return nil
}

// txn is an Update's transaction; reads inside it see its writes.
type txn struct {
	s *Store
	q *sql.Tx
}

func (t *txn) Size(ctx context.Context) (int64, error) { return size(ctx, t.s, t.q) }
func (t *txn) ReadHashes(ctx context.Context, ix []int64) ([]tlog.Hash, error) {
	return readHashes(ctx, t.s, t.q, ix)
}
func (t *txn) Host(ctx context.Context, name string) (ledger.Host, error) {
	return host(ctx, t.s, t.q, name)
}
func (t *txn) Latest(ctx context.Context) (ledger.Checkpoint, error) { return latest(ctx, t.s, t.q) }

func (s *Store) Size(ctx context.Context) (int64, error) { return size(ctx, s, s.conns.R) }
func (s *Store) ReadHashes(ctx context.Context, ix []int64) ([]tlog.Hash, error) {
	return readHashes(ctx, s, s.conns.R, ix)
}
func (s *Store) Host(ctx context.Context, name string) (ledger.Host, error) {
	return host(ctx, s, s.conns.R, name)
}
func (s *Store) Latest(ctx context.Context) (ledger.Checkpoint, error) {
	return latest(ctx, s, s.conns.R)
}

func size(ctx context.Context, s *Store, q querier) (int64, error) {
	var n sql.NullInt64
	if err := q.QueryRowContext(ctx, `SELECT MAX(idx) FROM entries`).Scan(&n); err != nil {
		return 0, s.errf("size: %w", err)
	}
	if !n.Valid {
		return 0, nil
	}
	return n.Int64 + 1, nil
}

func readHashes(ctx context.Context, s *Store, q querier, ix []int64) ([]tlog.Hash, error) {
	got := make(map[int64]tlog.Hash, len(ix))
	read := func(query string, args ...any) error {
		rows, err := q.QueryContext(ctx, query, args...)
		if err != nil {
			return s.errf("hashes: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var id int64
			var h []byte
			if err := rows.Scan(&id, &h); err != nil {
				return s.errf("hashes: %w", err)
			}
			if len(h) != tlog.HashSize {
				return s.errf("hash %d: %d bytes", id, len(h))
			}
			got[id] = tlog.Hash(h)
		}
		return rows.Err()
	}
	if mostlyConsecutive(ix) {
		// Verify's chunks: one range query per run of consecutive indexes.
		for start := 0; start < len(ix); {
			end := start + 1
			for end < len(ix) && ix[end] == ix[end-1]+1 {
				end++
			}
			if err := read(`SELECT id, hash FROM hashes WHERE id BETWEEN ? AND ?`, ix[start], ix[end-1]); err != nil {
				return nil, err
			}
			start = end
		}
	} else {
		// A proof's scattered indexes: IN lists of up to 500.
		for start := 0; start < len(ix); start += 500 {
			part := ix[start:min(len(ix), start+500)]
			args := make([]any, len(part))
			for i, x := range part {
				args[i] = x
			}
			if err := read(`SELECT id, hash FROM hashes WHERE id IN (`+strings.TrimSuffix(strings.Repeat("?,", len(part)), ",")+`)`, args...); err != nil {
				return nil, err
			}
		}
	}
	out := make([]tlog.Hash, len(ix))
	for i, x := range ix {
		h, ok := got[x]
		if !ok {
			return nil, s.errf("hash %d: %w", x, ledger.ErrNotFound)
		}
		out[i] = h
	}
	return out, nil
}

// mostlyConsecutive says whether ix is a few runs of consecutive indexes
// (Verify's chunks), rather than scattered ones (a proof's).
func mostlyConsecutive(ix []int64) bool {
	runs := 1
	for i := 1; i < len(ix); i++ {
		if ix[i] != ix[i-1]+1 {
			runs++
		}
	}
	return runs <= 2
}

func host(ctx context.Context, s *Store, q querier, name string) (ledger.Host, error) {
	h := ledger.Host{Name: name}
	err := q.QueryRowContext(ctx, `SELECT key, added FROM hosts WHERE name = ?`, name).Scan(&h.Key, sqlitedb.ScanTime(&h.Added))
	if errors.Is(err, sql.ErrNoRows) {
		return ledger.Host{}, s.errf("host %q: %w", name, ledger.ErrNotFound)
	}
	if err != nil {
		return ledger.Host{}, s.errf("host %q: %w", name, err)
	}
	return h, nil
}

func latest(ctx context.Context, s *Store, q querier) (ledger.Checkpoint, error) {
	return checkpoint(ctx, s, q, `SELECT size, root, note, time FROM checkpoints ORDER BY size DESC LIMIT 1`)
}

func checkpoint(ctx context.Context, s *Store, q querier, query string, args ...any) (ledger.Checkpoint, error) {
	var c ledger.Checkpoint
	var root []byte
	err := q.QueryRowContext(ctx, query, args...).Scan(&c.Size, &root, &c.Note, sqlitedb.ScanTime(&c.Time))
	if errors.Is(err, sql.ErrNoRows) {
		return ledger.Checkpoint{}, s.errf("checkpoint: %w", ledger.ErrNotFound)
	}
	if err != nil {
		return ledger.Checkpoint{}, s.errf("checkpoint: %w", err)
	}
	if len(root) != tlog.HashSize {
		return ledger.Checkpoint{}, s.errf("checkpoint %d: root of %d bytes", c.Size, len(root))
	}
	copy(c.Root[:], root)
	return c, nil
}

// Checkpoint returns the checkpoint of size n.
func (s *Store) Checkpoint(ctx context.Context, n int64) (ledger.Checkpoint, error) {
	return checkpoint(ctx, s, s.conns.R, `SELECT size, root, note, time FROM checkpoints WHERE size = ?`, n)
}

// CheckpointSizes lists the sizes of every stored checkpoint.
func (s *Store) CheckpointSizes(ctx context.Context) ([]int64, error) {
	rows, err := s.conns.R.QueryContext(ctx, `SELECT size FROM checkpoints ORDER BY size`)
	if err != nil {
		return nil, s.errf("checkpoints: %w", err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var n int64
		if err := rows.Scan(&n); err != nil {
			return nil, s.errf("checkpoints: %w", err)
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// Entries calls fn for the entries in [from, to).
func (s *Store) Entries(ctx context.Context, from, to int64, fn func(ledger.Entry) error) error {
	const page = 10000
	for from < to {
		end := min(to, from+page)
		rows, err := s.conns.R.QueryContext(ctx, `SELECT idx, batch, body FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx`, from, end)
		if err != nil {
			return s.errf("entries: %w", err)
		}
		var last int64 = -1
		for rows.Next() {
			var e ledger.Entry
			if err := rows.Scan(&e.Index, &e.Batch, &e.Body); err != nil {
				rows.Close()
				return s.errf("entries: %w", err)
			}
			last = e.Index
			if err := fn(e); err != nil {
				rows.Close()
				return err
			}
		}
		if err := rows.Close(); err != nil {
			return s.errf("entries: %w", err)
		}
		if last < 0 {
			// Nothing in this page: skip ahead to the next entry, if any.
			var next sql.NullInt64
			if err := s.conns.R.QueryRowContext(ctx, `SELECT MIN(idx) FROM entries WHERE idx >= ? AND idx < ?`, end, to).Scan(&next); err != nil {
				return s.errf("entries: %w", err)
			}
			if !next.Valid {
				return nil
			}
			from = next.Int64
			continue
		}
		from = end
	}
	return nil
}

// Batches calls fn for every batch.
func (s *Store) Batches(ctx context.Context, fn func(ledger.Batch) error) error {
	rows, err := s.conns.R.QueryContext(ctx, `SELECT id, host, first_idx, count, root, sig FROM batches ORDER BY id`)
	if err != nil {
		return s.errf("batches: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var b ledger.Batch
		var root []byte
		if err := rows.Scan(&b.ID, &b.Host, &b.First, &b.Count, &root, &b.Sig); err != nil {
			return s.errf("batches: %w", err)
		}
		if len(root) != tlog.HashSize {
			return s.errf("batch %d: root of %d bytes", b.ID, len(root))
		}
		copy(b.Root[:], root)
		if err := fn(b); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Hosts lists the enrolled hosts.
func (s *Store) Hosts(ctx context.Context) ([]ledger.Host, error) {
	rows, err := s.conns.R.QueryContext(ctx, `SELECT name, key, added FROM hosts ORDER BY name`)
	if err != nil {
		return nil, s.errf("hosts: %w", err)
	}
	defer rows.Close()
	var out []ledger.Host
	for rows.Next() {
		var h ledger.Host
		if err := rows.Scan(&h.Name, &h.Key, sqlitedb.ScanTime(&h.Added)); err != nil {
			return nil, s.errf("hosts: %w", err)
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// LeasesAt returns the latest leases of ip begun at or before at.
func (s *Store) LeasesAt(ctx context.Context, ip netip.Addr, at time.Time, limit int) ([]ledger.Lease, error) {
	rows, err := s.conns.R.QueryContext(ctx, `SELECT ip, mac, vm, host, from_ts, to_ts, start_idx, end_idx FROM leases
		WHERE ip = ? AND from_ts <= ? ORDER BY from_ts DESC LIMIT ?`, ip.Unmap().String(), sqlitedb.EncodeTime(at), limit)
	if err != nil {
		return nil, s.errf("leases: %w", err)
	}
	defer rows.Close()
	var out []ledger.Lease
	for rows.Next() {
		var l ledger.Lease
		var ipText string
		if err := rows.Scan(&ipText, &l.MAC, &l.VM, &l.Host, sqlitedb.ScanTime(&l.From), sqlitedb.ScanTime(&l.To), &l.Start, &l.End); err != nil {
			return nil, s.errf("leases: %w", err)
		}
		if l.IP, err = netip.ParseAddr(ipText); err != nil {
			return nil, s.errf("lease: %w", err)
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// Runs returns the runs matching f.
func (s *Store) Runs(ctx context.Context, f ledger.RunFilter) ([]ledger.Run, error) {
	var where []string
	var args []any
	for _, c := range []struct{ col, v string }{{"vm", f.VM}, {"image", f.Image}, {"endorser", f.Endorser}, {"owner", f.Owner}, {"host", f.Host}} {
		if c.v != "" {
			where = append(where, c.col+" = ?")
			args = append(args, c.v)
		}
	}
	if !f.To.IsZero() {
		where = append(where, "from_ts < ?")
		args = append(args, sqlitedb.EncodeTime(f.To))
	}
	if !f.From.IsZero() {
		where = append(where, "(to_ts IS NULL OR to_ts > ?)")
		args = append(args, sqlitedb.EncodeTime(f.From))
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 1000
	}
	q := `SELECT vm, name, host, owner, image, list, endorser, from_ts, to_ts, start_idx, end_idx FROM runs`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY from_ts, start_idx LIMIT ?"
	args = append(args, limit)
	rows, err := s.conns.R.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, s.errf("runs: %w", err)
	}
	defer rows.Close()
	var out []ledger.Run
	for rows.Next() {
		var r ledger.Run
		if err := rows.Scan(&r.VM, &r.Name, &r.Host, &r.Owner, &r.Image, &r.List, &r.Endorser,
			sqlitedb.ScanTime(&r.From), sqlitedb.ScanTime(&r.To), &r.Start, &r.End); err != nil {
			return nil, s.errf("runs: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Timeline returns the entry indexes about vm.
func (s *Store) Timeline(ctx context.Context, vm string) ([]int64, error) {
	rows, err := s.conns.R.QueryContext(ctx, `SELECT idx FROM vm_events WHERE vm = ? ORDER BY idx`, vm)
	if err != nil {
		return nil, s.errf("timeline: %w", err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var i int64
		if err := rows.Scan(&i); err != nil {
			return nil, s.errf("timeline: %w", err)
		}
		out = append(out, i)
	}
	return out, rows.Err()
}

// PutHost enrolls a host.
func (t *txn) PutHost(ctx context.Context, h ledger.Host) error {
	old, err := host(ctx, t.s, t.q, h.Name)
	switch {
	case err == nil:
		if old.Key != h.Key {
			return t.s.errf("host %q is enrolled with another key", h.Name)
		}
		return nil
	case !errors.Is(err, ledger.ErrNotFound):
		return err
	}
	if _, err := t.q.ExecContext(ctx, `INSERT INTO hosts (name, key, added) VALUES (?, ?, ?)`, h.Name, h.Key, sqlitedb.EncodeTime(h.Added)); err != nil {
		return t.s.errf("host %q: %w", h.Name, err)
	}
	return nil
}

// multiInsert inserts rows with statements of up to per rows each.
func multiInsert(ctx context.Context, q querier, head string, cols, n int, row func(i int) []any) error {
	const per = 200
	one := "(" + strings.TrimSuffix(strings.Repeat("?,", cols), ",") + ")"
	var full string
	for i := 0; i < n; i += per {
		k := min(per, n-i)
		var stmt string
		if k == per && full != "" {
			stmt = full
		} else {
			stmt = head + " VALUES " + strings.TrimSuffix(strings.Repeat(one+",", k), ",")
			if k == per {
				full = stmt
			}
		}
		args := make([]any, 0, k*cols)
		for j := i; j < i+k; j++ {
			args = append(args, row(j)...)
		}
		if _, err := q.ExecContext(ctx, stmt, args...); err != nil {
			return err
		}
	}
	return nil
}

// execEach runs one prepared statement n times.
func execEach(ctx context.Context, q querier, stmt string, n int, args func(i int) []any) error {
	if n == 0 {
		return nil
	}
	p, ok := q.(interface {
		PrepareContext(ctx context.Context, query string) (*sql.Stmt, error)
	})
	if !ok {
		return fmt.Errorf("cannot prepare %q", stmt)
	}
	st, err := p.PrepareContext(ctx, stmt)
	if err != nil {
		return err
	}
	defer st.Close()
	for i := range n {
		if _, err := st.ExecContext(ctx, args(i)...); err != nil {
			return err
		}
	}
	return nil
}

// Append adds a's rows in field order.
func (t *txn) Append(ctx context.Context, a ledger.Append) error {
	if len(a.Entries) > 0 {
		n, err := t.Size(ctx)
		if err != nil {
			return err
		}
		for i, e := range a.Entries {
			if e.Index != n+int64(i) {
				return t.s.errf("append: entry %d where %d is next", e.Index, n+int64(i))
			}
		}
	}
	if err := multiInsert(ctx, t.q, `INSERT INTO entries (idx, batch, body)`, 3, len(a.Entries), func(i int) []any {
		e := a.Entries[i]
		return []any{e.Index, e.Batch, e.Body}
	}); err != nil {
		return t.s.errf("append entries: %w", err)
	}
	if err := multiInsert(ctx, t.q, `INSERT INTO hashes (id, hash)`, 2, len(a.Hashes), func(i int) []any {
		return []any{a.Hashes[i].Index, a.Hashes[i].Hash[:]}
	}); err != nil {
		return t.s.errf("append hashes: %w", err)
	}
	if err := multiInsert(ctx, t.q, `INSERT INTO batches (id, host, first_idx, count, root, sig)`, 6, len(a.Batches), func(i int) []any {
		b := a.Batches[i]
		return []any{b.ID, b.Host, b.First, b.Count, b.Root[:], b.Sig}
	}); err != nil {
		return t.s.errf("append batches: %w", err)
	}
	if err := multiInsert(ctx, t.q, `INSERT INTO leases (ip, mac, vm, host, from_ts, to_ts, start_idx, end_idx)`, 8, len(a.Leases), func(i int) []any {
		l := a.Leases[i]
		return []any{l.IP.Unmap().String(), l.MAC, l.VM, l.Host, sqlitedb.EncodeTime(l.From), sqlitedb.EncodeTime(l.To), l.Start, l.End}
	}); err != nil {
		return t.s.errf("append leases: %w", err)
	}
	if err := execEach(ctx, t.q, `UPDATE leases SET to_ts = ?, end_idx = ? WHERE end_idx = -1 AND vm = ? AND host = ? AND ip = ? AND mac = ?`, len(a.LeaseEnds), func(i int) []any {
		e := a.LeaseEnds[i]
		return []any{sqlitedb.EncodeTime(e.To), e.Index, e.VM, e.Host, e.IP.Unmap().String(), e.MAC}
	}); err != nil {
		return t.s.errf("append lease ends: %w", err)
	}
	if err := multiInsert(ctx, t.q, `INSERT INTO runs (vm, name, host, owner, image, list, endorser, from_ts, to_ts, start_idx, end_idx)`, 11, len(a.Runs), func(i int) []any {
		r := a.Runs[i]
		return []any{r.VM, r.Name, r.Host, r.Owner, r.Image, r.List, r.Endorser, sqlitedb.EncodeTime(r.From), sqlitedb.EncodeTime(r.To), r.Start, r.End}
	}); err != nil {
		return t.s.errf("append runs: %w", err)
	}
	if err := execEach(ctx, t.q, `UPDATE runs SET to_ts = ?, end_idx = ? WHERE end_idx = -1 AND vm = ? AND host = ?`, len(a.RunEnds), func(i int) []any {
		e := a.RunEnds[i]
		return []any{sqlitedb.EncodeTime(e.To), e.Index, e.VM, e.Host}
	}); err != nil {
		return t.s.errf("append run ends: %w", err)
	}
	if err := multiInsert(ctx, t.q, `INSERT OR IGNORE INTO vm_events (vm, idx)`, 2, len(a.VMEvents), func(i int) []any {
		return []any{a.VMEvents[i].VM, a.VMEvents[i].Index}
	}); err != nil {
		return t.s.errf("append vm events: %w", err)
	}
	return nil
}

// PutCheckpoint stores c; one of the same size only with the same root.
func (t *txn) PutCheckpoint(ctx context.Context, c ledger.Checkpoint) error {
	old, err := checkpoint(ctx, t.s, t.q, `SELECT size, root, note, time FROM checkpoints WHERE size = ?`, c.Size)
	switch {
	case err == nil:
		if old.Root != c.Root {
			return t.s.errf("checkpoint %d exists with another root", c.Size)
		}
		_, err = t.q.ExecContext(ctx, `UPDATE checkpoints SET note = ?, time = ? WHERE size = ?`, c.Note, sqlitedb.EncodeTime(c.Time), c.Size)
	case errors.Is(err, ledger.ErrNotFound):
		_, err = t.q.ExecContext(ctx, `INSERT INTO checkpoints (size, root, note, time) VALUES (?, ?, ?, ?)`, c.Size, c.Root[:], c.Note, sqlitedb.EncodeTime(c.Time))
	}
	if err != nil {
		return t.s.errf("checkpoint %d: %w", c.Size, err)
	}
	return nil
}

// The Tamper methods change rows directly, bypassing every check: the
// conformance suite's tampering tests use them.

// TamperSetBody replaces an entry's body.
func (s *Store) TamperSetBody(ctx context.Context, idx int64, body []byte) error {
	return s.tamper(ctx, `UPDATE entries SET body = ? WHERE idx = ?`, body, idx)
}

// TamperDelete deletes an entry.
func (s *Store) TamperDelete(ctx context.Context, idx int64) error {
	return s.tamper(ctx, `DELETE FROM entries WHERE idx = ?`, idx)
}

// TamperInsert shifts the entries from idx up by one and puts body at idx.
func (s *Store) TamperInsert(ctx context.Context, idx int64, body []byte) error {
	tx, err := s.conns.W.BeginTx(ctx, nil)
	if err != nil {
		return s.errf("tamper: %w", err)
	}
	defer tx.Rollback()
	for _, q := range []string{`UPDATE entries SET idx = -(idx + 1) WHERE idx >= ?`, `UPDATE entries SET idx = -idx WHERE idx < 0`} {
		if _, err := tx.ExecContext(ctx, q, idx); err != nil {
			return s.errf("tamper: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO entries (idx, batch, body) VALUES (?, COALESCE((SELECT batch FROM entries WHERE idx = ?), 0), ?)`, idx, idx+1, body); err != nil {
		return s.errf("tamper: %w", err)
	}
	return tx.Commit()
}

// TamperSwap swaps the bodies of two entries.
func (s *Store) TamperSwap(ctx context.Context, i, j int64) error {
	return s.tamper(ctx, `UPDATE entries SET body = CASE idx WHEN ? THEN (SELECT body FROM entries WHERE idx = ?) ELSE (SELECT body FROM entries WHERE idx = ?) END WHERE idx IN (?, ?)`,
		i, j, i, i, j)
}

// TamperSetHash replaces a stored hash.
func (s *Store) TamperSetHash(ctx context.Context, id int64, h tlog.Hash) error {
	return s.tamper(ctx, `UPDATE hashes SET hash = ? WHERE id = ?`, h[:], id)
}

func (s *Store) tamper(ctx context.Context, q string, args ...any) error {
	res, err := s.conns.W.ExecContext(ctx, q, args...)
	if err != nil {
		return s.errf("tamper: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return s.errf("tamper: no row changed")
	}
	return nil
}
