// Command ledgerbench measures internal/ledger for vmtrust's issue 7
// benchmarks (bench/ledger.sh). It is not part of vmtrust.
//
//	ledgerbench -backend sqlite   -path FILE [flags]
//	ledgerbench -backend postgres -dsn DSN   [flags]
//
// It builds one log of -events events through the real pipeline: hosts
// make events with ledger.NewEvent and sign them in batches with
// ledger.Sign (one batch per host per transaction), and Log.Ingest
// verifies and appends them, -tx events per Ingest (one store
// transaction each, with its tree hashes and signed checkpoint). The
// workload is VM sessions of 20 events: vm.started, operator.action, 8
// leases (lease.start then lease.end, 16 events), operator.action,
// vm.stopped, from 16 hosts; leases cycle over 2^20 IPv4 addresses
// (10.0.0.0/12), so each address is reused by different VMs every 2^20
// leases. Event times are distinct and increasing (1 ms apart).
//
// Then the database is settled (-settle, default on: its write-ahead log
// checkpointed and the kernel's write-back of the bulk load waited for, as
// a ledger is between ingests) and, on the full log: inclusion proofs of -samples random entries
// (Log.Prove + tlog.CheckRecord against the latest checkpoint; the entry
// body is read untimed first, and Entry + Prove + CheckRecord is timed as
// well) and -samples who-had queries (Log.WhoHad for a random lease's
// address at a time inside it; each answer is checked to name that lease's
// VM, start time and run, with 3 proofs), reporting p50/p99. The database
// size is taken after the first million events and at the end (SQLite:
// file + WAL after a TRUNCATE checkpoint; PostgreSQL: pg_database_size).
//
// Ingest time is split: events made (NewEvent), signed (ledger.Sign:
// canonical encoding, batch Merkle root, Ed25519), and Log.Ingest, itself
// split through a timing wrapper around the Store into store calls
// (reads, Append, PutCheckpoint, commit) and the rest (batch root and
// signature check, Parse of every event, tree hashes, checkpoint
// signature). A separate single-threaded microbenchmark on 10k events
// prices Parse and the batch signature check alone.
//
// -cpuprofile FILE writes a CPU profile of the ingest phase. Stdout is one
// JSON object; progress goes to stderr. Exit status 1 when a
// step fails or an answer is wrong.
package main

import (
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/vmtrust/vmtrust/internal/ledger"
	"github.com/vmtrust/vmtrust/internal/ledger/postgres"
	"github.com/vmtrust/vmtrust/internal/ledger/sqlite"
)

// Workload shape.
const (
	sessionEvents = 20      // events per VM session
	sessionLeases = 8       // leases per session
	hosts         = 16      // signing hosts
	ipSpace       = 1 << 20 // IPv4 addresses leased (10.0.0.0/12)
	million       = 1_000_000
)

type config struct {
	backend string
	path    string
	dsn     string
	events  int64
	tx      int
	samples int
	passes  int
	seed    uint64
	profile string
	// ingesters is the number of concurrent Log.Ingest calls.
	ingesters int
	// queriesOnly skips the ingest: the store holds a log an earlier run
	// with the same -events built (the workload is deterministic).
	queriesOnly bool
	// ingestOnly skips the queries (bench/ledger.sh times them in a
	// process of their own, as vmtrust who-had is, with -queries-only).
	ingestOnly bool
	// queryProfile is a CPU profile of the query phase.
	queryProfile string
	// settle checkpoints the database and syncs before the queries.
	settle bool
	// follow runs an indexer (Log.CatchUp in a loop) beside the ingests.
	follow bool
}

func main() {
	var c config
	flag.StringVar(&c.backend, "backend", "sqlite", "sqlite or postgres")
	flag.StringVar(&c.path, "path", "", "SQLite database file (sqlite)")
	flag.StringVar(&c.dsn, "dsn", "", "pgx connection string (postgres)")
	flag.Int64Var(&c.events, "events", 10*million, "events in the log")
	flag.IntVar(&c.tx, "tx", 0, "events per Ingest (default 10000)")
	flag.IntVar(&c.samples, "samples", 20000, "proofs and who-had queries timed")
	flag.IntVar(&c.passes, "passes", 1, "who-had passes over the same sampled leases (the first is who_had, the last who_had_last_pass)")
	flag.Uint64Var(&c.seed, "seed", 7, "random seed for the sampled indexes and leases")
	flag.StringVar(&c.profile, "cpuprofile", "", "write a CPU profile of the ingest phase to this file")
	flag.IntVar(&c.ingesters, "ingesters", 2, "concurrent Log.Ingest calls")
	flag.BoolVar(&c.queriesOnly, "queries-only", false, "time proofs and who-had on a log an earlier run built")
	flag.BoolVar(&c.ingestOnly, "ingest-only", false, "build the log and stop (no queries timed)")
	flag.StringVar(&c.queryProfile, "queryprofile", "", "write a CPU profile of the query phase to this file")
	flag.BoolVar(&c.settle, "settle", true, "before the queries, checkpoint the database and wait for the kernel's write-back (a ledger between ingests, not one whose bulk load is still being written)")
	flag.BoolVar(&c.follow, "follow", true, "run the query indexer beside the ingests (false: only after them)")
	flag.Parse()
	if c.tx == 0 {
		c.tx = 10000 // both backends: a sustained ingest batches what arrives
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(context.Background(), c, log); err != nil {
		fmt.Fprintln(os.Stderr, "ledgerbench:", err)
		os.Exit(1)
	}
}

func (c config) check() error {
	switch {
	case c.backend == "sqlite" && c.path == "":
		return errors.New("config: -backend sqlite needs -path")
	case c.backend == "postgres" && c.dsn == "":
		return errors.New("config: -backend postgres needs -dsn")
	case c.backend != "sqlite" && c.backend != "postgres":
		return fmt.Errorf("config: backend %q: want sqlite or postgres", c.backend)
	case c.tx < sessionEvents || c.tx%sessionEvents != 0 || c.tx > ledger.MaxIngest:
		return fmt.Errorf("config: -tx %d: want a multiple of %d up to %d", c.tx, sessionEvents, ledger.MaxIngest)
	case c.events < int64(c.tx) || c.events%int64(c.tx) != 0:
		return fmt.Errorf("config: -events %d: want a multiple of -tx %d", c.events, c.tx)
	case c.ingesters < 1 || c.ingesters > 64:
		return fmt.Errorf("config: -ingesters %d: want 1..64", c.ingesters)
	case c.queriesOnly && c.ingestOnly:
		return errors.New("config: -queries-only and -ingest-only exclude each other")
	case c.samples < 100:
		return fmt.Errorf("config: -samples %d: want at least 100", c.samples)
	}
	return nil
}

// Result is the JSON printed on stdout.
type Result struct {
	Backend    string       `json:"backend"`
	Events     int64        `json:"events"`
	Leases     int64        `json:"leases"`
	TxEvents   int          `json:"tx_events"`
	MeanBody   float64      `json:"mean_body_bytes"`
	Ingest     IngestResult `json:"ingest"`
	Index      IndexResult  `json:"index"`
	Micro      Micro        `json:"micro"`
	Prove      Latency      `json:"prove"`       // Prove + CheckRecord
	ProveEntry Latency      `json:"prove_entry"` // Entry + Prove + CheckRecord
	// ProveOneCall is Log.ProveEntry, as vmtrust ledger prove: the entry
	// and its tiles in one store call, the upper tree cached, checked.
	ProveOneCall Latency `json:"prove_one_call"`
	WhoHad       Latency `json:"who_had"`
	// WhoHadStore is the part of each who-had spent in Store.Holder (the
	// one statement); the rest is the proofs' checks and the cache.
	WhoHadStore Latency `json:"who_had_store"`
	// WhoHadLast is the last of -passes over the same leases (the page
	// cache and the Log's cache warm); WhoHad is the first.
	WhoHadLast Latency `json:"who_had_last_pass"`
	Size1M     int64   `json:"size_bytes_at_1m"`
	SizeEnd    int64   `json:"size_bytes_at_end"`
	PerMillion float64 `json:"size_mb_per_million"` // at the end
	// Settled: before the queries, the database's write-ahead log was
	// checkpointed and the kernel's dirty pages written (settle).
	Settled       bool    `json:"settled"`
	SettleSeconds float64 `json:"settle_seconds"`
}

// IngestResult times the ingest phase.
type IngestResult struct {
	Seconds       float64   `json:"seconds"`          // Log.Ingest calls only
	EventsPerSec  float64   `json:"events_per_sec"`   // over all events, Ingest only
	First1MPerSec float64   `json:"first_1m_per_sec"` // the first million
	Last1MPerSec  float64   `json:"last_1m_per_sec"`  // the last million
	PerMillion    []float64 `json:"per_million_per_sec"`
	WithSignPerSc float64   `json:"with_make_sign_per_sec"` // NewEvent + Sign + Ingest, one thread of work
	MakeSeconds   float64   `json:"make_seconds"`           // NewEvent
	SignSeconds   float64   `json:"sign_seconds"`           // ledger.Sign
	StoreSeconds  float64   `json:"store_seconds"`          // store calls inside Ingest, commit included
	CommitSeconds float64   `json:"commit_seconds"`         // of which commit
	AppendSeconds float64   `json:"append_seconds"`         // of which Tx.Append
	LogSeconds    float64   `json:"log_cpu_seconds"`        // Ingest minus store: verify, parse, tree, checkpoint
}

// IndexResult times the query indexes following the log.
type IndexResult struct {
	Follow        bool    `json:"follow"`           // an indexer ran beside the ingests
	LagAtEnd      int64   `json:"lag_at_end"`       // entries not indexed when the last Ingest returned
	DrainSeconds  float64 `json:"drain_seconds"`    // waiting, after each million, for the indexer's round to end
	CatchUpSecond float64 `json:"catch_up_seconds"` // the final CatchUp, after every ingest
	// LogAndIndexPerSec is every event over the ingest, drain and
	// catch-up time: the rate at which the log and its indexes both
	// keep up.
	LogAndIndexPerSec float64 `json:"log_and_index_per_sec"`
}

// Micro prices the Log's per-event checks alone (single thread).
type Micro struct {
	ParseMicros       float64 `json:"parse_us_per_event"`
	BatchCheckMicros  float64 `json:"batch_root_verify_us_per_event"` // BatchRoot + Ed25519 verify, per event of a batch
	RecordHashMicros  float64 `json:"record_hash_us_per_event"`
	SignMicrosPerEvnt float64 `json:"sign_us_per_event"`
}

// Latency is a sample's distribution, in microseconds.
type Latency struct {
	N    int     `json:"n"`
	P50  float64 `json:"p50_us"`
	P99  float64 `json:"p99_us"`
	Max  float64 `json:"max_us"`
	Mean float64 `json:"mean_us"`
}

func latency(d []time.Duration) Latency {
	slices.Sort(d)
	us := func(x time.Duration) float64 { return math.Round(float64(x)/1e2) / 10 }
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	q := func(p float64) time.Duration { return d[min(len(d)-1, int(math.Ceil(p*float64(len(d))))-1)] }
	return Latency{N: len(d), P50: us(q(0.50)), P99: us(q(0.99)), Max: us(d[len(d)-1]), Mean: us(sum / time.Duration(len(d)))}
}

func run(ctx context.Context, c config, log *slog.Logger) error {
	if err := c.check(); err != nil {
		return err
	}
	var st ledger.Store
	var err error
	if c.backend == "sqlite" {
		st, err = sqlite.Open(ctx, c.path, log)
	} else {
		st, err = postgres.Open(ctx, c.dsn, log)
	}
	if err != nil {
		return err
	}
	defer st.Close()
	timed := &timedStore{Store: st}
	// The log key is the seed's, so that -queries-only finds the
	// checkpoints an earlier run signed.
	lkey, _, err := note.GenerateKey(mrand.NewChaCha8(seedKey(c.seed)), "bench.vmtrust.example/ledger")
	if err != nil {
		return err
	}
	l, err := ledger.New(timed, lkey, ledger.Options{Log: log})
	if err != nil {
		return err
	}
	w, err := newWorkload()
	if err != nil {
		return err
	}
	for _, vkey := range w.vkeys {
		if c.queriesOnly {
			break
		}
		if err := l.Enroll(ctx, vkey); err != nil {
			return err
		}
	}
	res := Result{Backend: c.backend, Events: c.events, Leases: c.events / sessionEvents * sessionLeases, TxEvents: c.tx}
	if res.Micro, err = micro(w); err != nil {
		return err
	}
	stopProfile, err := startProfile(c.profile)
	if err != nil {
		return err
	}
	if !c.queriesOnly {
		err = ingest(ctx, c, l, timed, w, &res, log)
	}
	stopProfile()
	if err != nil {
		return err
	}
	cp, err := l.Checkpoint(ctx)
	if err != nil {
		return err
	}
	if cp.Size != c.events {
		return fmt.Errorf("latest checkpoint is of %d entries, want %d", cp.Size, c.events)
	}
	if c.ingestOnly {
		if res.SizeEnd, err = dbSize(ctx, c); err != nil {
			return err
		}
		res.PerMillion = float64(res.SizeEnd) / 1e6 / (float64(c.events) / million)
		return json.NewEncoder(os.Stdout).Encode(res)
	}
	// The ingest's garbage (a million signed events at a time) is not
	// the query phase's: collected and returned before it.
	debug.FreeOSMemory()
	if err := analyze(ctx, c); err != nil {
		return err
	}
	if c.settle {
		t0 := time.Now()
		if err := settle(ctx, c); err != nil {
			return err
		}
		res.SettleSeconds = time.Since(t0).Seconds()
		log.Info("settled", "seconds", res.SettleSeconds)
	}
	res.Settled = c.settle
	rng := mrand.New(mrand.NewPCG(c.seed, 1))
	stopQueryProfile, err := startProfile(c.queryProfile)
	if err != nil {
		return err
	}
	defer stopQueryProfile()
	log.Info("proofs", "samples", c.samples)
	if res.Prove, res.ProveEntry, res.ProveOneCall, err = proofs(ctx, l, cp, c.samples, rng); err != nil {
		return err
	}
	log.Info("who-had", "samples", c.samples)
	if res.WhoHad, res.WhoHadStore, res.WhoHadLast, err = whoHad(ctx, l, timed, w, res.Leases, c.samples, c.passes, rng, log); err != nil {
		return err
	}
	if res.SizeEnd, err = dbSize(ctx, c); err != nil {
		return err
	}
	res.PerMillion = float64(res.SizeEnd) / 1e6 / (float64(c.events) / million)
	return json.NewEncoder(os.Stdout).Encode(res)
}

// ingest builds the log and times it. The hosts' work (NewEvent, Sign)
// is done for up to a million events at a time, before they are
// ingested, so that it does not share the cores with the ledger's; the
// ingest itself is what a ledger server does with submissions arriving
// from many hosts: -ingesters concurrent Log.Ingest calls, so that one
// verifies and parses its events while another holds the store's
// transaction (Ingest serialises the transactions itself).
func ingest(ctx context.Context, c config, l *ledger.Log, timed *timedStore, w *workload, res *Result, log *slog.Logger) error {
	var made, signed, ingested, drained time.Duration
	var bodyBytes int64
	sessionsPerTx := int64(c.tx / sessionEvents)
	totalSessions := c.events / sessionEvents
	chunkSessions := min(totalSessions, million/sessionEvents)
	timed.reset()
	for chunk := int64(0); chunk < totalSessions; chunk += chunkSessions {
		var txs [][]ledger.SignedBatch
		for first := chunk; first < min(totalSessions, chunk+chunkSessions); first += sessionsPerTx {
			t0 := time.Now()
			perHost := make([][]ledger.Event, hosts)
			for s := first; s < first+sessionsPerTx; s++ {
				h := int(s % hosts)
				evs, err := w.session(s)
				if err != nil {
					return err
				}
				perHost[h] = append(perHost[h], evs...)
			}
			t1 := time.Now()
			var batches []ledger.SignedBatch
			for h, evs := range perHost {
				if len(evs) == 0 {
					continue
				}
				b, err := ledger.Sign(w.signers[h], evs...)
				if err != nil {
					return err
				}
				for _, body := range b.Events {
					bodyBytes += int64(len(body))
				}
				batches = append(batches, b)
			}
			made += t1.Sub(t0)
			signed += time.Since(t1)
			txs = append(txs, batches)
		}
		f := startFollower(ctx, c.follow, l)
		t0 := time.Now()
		if err := ingestAll(ctx, l, txs, c.ingesters); err != nil {
			f.stop()
			return err
		}
		d := time.Since(t0)
		ingested += d
		if chunk+chunkSessions >= totalSessions {
			n, err := l.Store().Indexed(ctx)
			if err != nil {
				f.stop()
				return err
			}
			res.Index.LagAtEnd = c.events - n
		}
		t1 := time.Now()
		if err := f.stop(); err != nil {
			return err
		}
		drained += time.Since(t1)
		done := min(totalSessions, chunk+chunkSessions) * sessionEvents
		rate := float64(done-chunk*sessionEvents) / d.Seconds()
		res.Ingest.PerMillion = append(res.Ingest.PerMillion, math.Round(rate))
		log.Info("ingested", "events", done, "events_per_sec", math.Round(rate))
		if done == million {
			size, err := dbSize(ctx, c)
			if err != nil {
				return err
			}
			res.Size1M = size
		}
	}
	t0 := time.Now()
	if _, err := l.CatchUp(ctx); err != nil {
		return err
	}
	caught := time.Since(t0)
	res.Index.Follow = c.follow
	res.Index.DrainSeconds, res.Index.CatchUpSecond = drained.Seconds(), caught.Seconds()
	res.Index.LogAndIndexPerSec = math.Round(float64(c.events) / (ingested + drained + caught).Seconds())
	in := &res.Ingest
	in.Seconds = ingested.Seconds()
	in.EventsPerSec = math.Round(float64(c.events) / in.Seconds)
	if n := len(in.PerMillion); n > 0 {
		in.First1MPerSec, in.Last1MPerSec = in.PerMillion[0], in.PerMillion[n-1]
	}
	in.WithSignPerSc = math.Round(float64(c.events) / (made + signed + ingested).Seconds())
	in.MakeSeconds, in.SignSeconds = made.Seconds(), signed.Seconds()
	in.StoreSeconds, in.CommitSeconds, in.AppendSeconds = timed.store.Seconds(), timed.commit.Seconds(), timed.append.Seconds()
	in.LogSeconds = in.Seconds - in.StoreSeconds
	res.MeanBody = math.Round(float64(bodyBytes)/float64(c.events)*10) / 10
	return nil
}

// seedKey is a ChaCha8 seed from seed.
func seedKey(seed uint64) (k [32]byte) {
	binary.LittleEndian.PutUint64(k[:], seed)
	return k
}

// follower runs Log.CatchUp in a loop until stopped; stop waits for the
// round under way to end (not cancelled: its work counts).
type follower struct {
	done    chan struct{}
	stopped chan error
}

func startFollower(ctx context.Context, on bool, l *ledger.Log) *follower {
	f := &follower{done: make(chan struct{}), stopped: make(chan error, 1)}
	if !on {
		f.stopped <- nil
		return f
	}
	go func() {
		for {
			select {
			case <-f.done:
				f.stopped <- nil
				return
			default:
			}
			n, err := l.CatchUp(ctx)
			if err != nil {
				f.stopped <- err
				return
			}
			if cp, err := l.Store().Latest(ctx); err == nil && cp.Size == n {
				time.Sleep(20 * time.Millisecond) // caught up: wait for ingests
			}
		}
	}()
	return f
}

func (f *follower) stop() error {
	close(f.done)
	return <-f.stopped
}

// ingestAll ingests txs with n concurrent Log.Ingest calls, in order of
// arrival (each tx holds whole sessions, so their order does not change
// what the indexes say).
func ingestAll(ctx context.Context, l *ledger.Log, txs [][]ledger.SignedBatch, n int) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan []ledger.SignedBatch)
	var wg sync.WaitGroup
	for range max(n, 1) {
		wg.Go(func() {
			for b := range next {
				if _, err := l.Ingest(ctx, b...); err != nil {
					cancel(err)
				}
			}
		})
	}
feed:
	for _, b := range txs {
		select {
		case next <- b:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return nil
}

// proofs times inclusion proofs of random entries.
func proofs(ctx context.Context, l *ledger.Log, cp ledger.Checkpoint, n int, rng *mrand.Rand) (Latency, Latency, Latency, error) {
	var pd, ed, od []time.Duration
	for range n {
		idx := rng.Int64N(cp.Size)
		t0 := time.Now()
		e, err := l.Entry(ctx, idx)
		if err != nil {
			return Latency{}, Latency{}, Latency{}, err
		}
		t1 := time.Now()
		p, err := l.Prove(ctx, idx, cp.Size)
		if err != nil {
			return Latency{}, Latency{}, Latency{}, err
		}
		if err := tlog.CheckRecord(p, cp.Size, cp.Root, idx, tlog.RecordHash(e.Body)); err != nil {
			return Latency{}, Latency{}, Latency{}, fmt.Errorf("entry %d: %w", idx, err)
		}
		t2 := time.Now()
		pd = append(pd, t2.Sub(t1))
		ed = append(ed, t2.Sub(t0))
	}
	// As vmtrust ledger prove makes it: the entry and its proof's tiles
	// in one store call, the upper tree from the Log's cache, checked.
	for range n {
		idx := rng.Int64N(cp.Size)
		t0 := time.Now()
		pr, err := l.ProveEntry(ctx, idx, cp.Size, cp.Root)
		if err != nil {
			return Latency{}, Latency{}, Latency{}, err
		}
		od = append(od, time.Since(t0))
		if pr.Entry.Index != idx || len(pr.Proof) == 0 {
			return Latency{}, Latency{}, Latency{}, fmt.Errorf("ProveEntry(%d) = entry %d, %d hashes", idx, pr.Entry.Index, len(pr.Proof))
		}
	}
	if _, err := l.ProveEntry(ctx, 0, cp.Size, tlog.Hash{}); !errors.Is(err, ledger.ErrNotInTree) {
		return Latency{}, Latency{}, Latency{}, fmt.Errorf("ProveEntry against a wrong root: %v, want ErrNotInTree", err)
	}
	// The check must fail on a wrong record: the timed check is real.
	p, err := l.Prove(ctx, 0, cp.Size)
	if err != nil {
		return Latency{}, Latency{}, Latency{}, err
	}
	if tlog.CheckRecord(p, cp.Size, cp.Root, 0, tlog.RecordHash([]byte("not an entry"))) == nil {
		return Latency{}, Latency{}, Latency{}, errors.New("tlog.CheckRecord accepted a wrong record")
	}
	return latency(pd), latency(ed), latency(od), nil
}

// whoHad times WhoHad for addresses of random leases at a time inside
// them, checking each answer.
func whoHad(ctx context.Context, l *ledger.Log, timed *timedStore, w *workload, leases int64, n, passes int, rng *mrand.Rand, log *slog.Logger) (first, store, last Latency, err error) {
	ks := make([]int64, n)
	for i := range ks {
		ks[i] = rng.Int64N(leases)
	}
	for p := range max(passes, 1) {
		d := make([]time.Duration, 0, n)
		ds := make([]time.Duration, 0, n)
		timed.proofDataCalls = 0
		for _, k := range ks {
			s, j := k/sessionLeases, int(k%sessionLeases)
			ip := leaseIP(k)
			from := eventTime(s, 2+2*j)
			at := from.Add(500 * time.Microsecond)
			t0 := time.Now()
			ans, err := l.WhoHad(ctx, ip, at)
			if err != nil {
				return first, store, last, fmt.Errorf("who-had %v at %v: %w", ip, at, err)
			}
			d = append(d, time.Since(t0))
			ds = append(ds, timed.holder)
			switch {
			case ans.Lease.VM != vmName(s) || !ans.Lease.From.Equal(from) || ans.Lease.Host != w.hostName(s):
				return first, store, last, fmt.Errorf("who-had %v at %v: lease %+v, want VM %s from %v", ip, at, ans.Lease, vmName(s), from)
			case ans.Run == nil || ans.Run.VM != vmName(s) || len(ans.Proofs) != 3:
				return first, store, last, fmt.Errorf("who-had %v at %v: run %v and %d proofs, want the run of %s and 3 proofs", ip, at, ans.Run, len(ans.Proofs), vmName(s))
			}
		}
		last = latency(d)
		log.Info("who-had pass", "pass", p+1, "p50_us", last.P50, "p99_us", last.P99, "store_p50_us", latency(ds).P50, "reads_beside_holder", timed.proofDataCalls)
		if p == 0 {
			first, store = last, latency(ds)
		}
	}
	// Between two leases of an address nobody had it.
	if _, err := l.WhoHad(ctx, leaseIP(0), eventTime(0, 3).Add(500*time.Microsecond)); !errors.Is(err, ledger.ErrNoLease) {
		return first, store, last, fmt.Errorf("who-had after a lease ended: %v, want ErrNoLease", err)
	}
	return first, store, last, nil
}

// analyze brings PostgreSQL's planner statistics up to date after the
// bulk ingest, as autovacuum would within a minute or so (SQLite: nothing
// to do; its planner does not use statistics unless asked).
func analyze(ctx context.Context, c config) error {
	if c.backend != "postgres" {
		return nil
	}
	return pgExec(ctx, c.dsn, `ANALYZE`)
}

// pgExec runs one statement on a connection of its own.
func pgExec(ctx context.Context, dsn, stmt string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("%s: %w", stmt, err)
	}
	return nil
}

// settle brings the database to where a ledger is between ingests: its
// write-ahead log checkpointed (SQLite: TRUNCATE; PostgreSQL: CHECKPOINT)
// and the kernel's dirty pages written (sync), so that the queries are not
// timed against the write-back of the bulk load that built the log.
func settle(ctx context.Context, c config) error {
	if c.backend == "postgres" {
		if err := pgExec(ctx, c.dsn, `CHECKPOINT`); err != nil {
			return err
		}
	} else if err := truncateWAL(ctx, c.path); err != nil {
		return err
	}
	syscall.Sync()
	return nil
}

// truncateWAL checkpoints the SQLite database at path into its file and
// empties its write-ahead log.
func truncateWAL(ctx context.Context, path string) error {
	db, err := sql.Open("sqlite", path)
	if err != nil {
		return err
	}
	defer db.Close()
	var busy, logPages, done int
	if err := db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logPages, &done); err != nil {
		return fmt.Errorf("wal checkpoint: %w", err)
	}
	return nil
}

// startProfile starts a CPU profile written to path ("": none) and
// returns what stops it.
func startProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// dbSize is the database's size on disk.
func dbSize(ctx context.Context, c config) (int64, error) {
	if c.backend == "postgres" {
		conn, err := pgx.Connect(ctx, c.dsn)
		if err != nil {
			return 0, err
		}
		defer conn.Close(context.WithoutCancel(ctx))
		var n int64
		if err := conn.QueryRow(ctx, `SELECT pg_database_size(current_database())`).Scan(&n); err != nil {
			return 0, fmt.Errorf("pg_database_size: %w", err)
		}
		return n, nil
	}
	if err := truncateWAL(ctx, c.path); err != nil {
		return 0, err
	}
	var total int64
	for _, p := range []string{c.path, c.path + "-wal"} {
		fi, err := os.Stat(p)
		if err == nil {
			total += fi.Size()
		} else if !errors.Is(err, os.ErrNotExist) {
			return 0, err
		}
	}
	return total, nil
}

// micro prices Parse, the batch check and signing on 10k events.
func micro(w *workload) (Micro, error) {
	var evs []ledger.Event
	for s := int64(0); len(evs) < 10000; s += hosts {
		e, err := w.session(s)
		if err != nil {
			return Micro{}, err
		}
		evs = append(evs, e...)
	}
	t0 := time.Now()
	b, err := ledger.Sign(w.signers[0], evs...)
	if err != nil {
		return Micro{}, err
	}
	sign := time.Since(t0)
	t0 = time.Now()
	for _, body := range b.Events {
		if _, err := ledger.Parse(body); err != nil {
			return Micro{}, err
		}
	}
	parse := time.Since(t0)
	t0 = time.Now()
	for _, body := range b.Events {
		tlog.RecordHash(body)
	}
	rh := time.Since(t0)
	v, err := note.NewVerifier(w.vkeys[0])
	if err != nil {
		return Micro{}, err
	}
	t0 = time.Now()
	root, err := ledger.BatchRoot(b.Events)
	if err != nil {
		return Micro{}, err
	}
	if !v.Verify(ledger.BatchMessage(b.Host, int64(len(b.Events)), root), b.Sig) {
		return Micro{}, errors.New("micro: the batch does not verify")
	}
	check := time.Since(t0)
	per := func(d time.Duration) float64 { return math.Round(float64(d)/float64(len(evs))/10) / 100 }
	return Micro{ParseMicros: per(parse), BatchCheckMicros: per(check), RecordHashMicros: per(rh), SignMicrosPerEvnt: per(sign)}, nil
}
