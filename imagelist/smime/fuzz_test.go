package smime_test

import (
	"bytes"
	"crypto"
	"os"
	"testing"

	"github.com/vmtrust/vmtrust/imagelist/smime"
)

// FuzzSplit: the MIME splitter never panics, returns nothing with an error,
// and hands out only canonical content and a non-empty signature.
func FuzzSplit(f *testing.F) {
	if raw, err := os.ReadFile("../../../shared/testdata/imagelists/cloudkeeper/imagelist01.signed"); err == nil {
		f.Add(raw)
	}
	f.Add([]byte("MIME-Version: 1.0\nContent-Type: multipart/signed; protocol=\"application/x-pkcs7-signature\"; micalg=\"sha-256\"; boundary=\"b\"\n\n--b\n{}\n--b\nContent-Type: application/x-pkcs7-signature\nContent-Transfer-Encoding: base64\n\nMAA=\n--b--\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := smime.Split(data)
		if err != nil {
			if m != nil {
				t.Fatal("Split returned a message with an error")
			}
			return
		}
		if !bytes.Equal(smime.Canonicalize(m.Content), m.Content) {
			t.Fatalf("content %q is not canonical", m.Content)
		}
		if len(m.Signature) == 0 || m.Hash == 0 {
			t.Fatalf("accepted message without signature or digest: %+v", m)
		}
	})
}

// FuzzVerify: the PKCS#7 path never panics on hostile DER and never returns
// a signature with an error.
func FuzzVerify(f *testing.F) {
	if raw, err := os.ReadFile("../../../shared/testdata/imagelists/cloudkeeper/imagelist01.signed"); err == nil {
		if m, err := smime.Split(raw); err == nil {
			f.Add(m.Signature)
		}
	}
	f.Add([]byte{0x30, 0x80, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		m := &smime.Message{Protocol: "application/x-pkcs7-signature", MicAlg: "sha-256", Hash: crypto.SHA256,
			Content: []byte("{}\r\n"), Signature: der}
		sig, err := smime.Verify(m)
		if err != nil && sig != nil {
			t.Fatal("Verify returned a signature with an error")
		}
		if err == nil && (sig == nil || sig.Signer == nil) {
			t.Fatal("Verify succeeded without a signer")
		}
	})
}
