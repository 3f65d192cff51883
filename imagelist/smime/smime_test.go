package smime_test

import (
	"bytes"
	"crypto"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmtrust/vmtrust/imagelist/smime"
	"github.com/vmtrust/vmtrust/internal/pkitest"
	"github.com/vmtrust/vmtrust/internal/vmtest"
)

const content = "{\n  \"hv:imagelist\": {\n    \"dc:title\": \"round trip\"\n  }\n}\n"

type world struct {
	dir      string
	ca, user *pkitest.Identity
	caFile   string
	capath   string // hashed directory with the CA and its CRL, for -CApath
}

func newWorld(t *testing.T) *world {
	w := &world{dir: t.TempDir()}
	w.ca = pkitest.NewCA(t, "/DC=org/DC=vmtrust-test/CN=Round Trip CA", pkitest.Opts{RSA: true})
	w.user = w.ca.Issue(t, "/DC=org/DC=vmtrust-test/CN=Round Trip Endorser", false, pkitest.Opts{RSA: true})
	w.caFile = w.write(t, "ca.pem", w.ca.CertPEM())
	w.capath = pkitest.NewDir(t).AddCA(w.ca).AddCRL(w.ca, w.ca.CurrentCRL(t)).Path
	return w
}

func (w *world) write(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(w.dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func openssl(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	vmtest.Require(t, "openssl")
	var stderr bytes.Buffer
	cmd := exec.Command("openssl", args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, errors.New(strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// We sign; the real openssl smime -verify, with chain and CRL checks, accepts
// it and recovers exactly the canonical content.
func TestSignOpenSSLVerifies(t *testing.T) {
	w := newWorld(t)
	for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		t.Run(h.String(), func(t *testing.T) {
			signed, err := smime.Sign([]byte(content), w.user.Cert, w.user.Key, smime.SignOptions{Hash: h})
			if err != nil {
				t.Fatal(err)
			}
			in := w.write(t, "signed-"+h.String(), signed)
			outFile := filepath.Join(w.dir, "out-"+h.String())
			if _, err := openssl(t, "smime", "-verify", "-in", in, "-CApath", w.capath, "-crl_check", "-out", outFile); err != nil {
				t.Fatalf("openssl smime -verify rejected our signature: %v", err)
			}
			out, err := os.ReadFile(outFile)
			if err != nil {
				t.Fatal(err)
			}
			if want := smime.Canonicalize([]byte(content)); !bytes.Equal(out, want) {
				t.Fatalf("openssl recovered %q, want %q", out, want)
			}
			// openssl really consulted the CRL: without one, -crl_check fails.
			noCRL := pkitest.NewDir(t).AddCA(w.ca).Path
			if _, err := openssl(t, "smime", "-verify", "-in", in, "-CApath", noCRL, "-crl_check", "-purpose", "any", "-out", os.DevNull); err == nil {
				t.Fatal("openssl -crl_check accepted the list without a CRL: the CRL check above proves nothing")
			}
			// And a single changed byte makes openssl refuse it too.
			bad := w.write(t, "bad-"+h.String(), bytes.Replace(signed, []byte("round trip"), []byte("round trap"), 1))
			if _, err := openssl(t, "smime", "-verify", "-in", bad, "-CAfile", w.caFile, "-purpose", "any", "-out", os.DevNull); err == nil {
				t.Fatal("openssl accepted a tampered list: the test cannot tell anything")
			}
		})
	}
}

// openssl signs, in text and binary modes and with older digests; we verify.
func TestOpenSSLSignWeVerify(t *testing.T) {
	w := newWorld(t)
	cert := w.write(t, "user.pem", w.user.CertPEM())
	key := w.write(t, "user.key", w.user.KeyPEM(t))
	cases := []struct {
		name  string
		input string
		args  []string
	}{
		{"sha256 LF input", content, []string{"-md", "sha256"}},
		{"sha256 CRLF input", strings.ReplaceAll(content, "\n", "\r\n"), []string{"-md", "sha256"}},
		{"sha512", content, []string{"-md", "sha512"}},
		{"sha1 (old lists)", content, []string{"-md", "sha1"}},
		{"no trailing newline", strings.TrimSuffix(content, "\n"), []string{"-md", "sha256"}},
		{"with chain certificate", content, []string{"-md", "sha256", "-certfile", w.caFile}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := w.write(t, "in.json", []byte(tc.input))
			signed, err := openssl(t, append([]string{"smime", "-sign", "-in", in, "-signer", cert, "-inkey", key}, tc.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			got, sig, err := smime.Open(signed)
			if err != nil {
				t.Fatalf("Open(openssl output) = %v", err)
			}
			if want := smime.Canonicalize([]byte(tc.input)); !bytes.Equal(got, want) {
				t.Fatalf("content = %q, want %q", got, want)
			}
			if !sig.Signer.Equal(w.user.Cert) {
				t.Fatalf("signer = %v", sig.Signer.Subject)
			}
			if sig.SigningTime.IsZero() {
				t.Fatal("no signing time from openssl's signed attributes")
			}
		})
	}
}

func TestCanonicalize(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"a", "a"},
		{"a\n", "a\r\n"},
		{"a\r\n", "a\r\n"},
		{"a\r\r\n", "a\r\n"},
		{"a\n\nb", "a\r\n\r\nb"},
		{"a\rb\n", "a\rb\r\n"},
	} {
		if got := string(smime.Canonicalize([]byte(tc.in))); got != tc.want {
			t.Errorf("Canonicalize(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSplitHostile(t *testing.T) {
	w := newWorld(t)
	good, err := smime.Sign([]byte(content), w.user.Cert, w.user.Key, smime.SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := smime.Split(good); err != nil {
		t.Fatalf("Split(good) = %v", err)
	}
	boundary := string(good[bytes.Index(good, []byte("boundary=\""))+10:])
	boundary = boundary[:strings.IndexByte(boundary, '"')]
	cases := []struct {
		name string
		in   string
		want error
	}{
		{"empty", "", smime.ErrMalformed},
		{"plain JSON", `{"hv:imagelist": {}}`, smime.ErrUnsigned},
		{"no blank line", "MIME-Version: 1.0\nContent-Type: multipart/signed", smime.ErrMalformed},
		{"no content type", "MIME-Version: 1.0\n\nbody\n", smime.ErrUnsigned},
		{"text/plain", "Content-Type: text/plain\n\nbody\n", smime.ErrUnsigned},
		{"no boundary", "Content-Type: multipart/signed; protocol=\"application/x-pkcs7-signature\"; micalg=sha-256\n\nx\n", smime.ErrMalformed},
		{"bad boundary chars", "Content-Type: multipart/signed; protocol=\"application/x-pkcs7-signature\"; micalg=sha-256; boundary=\"a\\\"b\"\n\nx\n", smime.ErrMalformed},
		{"no parts", strings.Replace(string(good), "--"+boundary, "--other", -1), smime.ErrMalformed},
		{"no closing delimiter", strings.Replace(string(good), "--"+boundary+"--", "", 1), smime.ErrMalformed},
		{"three parts", strings.Replace(string(good), "--"+boundary+"--", "--"+boundary+"\nContent-Type: text/plain\n\nx\n--"+boundary+"--", 1), smime.ErrMalformed},
		{"signature part not pkcs7", strings.Replace(string(good), "Content-Type: application/x-pkcs7-signature; name", "Content-Type: text/plain; name", 1), smime.ErrUnsupported},
		{"signature part not base64 encoded", strings.Replace(string(good), "Content-Transfer-Encoding: base64", "Content-Transfer-Encoding: 8bit", 1), smime.ErrUnsupported},
		{"micalg md5", strings.Replace(string(good), `micalg="sha-256"`, `micalg="md5"`, 1), smime.ErrUnsupported},
		{"protocol pgp", strings.Replace(string(good), `protocol="application/x-pkcs7-signature"`, `protocol="application/pgp-signature"`, 1), smime.ErrUnsupported},
		{"too large", string(good) + strings.Repeat(" ", smime.MaxMessageSize), smime.ErrTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := smime.Split([]byte(tc.in))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Split = %v, want %v", err, tc.want)
			}
			if m != nil {
				t.Fatal("Split returned a message with an error")
			}
		})
	}
}

func TestSignRefusesSHA1(t *testing.T) {
	w := newWorld(t)
	if _, err := smime.Sign([]byte(content), w.user.Cert, w.user.Key, smime.SignOptions{Hash: crypto.SHA1}); err == nil {
		t.Fatal("Sign with SHA-1 succeeded; new lists must not use it")
	}
}
