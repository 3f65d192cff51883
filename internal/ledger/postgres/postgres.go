// Package postgres is the PostgreSQL ledger.Store (pgx), passing the same
// conformance suite as the SQLite store.
//
// Guarantees: an Update is one transaction that first takes the
// transaction-level advisory lock UpdateLockKey, so Updates serialise
// across connections and processes sharing a database; nothing an Update
// wrote remains when its function fails or its context ends. Append checks
// inside the transaction that the entries continue the log, and writes
// entries and tiles with COPY (a tile with the key of a stored one replaces
// it). A lease end closes only leases of its (ip, mac, vm, host) that
// began before it; a timeline row that is empty, not strictly ascending,
// not starting at its first_idx or overlapping the row before is an error
// of Timeline, not skipped. Each Reader call is one statement and so
// sees one committed state. The schema is versioned by embedded migrations
// (migrations/NNNN_name.sql, recorded in schema_migrations) and Open refuses
// a database whose schema is newer than, or different from, this binary's
// with a *SchemaVersionError. Open converts a schema-1 database's stored
// hashes into tiles in the transaction that migrates it, so a database is
// either upgraded entirely or not at all. Times are stored as TIMESTAMPTZ
// (microsecond precision) and returned in UTC. Missing rows are errors wrapping
// ledger.ErrNotFound. The Tamper methods exist only for the tampering
// tests: they change rows directly, bypassing every check.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/vmtrust/vmtrust/internal/ledger"
	"golang.org/x/mod/sumdb/tlog"
)

// UpdateLockKey is the pg_advisory_xact_lock key every Update takes.
const UpdateLockKey = 0x766d74727573_01 // "vmtrus" 1

// IndexLockKey is the pg_advisory_xact_lock key every UpdateIndex takes:
// index transactions are serialised with each other, not with Updates.
const IndexLockKey = 0x766d74727573_03

// migrateLockKey serialises migrations of concurrent Opens.
const migrateLockKey = 0x766d74727573_02

// MaxConns is the most connections a Store opens.
const MaxConns = 8

// MaxLimit bounds LeasesAt's and Runs' limits.
const MaxLimit = 100_000

//go:embed migrations/*.sql
var migrationFS embed.FS

// Store is a ledger.Store on PostgreSQL.
type Store struct {
	pool *pool
	log  *slog.Logger
}

var _ ledger.Store = (*Store)(nil)

// Open connects to the database dsn (a pgx connection string), applies the
// migrations it lacks and returns the Store.
func Open(ctx context.Context, dsn string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("ledger postgres: %w", err)
	}
	ms, err := loadMigrations(migrationFS, "migrations")
	if err != nil {
		return nil, err
	}
	return openWith(ctx, cfg, log, ms)
}

// openWith is Open with the migrations ms (the tests' hook to build an older
// schema).
func openWith(ctx context.Context, cfg *pgx.ConnConfig, log *slog.Logger, ms []migration) (*Store, error) {
	s := &Store{pool: newPool(cfg, MaxConns), log: log}
	if err := s.migrate(ctx, ms); err != nil {
		s.pool.close()
		return nil, err
	}
	return s, nil
}

// Close closes the Store's connections.
func (s *Store) Close() error {
	s.pool.close()
	return nil
}

// Update runs fn in one transaction holding the advisory lock
// UpdateLockKey and commits it when fn returns nil and ctx has not ended.
func (s *Store) Update(ctx context.Context, fn func(ledger.Tx) error) error {
	return s.update(ctx, UpdateLockKey, func(tx pgx.Tx) error { return fn(txn{tx}) })
}

// UpdateIndex is Update with the lock IndexLockKey: it runs beside
// ingests.
func (s *Store) UpdateIndex(ctx context.Context, fn func(ledger.IndexTx) error) error {
	return s.update(ctx, IndexLockKey, func(tx pgx.Tx) error { return fn(txn{tx}) })
}

// Indexed is the number of entries the query indexes cover.
func (s *Store) Indexed(ctx context.Context) (n int64, err error) {
	err = s.with(ctx, func(c *pgx.Conn) error { n, err = indexed(ctx, c); return err })
	return n, err
}

// CheckpointAtMost returns the largest checkpoint of size at most n.
func (s *Store) CheckpointAtMost(ctx context.Context, n int64) (cp ledger.Checkpoint, err error) {
	err = s.with(ctx, func(c *pgx.Conn) error {
		cp, err = checkpoint(ctx, c, "WHERE size <= $1 ORDER BY size DESC LIMIT 1", n)
		return err
	})
	return cp, err
}

func (s *Store) update(ctx context.Context, lock int64, fn func(pgx.Tx) error) (err error) {
	c, err := s.pool.acquire(ctx)
	if err != nil {
		return fmt.Errorf("ledger postgres: update: %w", err)
	}
	defer s.pool.release(c)
	// Read committed, whatever the server's default: each statement after the
	// advisory lock sees what the previous holder committed.
	tx, err := c.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return fmt.Errorf("ledger postgres: update: %w", err)
	}
	defer func() {
		if err != nil {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			tx.Rollback(rctx) // on failure the connection is closed, which aborts the transaction
		}
	}()
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lock); err != nil {
		return fmt.Errorf("ledger postgres: update: lock: %w", err)
	}
	if err := fn(tx); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("ledger postgres: update: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("ledger postgres: update: commit: %w", err)
	}
	return nil
}

// with runs fn on a pooled connection.
func (s *Store) with(ctx context.Context, fn func(*pgx.Conn) error) error {
	c, err := s.pool.acquire(ctx)
	if err != nil {
		return fmt.Errorf("ledger postgres: %w", err)
	}
	defer s.pool.release(c)
	return fn(c)
}

// Size is the number of entries (the largest index plus one).
func (s *Store) Size(ctx context.Context) (n int64, err error) {
	err = s.with(ctx, func(c *pgx.Conn) error { n, err = size(ctx, c); return err })
	return n, err
}

// ReadTiles returns the stored tiles with keys, in order (nil for one not
// stored), in one statement.
func (s *Store) ReadTiles(ctx context.Context, keys []ledger.TileKey) (ts [][]byte, err error) {
	err = s.with(ctx, func(c *pgx.Conn) error { ts, err = readTiles(ctx, c, keys); return err })
	return ts, err
}

// Entries calls fn for the entries in [from, to), in index order.
func (s *Store) Entries(ctx context.Context, from, to int64, fn func(ledger.Entry) error) error {
	return s.with(ctx, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, "SELECT idx, batch, body FROM entries WHERE idx >= $1 AND idx < $2 ORDER BY idx", from, to)
		if err != nil {
			return fmt.Errorf("ledger postgres: entries: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var e ledger.Entry
			if err := rows.Scan(&e.Index, &e.Batch, &e.Body); err != nil {
				return fmt.Errorf("ledger postgres: entries: %w", err)
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("ledger postgres: entries: %w", err)
		}
		return nil
	})
}

// ReadEntries returns the entries at indexes, in that order, in one
// statement.
func (s *Store) ReadEntries(ctx context.Context, indexes []int64) (out []ledger.Entry, err error) {
	err = s.with(ctx, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, entriesQuery, indexes)
		if err != nil {
			return fmt.Errorf("ledger postgres: entries: %w", err)
		}
		out, err = collectEntries(rows, indexes)
		return err
	})
	return out, err
}

// ReadProofData reads the entries and the tiles in one round trip (a
// pipelined batch of the two statements).
func (s *Store) ReadProofData(ctx context.Context, indexes []int64, keys []ledger.TileKey) (es []ledger.Entry, ts [][]byte, err error) {
	err = s.with(ctx, func(c *pgx.Conn) error {
		b := &pgx.Batch{}
		b.Queue(entriesQuery, indexes)
		tq, targs := tilesQuery(keys)
		b.Queue(tq, targs...)
		br := c.SendBatch(ctx, b)
		defer br.Close()
		rows, err := br.Query()
		if err != nil {
			return fmt.Errorf("ledger postgres: entries: %w", err)
		}
		if es, err = collectEntries(rows, indexes); err != nil {
			return err
		}
		if rows, err = br.Query(); err != nil {
			return fmt.Errorf("ledger postgres: read tiles: %w", err)
		}
		if ts, err = collectTiles(rows, keys); err != nil {
			return err
		}
		return br.Close()
	})
	return es, ts, err
}

const entriesQuery = "SELECT idx, batch, body FROM entries WHERE idx = ANY($1)"

// collectEntries reads entriesQuery's rows into the entries at indexes,
// in that order, and closes them.
func collectEntries(rows pgx.Rows, indexes []int64) ([]ledger.Entry, error) {
	defer rows.Close()
	got := make(map[int64]ledger.Entry, len(indexes))
	for rows.Next() {
		var e ledger.Entry
		if err := rows.Scan(&e.Index, &e.Batch, &e.Body); err != nil {
			return nil, fmt.Errorf("ledger postgres: entries: %w", err)
		}
		got[e.Index] = e
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ledger postgres: entries: %w", err)
	}
	out, err := ledger.EntriesInOrder(indexes, got)
	if err != nil {
		return nil, fmt.Errorf("ledger postgres: %w", err)
	}
	return out, nil
}

// Batches calls fn for every batch in id order.
func (s *Store) Batches(ctx context.Context, fn func(ledger.Batch) error) error {
	return s.with(ctx, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, "SELECT id, host, first_idx, count, root, sig FROM batches ORDER BY id")
		if err != nil {
			return fmt.Errorf("ledger postgres: batches: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var b ledger.Batch
			var root []byte
			if err := rows.Scan(&b.ID, &b.Host, &b.First, &b.Count, &root, &b.Sig); err != nil {
				return fmt.Errorf("ledger postgres: batches: %w", err)
			}
			if b.Root, err = toHash(root); err != nil {
				return fmt.Errorf("ledger postgres: batch %d: %w", b.ID, err)
			}
			if err := fn(b); err != nil {
				return err
			}
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("ledger postgres: batches: %w", err)
		}
		return nil
	})
}

// Checkpoint returns the checkpoint of tree size n.
func (s *Store) Checkpoint(ctx context.Context, n int64) (cp ledger.Checkpoint, err error) {
	err = s.with(ctx, func(c *pgx.Conn) error {
		cp, err = checkpoint(ctx, c, "WHERE size = $1", n)
		return err
	})
	return cp, err
}

// Latest returns the largest checkpoint.
func (s *Store) Latest(ctx context.Context) (cp ledger.Checkpoint, err error) {
	err = s.with(ctx, func(c *pgx.Conn) error { cp, err = latest(ctx, c); return err })
	return cp, err
}

// Host returns the enrolled host name.
func (s *Store) Host(ctx context.Context, name string) (h ledger.Host, err error) {
	err = s.with(ctx, func(c *pgx.Conn) error { h, err = host(ctx, c, name); return err })
	return h, err
}

// Hosts returns the enrolled hosts by name.
func (s *Store) Hosts(ctx context.Context) (hs []ledger.Host, err error) {
	err = s.with(ctx, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, "SELECT name, key, added FROM hosts ORDER BY name")
		if err != nil {
			return fmt.Errorf("ledger postgres: hosts: %w", err)
		}
		hs, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (ledger.Host, error) {
			var h ledger.Host
			var added *time.Time
			err := r.Scan(&h.Name, &h.Key, &added)
			h.Added = fromNull(added)
			return h, err
		})
		if err != nil {
			return fmt.Errorf("ledger postgres: hosts: %w", err)
		}
		return nil
	})
	return emptyNil(hs), err
}

// pool is a small bounded pool of pgx connections (pgxpool needs
// github.com/jackc/puddle/v2, which the module does not have).
type pool struct {
	cfg   *pgx.ConnConfig
	slots chan struct{}

	mu     sync.Mutex
	idle   []*pgx.Conn
	closed bool
}

var errClosed = errors.New("store closed")

func newPool(cfg *pgx.ConnConfig, max int) *pool {
	return &pool{cfg: cfg, slots: make(chan struct{}, max)}
}

// acquire returns an idle connection or a new one, waiting while max are
// in use.
func (p *pool) acquire(ctx context.Context) (*pgx.Conn, error) {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.slots
		return nil, errClosed
	}
	if n := len(p.idle); n > 0 {
		c := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return c, nil
	}
	p.mu.Unlock()
	c, err := pgx.ConnectConfig(ctx, p.cfg)
	if err != nil {
		<-p.slots
		return nil, err
	}
	return c, nil
}

// release returns c to the pool, or closes it when it is broken, busy or
// inside a transaction, or the pool is closed.
func (p *pool) release(c *pgx.Conn) {
	defer func() { <-p.slots }()
	pc := c.PgConn()
	p.mu.Lock()
	if p.closed || c.IsClosed() || pc.IsBusy() || pc.TxStatus() != 'I' {
		p.mu.Unlock()
		closeConn(c)
		return
	}
	p.idle = append(p.idle, c)
	p.mu.Unlock()
}

// close closes the idle connections; those in use close on release.
func (p *pool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, c := range idle {
		closeConn(c)
	}
}

func closeConn(c *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.Close(ctx)
}

// migration is one schema step, from a file NNNN_name.sql.
type migration struct {
	version int
	name    string
	sql     string
}

// parseMigrationName parses NNNN_name.sql: four decimal digits, not 0000,
// and a name of lowercase letters, digits and '_'.
func parseMigrationName(file string) (version int, name string, err error) {
	base, ok := strings.CutSuffix(file, ".sql")
	num, name, ok2 := strings.Cut(base, "_")
	if !ok || !ok2 || len(num) != 4 || name == "" || len(name) > 64 {
		return 0, "", fmt.Errorf("migration %q: not named NNNN_name.sql", file)
	}
	for _, r := range num {
		if r < '0' || r > '9' {
			return 0, "", fmt.Errorf("migration %q: not named NNNN_name.sql", file)
		}
	}
	for _, r := range name {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' {
			return 0, "", fmt.Errorf("migration %q: name has %q", file, r)
		}
	}
	version, _ = strconv.Atoi(num)
	if version == 0 {
		return 0, "", fmt.Errorf("migration %q: version 0", file)
	}
	return version, name, nil
}

// loadMigrations reads the migrations in dir: versions 1, 2, 3, ... with
// no gaps; every file must be a migration.
func loadMigrations(fsys fs.FS, dir string) ([]migration, error) {
	des, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("ledger postgres migrations: %w", err)
	}
	var ms []migration
	for _, de := range des { // sorted by name
		v, name, err := parseMigrationName(de.Name())
		if err != nil {
			return nil, fmt.Errorf("ledger postgres migrations: %w", err)
		}
		if v != len(ms)+1 {
			return nil, fmt.Errorf("ledger postgres migrations: %s has version %d, want %d", de.Name(), v, len(ms)+1)
		}
		b, err := fs.ReadFile(fsys, dir+"/"+de.Name())
		if err != nil {
			return nil, fmt.Errorf("ledger postgres migrations: %w", err)
		}
		ms = append(ms, migration{version: v, name: name, sql: string(b)})
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("ledger postgres migrations: none in %s", dir)
	}
	return ms, nil
}

// SchemaVersionError is Open's refusal of a database whose schema is
// newer than this binary knows or whose applied migrations differ from the
// binary's. The database is left unchanged.
type SchemaVersionError struct {
	Database int    // the database's schema version
	Known    int    // the newest version this binary knows
	Detail   string // set when the applied migrations differ
}

func (e *SchemaVersionError) Error() string {
	if e.Detail != "" {
		return fmt.Sprintf("ledger postgres: schema version %d does not match this binary: %s", e.Database, e.Detail)
	}
	return fmt.Sprintf("ledger postgres: schema version %d is newer than this binary knows (%d); use a newer vmtrust", e.Database, e.Known)
}

// migrate applies the migrations the database lacks, all in one
// transaction holding migrateLockKey.
func (s *Store) migrate(ctx context.Context, ms []migration) error {
	return s.with(ctx, func(c *pgx.Conn) error {
		return pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(migrateLockKey)); err != nil {
				return fmt.Errorf("ledger postgres: migrate: %w", err)
			}
			if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
				version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied TIMESTAMPTZ NOT NULL)`); err != nil {
				return fmt.Errorf("ledger postgres: migrate: %w", err)
			}
			rows, err := tx.Query(ctx, "SELECT version, name FROM schema_migrations ORDER BY version")
			if err != nil {
				return fmt.Errorf("ledger postgres: migrate: %w", err)
			}
			applied, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (migration, error) {
				var m migration
				return m, r.Scan(&m.version, &m.name)
			})
			if err != nil {
				return fmt.Errorf("ledger postgres: migrate: %w", err)
			}
			cur := 0
			if len(applied) > 0 {
				cur = applied[len(applied)-1].version
			}
			if cur > len(ms) {
				return &SchemaVersionError{Database: cur, Known: len(ms)}
			}
			for i, m := range applied {
				if m.version != i+1 {
					return &SchemaVersionError{Database: cur, Known: len(ms), Detail: fmt.Sprintf("migration %d is missing", i+1)}
				}
				if m.name != ms[i].name {
					return &SchemaVersionError{Database: cur, Known: len(ms),
						Detail: fmt.Sprintf("migration %d is %q in the database and %q in this binary", m.version, m.name, ms[i].name)}
				}
			}
			for _, m := range ms[cur:] {
				if _, err := tx.Exec(ctx, m.sql); err != nil {
					return fmt.Errorf("ledger postgres: migration %04d_%s: %w", m.version, m.name, err)
				}
				if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name, applied) VALUES ($1, $2, now())", m.version, m.name); err != nil {
					return fmt.Errorf("ledger postgres: migration %04d_%s: %w", m.version, m.name, err)
				}
				s.log.Info("ledger schema migrated", "schema.version", m.version, "schema.name", m.name)
			}
			return s.hashesToTiles(ctx, tx)
		})
	})
}

// hashWindow is how many stored hashes hashesToTiles reads per query.
const hashWindow = 1 << 16

// hashesToTiles converts the stored hashes of a schema-1 ledger into tiles
// and drops the hashes table, in tx (the migration's). Nothing happens
// when there is no hashes table or no tiles table yet.
func (s *Store) hashesToTiles(ctx context.Context, tx pgx.Tx) error {
	var hashes, tiles bool
	if err := tx.QueryRow(ctx, "SELECT to_regclass('hashes') IS NOT NULL, to_regclass('tiles') IS NOT NULL").Scan(&hashes, &tiles); err != nil {
		return fmt.Errorf("ledger postgres: upgrade to tiles: %w", err)
	}
	if !hashes || !tiles {
		return nil
	}
	n, err := size(ctx, tx)
	if err != nil {
		return err
	}
	// TilesFromHashes reads each level's hashes in ascending storage
	// index: one range query per window, not one query per tile.
	var lo, hi int64 = 0, 0
	var window []tlog.Hash
	var have []bool
	r := tlog.HashReaderFunc(func(ix []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(ix))
		for i, x := range ix {
			if x < lo || x >= hi {
				lo, hi = x, x+hashWindow
				window, have = make([]tlog.Hash, hashWindow), make([]bool, hashWindow)
				rows, err := tx.Query(ctx, "SELECT id, hash FROM hashes WHERE id >= $1 AND id < $2", lo, hi)
				if err != nil {
					return nil, err
				}
				for rows.Next() {
					var id int64
					var b []byte
					if err := rows.Scan(&id, &b); err != nil {
						rows.Close()
						return nil, err
					}
					if window[id-lo], err = toHash(b); err != nil {
						rows.Close()
						return nil, fmt.Errorf("hash %d: %w", id, err)
					}
					have[id-lo] = true
				}
				if err := rows.Err(); err != nil {
					return nil, err
				}
			}
			if !have[x-lo] {
				return nil, fmt.Errorf("hash %d: %w", x, ledger.ErrNotFound)
			}
			out[i] = window[x-lo]
		}
		return out, nil
	})
	ts, err := ledger.TilesFromHashes(n, r)
	if err != nil {
		return fmt.Errorf("ledger postgres: upgrade to tiles: %w", err)
	}
	if len(ts) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"tiles"}, []string{"level", "n", "data"}, pgx.CopyFromSlice(len(ts), func(i int) ([]any, error) {
			return []any{int32(ts[i].Key.L), ts[i].Key.N, ts[i].Data}, nil
		})); err != nil {
			return fmt.Errorf("ledger postgres: upgrade to tiles: %w", err)
		}
	}
	if _, err := tx.Exec(ctx, "DROP TABLE hashes"); err != nil {
		return fmt.Errorf("ledger postgres: upgrade to tiles: %w", err)
	}
	if n > 0 {
		s.log.Info("ledger tree converted to tiles", "ledger.size", n, "ledger.tiles", len(ts))
	}
	return nil
}
