package witness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"golang.org/x/mod/sumdb/tlog"
)

// MaxStateFileSize bounds the file read by OpenFileStore.
const MaxStateFileSize = 16 << 20

// ErrStateChanged is returned by StateStore.Store when the stored state is no
// longer the one the caller read.
var ErrStateChanged = errors.New("witness state changed concurrently")

// State is the latest checkpoint a witness cosigned for one origin.
type State struct {
	Size int64     `json:"size"`
	Hash tlog.Hash `json:"hash"`
}

// StateStore keeps the witness state per origin. Store is a compare-and-swap:
// it replaces the state only if it still equals prev (nil: no state yet), and
// must be durable before it returns nil.
type StateStore interface {
	Load(ctx context.Context, origin string) (st State, ok bool, err error)
	Store(ctx context.Context, origin string, prev *State, next State) error
}

// FileStore is a StateStore in one JSON file, rewritten atomically (temporary
// file, fsync, rename, directory fsync) with mode 0600 on every change. One
// process owns the file.
type FileStore struct {
	path string
	mu   sync.Mutex
	logs map[string]State
}

type stateFile struct {
	Version int              `json:"version"`
	Logs    map[string]State `json:"logs"`
}

// OpenFileStore reads the state file at path, or starts empty if it does not
// exist. A malformed, oversized or symlinked file is an error, never an empty
// state (that would let the witness roll back).
func OpenFileStore(path string) (*FileStore, error) {
	s := &FileStore{path: path, logs: map[string]State{}}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("witness state %s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxStateFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("witness state %s: %w", path, err)
	}
	if len(data) > MaxStateFileSize {
		return nil, fmt.Errorf("witness state %s larger than %d bytes", path, MaxStateFileSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var sf stateFile
	if err := dec.Decode(&sf); err != nil {
		return nil, fmt.Errorf("witness state %s malformed: %w", path, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("witness state %s malformed: trailing data", path)
	}
	if sf.Version != 1 {
		return nil, fmt.Errorf("witness state %s has version %d, want 1", path, sf.Version)
	}
	for origin, st := range sf.Logs {
		if origin == "" || st.Size < 0 {
			return nil, fmt.Errorf("witness state %s malformed: bad entry %q", path, origin)
		}
		s.logs[origin] = st
	}
	return s, nil
}

// Load returns the state of origin.
func (s *FileStore) Load(ctx context.Context, origin string) (State, bool, error) {
	if err := ctx.Err(); err != nil {
		return State{}, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.logs[origin]
	return st, ok, nil
}

// Store replaces the state of origin if it still equals prev, and writes the
// file before returning.
func (s *FileStore) Store(ctx context.Context, origin string, prev *State, next State) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if origin == "" || next.Size < 0 {
		return errors.New("witness state entry invalid")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.logs[origin]
	if ok != (prev != nil) || ok && cur != *prev {
		return fmt.Errorf("origin %q: %w", origin, ErrStateChanged)
	}
	logs := make(map[string]State, len(s.logs)+1)
	for k, v := range s.logs {
		logs[k] = v
	}
	logs[origin] = next
	if err := s.write(logs); err != nil {
		return err
	}
	s.logs = logs
	return nil
}

func (s *FileStore) write(logs map[string]State) (err error) {
	data, err := json.MarshalIndent(stateFile{Version: 1, Logs: logs}, "", "\t")
	if err != nil {
		return fmt.Errorf("witness state encode: %w", err)
	}
	data = append(data, '\n')
	dir := filepath.Dir(s.path)
	tmp, err := os.CreateTemp(dir, ".witness-state-*")
	if err != nil {
		return fmt.Errorf("witness state write: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("witness state write: %w", err)
	}
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("witness state write: %w", err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("witness state write: %w", err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("witness state write: %w", err)
	}
	if err = os.Rename(tmp.Name(), s.path); err != nil {
		return fmt.Errorf("witness state write: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("witness state write: %w", err)
	}
	defer d.Close()
	if err = d.Sync(); err != nil {
		return fmt.Errorf("witness state write: %w", err)
	}
	return nil
}
