package sqlite

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vmtrust/vmtrust/internal/catalog"
	"github.com/vmtrust/vmtrust/internal/catalog/catalogtest"
	"github.com/vmtrust/vmtrust/internal/sqlitedb"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func TestConformance(t *testing.T) {
	dir := t.TempDir()
	catalogtest.TestStore(t, func(t *testing.T) catalog.Store {
		// One file per test name: a second open for the same t reopens it.
		sum := sha256.Sum256([]byte(t.Name()))
		path := filepath.Join(dir, hex.EncodeToString(sum[:8])+".db")
		s, err := Open(t.Context(), path, testLogger(t))
		if err != nil {
			t.Fatalf("Open(%s) = %v", path, err)
		}
		return s
	})
}

func openTest(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(t.Context(), path, testLogger(t))
	if err != nil {
		t.Fatalf("Open(%s) = %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestMigrationsFromEmpty(t *testing.T) {
	ms, err := sqlitedb.LoadMigrations("catalog", migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	s := openTest(t, filepath.Join(t.TempDir(), "catalog.db"))
	ctx := t.Context()

	rows, err := s.r.QueryContext(ctx, `SELECT version, name, applied_at FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var v int
		var name string
		var at time.Time
		if err := rows.Scan(&v, &name, sqlitedb.ScanTime(&at)); err != nil {
			t.Fatal(err)
		}
		if time.Since(at) > time.Minute {
			t.Errorf("migration %d applied_at = %v, want about now", v, at)
		}
		got = append(got, fmt.Sprintf("%d_%s", v, name))
	}
	rows.Close()
	var want []string
	for _, m := range ms {
		want = append(want, fmt.Sprintf("%d_%s", m.Version, m.Name))
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("schema_migrations = %v, want %v", got, want)
	}

	for _, table := range []string{"endorsers", "subscriptions", "list_versions", "images", "events", "hooks", "deliveries"} {
		var n int
		if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?`, table).Scan(&n); err != nil || n != 1 {
			t.Errorf("table %s: count %d, err %v; want it created", table, n, err)
		}
	}

	for _, tc := range []struct {
		db     string
		pragma string
		want   string
	}{
		{"writer", "journal_mode", "wal"},
		{"writer", "foreign_keys", "1"},
		{"writer", "busy_timeout", fmt.Sprint(BusyTimeout.Milliseconds())},
		{"writer", "synchronous", "2"},
		{"writer", "query_only", "0"},
		{"reader", "journal_mode", "wal"},
		{"reader", "foreign_keys", "1"},
		{"reader", "busy_timeout", fmt.Sprint(BusyTimeout.Milliseconds())},
		{"reader", "query_only", "1"},
	} {
		db := s.w
		if tc.db == "reader" {
			db = s.r
		}
		var got string
		if err := db.QueryRowContext(ctx, "PRAGMA "+tc.pragma).Scan(&got); err != nil || got != tc.want {
			t.Errorf("%s PRAGMA %s = %q, %v; want %q", tc.db, tc.pragma, got, err, tc.want)
		}
	}
	if _, err := s.r.ExecContext(ctx, `DELETE FROM endorsers`); err == nil {
		t.Error("a write on the read pool succeeded, want query_only to refuse it")
	}
}

// TestLoadMigrations checks the embedded migrations; package sqlitedb
// tests how file names are read.
func TestLoadMigrations(t *testing.T) {
	ms, err := sqlitedb.LoadMigrations("catalog", migrationFiles, "migrations")
	if err != nil {
		t.Fatalf("embedded migrations: %v", err)
	}
	for i, m := range ms {
		if m.Version != i+1 || m.Name == "" || strings.TrimSpace(m.SQL) == "" {
			t.Errorf("embedded migration %d = %d %q (%d bytes)", i, m.Version, m.Name, len(m.SQL))
		}
	}
}

// schemaVersion reads the database's applied migrations directly.
func schemaVersion(t *testing.T, s *Store) (version, count int) {
	t.Helper()
	if err := s.r.QueryRowContext(t.Context(), `SELECT coalesce(max(version), 0), count(*) FROM schema_migrations`).Scan(&version, &count); err != nil {
		t.Fatal(err)
	}
	return version, count
}

func tableExists(t *testing.T, s *Store, name string) bool {
	t.Helper()
	var n int
	if err := s.r.QueryRowContext(t.Context(), `SELECT count(*) FROM sqlite_schema WHERE name = ?`, name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

func TestMigrationSteps(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "catalog.db")
	m1 := sqlitedb.Migration{Version: 1, Name: "one", SQL: "CREATE TABLE a (x INTEGER) STRICT; INSERT INTO a VALUES (1);"}
	m2 := sqlitedb.Migration{Version: 2, Name: "two", SQL: "CREATE TABLE b (y TEXT) STRICT;\nCREATE TABLE c (z TEXT) STRICT;\nINSERT INTO b VALUES ('b');"}
	bad := sqlitedb.Migration{Version: 3, Name: "bad", SQL: "CREATE TABLE d (w TEXT) STRICT; INSERT INTO a VALUES (2); INSERT INTO missing VALUES (1);"}

	reopen := func(t *testing.T, ms ...sqlitedb.Migration) (*Store, error) {
		t.Helper()
		s, err := open(ctx, path, testLogger(t), ms)
		if err == nil {
			t.Cleanup(func() { s.Close() })
		}
		return s, err
	}

	s, err := reopen(t, m1)
	if err != nil {
		t.Fatal(err)
	}
	if v, n := schemaVersion(t, s); v != 1 || n != 1 {
		t.Fatalf("after m1: version %d with %d rows, want 1 and 1", v, n)
	}
	s.Close()

	s, err = reopen(t, m1, m2)
	if err != nil {
		t.Fatal(err)
	}
	if v, n := schemaVersion(t, s); v != 2 || n != 2 {
		t.Fatalf("after m2: version %d with %d rows, want 2 and 2", v, n)
	}
	for _, table := range []string{"a", "b", "c"} {
		if !tableExists(t, s, table) {
			t.Errorf("table %s missing: every statement of a migration must run", table)
		}
	}
	var rowsA int
	s.r.QueryRowContext(ctx, `SELECT count(*) FROM a`).Scan(&rowsA)
	if rowsA != 1 {
		t.Errorf("table a has %d rows, want 1 (m1 must not run twice)", rowsA)
	}
	s.Close()

	t.Run("FailedMigrationRollsBack", func(t *testing.T) {
		_, err := reopen(t, m1, m2, bad)
		if err == nil || !strings.Contains(err.Error(), "0003_bad") {
			t.Fatalf("open with a failing migration = %v, want an error naming 0003_bad", err)
		}
		s, err := reopen(t, m1, m2)
		if err != nil {
			t.Fatalf("open at version 2 after the failure = %v", err)
		}
		if v, n := schemaVersion(t, s); v != 2 || n != 2 {
			t.Errorf("after the failed migration: version %d with %d rows, want 2 and 2", v, n)
		}
		if tableExists(t, s, "d") {
			t.Error("table d exists: the failed migration was not rolled back")
		}
		var rowsA int
		s.r.QueryRowContext(ctx, `SELECT count(*) FROM a`).Scan(&rowsA)
		if rowsA != 1 {
			t.Errorf("table a has %d rows, want 1: the failed migration was not rolled back", rowsA)
		}
		s.Close()
	})

	t.Run("RefuseNewer", func(t *testing.T) {
		_, err := reopen(t, m1)
		var sv *SchemaVersionError
		if !errors.As(err, &sv) || sv.Database != 2 || sv.Known != 1 || sv.Detail != "" {
			t.Fatalf("open with a binary that knows 1 of 2 migrations = %v, want *SchemaVersionError{Database: 2, Known: 1}", err)
		}
		if !strings.Contains(err.Error(), "newer") {
			t.Errorf("error %q does not say the database is newer", err)
		}
	})

	t.Run("RefuseOtherHistory", func(t *testing.T) {
		other := sqlitedb.Migration{Version: 2, Name: "other", SQL: "CREATE TABLE e (v TEXT) STRICT;"}
		_, err := reopen(t, m1, other)
		var sv *SchemaVersionError
		if !errors.As(err, &sv) || !strings.Contains(sv.Detail, `"two"`) {
			t.Fatalf("open with another migration 2 = %v, want *SchemaVersionError naming \"two\"", err)
		}
	})

	t.Run("UnchangedAfterRefusal", func(t *testing.T) {
		s, err := reopen(t, m1, m2)
		if err != nil {
			t.Fatal(err)
		}
		if v, n := schemaVersion(t, s); v != 2 || n != 2 || tableExists(t, s, "e") {
			t.Errorf("after refusals: version %d with %d rows (table e: %v), want 2, 2 and no table e", v, n, tableExists(t, s, "e"))
		}
	})
}

// TestRefuseNewerSchema uses the real migrations: a database touched by a
// newer vmtrust is refused and left alone.
func TestRefuseNewerSchema(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "catalog.db")
	s := openTest(t, path)
	known, _ := schemaVersion(t, s)
	if _, err := s.w.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'from_the_future', ?)`,
		known+1, sqlitedb.EncodeTime(time.Now())); err != nil {
		t.Fatal(err)
	}
	s.Close()

	_, err := Open(ctx, path, testLogger(t))
	var sv *SchemaVersionError
	if !errors.As(err, &sv) || sv.Database != known+1 || sv.Known != known || sv.Path != path {
		t.Fatalf("Open(newer schema) = %v, want *SchemaVersionError{Database: %d, Known: %d}", err, known+1, known)
	}
	// Still refused, so nothing was rolled back or re-applied.
	_, err = Open(ctx, path, testLogger(t))
	if !errors.As(err, &sv) {
		t.Fatalf("second Open(newer schema) = %v, want *SchemaVersionError", err)
	}
}

// withUmask runs f with the process umask set to mask (so modes are not
// tightened by a restrictive umask by accident).
func withUmask(t *testing.T, mask int, f func()) {
	old := syscall.Umask(mask)
	defer syscall.Umask(old)
	f()
}

func fileMode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func writeSomething(t *testing.T, s *Store) {
	t.Helper()
	if _, err := s.AppendEvents(t.Context(), catalog.Event{Type: catalog.EventProcessPrefix}); err != nil {
		t.Fatal(err)
	}
}

func TestFileMode(t *testing.T) {
	t.Run("New", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "catalog.db")
		withUmask(t, 0, func() {
			var logs bytes.Buffer
			s, err := Open(t.Context(), path, slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			writeSomething(t, s)
			if strings.Contains(logs.String(), "open to others") {
				t.Errorf("Open of a new file had to tighten its mode: %s", logs.String())
			}
			for _, p := range []string{path, path + "-wal", path + "-shm"} {
				if got := fileMode(t, p); got != 0o600 {
					t.Errorf("mode of %s = %v, want 0600", filepath.Base(p), got)
				}
			}
			s.Close()
		})
	})
	t.Run("ExistingTightened", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "catalog.db")
		s := openTest(t, path)
		writeSomething(t, s)
		s.Close()
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			if err := os.WriteFile(p, nil, 0o644); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
		}
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			if _, err := os.Stat(p); err == nil {
				if err := os.Chmod(p, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		if got := fileMode(t, path); got != 0o644 {
			t.Fatalf("setup: mode %v", got)
		}
		withUmask(t, 0, func() {
			s := openTest(t, path)
			writeSomething(t, s)
			for _, p := range []string{path, path + "-wal", path + "-shm"} {
				if got := fileMode(t, p); got != 0o600 {
					t.Errorf("mode of %s after Open = %v, want 0600", filepath.Base(p), got)
				}
			}
		})
	})
}

func TestOpenPaths(t *testing.T) {
	t.Run("SpecialCharacters", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "a?b#c%20d e")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "cat?alog.db")
		s := openTest(t, path)
		writeSomething(t, s)
		if s.Path() != path {
			t.Errorf("Path() = %q, want %q", s.Path(), path)
		}
		entries, _ := os.ReadDir(dir)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		if len(names) == 0 || names[0] != "cat?alog.db" {
			t.Errorf("directory holds %v, want cat?alog.db (and its -wal, -shm)", names)
		}
	})
	t.Run("Relative", func(t *testing.T) {
		t.Chdir(t.TempDir())
		s := openTest(t, "catalog.db")
		if !filepath.IsAbs(s.Path()) {
			t.Errorf("Path() = %q, want absolute", s.Path())
		}
	})
	for _, tc := range []struct {
		name string
		path func(t *testing.T) string
	}{
		{"Empty", func(t *testing.T) string { return "" }},
		{"MissingDirectory", func(t *testing.T) string { return filepath.Join(t.TempDir(), "no", "catalog.db") }},
		{"Directory", func(t *testing.T) string { return t.TempDir() }},
		{"NotADatabase", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "catalog.db")
			if err := os.WriteFile(p, []byte(strings.Repeat("not sqlite ", 100)), 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(t.Context(), tc.path(t), testLogger(t))
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded, want an error")
			}
		})
	}
}

// TestTwoStoresOneFile is two processes sharing a catalog: both write at
// once, and neither fails with SQLITE_BUSY.
func TestTwoStoresOneFile(t *testing.T) {
	const versions = 20
	path := filepath.Join(t.TempDir(), "catalog.db")
	a, b := openTest(t, path), openTest(t, path)
	ctx := t.Context()
	if err := a.AddEndorser(ctx, catalog.Endorser{Name: "e", DN: "/CN=e", CA: "/CN=ca"}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for i, s := range []*Store{a, b} {
		id, err := s.AddSubscription(ctx, catalog.Subscription{URL: fmt.Sprintf("https://x.example/%d", i), Endorser: "e",
			NewImages: catalog.NewImagesAccept})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for v := 1; v <= versions; v++ {
				lv := catalog.ListVersion{Version: fmt.Sprint(v), Identifier: "id", Raw: []byte(fmt.Sprint(i, v)),
					Created: time.Now(), Expires: time.Now().Add(time.Hour), Signer: "/CN=e", SignerCA: "/CN=ca"}
				if err := s.AcceptList(ctx, id, lv, nil, []catalog.Event{{Type: catalog.EventListAccepted}}); err != nil {
					errs <- fmt.Errorf("store %d: %w", i, err)
					return
				}
			}
			errs <- nil
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	evs, err := b.Events(ctx, 0, catalog.MaxPage)
	if err != nil || len(evs) != 2*versions {
		t.Fatalf("Events = %d, %v; want %d", len(evs), err, 2*versions)
	}
}
