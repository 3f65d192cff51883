// Package witness is both sides of C2SP tlog-witness for vmtrust's ledger
// checkpoints: a witness server that cosigns other logs' checkpoints, a client
// that asks witnesses to cosign ours, and the C2SP tlog-cosignature
// (cosignature/v1, Ed25519) note.Signer and note.Verifier.
//
// Guarantees of the witness (Witness.Handler, POST <prefix>/add-checkpoint):
//   - it cosigns only a checkpoint of a configured origin carrying a valid
//     signature from one of that origin's log keys (else 404 / 403);
//   - it cosigns only a checkpoint consistent with the latest one it cosigned
//     for that origin: the request's old size must equal that size (else 409
//     with text/x.tlog.size), the RFC 6962 consistency proof must verify from
//     the stored root (else 422), a same-size checkpoint must have the same
//     root (else 409), and a smaller one is refused (400 or 409). It never
//     rolls back and never cosigns a fork;
//   - the new state is durable (StateStore.Store, compare-and-swap) before the
//     cosignature is returned, and requests for one origin are serialised;
//   - requests are bounded (MaxRequestSize, MaxProofLines) and parsed
//     strictly; anything malformed is 400.
//
// A cosignature/v1 signature is key ID (4) || big-endian seconds (8) ||
// Ed25519 over "cosignature/v1\ntime <seconds>\n" + the checkpoint text, so it
// verifies only for that text at that time.
package witness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// SizeContentType is the media type of a 409 response carrying the
// witness's latest size for the origin.
const SizeContentType = "text/x.tlog.size"

// Config configures a Witness.
type Config struct {
	Cosigner *Cosigner           // the witness key
	Logs     map[string][]string // origin → note verifier keys of the log
	State    StateStore
	Now      func() time.Time // cosignature timestamps
	Logger   *slog.Logger
}

// Witness is a C2SP tlog-witness server.
type Witness struct {
	cosigner *Cosigner
	logs     map[string]*knownLog
	state    StateStore
	now      func() time.Time
	log      *slog.Logger
}

type knownLog struct {
	verifiers note.Verifiers
	sem       chan struct{} // serialises requests for the origin
}

// New checks cfg and returns a Witness. Every log key must parse with
// note.NewVerifier.
func New(cfg Config) (*Witness, error) {
	if cfg.Cosigner == nil || cfg.State == nil || cfg.Now == nil || cfg.Logger == nil {
		return nil, errors.New("witness config needs a cosigner, state store, clock and logger")
	}
	if len(cfg.Logs) == 0 {
		return nil, errors.New("witness config has no logs")
	}
	w := &Witness{cosigner: cfg.Cosigner, logs: map[string]*knownLog{}, state: cfg.State, now: cfg.Now, log: cfg.Logger}
	for origin, keys := range cfg.Logs {
		if origin == "" || len(keys) == 0 {
			return nil, fmt.Errorf("witness log %q needs an origin and at least one key", origin)
		}
		var vs []note.Verifier
		for _, k := range keys {
			v, err := note.NewVerifier(k)
			if err != nil {
				return nil, fmt.Errorf("witness log %q key %q: %w", origin, k, err)
			}
			vs = append(vs, v)
		}
		w.logs[origin] = &knownLog{verifiers: note.VerifierList(vs...), sem: make(chan struct{}, 1)}
	}
	return w, nil
}

// Handler serves POST /add-checkpoint; mount it under the submission prefix
// with http.StripPrefix.
func (w *Witness) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/add-checkpoint", w.serveAddCheckpoint)
	return mux
}

// httpError is a refusal with its status code.
type httpError struct {
	code int
	msg  string
	size int64 // for a size conflict: the latest cosigned size
}

func (e *httpError) Error() string { return fmt.Sprintf("%d %s", e.code, e.msg) }

func refuse(code int, format string, args ...any) *httpError {
	return &httpError{code: code, msg: fmt.Sprintf(format, args...), size: -1}
}

func (w *Witness) serveAddCheckpoint(rw http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		rw.Header().Set("Allow", http.MethodPost)
		http.Error(rw, "add-checkpoint needs POST", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, MaxRequestSize))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(rw, fmt.Sprintf("request larger than %d bytes", MaxRequestSize), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(rw, "request body unreadable", http.StatusBadRequest)
		return
	}
	line, err := w.addCheckpoint(r.Context(), body)
	if err != nil {
		var he *httpError
		if !errors.As(err, &he) {
			w.log.ErrorContext(r.Context(), "witness add-checkpoint failed", "err", err)
			http.Error(rw, "internal error", http.StatusInternalServerError)
			return
		}
		if he.size >= 0 {
			rw.Header().Set("Content-Type", SizeContentType)
			rw.WriteHeader(he.code)
			fmt.Fprintf(rw, "%d\n", he.size)
			return
		}
		http.Error(rw, he.msg, he.code)
		return
	}
	rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
	rw.Write(line)
}

// addCheckpoint runs every check and returns the cosignature line, or an
// *httpError, or another error (internal).
func (w *Witness) addCheckpoint(ctx context.Context, body []byte) ([]byte, error) {
	req, err := parseAddCheckpoint(body)
	if err != nil {
		return nil, refuse(http.StatusBadRequest, "%v", err)
	}
	origin, err := parseOrigin(req.note)
	if err != nil {
		return nil, refuse(http.StatusBadRequest, "%v", err)
	}
	lg, ok := w.logs[origin]
	if !ok {
		return nil, refuse(http.StatusNotFound, "unknown log origin")
	}
	n, err := note.Open(req.note, lg.verifiers)
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		if errors.As(err, &unverified) || errors.As(err, &invalid) {
			w.log.WarnContext(ctx, "witness refused checkpoint without a valid log signature", "origin", origin, "err", err)
			return nil, refuse(http.StatusForbidden, "no valid signature from a known key of the log")
		}
		return nil, refuse(http.StatusBadRequest, "checkpoint note malformed: %v", err)
	}
	cp, err := parseCheckpoint(n.Text)
	if err != nil {
		return nil, refuse(http.StatusBadRequest, "%v", err)
	}
	if cp.Origin != origin {
		return nil, refuse(http.StatusForbidden, "checkpoint origin changed")
	}
	if req.old > cp.Size {
		return nil, refuse(http.StatusBadRequest, "old size %d larger than checkpoint size %d", req.old, cp.Size)
	}

	select {
	case lg.sem <- struct{}{}:
		defer func() { <-lg.sem }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	st, have, err := w.state.Load(ctx, origin)
	if err != nil {
		return nil, fmt.Errorf("witness state of %q: %w", origin, err)
	}
	var latest int64
	if have {
		latest = st.Size
	}
	if req.old != latest {
		return nil, &httpError{code: http.StatusConflict, msg: "old size is not the latest cosigned size", size: latest}
	}
	if err := checkConsistency(req, cp, st, have); err != nil {
		w.log.WarnContext(ctx, "witness refused inconsistent checkpoint", "origin", origin, "old", req.old, "size", cp.Size, "err", err, "checkpoint", string(req.note))
		return nil, err
	}

	line, err := w.cosigner.signatureLine([]byte(n.Text), w.now())
	if err != nil {
		return nil, fmt.Errorf("witness cosign: %w", err)
	}
	var prev *State
	if have {
		prev = &st
	}
	if err := w.state.Store(ctx, origin, prev, State{Size: cp.Size, Hash: cp.Hash}); err != nil {
		if errors.Is(err, ErrStateChanged) {
			if cur, ok, lerr := w.state.Load(ctx, origin); lerr == nil && ok {
				return nil, &httpError{code: http.StatusConflict, msg: "state changed", size: cur.Size}
			}
		}
		return nil, fmt.Errorf("witness state of %q: %w", origin, err)
	}
	w.log.InfoContext(ctx, "witness cosigned checkpoint", "origin", origin, "old", req.old, "size", cp.Size)
	return line, nil
}

// checkConsistency checks cp against the stored state st (have: one exists),
// given req.old == st.Size (or 0 without state).
func checkConsistency(req addRequest, cp checkpoint, st State, have bool) error {
	if cp.Size == 0 {
		if empty, _ := tlog.TreeHash(0, nil); cp.Hash != empty {
			return refuse(http.StatusUnprocessableEntity, "empty tree with a non-empty root hash")
		}
	}
	switch {
	case req.old == 0 || req.old == cp.Size:
		if len(req.proof) != 0 {
			return refuse(http.StatusUnprocessableEntity, "consistency proof must be empty")
		}
		if have && req.old == cp.Size && cp.Hash != st.Hash {
			return refuse(http.StatusConflict, "same size, different root hash: refusing a fork")
		}
	default:
		if err := tlog.CheckTree(req.proof, cp.Size, cp.Hash, req.old, st.Hash); err != nil {
			return refuse(http.StatusUnprocessableEntity, "consistency proof does not verify")
		}
	}
	return nil
}
