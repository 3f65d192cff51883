package sqlite

import (
	"context"
	"database/sql"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/vmtrust/vmtrust/internal/ledger"
	"github.com/vmtrust/vmtrust/internal/ledger/ledgertest"
	"github.com/vmtrust/vmtrust/internal/sqlitedb"
)

// TestUpgradeFromHashes builds a schema-1 ledger (one row per stored
// hash, leases with their ends in place, vm_events) holding what a real
// log wrote, opens it with this version, and checks that the tree is now
// in tiles, the log verifies and proves, and who-had and the timeline
// still answer.
func TestUpgradeFromHashes(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()

	// The events, ingested by the current code into a scratch ledger: its
	// entries, batches, checkpoints and hosts are schema 1's rows too.
	src, err := Open(ctx, filepath.Join(dir, "src.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	w := ledgertest.NewWorld(t, src, src)
	ev := ledgertest.Ev
	w.Ingest(t, ledgertest.Filler(t, "h1", 0, 37)...)
	w.Ingest(t,
		ev(t, ledger.VMStarted, "h1", "vm-a", 40, ledger.RunData{Name: "a", Owner: "alice", Image: "ab12"}),
		ev(t, ledger.LeaseStart, "h1", "vm-a", 41, ledger.LeaseData{MAC: "52:54:00:00:00:01", IP: "10.0.0.5"}))
	w.Ingest(t, ledgertest.Filler(t, "h2", 50, 20)...)
	w.Ingest(t, ev(t, ledger.LeaseEndType, "h1", "vm-a", 80, ledger.LeaseData{MAC: "52:54:00:00:00:01", IP: "10.0.0.5"}))
	w.CatchUp(t)
	want, err := src.Timeline(ctx, "vm-a")
	if err != nil || len(want) < 3 {
		t.Fatalf("source timeline = %v, %v", want, err)
	}

	// Schema 1, filled from the scratch ledger; the hashes are tlog's.
	path := filepath.Join(dir, "v1.db")
	ms, err := sqlitedb.LoadMigrations("ledger", migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	c, err := sqlitedb.Open(ctx, path, ms[:1], sqlitedb.Options{Subject: "ledger"})
	if err != nil {
		t.Fatal(err)
	}
	exec := func(db *sql.DB, q string, args ...any) {
		t.Helper()
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db := c.W
	exec(db, `ATTACH DATABASE ? AS src`, src.Path())
	for _, table := range []string{"entries", "batches", "checkpoints", "hosts", "runs"} {
		exec(db, `INSERT INTO main.`+table+` SELECT * FROM src.`+table)
	}
	exec(db, `INSERT INTO main.leases (ip, mac, vm, host, from_ts, to_ts, start_idx, end_idx)
		SELECT l.ip, l.mac, l.vm, l.host, l.from_ts, e.to_ts, l.start_idx, COALESCE(e.end_idx, -1)
		FROM src.leases l LEFT JOIN src.lease_ends e ON e.start_idx = l.start_idx`)
	for _, i := range want {
		exec(db, `INSERT INTO main.vm_events (vm, idx) VALUES ('vm-a', ?)`, i)
	}
	exec(db, `DETACH DATABASE src`)
	stored := ledgertest.StoredHashes(t, w.Bodies)
	for i, h := range stored {
		exec(db, `INSERT INTO hashes (id, hash) VALUES (?, ?)`, i, h[:])
	}
	c.Close()
	src.Close()

	st, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatalf("Open of a schema-1 ledger: %v", err)
	}
	defer st.Close()
	var n int
	if err := st.conns.R.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE name IN ('hashes', 'vm_events', 'leases_open', 'runs_open')`).Scan(&n); err != nil || n != 0 {
		t.Errorf("schema-1 tables or indexes left: %d, %v", n, err)
	}
	// Schema 3 drops the old index rows: the first query rebuilds them
	// from the entries.
	if n, err := st.Indexed(ctx); err != nil || n != 0 {
		t.Errorf("Indexed() after upgrade = %d, %v; want 0", n, err)
	}
	if err := st.conns.R.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM leases) + (SELECT COUNT(*) FROM lease_ends) + (SELECT COUNT(*) FROM runs) + (SELECT COUNT(*) FROM vm_timeline)`).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d index rows after upgrade, %v; want 0 (rebuilt by CatchUp)", n, err)
	}
	l, err := ledger.New(st, w.LogKey, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := l.Verify(ctx)
	if err != nil || !rep.OK() || rep.Size != int64(len(w.Bodies)) {
		t.Fatalf("Verify after the upgrade = %+v, %v", rep, err)
	}
	cp, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range cp.Size {
		p, err := l.Prove(ctx, i, cp.Size)
		if err != nil || tlog.CheckRecord(p, cp.Size, cp.Root, i, tlog.RecordHash(w.Bodies[i])) != nil {
			t.Fatalf("entry %d does not prove after the upgrade: %v", i, err)
		}
	}
	ans, err := l.WhoHad(ctx, netip.MustParseAddr("10.0.0.5"), ledgertest.T0.Add(60*60e9))
	if err != nil || ans.Lease.VM != "vm-a" || ans.Lease.End < 0 || ans.Run == nil {
		t.Errorf("WhoHad after the upgrade = %+v, %v", ans, err)
	}
	got, err := st.Timeline(ctx, "vm-a")
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("Timeline after the upgrade = %v, %v; want %v", got, err, want)
	}
	if rep, err := l.Verify(ctx); err != nil || !rep.OK() {
		t.Errorf("Verify after the indexes were rebuilt = %+v, %v", rep, err)
	}
	// The upgraded ledger takes new events.
	w2 := &ledgertest.World{Log: l, Store: st, Hosts: w.Hosts}
	w2.Ingest(t, ledgertest.Filler(t, "h1", 90, 5)...)
	if rep, err := l.Verify(ctx); err != nil || !rep.OK() {
		t.Errorf("Verify after an ingest on the upgraded ledger = %+v, %v", rep, err)
	}
}
