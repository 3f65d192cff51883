package smime

import (
	"bufio"
	"bytes"
	"crypto"
	"encoding/base64"
	"fmt"
	"mime"
	"net/textproto"
	"strings"
)

// maxSignatureSize bounds the decoded PKCS#7 part; real ones are a few KiB.
const maxSignatureSize = 1 << 20

// Message is a split, not yet verified, S/MIME signed message.
type Message struct {
	Protocol string      // the protocol parameter, lower case
	MicAlg   string      // the micalg parameter, lower case
	Hash     crypto.Hash // the digest micalg names
	// Content is the first part exactly as it was signed (canonical CRLF).
	// It is NOT verified: use Verify before trusting a byte of it.
	Content   []byte
	Signature []byte // DER PKCS#7 SignedData from the second part
}

var micalgs = map[string]crypto.Hash{
	"sha1": crypto.SHA1, "sha-1": crypto.SHA1,
	"sha-224": crypto.SHA224, "sha224": crypto.SHA224,
	"sha-256": crypto.SHA256, "sha256": crypto.SHA256,
	"sha-384": crypto.SHA384, "sha384": crypto.SHA384,
	"sha-512": crypto.SHA512, "sha512": crypto.SHA512,
}

func micalgName(h crypto.Hash) string {
	switch h {
	case crypto.SHA1:
		return "sha1"
	case crypto.SHA224:
		return "sha-224"
	case crypto.SHA256:
		return "sha-256"
	case crypto.SHA384:
		return "sha-384"
	case crypto.SHA512:
		return "sha-512"
	}
	return ""
}

func isSignatureType(t string) bool {
	return t == "application/x-pkcs7-signature" || t == "application/pkcs7-signature"
}

// Split parses a signed message into its signed content and its signature.
func Split(raw []byte) (*Message, error) {
	if len(raw) > MaxMessageSize {
		return nil, fmt.Errorf("%w: %d bytes, more than the limit of %d", ErrTooLarge, len(raw), MaxMessageSize)
	}
	if len(raw) == 0 {
		return nil, fmt.Errorf("%w: empty input", ErrMalformed)
	}
	trimmed := bytes.TrimLeft(raw, " \t\r\n")
	if len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[') {
		return nil, fmt.Errorf("%w: the input is plain JSON, an unsigned list", ErrUnsigned)
	}
	hdrEnd, bodyStart := headerEnd(raw)
	if hdrEnd < 0 {
		return nil, fmt.Errorf("%w: no blank line after the MIME headers (truncated?)", ErrMalformed)
	}
	hdr, err := readHeader(raw[:hdrEnd])
	if err != nil {
		return nil, fmt.Errorf("%w: message headers: %v", ErrMalformed, err)
	}
	ct := hdr.Get("Content-Type")
	if ct == "" {
		return nil, fmt.Errorf("%w: no Content-Type header", ErrUnsigned)
	}
	mediatype, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return nil, fmt.Errorf("%w: Content-Type %q: %v", ErrMalformed, ct, err)
	}
	if mediatype != "multipart/signed" {
		return nil, fmt.Errorf("%w: Content-Type is %s, not multipart/signed", ErrUnsigned, mediatype)
	}
	m := &Message{
		Protocol: strings.ToLower(params["protocol"]),
		MicAlg:   strings.ToLower(params["micalg"]),
	}
	if !isSignatureType(m.Protocol) {
		return nil, fmt.Errorf("%w: protocol %q, want application/x-pkcs7-signature or application/pkcs7-signature", ErrUnsupported, params["protocol"])
	}
	h, ok := micalgs[m.MicAlg]
	if !ok {
		return nil, fmt.Errorf("%w: micalg %q, want one of sha1, sha-256, sha-384, sha-512", ErrUnsupported, params["micalg"])
	}
	m.Hash = h
	boundary := params["boundary"]
	if err := checkBoundary(boundary); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}

	parts, err := splitParts(raw[bodyStart:], boundary)
	if err != nil {
		return nil, err
	}
	m.Content = Canonicalize(parts[0])
	sig, err := signaturePart(parts[1])
	if err != nil {
		return nil, err
	}
	m.Signature = sig
	return m, nil
}

// headerEnd finds the blank line that ends a header block. It returns the
// end of the headers and the start of what follows, or -1.
func headerEnd(b []byte) (int, int) {
	i := 0
	for i < len(b) {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1, -1
		}
		line := b[i : i+j]
		if len(bytes.TrimRight(line, "\r")) == 0 {
			return i, i + j + 1
		}
		i += j + 1
	}
	return -1, -1
}

func readHeader(b []byte) (textproto.MIMEHeader, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, fmt.Errorf("no headers")
	}
	r := textproto.NewReader(bufio.NewReader(bytes.NewReader(append(append([]byte{}, b...), "\r\n"...))))
	return r.ReadMIMEHeader()
}

// checkBoundary applies RFC 2046's grammar: 1 to 70 bchars, not ending in
// a space.
func checkBoundary(b string) error {
	if b == "" {
		return fmt.Errorf("multipart/signed without a boundary parameter")
	}
	if len(b) > 70 || strings.HasSuffix(b, " ") {
		return fmt.Errorf("boundary %q is not valid (RFC 2046: 1-70 characters, no trailing space)", b)
	}
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || strings.ContainsRune("'()+_,-./:=? ", c)) {
			return fmt.Errorf("boundary %q has the character %q, not allowed by RFC 2046", b, c)
		}
	}
	return nil
}

// splitParts returns the two body parts between the delimiters. The line
// ending before each delimiter belongs to the delimiter.
func splitParts(body []byte, boundary string) ([][]byte, error) {
	delim := []byte("--" + boundary)
	var parts [][]byte
	start := -1 // start of the current part, -1 in the preamble
	closed := false
	for i := 0; i < len(body); {
		j := bytes.IndexByte(body[i:], '\n')
		end := len(body)
		next := len(body)
		if j >= 0 {
			end = i + j
			next = end + 1
		}
		line := bytes.TrimRight(body[i:end], " \t\r")
		if bytes.HasPrefix(line, delim) {
			rest := line[len(delim):]
			isClose := bytes.Equal(rest, []byte("--"))
			if len(rest) == 0 || isClose {
				if start >= 0 {
					partEnd := i
					if partEnd > start && body[partEnd-1] == '\n' {
						partEnd--
						for partEnd > start && body[partEnd-1] == '\r' {
							partEnd--
						}
					}
					parts = append(parts, body[start:partEnd])
				}
				if isClose {
					closed = true
					break
				}
				if len(parts) >= 2 {
					return nil, fmt.Errorf("%w: more than two body parts in multipart/signed", ErrMalformed)
				}
				start = next
				if j < 0 {
					start = len(body)
				}
			}
		}
		i = next
	}
	switch {
	case start < 0:
		return nil, fmt.Errorf("%w: no body part starts with the boundary %q", ErrMalformed, boundary)
	case !closed:
		return nil, fmt.Errorf("%w: no closing delimiter --%s-- (truncated?)", ErrMalformed, boundary)
	case len(parts) != 2:
		return nil, fmt.Errorf("%w: %d body parts, want exactly 2 (content and signature)", ErrMalformed, len(parts))
	}
	return parts, nil
}

func signaturePart(part []byte) ([]byte, error) {
	hdrEnd, bodyStart := headerEnd(part)
	if hdrEnd < 0 {
		return nil, fmt.Errorf("%w: signature part has no headers", ErrMalformed)
	}
	hdr, err := readHeader(part[:hdrEnd])
	if err != nil {
		return nil, fmt.Errorf("%w: signature part headers: %v", ErrMalformed, err)
	}
	mt, _, err := mime.ParseMediaType(hdr.Get("Content-Type"))
	if err != nil || !isSignatureType(mt) {
		return nil, fmt.Errorf("%w: signature part Content-Type %q, want application/x-pkcs7-signature", ErrUnsupported, hdr.Get("Content-Type"))
	}
	if cte := strings.ToLower(strings.TrimSpace(hdr.Get("Content-Transfer-Encoding"))); cte != "base64" {
		return nil, fmt.Errorf("%w: signature part Content-Transfer-Encoding %q, want base64", ErrUnsupported, cte)
	}
	b64 := part[bodyStart:]
	if base64.StdEncoding.DecodedLen(len(b64)) > maxSignatureSize+maxSignatureSize/2 {
		return nil, fmt.Errorf("%w: signature part larger than %d bytes", ErrTooLarge, maxSignatureSize)
	}
	clean := make([]byte, 0, len(b64))
	for _, c := range b64 {
		switch c {
		case ' ', '\t', '\r', '\n':
		default:
			clean = append(clean, c)
		}
	}
	der := make([]byte, base64.StdEncoding.DecodedLen(len(clean)))
	n, err := base64.StdEncoding.Strict().Decode(der, clean)
	if err != nil {
		return nil, fmt.Errorf("%w: signature part is not valid base64: %v", ErrMalformed, err)
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: signature part is empty", ErrMalformed)
	}
	if n > maxSignatureSize {
		return nil, fmt.Errorf("%w: signature of %d bytes, more than %d", ErrTooLarge, n, maxSignatureSize)
	}
	return der[:n], nil
}

// Canonicalize converts text to the canonical form S/MIME signs: each line's
// trailing run of CR and LF becomes one CRLF, as OpenSSL's SMIME_crlf_copy
// does. Text that does not end in a newline still does not.
func Canonicalize(b []byte) []byte {
	if isCanonical(b) {
		return b
	}
	out := make([]byte, 0, len(b)+len(b)/32)
	for len(b) > 0 {
		j := bytes.IndexByte(b, '\n')
		if j < 0 {
			out = append(out, b...)
			break
		}
		out = append(out, bytes.TrimRight(b[:j], "\r")...)
		out = append(out, '\r', '\n')
		b = b[j+1:]
	}
	return out
}

// isCanonical reports whether every line of b already ends in exactly one
// CR before its LF, the common case for a signed list, so Canonicalize can
// return it without a copy.
func isCanonical(b []byte) bool {
	for i := bytes.IndexByte(b, '\n'); i >= 0; {
		if i == 0 || b[i-1] != '\r' || (i >= 2 && b[i-2] == '\r') {
			return false
		}
		j := bytes.IndexByte(b[i+1:], '\n')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return true
}
