// Package ledger is vmtrust's tamper-evident audit log: every fact that
// matters in an incident (list accepted, image cached, admission decided,
// VM started or stopped, lease begun or ended, containment, quarantine,
// operator action) is an Event, signed by the host that saw it and
// appended to an RFC 6962 Merkle tree (golang.org/x/mod/sumdb/tlog) whose
// tree heads are C2SP tlog-checkpoint signed notes (sumdb/note).
//
// # Guarantees
//
//   - Ingest accepts a batch only when its host is enrolled, the host's
//     Ed25519 note signature over the batch (BatchMessage: host, count and
//     the Merkle root of the batch's record hashes) verifies, every event
//     is in canonical form (Parse) and names the batch's host. Otherwise it
//     returns an error and writes nothing: a forged event never enters.
//   - One Ingest is one Store transaction: the entries, their tree's tiles
//     (TileHeight), the batches and the new signed checkpoint are
//     committed together or not at all, so after a crash the tree, its
//     entries and its latest checkpoint agree, and an acknowledged
//     (returned) Ingest is in the log.
//   - The query indexes (leases, runs, timelines) follow the log (CatchUp,
//     Follow): each index transaction covers the entries up to a
//     checkpoint and records how far it reached, so the indexes always
//     describe exactly the log of one signed checkpoint. WhoHad, Timeline
//     and Runs catch up before they answer, and answer at the checkpoint
//     the indexes reached.
//   - Verify recomputes everything from the entry bodies — leaf and
//     interior hashes, every checkpoint's root and signature, every
//     batch's root and host signature — and reports a changed, deleted,
//     inserted or reordered entry, or a changed tile, as a Problem. It
//     also derives the query index rows of the indexed entries again and
//     reports every lease, lease end, run, run end or timeline row that
//     is missing, extra or different. Ingest refuses to extend a stored
//     tree whose root is not the latest checkpoint's.
//   - Inclusion (Prove) and consistency (ProveTree) proofs come from the
//     stored tiles and are checked with tlog.CheckRecord / CheckTree
//     against a checkpoint the checker already trusts; a row changed in the
//     database makes them fail.
//   - WhoHad answers from the lease and run indexes and returns the entries
//     it used with their inclusion proofs, checked before it returns; an
//     answer that nobody held the address rests on the proven end of the
//     last lease before the time asked (or on there being none indexed).
package ledger

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// MaxBatch bounds the events of one batch, MaxIngest those of one Ingest.
const (
	MaxBatch  = 100_000
	MaxIngest = 1_000_000
)

// ErrForged is wrapped by Ingest's error for a batch that does not verify.
var ErrForged = errors.New("forged or unverifiable batch")

// SignedBatch is what a host submits: canonical event bodies and its
// note signature over BatchMessage.
type SignedBatch struct {
	Host   string
	Events [][]byte
	Sig    []byte
}

// BatchMessage is the text a host signs for a batch of count events whose
// record hashes have the Merkle root root.
func BatchMessage(host string, count int64, root tlog.Hash) []byte {
	return []byte("vmtrust-ledger batch/v1\n" + host + "\n" + strconv.FormatInt(count, 10) + "\n" +
		base64.StdEncoding.EncodeToString(root[:]) + "\n")
}

// BatchRoot is the Merkle root of the record hashes of bodies.
func BatchRoot(bodies [][]byte) (tlog.Hash, error) {
	if len(bodies) == 0 {
		return tlog.Hash{}, errors.New("empty batch")
	}
	var f frontier
	for _, b := range bodies {
		f.add(tlog.RecordHash(b))
	}
	return f.root(), nil
}

// Sign makes a batch of events signed by signer, whose name must be the
// events' host.
func Sign(signer note.Signer, events ...Event) (SignedBatch, error) {
	if len(events) == 0 || len(events) > MaxBatch {
		return SignedBatch{}, fmt.Errorf("batch of %d events: want 1..%d", len(events), MaxBatch)
	}
	b := SignedBatch{Host: signer.Name(), Events: make([][]byte, len(events))}
	for i, e := range events {
		if e.Host != b.Host {
			return SignedBatch{}, fmt.Errorf("event %d: host %q, but the signer is %q", i, e.Host, b.Host)
		}
		body, err := e.Marshal()
		if err != nil {
			return SignedBatch{}, fmt.Errorf("event %d: %w", i, err)
		}
		b.Events[i] = body
	}
	root, _ := BatchRoot(b.Events) // not empty
	sig, err := signer.Sign(BatchMessage(b.Host, int64(len(b.Events)), root))
	if err != nil {
		return SignedBatch{}, fmt.Errorf("sign batch: %w", err)
	}
	b.Sig = sig
	return b, nil
}

// Options configure a Log.
type Options struct {
	Now func() time.Time // the clock (time.Now when nil)
	Log *slog.Logger     // discarded when nil
	// IndexChunk bounds the entries of one index transaction (0:
	// DefaultIndexChunk).
	IndexChunk int64
}

// Log is a ledger on a Store, signing checkpoints with the log key.
type Log struct {
	st       Store
	signer   note.Signer
	verifier note.Verifier
	vkey     string
	now      func() time.Time
	log      *slog.Logger
	chunk    int64
	mu       sync.Mutex    // one Ingest at a time in this process
	ingested chan struct{} // poked after each Ingest, for Follow
	hashes   *hashCache    // upper stored hashes that checked proofs used

	signedMu sync.Mutex
	signed   *Checkpoint // the last checkpoint checkSigned passed
}

// New returns the Log on st whose checkpoints are signed with the note
// signer key skey; its name is the log's origin.
func New(st Store, skey string, opts Options) (*Log, error) {
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, fmt.Errorf("ledger: log key: %w", err)
	}
	vkey, err := VerifierKey(skey)
	if err != nil {
		return nil, err
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("ledger: log key: %w", err)
	}
	l := &Log{st: st, signer: signer, verifier: verifier, vkey: vkey, now: opts.Now, log: opts.Log, ingested: make(chan struct{}, 1), hashes: newHashCache()}
	if l.now == nil {
		l.now = time.Now
	}
	if l.chunk = opts.IndexChunk; l.chunk <= 0 {
		l.chunk = DefaultIndexChunk
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	return l, nil
}

// Origin is the log's name, the first line of its checkpoints.
func (l *Log) Origin() string { return l.signer.Name() }

// VerifierKey is the log's public note key (for export and witnesses).
func (l *Log) VerifierKey() string { return l.vkey }

// Store is the log's store.
func (l *Log) Store() Store { return l.st }

// Enroll adds a host's note verifier key. Enrolling the same key again is
// a no-op; another key for an enrolled name is an error.
func (l *Log) Enroll(ctx context.Context, vkey string) error {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return fmt.Errorf("ledger: host key: %w", err)
	}
	if !hostRE.MatchString(v.Name()) {
		return fmt.Errorf("ledger: host key name %q: want 1-128 of [A-Za-z0-9._/-]", v.Name())
	}
	return l.st.Update(ctx, func(tx Tx) error {
		return tx.PutHost(ctx, Host{Name: v.Name(), Key: vkey, Added: l.now().UTC()})
	})
}

// Ingest verifies the batches and appends them, with a new signed
// checkpoint, in one transaction. It returns the checkpoint.
func (l *Log) Ingest(ctx context.Context, batches ...SignedBatch) (Checkpoint, error) {
	total := 0
	for _, b := range batches {
		total += len(b.Events)
	}
	if total == 0 || total > MaxIngest {
		return Checkpoint{}, fmt.Errorf("ledger: ingest of %d events: want 1..%d", total, MaxIngest)
	}
	// Signatures and events are checked before the transaction, the
	// events in parallel (parsing is the CPU cost of an ingest).
	checked, err := l.check(ctx, batches, total)
	if err != nil {
		return Checkpoint{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var cp Checkpoint
	err = l.st.Update(ctx, func(tx Tx) error {
		var err error
		cp, err = l.ingest(ctx, tx, batches, checked)
		return err
	})
	if err != nil {
		return Checkpoint{}, err
	}
	l.poke()
	return cp, nil
}

// checkedEvent is an event of an ingest that passed the checks.
type checkedEvent struct {
	leaf tlog.Hash
}

// check verifies every batch's host and signature and parses every event
// (canonical, of the batch's host); it returns the events in order.
func (l *Log) check(ctx context.Context, batches []SignedBatch, total int) ([]checkedEvent, error) {
	out := make([]checkedEvent, total)
	keys := map[string]note.Verifier{}
	k := 0
	for bi, b := range batches {
		if len(b.Events) == 0 || len(b.Events) > MaxBatch {
			return nil, fmt.Errorf("ledger: batch %d of %d events: want 1..%d", bi, len(b.Events), MaxBatch)
		}
		v, ok := keys[b.Host]
		if !ok {
			h, err := l.st.Host(ctx, b.Host)
			if errors.Is(err, ErrNotFound) {
				return nil, fmt.Errorf("ledger: batch %d: host %q is not enrolled: %w", bi, b.Host, ErrForged)
			} else if err != nil {
				return nil, err
			}
			if v, err = note.NewVerifier(h.Key); err != nil {
				return nil, fmt.Errorf("ledger: host %q: stored key: %w", b.Host, err)
			}
			keys[b.Host] = v
		}
		var f frontier
		for i, body := range b.Events {
			out[k+i].leaf = tlog.RecordHash(body)
			f.add(out[k+i].leaf)
		}
		if !v.Verify(BatchMessage(b.Host, int64(len(b.Events)), f.root()), b.Sig) {
			return nil, fmt.Errorf("ledger: batch %d from %s: the signature does not verify: %w", bi, b.Host, ErrForged)
		}
		k += len(b.Events)
	}
	// Parse in parallel (parsing is the CPU cost of an ingest).
	bodies := make([][]byte, 0, total)
	for _, b := range batches {
		bodies = append(bodies, b.Events...)
	}
	events, bad, err := parseAll(bodies)
	k = 0
	for bi, b := range batches {
		for i := range b.Events {
			switch {
			case err != nil && k == bad:
			case err == nil && events[k].Host != b.Host:
				err = fmt.Errorf("host %q in a batch signed by %q", events[k].Host, b.Host)
			default:
				k++
				continue
			}
			return nil, fmt.Errorf("ledger: batch %d event %d: %w: %w", bi, i, err, ErrForged)
		}
	}
	return out, nil
}

func (l *Log) ingest(ctx context.Context, tx Tx, batches []SignedBatch, checked []checkedEvent) (Checkpoint, error) {
	n, err := tx.Size(ctx)
	if err != nil {
		return Checkpoint{}, err
	}
	var latestRoot tlog.Hash
	if latest, err := tx.Latest(ctx); err == nil {
		// The root the new tree extends is the one the log signed, not
		// the row's copy of it (rewritable together with the tiles).
		if err := l.checkSigned(latest); err != nil {
			return Checkpoint{}, err
		}
		latestRoot = latest.Root
		if latest.Size != n {
			return Checkpoint{}, fmt.Errorf("ledger: the store holds %d entries but its latest checkpoint %d: run ledger verify", n, latest.Size)
		}
	} else if !errors.Is(err, ErrNotFound) {
		return Checkpoint{}, err
	}
	// The tree so far, from the stored tiles, must be the latest
	// checkpoint's: an ingest never builds on a changed tree.
	hr := Hashes(ctx, tx)
	f, err := loadFrontier(n, hr)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("ledger: tree: %w", err)
	}
	if n > 0 && f.root() != latestRoot {
		return Checkpoint{}, fmt.Errorf("ledger: the stored tree of %d entries differs from its latest checkpoint: run ledger verify", n)
	}
	tb, err := newTileBuilder(n, hr)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("ledger: tree: %w", err)
	}
	var a Append
	addTile := func(t TileData) error { a.Tiles = append(a.Tiles, t); return nil }
	k := 0
	for _, b := range batches {
		id := n // a batch is named by its first entry
		var bf frontier
		for i, body := range b.Events {
			c := checked[k+i]
			bf.add(c.leaf)
			tb.add(f.add(c.leaf), addTile)
			a.Entries = append(a.Entries, Entry{Index: n, Batch: id, Body: body})
			n++
		}
		a.Batches = append(a.Batches, Batch{ID: id, Host: b.Host, First: id, Count: int64(len(b.Events)), Root: bf.root(), Sig: b.Sig})
		k += len(b.Events)
	}
	a.Tiles = append(a.Tiles, tb.partial()...)
	root := f.root()
	if err := tx.Append(ctx, a); err != nil {
		return Checkpoint{}, err
	}
	cp, err := l.sign(n, root)
	if err != nil {
		return Checkpoint{}, err
	}
	if err := tx.PutCheckpoint(ctx, cp); err != nil {
		return Checkpoint{}, err
	}
	return cp, nil
}

// CheckpointText is the C2SP tlog-checkpoint body for a tree.
func CheckpointText(origin string, size int64, root tlog.Hash) string {
	return origin + "\n" + strconv.FormatInt(size, 10) + "\n" + base64.StdEncoding.EncodeToString(root[:]) + "\n"
}

func (l *Log) sign(n int64, root tlog.Hash) (Checkpoint, error) {
	msg, err := note.Sign(&note.Note{Text: CheckpointText(l.Origin(), n, root)}, l.signer)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("ledger: sign checkpoint: %w", err)
	}
	return Checkpoint{Size: n, Root: root, Note: msg, Time: l.now().UTC()}, nil
}

// ParseCheckpoint opens a signed checkpoint note with the log's key (and
// any other verifiers, such as witnesses') and returns its size and root.
func ParseCheckpoint(msg []byte, origin string, verifiers note.Verifiers) (int64, tlog.Hash, *note.Note, error) {
	n, err := note.Open(msg, verifiers)
	if err != nil {
		return 0, tlog.Hash{}, nil, fmt.Errorf("checkpoint: %w", err)
	}
	lines := strings.SplitN(n.Text, "\n", 4)
	if len(lines) < 4 || lines[0] != origin {
		return 0, tlog.Hash{}, nil, fmt.Errorf("checkpoint: not a checkpoint of %q", origin)
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return 0, tlog.Hash{}, nil, fmt.Errorf("checkpoint: size %q", lines[1])
	}
	raw, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(raw) != tlog.HashSize {
		return 0, tlog.Hash{}, nil, fmt.Errorf("checkpoint: root hash %q", lines[2])
	}
	var h tlog.Hash
	copy(h[:], raw)
	return size, h, n, nil
}

// Checkpoint returns the latest checkpoint.
// Its note is checked to be signed with the log's key and to say its size
// and root.
func (l *Log) Checkpoint(ctx context.Context) (Checkpoint, error) {
	cp, err := l.st.Latest(ctx)
	if err != nil {
		return Checkpoint{}, err
	}
	if err := l.checkSigned(cp); err != nil {
		return Checkpoint{}, err
	}
	return cp, nil
}

// ErrIndexChanged is wrapped by who-had's and Timeline's error when an
// index row names an entry that does not say what the row says.
var ErrIndexChanged = errors.New("the index was changed; run ledger verify")

// ErrUnsigned is wrapped by the error for a stored checkpoint whose note
// is not the log's signature of its size and root: the database was
// changed (ledger verify says how).
var ErrUnsigned = errors.New("the checkpoint is not signed by the log")

// checkSigned checks that c's note is the log's signature of c's size and
// root: what proofs are checked against must be what the log signed. The
// last checkpoint that passed is remembered (its size, root and note
// bytes), so that queries against an unchanged log verify no signature.
func (l *Log) checkSigned(c Checkpoint) error {
	l.signedMu.Lock()
	last := l.signed
	l.signedMu.Unlock()
	if last != nil && last.Size == c.Size && last.Root == c.Root && bytes.Equal(last.Note, c.Note) {
		return nil
	}
	size, root, _, err := ParseCheckpoint(c.Note, l.Origin(), note.VerifierList(l.verifier))
	if err != nil {
		return fmt.Errorf("ledger: checkpoint %d: %v: %w", c.Size, err, ErrUnsigned)
	}
	if size != c.Size || root != c.Root {
		return fmt.Errorf("ledger: checkpoint %d: its note says %d entries, root %x: %w", c.Size, size, root[:4], ErrUnsigned)
	}
	ok := Checkpoint{Size: c.Size, Root: c.Root, Note: bytes.Clone(c.Note)}
	l.signedMu.Lock()
	l.signed = &ok
	l.signedMu.Unlock()
	return nil
}

// Prove returns the inclusion proof of entry index in the tree of size.
func (l *Log) Prove(ctx context.Context, index, size int64) (tlog.RecordProof, error) {
	if index < 0 || index >= size {
		return nil, fmt.Errorf("ledger: entry %d is not in a tree of %d", index, size)
	}
	return tlog.ProveRecord(size, index, l.reader(ctx))
}

// ProveTree returns the consistency proof from the tree of size old to
// the tree of size size.
func (l *Log) ProveTree(ctx context.Context, old, size int64) (tlog.TreeProof, error) {
	if old < 1 || old > size {
		return nil, fmt.Errorf("ledger: no consistency proof from %d to %d", old, size)
	}
	return tlog.ProveTree(size, old, l.reader(ctx))
}

// Entry returns one entry.
func (l *Log) Entry(ctx context.Context, index int64) (Entry, error) {
	es, err := l.st.ReadEntries(ctx, []int64{index})
	if err != nil {
		return Entry{}, fmt.Errorf("ledger: %w", err)
	}
	if es[0].Index != index {
		return Entry{}, fmt.Errorf("ledger: entry %d: the store returned entry %d", index, es[0].Index)
	}
	return es[0], nil
}

func (l *Log) reader(ctx context.Context) tlog.HashReader { return Hashes(ctx, l.st) }

// frontier computes a Merkle tree incrementally: the hash of the latest
// complete subtree that is a left child, per level. Its stored hashes are
// tlog's (add returns them in tlog's order).
type frontier struct {
	n     int64
	nodes [64]tlog.Hash
}

func (f *frontier) add(leaf tlog.Hash) []tlog.Hash {
	out := []tlog.Hash{leaf}
	h := leaf
	level := 0
	for ; f.n>>level&1 == 1; level++ {
		h = tlog.NodeHash(f.nodes[level], h)
		out = append(out, h)
	}
	f.nodes[level] = h
	f.n++
	return out
}

// loadFrontier returns the frontier of the tree of n entries whose
// stored hashes r reads.
func loadFrontier(n int64, r tlog.HashReader) (frontier, error) {
	f := frontier{n: n}
	var ix []int64
	var levels []int
	for level := 0; level < 63; level++ {
		if n>>level&1 == 1 {
			ix = append(ix, tlog.StoredHashIndex(level, n>>level-1))
			levels = append(levels, level)
		}
	}
	if len(ix) == 0 {
		return f, nil
	}
	hs, err := r.ReadHashes(ix)
	if err != nil {
		return frontier{}, err
	}
	for i, h := range hs {
		f.nodes[levels[i]] = h
	}
	return f, nil
}

func (f *frontier) root() tlog.Hash {
	var h tlog.Hash
	first := true
	for level := 0; level < 64; level++ {
		if f.n>>level&1 == 0 {
			continue
		}
		if first {
			h = f.nodes[level]
			first = false
		} else {
			h = tlog.NodeHash(f.nodes[level], h)
		}
	}
	return h
}

// Problem is one finding of Verify.
type Problem struct {
	Index int64  `json:"index"` // the entry, batch or checkpoint size concerned (-1: the log)
	What  string `json:"what"`
}

// Report is Verify's result.
type Report struct {
	Size        int64     `json:"size"`
	Checkpoints int       `json:"checkpoints"`
	Batches     int       `json:"batches"`
	Root        tlog.Hash `json:"root"`
	Problems    []Problem `json:"problems,omitempty"`
}

// OK says whether Verify found nothing wrong.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

const maxProblems = 100

func (r *Report) add(index int64, format string, args ...any) {
	if len(r.Problems) < maxProblems {
		r.Problems = append(r.Problems, Problem{Index: index, What: fmt.Sprintf(format, args...)})
	}
}

// Verify recomputes the whole log from its entries: the tree (compared
// with every stored hash and every checkpoint), the checkpoints'
// signatures, the batches' roots and host signatures, and the events'
// canonical form. An error means Verify could not read the store; what it
// finds wrong is in the report.
func (l *Log) Verify(ctx context.Context) (*Report, error) {
	rep := &Report{}
	// The log as of one moment: ingests running meanwhile add entries
	// and checkpoints beyond it, which the next Verify checks.
	latest, size, err := l.snapshot(ctx)
	switch {
	case errors.Is(err, ErrNotFound):
		if size != 0 {
			rep.add(-1, "%d entries but no checkpoint", size)
		}
	case err != nil:
		return nil, err
	default:
		if latest.Size != size {
			rep.add(-1, "the latest checkpoint is of %d entries but the store holds %d (entries deleted or inserted)", latest.Size, size)
		}
	}
	bound := max(size, latest.Size)
	// Batches, by first entry.
	type bstate struct {
		b      Batch
		f      frontier
		seen   int64
		verify note.Verifier
	}
	batches := map[int64]*bstate{}
	hostKeys := map[string]note.Verifier{}
	if err := l.st.Batches(ctx, func(b Batch) error {
		if b.First >= bound {
			return nil // ingested after the snapshot
		}
		rep.Batches++
		st := &bstate{b: b}
		v, ok := hostKeys[b.Host]
		if !ok {
			h, err := l.st.Host(ctx, b.Host)
			if err == nil {
				v, err = note.NewVerifier(h.Key)
			}
			if err != nil {
				rep.add(b.ID, "batch %d: host %q: %v", b.ID, b.Host, err)
			}
			hostKeys[b.Host] = v
		}
		st.verify = v
		batches[b.ID] = st
		return nil
	}); err != nil {
		return nil, err
	}
	var f frontier
	var want int64
	// The tiles recomputed from the entries are compared with the stored
	// ones, 256 at a time as they complete, the right edge's at the end.
	tb := &tileBuilder{}
	var pending []TileData
	flushTiles := func() error {
		if len(pending) == 0 {
			return nil
		}
		keys := make([]TileKey, len(pending))
		for i, t := range pending {
			keys[i] = t.Key
		}
		got, err := l.st.ReadTiles(ctx, keys)
		if err != nil {
			return err
		}
		// A right-edge tile that ingests after the snapshot widened must
		// still begin with the snapshot's: growth is known from the size
		// read after the tile was (the log only grows).
		grown := func() (bool, error) {
			now, err := l.st.Size(ctx)
			return now > bound, err
		}
		for i, t := range pending {
			switch {
			case got[i] == nil:
				rep.add(-1, "%v is missing", t.Key)
			case bytes.Equal(got[i], t.Data):
			case len(t.Data) < tileWidth*tlog.HashSize && len(got[i]) > len(t.Data) && bytes.HasPrefix(got[i], t.Data):
				g, err := grown()
				if err != nil {
					return err
				}
				if !g {
					rep.add(-1, "%v holds hashes beyond the %d entries in the store", t.Key, bound)
				}
			default:
				rep.add(-1, "%v differs from the one recomputed from the entries", t.Key)
			}
		}
		pending = pending[:0]
		return nil
	}
	addTile := func(t TileData) error {
		pending = append(pending, t)
		if len(pending) >= 256 {
			return flushTiles()
		}
		return nil
	}
	err = l.st.Entries(ctx, 0, bound, func(e Entry) error {
		if e.Index != want {
			rep.add(want, "entry %d is missing (next is %d): deleted or reordered", want, e.Index)
			want = e.Index
		}
		if _, err := Parse(e.Body); err != nil {
			rep.add(e.Index, "entry %d: %v", e.Index, err)
		}
		rh := tlog.RecordHash(e.Body)
		if err := tb.add(f.add(rh), addTile); err != nil {
			return err
		}
		if b := batches[e.Batch]; b == nil {
			rep.add(e.Index, "entry %d names batch %d, which does not exist", e.Index, e.Batch)
		} else {
			if e.Index != b.b.First+b.seen {
				rep.add(e.Index, "entry %d is out of place in batch %d (entries %d..%d)", e.Index, b.b.ID, b.b.First, b.b.First+b.b.Count-1)
			}
			b.f.add(rh)
			b.seen++
			if b.seen == b.b.Count {
				if b.f.root() != b.b.Root {
					rep.add(b.b.ID, "batch %d (entries %d..%d): its entries' root differs from the one its host signed", b.b.ID, b.b.First, b.b.First+b.b.Count-1)
				} else if b.verify != nil && !b.verify.Verify(BatchMessage(b.b.Host, b.b.Count, b.b.Root), b.b.Sig) {
					rep.add(b.b.ID, "batch %d: the signature of host %s does not verify", b.b.ID, b.b.Host)
				}
			}
		}
		want++
		return nil
	})
	if err != nil {
		return nil, err
	}
	if want < bound {
		rep.add(want, "entries %d..%d are missing: deleted", want, bound-1)
	}
	pending = append(pending, tb.partial()...)
	if err := flushTiles(); err != nil {
		return nil, err
	}
	for _, b := range batches {
		if b.seen != b.b.Count {
			rep.add(b.b.ID, "batch %d: %d of its %d entries are in the log", b.b.ID, b.seen, b.b.Count)
		}
	}
	rep.Size = f.n
	rep.Root = f.root()
	// The checkpoints: signature, text and root at their size. Roots of
	// earlier sizes are recomputed from the stored tiles once those were
	// checked above.
	if err := l.verifyCheckpoints(ctx, rep, latest, bound); err != nil {
		return nil, err
	}
	if err := l.verifyIndex(ctx, rep, bound); err != nil {
		return nil, err
	}
	return rep, nil
}

// snapshot reads the latest checkpoint and the number of entries with no
// ingest committed between them (retried while ingests run).
func (l *Log) snapshot(ctx context.Context) (Checkpoint, int64, error) {
	for try := 0; ; try++ {
		a, errA := l.st.Latest(ctx)
		n, err := l.st.Size(ctx)
		if err != nil {
			return Checkpoint{}, 0, err
		}
		b, errB := l.st.Latest(ctx)
		if errA != nil && !errors.Is(errA, ErrNotFound) {
			return Checkpoint{}, 0, errA
		}
		if errB != nil && !errors.Is(errB, ErrNotFound) {
			return Checkpoint{}, 0, errB
		}
		if (errA == nil) == (errB == nil) && a.Size == b.Size || try == 20 {
			return b, n, errB
		}
	}
}

func (l *Log) verifyCheckpoints(ctx context.Context, rep *Report, latest Checkpoint, bound int64) error {
	if rep.Size == 0 && latest.Size == 0 {
		return nil
	}
	sizes, err := l.checkpointSizes(ctx, latest.Size)
	if err != nil {
		return err
	}
	r := l.reader(ctx)
	for _, s := range sizes {
		c, err := l.st.Checkpoint(ctx, s)
		if err != nil {
			rep.add(s, "checkpoint %d: %v", s, err)
			continue
		}
		rep.Checkpoints++
		size, root, _, err := ParseCheckpoint(c.Note, l.Origin(), note.VerifierList(l.verifier))
		switch {
		case err != nil:
			rep.add(s, "checkpoint %d: %v", s, err)
			continue
		case size != c.Size || root != c.Root:
			rep.add(s, "checkpoint %d: the signed note says %d entries, root %x; the row %d, %x", s, size, root[:4], c.Size, c.Root[:4])
			continue
		}
		if s > rep.Size {
			if s > bound {
				continue // ingested after the snapshot
			}
			rep.add(s, "checkpoint %d: beyond the %d entries in the store", s, rep.Size)
			continue
		}
		th, err := tlog.TreeHash(s, r)
		if err != nil {
			rep.add(s, "checkpoint %d: %v", s, err)
			continue
		}
		if th != root {
			rep.add(s, "checkpoint %d: its root differs from the tree's", s)
		}
	}
	return nil
}

// checkpointSizes lists the sizes of the stored checkpoints, by walking
// down from the latest (stores keep one per ingest).
func (l *Log) checkpointSizes(ctx context.Context, latest int64) ([]int64, error) {
	lister, ok := l.st.(interface {
		CheckpointSizes(ctx context.Context) ([]int64, error)
	})
	if ok {
		return lister.CheckpointSizes(ctx)
	}
	return []int64{latest}, nil
}

// Proven is an entry with its inclusion proof in the tree of a checkpoint.
type Proven struct {
	Entry Entry
	Event Event
	Proof tlog.RecordProof
}

// proveAll returns the entries with the given indexes, each parsed and
// proven in the tree of cp (checked). What it needs and have lacks (the
// entries and tiles a Store returned with its answer; may be nil) and the
// hash cache does not hold is read in one store call.
func (l *Log) proveAll(ctx context.Context, indexes []int64, cp Checkpoint, have *ProofData) ([]Proven, error) {
	out, cached, err := l.prove(ctx, indexes, cp, have, true)
	if errors.Is(err, ErrNotInTree) && len(cached) > 0 {
		// A wrong cached hash shows only as a proof that does not check.
		l.hashes.drop(cached)
		var err2 error
		if out, _, err2 = l.prove(ctx, indexes, cp, have, false); err2 != nil {
			return nil, errors.Join(err, fmt.Errorf("without the cache: %w", err2))
		}
		return out, nil
	}
	return out, err
}

// ErrNotInTree is wrapped by the error for an entry whose inclusion
// proof does not check against the checkpoint's root: the store's entry
// or tree is not the one the checkpoint signed.
var ErrNotInTree = errors.New("not in the tree")

// ProveEntry returns entry index with its inclusion proof in the tree of
// size whose root is root (from a checkpoint the caller checked), parsed
// and checked: the entry and the tiles the Log's cache lacks are read in
// one store call. A proof that does not check is an error wrapping
// ErrNotInTree.
func (l *Log) ProveEntry(ctx context.Context, index, size int64, root tlog.Hash) (Proven, error) {
	ps, err := l.proveAll(ctx, []int64{index}, Checkpoint{Size: size, Root: root}, nil)
	if err != nil {
		return Proven{}, err
	}
	return ps[0], nil
}

// errTileMissing is what prove's hash reader returns for a hash whose
// tile is not at hand (or too narrow).
var errTileMissing = errors.New("tile not at hand")

// prove is proveAll, with the hash cache or not; it returns the storage
// indexes of the hashes it took from the cache.
//
// The proofs are made from what is at hand (have, the cache); when
// entries or tiles are missing, they are read in one store call and the
// proofs that lacked them are made again.
func (l *Log) prove(ctx context.Context, indexes []int64, cp Checkpoint, have *ProofData, useCache bool) ([]Proven, []int64, error) {
	if len(indexes) == 0 {
		return nil, nil, nil
	}
	for _, i := range indexes {
		if i < 0 || i >= cp.Size {
			return nil, nil, fmt.Errorf("ledger: entry %d is beyond checkpoint %d", i, cp.Size)
		}
	}
	entries := make(map[int64]Entry, len(indexes))
	tiles := map[TileKey][]byte{}
	if have != nil {
		for _, e := range have.Entries {
			entries[e.Index] = e
		}
		for _, t := range have.Tiles {
			tiles[t.Key] = t.Data
		}
	}
	// read is the proofs' hash reader over what is at hand. It records
	// the hashes it returned (read), those of them from the cache
	// (cached), and the tiles it lacked (missing).
	read := make(map[int64]tlog.Hash, 32*len(indexes)) // a proof in a tree of 10M reads about 25
	var cached []int64
	var missing, upper []TileKey // in the order first met
	inMissing, inUpper := map[TileKey]bool{}, map[TileKey]bool{}
	reader := tlog.HashReaderFunc(func(ix []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(ix))
		var lack bool
		for k, x := range ix {
			if h, ok := read[x]; ok {
				out[k] = h
				continue
			}
			if useCache {
				if h, ok := l.hashes.get(x); ok {
					out[k], read[x] = h, h
					cached = append(cached, x)
					continue
				}
			}
			t := tlog.TileForIndex(TileHeight, x)
			key := TileKey{t.L, t.N}
			d := tiles[key]
			if len(d) < t.W*tlog.HashSize {
				if !inMissing[key] {
					inMissing[key] = true
					missing = append(missing, key)
				}
				lack = true
				continue
			}
			if err := checkTileData(key, d); err != nil {
				return nil, err
			}
			h, err := tlog.HashFromTile(t, d, x)
			if err != nil {
				return nil, fmt.Errorf("ledger: %v: %w", key, err)
			}
			out[k], read[x] = h, h
			if key.L >= cachedLevel && !inUpper[key] {
				inUpper[key] = true
				upper = append(upper, key)
			}
		}
		if lack {
			return nil, errTileMissing
		}
		return out, nil
	})
	proofs := make([]tlog.RecordProof, len(indexes))
	// Two rounds: what is at hand, then (if anything was missing) again
	// after one store call for the rest.
	for round := 0; ; round++ {
		missing = missing[:0]
		clear(inMissing)
		var again bool
		for k, i := range indexes {
			if proofs[k] != nil {
				continue
			}
			p, err := tlog.ProveRecord(cp.Size, i, reader)
			switch {
			case errors.Is(err, errTileMissing) && round == 0:
				again = true
				continue
			case errors.Is(err, errTileMissing):
				return nil, cached, fmt.Errorf("ledger: entry %d: %v: %w", i, missing, ErrNotFound)
			case err != nil:
				return nil, cached, fmt.Errorf("ledger: entry %d: %w", i, err)
			}
			proofs[k] = p
		}
		var missE []int64
		inMissE := make(map[int64]bool)
		for _, i := range indexes {
			if _, ok := entries[i]; !ok && !inMissE[i] {
				inMissE[i] = true
				missE = append(missE, i)
			}
		}
		if round > 0 || !again && len(missE) == 0 {
			break
		}
		es, ts, err := l.st.ReadProofData(ctx, missE, missing)
		if err != nil {
			return nil, cached, fmt.Errorf("ledger: %w", err)
		}
		if len(es) != len(missE) || len(ts) != len(missing) {
			return nil, cached, fmt.Errorf("ledger: store returned %d entries and %d tiles for %d and %d", len(es), len(ts), len(missE), len(missing))
		}
		for _, e := range es {
			entries[e.Index] = e
		}
		for j, key := range missing {
			if len(ts[j]) > len(tiles[key]) {
				tiles[key] = ts[j]
			}
		}
	}
	out := make([]Proven, len(indexes))
	for k, i := range indexes {
		e, ok := entries[i]
		if !ok || e.Index != i {
			return nil, cached, fmt.Errorf("ledger: entry %d: the store did not return it", i)
		}
		if err := tlog.CheckRecord(proofs[k], cp.Size, cp.Root, i, tlog.RecordHash(e.Body)); err != nil {
			return nil, cached, fmt.Errorf("ledger: entry %d is %w of checkpoint %d: %w", i, ErrNotInTree, cp.Size, err)
		}
		ev, err := Parse(e.Body)
		if err != nil {
			return nil, cached, fmt.Errorf("ledger: entry %d: %w", i, err)
		}
		out[k] = Proven{Entry: e, Event: ev, Proof: proofs[k]}
	}
	// The hashes read took part in checked proofs: the upper and
	// right-edge ones are worth keeping. So are the other hashes the
	// upper tiles read hold, at every level (the next proofs' siblings),
	// though no proof checked those: a wrong one makes a later proof fail,
	// which is then made again without the cache (and the hashes it took
	// from the cache dropped).
	for _, key := range upper {
		d := tiles[key]
		t := tlog.Tile{H: TileHeight, L: key.L, N: key.N, W: len(d) / tlog.HashSize}
		first := key.N << TileHeight
		for h := range TileHeight {
			for n := first >> h; n < (first+int64(t.W))>>h; n++ {
				x := tlog.StoredHashIndex(key.L*TileHeight+h, n)
				if _, ok := read[x]; ok {
					continue
				}
				if hx, err := tlog.HashFromTile(t, d, x); err == nil {
					read[x] = hx
				}
			}
		}
	}
	l.hashes.put(read, cp.Size)
	return out, cached, nil
}

// Answer is who had an address at a time.
type Answer struct {
	IP         netip.Addr
	At         time.Time
	Lease      Lease
	Run        *Run // nil when no run of the VM on that host covers At
	Checkpoint Checkpoint
	Proofs     []Proven // the lease's start (and end) and the run's start events
}

// ErrNoLease is returned by WhoHad when no lease covered the address.
var ErrNoLease = errors.New("no lease of that address at that time")

// WhoHad returns the lease of ip that held at at, the VM's run, and the
// events that say so with their inclusion proofs in the latest checkpoint.
// Each proven event is checked to say what the answer says.
func (l *Log) WhoHad(ctx context.Context, ip netip.Addr, at time.Time) (*Answer, error) {
	ip = ip.Unmap()
	h, err := l.st.Holder(ctx, ip, at)
	if errors.Is(err, ErrNotFound) || err == nil && h.Checkpoint.Size < h.Latest {
		// The indexes lag the log: catch up, then answer at the
		// checkpoint they reached.
		if _, err := l.CatchUp(ctx); err != nil {
			return nil, err
		}
		h, err = l.st.Holder(ctx, ip, at)
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	cp := h.Checkpoint
	if err := l.checkSigned(cp); err != nil {
		return nil, err
	}
	// The latest lease that began at or before at decides: if it ended
	// by then, nobody held the address.
	noLease := fmt.Errorf("ledger: %v at %s: %w", ip, at.UTC().Format(time.RFC3339), ErrNoLease)
	if h.Lease == nil {
		return nil, noLease
	}
	if l0 := h.Lease; !l0.To.IsZero() && !l0.To.After(at) {
		// "Nobody" rests on the lease's end: prove it says so.
		ended, err := l.proveAll(ctx, []int64{l0.End}, cp, &h.Data)
		if err != nil {
			return nil, err
		}
		e := ended[0].Event
		d, derr := e.LeaseData()
		a, perr := netip.ParseAddr(d.IP)
		if derr != nil || perr != nil || e.Type != LeaseEndType || a.Unmap() != ip || !strings.EqualFold(d.MAC, l0.MAC) ||
			e.VM != l0.VM || e.Host != l0.Host || !e.Time.Equal(l0.To) {
			return nil, fmt.Errorf("ledger: entry %d does not say what the index says: %w", l0.End, ErrIndexChanged)
		}
		return nil, noLease
	}
	lease := h.Lease
	if r := h.Run; r != nil && r.End >= cp.Size {
		r.End, r.To = -1, time.Time{} // an end the indexes have not reached
	}
	ans := &Answer{IP: ip, At: at, Lease: *lease, Run: h.Run, Checkpoint: cp}
	// The events that say so, proven together, each checked to say what
	// the index says.
	leaseSays := func(t Type) func(Event) bool {
		return func(e Event) bool {
			d, err := e.LeaseData()
			a, perr := netip.ParseAddr(d.IP)
			return err == nil && perr == nil && e.Type == t && a.Unmap() == ip && strings.EqualFold(d.MAC, lease.MAC) && e.VM == lease.VM && e.Host == lease.Host
		}
	}
	ix := []int64{lease.Start}
	says := []func(Event) bool{func(e Event) bool { return leaseSays(LeaseStart)(e) && e.Time.Equal(lease.From) }}
	if lease.End >= 0 {
		ix = append(ix, lease.End)
		says = append(says, func(e Event) bool { return leaseSays(LeaseEndType)(e) && e.Time.Equal(lease.To) })
	}
	if r := ans.Run; r != nil {
		ix = append(ix, r.Start)
		says = append(says, func(e Event) bool {
			var d RunData
			var err error
			switch e.Type {
			case VMStarted, VMRestored:
				d, err = e.RunData()
			case VMMigrated:
				var m MigrateData
				m, err = e.MigrateData()
				d = m.Run
			default:
				return false
			}
			return err == nil && e.VM == r.VM && e.Host == r.Host && e.Time.Equal(r.From) &&
				d.Name == r.Name && d.Owner == r.Owner && d.Image == r.Image && d.List == r.List && d.Endorser == r.Endorser
		})
	}
	proven, err := l.proveAll(ctx, ix, cp, &h.Data)
	if err != nil {
		return nil, err
	}
	for k, p := range proven {
		if !says[k](p.Event) {
			return nil, fmt.Errorf("ledger: entry %d does not say what the index says: %w", p.Entry.Index, ErrIndexChanged)
		}
	}
	ans.Proofs = proven
	return ans, nil
}

// Runs returns the runs matching f, once the indexes have caught up.
func (l *Log) Runs(ctx context.Context, f RunFilter) ([]Run, error) {
	if _, err := l.CatchUp(ctx); err != nil {
		return nil, err
	}
	return l.st.Runs(ctx, f)
}

// Timeline returns the events about vm, in log order, proven in the
// checkpoint the indexes reached (caught up first: the latest when no
// ingest ran meanwhile).
func (l *Log) Timeline(ctx context.Context, vm string) ([]Proven, Checkpoint, error) {
	indexed, err := l.CatchUp(ctx)
	if err != nil {
		return nil, Checkpoint{}, err
	}
	cp, err := l.st.Checkpoint(ctx, indexed)
	if err != nil {
		return nil, Checkpoint{}, fmt.Errorf("ledger: %w", err)
	}
	if err := l.checkSigned(cp); err != nil {
		return nil, Checkpoint{}, err
	}
	ix, err := l.st.Timeline(ctx, vm)
	if err != nil {
		return nil, Checkpoint{}, err
	}
	ix = slices.DeleteFunc(ix, func(i int64) bool { return i >= cp.Size })
	var out []Proven
	for chunk := range slices.Chunk(ix, 1000) {
		ps, err := l.proveAll(ctx, chunk, cp, nil)
		if err != nil {
			return nil, Checkpoint{}, err
		}
		for _, p := range ps {
			if p.Event.VM != vm {
				return nil, Checkpoint{}, fmt.Errorf("ledger: entry %d is not about %s: %w", p.Entry.Index, vm, ErrIndexChanged)
			}
		}
		out = append(out, ps...)
	}
	return out, cp, nil
}
