package ledger

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// VerifierKey returns the note verifier key of the Ed25519 note signer
// key skey ("PRIVATE+KEY+name+hash+base64").
func VerifierKey(skey string) (string, error) {
	rest, ok := strings.CutPrefix(skey, "PRIVATE+KEY+")
	if !ok {
		return "", errors.New("ledger: not a note private key")
	}
	parts := strings.SplitN(rest, "+", 3) // base64 may hold "+"
	if len(parts) != 3 {
		return "", errors.New("ledger: malformed note private key")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return "", errors.New("ledger: note private key is not Ed25519")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(parts[0], pub)
	if err != nil {
		return "", fmt.Errorf("ledger: %w", err)
	}
	// The signer must agree (its key hash covers name and key).
	if _, err := note.NewSigner(skey); err != nil {
		return "", fmt.Errorf("ledger: %w", err)
	}
	return vkey, nil
}

// LoadOrCreateKey returns the note signer key in the file path, creating
// it (a new Ed25519 key named name, mode 0600, written atomically) when
// the file does not exist. A key file readable by others, a symbolic
// link, or a key of another name is an error.
func LoadOrCreateKey(path, name string) (string, error) {
	if !hostRE.MatchString(name) {
		return "", fmt.Errorf("ledger: key name %q: want 1-128 of [A-Za-z0-9._/-]", name)
	}
	fi, err := os.Lstat(path)
	switch {
	case err == nil:
		if !fi.Mode().IsRegular() {
			return "", fmt.Errorf("ledger: key %s is not a regular file", path)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return "", fmt.Errorf("ledger: key %s is mode %v: want 0600", path, fi.Mode().Perm())
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("ledger: %w", err)
		}
		skey := strings.TrimSpace(string(b))
		s, err := note.NewSigner(skey)
		if err != nil {
			return "", fmt.Errorf("ledger: key %s: %w", path, err)
		}
		if s.Name() != name {
			return "", fmt.Errorf("ledger: key %s is named %q, want %q", path, s.Name(), name)
		}
		return skey, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("ledger: %w", err)
	}
	skey, _, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		return "", fmt.Errorf("ledger: generate key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("ledger: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".key-*")
	if err != nil {
		return "", fmt.Errorf("ledger: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(skey + "\n"); err != nil {
		tmp.Close()
		return "", fmt.Errorf("ledger: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", fmt.Errorf("ledger: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("ledger: %w", err)
	}
	// Link, not rename: a concurrent creator's key is never replaced.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return LoadOrCreateKey(path, name)
		}
		return "", fmt.Errorf("ledger: %w", err)
	}
	return skey, nil
}
