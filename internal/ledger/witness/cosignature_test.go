package witness

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

func TestCosignatureFormat(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	name := "witness.example/w1"
	skey := "PRIVATE+KEY+" + name + "+" + hex8(specKeyID(name, pub)) + "+" + base64.StdEncoding.EncodeToString(append([]byte{4}, priv.Seed()...))
	c, err := NewCosigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	if c.KeyHash() != specKeyID(name, pub) || c.Name() != name {
		t.Fatalf("key ID %08x, want %08x", c.KeyHash(), specKeyID(name, pub))
	}
	if c.VerifierKey() != VerifierKey(name, pub) {
		t.Fatalf("verifier key mismatch")
	}
	text := "example.com/log\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
	at := time.Unix(1679315147, 999)
	line, err := c.signatureLine([]byte(text), at)
	if err != nil {
		t.Fatal(err)
	}
	prefix := "— " + name + " "
	if !bytes.HasPrefix(line, []byte(prefix)) || !bytes.HasSuffix(line, []byte("\n")) {
		t.Fatalf("line %q", line)
	}
	raw, err := base64.StdEncoding.DecodeString(string(line[len(prefix) : len(line)-1]))
	if err != nil || len(raw) != 4+8+64 {
		t.Fatalf("raw signature %d bytes, err %v", len(raw), err)
	}
	if binary.BigEndian.Uint32(raw) != specKeyID(name, pub) || binary.BigEndian.Uint64(raw[4:]) != 1679315147 {
		t.Fatalf("key ID or timestamp wrong: %x", raw[:12])
	}
	// Independent reconstruction of the signed message from the spec.
	msg := "cosignature/v1\ntime 1679315147\n" + text
	if !ed25519.Verify(pub, []byte(msg), raw[12:]) {
		t.Fatal("signature is not over the cosignature/v1 message")
	}
	if ed25519.Verify(pub, []byte(text), raw[12:]) {
		t.Fatal("signature verifies over the bare text: no domain separation")
	}
}

func hex8(v uint32) string {
	const digits = "0123456789abcdef"
	b := make([]byte, 8)
	for i := 7; i >= 0; i-- {
		b[i] = digits[v&15]
		v >>= 4
	}
	return string(b)
}

func specKeyID(name string, pub ed25519.PublicKey) uint32 {
	sum := sha256.Sum256(append(append([]byte(name+"\n"), 0x04), pub...))
	return binary.BigEndian.Uint32(sum[:4])
}

func TestCosignatureVerifyThroughNoteOpen(t *testing.T) {
	c, v := newCosigner(t, "witness.example/w1")
	_, other := newCosigner(t, "witness.example/w1")
	text := "example.com/log\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
	signed, err := note.Sign(&note.Note{Text: text}, c)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil || len(n.Sigs) != 1 || n.Text != text {
		t.Fatalf("note.Open = %v, %v", n, err)
	}
	// A different key under the same name is unknown, not verified.
	var unverified *note.UnverifiedNoteError
	if _, err := note.Open(signed, note.VerifierList(other)); !errors.As(err, &unverified) {
		t.Fatalf("other key: err %v, want UnverifiedNoteError", err)
	}

	sigLine := signed[len(text)+1:]
	prefix := len("— witness.example/w1 ")
	raw, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(string(sigLine[prefix:])))
	tamper := map[string]func([]byte) []byte{
		"timestamp +1": func(r []byte) []byte {
			binary.BigEndian.PutUint64(r[4:], binary.BigEndian.Uint64(r[4:])+1)
			return r
		},
		"timestamp > 2^63-1": func(r []byte) []byte { r[4] |= 0x80; return r },
		"signature bit":      func(r []byte) []byte { r[20] ^= 1; return r },
		"truncated":          func(r []byte) []byte { return r[:len(r)-1] },
		"extended":           func(r []byte) []byte { return append(r, 0) },
	}
	var invalid *note.InvalidSignatureError
	for name, f := range tamper {
		r := f(bytes.Clone(raw))
		msg := text + "\n— witness.example/w1 " + base64.StdEncoding.EncodeToString(r) + "\n"
		if _, err := note.Open([]byte(msg), note.VerifierList(v)); !errors.As(err, &invalid) {
			t.Errorf("%s: err %v, want InvalidSignatureError", name, err)
		}
	}
	// Same signature, different text.
	msg := strings.Replace(string(signed), "\n5\n", "\n6\n", 1)
	if _, err := note.Open([]byte(msg), note.VerifierList(v)); !errors.As(err, &invalid) {
		t.Errorf("changed text: err %v, want InvalidSignatureError", err)
	}
}

func TestCosignerClockAndBadTime(t *testing.T) {
	c, v := newCosigner(t, "w")
	if _, err := c.SignAt([]byte("x\n"), time.Unix(-1, 0)); err == nil {
		t.Error("negative time accepted")
	}
	if _, err := c.SignAt([]byte("no newline"), time.Unix(1, 0)); err == nil {
		t.Error("text without final newline accepted")
	}
	sig, err := c.Sign([]byte("x\n"))
	if err != nil || !v.Verify([]byte("x\n"), sig) {
		t.Fatalf("Sign/Verify: %v", err)
	}
	if d := time.Since(time.Unix(int64(binary.BigEndian.Uint64(sig)), 0)); d < 0 || d > time.Minute {
		t.Errorf("Sign timestamp off by %v", d)
	}
}

func TestKeyParsingHostile(t *testing.T) {
	skey, vkey, err := GenerateKey(rand.Reader, "witness.example/w1")
	if err != nil {
		t.Fatal(err)
	}
	noteS, noteV, err := note.GenerateKey(rand.Reader, "witness.example/w1")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := GenerateKey(rand.Reader, "bad name"); err == nil {
		t.Error("GenerateKey accepted a name with a space")
	}
	parts := strings.SplitN(vkey, "+", 3)
	flipID := parts[0] + "+" + hex8(^mustHex(t, parts[1])) + "+" + parts[2]
	badVkeys := map[string]string{
		"empty":             "",
		"no fields":         "witness",
		"two fields":        parts[0] + "+" + parts[1],
		"extra field":       vkey + "+x",
		"note ed25519 key":  noteV,
		"wrong key ID":      flipID,
		"short key ID":      parts[0] + "+" + parts[1][:7] + "+" + parts[2],
		"non-hex key ID":    parts[0] + "+zzzzzzzz+" + parts[2],
		"name with space":   "a b+" + parts[1] + "+" + parts[2],
		"empty name":        "+" + parts[1] + "+" + parts[2],
		"bad base64":        parts[0] + "+" + parts[1] + "+!!!!",
		"short key":         parts[0] + "+" + parts[1] + "+" + base64.StdEncoding.EncodeToString([]byte{4, 1, 2}),
		"line break in key": parts[0] + "+" + parts[1] + "+" + parts[2][:10] + "\n" + parts[2][10:],
		"too long":          strings.Repeat("a", 2000),
		"private key":       skey,
	}
	if up := strings.ToUpper(parts[1]); up != parts[1] {
		badVkeys["uppercase key ID"] = parts[0] + "+" + up + "+" + parts[2]
	}
	for name, k := range badVkeys {
		if _, err := NewCosignatureVerifier(k); err == nil {
			t.Errorf("verifier key %s: accepted", name)
		}
	}
	sp := strings.SplitN(skey, "+", 5)
	badSkeys := map[string]string{
		"empty":          "",
		"verifier key":   vkey,
		"note key":       noteS,
		"wrong key ID":   "PRIVATE+KEY+" + sp[2] + "+" + hex8(^mustHex(t, sp[3])) + "+" + sp[4],
		"renamed":        "PRIVATE+KEY+other+" + sp[3] + "+" + sp[4],
		"missing prefix": strings.TrimPrefix(skey, "PRIVATE+"),
	}
	for name, k := range badSkeys {
		if _, err := NewCosigner(k); err == nil {
			t.Errorf("signer key %s: accepted", name)
		}
	}
	if _, err := NewCosignatureVerifier(vkey); err != nil {
		t.Fatalf("valid verifier key refused: %v", err)
	}
	if _, err := NewCosigner(skey); err != nil {
		t.Fatalf("valid signer key refused: %v", err)
	}
}

func mustHex(t *testing.T, s string) uint32 {
	t.Helper()
	var v uint32
	for _, c := range s {
		v <<= 4
		switch {
		case c >= '0' && c <= '9':
			v |= uint32(c - '0')
		case c >= 'a' && c <= 'f':
			v |= uint32(c-'a') + 10
		default:
			t.Fatalf("not hex: %q", s)
		}
	}
	return v
}
