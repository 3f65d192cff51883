package main

import (
	"context"
	"crypto/rand"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/vmtrust/vmtrust/internal/ledger"
)

// workload makes the benchmark's events: session s is VM vmName(s) on
// host s%hosts, its events at eventTime(s, 0..19).
type workload struct {
	signers []note.Signer
	vkeys   []string
	images  []string
}

func newWorkload() (*workload, error) {
	w := &workload{}
	for h := range hosts {
		skey, vkey, err := note.GenerateKey(rand.Reader, fmt.Sprintf("hv-%02d.site.example", h))
		if err != nil {
			return nil, err
		}
		s, err := note.NewSigner(skey)
		if err != nil {
			return nil, err
		}
		w.signers = append(w.signers, s)
		w.vkeys = append(w.vkeys, vkey)
	}
	for i := range 64 {
		sum := sha512.Sum512([]byte(fmt.Sprintf("image %d", i)))
		w.images = append(w.images, hex.EncodeToString(sum[:]))
	}
	return w, nil
}

func (w *workload) hostName(s int64) string { return w.signers[s%hosts].Name() }

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// eventTime is the time of event p of session s: 1 ms apart, increasing.
func eventTime(s int64, p int) time.Time {
	return epoch.Add(time.Duration(s*sessionEvents+int64(p)) * time.Millisecond)
}

func vmName(s int64) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", uint32(s*2654435761), s) }

// leaseIP is the address of lease k (session k/8, its lease k%8): a
// permutation of 10.0.0.0/12, so an address comes back every 2^20 leases.
func leaseIP(k int64) netip.Addr {
	n := uint32(k*0x9E3779B1) & (ipSpace - 1)
	return netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)})
}

// session returns the 20 events of session s.
func (w *workload) session(s int64) ([]ledger.Event, error) {
	host, vm := w.hostName(s), vmName(s)
	mac := fmt.Sprintf("52:54:00:%02x:%02x:%02x", byte(s>>16), byte(s>>8), byte(s))
	out := make([]ledger.Event, 0, sessionEvents)
	add := func(t ledger.Type, p int, actor string, data any) error {
		e, err := ledger.NewEvent(t, host, vm, eventTime(s, p), data)
		if err != nil {
			return err
		}
		e.Actor = actor
		out = append(out, e)
		return nil
	}
	run := ledger.RunData{Name: fmt.Sprintf("job-%d", s), Owner: fmt.Sprintf("user%d@site.example", s%5000),
		Image: w.images[s%64], List: "site-images/2026.11", Endorser: fmt.Sprintf("endorser%d@site.example", s%8), Class: 2}
	if err := add(ledger.VMStarted, 0, "", run); err != nil {
		return nil, err
	}
	op := fmt.Sprintf("op%d@site.example", s%20)
	if err := add(ledger.OperatorAction, 1, op, map[string]string{"action": "console.open"}); err != nil {
		return nil, err
	}
	for j := range sessionLeases {
		d := ledger.LeaseData{MAC: mac, IP: leaseIP(s*sessionLeases + int64(j)).String()}
		if err := add(ledger.LeaseStart, 2+2*j, "", d); err != nil {
			return nil, err
		}
		if err := add(ledger.LeaseEndType, 3+2*j, "", d); err != nil {
			return nil, err
		}
	}
	if err := add(ledger.OperatorAction, 18, op, map[string]string{"action": "snapshot.take"}); err != nil {
		return nil, err
	}
	if err := add(ledger.VMStopped, 19, "", nil); err != nil {
		return nil, err
	}
	return out, nil
}

// timedStore times the store calls an ingest makes.
type timedStore struct {
	ledger.Store
	store, commit, append time.Duration
	holder                time.Duration // the last Holder call's
	proofData             time.Duration // ReadProofData calls, in all
	proofDataCalls        int
}

// ReadProofData times the proofs' reads beside Holder's answer.
func (t *timedStore) ReadProofData(ctx context.Context, ix []int64, keys []ledger.TileKey) ([]ledger.Entry, [][]byte, error) {
	t0 := time.Now()
	es, ts, err := t.Store.ReadProofData(ctx, ix, keys)
	t.proofData += time.Since(t0)
	t.proofDataCalls++
	return es, ts, err
}

// Holder times the who-had statement.
func (t *timedStore) Holder(ctx context.Context, ip netip.Addr, at time.Time) (ledger.Holding, error) {
	t0 := time.Now()
	h, err := t.Store.Holder(ctx, ip, at)
	t.holder = time.Since(t0)
	return h, err
}

func (t *timedStore) reset() { t.store, t.commit, t.append = 0, 0, 0 }

// Update times the transaction's calls and, as commit, the rest of the
// Update outside fn (begin, commit).
func (t *timedStore) Update(ctx context.Context, fn func(ledger.Tx) error) error {
	var inFn time.Duration
	t0 := time.Now()
	err := t.Store.Update(ctx, func(tx ledger.Tx) error {
		t1 := time.Now()
		err := fn(&timedTx{Tx: tx, t: t})
		inFn = time.Since(t1)
		return err
	})
	outside := time.Since(t0) - inFn
	t.store += outside
	t.commit += outside
	return err
}

type timedTx struct {
	ledger.Tx
	t *timedStore
}

func (x *timedTx) since(t0 time.Time) { x.t.store += time.Since(t0) }

func (x *timedTx) Size(ctx context.Context) (int64, error) {
	defer x.since(time.Now())
	return x.Tx.Size(ctx)
}

func (x *timedTx) ReadTiles(ctx context.Context, keys []ledger.TileKey) ([][]byte, error) {
	defer x.since(time.Now())
	return x.Tx.ReadTiles(ctx, keys)
}

func (x *timedTx) Host(ctx context.Context, name string) (ledger.Host, error) {
	defer x.since(time.Now())
	return x.Tx.Host(ctx, name)
}

func (x *timedTx) Latest(ctx context.Context) (ledger.Checkpoint, error) {
	defer x.since(time.Now())
	return x.Tx.Latest(ctx)
}

func (x *timedTx) Append(ctx context.Context, a ledger.Append) error {
	t0 := time.Now()
	defer func() { d := time.Since(t0); x.t.store += d; x.t.append += d }()
	return x.Tx.Append(ctx, a)
}

func (x *timedTx) PutCheckpoint(ctx context.Context, c ledger.Checkpoint) error {
	defer x.since(time.Now())
	return x.Tx.PutCheckpoint(ctx, c)
}
