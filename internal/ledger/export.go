package ledger

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// ExportDoc is the whole ledger as JSON, for a third party to check
// offline with CheckExport: every entry (base64 body), every batch with its
// host signature, the enrolled host keys, the latest checkpoint and the
// log's key (which the checker should compare with one it got elsewhere).
type ExportDoc struct {
	MessageType string         `json:"message_type"` // "ledger_export"
	Origin      string         `json:"origin"`
	LogKey      string         `json:"log_key"`
	Checkpoint  string         `json:"checkpoint"`
	Hosts       []Host         `json:"hosts"`
	Batches     []ExportBatch  `json:"batches"`
	Entries     []ExportedItem `json:"entries"`
}

// ExportBatch is a batch in an export.
type ExportBatch struct {
	ID    int64  `json:"id"`
	Host  string `json:"host"`
	First int64  `json:"first"`
	Count int64  `json:"count"`
	Root  []byte `json:"root"`
	Sig   []byte `json:"sig"`
}

// ExportedItem is an entry in an export.
type ExportedItem struct {
	Index int64  `json:"index"`
	Batch int64  `json:"batch"`
	Body  []byte `json:"body"`
}

// Export returns l's entries up to its latest checkpoint.
func Export(ctx context.Context, l *Log) (*ExportDoc, error) {
	cp, err := l.st.Latest(ctx)
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	hosts, err := l.st.Hosts(ctx)
	if err != nil {
		return nil, err
	}
	x := &ExportDoc{MessageType: "ledger_export", Origin: l.Origin(), LogKey: l.vkey, Checkpoint: string(cp.Note), Hosts: hosts}
	if err := l.st.Batches(ctx, func(b Batch) error {
		if b.First < cp.Size {
			x.Batches = append(x.Batches, ExportBatch{ID: b.ID, Host: b.Host, First: b.First, Count: b.Count, Root: b.Root[:], Sig: b.Sig})
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if err := l.st.Entries(ctx, 0, cp.Size, func(e Entry) error {
		x.Entries = append(x.Entries, ExportedItem{Index: e.Index, Batch: e.Batch, Body: e.Body})
		return nil
	}); err != nil {
		return nil, err
	}
	return x, nil
}

// CheckExport checks an export offline against the log key logKey: the
// checkpoint's signature, the tree of the entries against its root, each
// batch's root and its host's signature, each event's form. It returns the
// checkpoint's size, or the first thing wrong.
func CheckExport(x *ExportDoc, logKey string) (int64, error) {
	v, err := note.NewVerifier(logKey)
	if err != nil {
		return 0, fmt.Errorf("export: log key: %w", err)
	}
	size, root, _, err := ParseCheckpoint([]byte(x.Checkpoint), v.Name(), note.VerifierList(v))
	if err != nil {
		return 0, fmt.Errorf("export: %w", err)
	}
	if int64(len(x.Entries)) != size {
		return 0, fmt.Errorf("export: %d entries for a checkpoint of %d", len(x.Entries), size)
	}
	keys := map[string]note.Verifier{}
	for _, h := range x.Hosts {
		hv, err := note.NewVerifier(h.Key)
		if err != nil || hv.Name() != h.Name {
			return 0, fmt.Errorf("export: host %q: bad key", h.Name)
		}
		keys[h.Name] = hv
	}
	batches := map[int64]ExportBatch{}
	for _, b := range x.Batches {
		batches[b.ID] = b
	}
	var f frontier
	var bf *frontier
	var cur ExportBatch
	for i, e := range x.Entries {
		if e.Index != int64(i) {
			return 0, fmt.Errorf("export: entry %d at position %d", e.Index, i)
		}
		ev, err := Parse(e.Body)
		if err != nil {
			return 0, fmt.Errorf("export: entry %d: %w", i, err)
		}
		h := tlog.RecordHash(e.Body)
		f.add(h)
		if bf == nil {
			b, ok := batches[e.Batch]
			if !ok || b.First != e.Index || b.Count < 1 {
				return 0, fmt.Errorf("export: entry %d: batch %d missing or not starting here", i, e.Batch)
			}
			cur, bf = b, &frontier{}
		}
		if e.Batch != cur.ID || ev.Host != cur.Host {
			return 0, fmt.Errorf("export: entry %d is not of batch %d by %s", i, cur.ID, cur.Host)
		}
		bf.add(h)
		if bf.n == cur.Count {
			r := bf.root()
			hv := keys[cur.Host]
			if hv == nil || len(cur.Root) != tlog.HashSize || string(cur.Root) != string(r[:]) || !hv.Verify(BatchMessage(cur.Host, cur.Count, r), cur.Sig) {
				return 0, fmt.Errorf("export: batch %d (entries %d..%d): its host's signature does not verify", cur.ID, cur.First, cur.First+cur.Count-1)
			}
			bf = nil
		}
	}
	if bf != nil {
		return 0, errors.New("export: the last batch is incomplete")
	}
	if f.root() != root {
		return 0, errors.New("export: the entries' tree does not have the checkpoint's root")
	}
	return size, nil
}
