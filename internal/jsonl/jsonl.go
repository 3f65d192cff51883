// Package jsonl appends records to JSON-lines files durably: the decision,
// lifecycle and lease logs the audit ledger takes over.
//
// # Guarantees
//
// Append writes one JSON object and a newline with a single write(2) on a
// file opened with O_APPEND (so concurrent appenders never interleave
// within a line on a local filesystem), creates the file with mode 0600,
// never follows a symlink at the file's own name, and fsyncs it before
// returning. A returned error means the record may not be there.
package jsonl

import (
	"encoding/json"
	"fmt"
	"os"
	"syscall"
)

// Append adds v to the file at path as one line.
func Append(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	b = append(b, '\n')
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
