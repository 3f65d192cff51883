package dn

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

func TestOnelineExamples(t *testing.T) {
	for _, tc := range []struct {
		raw  []byte
		want string
	}{
		{name(rdn(ava(oidC, printable("DE"))), rdn(ava(oidO, printable("GermanGrid"))), rdn(ava(oidOU, printable("DESY"))), rdn(ava(oidCN, printable("Name")))),
			"/C=DE/O=GermanGrid/OU=DESY/CN=Name"},
		{name(), ""},
		{name(rdn()), ""},
		{name(rdn(ava(oidCN, utf8s("Müller")))), `/CN=M\xC3\xBCller`},
		{name(rdn(ava(oidCN, utf8s("a")), ava(oidOU, utf8s("b"))), rdn(ava(oidO, utf8s("c")))), "/CN=a+OU=b/O=c"},
		{name(rdn(ava(oidCN, utf8s("x/y+z\\")))), `/CN=x\/y\+z\`},
		{name(rdn(ava(oidEmail, ia5("a@b")))), "/emailAddress=a@b"},
		{name(rdn(ava(oidUnknown, utf8s("v")))), "/1.3.6.1.4.1.99999.42.7=v"},
		{name(rdn(ava(oidCN, bmp("AB")))), `/CN=\x00A\x00B`},
	} {
		got, err := Oneline(tc.raw)
		if err != nil || got != tc.want {
			t.Errorf("Oneline(%x) = %q, %v; want %q", tc.raw, got, err, tc.want)
		}
	}
}

func TestHashKnownValues(t *testing.T) {
	// SHA-1 of the empty canonical encoding: what OpenSSL prints for an
	// empty subject.
	for _, raw := range [][]byte{name(), name(rdn(), rdn())} {
		if h, err := HashName(raw); err != nil || h != "eea339da" {
			t.Errorf("HashName(%x) = %q, %v; want eea339da", raw, h, err)
		}
	}
}

func mustHash(t *testing.T, raw []byte) uint32 {
	t.Helper()
	h, err := Hash(raw)
	if err != nil {
		t.Fatalf("Hash(%x): %v", raw, err)
	}
	return h
}

func TestHashCanonicalisation(t *testing.T) {
	same := [][][]byte{
		{
			name(rdn(ava(oidCN, printable("Foo  Bar")))),
			name(rdn(ava(oidCN, utf8s(" foo\t\n bar  ")))),
			name(rdn(ava(oidCN, ia5("FOO BAR")))),
			name(rdn(ava(oidCN, bmp("fOO bAR")))),
			name(rdn(ava(oidCN, universal("\vFoo Bar\r")))),
		},
		{
			name(rdn(ava(oidO, utf8s("Müller")))),
			name(rdn(ava(oidO, t61("M\xfcller")))),
			name(rdn(ava(oidO, printable("M\xfcLLER")))),
			name(rdn(ava(oidO, bmp("MüLLER")))),
		},
		{ // member order inside an RDN does not matter; empty RDNs vanish
			name(rdn(ava(oidCN, utf8s("a")), ava(oidOU, utf8s("b"))), rdn(ava(oidC, printable("DE")))),
			name(rdn(ava(oidOU, printable("B")), ava(oidCN, printable("A"))), rdn(), rdn(ava(oidC, utf8s("de")))),
		},
	}
	for i, group := range same {
		want := mustHash(t, group[0])
		for j, raw := range group[1:] {
			if got := mustHash(t, raw); got != want {
				t.Errorf("group %d member %d: hash %08x != %08x", i, j+1, got, want)
			}
		}
	}
	different := [][2][]byte{
		// non-ASCII letters are not case-folded
		{name(rdn(ava(oidO, utf8s("ü")))), name(rdn(ava(oidO, utf8s("Ü"))))},
		// NumericString is not canonicalised
		{name(rdn(ava(oidCN, numeric(" 1")))), name(rdn(ava(oidCN, utf8s("1"))))},
		// RDN boundaries matter
		{name(rdn(ava(oidCN, utf8s("a")), ava(oidOU, utf8s("b")))), name(rdn(ava(oidCN, utf8s("a"))), rdn(ava(oidOU, utf8s("b"))))},
		// NBSP is not whitespace for OpenSSL
		{name(rdn(ava(oidCN, utf8s("a\u00a0")))), name(rdn(ava(oidCN, utf8s("a"))))},
	}
	for i, pair := range different {
		if mustHash(t, pair[0]) == mustHash(t, pair[1]) {
			t.Errorf("pair %d unexpectedly hashes equal", i)
		}
	}
}

func TestHashNameFormat(t *testing.T) {
	// Find a name whose hash has a leading zero nibble to check padding.
	for i := 0; i < 1000; i++ {
		raw := name(rdn(ava(oidCN, utf8s(fmt.Sprint("n", i)))))
		h := mustHash(t, raw)
		if h >= 0x10000000 {
			continue
		}
		s, err := HashName(raw)
		if err != nil || s != fmt.Sprintf("%08x", h) || len(s) != 8 || s[0] != '0' {
			t.Fatalf("HashName = %q, %v for hash %#x", s, err, h)
		}
		return
	}
	t.Fatal("no hash with a leading zero found")
}

func TestMalformed(t *testing.T) {
	valueCN := ava(oidCN, utf8s("x"))
	for _, tc := range []struct {
		name string
		raw  []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
		{"one byte", []byte{0x30}},
		{"short content", []byte{0x30, 0x01}},
		{"not a sequence", rdn(valueCN)},
		{"trailing data", append(name(rdn(valueCN)), 0)},
		{"rdn not a set", name(tlv(0x30, valueCN))},
		{"ava not a sequence", name(rdn(tlv(0x31, oidCN, utf8s("x"))))},
		{"type not an oid", name(rdn(ava(utf8s("CN"), utf8s("x"))))},
		{"missing value", name(rdn(tlv(0x30, oidCN)))},
		{"empty ava", name(rdn(tlv(0x30)))},
		{"extra element", name(rdn(tlv(0x30, oidCN, utf8s("x"), utf8s("y"))))},
		{"empty oid", name(rdn(ava(tlv(0x06), utf8s("x"))))},
		{"oid truncated subidentifier", name(rdn(ava(tlv(0x06, []byte{0x55, 0x84}), utf8s("x"))))},
		{"oid non-minimal subidentifier", name(rdn(ava(tlv(0x06, []byte{0x55, 0x80, 0x03}), utf8s("x"))))},
		{"oid leading 0x80", name(rdn(ava(tlv(0x06, []byte{0x80, 0x01}), utf8s("x"))))},
		{"high tag number", []byte{0x3f, 0x10, 0x00}},
		{"high tag value", name(rdn(ava(oidCN, []byte{0x1f, 0x20, 0x01, 'x'})))},
		{"indefinite length", []byte{0x30, 0x80, 0x00, 0x00}},
		{"non-minimal length", []byte{0x30, 0x81, 0x00}},
		{"non-minimal long length", append([]byte{0x30, 0x82, 0x00, 0x80}, make([]byte, 0x80)...)},
		{"5-byte length", []byte{0x30, 0x85, 0x01, 0x00, 0x00, 0x00, 0x00}},
		{"huge length", []byte{0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x31, 0x00}},
		{"huge length 2^31-1", []byte{0x30, 0x84, 0x7f, 0xff, 0xff, 0xff}},
		{"truncated length field", []byte{0x30, 0x82, 0x01}},
		{"inner length overflow", name(rdn([]byte{0x30, 0x84, 0xff, 0xff, 0xff, 0xf0}))},
		{"value length past end", name(rdn(tlv(0x30, oidCN, []byte{0x0c, 0x05, 'x'})))},
		{"constructed utf8string", name(rdn(ava(oidCN, tlv(0x2c, utf8s("x")))))},
		{"constructed printablestring", name(rdn(ava(oidCN, tlv(0x33, printable("x")))))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if s, err := Oneline(tc.raw); !errors.Is(err, ErrMalformed) {
				t.Errorf("Oneline = %q, %v; want ErrMalformed", s, err)
			}
			if h, err := Hash(tc.raw); !errors.Is(err, ErrMalformed) {
				t.Errorf("Hash = %08x, %v; want ErrMalformed", h, err)
			}
			if s, err := HashName(tc.raw); err == nil || s != "" {
				t.Errorf("HashName = %q, %v; want error", s, err)
			}
		})
	}
}

func TestTruncationsAndMutations(t *testing.T) {
	for _, tc := range differentialCases(t) {
		raw := tc.raw
		for i := 0; i < len(raw); i++ {
			if _, err := Oneline(raw[:i]); err == nil {
				t.Errorf("%s: prefix of %d/%d bytes accepted by Oneline", tc.name, i, len(raw))
			}
			if _, err := Hash(raw[:i]); err == nil {
				t.Errorf("%s: prefix of %d/%d bytes accepted by Hash", tc.name, i, len(raw))
			}
		}
		if len(raw) > 4096 {
			continue
		}
		mut := bytes.Clone(raw)
		for i := range mut {
			for _, x := range []byte{0x01, 0x20, 0x80, 0xff} {
				mut[i] ^= x
				checkConsistent(t, mut)
				mut[i] ^= x
			}
		}
	}
}

// checkConsistent asserts the invariants that hold for arbitrary input.
func checkConsistent(t *testing.T, raw []byte) {
	t.Helper()
	line, lerr := Oneline(raw)
	h, herr := Hash(raw)
	hn, hnerr := HashName(raw)
	if (herr == nil) != (hnerr == nil) || (herr == nil && hn != fmt.Sprintf("%08x", h)) {
		t.Fatalf("Hash/HashName disagree on %x: %08x,%v vs %q,%v", raw, h, herr, hn, hnerr)
	}
	for _, err := range []error{lerr, herr} {
		if err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrRejected) {
			t.Fatalf("error %v wraps neither ErrMalformed nor ErrRejected", err)
		}
	}
	if lerr == nil && herr != nil {
		t.Fatalf("Oneline accepts %x but Hash fails: %v", raw, herr)
	}
	if lerr != nil && herr == nil && !strings.Contains(lerr.Error(), "NAME_ONELINE_MAX") {
		t.Fatalf("Hash accepts %x but Oneline fails: %v", raw, lerr)
	}
	if lerr != nil {
		if line != "" {
			t.Fatalf("Oneline returned %q with error %v", line, lerr)
		}
		return
	}
	for i := 0; i < len(line); i++ {
		if line[i] < 0x20 || line[i] > 0x7e {
			t.Fatalf("Oneline output %q contains byte 0x%02x", line, line[i])
		}
	}
	if line != "" && line[0] != '/' {
		t.Fatalf("Oneline output %q does not start with '/'", line)
	}
}

func TestSizeLimits(t *testing.T) {
	// A Name larger than X509_NAME_MAX (1 MiB) is refused by d2i_X509_NAME.
	big := name(rdn(ava(oidCN, utf8s(strings.Repeat("a", 1<<20)))))
	if _, err := Oneline(big); !errors.Is(err, ErrRejected) {
		t.Errorf("Oneline(>1MiB) error = %v; want ErrRejected", err)
	}
	if _, err := Hash(big); !errors.Is(err, ErrRejected) {
		t.Errorf("Hash(>1MiB) error = %v; want ErrRejected", err)
	}
	// Just under the limit: decodable, and short enough to print.
	ok := name(rdn(ava(oidCN, utf8s(strings.Repeat("a", 1<<20-32)))))
	if len(ok) > x509NameMax {
		t.Fatalf("test name too large: %d", len(ok))
	}
	if s, err := Oneline(ok); err != nil || len(s) != len("/CN=")+1<<20-32 {
		t.Errorf("Oneline(just under 1MiB) = %d bytes, %v", len(s), err)
	}
	// Decodable, but the escaped one-line form exceeds NAME_ONELINE_MAX:
	// X509_NAME_oneline fails, X509_NAME_hash does not.
	wide := name(rdn(ava(oidCN, utf8s(strings.Repeat("\x01", 300000)))))
	if _, err := Oneline(wide); !errors.Is(err, ErrRejected) {
		t.Errorf("Oneline(wide) error = %v; want ErrRejected", err)
	}
	if _, err := Hash(wide); err != nil {
		t.Errorf("Hash(wide) error = %v", err)
	}
}

func TestInputNotModified(t *testing.T) {
	raw := name(rdn(ava(oidCN, tlv(0x03, []byte{4, 0xff, 0xff}))), rdn(ava(oidCN, utf8s("  MiXeD  "))))
	orig := bytes.Clone(raw)
	if _, err := Oneline(raw); err != nil {
		t.Fatal(err)
	}
	if _, err := Hash(raw); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, orig) {
		t.Fatalf("input modified: %x -> %x", orig, raw)
	}
}

// TestBERDeviations documents the one intentional difference: OpenSSL's BER
// decoder accepts these non-DER encodings, this package does not.
func TestBERDeviations(t *testing.T) {
	rdnX := rdn(ava(oidCN, utf8s("x")))
	cases := map[string][]byte{
		"non-minimal length":    append([]byte{0x30, 0x81, byte(len(rdnX))}, rdnX...),
		"constructed string":    name(rdn(ava(oidCN, tlv(0x2c, tlv(0x04, []byte("ab")), tlv(0x04, []byte("c")))))),
		"indefinite-length RDN": name([]byte{0x31, 0x80, 0x30, 0x08, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x01, 'x', 0x00, 0x00}),
	}
	bin, _ := exec.LookPath("openssl")
	for n, raw := range cases {
		t.Run(n, func(t *testing.T) {
			if _, err := Oneline(raw); !errors.Is(err, ErrMalformed) {
				t.Errorf("Oneline error = %v; want ErrMalformed", err)
			}
			if _, err := Hash(raw); !errors.Is(err, ErrMalformed) {
				t.Errorf("Hash error = %v; want ErrMalformed", err)
			}
			if bin == "" {
				return
			}
			got := runOpenSSL(t, bin, "x509", "subject", selfSigned(t, raw))
			if !got.ok {
				t.Errorf("openssl unexpectedly rejects the BER form too: %s", firstLine(got.stderr))
			}
			t.Logf("openssl: ok=%v hash=%s subject=%q %s", got.ok, got.hash, got.oneline, firstLine(got.stderr))
		})
	}
}

// Example of the intended use: name a CA directory entry.
func ExampleHashName() {
	raw := name(rdn(ava(oidC, printable("AU"))), rdn(ava(oidST, printable("Some-State"))),
		rdn(ava(oidO, printable("Internet Widgits Pty Ltd"))))
	h, _ := HashName(raw)
	line, _ := Oneline(raw)
	fmt.Println(h + ".0")
	fmt.Println(line)
	// Output:
	// 9da13359.0
	// /C=AU/ST=Some-State/O=Internet Widgits Pty Ltd
}
