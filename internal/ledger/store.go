package ledger

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// ErrNotFound is returned by a Store for a row that does not exist.
var ErrNotFound = errors.New("not found")

// Store keeps a ledger's rows: the entries (event bodies), the tiles of
// their Merkle tree, the host-signed batches, the signed
// checkpoints, the enrolled host keys, and the query indexes (leases,
// runs, timeline) derived from the entries. One implementation per
// database (package sqlite, package postgres); ledgertest.TestStore is the
// conformance suite every one passes.
//
// A Store checks no signature and computes no hash: the Log does, and
// writes everything one ingest produces through one Update, so that the
// entries, their tree's tiles, the batch and the checkpoint are committed
// together or not at all.
type Store interface {
	// Update runs fn in one transaction and commits it when fn returns
	// nil; otherwise, or when ctx ends, nothing fn wrote remains. Updates
	// are serialised (one writer).
	Update(ctx context.Context, fn func(Tx) error) error
	// UpdateIndex runs fn in one transaction on the query indexes, with
	// the same all-or-nothing rule. UpdateIndex calls are serialised with
	// each other; a store may run them beside Updates (one over a network
	// does), so an index transaction does not hold up ingest.
	UpdateIndex(ctx context.Context, fn func(IndexTx) error) error
	Reader
	Close() error
}

// IndexTx is an UpdateIndex's transaction. The query indexes (leases,
// runs, timelines) follow the log: they hold the rows derived from the
// entries [0, Indexed), and Indexed is always the size of a checkpoint.
type IndexTx interface {
	// Indexed is the number of entries the indexes cover.
	Indexed(ctx context.Context) (int64, error)
	// AppendIndex adds the index rows of entries [from, through) — a's
	// Leases, LeaseEnds, Runs, RunEnds and VMEvents; its other fields
	// must be empty — and sets Indexed to through. It fails, writing
	// nothing, unless Indexed is from and from < through ≤ Size.
	AppendIndex(ctx context.Context, a Append, from, through int64) error
}

// Reader is what may be read outside a transaction; each call sees one
// committed state.
type Reader interface {
	// Size is the number of entries.
	Size(ctx context.Context) (int64, error)
	// ReadTiles returns the stored tiles of the tree (see TileHeight) with
	// the given keys, in order; nil for one not stored.
	ReadTiles(ctx context.Context, keys []TileKey) ([][]byte, error)
	// Entries calls fn for the entries with index in [from, to), in index
	// order, stopping at fn's first error.
	Entries(ctx context.Context, from, to int64, fn func(Entry) error) error
	// ReadEntries returns the entries with the given indexes, in the
	// order asked (an index asked twice, twice); a missing one is an
	// error wrapping ErrNotFound.
	ReadEntries(ctx context.Context, indexes []int64) ([]Entry, error)
	// ReadProofData is ReadEntries and ReadTiles at once (a proof needs
	// both; a store over a network reads them in one round trip).
	ReadProofData(ctx context.Context, indexes []int64, keys []TileKey) ([]Entry, [][]byte, error)
	// Batches calls fn for every batch in id order.
	Batches(ctx context.Context, fn func(Batch) error) error
	// Checkpoint returns the checkpoint of the given size; Latest the
	// largest; CheckpointAtMost the largest of size at most size.
	// ErrNotFound when there is none.
	Checkpoint(ctx context.Context, size int64) (Checkpoint, error)
	Latest(ctx context.Context) (Checkpoint, error)
	CheckpointAtMost(ctx context.Context, size int64) (Checkpoint, error)
	// Indexed is the number of entries the query indexes cover (see
	// IndexTx).
	Indexed(ctx context.Context) (int64, error)
	// Host returns an enrolled host; ErrNotFound when unknown.
	Host(ctx context.Context, name string) (Host, error)
	Hosts(ctx context.Context) ([]Host, error)
	// LeasesAt returns the leases of ip that began at or before at, latest
	// first, at most limit (the caller checks which still held at at).
	LeasesAt(ctx context.Context, ip netip.Addr, at time.Time, limit int) ([]Lease, error)
	// Holder reads, in one snapshot, what who-had needs: the checkpoint
	// of the indexed size (ErrNotFound when there is none), the size of
	// the latest checkpoint, the latest lease of ip
	// that began at or before at (nil: none), and the run of that lease's
	// VM on its host that covered at — began at or before at and not
	// ended by then, the latest such (nil: none).
	Holder(ctx context.Context, ip netip.Addr, at time.Time) (Holding, error)
	// Runs returns the runs matching f, by start time.
	Runs(ctx context.Context, f RunFilter) ([]Run, error)
	// Timeline returns the entry indexes of the events about vm, in order.
	Timeline(ctx context.Context, vm string) ([]int64, error)
	// ScanLeases calls fn for every stored lease, by Start (then IP),
	// with To and End from its lease end (zero and -1: none); a lease end
	// whose lease is not stored comes as a Lease with the zero IP, its
	// Start, To and End. ScanRuns calls fn for every stored run, by
	// Start. ScanTimeline calls fn for every (VM, entry index) the
	// timelines hold, rows in no particular order. Each stops at fn's
	// first error; a stored row that does not parse is an error wrapping
	// ErrCorruptIndex. Verify compares them with the rows it derives.
	ScanLeases(ctx context.Context, fn func(Lease) error) error
	ScanRuns(ctx context.Context, fn func(Run) error) error
	ScanTimeline(ctx context.Context, fn func(VMEvent) error) error
}

// Tx is an Update's transaction.
type Tx interface {
	Size(ctx context.Context) (int64, error)
	ReadTiles(ctx context.Context, keys []TileKey) ([][]byte, error)
	Host(ctx context.Context, name string) (Host, error)
	Latest(ctx context.Context) (Checkpoint, error)
	// PutHost enrolls a host; an existing name with another key is an
	// error (a host's key is never replaced silently).
	PutHost(ctx context.Context, h Host) error
	// Append adds a's rows, in field order. a.Entries must continue the
	// log (the first index equals Size); a.Tiles replace the stored tiles
	// with the same keys (a partial tile grows) or add them.
	// Index rows in a are written as AppendIndex writes them, without
	// moving Indexed (the Log gives none: its indexes follow, through
	// UpdateIndex). Leases and Runs may arrive closed (To, End set);
	// A LeaseEnd closes every lease of its (ip, mac, vm, host), a RunEnd
	// every run of its (vm, host), that began before it (smaller start
	// index) and is still open; a row keeps its first end (none to close:
	// no change).
	Append(ctx context.Context, a Append) error
	// PutCheckpoint stores a checkpoint; one of the same size is replaced
	// only by one with the same root (adding cosignatures).
	PutCheckpoint(ctx context.Context, c Checkpoint) error
}

// Entry is one event as the log holds it: its body, verbatim, at Index,
// part of batch Batch.
type Entry struct {
	Index int64
	Batch int64
	Body  []byte
}

// Batch is a host's signed submission: entries [First, First+Count) (its
// ID is First),
// whose record hashes have the Merkle root Root, signed by Host (see
// BatchMessage).
type Batch struct {
	ID    int64
	Host  string
	First int64
	Count int64
	Root  tlog.Hash
	Sig   []byte
}

// Checkpoint is a signed tree head: the note (C2SP tlog-checkpoint body,
// the log's signature and any witnesses' cosignatures) for tree Size with
// root Root.
type Checkpoint struct {
	Size int64
	Root tlog.Hash
	Note []byte
	Time time.Time
}

// Host is an enrolled host: its name and note verifier key.
type Host struct {
	Name  string
	Key   string // sumdb/note verifier key: name+hash+base64
	Added time.Time
}

// Lease is a MAC/IP binding of a VM on a host from From until To (zero:
// still held), indexed from its start and end events.
type Lease struct {
	IP         netip.Addr
	MAC        string
	VM         string
	Host       string
	From, To   time.Time
	Start, End int64 // entry indexes; End is -1 while held
}

// LeaseEnd closes the lease of (IP, MAC, VM, Host) still held.
type LeaseEnd struct {
	IP    netip.Addr
	MAC   string
	VM    string
	Host  string
	To    time.Time
	Index int64
}

// Run is a VM's run on a host: from its start event (with the admission's
// image, list, endorser and owner) to its stop (To zero: running).
type Run struct {
	VM       string
	Name     string
	Host     string
	Owner    string
	Image    string // sha512 of the image, hex
	List     string
	Endorser string
	From, To time.Time
	Start    int64
	End      int64 // -1 while running
}

// RunEnd closes the running run of VM on Host.
type RunEnd struct {
	VM    string
	Host  string
	To    time.Time
	Index int64
}

// RunFilter selects runs overlapping [From, To) (zero: unbounded) with
// every non-empty field equal.
type RunFilter struct {
	Image, Endorser, Owner, Host, VM string
	From, To                         time.Time
	Limit                            int // 0: 1000
}

// VMEvent indexes an entry under a VM for its timeline.
type VMEvent struct {
	VM    string
	Index int64
}

// Holding is Holder's answer: the lease and run as the indexes hold them
// at Checkpoint (the indexed size); Latest is the latest checkpoint's
// size (larger while the indexes catch up).
type Holding struct {
	Checkpoint Checkpoint
	Latest     int64
	// Data may hold the entries of the lease's start and end and of the
	// run's start, and their tiles of levels 0 to 2, read in the same
	// statement (what who-had's proofs need beyond the upper tree, which
	// the Log caches); whatever is absent is read afterwards.
	Data  ProofData
	Lease *Lease
	Run   *Run
}

// ProofData is entries and tiles read for proofs.
type ProofData struct {
	Entries []Entry
	Tiles   []TileData
}

// AddTiles adds the tiles of levels 0, 1, … of entry index's proof, in
// that order; a nil one was not read.
func (d *ProofData) AddTiles(index int64, levels ...[]byte) {
	for L, data := range levels {
		if data != nil {
			d.Tiles = append(d.Tiles, TileData{Key: TileKey{L: L, N: index >> ((L + 1) * TileHeight)}, Data: data})
		}
	}
}

// Append is what one ingest adds (Entries, Tiles, Batches) or one index
// transaction (the rest; see IndexTx).
type Append struct {
	Entries   []Entry
	Tiles     []TileData
	Batches   []Batch
	Leases    []Lease
	LeaseEnds []LeaseEnd
	Runs      []Run
	RunEnds   []RunEnd
	VMEvents  []VMEvent
}

// EntriesInOrder returns got's entries in the order of indexes, for a
// Store's ReadEntries; a missing one is an error wrapping ErrNotFound.
func EntriesInOrder(indexes []int64, got map[int64]Entry) ([]Entry, error) {
	out := make([]Entry, len(indexes))
	for i, x := range indexes {
		e, ok := got[x]
		if !ok {
			return nil, fmt.Errorf("entry %d: %w", x, ErrNotFound)
		}
		out[i] = e
	}
	return out, nil
}
