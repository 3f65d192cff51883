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
// refused. A lease end closes only leases of its (ip, mac, vm, host), a
// run end only runs of its (vm, host), that began before it; a timeline row whose index list is not canonical,
// ascending and starting at its first_idx is an error of Timeline. Open
// converts a schema-1 ledger's stored hashes into tiles in one
// transaction after the migration's (a crash between them leaves no
// tiles and the hashes, which the next Open converts; until then an
// ingest fails, closed).
package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/vmtrust/vmtrust/internal/ledger"
	"github.com/vmtrust/vmtrust/internal/sqlitedb"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// cacheKiB bounds the writer's page cache: an ingest of 10k events
// touches a few thousand index pages at random (leases by address,
// timelines by VM, runs by owner), which SQLite's default 2 MiB would
// spill to the WAL before the commit (measured: ingest 25k → 37k
// events/s with checkpointPages). The cache is filled lazily.
const cacheKiB = 256 << 10

// checkpointPages is the WAL size (4 KiB pages) that triggers a
// checkpoint: an index page changed by many ingests is copied into the
// database once per checkpoint rather than after each commit.
const checkpointPages = 50000

// mmapBytes is how much of the file the readers map: a who-had reads a
// few pages at random, which were each a pread (measured: a fifth of
// its time at 1M events).
const mmapBytes = 64 << 30

// Store is the SQLite ledger store.
type Store struct {
	conns *sqlitedb.Conns
	rq    *stmtCache // reads, on conns.R
	path  string
}

var _ ledger.Store = (*Store)(nil)

// Open opens (creating) the ledger database at path.
func Open(ctx context.Context, path string, log *slog.Logger) (*Store, error) {
	ms, err := sqlitedb.LoadMigrations("ledger", migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	c, err := sqlitedb.Open(ctx, path, ms, sqlitedb.Options{Subject: "ledger", Log: log, WriterCacheKiB: cacheKiB, CheckpointPages: checkpointPages, ReaderMmapBytes: mmapBytes})
	if err != nil {
		return nil, err
	}
	s := &Store{conns: c, rq: newStmtCache(c.R), path: c.Path}
	if err := s.hashesToTiles(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return s, nil
}

// hashesToTiles converts the stored hashes of a schema-1 ledger into
// tiles (schema 2), in one transaction, and drops them.
func (s *Store) hashesToTiles(ctx context.Context) error {
	var n int
	if err := s.conns.W.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'hashes'`).Scan(&n); err != nil {
		return s.errf("upgrade: %w", err)
	}
	if n == 0 {
		return nil
	}
	tx, err := s.conns.W.BeginTx(ctx, nil)
	if err != nil {
		return s.errf("upgrade: %w", err)
	}
	defer tx.Rollback()
	// Another Open may have converted it since the check above.
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'hashes'`).Scan(&n); err != nil {
		return s.errf("upgrade: %w", err)
	}
	if n == 0 {
		return nil
	}
	size, err := size(ctx, s, tx)
	if err != nil {
		return err
	}
	get, err := tx.PrepareContext(ctx, `SELECT hash FROM hashes WHERE id = ?`)
	if err != nil {
		return s.errf("upgrade: %w", err)
	}
	defer get.Close()
	r := tlog.HashReaderFunc(func(ix []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(ix))
		for i, x := range ix {
			var h []byte
			if err := get.QueryRowContext(ctx, x).Scan(&h); err != nil {
				return nil, fmt.Errorf("stored hash %d: %w", x, err)
			}
			if len(h) != tlog.HashSize {
				return nil, fmt.Errorf("stored hash %d: %d bytes", x, len(h))
			}
			out[i] = tlog.Hash(h)
		}
		return out, nil
	})
	tiles, err := ledger.TilesFromHashes(size, r)
	if err != nil {
		return s.errf("upgrade to tiles: %w", err)
	}
	if err := multiInsert(ctx, tx, `INSERT INTO tiles (id, data)`, 2, len(tiles), func(i int) []any {
		return []any{tileID(tiles[i].Key), tiles[i].Data}
	}); err != nil {
		return s.errf("upgrade to tiles: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DROP TABLE hashes`); err != nil {
		return s.errf("upgrade to tiles: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return s.errf("upgrade to tiles: %w", err)
	}
	return nil
}

// Close closes the database.
func (s *Store) Close() error {
	s.rq.close()
	return s.conns.Close()
}

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

// UpdateIndex runs fn in one write transaction (SQLite has one writer:
// index transactions and Updates take turns).
func (s *Store) UpdateIndex(ctx context.Context, fn func(ledger.IndexTx) error) error {
	return s.Update(ctx, func(tx ledger.Tx) error { return fn(tx.(*txn)) })
}

// Indexed is the number of entries the query indexes cover.
func (t *txn) Indexed(ctx context.Context) (int64, error) { return indexed(ctx, t.s, t.q) }

// Indexed is the number of entries the query indexes cover.
func (s *Store) Indexed(ctx context.Context) (int64, error) { return indexed(ctx, s, s.rq) }

func indexed(ctx context.Context, s *Store, q querier) (int64, error) {
	var n int64
	if err := q.QueryRowContext(ctx, `SELECT indexed FROM index_state WHERE id = 1`).Scan(&n); err != nil {
		return 0, s.errf("indexed: %w", err)
	}
	return n, nil
}

// AppendIndex adds the index rows of entries [from, through).
func (t *txn) AppendIndex(ctx context.Context, a ledger.Append, from, through int64) error {
	if len(a.Entries)+len(a.Tiles)+len(a.Batches) > 0 {
		return t.s.errf("append index: entries, tiles or batches given")
	}
	n, err := t.Indexed(ctx)
	if err != nil {
		return err
	}
	size, err := t.Size(ctx)
	if err != nil {
		return err
	}
	if n != from || through <= from || through > size {
		return t.s.errf("append index of [%d, %d): %d indexed of %d entries", from, through, n, size)
	}
	if err := t.appendIndex(ctx, a); err != nil {
		return err
	}
	if _, err := t.q.ExecContext(ctx, `UPDATE index_state SET indexed = ? WHERE id = 1`, through); err != nil {
		return t.s.errf("append index: %w", err)
	}
	return nil
}

// CheckpointAtMost returns the largest checkpoint of size at most n.
func (s *Store) CheckpointAtMost(ctx context.Context, n int64) (ledger.Checkpoint, error) {
	return checkpoint(ctx, s, s.rq, `SELECT size, root, note, time FROM checkpoints WHERE size <= ? ORDER BY size DESC LIMIT 1`, n)
}

// txn is an Update's transaction; reads inside it see its writes.
type txn struct {
	s *Store
	q *sql.Tx
}

func (t *txn) Size(ctx context.Context) (int64, error) { return size(ctx, t.s, t.q) }
func (t *txn) ReadTiles(ctx context.Context, keys []ledger.TileKey) ([][]byte, error) {
	return readTiles(ctx, t.s, t.q, keys)
}
func (t *txn) Host(ctx context.Context, name string) (ledger.Host, error) {
	return host(ctx, t.s, t.q, name)
}
func (t *txn) Latest(ctx context.Context) (ledger.Checkpoint, error) { return latest(ctx, t.s, t.q) }

func (s *Store) Size(ctx context.Context) (int64, error) { return size(ctx, s, s.rq) }
func (s *Store) ReadTiles(ctx context.Context, keys []ledger.TileKey) ([][]byte, error) {
	return readTiles(ctx, s, s.rq, keys)
}
func (s *Store) Host(ctx context.Context, name string) (ledger.Host, error) {
	return host(ctx, s, s.rq, name)
}
func (s *Store) Latest(ctx context.Context) (ledger.Checkpoint, error) {
	return latest(ctx, s, s.rq)
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

// tileID is a tile's row id: its level shifted left by 55, plus its
// offset (below 2^55 for any tree of fewer than 2^59 entries).
func tileID(k ledger.TileKey) int64 { return int64(k.L)<<55 | k.N }

func tileKey(id int64) ledger.TileKey { return ledger.TileKey{L: int(id >> 55), N: id & (1<<55 - 1)} }

func readTiles(ctx context.Context, s *Store, q querier, keys []ledger.TileKey) ([][]byte, error) {
	out := make([][]byte, len(keys))
	got := make(map[ledger.TileKey][]byte, len(keys))
	// IN lists of up to 200 ids.
	for start := 0; start < len(keys); start += 200 {
		part := keys[start:min(len(keys), start+200)]
		args := make([]any, 0, len(part))
		for _, k := range part {
			args = append(args, tileID(k))
		}
		rows, err := q.QueryContext(ctx, `SELECT id, data FROM tiles WHERE id IN (`+
			strings.TrimSuffix(strings.Repeat("?,", len(part)), ",")+`)`, args...)
		if err != nil {
			return nil, s.errf("tiles: %w", err)
		}
		for rows.Next() {
			var id int64
			var d []byte
			if err := rows.Scan(&id, &d); err != nil {
				rows.Close()
				return nil, s.errf("tiles: %w", err)
			}
			got[tileKey(id)] = d
		}
		if err := rows.Close(); err != nil {
			return nil, s.errf("tiles: %w", err)
		}
	}
	for i, k := range keys {
		out[i] = got[k]
	}
	return out, nil
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
	return checkpoint(ctx, s, s.rq, `SELECT size, root, note, time FROM checkpoints WHERE size = ?`, n)
}

// CheckpointSizes lists the sizes of every stored checkpoint.
func (s *Store) CheckpointSizes(ctx context.Context) ([]int64, error) {
	rows, err := s.rq.QueryContext(ctx, `SELECT size FROM checkpoints ORDER BY size`)
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
		rows, err := s.rq.QueryContext(ctx, `SELECT idx, batch, body FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx`, from, end)
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
			if err := s.rq.QueryRowContext(ctx, `SELECT MIN(idx) FROM entries WHERE idx >= ? AND idx < ?`, end, to).Scan(&next); err != nil {
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

// ReadEntries returns the entries at indexes, in that order.
func (s *Store) ReadEntries(ctx context.Context, indexes []int64) ([]ledger.Entry, error) {
	got := make(map[int64]ledger.Entry, len(indexes))
	for start := 0; start < len(indexes); start += 500 {
		part := indexes[start:min(len(indexes), start+500)]
		args := make([]any, len(part))
		for i, x := range part {
			args[i] = x
		}
		rows, err := s.rq.QueryContext(ctx, `SELECT idx, batch, body FROM entries WHERE idx IN (`+
			strings.TrimSuffix(strings.Repeat("?,", len(part)), ",")+`)`, args...)
		if err != nil {
			return nil, s.errf("entries: %w", err)
		}
		for rows.Next() {
			var e ledger.Entry
			if err := rows.Scan(&e.Index, &e.Batch, &e.Body); err != nil {
				rows.Close()
				return nil, s.errf("entries: %w", err)
			}
			got[e.Index] = e
		}
		if err := rows.Close(); err != nil {
			return nil, s.errf("entries: %w", err)
		}
	}
	out, err := ledger.EntriesInOrder(indexes, got)
	if err != nil {
		return nil, s.errf("%w", err)
	}
	return out, nil
}

// ReadProofData reads entries and tiles in one query when they are few
// (a who-had's or a proof's), else as ReadEntries and ReadTiles.
func (s *Store) ReadProofData(ctx context.Context, indexes []int64, keys []ledger.TileKey) ([]ledger.Entry, [][]byte, error) {
	if len(indexes) == 0 || len(indexes)+len(keys) > 500 {
		es, err := s.ReadEntries(ctx, indexes)
		if err != nil {
			return nil, nil, err
		}
		ts, err := s.ReadTiles(ctx, keys)
		if err != nil {
			return nil, nil, err
		}
		return es, ts, nil
	}
	args := make([]any, 0, len(indexes)+len(keys))
	for _, x := range indexes {
		args = append(args, x)
	}
	q := `SELECT 0, idx, batch, body FROM entries WHERE idx IN (` + strings.TrimSuffix(strings.Repeat("?,", len(indexes)), ",") + `)`
	if len(keys) > 0 {
		for _, k := range keys {
			args = append(args, tileID(k))
		}
		q += ` UNION ALL SELECT 1, id, 0, data FROM tiles WHERE id IN (` + strings.TrimSuffix(strings.Repeat("?,", len(keys)), ",") + `)`
	}
	rows, err := s.rq.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, nil, s.errf("entries and tiles: %w", err)
	}
	defer rows.Close()
	es := make(map[int64]ledger.Entry, len(indexes))
	ts := make(map[ledger.TileKey][]byte, len(keys))
	for rows.Next() {
		var kind int
		var id, batch int64
		var b []byte
		if err := rows.Scan(&kind, &id, &batch, &b); err != nil {
			return nil, nil, s.errf("entries and tiles: %w", err)
		}
		if kind == 0 {
			es[id] = ledger.Entry{Index: id, Batch: batch, Body: b}
		} else {
			ts[tileKey(id)] = b
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, s.errf("entries and tiles: %w", err)
	}
	out, err := ledger.EntriesInOrder(indexes, es)
	if err != nil {
		return nil, nil, s.errf("%w", err)
	}
	data := make([][]byte, len(keys))
	for i, k := range keys {
		data[i] = ts[k]
	}
	return out, data, nil
}

// Batches calls fn for every batch.
func (s *Store) Batches(ctx context.Context, fn func(ledger.Batch) error) error {
	rows, err := s.rq.QueryContext(ctx, `SELECT id, host, first_idx, count, root, sig FROM batches ORDER BY id`)
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
	rows, err := s.rq.QueryContext(ctx, `SELECT name, key, added FROM hosts ORDER BY name`)
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
	rows, err := s.rq.QueryContext(ctx, `SELECT l.ip, l.mac, l.vm, l.host, l.from_ts, e.to_ts, l.start_idx, COALESCE(e.end_idx, -1)
		FROM leases l LEFT JOIN lease_ends e ON e.start_idx = l.start_idx
		WHERE l.ip = ? AND l.from_ts <= ? ORDER BY l.from_ts DESC, l.start_idx DESC LIMIT ?`, ip.Unmap().String(), sqlitedb.EncodeTime(at), limit)
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

// Holder reads the indexed checkpoint, the latest's size, ip's lease at
// at and its VM's run in one query (one snapshot).
func (s *Store) Holder(ctx context.Context, ip netip.Addr, at time.Time) (ledger.Holding, error) {
	t := sqlitedb.EncodeTime(at)
	rows, err := s.rq.QueryContext(ctx, `SELECT c.size, c.root, c.note, c.time, (SELECT MAX(size) FROM checkpoints),
		l.ip, l.mac, l.vm, l.host, l.from_ts, e.to_ts, l.start_idx, COALESCE(e.end_idx, -1),
		r.vm, r.name, r.host, r.owner, r.image, r.list, r.endorser, r.from_ts, CASE WHEN r.end_idx < c.size THEN r.to_ts END, r.start_idx, CASE WHEN r.end_idx < c.size THEN r.end_idx ELSE -1 END,
		x0.batch, x0.body, x1.batch, x1.body, x2.batch, x2.body, t0.data, t1.data, t2.data, u0.data, u1.data, u2.data, v0.data, v1.data, v2.data
		FROM (SELECT size, root, note, time FROM checkpoints WHERE size = (SELECT indexed FROM index_state WHERE id = 1)) c
		LEFT JOIN (SELECT * FROM leases WHERE ip = ? AND from_ts <= ? AND start_idx < (SELECT indexed FROM index_state WHERE id = 1)
			ORDER BY from_ts DESC, start_idx DESC LIMIT 1) l ON 1
		LEFT JOIN lease_ends e ON e.start_idx = l.start_idx AND e.end_idx < c.size
		LEFT JOIN runs r ON r.rowid = (SELECT rowid FROM runs WHERE vm = l.vm AND host = l.host AND from_ts <= ? AND start_idx < c.size
			AND (to_ts IS NULL OR to_ts > ? OR end_idx >= c.size) ORDER BY from_ts DESC, start_idx DESC LIMIT 1)
		LEFT JOIN entries x0 ON x0.idx = l.start_idx
		LEFT JOIN entries x1 ON x1.idx = e.end_idx
		LEFT JOIN entries x2 ON x2.idx = r.start_idx
		LEFT JOIN tiles t0 ON t0.id = l.start_idx >> `+tileShift+`
		LEFT JOIN tiles t1 ON t1.id = e.end_idx >> `+tileShift+` AND t1.id IS NOT t0.id
		LEFT JOIN tiles t2 ON t2.id = r.start_idx >> `+tileShift+` AND t2.id IS NOT t0.id AND t2.id IS NOT t1.id
		LEFT JOIN tiles u0 ON u0.id = `+level1+` | (l.start_idx >> `+tileShift2+`)`+`
		LEFT JOIN tiles u1 ON u1.id = `+level1+` | (e.end_idx >> `+tileShift2+`) AND u1.id IS NOT u0.id
		LEFT JOIN tiles u2 ON u2.id = `+level1+` | (r.start_idx >> `+tileShift2+`) AND u2.id IS NOT u0.id AND u2.id IS NOT u1.id
		LEFT JOIN tiles v0 ON v0.id = `+level2+` | (l.start_idx >> `+tileShift3+`)
		LEFT JOIN tiles v1 ON v1.id = `+level2+` | (e.end_idx >> `+tileShift3+`) AND v1.id IS NOT v0.id
		LEFT JOIN tiles v2 ON v2.id = `+level2+` | (r.start_idx >> `+tileShift3+`) AND v2.id IS NOT v0.id AND v2.id IS NOT v1.id`,
		ip.Unmap().String(), t, t, t)
	if err != nil {
		return ledger.Holding{}, s.errf("holder of %v: %w", ip, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return ledger.Holding{}, s.errf("holder of %v: %w", ip, err)
		}
		return ledger.Holding{}, s.errf("checkpoint: %w", ledger.ErrNotFound)
	}
	var h ledger.Holding
	// The blobs as the driver holds them (RawBytes: valid until the next
	// Next or Close), then copied into one allocation: a who-had's
	// garbage is what the collector's pauses scale with.
	var root, note sql.RawBytes
	var lIP, lMAC, lVM, lHost sql.NullString
	var lStart, lEnd sql.NullInt64
	var l ledger.Lease
	var rVM, rName, rHost, rOwner, rImage, rList, rEndorser sql.NullString
	var rStart, rEnd sql.NullInt64
	var r ledger.Run
	var xBatch [3]sql.NullInt64
	var xBody, tData, uData, vData [3]sql.RawBytes
	err = rows.Scan(&h.Checkpoint.Size, &root, &note, sqlitedb.ScanTime(&h.Checkpoint.Time),
		&h.Latest, &lIP, &lMAC, &lVM, &lHost, sqlitedb.ScanTime(&l.From), sqlitedb.ScanTime(&l.To), &lStart, &lEnd,
		&rVM, &rName, &rHost, &rOwner, &rImage, &rList, &rEndorser, sqlitedb.ScanTime(&r.From), sqlitedb.ScanTime(&r.To), &rStart, &rEnd,
		&xBatch[0], &xBody[0], &xBatch[1], &xBody[1], &xBatch[2], &xBody[2], &tData[0], &tData[1], &tData[2], &uData[0], &uData[1], &uData[2], &vData[0], &vData[1], &vData[2])
	if err != nil {
		return ledger.Holding{}, s.errf("holder of %v: %w", ip, err)
	}
	if len(root) != tlog.HashSize {
		return ledger.Holding{}, s.errf("checkpoint %d: root of %d bytes", h.Checkpoint.Size, len(root))
	}
	copy(h.Checkpoint.Root[:], root)
	blobs := [][]sql.RawBytes{{note}, xBody[:], tData[:], uData[:], vData[:]}
	var n int
	for _, bs := range blobs {
		for _, b := range bs {
			n += len(b)
		}
	}
	arena := make([]byte, 0, n)
	keep := func(b sql.RawBytes) []byte {
		if b == nil {
			return nil
		}
		arena = append(arena, b...)
		return arena[len(arena)-len(b) : len(arena) : len(arena)]
	}
	h.Checkpoint.Note = keep(note)
	var body, lv0, lv1, lv2 [3][]byte // entries' bodies, their tiles of levels 0, 1, 2
	for k := range 3 {
		body[k], lv0[k], lv1[k], lv2[k] = keep(xBody[k]), keep(tData[k]), keep(uData[k]), keep(vData[k])
	}
	if lIP.Valid {
		if l.IP, err = netip.ParseAddr(lIP.String); err != nil {
			return ledger.Holding{}, s.errf("lease: %w", err)
		}
		l.MAC, l.VM, l.Host, l.Start, l.End = lMAC.String, lVM.String, lHost.String, lStart.Int64, lEnd.Int64
		h.Lease = &l
	}
	if rVM.Valid {
		r.VM, r.Name, r.Host, r.Owner, r.Image, r.List, r.Endorser = rVM.String, rName.String, rHost.String, rOwner.String, rImage.String, rList.String, rEndorser.String
		r.Start, r.End = rStart.Int64, rEnd.Int64
		h.Run = &r
	}
	// The proofs' entries and level-0, level-1 and level-2 tiles, where
	// the row has them (each tile once: the statement leaves out a tile
	// another entry already brings).
	for k, at := range []sql.NullInt64{lStart, lEnd, rStart} {
		if !at.Valid || at.Int64 < 0 {
			continue
		}
		if xBatch[k].Valid {
			h.Data.Entries = append(h.Data.Entries, ledger.Entry{Index: at.Int64, Batch: xBatch[k].Int64, Body: body[k]})
		}
		h.Data.AddTiles(at.Int64, lv0[k], lv1[k], lv2[k])
	}
	return h, nil
}

// tileShift is ledger.TileHeight in SQL: a level-0 tile's id is an entry
// index shifted right by it; a level-1 tile's is level1 | the index
// shifted right by tileShift2, a level-2 tile's level2 | the index
// shifted right by tileShift3 (tileID).
const (
	tileShift  = "4"
	tileShift2 = "8"
	tileShift3 = "12"
	level1     = "36028797018963968" // 1 << 55
	level2     = "72057594037927936" // 2 << 55
)

var _ = [1]struct{}{}[ledger.TileHeight-4] // tileShift must follow ledger.TileHeight

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
	rows, err := s.rq.QueryContext(ctx, q, args...)
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
	rows, err := s.rq.QueryContext(ctx, `SELECT first_idx, idxs FROM vm_timeline WHERE vm = ? ORDER BY first_idx`, vm)
	if err != nil {
		return nil, s.errf("timeline: %w", err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var first int64
		var list string
		if err := rows.Scan(&first, &list); err != nil {
			return nil, s.errf("timeline: %w", err)
		}
		ix, err := parseIndexes(list, first)
		if err != nil {
			return nil, s.errf("timeline of %q at %d: %w", vm, first, err)
		}
		if len(out) > 0 && ix[0] <= out[len(out)-1] {
			return nil, s.errf("timeline of %q: rows overlap at %d", vm, first)
		}
		out = append(out, ix...)
	}
	return out, rows.Err()
}

// ScanLeases calls fn for every lease (and lease end without its lease)
// by start index.
func (s *Store) ScanLeases(ctx context.Context, fn func(ledger.Lease) error) error {
	rows, err := s.rq.QueryContext(ctx, `SELECT l.ip, COALESCE(l.mac, ''), COALESCE(l.vm, ''), COALESCE(l.host, ''), l.from_ts, e.to_ts,
		COALESCE(l.start_idx, e.start_idx), COALESCE(e.end_idx, -1)
		FROM leases l FULL OUTER JOIN lease_ends e ON e.start_idx = l.start_idx
		ORDER BY COALESCE(l.start_idx, e.start_idx), l.ip`)
	if err != nil {
		return s.errf("scan leases: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var l ledger.Lease
		var ipText sql.NullString
		if err := rows.Scan(&ipText, &l.MAC, &l.VM, &l.Host, sqlitedb.ScanTime(&l.From), sqlitedb.ScanTime(&l.To), &l.Start, &l.End); err != nil {
			return s.errf("scan leases: %w: %w", ledger.ErrCorruptIndex, err)
		}
		if ipText.Valid {
			if l.IP, err = netip.ParseAddr(ipText.String); err != nil {
				return s.errf("scan leases: lease at %d: %w: %w", l.Start, ledger.ErrCorruptIndex, err)
			}
		}
		if err := fn(l); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return s.errf("scan leases: %w", err)
	}
	return nil
}

// ScanRuns calls fn for every run by start index.
func (s *Store) ScanRuns(ctx context.Context, fn func(ledger.Run) error) error {
	rows, err := s.rq.QueryContext(ctx, `SELECT vm, name, host, owner, image, list, endorser, from_ts, to_ts, start_idx, end_idx
		FROM runs ORDER BY start_idx, rowid`)
	if err != nil {
		return s.errf("scan runs: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r ledger.Run
		if err := rows.Scan(&r.VM, &r.Name, &r.Host, &r.Owner, &r.Image, &r.List, &r.Endorser,
			sqlitedb.ScanTime(&r.From), sqlitedb.ScanTime(&r.To), &r.Start, &r.End); err != nil {
			return s.errf("scan runs: %w: %w", ledger.ErrCorruptIndex, err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return s.errf("scan runs: %w", err)
	}
	return nil
}

// ScanTimeline calls fn for every (vm, index) of every timeline row, the
// rows by vm and first index.
func (s *Store) ScanTimeline(ctx context.Context, fn func(ledger.VMEvent) error) error {
	rows, err := s.rq.QueryContext(ctx, `SELECT vm, first_idx, idxs FROM vm_timeline ORDER BY vm, first_idx`)
	if err != nil {
		return s.errf("scan timeline: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var vm, list string
		var first int64
		if err := rows.Scan(&vm, &first, &list); err != nil {
			return s.errf("scan timeline: %w: %w", ledger.ErrCorruptIndex, err)
		}
		ix, err := parseIndexes(list, first)
		if err != nil {
			return s.errf("scan timeline: row of %q at %d: %w: %w", vm, first, ledger.ErrCorruptIndex, err)
		}
		for _, x := range ix {
			if err := fn(ledger.VMEvent{VM: vm, Index: x}); err != nil {
				return err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return s.errf("scan timeline: %w", err)
	}
	return nil
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

// multiInsert runs head VALUES (...), ... for rows [0, n), 200 rows a
// statement.
func multiInsert(ctx context.Context, q querier, head string, cols, n int, row func(i int) []any) error {
	return valuesExec(ctx, q, head+" VALUES ", "", cols, n, row)
}

// valuesExec runs before + "(...), (...)" + after for rows [0, n), 200
// rows a statement.
func valuesExec(ctx context.Context, q querier, before, after string, cols, n int, row func(i int) []any) error {
	const per = 200
	one := "(" + strings.TrimSuffix(strings.Repeat("?,", cols), ",") + ")"
	var full string
	for i := 0; i < n; i += per {
		k := min(per, n-i)
		var stmt string
		if k == per && full != "" {
			stmt = full
		} else {
			stmt = before + strings.TrimSuffix(strings.Repeat(one+",", k), ",") + after
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
	if err := multiInsert(ctx, t.q, `INSERT OR FAIL INTO entries (idx, batch, body)`, 3, len(a.Entries), func(i int) []any {
		e := a.Entries[i]
		return []any{e.Index, e.Batch, e.Body}
	}); err != nil {
		return t.s.errf("append entries: %w", err)
	}
	if err := multiInsert(ctx, t.q, `INSERT OR REPLACE INTO tiles (id, data)`, 2, len(a.Tiles), func(i int) []any {
		tl := a.Tiles[i]
		return []any{tileID(tl.Key), tl.Data}
	}); err != nil {
		return t.s.errf("append tiles: %w", err)
	}
	if err := multiInsert(ctx, t.q, `INSERT OR FAIL INTO batches (id, host, first_idx, count, root, sig)`, 6, len(a.Batches), func(i int) []any {
		b := a.Batches[i]
		return []any{b.ID, b.Host, b.First, b.Count, b.Root[:], b.Sig}
	}); err != nil {
		return t.s.errf("append batches: %w", err)
	}
	return t.appendIndex(ctx, a)
}

// appendIndex adds a's index rows.
func (t *txn) appendIndex(ctx context.Context, a ledger.Append) error {
	// In key order: each insert lands beside the last one's page.
	type leaseRow struct {
		ip   string
		from any
		l    *ledger.Lease
	}
	rows := make([]leaseRow, len(a.Leases))
	for i := range a.Leases {
		l := &a.Leases[i]
		rows[i] = leaseRow{l.IP.Unmap().String(), sqlitedb.EncodeTime(l.From), l}
	}
	slices.SortFunc(rows, func(x, y leaseRow) int {
		return cmp.Or(strings.Compare(x.ip, y.ip), x.l.From.Compare(y.l.From), cmp.Compare(x.l.Start, y.l.Start))
	})
	if err := multiInsert(ctx, t.q, `INSERT OR FAIL INTO leases (ip, from_ts, start_idx, mac, vm, host)`, 6, len(rows), func(i int) []any {
		r := rows[i]
		return []any{r.ip, r.from, r.l.Start, r.l.MAC, r.l.VM, r.l.Host}
	}); err != nil {
		return t.s.errf("append leases: %w", err)
	}
	var closed []ledger.Lease
	for _, l := range a.Leases {
		if l.End >= 0 {
			closed = append(closed, l)
		}
	}
	if err := multiInsert(ctx, t.q, `INSERT OR FAIL INTO lease_ends (start_idx, end_idx, to_ts)`, 3, len(closed), func(i int) []any {
		l := closed[i]
		return []any{l.Start, l.End, sqlitedb.EncodeTime(l.To)}
	}); err != nil {
		return t.s.errf("append lease ends: %w", err)
	}
	// An end closes every lease of (ip, mac, vm, host) still held that
	// began before it (not one this chunk began after it): found through
	// the ip's leases (the primary key's prefix), 200 ends a statement.
	// A chunk has at most one end per key, so a lease matches at most one.
	if err := valuesExec(ctx, t.q, `WITH e(idx, to_ts, ip, mac, vm, host) AS (VALUES `, `)
		INSERT OR FAIL INTO lease_ends (start_idx, end_idx, to_ts)
		SELECT l.start_idx, e.idx, e.to_ts FROM e JOIN leases l ON l.ip = e.ip AND l.mac = e.mac AND l.vm = e.vm AND l.host = e.host AND l.start_idx < e.idx
		WHERE NOT EXISTS (SELECT 1 FROM lease_ends x WHERE x.start_idx = l.start_idx)`, 6, len(a.LeaseEnds), func(i int) []any {
		e := a.LeaseEnds[i]
		return []any{e.Index, sqlitedb.EncodeTime(e.To), e.IP.Unmap().String(), e.MAC, e.VM, e.Host}
	}); err != nil {
		return t.s.errf("append lease ends: %w", err)
	}
	if err := multiInsert(ctx, t.q, `INSERT OR FAIL INTO runs (vm, name, host, owner, image, list, endorser, from_ts, to_ts, start_idx, end_idx)`, 11, len(a.Runs), func(i int) []any {
		r := a.Runs[i]
		return []any{r.VM, r.Name, r.Host, r.Owner, r.Image, r.List, r.Endorser, sqlitedb.EncodeTime(r.From), sqlitedb.EncodeTime(r.To), r.Start, r.End}
	}); err != nil {
		return t.s.errf("append runs: %w", err)
	}
	// An end closes every run of (vm, host) still open that began before
	// it (not one this chunk began after it), 200 ends a statement; at
	// most one end per key in a chunk.
	if err := valuesExec(ctx, t.q, `WITH e(to_ts, idx, vm, host) AS (VALUES `, `)
		UPDATE OR FAIL runs SET to_ts = e.to_ts, end_idx = e.idx FROM e
		WHERE runs.vm = e.vm AND runs.host = e.host AND runs.end_idx = -1 AND runs.start_idx < e.idx`, 4, len(a.RunEnds), func(i int) []any {
		e := a.RunEnds[i]
		return []any{sqlitedb.EncodeTime(e.To), e.Index, e.VM, e.Host}
	}); err != nil {
		return t.s.errf("append run ends: %w", err)
	}
	// One timeline row per VM for this ingest.
	byVM := map[string][]int64{}
	var vms []string
	for _, e := range a.VMEvents {
		if _, ok := byVM[e.VM]; !ok {
			vms = append(vms, e.VM)
		}
		byVM[e.VM] = append(byVM[e.VM], e.Index)
	}
	if err := multiInsert(ctx, t.q, `INSERT OR FAIL INTO vm_timeline (vm, first_idx, idxs)`, 3, len(vms), func(i int) []any {
		ix := byVM[vms[i]]
		return []any{vms[i], ix[0], formatIndexes(ix)}
	}); err != nil {
		return t.s.errf("append timeline: %w", err)
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
	if _, err := tx.ExecContext(ctx, `INSERT OR FAIL INTO entries (idx, batch, body) VALUES (?, COALESCE((SELECT batch FROM entries WHERE idx = ?), 0), ?)`, idx, idx+1, body); err != nil {
		return s.errf("tamper: %w", err)
	}
	return tx.Commit()
}

// TamperSwap swaps the bodies of two entries.
func (s *Store) TamperSwap(ctx context.Context, i, j int64) error {
	return s.tamper(ctx, `UPDATE entries SET body = CASE idx WHEN ? THEN (SELECT body FROM entries WHERE idx = ?) ELSE (SELECT body FROM entries WHERE idx = ?) END WHERE idx IN (?, ?)`,
		i, j, i, i, j)
}

// TamperSetTile replaces a stored tile's data.
func (s *Store) TamperSetTile(ctx context.Context, k ledger.TileKey, data []byte) error {
	return s.tamper(ctx, `UPDATE tiles SET data = ? WHERE id = ?`, data, tileID(k))
}

// TamperSetCheckpointRoot replaces the root column of checkpoint size
// (its signed note unchanged).
func (s *Store) TamperSetCheckpointRoot(ctx context.Context, size int64, root tlog.Hash) error {
	return s.tamper(ctx, `UPDATE checkpoints SET root = ? WHERE size = ?`, root[:], size)
}

// TamperSetRunOwner replaces the owner in every run row of vm.
func (s *Store) TamperSetRunOwner(ctx context.Context, vm, owner string) error {
	return s.tamper(ctx, `UPDATE runs SET owner = ? WHERE vm = ?`, owner, vm)
}

// TamperDeleteLeaseEnd deletes the end of the lease begun at entry start.
func (s *Store) TamperDeleteLeaseEnd(ctx context.Context, start int64) error {
	return s.tamper(ctx, `DELETE FROM lease_ends WHERE start_idx = ?`, start)
}

// TamperSetLeaseVM replaces the VM of the lease begun at entry start.
func (s *Store) TamperSetLeaseVM(ctx context.Context, start int64, vm string) error {
	return s.tamper(ctx, `UPDATE leases SET vm = ? WHERE start_idx = ?`, vm, start)
}

// TamperAddTimeline adds a timeline row putting entry idx under vm.
func (s *Store) TamperAddTimeline(ctx context.Context, vm string, idx int64) error {
	return s.tamper(ctx, `INSERT OR FAIL INTO vm_timeline (vm, first_idx, idxs) VALUES (?, ?, ?)`, vm, idx, formatIndexes([]int64{idx}))
}

// TamperReopenRun makes the run begun at entry start open again.
func (s *Store) TamperReopenRun(ctx context.Context, start int64) error {
	return s.tamper(ctx, `UPDATE runs SET to_ts = NULL, end_idx = -1 WHERE start_idx = ?`, start)
}

// TamperDeleteRun deletes the run begun at entry start.
func (s *Store) TamperDeleteRun(ctx context.Context, start int64) error {
	return s.tamper(ctx, `DELETE FROM runs WHERE start_idx = ?`, start)
}

// TamperSetIndexed sets how far the indexes say they reached.
func (s *Store) TamperSetIndexed(ctx context.Context, n int64) error {
	return s.tamper(ctx, `UPDATE index_state SET indexed = ? WHERE id = 1`, n)
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
