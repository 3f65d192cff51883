package witness

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const (
	// MaxResponseSize bounds a witness response read by AddCheckpoint.
	MaxResponseSize = 16 << 10
	// maxCosignatures bounds the signature lines of a response (note.Open
	// accepts at most 100 signatures per note).
	maxCosignatures = 16
)

// ConflictError is a 409 from a witness whose latest cosigned size for the
// origin is Size: retry with a consistency proof from Size.
type ConflictError struct {
	Size int64
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("witness conflict: its latest cosigned size is %d", e.Size)
}

// StatusError is any other refusal by a witness.
type StatusError struct {
	Code int
	Body string // at most 256 bytes, printable
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("witness refused checkpoint: %d %s: %s", e.Code, http.StatusText(e.Code), e.Body)
}

// AddCheckpoint asks the witness at the submission prefix url to cosign
// signedNote, proving consistency from oldSize. It returns the response's
// signature lines, checked for syntax only: verify them with
// MergeCosignatures. A size conflict is a *ConflictError, other refusals a
// *StatusError.
func AddCheckpoint(ctx context.Context, client *http.Client, url string, oldSize int64, proof tlog.TreeProof, signedNote []byte) ([]byte, error) {
	if client == nil {
		return nil, errors.New("witness client is nil")
	}
	if oldSize < 0 || len(proof) > MaxProofLines || (oldSize == 0 && len(proof) != 0) {
		return nil, fmt.Errorf("witness request: old size %d with %d proof hashes invalid", oldSize, len(proof))
	}
	body := formatAddCheckpoint(oldSize, proof, signedNote)
	if len(body) > MaxRequestSize {
		return nil, fmt.Errorf("witness request larger than %d bytes", MaxRequestSize)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(url, "/")+"/add-checkpoint", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("witness request: %w", err)
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("witness request: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseSize+1))
	if err != nil {
		return nil, fmt.Errorf("witness response: %w", err)
	}
	if len(data) > MaxResponseSize {
		return nil, fmt.Errorf("witness response larger than %d bytes", MaxResponseSize)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		if err := checkSignatureLines(data); err != nil {
			return nil, fmt.Errorf("witness response: %w", err)
		}
		return data, nil
	case http.StatusConflict:
		if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == SizeContentType {
			num, ok := bytes.CutSuffix(data, []byte("\n"))
			size, err := parseSize(string(num))
			if !ok || err != nil {
				return nil, errors.New("witness response: 409 size body malformed")
			}
			return nil, &ConflictError{Size: size}
		}
	}
	return nil, &StatusError{Code: resp.StatusCode, Body: printable(data, 256)}
}

// checkSignatureLines checks 1..maxCosignatures lines "— <name> <base64>\n".
func checkSignatureLines(data []byte) error {
	if len(data) == 0 || data[len(data)-1] != '\n' {
		return errors.New("signature lines must end in a newline")
	}
	lines := strings.Split(string(data[:len(data)-1]), "\n")
	if len(lines) > maxCosignatures {
		return fmt.Errorf("more than %d signature lines", maxCosignatures)
	}
	for _, l := range lines {
		rest, ok := strings.CutPrefix(l, "— ")
		name, b64, ok2 := strings.Cut(rest, " ")
		if !ok || !ok2 || !validKeyName(name) {
			return errors.New("signature line malformed")
		}
		raw, err := base64.StdEncoding.Strict().DecodeString(b64)
		if err != nil || len(raw) < 5 || strings.ContainsAny(b64, "\r") {
			return errors.New("signature line malformed")
		}
	}
	return nil
}

// MergeCosignatures verifies cosigLines against the trusted witness keys and
// returns signedNote with the verified lines appended (lines from unknown
// keys, and lines already present, are dropped). It fails if no line
// verifies. note.Open of the result with the log's and the witnesses'
// verifiers then checks both.
func MergeCosignatures(signedNote, cosigLines []byte, witnesses note.Verifiers) ([]byte, error) {
	if err := checkSignatureLines(cosigLines); err != nil {
		return nil, fmt.Errorf("cosignatures: %w", err)
	}
	if len(signedNote) < 2 || signedNote[len(signedNote)-1] != '\n' {
		return nil, errors.New("cosignatures: signed note malformed")
	}
	n, err := note.Open(append(bytes.Clone(signedNote), cosigLines...), witnesses)
	if err != nil {
		return nil, fmt.Errorf("cosignatures: %w", err)
	}
	out := bytes.Clone(signedNote)
	for _, s := range n.Sigs {
		line := fmt.Sprintf("— %s %s\n", s.Name, s.Base64)
		if bytes.Contains(signedNote, []byte(line)) {
			continue
		}
		out = append(out, line...)
	}
	return out, nil
}

func printable(b []byte, max int) string {
	if len(b) > max {
		b = b[:max]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '\uFFFD' {
			return ' '
		}
		return r
	}, strings.TrimSpace(string(b)))
}
