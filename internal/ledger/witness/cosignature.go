package witness

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
)

// AlgCosignatureV1 is the signed-note signature type byte of an Ed25519
// cosignature/v1 key (C2SP tlog-cosignature).
const AlgCosignatureV1 = 0x04

// maxKeyLen bounds an encoded signer or verifier key.
const maxKeyLen = 1024

// cosigSize is the length of a cosignature/v1 signature after the key ID:
// an 8-byte big-endian timestamp and a 64-byte Ed25519 signature.
const cosigSize = 8 + ed25519.SignatureSize

// GenerateKey returns a new cosignature/v1 signer key
// ("PRIVATE+KEY+<name>+<hex key ID>+<base64(0x04||seed)>") and its verifier key
// ("<name>+<hex key ID>+<base64(0x04||public key)>").
func GenerateKey(rand io.Reader, name string) (skey, vkey string, err error) {
	if !validKeyName(name) {
		return "", "", fmt.Errorf("cosigner name %q invalid", name)
	}
	pub, priv, err := ed25519.GenerateKey(rand)
	if err != nil {
		return "", "", fmt.Errorf("cosigner key generation: %w", err)
	}
	id := cosignatureKeyID(name, pub)
	skey = fmt.Sprintf("PRIVATE+KEY+%s+%08x+%s", name, id, base64.StdEncoding.EncodeToString(append([]byte{AlgCosignatureV1}, priv.Seed()...)))
	return skey, VerifierKey(name, pub), nil
}

// VerifierKey encodes an Ed25519 public key as a cosignature/v1 verifier key.
// name must be a valid key name.
func VerifierKey(name string, pub ed25519.PublicKey) string {
	return fmt.Sprintf("%s+%08x+%s", name, cosignatureKeyID(name, pub), base64.StdEncoding.EncodeToString(append([]byte{AlgCosignatureV1}, pub...)))
}

// Cosigner produces cosignature/v1 signatures. It implements note.Signer,
// stamping each signature with the time from its clock.
type Cosigner struct {
	name string
	id   uint32
	key  ed25519.PrivateKey
	now  func() time.Time
}

// NewCosigner parses a signer key made by GenerateKey. The cosigner's clock is
// time.Now; the Witness stamps with its own clock through SignAt.
func NewCosigner(skey string) (*Cosigner, error) {
	if len(skey) > maxKeyLen {
		return nil, errors.New("cosigner key too long")
	}
	rest, ok := strings.CutPrefix(skey, "PRIVATE+KEY+")
	if !ok {
		return nil, errors.New("cosigner key malformed: missing PRIVATE+KEY prefix")
	}
	name, id, key, err := splitKey(rest)
	if err != nil {
		return nil, fmt.Errorf("cosigner key malformed: %w", err)
	}
	if len(key) != 1+ed25519.SeedSize || key[0] != AlgCosignatureV1 {
		return nil, errors.New("cosigner key malformed: not a cosignature/v1 Ed25519 key")
	}
	priv := ed25519.NewKeyFromSeed(key[1:])
	if cosignatureKeyID(name, priv.Public().(ed25519.PublicKey)) != id {
		return nil, errors.New("cosigner key ID does not match its key")
	}
	return &Cosigner{name: name, id: id, key: priv, now: time.Now}, nil
}

// Name returns the cosigner's key name.
func (c *Cosigner) Name() string { return c.name }

// KeyHash returns the cosigner's key ID.
func (c *Cosigner) KeyHash() uint32 { return c.id }

// VerifierKey returns the cosigner's verifier key.
func (c *Cosigner) VerifierKey() string {
	return VerifierKey(c.name, c.key.Public().(ed25519.PublicKey))
}

// Sign returns timestamp||signature over the cosignature/v1 message for the
// note text msg, at the current time.
func (c *Cosigner) Sign(msg []byte) ([]byte, error) { return c.SignAt(msg, c.now()) }

// SignAt is Sign at time t (truncated to whole seconds, never before 1970).
func (c *Cosigner) SignAt(msg []byte, t time.Time) ([]byte, error) {
	if len(msg) == 0 || msg[len(msg)-1] != '\n' {
		return nil, errors.New("cosigned text must end with a newline")
	}
	ts := t.Unix()
	if ts < 0 {
		return nil, fmt.Errorf("cosignature time %v before 1970", t)
	}
	sig := make([]byte, 8, cosigSize)
	binary.BigEndian.PutUint64(sig, uint64(ts))
	return append(sig, ed25519.Sign(c.key, cosignedMessage(msg, uint64(ts)))...), nil
}

// signatureLine returns the note signature line "— <name> <base64>\n" for text at t.
func (c *Cosigner) signatureLine(text []byte, t time.Time) ([]byte, error) {
	sig, err := c.SignAt(text, t)
	if err != nil {
		return nil, err
	}
	raw := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(sig)), c.id)
	raw = append(raw, sig...)
	return fmt.Appendf(nil, "— %s %s\n", c.name, base64.StdEncoding.EncodeToString(raw)), nil
}

// NewCosignatureVerifier parses a cosignature/v1 verifier key. The returned
// note.Verifier reconstructs the signed message from the note text and the
// timestamp in the signature, so a changed timestamp or text fails.
func NewCosignatureVerifier(vkey string) (note.Verifier, error) {
	if len(vkey) > maxKeyLen {
		return nil, errors.New("cosignature verifier key too long")
	}
	name, id, key, err := splitKey(vkey)
	if err != nil {
		return nil, fmt.Errorf("cosignature verifier key malformed: %w", err)
	}
	if len(key) != 1+ed25519.PublicKeySize || key[0] != AlgCosignatureV1 {
		return nil, errors.New("cosignature verifier key malformed: not a cosignature/v1 Ed25519 key")
	}
	pub := ed25519.PublicKey(key[1:])
	if cosignatureKeyID(name, pub) != id {
		return nil, errors.New("cosignature verifier key ID does not match its key")
	}
	return &cosigVerifier{name: name, id: id, pub: pub}, nil
}

type cosigVerifier struct {
	name string
	id   uint32
	pub  ed25519.PublicKey
}

func (v *cosigVerifier) Name() string    { return v.name }
func (v *cosigVerifier) KeyHash() uint32 { return v.id }

func (v *cosigVerifier) Verify(msg, sig []byte) bool {
	if len(sig) != cosigSize {
		return false
	}
	ts := binary.BigEndian.Uint64(sig[:8])
	if ts > math.MaxInt64 {
		return false
	}
	return ed25519.Verify(v.pub, cosignedMessage(msg, ts), sig[8:])
}

// cosignedMessage is "cosignature/v1\ntime <ts>\n" followed by the note text.
func cosignedMessage(text []byte, ts uint64) []byte {
	m := make([]byte, 0, 40+len(text))
	m = append(m, "cosignature/v1\ntime "...)
	m = strconv.AppendUint(m, ts, 10)
	m = append(m, '\n')
	return append(m, text...)
}

// cosignatureKeyID is SHA-256(name || "\n" || 0x04 || pub)[:4].
func cosignatureKeyID(name string, pub ed25519.PublicKey) uint32 {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{'\n', AlgCosignatureV1})
	h.Write(pub)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

// splitKey parses "<name>+<8 lowercase hex>+<canonical base64>".
func splitKey(s string) (name string, id uint32, key []byte, err error) {
	if strings.ContainsAny(s, "\r\n") {
		return "", 0, nil, errors.New("key contains a line break")
	}
	parts := strings.SplitN(s, "+", 3)
	if len(parts) != 3 {
		return "", 0, nil, errors.New("want name+keyid+key")
	}
	name = parts[0]
	if !validKeyName(name) {
		return "", 0, nil, fmt.Errorf("key name %q invalid", name)
	}
	if len(parts[1]) != 8 || strings.ToLower(parts[1]) != parts[1] {
		return "", 0, nil, errors.New("key ID must be 8 lowercase hex digits")
	}
	idb, err := hex.DecodeString(parts[1])
	if err != nil {
		return "", 0, nil, errors.New("key ID must be 8 lowercase hex digits")
	}
	key, err = base64.StdEncoding.Strict().DecodeString(parts[2])
	if err != nil || len(key) == 0 {
		return "", 0, nil, errors.New("key is not canonical base64")
	}
	return name, binary.BigEndian.Uint32(idb), key, nil
}

// validKeyName follows signed-note: non-empty UTF-8 without spaces or '+'.
func validKeyName(name string) bool {
	return name != "" && len(name) <= 255 && utf8.ValidString(name) &&
		strings.IndexFunc(name, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) < 0 &&
		!strings.Contains(name, "+")
}
