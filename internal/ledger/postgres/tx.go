package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/vmtrust/vmtrust/internal/ledger"
	"golang.org/x/mod/sumdb/tlog"
)

// querier is what *pgx.Conn and pgx.Tx share.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// txn is an Update's ledger.Tx.
type txn struct{ tx pgx.Tx }

var _ ledger.Tx = txn{}

func (t txn) Size(ctx context.Context) (int64, error) { return size(ctx, t.tx) }
func (t txn) ReadTiles(ctx context.Context, keys []ledger.TileKey) ([][]byte, error) {
	return readTiles(ctx, t.tx, keys)
}
func (t txn) Host(ctx context.Context, name string) (ledger.Host, error) {
	return host(ctx, t.tx, name)
}
func (t txn) Latest(ctx context.Context) (ledger.Checkpoint, error) { return latest(ctx, t.tx) }

// PutHost enrolls h; the same name with the same key is a no-op, with
// another key an error.
func (t txn) PutHost(ctx context.Context, h ledger.Host) error {
	old, err := host(ctx, t.tx, h.Name)
	switch {
	case err == nil && old.Key == h.Key:
		return nil
	case err == nil:
		return fmt.Errorf("ledger postgres: host %q: already enrolled with another key", h.Name)
	case !errors.Is(err, ledger.ErrNotFound):
		return err
	}
	if _, err := t.tx.Exec(ctx, "INSERT INTO hosts (name, key, added) VALUES ($1, $2, $3)", h.Name, h.Key, toNull(h.Added)); err != nil {
		return fmt.Errorf("ledger postgres: host %q: %w", h.Name, err)
	}
	return nil
}

// PutCheckpoint stores c; one of the same size is replaced only by one
// with the same root.
func (t txn) PutCheckpoint(ctx context.Context, c ledger.Checkpoint) error {
	old, err := checkpoint(ctx, t.tx, "WHERE size = $1", c.Size)
	switch {
	case err == nil && old.Root != c.Root:
		return fmt.Errorf("ledger postgres: checkpoint %d: root %v differs from the stored %v", c.Size, c.Root, old.Root)
	case err == nil:
		_, err = t.tx.Exec(ctx, "UPDATE checkpoints SET note = $2, time = $3 WHERE size = $1", c.Size, nonNil(c.Note), toNull(c.Time))
	case errors.Is(err, ledger.ErrNotFound):
		_, err = t.tx.Exec(ctx, "INSERT INTO checkpoints (size, root, note, time) VALUES ($1, $2, $3, $4)", c.Size, c.Root[:], nonNil(c.Note), toNull(c.Time))
	}
	if err != nil {
		return fmt.Errorf("ledger postgres: checkpoint %d: %w", c.Size, err)
	}
	return nil
}

// Append adds a's rows in field order.
func (t txn) Append(ctx context.Context, a ledger.Append) error {
	if len(a.Entries) > 0 {
		n, err := size(ctx, t.tx)
		if err != nil {
			return err
		}
		for i, e := range a.Entries {
			if e.Index != n+int64(i) {
				return fmt.Errorf("ledger postgres: append: entry %d at position %d, want index %d (size %d)", e.Index, i, n+int64(i), n)
			}
		}
		if err := t.copy(ctx, "entries", []string{"idx", "batch", "body"}, len(a.Entries), func(i int) []any {
			e := a.Entries[i]
			return []any{e.Index, e.Batch, nonNil(e.Body)}
		}); err != nil {
			return err
		}
	}
	if err := t.putTiles(ctx, a.Tiles); err != nil {
		return err
	}
	if err := t.copy(ctx, "batches", []string{"id", "host", "first_idx", "count", "root", "sig"}, len(a.Batches), func(i int) []any {
		b := a.Batches[i]
		return []any{b.ID, b.Host, b.First, b.Count, b.Root[:], nonNil(b.Sig)}
	}); err != nil {
		return err
	}
	return t.appendIndex(ctx, a)
}

// Indexed is the number of entries the query indexes cover.
func (t txn) Indexed(ctx context.Context) (int64, error) { return indexed(ctx, t.tx) }

func indexed(ctx context.Context, q querier) (int64, error) {
	var n int64
	if err := q.QueryRow(ctx, "SELECT indexed FROM index_state WHERE id = 1").Scan(&n); err != nil {
		return 0, fmt.Errorf("ledger postgres: indexed: %w", err)
	}
	return n, nil
}

// AppendIndex adds the index rows of entries [from, through).
func (t txn) AppendIndex(ctx context.Context, a ledger.Append, from, through int64) error {
	if len(a.Entries)+len(a.Tiles)+len(a.Batches) > 0 {
		return fmt.Errorf("ledger postgres: append index: entries, tiles or batches given")
	}
	n, err := t.Indexed(ctx)
	if err != nil {
		return err
	}
	sz, err := size(ctx, t.tx)
	if err != nil {
		return err
	}
	if n != from || through <= from || through > sz {
		return fmt.Errorf("ledger postgres: append index of [%d, %d): %d indexed of %d entries", from, through, n, sz)
	}
	if err := t.appendIndex(ctx, a); err != nil {
		return err
	}
	if _, err := t.tx.Exec(ctx, "UPDATE index_state SET indexed = $1 WHERE id = 1", through); err != nil {
		return fmt.Errorf("ledger postgres: append index: %w", err)
	}
	return nil
}

// appendIndex adds a's index rows.
func (t txn) appendIndex(ctx context.Context, a ledger.Append) error {
	if err := t.copy(ctx, "leases", []string{"ip", "from_ts", "start_idx", "mac", "vm", "host"}, len(a.Leases), func(i int) []any {
		l := a.Leases[i]
		return []any{l.IP.String(), l.From, l.Start, l.MAC, l.VM, l.Host}
	}); err != nil {
		return err
	}
	var closed []ledger.Lease
	for _, l := range a.Leases {
		if l.End >= 0 {
			closed = append(closed, l)
		}
	}
	if err := t.copy(ctx, "lease_ends", []string{"start_idx", "end_idx", "to_ts"}, len(closed), func(i int) []any {
		return []any{closed[i].Start, closed[i].End, closed[i].To}
	}); err != nil {
		return err
	}
	if n := len(a.LeaseEnds); n > 0 {
		ips, macs, vms, hosts, tos, idxs := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]time.Time, n), make([]int64, n)
		for i, e := range a.LeaseEnds {
			ips[i], macs[i], vms[i], hosts[i], tos[i], idxs[i] = e.IP.String(), e.MAC, e.VM, e.Host, e.To, e.Index
		}
		// One statement for all ends: each closes every lease of its
		// (ip, mac, vm, host) without an end that began before it (not one
		// this Append began after it), found through the ip's leases (the
		// primary key's prefix); a lease two ends match takes the first.
		if _, err := t.tx.Exec(ctx, `INSERT INTO lease_ends (start_idx, end_idx, to_ts)
			SELECT DISTINCT ON (l.start_idx) l.start_idx, e.idx, e.to_ts
			FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::bigint[]) AS e(ip, mac, vm, host, to_ts, idx)
			JOIN leases l ON l.ip = e.ip AND l.mac = e.mac AND l.vm = e.vm AND l.host = e.host AND l.start_idx < e.idx
			WHERE NOT EXISTS (SELECT 1 FROM lease_ends x WHERE x.start_idx = l.start_idx)
			ORDER BY l.start_idx, e.idx`,
			ips, macs, vms, hosts, tos, idxs); err != nil {
			return fmt.Errorf("ledger postgres: append: lease ends: %w", err)
		}
	}
	if err := t.copy(ctx, "runs", []string{"vm", "name", "host", "owner", "image", "list", "endorser", "from_ts", "to_ts", "start_idx", "end_idx"}, len(a.Runs), func(i int) []any {
		r := a.Runs[i]
		return []any{r.VM, r.Name, r.Host, r.Owner, r.Image, r.List, r.Endorser, r.From, toNull(r.To), r.Start, r.End}
	}); err != nil {
		return err
	}
	if n := len(a.RunEnds); n > 0 {
		vms, hosts, tos, idxs := make([]string, n), make([]string, n), make([]time.Time, n), make([]int64, n)
		for i, e := range a.RunEnds {
			vms[i], hosts[i], tos[i], idxs[i] = e.VM, e.Host, e.To, e.Index
		}
		// Found through runs_vm (vm, from_ts). An end closes every run of
		// (vm, host) still open that began before it (not one this chunk
		// began after it); the indexer gives one end per (vm, host).
		if _, err := t.tx.Exec(ctx, `UPDATE runs r SET to_ts = e.to_ts, end_idx = e.idx
			FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::bigint[]) AS e(vm, host, to_ts, idx)
			WHERE r.vm = e.vm AND r.host = e.host AND r.end_idx = -1 AND r.start_idx < e.idx`,
			vms, hosts, tos, idxs); err != nil {
			return fmt.Errorf("ledger postgres: append: run ends: %w", err)
		}
	}
	rows := timelineRows(a.VMEvents)
	return t.copy(ctx, "vm_timeline", []string{"vm", "first_idx", "idxs"}, len(rows), func(i int) []any {
		return []any{rows[i].vm, rows[i].idxs[0], rows[i].idxs}
	})
}

// timelineRow is one vm_timeline row: an Append's events about vm.
type timelineRow struct {
	vm   string
	idxs []int64 // ascending, no repeats
}

// timelineRows groups events by VM, in order of first appearance, each
// VM's indexes sorted ascending without repeats.
func timelineRows(events []ledger.VMEvent) []timelineRow {
	var rows []timelineRow
	pos := map[string]int{}
	for _, e := range events {
		i, ok := pos[e.VM]
		if !ok {
			i = len(rows)
			pos[e.VM] = i
			rows = append(rows, timelineRow{vm: e.VM})
		}
		rows[i].idxs = append(rows[i].idxs, e.Index)
	}
	for i := range rows {
		slices.Sort(rows[i].idxs)
		rows[i].idxs = slices.Compact(rows[i].idxs)
	}
	return rows
}

// putTiles replaces the stored tiles with ts' keys or adds them: the
// stored ones among them (the few on the tree's old right edge) are
// deleted, then all are written with COPY.
func (t txn) putTiles(ctx context.Context, ts []ledger.TileData) error {
	if len(ts) == 0 {
		return nil
	}
	levels, ns := make([]int32, len(ts)), make([]int64, len(ts))
	for i, tl := range ts {
		levels[i], ns[i] = int32(tl.Key.L), tl.Key.N
	}
	if _, err := t.tx.Exec(ctx, `DELETE FROM tiles t USING unnest($1::integer[], $2::bigint[]) AS k(level, n)
		WHERE t.level = k.level AND t.n = k.n`, levels, ns); err != nil {
		return fmt.Errorf("ledger postgres: append: tiles: %w", err)
	}
	return t.copy(ctx, "tiles", []string{"level", "n", "data"}, len(ts), func(i int) []any {
		return []any{levels[i], ns[i], nonNil(ts[i].Data)}
	})
}

// copy writes n rows into table with COPY.
func (t txn) copy(ctx context.Context, table string, cols []string, n int, row func(int) []any) error {
	if n == 0 {
		return nil
	}
	_, err := t.tx.CopyFrom(ctx, pgx.Identifier{table}, cols, pgx.CopyFromSlice(n, func(i int) ([]any, error) { return row(i), nil }))
	if err != nil {
		return fmt.Errorf("ledger postgres: append: %s: %w", table, err)
	}
	return nil
}

func size(ctx context.Context, q querier) (int64, error) {
	var n int64
	if err := q.QueryRow(ctx, "SELECT COALESCE(MAX(idx) + 1, 0) FROM entries").Scan(&n); err != nil {
		return 0, fmt.Errorf("ledger postgres: size: %w", err)
	}
	return n, nil
}

func readTiles(ctx context.Context, q querier, keys []ledger.TileKey) ([][]byte, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	query, args := tilesQuery(keys)
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("ledger postgres: read tiles: %w", err)
	}
	return collectTiles(rows, keys)
}

// tilesQuery is the statement reading the tiles with keys.
func tilesQuery(keys []ledger.TileKey) (string, []any) {
	levels, ns := make([]int32, 0, len(keys)), make([]int64, 0, len(keys))
	for _, k := range keys {
		if k.L >= 0 && k.L <= math.MaxInt32 { // others are never stored
			levels, ns = append(levels, int32(k.L)), append(ns, k.N)
		}
	}
	return `SELECT t.level, t.n, t.data FROM tiles t
		JOIN (SELECT DISTINCT level, n FROM unnest($1::integer[], $2::bigint[]) AS u(level, n)) k
		ON t.level = k.level AND t.n = k.n`, []any{levels, ns}
}

// collectTiles reads tilesQuery's rows into the data of each key, in
// order (nil when not stored), and closes them.
func collectTiles(rows pgx.Rows, keys []ledger.TileKey) ([][]byte, error) {
	defer rows.Close()
	got := make(map[ledger.TileKey][]byte, len(keys))
	for rows.Next() {
		var level int32
		var k ledger.TileKey
		var d []byte
		if err := rows.Scan(&level, &k.N, &d); err != nil {
			return nil, fmt.Errorf("ledger postgres: read tiles: %w", err)
		}
		k.L = int(level)
		got[k] = d
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ledger postgres: read tiles: %w", err)
	}
	out := make([][]byte, len(keys))
	for i, k := range keys {
		out[i] = got[k]
	}
	return out, nil
}

func checkpoint(ctx context.Context, q querier, where string, args ...any) (ledger.Checkpoint, error) {
	var c ledger.Checkpoint
	var root []byte
	var at *time.Time
	err := q.QueryRow(ctx, "SELECT size, root, note, time FROM checkpoints "+where, args...).Scan(&c.Size, &root, &c.Note, &at)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, fmt.Errorf("ledger postgres: checkpoint: %w", ledger.ErrNotFound)
	}
	if err != nil {
		return c, fmt.Errorf("ledger postgres: checkpoint: %w", err)
	}
	if c.Root, err = toHash(root); err != nil {
		return c, fmt.Errorf("ledger postgres: checkpoint %d: %w", c.Size, err)
	}
	c.Time = fromNull(at)
	return c, nil
}

func latest(ctx context.Context, q querier) (ledger.Checkpoint, error) {
	return checkpoint(ctx, q, "ORDER BY size DESC LIMIT 1")
}

func host(ctx context.Context, q querier, name string) (ledger.Host, error) {
	h := ledger.Host{Name: name}
	var added *time.Time
	err := q.QueryRow(ctx, "SELECT key, added FROM hosts WHERE name = $1", name).Scan(&h.Key, &added)
	if errors.Is(err, pgx.ErrNoRows) {
		return ledger.Host{}, fmt.Errorf("ledger postgres: host %q: %w", name, ledger.ErrNotFound)
	}
	if err != nil {
		return ledger.Host{}, fmt.Errorf("ledger postgres: host %q: %w", name, err)
	}
	h.Added = fromNull(added)
	return h, nil
}

// LeasesAt returns the leases of ip that began at or before at, latest
// first, at most limit (at most MaxLimit; none when limit ≤ 0).
func (s *Store) LeasesAt(ctx context.Context, ip netip.Addr, at time.Time, limit int) (ls []ledger.Lease, err error) {
	if limit <= 0 {
		return nil, nil
	}
	limit = min(limit, MaxLimit)
	err = s.with(ctx, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, `SELECT l.ip, l.mac, l.vm, l.host, l.from_ts, e.to_ts, l.start_idx, COALESCE(e.end_idx, -1)
			FROM leases l LEFT JOIN lease_ends e ON e.start_idx = l.start_idx
			WHERE l.ip = $1 AND l.from_ts <= $2 ORDER BY l.from_ts DESC, l.start_idx DESC LIMIT $3`, ip.Unmap().String(), at, limit)
		if err != nil {
			return fmt.Errorf("ledger postgres: leases of %v: %w", ip, err)
		}
		ls, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (ledger.Lease, error) {
			var l ledger.Lease
			var ipText string
			var to *time.Time
			if err := r.Scan(&ipText, &l.MAC, &l.VM, &l.Host, &l.From, &to, &l.Start, &l.End); err != nil {
				return l, err
			}
			var err error
			if l.IP, err = netip.ParseAddr(ipText); err != nil {
				return l, err
			}
			l.From, l.To = l.From.UTC(), fromNull(to)
			return l, nil
		})
		if err != nil {
			return fmt.Errorf("ledger postgres: leases of %v: %w", ip, err)
		}
		return nil
	})
	return emptyNil(ls), err
}

// Holder reads the latest checkpoint, ip's lease at at and its VM's run
// in one statement (one snapshot).
func (s *Store) Holder(ctx context.Context, ip netip.Addr, at time.Time) (h ledger.Holding, err error) {
	err = s.with(ctx, func(c *pgx.Conn) error {
		var root []byte
		var cpTime *time.Time
		var lIP, lMAC, lVM, lHost *string
		var lFrom, lTo *time.Time
		var lStart, lEnd *int64
		var rVM, rName, rHost, rOwner, rImage, rList, rEndorser *string
		var rFrom, rTo *time.Time
		var rStart, rEnd *int64
		var xBatch [3]*int64
		var xBody, tData, uData, vData [3][]byte
		err := c.QueryRow(ctx, holderQuery,
			ip.Unmap().String(), at).Scan(&h.Checkpoint.Size, &root, &h.Checkpoint.Note, &cpTime, &h.Latest,
			&lIP, &lMAC, &lVM, &lHost, &lFrom, &lTo, &lStart, &lEnd,
			&rVM, &rName, &rHost, &rOwner, &rImage, &rList, &rEndorser, &rFrom, &rTo, &rStart, &rEnd,
			&xBatch[0], &xBody[0], &xBatch[1], &xBody[1], &xBatch[2], &xBody[2], &tData[0], &tData[1], &tData[2], &uData[0], &uData[1], &uData[2], &vData[0], &vData[1], &vData[2])
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("ledger postgres: checkpoint: %w", ledger.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("ledger postgres: holder of %v: %w", ip, err)
		}
		if h.Checkpoint.Root, err = toHash(root); err != nil {
			return fmt.Errorf("ledger postgres: checkpoint %d: %w", h.Checkpoint.Size, err)
		}
		h.Checkpoint.Time = fromNull(cpTime)
		if lIP != nil {
			l := &ledger.Lease{MAC: *lMAC, VM: *lVM, Host: *lHost, From: fromNull(lFrom), To: fromNull(lTo), Start: *lStart, End: *lEnd}
			if l.IP, err = netip.ParseAddr(*lIP); err != nil {
				return fmt.Errorf("ledger postgres: lease: %w", err)
			}
			h.Lease = l
		}
		if rVM != nil {
			h.Run = &ledger.Run{VM: *rVM, Name: *rName, Host: *rHost, Owner: *rOwner, Image: *rImage, List: *rList, Endorser: *rEndorser,
				From: fromNull(rFrom), To: fromNull(rTo), Start: *rStart, End: *rEnd}
		}
		// The proofs' entries and level-0, level-1 and level-2 tiles, where
		// the row has them (each tile once: the statement leaves out a tile
		// another entry already brings).
		for k, at := range []*int64{lStart, lEnd, rStart} {
			if at == nil || *at < 0 {
				continue
			}
			if xBatch[k] != nil {
				h.Data.Entries = append(h.Data.Entries, ledger.Entry{Index: *at, Batch: *xBatch[k], Body: xBody[k]})
			}
			h.Data.AddTiles(*at, tData[k], uData[k], vData[k])
		}
		return nil
	})
	return h, err
}

// Runs returns the runs matching f by start time (then start index).
func (s *Store) Runs(ctx context.Context, f ledger.RunFilter) (rs []ledger.Run, err error) {
	var where []string
	var args []any
	arg := func(v any) string { args = append(args, v); return "$" + strconv.Itoa(len(args)) }
	for _, eq := range []struct{ col, val string }{
		{"image", f.Image}, {"endorser", f.Endorser}, {"owner", f.Owner}, {"host", f.Host}, {"vm", f.VM},
	} {
		if eq.val != "" {
			where = append(where, eq.col+" = "+arg(eq.val))
		}
	}
	if !f.From.IsZero() {
		where = append(where, "(to_ts IS NULL OR to_ts > "+arg(f.From)+")")
	}
	if !f.To.IsZero() {
		// Stored times are whole microseconds and pgx truncates a bound
		// to them: round To up so that from_ts < To stays exact.
		where = append(where, "from_ts < "+arg(ceilMicro(f.To)))
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 1000
	}
	q := "SELECT vm, name, host, owner, image, list, endorser, from_ts, to_ts, start_idx, end_idx FROM runs"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY from_ts, start_idx LIMIT " + arg(min(limit, MaxLimit))
	err = s.with(ctx, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("ledger postgres: runs: %w", err)
		}
		rs, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (ledger.Run, error) {
			var x ledger.Run
			var to *time.Time
			err := r.Scan(&x.VM, &x.Name, &x.Host, &x.Owner, &x.Image, &x.List, &x.Endorser, &x.From, &to, &x.Start, &x.End)
			x.From, x.To = x.From.UTC(), fromNull(to)
			return x, err
		})
		if err != nil {
			return fmt.Errorf("ledger postgres: runs: %w", err)
		}
		return nil
	})
	return emptyNil(rs), err
}

// Timeline returns the entry indexes of vm's events in order: its rows'
// lists concatenated in first_idx order, each checked (checkTimelineRow).
func (s *Store) Timeline(ctx context.Context, vm string) (idx []int64, err error) {
	err = s.with(ctx, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, "SELECT first_idx, idxs, COALESCE(array_ndims(idxs), 0) FROM vm_timeline WHERE vm = $1 ORDER BY first_idx", vm)
		if err != nil {
			return fmt.Errorf("ledger postgres: timeline of %q: %w", vm, err)
		}
		defer rows.Close()
		for rows.Next() {
			var first int64
			var ix []int64
			var dims int32
			if err := rows.Scan(&first, &ix, &dims); err != nil {
				return fmt.Errorf("ledger postgres: timeline of %q: %w", vm, err)
			}
			if dims > 1 { // pgx would flatten it
				return fmt.Errorf("ledger postgres: timeline of %q at %d: array of %d dimensions", vm, first, dims)
			}
			if err := checkTimelineRow(first, ix, idx); err != nil {
				return fmt.Errorf("ledger postgres: timeline of %q at %d: %w", vm, first, err)
			}
			idx = append(idx, ix...)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("ledger postgres: timeline of %q: %w", vm, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return emptyNil(idx), nil
}

// ScanLeases calls fn for every lease (and lease end without its lease)
// by start index, streaming on one connection.
func (s *Store) ScanLeases(ctx context.Context, fn func(ledger.Lease) error) error {
	return s.with(ctx, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, `SELECT l.ip, COALESCE(l.mac, ''), COALESCE(l.vm, ''), COALESCE(l.host, ''), l.from_ts, e.to_ts,
			COALESCE(l.start_idx, e.start_idx), COALESCE(e.end_idx, -1)
			FROM leases l FULL OUTER JOIN lease_ends e ON e.start_idx = l.start_idx
			ORDER BY COALESCE(l.start_idx, e.start_idx), l.ip`)
		if err != nil {
			return fmt.Errorf("ledger postgres: scan leases: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var l ledger.Lease
			var ipText *string
			var from, to *time.Time
			if err := rows.Scan(&ipText, &l.MAC, &l.VM, &l.Host, &from, &to, &l.Start, &l.End); err != nil {
				return fmt.Errorf("ledger postgres: scan leases: %w: %w", ledger.ErrCorruptIndex, err)
			}
			l.From, l.To = fromNull(from), fromNull(to)
			if ipText != nil {
				if l.IP, err = netip.ParseAddr(*ipText); err != nil {
					return fmt.Errorf("ledger postgres: scan leases: lease at %d: %w: %w", l.Start, ledger.ErrCorruptIndex, err)
				}
			}
			if err := fn(l); err != nil {
				return err
			}
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("ledger postgres: scan leases: %w", err)
		}
		return nil
	})
}

// ScanRuns calls fn for every run by start index, streaming on one
// connection.
func (s *Store) ScanRuns(ctx context.Context, fn func(ledger.Run) error) error {
	return s.with(ctx, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, `SELECT vm, name, host, owner, image, list, endorser, from_ts, to_ts, start_idx, end_idx
			FROM runs ORDER BY start_idx`)
		if err != nil {
			return fmt.Errorf("ledger postgres: scan runs: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var r ledger.Run
			var to *time.Time
			if err := rows.Scan(&r.VM, &r.Name, &r.Host, &r.Owner, &r.Image, &r.List, &r.Endorser, &r.From, &to, &r.Start, &r.End); err != nil {
				return fmt.Errorf("ledger postgres: scan runs: %w: %w", ledger.ErrCorruptIndex, err)
			}
			r.From, r.To = r.From.UTC(), fromNull(to)
			if err := fn(r); err != nil {
				return err
			}
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("ledger postgres: scan runs: %w", err)
		}
		return nil
	})
}

// ScanTimeline calls fn for every (vm, index) of every timeline row, each
// row checked alone (checkTimelineRow), streaming on one connection.
func (s *Store) ScanTimeline(ctx context.Context, fn func(ledger.VMEvent) error) error {
	return s.with(ctx, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, "SELECT vm, first_idx, idxs, COALESCE(array_ndims(idxs), 0) FROM vm_timeline ORDER BY vm, first_idx")
		if err != nil {
			return fmt.Errorf("ledger postgres: scan timeline: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var vm string
			var first int64
			var ix []int64
			var dims int32
			if err := rows.Scan(&vm, &first, &ix, &dims); err != nil {
				return fmt.Errorf("ledger postgres: scan timeline: %w: %w", ledger.ErrCorruptIndex, err)
			}
			if dims > 1 {
				return fmt.Errorf("ledger postgres: scan timeline: row of %q at %d: %w: array of %d dimensions", vm, first, ledger.ErrCorruptIndex, dims)
			}
			if err := checkTimelineRow(first, ix, nil); err != nil {
				return fmt.Errorf("ledger postgres: scan timeline: row of %q at %d: %w: %w", vm, first, ledger.ErrCorruptIndex, err)
			}
			for _, x := range ix {
				if err := fn(ledger.VMEvent{VM: vm, Index: x}); err != nil {
					return err
				}
			}
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("ledger postgres: scan timeline: %w", err)
		}
		return nil
	})
}

// maxTimelineRow bounds one vm_timeline row: an Append holds at most
// ledger.MaxIngest entries.
const maxTimelineRow = ledger.MaxIngest

// checkTimelineRow checks a vm_timeline row read after the indexes before:
// 1 to maxTimelineRow non-negative indexes, strictly ascending, the first
// equal to first and after the last of before.
func checkTimelineRow(first int64, ix, before []int64) error {
	if len(ix) == 0 || len(ix) > maxTimelineRow {
		return fmt.Errorf("row of %d indexes, want 1 to %d", len(ix), maxTimelineRow)
	}
	if ix[0] != first {
		return fmt.Errorf("row starts at %d, not at its first_idx", ix[0])
	}
	if ix[0] < 0 {
		return fmt.Errorf("negative index %d", ix[0])
	}
	for i := 1; i < len(ix); i++ {
		if ix[i] <= ix[i-1] {
			return fmt.Errorf("index %d after %d", ix[i], ix[i-1])
		}
	}
	if n := len(before); n > 0 && ix[0] <= before[n-1] {
		return fmt.Errorf("row overlaps the previous one, which ends at %d", before[n-1])
	}
	return nil
}

// toHash checks that b is a 32-byte hash.
func toHash(b []byte) (tlog.Hash, error) {
	var h tlog.Hash
	if len(b) != len(h) {
		return h, fmt.Errorf("stored hash has %d bytes, want %d", len(b), len(h))
	}
	copy(h[:], b)
	return h, nil
}

// toNull stores a zero time as NULL.
func toNull(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// fromNull reads NULL as the zero time; others in UTC.
func fromNull(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// nonNil keeps NOT NULL byte columns from receiving NULL for a nil slice.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// emptyNil returns nil for no rows, as every Reader does.
func emptyNil[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

// ceilMicro rounds t up to a whole microsecond.
func ceilMicro(t time.Time) time.Time {
	if tr := t.Truncate(time.Microsecond); !tr.Equal(t) {
		return tr.Add(time.Microsecond)
	}
	return t
}

// tileShift is ledger.TileHeight in SQL: a level-0 tile's n is an entry
// index shifted right by it, a level-1 tile's by tileShift2, a level-2
// tile's by tileShift3.
const (
	tileShift  = "4"
	tileShift2 = "8"
	tileShift3 = "12"
)

var _ = [1]struct{}{}[ledger.TileHeight-4] // tileShift must follow ledger.TileHeight

// holderQuery is Holder's statement ($1 the address, $2 the time). It
// makes no hash or merge join whatever the planner's statistics, and
// looks each part up by key: the lease, lease end, run and entries are
// LATERAL subqueries with LIMIT 1 (never flattened into a join), the tiles
// scalar subqueries (holderTiles). TestHolderPlan checks the plans.
var holderQuery = `SELECT c.size, c.root, c.note, c.time, (SELECT MAX(size) FROM checkpoints),
		l.ip, l.mac, l.vm, l.host, l.from_ts, e.to_ts, l.start_idx, COALESCE(e.end_idx, -1),
		r.vm, r.name, r.host, r.owner, r.image, r.list, r.endorser, r.from_ts, CASE WHEN r.end_idx < c.size THEN r.to_ts END, r.start_idx, CASE WHEN r.end_idx < c.size THEN r.end_idx ELSE -1 END,
		x0.batch, x0.body, x1.batch, x1.body, x2.batch, x2.body, ` + holderTiles + `
		FROM (SELECT size, root, note, time FROM checkpoints WHERE size = (SELECT indexed FROM index_state WHERE id = 1)) c
		LEFT JOIN LATERAL (SELECT * FROM leases WHERE ip = $1 AND from_ts <= $2 AND start_idx < c.size
			ORDER BY from_ts DESC, start_idx DESC LIMIT 1) l ON true
		LEFT JOIN LATERAL (SELECT to_ts, end_idx FROM lease_ends WHERE start_idx = l.start_idx AND end_idx < c.size LIMIT 1) e ON true
		LEFT JOIN LATERAL (SELECT * FROM runs WHERE vm = l.vm AND host = l.host AND from_ts <= $2 AND start_idx < c.size
			AND (to_ts IS NULL OR to_ts > $2 OR end_idx >= c.size) ORDER BY from_ts DESC, start_idx DESC LIMIT 1) r ON true
		LEFT JOIN LATERAL (SELECT batch, body FROM entries WHERE idx = l.start_idx LIMIT 1) x0 ON true
		LEFT JOIN LATERAL (SELECT batch, body FROM entries WHERE idx = e.end_idx LIMIT 1) x1 ON true
		LEFT JOIN LATERAL (SELECT batch, body FROM entries WHERE idx = r.start_idx LIMIT 1) x2 ON true`

// holderTiles is Holder's select list for its proofs' tiles: for each
// level 0, 1 and 2 (in that order) and each of the three entries (lease
// start, lease end, run start), the tile that holds the entry, or NULL if
// an earlier entry's tile at that level is the same one (each tile comes
// once). Each is a scalar subquery: a probe of tiles_pkey of its own (a
// LEFT JOIN can become a hash join of the whole table when the statistics
// are stale), not made at all (CASE) for a tile already brought.
var holderTiles = func() string {
	idx := []string{"l.start_idx", "e.end_idx", "r.start_idx"}
	var cols []string
	for level, shift := range []string{tileShift, tileShift2, tileShift3} {
		for k, x := range idx {
			n := "(" + x + " >> " + shift + ")"
			col := "(SELECT data FROM tiles WHERE level = " + strconv.Itoa(level) + " AND n = " + n + ")"
			var same []string
			for _, y := range idx[:k] {
				same = append(same, n+" IS DISTINCT FROM ("+y+" >> "+shift+")")
			}
			if len(same) > 0 {
				col = "CASE WHEN " + strings.Join(same, " AND ") + " THEN " + col + " END"
			}
			cols = append(cols, col)
		}
	}
	return strings.Join(cols, ",\n\t\t\t")
}()
