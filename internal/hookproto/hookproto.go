// Package hookproto is the wire format between vmtrust-hook, the small
// program libvirtd runs as its qemu hook, and the admission service
// ('vmtrust hook serve') that takes the decision in a long-running process:
// one request and one response per connection over a Unix socket, each a
// 4-byte big-endian length followed by that many bytes of JSON.
//
// # Guarantees
//
// Read is bounded: a length above the limit the caller gives, a short
// message, JSON that is not one object of the expected shape, or unknown
// fields are errors, and nothing beyond the length is read. The package
// imports only the standard library and has no init work, so that the hook
// program starts fast.
package hookproto

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Limits.
const (
	MaxArgs     = 8
	MaxArgLen   = 4096
	MaxStdin    = 4 << 20 // libvirt's domain XML; admission refuses more
	MaxRequest  = MaxStdin*4/3 + 64<<10
	MaxResponse = 64 << 10
)

// Request is one hook invocation: libvirt's arguments (domain name,
// operation, sub-operation, extra) and what it wrote on stdin.
type Request struct {
	Args  []string `json:"args"`
	Stdin []byte   `json:"stdin"`
}

// Response is what the hook program must do: print Stderr and exit with
// Exit.
type Response struct {
	Exit   int    `json:"exit"`
	Stderr string `json:"stderr"`
}

// Validate checks r's bounds.
func (r *Request) Validate() error {
	if len(r.Args) < 3 || len(r.Args) > MaxArgs {
		return fmt.Errorf("hookproto: %d arguments, want 3 to %d", len(r.Args), MaxArgs)
	}
	for _, a := range r.Args {
		if len(a) > MaxArgLen {
			return fmt.Errorf("hookproto: argument longer than %d bytes", MaxArgLen)
		}
	}
	if len(r.Stdin) > MaxStdin {
		return fmt.Errorf("hookproto: stdin larger than %d bytes", MaxStdin)
	}
	return nil
}

// Write sends v as one message.
func Write(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("hookproto: %w", err)
	}
	msg := make([]byte, 4+len(b))
	binary.BigEndian.PutUint32(msg, uint32(len(b)))
	copy(msg[4:], b)
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("hookproto: %w", err)
	}
	return nil
}

// Read reads one message of at most max bytes into v.
func Read(r io.Reader, v any, max int) error {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return fmt.Errorf("hookproto: header: %w", err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if int64(n) > int64(max) {
		return fmt.Errorf("hookproto: message of %d bytes, limit %d", n, max)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return fmt.Errorf("hookproto: body: %w", err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("hookproto: %w", err)
	}
	if d.More() {
		return errors.New("hookproto: data after the message")
	}
	return nil
}

// ReadRequest reads and validates a request.
func ReadRequest(r io.Reader) (Request, error) {
	var q Request
	if err := Read(r, &q, MaxRequest); err != nil {
		return Request{}, err
	}
	return q, q.Validate()
}

// ReadResponse reads a response.
func ReadResponse(r io.Reader) (Response, error) {
	var p Response
	err := Read(r, &p, MaxResponse)
	return p, err
}
