package main

import (
	"context"
	"crypto/rand"
	"log/slog"
	mrand "math/rand/v2"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/vmtrust/vmtrust/internal/ledger"
	"github.com/vmtrust/vmtrust/internal/ledger/sqlite"
)

func TestLeaseIPPermutation(t *testing.T) {
	seen := make(map[netip.Addr]bool, ipSpace)
	for k := range int64(ipSpace) {
		ip := leaseIP(k)
		if seen[ip] {
			t.Fatalf("lease %d: address %v already used within one cycle", k, ip)
		}
		seen[ip] = true
		if !netip.MustParsePrefix("10.0.0.0/12").Contains(ip) {
			t.Fatalf("lease %d: %v outside 10.0.0.0/12", k, ip)
		}
	}
	for _, k := range []int64{0, 1, 12345, ipSpace - 1} {
		if leaseIP(k) != leaseIP(k+ipSpace) {
			t.Errorf("lease %d and %d: different addresses, want reuse every 2^20 leases", k, k+ipSpace)
		}
	}
}

func TestSession(t *testing.T) {
	w, err := newWorkload()
	if err != nil {
		t.Fatal(err)
	}
	var last time.Time
	total := 0
	for _, s := range []int64{0, 1, 17, 99999} {
		evs, err := w.session(s)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != sessionEvents {
			t.Fatalf("session %d: %d events, want %d", s, len(evs), sessionEvents)
		}
		leases := 0
		for p, e := range evs {
			body, err := e.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ledger.Parse(body); err != nil {
				t.Fatalf("session %d event %d: %v", s, p, err)
			}
			total += len(body)
			if !e.Time.Equal(eventTime(s, p)) || !e.Time.After(last) {
				t.Fatalf("session %d event %d at %v: want %v, after %v", s, p, e.Time, eventTime(s, p), last)
			}
			last = e.Time
			if e.Host != w.hostName(s) || e.VM != vmName(s) {
				t.Fatalf("session %d event %d: host %s vm %s", s, p, e.Host, e.VM)
			}
			if e.Type == ledger.LeaseStart {
				d, _ := e.LeaseData()
				if want := leaseIP(s*sessionLeases + int64(leases)).String(); d.IP != want || p != 2+2*leases {
					t.Fatalf("session %d event %d: lease of %s, want %s at event %d", s, p, d.IP, want, 2+2*leases)
				}
				leases++
			}
		}
		if leases != sessionLeases {
			t.Fatalf("session %d: %d leases, want %d", s, leases, sessionLeases)
		}
	}
	if mean := total / (4 * sessionEvents); mean < 150 || mean > 260 {
		t.Errorf("mean event %d bytes, want about 200", mean)
	}
}

func TestLatency(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Microsecond)
	}
	got := latency(d)
	if got.N != 100 || got.P50 != 50 || got.P99 != 99 || got.Max != 100 || got.Mean != 50.5 {
		t.Errorf("latency = %+v, want n 100, p50 50, p99 99, max 100, mean 50.5", got)
	}
}

func TestConfigCheck(t *testing.T) {
	ok := config{backend: "sqlite", path: "x.db", events: 2000, tx: 1000, samples: 100, ingesters: 2}
	if err := ok.check(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*config)
		want string
	}{
		{"no path", func(c *config) { c.path = "" }, "needs -path"},
		{"postgres without dsn", func(c *config) { c.backend = "postgres" }, "needs -dsn"},
		{"unknown backend", func(c *config) { c.backend = "mysql" }, "want sqlite or postgres"},
		{"tx splits a session", func(c *config) { c.tx = 1010 }, "multiple of 20"},
		{"tx zero", func(c *config) { c.tx = 0 }, "multiple of 20"},
		{"tx too big", func(c *config) { c.tx = 2 * ledger.MaxIngest; c.events = 4 * ledger.MaxIngest }, "up to"},
		{"events not whole tx", func(c *config) { c.events = 1500 }, "multiple of -tx"},
		{"events negative", func(c *config) { c.events = -1000 }, "multiple of -tx"},
		{"few samples", func(c *config) { c.samples = 5 }, "at least 100"},
		{"no ingesters", func(c *config) { c.ingesters = 0 }, "want 1..64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mod(&c)
			err := c.check()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("check() = %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// TestRunSQLite runs the whole benchmark on a small SQLite log: every
// who-had answer and proof is checked inside run.
func TestRunSQLite(t *testing.T) {
	c := config{backend: "sqlite", path: filepath.Join(t.TempDir(), "l.db"), events: 4000, tx: 1000, samples: 100, seed: 1, ingesters: 2}
	if err := run(context.Background(), c, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
}

// TestChecksFail shows the benchmark's answer checks reject wrong answers:
// who-had for leases not in the log, and proofs against a wrong root.
func TestChecksFail(t *testing.T) {
	ctx := context.Background()
	c := config{backend: "sqlite", path: filepath.Join(t.TempDir(), "l.db"), events: 2000, tx: 1000, samples: 100}
	st, err := sqlite.Open(ctx, c.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	timed := &timedStore{Store: st}
	lkey, _, err := note.GenerateKey(rand.Reader, "test/ledger")
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.New(timed, lkey, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := newWorkload()
	if err != nil {
		t.Fatal(err)
	}
	for _, vkey := range w.vkeys {
		if err := l.Enroll(ctx, vkey); err != nil {
			t.Fatal(err)
		}
	}
	var res Result
	if err := ingest(ctx, c, l, timed, w, &res, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if res.Ingest.AppendSeconds <= 0 || res.Ingest.StoreSeconds < res.Ingest.AppendSeconds || res.Ingest.LogSeconds <= 0 {
		t.Errorf("ingest split %+v: want append > 0, store ≥ append, log > 0", res.Ingest)
	}
	cp, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rng := mrand.New(mrand.NewPCG(1, 2))
	leases := c.events / sessionEvents * sessionLeases
	first, store, last, err := whoHad(ctx, l, timed, w, leases, 100, 2, rng, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("who-had on leases in the log: %v", err)
	}
	if first.N != 100 || last.N != 100 || store.N != 100 || store.P50 <= 0 || store.P50 > first.P50 {
		t.Errorf("who-had latencies: first %+v, store %+v, last %+v", first, store, last)
	}
	if _, _, _, err := whoHad(ctx, l, timed, w, 10*leases, 100, 1, rng, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("who-had on leases not in the log: no error")
	}
	if _, _, one, err := proofs(ctx, l, cp, 100, rng); err != nil || one.N != 100 {
		t.Fatalf("proofs: %+v, %v", one, err)
	}
	bad := cp
	bad.Root[0] ^= 1
	if _, _, _, err := proofs(ctx, l, bad, 100, rng); err == nil {
		t.Error("proofs against a wrong root: no error")
	}
}
