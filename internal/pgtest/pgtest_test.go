package pgtest

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"
)

func query(t *testing.T, dsn, q string) string {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect %s: %v", dsn, err)
	}
	defer c.Close(ctx)
	var v string
	if err := c.QueryRow(ctx, q).Scan(&v); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return v
}

func TestServer(t *testing.T) {
	s := Start(t)
	initdb, start := s.Timings()
	if initdb <= 0 || start <= 0 {
		t.Errorf("Timings() = %v, %v, want both > 0", initdb, start)
	}

	dsn1, dsn2 := s.NewDatabase(t), s.NewDatabase(t)
	if dsn1 == dsn2 {
		t.Fatalf("NewDatabase returned %q twice", dsn1)
	}
	if got := query(t, dsn1, "SHOW listen_addresses"); got != "127.0.0.1" {
		t.Errorf("listen_addresses = %q, want 127.0.0.1", got)
	}
	if got := query(t, dsn1, "SHOW server_version_num"); got[:2] != "15" {
		t.Errorf("server_version_num = %q, want 15xxxx", got)
	}
	// The databases are separate: a table in one is absent in the other.
	ctx := context.Background()
	c1, err := pgx.Connect(ctx, dsn1)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close(ctx)
	if _, err := c1.Exec(ctx, "CREATE TABLE only_here (x INT)"); err != nil {
		t.Fatal(err)
	}
	if got := query(t, dsn2, "SELECT count(*)::text FROM pg_tables WHERE tablename = 'only_here'"); got != "0" {
		t.Errorf("table of database 1 seen in database 2: count %s", got)
	}
	// TCP on 127.0.0.1 works too.
	tcp := "host=127.0.0.1 user=postgres dbname=postgres sslmode=disable port=" + strconv.Itoa(s.Port())
	if got := query(t, tcp, "SELECT 'ok'"); got != "ok" {
		t.Errorf("over TCP: %q", got)
	}
}

func TestStopRemovesEverything(t *testing.T) {
	s := Start(t)
	dsn := s.DSN("postgres")
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop() = %v", err)
	}
	if _, err := os.Stat(s.dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after Stop, %s: %v, want not exist", s.dir, err)
	}
	if c, err := pgx.Connect(context.Background(), dsn); err == nil {
		c.Close(context.Background())
		t.Error("connect after Stop succeeded")
	}
	if err := s.Stop(); err != nil {
		t.Errorf("second Stop() = %v, want nil", err)
	}
}
