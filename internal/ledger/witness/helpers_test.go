package witness

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// memTree is an in-memory tlog with stored hashes.
type memTree struct {
	hashes []tlog.Hash
	n      int64
}

func (t *memTree) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		if x < 0 || x >= int64(len(t.hashes)) {
			return nil, fmt.Errorf("hash index %d out of range", x)
		}
		out[i] = t.hashes[x]
	}
	return out, nil
}

func (t *memTree) add(tb testing.TB, data string) {
	tb.Helper()
	hs, err := tlog.StoredHashes(t.n, []byte(data), t)
	if err != nil {
		tb.Fatal(err)
	}
	t.hashes = append(t.hashes, hs...)
	t.n++
}

func (t *memTree) grow(tb testing.TB, prefix string, to int64) {
	for t.n < to {
		t.add(tb, fmt.Sprintf("%s event %d", prefix, t.n))
	}
}

func (t *memTree) root(tb testing.TB, n int64) tlog.Hash {
	tb.Helper()
	h, err := tlog.TreeHash(n, t)
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

func (t *memTree) proof(tb testing.TB, from, to int64) tlog.TreeProof {
	tb.Helper()
	if from == 0 {
		return nil
	}
	p, err := tlog.ProveTree(to, from, t)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// logKey is a log's checkpoint signing key.
type logKey struct {
	origin string
	signer note.Signer
	vkey   string
	ver    note.Verifier
}

func newLogKey(tb testing.TB, origin string) logKey {
	tb.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		tb.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		tb.Fatal(err)
	}
	return logKey{origin: origin, signer: s, vkey: vkey, ver: v}
}

func (k logKey) checkpoint(tb testing.TB, t *memTree, n int64) []byte {
	tb.Helper()
	text := fmt.Sprintf("%s\n%d\n%s\n", k.origin, n, t.root(tb, n))
	msg, err := note.Sign(&note.Note{Text: text}, k.signer)
	if err != nil {
		tb.Fatal(err)
	}
	return msg
}

// fixture is a running witness for one log.
type fixture struct {
	log       logKey
	cosigner  *Cosigner
	witVer    note.Verifier
	statePath string
	srv       *httptest.Server
	now       time.Time
}

func newCosigner(tb testing.TB, name string) (*Cosigner, note.Verifier) {
	tb.Helper()
	skey, vkey, err := GenerateKey(rand.Reader, name)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := NewCosigner(skey)
	if err != nil {
		tb.Fatal(err)
	}
	v, err := NewCosignatureVerifier(vkey)
	if err != nil {
		tb.Fatal(err)
	}
	return c, v
}

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	c, v := newCosigner(tb, "witness.example/w1")
	f := &fixture{
		log:       newLogKey(tb, "vmtrust.example/ledger"),
		cosigner:  c,
		witVer:    v,
		statePath: filepath.Join(tb.TempDir(), "witness.json"),
		now:       time.Unix(1_800_000_000, 0),
	}
	f.start(tb)
	return f
}

// start (re)starts the witness on the fixture's state file.
func (f *fixture) start(tb testing.TB) {
	tb.Helper()
	if f.srv != nil {
		f.srv.Close()
	}
	st, err := OpenFileStore(f.statePath)
	if err != nil {
		tb.Fatal(err)
	}
	w, err := New(Config{
		Cosigner: f.cosigner,
		Logs:     map[string][]string{f.log.origin: {f.log.vkey}},
		State:    st,
		Now:      func() time.Time { return f.now },
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		tb.Fatal(err)
	}
	f.srv = httptest.NewServer(w.Handler())
	tb.Cleanup(f.srv.Close)
}

// post sends a raw body and returns status, content type and body.
func (f *fixture) post(tb testing.TB, body []byte) (int, string, string) {
	tb.Helper()
	resp, err := http.Post(f.srv.URL+"/add-checkpoint", "text/plain", bytes.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

func (f *fixture) add(tb testing.TB, old int64, proof tlog.TreeProof, signed []byte) (int, string, string) {
	tb.Helper()
	return f.post(tb, formatAddCheckpoint(old, proof, signed))
}
