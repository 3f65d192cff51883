// Package pgtest starts a private PostgreSQL 15 server for tests (see
// FIELD-NOTES.md §5) and hands out one fresh database per test.
//
// Guarantees: the server listens only on 127.0.0.1 (on a free port the
// package picks) and on a Unix socket in its own temporary directory; its
// data, socket and log live in that directory, which Stop removes after
// stopping the server it started (pg_ctl stop -m immediate). When run as
// root, initdb and pg_ctl run as the postgres user (runuser). Each
// NewDatabase is a database with a unique name, dropped at the test's
// cleanup. Without the PostgreSQL binaries a test is skipped, or fails
// when the environment variable CI is set. Test use only; never imported
// by production code.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// BinDir holds the PostgreSQL 15 server binaries (Debian's layout).
const BinDir = "/usr/lib/postgresql/15/bin"

// MissingMessage is the skip (or, under CI, failure) message when the
// binaries are absent.
const MissingMessage = "pgtest: PostgreSQL 15 is not installed: install postgresql (scripts/setup.sh)"

// errMissing reports absent binaries.
var errMissing = errors.New(MissingMessage)

// Server is a running private PostgreSQL server.
type Server struct {
	dir     string // the temporary root: data/, sock/, log
	port    int
	initdb  time.Duration
	start   time.Duration
	created atomic.Int64 // databases created, for unique names
	stopped atomic.Bool
}

// Start starts a server for t, stopped and removed at t's cleanup. It
// skips t (fails it under CI) when the binaries are missing.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := start(context.Background())
	if err != nil {
		missing(t, err)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	t.Logf("pgtest: initdb %v, start %v", s.initdb.Round(time.Millisecond), s.start.Round(time.Millisecond))
	return s
}

// missing skips t, or fails it when CI is set, if err is errMissing.
func missing(t testing.TB, err error) {
	t.Helper()
	if !errors.Is(err, errMissing) {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal(MissingMessage)
	}
	t.Skip(MissingMessage)
}

// Shared is one server for a whole test binary, started by Main from
// TestMain:
//
//	var server pgtest.Shared
//	func TestMain(m *testing.M) { os.Exit(server.Main(m)) }
//
// and used by the tests through NewDatabase.
// NoServerEnv, when set in a test binary's environment, stops Main from
// starting a server (the process is a child that uses its parent's).
const NoServerEnv = "VMTRUST_PGTEST_NO_SERVER"

type Shared struct {
	srv *Server
	err error
}

// Main starts the server, runs m and stops the server; it returns m's
// exit code (or 1 when stopping fails). A server that cannot start makes
// every NewDatabase skip or fail; it does not stop the other tests.
func (sh *Shared) Main(m *testing.M) int {
	if os.Getenv(NoServerEnv) != "" {
		// A child process of a test (such as a crash test's ingester),
		// which uses its parent's server: starting one here would leave
		// it running when the child is killed.
		sh.err = fmt.Errorf("pgtest: no server in this process (%s is set)", NoServerEnv)
		return m.Run()
	}
	sh.srv, sh.err = start(context.Background())
	if sh.err == nil {
		fmt.Fprintf(os.Stderr, "pgtest: initdb %v, start %v\n", sh.srv.initdb.Round(time.Millisecond), sh.srv.start.Round(time.Millisecond))
	}
	code := m.Run()
	if sh.srv != nil {
		if err := sh.srv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// Server returns the shared server, skipping or failing t when it did not
// start.
func (sh *Shared) Server(t testing.TB) *Server {
	t.Helper()
	if sh.err != nil {
		missing(t, sh.err)
		t.Fatal(sh.err)
	}
	if sh.srv == nil {
		t.Fatal("pgtest: Shared used without Main in TestMain")
	}
	return sh.srv
}

// NewDatabase is Server(t).NewDatabase(t).
func (sh *Shared) NewDatabase(t testing.TB) string {
	t.Helper()
	return sh.Server(t).NewDatabase(t)
}

// Timings returns how long initdb and the server's start took.
func (s *Server) Timings() (initdb, start time.Duration) { return s.initdb, s.start }

// SocketDir is the directory of the server's Unix socket.
func (s *Server) SocketDir() string { return filepath.Join(s.dir, "sock") }

// Port is the server's TCP port on 127.0.0.1 (also its socket's number).
func (s *Server) Port() int { return s.port }

// DSN returns a keyword/value connection string for database db over the
// Unix socket.
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=%s sslmode=disable", s.SocketDir(), s.port, db)
}

// NewDatabase creates an empty database for t, dropped at t's cleanup,
// and returns its DSN.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t%d_%d", os.Getpid(), s.created.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.admin(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.admin(ctx, "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return s.DSN(name)
}

// admin runs one statement on the postgres database.
func (s *Server) admin(ctx context.Context, stmt string) error {
	c, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	_, err = c.Exec(ctx, stmt)
	return err
}

// Stop stops the server immediately and removes its directory; a second
// Stop does nothing.
func (s *Server) Stop() error {
	if s.stopped.Swap(true) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := run(ctx, "pg_ctl", "-D", filepath.Join(s.dir, "data"), "-m", "immediate", "-w", "stop")
	if rerr := os.RemoveAll(s.dir); rerr != nil && err == nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("pgtest: stop: %w", err)
	}
	return nil
}

// start runs initdb and starts the server in a new temporary directory,
// retrying on another port when the picked one was taken meanwhile.
func start(ctx context.Context) (*Server, error) {
	if _, err := os.Stat(filepath.Join(BinDir, "pg_ctl")); err != nil {
		return nil, errMissing
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	s := &Server{dir: dir}
	fail := func(err error) (*Server, error) {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	if err := s.prepare(); err != nil {
		return fail(err)
	}
	t0 := time.Now()
	if err := run(ctx, "initdb", "-D", filepath.Join(dir, "data"), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"); err != nil {
		return fail(err)
	}
	s.initdb = time.Since(t0)
	for attempt := 0; ; attempt++ {
		if s.port, err = freePort(); err != nil {
			return fail(err)
		}
		t0 = time.Now()
		opts := fmt.Sprintf("-k %s -h 127.0.0.1 -p %d", s.SocketDir(), s.port)
		err = run(ctx, "pg_ctl", "-D", filepath.Join(dir, "data"), "-o", opts, "-l", filepath.Join(dir, "log", "postgres.log"), "-w", "start")
		if err == nil {
			s.start = time.Since(t0)
			return s, nil
		}
		if attempt == 2 {
			log, _ := os.ReadFile(filepath.Join(dir, "log", "postgres.log"))
			return fail(fmt.Errorf("%w\n%s", err, log))
		}
	}
}

// prepare creates the sock and log directories and, as root, hands the
// whole tree to the postgres user.
func (s *Server) prepare() error {
	for _, d := range []string{"sock", "log"} {
		if err := os.Mkdir(filepath.Join(s.dir, d), 0o700); err != nil {
			return err
		}
	}
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return err
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	for _, p := range []string{s.dir, filepath.Join(s.dir, "sock"), filepath.Join(s.dir, "log")} {
		if err := os.Chown(p, uid, gid); err != nil {
			return err
		}
	}
	return nil
}

// run runs a PostgreSQL binary, as the postgres user when root.
func run(ctx context.Context, name string, args ...string) error {
	bin := filepath.Join(BinDir, name)
	var cmd *exec.Cmd
	if os.Geteuid() == 0 {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", "postgres", "--", bin}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, bin, args...)
	}
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", name, err, out)
	}
	return nil
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
