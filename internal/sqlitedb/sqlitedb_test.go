package sqlitedb

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func TestLoadMigrations(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	for _, tc := range []struct {
		name    string
		fs      fstest.MapFS
		want    string // version_name:sql ...
		wantErr string
	}{
		{"Ordered", fstest.MapFS{"m/0002_b.sql": file("B"), "m/0001_a.sql": file("A"), "m/README": file("x"), "m/0003_d.sql/x": file("")}, "1_a:A 2_b:B", ""},
		{"Gap", fstest.MapFS{"m/0001_a.sql": file("A"), "m/0003_c.sql": file("C")}, "", "test migrations: 0003_c.sql has version 3, want 2"},
		{"StartsAtTwo", fstest.MapFS{"m/0002_a.sql": file("A")}, "", "0002_a.sql has version 2, want 1"},
		{"Duplicate", fstest.MapFS{"m/0001_a.sql": file("A"), "m/0001_b.sql": file("B")}, "", "0001_b.sql has version 1, want 2"},
		{"NoName", fstest.MapFS{"m/0001.sql": file("A")}, "", "test migrations: 0001.sql is not named NNNN_name.sql"},
		{"EmptyName", fstest.MapFS{"m/0001_.sql": file("A")}, "", "0001_.sql is not named"},
		{"ShortNumber", fstest.MapFS{"m/1_a.sql": file("A")}, "", "1_a.sql is not named"},
		{"LongNumber", fstest.MapFS{"m/00001_a.sql": file("A")}, "", "00001_a.sql is not named"},
		{"NotANumber", fstest.MapFS{"m/000x_a.sql": file("A")}, "", "000x_a.sql is not named"},
		{"Empty", fstest.MapFS{"m/README": file("x")}, "", "test migrations: none in m"},
		{"NoDir", fstest.MapFS{}, "", "test migrations: open m"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ms, err := LoadMigrations("test", tc.fs, "m")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("LoadMigrations = %v, %v; want an error containing %q", ms, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range ms {
				got = append(got, fmt.Sprintf("%d_%s:%s", m.Version, m.Name, m.SQL))
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("LoadMigrations = %v, want %s", got, tc.want)
			}
		})
	}
}

// dbState is what a step leaves in the database file.
type dbState struct {
	version, rows int    // max(version) and count(*) of schema_migrations
	tables        string // user tables, sorted
	rowsA         int    // rows of table a
}

func readState(t *testing.T, path string) dbState {
	t.Helper()
	db, err := sql.Open("sqlite", dsn(path, true, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var s dbState
	if err := db.QueryRow(`SELECT coalesce(max(version), 0), count(*) FROM schema_migrations`).Scan(&s.version, &s.rows); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT coalesce(group_concat(name, ' '), '') FROM (SELECT name FROM sqlite_schema
		WHERE type = 'table' AND name <> 'schema_migrations' ORDER BY name)`).Scan(&s.tables); err != nil {
		t.Fatal(err)
	}
	db.QueryRow(`SELECT count(*) FROM a`).Scan(&s.rowsA)
	return s
}

// TestMigrate runs its steps in order on one database file.
func TestMigrate(t *testing.T) {
	m1 := Migration{Version: 1, Name: "one", SQL: "CREATE TABLE a (x INTEGER) STRICT; INSERT INTO a VALUES (1);"}
	m2 := Migration{Version: 2, Name: "two", SQL: "CREATE TABLE b (y TEXT) STRICT;\nCREATE TABLE c (z TEXT) STRICT;"}
	bad := Migration{Version: 3, Name: "bad", SQL: "CREATE TABLE d (w TEXT) STRICT; INSERT INTO a VALUES (2); INSERT INTO missing VALUES (1);"}
	dangling := Migration{Version: 3, Name: "dangling", SQL: `CREATE TABLE p (id INTEGER PRIMARY KEY) STRICT;
		CREATE TABLE q (p INTEGER REFERENCES p (id) DEFERRABLE INITIALLY DEFERRED) STRICT;
		INSERT INTO q VALUES (7);`}
	other := Migration{Version: 2, Name: "other", SQL: "CREATE TABLE e (v TEXT) STRICT;"}

	path := filepath.Join(t.TempDir(), "test.db")
	applied := time.Date(2025, 3, 1, 12, 0, 0, 5, time.UTC)
	var logged bytes.Buffer
	opts := Options{
		Subject: "test",
		Log:     slog.New(slog.NewTextHandler(&logged, nil)),
		Now:     func() time.Time { return applied },
	}
	for _, tc := range []struct {
		name    string
		ms      []Migration
		wantErr string // empty: Open succeeds
		want    dbState
		wantSV  *SchemaVersionError
	}{
		{"Empty", []Migration{m1}, "", dbState{1, 1, "a", 1}, nil},
		{"AppliedOnce", []Migration{m1}, "", dbState{1, 1, "a", 1}, nil},
		{"Next", []Migration{m1, m2}, "", dbState{2, 2, "a b c", 1}, nil},
		{"FailingMigration", []Migration{m1, m2, bad}, "test " + path + ": migration 0003_bad: ", dbState{2, 2, "a b c", 1}, nil},
		{"DanglingForeignKey", []Migration{m1, m2, dangling}, "migration 0003_dangling leaves 1 foreign key violations", dbState{2, 2, "a b c", 1}, nil},
		{"NewerRefused", []Migration{m1}, "test " + path + ": schema version 2 is newer than this binary knows (1); use a newer vmtrust",
			dbState{2, 2, "a b c", 1}, &SchemaVersionError{Subject: "test", Path: path, Database: 2, Known: 1}},
		{"OtherHistoryRefused", []Migration{m1, other}, `schema version 2 does not match this binary: migration 2 is "two" in the database and "other" in this binary`,
			dbState{2, 2, "a b c", 1}, &SchemaVersionError{Subject: "test", Path: path, Database: 2, Known: 2,
				Detail: `migration 2 is "two" in the database and "other" in this binary`}},
		{"Reopen", []Migration{m1, m2}, "", dbState{2, 2, "a b c", 1}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Open(t.Context(), path, tc.ms, opts)
			if err == nil {
				defer c.Close()
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Open = %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Open = %v, want an error containing %q", err, tc.wantErr)
			}
			var sv *SchemaVersionError
			if errors.As(err, &sv) != (tc.wantSV != nil) || tc.wantSV != nil && *sv != *tc.wantSV {
				t.Errorf("Open = %#v, want *SchemaVersionError %#v", err, tc.wantSV)
			}
			if got := readState(t, path); got != tc.want {
				t.Errorf("after Open: %+v, want %+v", got, tc.want)
			}
		})
	}

	db, err := sql.Open("sqlite", dsn(path, true, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var at time.Time
	if err := db.QueryRow(`SELECT min(applied_at) FROM schema_migrations`).Scan(ScanTime(&at)); err != nil || !at.Equal(applied) {
		t.Errorf("applied_at = %v, %v; want Options.Now's %v", at, err, applied)
	}
	if n := strings.Count(logged.String(), `msg="test schema migrated"`); n != 2 {
		t.Errorf("logged %d migrations, want 2:\n%s", n, logged.String())
	}
}

func TestOpenRejects(t *testing.T) {
	ms := []Migration{{Version: 1, Name: "one", SQL: "CREATE TABLE a (x INTEGER) STRICT;"}}
	dir := t.TempDir()
	for _, tc := range []struct{ name, path, want string }{
		{"EmptyPath", "", "test: empty database path"},
		{"Directory", dir, "test " + dir + ": not a regular file"},
		{"NoDirectory", filepath.Join(dir, "no", "x.db"), "test " + filepath.Join(dir, "no", "x.db") + ": "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Open(t.Context(), tc.path, ms, Options{Subject: "test"})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open(%q) = %v, %v; want an error containing %q", tc.path, c, err, tc.want)
			}
		})
	}
}

func TestIsUniqueViolation(t *testing.T) {
	c, err := Open(t.Context(), filepath.Join(t.TempDir(), "u.db"),
		[]Migration{{Version: 1, Name: "u", SQL: "CREATE TABLE u (k TEXT PRIMARY KEY, v TEXT UNIQUE, n TEXT NOT NULL) STRICT;"}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.W.Exec(`INSERT INTO u VALUES ('k', 'v', 'n')`); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		stmt string
		want bool
	}{
		{`INSERT INTO u VALUES ('k', 'other', 'n')`, true}, // primary key
		{`INSERT INTO u VALUES ('other', 'v', 'n')`, true}, // unique
		{`INSERT INTO u VALUES ('x', 'x', NULL)`, false},   // not null
		{`INSERT INTO missing VALUES (1)`, false},
	} {
		_, err := c.W.Exec(tc.stmt)
		if err == nil || IsUniqueViolation(err) != tc.want || IsUniqueViolation(fmt.Errorf("wrapped: %w", err)) != tc.want {
			t.Errorf("%s: error %v, IsUniqueViolation = %v, want %v", tc.stmt, err, IsUniqueViolation(err), tc.want)
		}
	}
	if IsUniqueViolation(nil) || IsUniqueViolation(errors.New("UNIQUE constraint failed")) {
		t.Error("IsUniqueViolation is true for an error that is not SQLite's")
	}
}

func TestTimeEncoding(t *testing.T) {
	for _, tc := range []time.Time{
		time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC),
		time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.FixedZone("X", -5*3600)),
		time.Date(2499, 12, 31, 22, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
	} {
		enc := EncodeTime(tc).(string)
		var got time.Time
		if err := ScanTime(&got).Scan(enc); err != nil {
			t.Fatalf("scan(%q) = %v", enc, err)
		}
		if !got.Equal(tc) || got.Location() != time.UTC {
			t.Errorf("time %v -> %q -> %v, want the same instant in UTC", tc, enc, got)
		}
	}
	// Fixed width, so text order is time order.
	a, b := EncodeTime(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)).(string), EncodeTime(time.Date(2025, 1, 1, 0, 0, 0, 100, time.UTC)).(string)
	if len(a) != len(b) || a >= b {
		t.Errorf("EncodeTime not fixed width or not ordered: %q, %q", a, b)
	}
	if EncodeTime(time.Time{}) != nil {
		t.Error("EncodeTime(zero) is not NULL")
	}
	got := time.Now()
	if err := ScanTime(&got).Scan(nil); err != nil || !got.IsZero() {
		t.Errorf("scan(NULL) = %v, %v; want the zero time", got, err)
	}
	for _, v := range []any{"2025-01-01", int64(1)} {
		if err := ScanTime(&got).Scan(v); err == nil {
			t.Errorf("scan(%#v) succeeded, want an error", v)
		}
	}
}
