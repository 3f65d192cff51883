package witness

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/tlog"
)

const (
	// MaxRequestSize bounds an add-checkpoint request body.
	MaxRequestSize = 64 << 10
	// MaxProofLines bounds the consistency proof of one request (C2SP
	// tlog-witness: clients send at most 63 lines).
	MaxProofLines = 63
	// MaxCheckpointLines bounds a checkpoint body: origin, size, root and
	// extension lines.
	MaxCheckpointLines = 64
)

// addRequest is a parsed add-checkpoint body.
type addRequest struct {
	old   int64
	proof tlog.TreeProof
	note  []byte // signed checkpoint note, not yet verified
}

// parseAddCheckpoint parses "old <size>\n", at most MaxProofLines base64
// hashes, one empty line and the signed checkpoint. It checks syntax only.
func parseAddCheckpoint(body []byte) (addRequest, error) {
	var req addRequest
	if len(body) > MaxRequestSize {
		return req, fmt.Errorf("add-checkpoint request larger than %d bytes", MaxRequestSize)
	}
	line, rest, ok := bytes.Cut(body, []byte("\n"))
	if !ok {
		return req, errors.New("add-checkpoint request has no old size line")
	}
	num, ok := bytes.CutPrefix(line, []byte("old "))
	if !ok {
		return req, errors.New("add-checkpoint old size line malformed")
	}
	old, err := parseSize(string(num))
	if err != nil {
		return req, fmt.Errorf("add-checkpoint old size: %w", err)
	}
	req.old = old
	for {
		line, rest, ok = bytes.Cut(rest, []byte("\n"))
		if !ok {
			return req, errors.New("add-checkpoint request has no empty line before the checkpoint")
		}
		if len(line) == 0 {
			break
		}
		if len(req.proof) == MaxProofLines {
			return req, fmt.Errorf("add-checkpoint proof longer than %d lines", MaxProofLines)
		}
		h, err := parseHash(string(line))
		if err != nil {
			return req, fmt.Errorf("add-checkpoint proof line %d: %w", len(req.proof)+1, err)
		}
		req.proof = append(req.proof, h)
	}
	if len(rest) == 0 {
		return req, errors.New("add-checkpoint request has no checkpoint")
	}
	req.note = rest
	return req, nil
}

// formatAddCheckpoint is the inverse of parseAddCheckpoint.
func formatAddCheckpoint(old int64, proof tlog.TreeProof, signedNote []byte) []byte {
	b := fmt.Appendf(nil, "old %d\n", old)
	for _, h := range proof {
		b = append(b, h.String()...)
		b = append(b, '\n')
	}
	b = append(b, '\n')
	return append(b, signedNote...)
}

// checkpoint is a parsed C2SP tlog-checkpoint body.
type checkpoint struct {
	Origin string
	Size   int64
	Hash   tlog.Hash
}

// parseCheckpoint parses "<origin>\n<size>\n<base64 root>\n" followed by
// optional non-empty extension lines.
func parseCheckpoint(text string) (checkpoint, error) {
	var cp checkpoint
	if len(text) > MaxRequestSize {
		return cp, errors.New("checkpoint too large")
	}
	if !strings.HasSuffix(text, "\n") || !utf8.ValidString(text) {
		return cp, errors.New("checkpoint must be UTF-8 text ending in a newline")
	}
	lines := strings.Split(text[:len(text)-1], "\n")
	if len(lines) < 3 {
		return cp, errors.New("checkpoint has fewer than three lines")
	}
	if len(lines) > MaxCheckpointLines {
		return cp, fmt.Errorf("checkpoint has more than %d lines", MaxCheckpointLines)
	}
	for _, l := range lines {
		if l == "" {
			return cp, errors.New("checkpoint has an empty line")
		}
		for _, r := range l {
			if r < 0x20 || r == 0x7f {
				return cp, errors.New("checkpoint has a control character")
			}
		}
	}
	cp.Origin = lines[0]
	size, err := parseSize(lines[1])
	if err != nil {
		return cp, fmt.Errorf("checkpoint size: %w", err)
	}
	cp.Size = size
	if cp.Hash, err = parseHash(lines[2]); err != nil {
		return cp, fmt.Errorf("checkpoint root hash: %w", err)
	}
	return cp, nil
}

// parseOrigin returns the first line of an unverified note, to pick the
// keys that must verify it.
func parseOrigin(signedNote []byte) (string, error) {
	line, _, ok := bytes.Cut(signedNote, []byte("\n"))
	if !ok || len(line) == 0 || !utf8.Valid(line) {
		return "", errors.New("checkpoint origin line missing or malformed")
	}
	return string(line), nil
}

// parseSize parses a decimal int64 without sign or leading zeros.
func parseSize(s string) (int64, error) {
	if s == "" || len(s) > 19 || (s[0] == '0' && s != "0") {
		return 0, fmt.Errorf("size %q not canonical decimal", s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("size %q not canonical decimal", s)
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q out of range", s)
	}
	return n, nil
}

// parseHash parses canonical base64 of exactly tlog.HashSize bytes.
func parseHash(s string) (tlog.Hash, error) {
	var h tlog.Hash
	if len(s) != base64.StdEncoding.EncodedLen(tlog.HashSize) {
		return h, errors.New("hash is not 44 characters of base64")
	}
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != tlog.HashSize {
		return h, errors.New("hash is not canonical base64 of 32 bytes")
	}
	copy(h[:], b)
	return h, nil
}
