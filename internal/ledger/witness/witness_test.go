package witness

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// stateOf reads the persisted state through a fresh FileStore.
func (f *fixture) stateOf(t *testing.T) (State, bool) {
	t.Helper()
	s, err := OpenFileStore(f.statePath)
	if err != nil {
		t.Fatal(err)
	}
	st, ok, err := s.Load(context.Background(), f.log.origin)
	if err != nil {
		t.Fatal(err)
	}
	return st, ok
}

func (f *fixture) wantState(t *testing.T, tree *memTree, size int64) {
	t.Helper()
	st, ok := f.stateOf(t)
	if !ok || st.Size != size || st.Hash != tree.root(t, size) {
		t.Fatalf("state = %+v (present %v), want size %d root %v", st, ok, size, tree.root(t, size))
	}
}

func TestWitnessGrowthAndCosignatures(t *testing.T) {
	f := newFixture(t)
	tree := &memTree{}
	tree.grow(t, "a", 100)
	ctx := context.Background()
	var old int64
	for _, size := range []int64{1, 2, 3, 7, 8, 8, 9, 16, 17, 63, 64, 100} {
		f.now = f.now.Add(time.Second)
		signed := f.log.checkpoint(t, tree, size)
		lines, err := AddCheckpoint(ctx, f.srv.Client(), f.srv.URL, old, tree.proof(t, old, size), signed)
		if err != nil {
			t.Fatalf("size %d from %d: %v", size, old, err)
		}
		merged, err := MergeCosignatures(signed, lines, note.VerifierList(f.witVer))
		if err != nil {
			t.Fatalf("size %d: merge: %v", size, err)
		}
		n, err := note.Open(merged, note.VerifierList(f.log.ver, f.witVer))
		if err != nil || len(n.Sigs) != 2 {
			t.Fatalf("size %d: note.Open of merged note = %v, %v", size, n, err)
		}
		// The cosignature carries the witness clock.
		raw, _ := base64.StdEncoding.DecodeString(n.Sigs[1].Base64)
		if n.Sigs[1].Name != f.cosigner.Name() || int64(binary.BigEndian.Uint64(raw[4:])) != f.now.Unix() {
			t.Fatalf("size %d: cosignature %+v, want time %d", size, n.Sigs[1], f.now.Unix())
		}
		f.wantState(t, tree, size)
		old = size
	}
}

func TestWitnessMergeRefusesForeignCosignature(t *testing.T) {
	f := newFixture(t)
	tree := &memTree{}
	tree.grow(t, "a", 4)
	signed := f.log.checkpoint(t, tree, 4)
	lines, err := AddCheckpoint(context.Background(), f.srv.Client(), f.srv.URL, 0, nil, signed)
	if err != nil {
		t.Fatal(err)
	}
	_, stranger := newCosigner(t, "witness.example/w2")
	var unverified *note.UnverifiedNoteError
	if _, err := MergeCosignatures(signed, lines, note.VerifierList(stranger)); !errors.As(err, &unverified) {
		t.Fatalf("merge with an untrusted witness key: %v, want UnverifiedNoteError", err)
	}
	// A cosignature for another checkpoint does not verify on this one.
	tree.grow(t, "a", 5)
	other := f.log.checkpoint(t, tree, 5)
	var invalid *note.InvalidSignatureError
	if _, err := MergeCosignatures(other, lines, note.VerifierList(f.witVer)); !errors.As(err, &invalid) {
		t.Fatalf("merge onto another checkpoint: %v, want InvalidSignatureError", err)
	}
	if _, err := MergeCosignatures(signed, []byte("garbage\n"), note.VerifierList(f.witVer)); err == nil {
		t.Fatal("merge of malformed lines accepted")
	}
}

func TestWitnessConflict(t *testing.T) {
	f := newFixture(t)
	tree := &memTree{}
	tree.grow(t, "a", 20)
	ctx := context.Background()
	if _, err := AddCheckpoint(ctx, f.srv.Client(), f.srv.URL, 0, nil, f.log.checkpoint(t, tree, 10)); err != nil {
		t.Fatal(err)
	}
	for _, old := range []int64{0, 5, 11} {
		code, ctype, body := f.add(t, old, tree.proof(t, old, 15), f.log.checkpoint(t, tree, 15))
		if code != http.StatusConflict || ctype != SizeContentType || body != "10\n" {
			t.Errorf("old %d: %d %q %q, want 409 %s \"10\\n\"", old, code, ctype, body, SizeContentType)
		}
		_, err := AddCheckpoint(ctx, f.srv.Client(), f.srv.URL, old, tree.proof(t, old, 15), f.log.checkpoint(t, tree, 15))
		var ce *ConflictError
		if !errors.As(err, &ce) || ce.Size != 10 {
			t.Errorf("old %d: client err %v, want ConflictError{10}", old, err)
		}
	}
	f.wantState(t, tree, 10)
	// Retrying with the witness's size and the matching proof succeeds.
	if _, err := AddCheckpoint(ctx, f.srv.Client(), f.srv.URL, 10, tree.proof(t, 10, 15), f.log.checkpoint(t, tree, 15)); err != nil {
		t.Fatal(err)
	}
	f.wantState(t, tree, 15)
}

func TestWitnessRefusesBadSignatures(t *testing.T) {
	f := newFixture(t)
	tree := &memTree{}
	tree.grow(t, "a", 8)
	good := f.log.checkpoint(t, tree, 8)
	stranger := newLogKey(t, f.log.origin) // same origin and name, other key
	unknown := newLogKey(t, "other.example/log")
	tampered := strings.Replace(string(good), "\n8\n", "\n7\n", 1)
	badSig := flipLastSignature(t, good)
	cases := []struct {
		name string
		note []byte
		want int
	}{
		{"unknown origin", unknown.checkpoint(t, tree, 8), http.StatusNotFound},
		{"unknown key", stranger.checkpoint(t, tree, 8), http.StatusForbidden},
		{"tampered size", []byte(tampered), http.StatusForbidden},
		{"tampered signature", badSig, http.StatusForbidden},
		{"unsigned", []byte(fmt.Sprintf("%s\n8\n%s\n", f.log.origin, tree.root(t, 8))), http.StatusBadRequest},
	}
	for _, tc := range cases {
		code, _, body := f.add(t, 0, nil, tc.note)
		if code != tc.want {
			t.Errorf("%s: %d %q, want %d", tc.name, code, body, tc.want)
		}
		if _, ok := f.stateOf(t); ok {
			t.Fatalf("%s: state written for a refused checkpoint", tc.name)
		}
	}
	var se *StatusError
	if _, err := AddCheckpoint(context.Background(), f.srv.Client(), f.srv.URL, 0, nil, stranger.checkpoint(t, tree, 8)); !errors.As(err, &se) || se.Code != http.StatusForbidden {
		t.Errorf("client: %v, want StatusError 403", err)
	}
	// A second, valid signature from a key the witness does not know is ignored.
	both, err := note.Sign(&note.Note{Text: fmt.Sprintf("%s\n8\n%s\n", f.log.origin, tree.root(t, 8))}, unknown.signer, f.log.signer)
	if err != nil {
		t.Fatal(err)
	}
	if code, _, body := f.add(t, 0, nil, both); code != http.StatusOK {
		t.Fatalf("extra unknown signature: %d %q", code, body)
	}
}

func TestWitnessRefusesBadProofs(t *testing.T) {
	f := newFixture(t)
	tree := &memTree{}
	tree.grow(t, "a", 77)
	if code, _, body := f.add(t, 0, nil, f.log.checkpoint(t, tree, 13)); code != http.StatusOK {
		t.Fatalf("first: %d %q", code, body)
	}
	signed := f.log.checkpoint(t, tree, 77)
	proof := tree.proof(t, 13, 77)
	if len(proof) < 3 {
		t.Fatalf("proof too short for the test: %d", len(proof))
	}
	for i := range proof {
		for _, bit := range []byte{0x01, 0x80} {
			bad := append(tlog.TreeProof(nil), proof...)
			bad[i][i%tlog.HashSize] ^= bit
			if code, _, body := f.add(t, 13, bad, signed); code != http.StatusUnprocessableEntity {
				t.Errorf("hash %d bit %#x flipped: %d %q, want 422", i, bit, code, body)
			}
		}
	}
	for name, bad := range map[string]tlog.TreeProof{
		"missing last": proof[:len(proof)-1],
		"extra hash":   append(append(tlog.TreeProof(nil), proof...), proof[0]),
		"empty":        nil,
		"swapped":      append(tlog.TreeProof{proof[1], proof[0]}, proof[2:]...),
	} {
		if code, _, body := f.add(t, 13, bad, signed); code != http.StatusUnprocessableEntity {
			t.Errorf("%s: %d %q, want 422", name, code, body)
		}
	}
	f.wantState(t, tree, 13)
	if code, _, body := f.add(t, 13, proof, signed); code != http.StatusOK {
		t.Fatalf("valid proof: %d %q", code, body)
	}
	f.wantState(t, tree, 77)
}

func TestWitnessRefusesForksAndRollback(t *testing.T) {
	f := newFixture(t)
	tree := &memTree{}
	tree.grow(t, "a", 30)
	fork := &memTree{}
	fork.grow(t, "a", 10) // same first 10 events
	fork.grow(t, "b", 40) // then different ones
	if code, _, body := f.add(t, 0, nil, f.log.checkpoint(t, tree, 20)); code != http.StatusOK {
		t.Fatalf("first: %d %q", code, body)
	}
	cases := []struct {
		name  string
		old   int64
		proof tlog.TreeProof
		note  []byte
		want  int
	}{
		{"fork, same size", 20, nil, f.log.checkpoint(t, fork, 20), http.StatusConflict},
		{"fork, larger, fork's proof", 20, fork.proof(t, 20, 30), f.log.checkpoint(t, fork, 30), http.StatusUnprocessableEntity},
		{"fork, larger, honest proof", 20, tree.proof(t, 20, 30), f.log.checkpoint(t, fork, 30), http.StatusUnprocessableEntity},
		{"rollback, old = stored", 20, nil, f.log.checkpoint(t, tree, 15), http.StatusBadRequest},
		{"rollback, old = smaller size", 15, nil, f.log.checkpoint(t, tree, 15), http.StatusConflict},
		{"rollback, old 0", 0, nil, f.log.checkpoint(t, tree, 15), http.StatusConflict},
		{"same size, proof not empty", 20, tree.proof(t, 10, 20), f.log.checkpoint(t, tree, 20), http.StatusUnprocessableEntity},
	}
	for _, tc := range cases {
		if code, _, body := f.add(t, tc.old, tc.proof, tc.note); code != tc.want {
			t.Errorf("%s: %d %q, want %d", tc.name, code, body, tc.want)
		}
		f.wantState(t, tree, 20)
	}
	// Same size, same root: cosigned again, state unchanged.
	if code, _, body := f.add(t, 20, nil, f.log.checkpoint(t, tree, 20)); code != http.StatusOK {
		t.Fatalf("same checkpoint again: %d %q", code, body)
	}
	f.wantState(t, tree, 20)
}

func TestWitnessFirstCheckpointRules(t *testing.T) {
	f := newFixture(t)
	tree := &memTree{}
	tree.grow(t, "a", 5)
	if code, _, _ := f.add(t, 0, tree.proof(t, 2, 5), f.log.checkpoint(t, tree, 5)); code != http.StatusUnprocessableEntity {
		t.Errorf("old 0 with a proof: %d, want 422", code)
	}
	bogusEmpty, err := note.Sign(&note.Note{Text: fmt.Sprintf("%s\n0\n%s\n", f.log.origin, tree.root(t, 5))}, f.log.signer)
	if err != nil {
		t.Fatal(err)
	}
	if code, _, _ := f.add(t, 0, nil, bogusEmpty); code != http.StatusUnprocessableEntity {
		t.Errorf("size 0 with a non-empty root: %d, want 422", code)
	}
	if code, _, _ := f.add(t, 0, nil, f.log.checkpoint(t, tree, 0)); code != http.StatusOK {
		t.Errorf("empty tree: %d, want 200", code)
	}
	if code, _, _ := f.add(t, 0, nil, f.log.checkpoint(t, tree, 5)); code != http.StatusOK {
		t.Errorf("growth from the empty tree: %d, want 200", code)
	}
	f.wantState(t, tree, 5)
}

func TestWitnessHTTPBounds(t *testing.T) {
	f := newFixture(t)
	resp, err := f.srv.Client().Get(f.srv.URL + "/add-checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d, want 405", resp.StatusCode)
	}
	if code, _, _ := f.post(t, []byte("old 0\n\n"+strings.Repeat("x", MaxRequestSize))); code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized: %d, want 413", code)
	}
	for _, body := range []string{"", "old x\n\n", "old 0\n", "old 0\n\nno newline at all"} {
		if code, _, _ := f.post(t, []byte(body)); code != http.StatusBadRequest {
			t.Errorf("%q: %d, want 400", body, code)
		}
	}
}

func TestWitnessStateSurvivesRestart(t *testing.T) {
	f := newFixture(t)
	tree := &memTree{}
	tree.grow(t, "a", 50)
	ctx := context.Background()
	if _, err := AddCheckpoint(ctx, f.srv.Client(), f.srv.URL, 0, nil, f.log.checkpoint(t, tree, 30)); err != nil {
		t.Fatal(err)
	}
	f.start(t) // a new Witness and FileStore on the same file
	var ce *ConflictError
	if _, err := AddCheckpoint(ctx, f.srv.Client(), f.srv.URL, 0, nil, f.log.checkpoint(t, tree, 10)); !errors.As(err, &ce) || ce.Size != 30 {
		t.Fatalf("after restart: %v, want ConflictError{30}", err)
	}
	if _, err := AddCheckpoint(ctx, f.srv.Client(), f.srv.URL, 30, nil, f.log.checkpoint(t, tree, 10)); err == nil {
		t.Fatal("rollback after restart accepted")
	}
	if _, err := AddCheckpoint(ctx, f.srv.Client(), f.srv.URL, 30, tree.proof(t, 30, 50), f.log.checkpoint(t, tree, 50)); err != nil {
		t.Fatal(err)
	}
	f.wantState(t, tree, 50)
}

func TestWitnessConcurrentAdds(t *testing.T) {
	f := newFixture(t)
	tree := &memTree{}
	tree.grow(t, "a", 60)
	if code, _, _ := f.add(t, 0, nil, f.log.checkpoint(t, tree, 10)); code != http.StatusOK {
		t.Fatal("first add failed")
	}
	const workers = 12
	codes := make([]int, workers)
	var wg sync.WaitGroup
	for i := range workers {
		size := int64(20 + 3*i)
		body := formatAddCheckpoint(10, tree.proof(t, 10, size), f.log.checkpoint(t, tree, size))
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := f.srv.Client().Post(f.srv.URL+"/add-checkpoint", "text/plain", strings.NewReader(string(body)))
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	winner := -1
	for i, c := range codes {
		switch c {
		case http.StatusOK:
			if winner >= 0 {
				t.Fatalf("two requests from old 10 both cosigned (%d and %d)", winner, i)
			}
			winner = i
		case http.StatusConflict:
		default:
			t.Fatalf("worker %d: status %d", i, c)
		}
	}
	if winner < 0 {
		t.Fatal("no request cosigned")
	}
	f.wantState(t, tree, int64(20+3*winner))
}

func TestNewRefusesBadConfig(t *testing.T) {
	c, _ := newCosigner(t, "w")
	st, err := OpenFileStore(t.TempDir() + "/s.json")
	if err != nil {
		t.Fatal(err)
	}
	lk := newLogKey(t, "log")
	_, cosigVkey, _ := GenerateKey(rand.Reader, "log")
	base := func() Config {
		return Config{Cosigner: c, Logs: map[string][]string{"log": {lk.vkey}}, State: st, Now: time.Now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	}
	bad := map[string]func(*Config){
		"no cosigner":     func(c *Config) { c.Cosigner = nil },
		"no logs":         func(c *Config) { c.Logs = nil },
		"no keys":         func(c *Config) { c.Logs = map[string][]string{"log": nil} },
		"bad key":         func(c *Config) { c.Logs = map[string][]string{"log": {"junk"}} },
		"cosignature key": func(c *Config) { c.Logs = map[string][]string{"log": {cosigVkey}} },
		"no clock":        func(c *Config) { c.Now = nil },
		"no logger":       func(c *Config) { c.Logger = nil },
		"no state":        func(c *Config) { c.State = nil },
	}
	for name, mod := range bad {
		cfg := base()
		mod(&cfg)
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := New(base()); err != nil {
		t.Fatal(err)
	}
}

func TestAddCheckpointClientBounds(t *testing.T) {
	ctx := context.Background()
	if _, err := AddCheckpoint(ctx, nil, "http://127.0.0.1:1", 0, nil, []byte("x")); err == nil {
		t.Error("nil client accepted")
	}
	if _, err := AddCheckpoint(ctx, http.DefaultClient, "http://127.0.0.1:1", 0, tlog.TreeProof{{}}, []byte("x")); err == nil {
		t.Error("old 0 with a proof accepted")
	}
	if _, err := AddCheckpoint(ctx, http.DefaultClient, "http://127.0.0.1:1", 5, make(tlog.TreeProof, MaxProofLines+1), []byte("x")); err == nil {
		t.Error("over-long proof accepted")
	}
}

// flipLastSignature flips one bit of the signature on the note's last
// signature line (a bit of the Ed25519 signature, after the key ID).
func flipLastSignature(t *testing.T, n []byte) []byte {
	t.Helper()
	text := strings.TrimSuffix(string(n), "\n")
	i := strings.LastIndex(text, " ")
	raw, err := base64.StdEncoding.DecodeString(text[i+1:])
	if err != nil || len(raw) < 10 {
		t.Fatalf("last signature line of %q: %v", n, err)
	}
	raw[len(raw)-1] ^= 1
	return []byte(text[:i+1] + base64.StdEncoding.EncodeToString(raw) + "\n")
}
