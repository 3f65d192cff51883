package dn

// Differential tests against the real openssl binary: every Name is embedded
// in a freshly generated self-signed certificate (and a few in CRLs), and
// Oneline/Hash must reproduce `openssl x509 -noout -hash -subject -nameopt
// compat` exactly. Names that OpenSSL refuses to decode must make Oneline and
// Hash fail with ErrRejected.

import (
	"github.com/vmtrust/vmtrust/internal/vmtest"

	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	testKeyOnce sync.Once
	testKey     *ecdsa.PrivateKey
)

func signingKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	testKeyOnce.Do(func() {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		testKey = k
	})
	return testKey
}

func requireOpenSSL(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatal("openssl is required by this differential test but not installed: run 'make setup' (scripts/setup.sh)")
	}
	return path
}

// selfSigned returns a PEM certificate whose subject and issuer are exactly raw.
func selfSigned(t *testing.T, raw []byte) []byte {
	t.Helper()
	key := signingKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		RawSubject:            raw,
		NotBefore:             time.Unix(1700000000, 0),
		NotAfter:              time.Unix(1900000000, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		SubjectKeyId:          []byte{1, 2, 3, 4},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("CreateCertificate: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

type opensslOut struct {
	ok      bool   // openssl could load the object
	hash    string // -hash
	oneline string // -subject / -issuer with -nameopt compat, without the "subject=" prefix
	stderr  string
}

var hashRE = regexp.MustCompile(`^[0-9a-f]{8}$`)

// runOpenSSL runs `openssl <cmd> -in file -noout -hash -<field> -nameopt compat`.
func runOpenSSL(t *testing.T, bin, cmd, field string, pemData []byte) opensslOut {
	t.Helper()
	f := filepath.Join(t.TempDir(), cmd+".pem")
	if err := os.WriteFile(f, pemData, 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	c := exec.Command(bin, cmd, "-in", f, "-noout", "-hash", "-"+field, "-nameopt", "compat")
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	out := opensslOut{stderr: stderr.String()}
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("running openssl: %v", err)
		}
		return out
	}
	lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	if len(lines) > 0 {
		// `openssl crl -hash` labels its output.
		lines[0] = strings.TrimPrefix(lines[0], "issuer name hash=")
	}
	if len(lines) != 2 || !hashRE.MatchString(lines[0]) || !strings.HasPrefix(lines[1], field+"=") {
		t.Fatalf("unexpected openssl output %q (stderr %q)", stdout.String(), stderr.String())
	}
	out.ok = true
	out.hash = lines[0]
	out.oneline = strings.TrimPrefix(lines[1], field+"=")
	return out
}

// checkAgainstOpenSSL asserts that Oneline/HashName agree with what openssl
// reports for want (the PEM object whose subject/issuer is raw).
func checkAgainstOpenSSL(t *testing.T, raw []byte, got opensslOut) {
	t.Helper()
	line, lerr := Oneline(raw)
	h, herr := HashName(raw)
	if !got.ok {
		if lerr == nil || herr == nil {
			t.Fatalf("openssl rejects name %x (%s) but Oneline=%q,%v HashName=%q,%v",
				raw, firstLine(got.stderr), line, lerr, h, herr)
		}
		if !errors.Is(lerr, ErrRejected) || !errors.Is(herr, ErrRejected) {
			t.Errorf("openssl rejects name %x: want ErrRejected, got %v / %v", raw, lerr, herr)
		}
		return
	}
	if lerr != nil || herr != nil {
		t.Fatalf("openssl accepts name %x (oneline %q, hash %s) but we fail: %v / %v", raw, got.oneline, got.hash, lerr, herr)
	}
	if line != got.oneline {
		t.Errorf("Oneline mismatch for %x\n got: %q\nwant: %q", raw, line, got.oneline)
	}
	if h != got.hash {
		t.Errorf("HashName mismatch for %x (%q): got %s, openssl %s", raw, got.oneline, h, got.hash)
	}
	if n, err := Hash(raw); err != nil || fmt.Sprintf("%08x", n) != h {
		t.Errorf("Hash = %08x, %v; HashName = %s", n, err, h)
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func pkixName(t testing.TB, n pkix.Name) []byte {
	t.Helper()
	b, err := asn1.Marshal(n.ToRDNSequence())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type nameCase struct {
	name     string
	raw      []byte
	reject   bool   // OpenSSL refuses to decode it
	wantLine string // optional literal expectation in addition to openssl
}

func differentialCases(t testing.TB) []nameCase {
	longOIDArcs := []int{1, 3, 6, 1, 4, 1, 99999}
	for i := 0; i < 12; i++ {
		longOIDArcs = append(longOIDArcs, 1234567+i)
	}
	var hugeOID []byte // > 586 content octets
	for i := 0; i < 300; i++ {
		hugeOID = append(hugeOID, 0x81, 0x80, 0x01)
	}
	hugeOID = append([]byte{0x2b}, hugeOID...)
	rawRelOID := tlv(13, []byte{0x81, 0x01, 0x05})

	return []nameCase{
		{name: "grid", raw: pkixName(t, pkix.Name{
			Country: []string{"DE"}, Organization: []string{"GermanGrid"},
			OrganizationalUnit: []string{"DESY"}, CommonName: "Name",
		}), wantLine: "/C=DE/O=GermanGrid/OU=DESY/CN=Name"},
		{name: "empty", raw: name(), wantLine: ""},
		{name: "empty-rdn-in-middle", raw: name(rdn(ava(oidC, printable("DE"))), rdn(), rdn(ava(oidCN, utf8s("x"))))},
		{name: "only-empty-rdns", raw: name(rdn(), rdn())},
		{name: "dc-email", raw: name(
			rdn(ava(oidDC, ia5("org"))), rdn(ava(oidDC, ia5("Terena"))), rdn(ava(oidDC, ia5("TCS"))),
			rdn(ava(oidC, printable("NL"))), rdn(ava(oidO, printable("Nikhef"))),
			rdn(ava(oidCN, printable("Jane Doe"))), rdn(ava(oidEmail, ia5("Jane.Doe@Example.ORG"))),
		)},
		{name: "pkix-multi-ou", raw: pkixName(t, pkix.Name{
			Country:            []string{"NL", "BE"},
			OrganizationalUnit: []string{"Zeta", "alpha", "Beta"},
			CommonName:         "host/www.example.org",
			SerialNumber:       "12345",
			Province:           []string{"Noord-Holland"},
			Locality:           []string{"Amsterdam"},
			StreetAddress:      []string{"Science Park 105"},
			PostalCode:         []string{"1098 XG"},
			ExtraNames: []pkix.AttributeTypeAndValue{
				{Type: asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}, Value: "root@example.org"},
				{Type: asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 25}, Value: "Example"},
			},
		})},
		{name: "pkix-raw-tags", raw: pkixName(t, pkix.Name{ExtraNames: []pkix.AttributeTypeAndValue{
			{Type: asn1.ObjectIdentifier{2, 5, 4, 10}, Value: asn1.RawValue{Tag: asn1.TagPrintableString, Bytes: []byte("Same Value")}},
			{Type: asn1.ObjectIdentifier{2, 5, 4, 11}, Value: asn1.RawValue{Tag: asn1.TagUTF8String, Bytes: []byte("same   VALUE")}},
			{Type: asn1.ObjectIdentifier{2, 5, 4, 3}, Value: asn1.RawValue{Tag: asn1.TagIA5String, Bytes: []byte("SAME value ")}},
			{Type: asn1.ObjectIdentifier{2, 5, 4, 7}, Value: asn1.RawValue{Tag: asn1.TagBMPString, Bytes: []byte{0, 'S', 0, 'a', 0, 'M', 0, 'e'}}},
		}})},
		{name: "case-and-whitespace", raw: name(
			rdn(ava(oidCN, utf8s("  John   SMITH\t\tJr. "))),
			rdn(ava(oidO, printable("ACME\n Corp"))),
			rdn(ava(oidOU, utf8s(" \v\f\rX \t"))),
			rdn(ava(oidL, utf8s("   "))),
			rdn(ava(oidST, utf8s(""))),
		)},
		{name: "utf8-non-ascii", raw: name(
			rdn(ava(oidO, utf8s("Müller GmbH"))),
			rdn(ava(oidCN, utf8s("日本語  テスト"))),
			rdn(ava(oidL, utf8s("Zürich 😀"))),
			rdn(ava(oidST, utf8s("ÄÖÜ STRAßE\u00a0 x"))),
		), wantLine: `/O=M\xC3\xBCller GmbH/CN=\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E  \xE3\x83\x86\xE3\x82\xB9\xE3\x83\x88/L=Z\xC3\xBCrich \xF0\x9F\x98\x80/ST=\xC3\x84\xC3\x96\xC3\x9C STRA\xC3\x9FE\xC2\xA0 x`},
		{name: "multi-valued", raw: name(
			rdn(ava(oidC, printable("DE"))),
			rdn(ava(oidCN, utf8s("b")), ava(oidCN, printable("A"))),
			rdn(ava(oidOU, utf8s("x")), ava(oidO, printable("Y")), ava(oidCN, utf8s("  Z"))),
			rdn(ava(oidCN, printable("long value that sorts later")), ava(oidCN, printable("A"))),
		), wantLine: "/C=DE/CN=b+CN=A/OU=x+O=Y+CN=  Z/CN=long value that sorts later+CN=A"},
		{name: "attribute-zoo", raw: name(
			rdn(ava(oidSerialNumber, printable("0042"))),
			rdn(ava(oidUID, utf8s("jdoe"))),
			rdn(ava(oidUniqueID, utf8s("u1"))),
			rdn(ava(oidSN, utf8s("Doe"))),
			rdn(ava(oidGN, utf8s("Jane"))),
			rdn(ava(oidTitle, utf8s("Dr"))),
			rdn(ava(oidStreet, utf8s("Main St 1"))),
			rdn(ava(oidPostalCode, utf8s("12345"))),
			rdn(ava(oidName, utf8s("nm"))),
			rdn(ava(oidInitials, utf8s("JD"))),
			rdn(ava(oidDNQualifier, printable("q"))),
			rdn(ava(oidPseudonym, utf8s("ps"))),
			rdn(ava(oidGenQual, utf8s("III"))),
			rdn(ava(oidBusinessCat, utf8s("Private Organization"))),
			rdn(ava(oidJurC, printable("DE"))),
			rdn(ava(oidJurST, utf8s("Hamburg"))),
			rdn(ava(oidJurL, utf8s("Hamburg"))),
			rdn(ava(oidOrgID, utf8s("VATDE-123"))),
			rdn(ava(oidRSAEnc, utf8s("weird"))),
			rdn(ava(oidORG, utf8s("dup"))),
			rdn(ava(oidUnknown, utf8s("unknown"))),
		), wantLine: "/serialNumber=0042/UID=jdoe/uid=u1/SN=Doe/GN=Jane/title=Dr/street=Main St 1/postalCode=12345/name=nm/initials=JD/dnQualifier=q/pseudonym=ps/generationQualifier=III/businessCategory=Private Organization/jurisdictionC=DE/jurisdictionST=Hamburg/jurisdictionL=Hamburg/organizationIdentifier=VATDE-123/rsaEncryption=weird/ORG=dup/1.3.6.1.4.1.99999.42.7=unknown"},
		{name: "oid-forms", raw: name(
			rdn(ava(oid(longOIDArcs...), utf8s("long"))),
			rdn(ava(oidBig(big.NewInt(2), bigInt("99999999999999999999999999999"), big.NewInt(5)), utf8s("bigfirst"))),
			rdn(ava(oidBig(big.NewInt(1), big.NewInt(3), bigInt("340282366920938463463374607431768211457")), utf8s("bigarc"))),
			rdn(ava(oidBig(big.NewInt(1), big.NewInt(3), bigInt("18446744073709551615"), bigInt("18446744073709551616")), utf8s("u64edge"))),
			rdn(ava(oid(2, 100, 3), utf8s("2.100"))),
			rdn(ava(oid(0, 0), utf8s("0.0"))),
			rdn(ava(oid(1, 39, 0), utf8s("1.39"))),
			rdn(ava(tlv(0x06, hugeOID), utf8s("huge"))),
		), wantLine: "/1.3.6.1.4.1.99999.1234567.1234568.1234569.1234570.1234571.1234572.1234573.12345=long" +
			"/2.99999999999999999999999999999.5=bigfirst/1.3.340282366920938463463374607431768211457=bigarc" +
			"/1.3.18446744073709551615.18446744073709551616=u64edge/2.100.3=2.100/0.0=0.0/1.39.0=1.39/=huge"},
		{name: "string-types", raw: name(
			rdn(ava(oidO, t61("M\xfcller \xC3\xA9 Teletex"))),
			rdn(ava(oidOU, ia5("Mixed Case IA5"))),
			rdn(ava(oidL, printable("Printable \xe9\xff"))),
			rdn(ava(oidSerialNumber, numeric("  12  34 "))),
			rdn(ava(oidCN, bmp("Müller 日本 ABC"))),
			rdn(ava(oidST, universal("Zürich 😀 XYZ"))),
			rdn(ava(oidDC, ia5("high\x80\xfe"))),
		), wantLine: `/O=M\xFCller \xC3\xA9 Teletex/OU=Mixed Case IA5/L=Printable \xE9\xFF/serialNumber=  12  34 /CN=\x00M\x00\xFC\x00l\x00l\x00e\x00r\x00 e\xE5g,\x00 \x00A\x00B\x00C/ST=\x00\x00\x00Z\x00\x00\x00\xFC\x00\x00\x00r\x00\x00\x00i\x00\x00\x00c\x00\x00\x00h\x00\x00\x00 \x00\x01\xF6\x00\x00\x00\x00 \x00\x00\x00X\x00\x00\x00Y\x00\x00\x00Z/DC=high\x80\xFE`},
		{name: "escaping", raw: name(
			rdn(ava(oidCN, utf8s(`a/b+c\d=e,f"g<h>;#`))),
			rdn(ava(oidOU, utf8s("\x00\x01\x1f\x7f~ end"))),
			rdn(ava(oidO, printable("x+y/z"))),
		), wantLine: `/CN=a\/b\+c\d=e,f"g<h>;#/OU=\x00\x01\x1F\x7F~ end/O=x\+y\/z`},
		{name: "non-string-values", raw: name(
			rdn(ava(oidCN, tlv(0x03, []byte{5, 0xab, 0xe7}))),
			rdn(ava(oidCN, tlv(0x03, []byte{0}))),
			rdn(ava(oidCN, tlv(0x03, []byte{3}))),
			rdn(ava(oidCN, tlv(0x03, []byte{0, 'A', 'b'}))),
			rdn(ava(oidO, tlv(0x30, tlv(0x02, []byte{5}), utf8s("A b")))),
			rdn(ava(oidOU, tlv(0x07, []byte("Obj Desc")))),
			rdn(ava(oidOU, rawRelOID)),
			rdn(ava(oidOU, tlv(0x08, []byte("EXT")))),
			rdn(ava(oidOU, tlv(0x09, []byte{0x03, '1', 'E', '2'}))),
			rdn(ava(oidOU, tlv(0x0b, []byte("Pdv")))),
			rdn(ava(oidOU, tlv(0x0e, []byte("T14")))),
			rdn(ava(oidOU, tlv(0x0f, []byte("T15")))),
			rdn(ava(oidOU, tlv(0x1d, []byte("T29")))),
			rdn(ava(oidCN, numeric(" 1  2 ")), ava(oidCN, numeric("1 2"))),
		), wantLine: `/CN=\xAB\xE0/CN=/CN=/CN=Ab/O=0\x08\x02\x01\x05\x0C\x03A b/OU=Obj Desc/OU=\x81\x01\x05/OU=EXT` +
			`/OU=\x031E2/OU=Pdv/OU=T14/OU=T15/OU=T29/CN= 1  2 +CN=1 2`},
		{name: "same-value-sorting", raw: name(
			rdn(ava(oidCN, utf8s("B")), ava(oidCN, printable("a")), ava(oidCN, bmp("C")), ava(oidOU, numeric("9")), ava(oidCN, tlv(0x03, []byte{0, 1}))),
		)},

		// OpenSSL refuses these (ASN1_R_MSTRING_WRONG_TAG, invalid string
		// contents, ...).
		{name: "reject-visiblestring", raw: name(rdn(ava(oidCN, str(0x1a, "visible")))), reject: true},
		{name: "reject-generalstring", raw: name(rdn(ava(oidCN, str(0x1b, "gen\x00")))), reject: true},
		{name: "reject-graphicstring", raw: name(rdn(ava(oidCN, str(0x19, "g")))), reject: true},
		{name: "reject-videotexstring", raw: name(rdn(ava(oidCN, str(0x15, "v")))), reject: true},
		{name: "reject-utctime", raw: name(rdn(ava(oidCN, str(0x17, "250101000000Z")))), reject: true},
		{name: "reject-generalizedtime", raw: name(rdn(ava(oidCN, str(0x18, "20250101000000Z")))), reject: true},
		{name: "reject-octetstring", raw: name(rdn(ava(oidCN, str(0x04, "oct")))), reject: true},
		{name: "reject-integer", raw: name(rdn(ava(oidCN, tlv(0x02, []byte{1})))), reject: true},
		{name: "reject-boolean", raw: name(rdn(ava(oidCN, tlv(0x01, []byte{0xff})))), reject: true},
		{name: "reject-null", raw: name(rdn(ava(oidCN, tlv(0x05)))), reject: true},
		{name: "reject-oid-value", raw: name(rdn(ava(oidCN, oidCN))), reject: true},
		{name: "reject-enumerated", raw: name(rdn(ava(oidCN, tlv(0x0a, []byte{1})))), reject: true},
		{name: "reject-set-value", raw: name(rdn(ava(oidCN, tlv(0x31, utf8s("x"))))), reject: true},
		{name: "reject-tag0", raw: name(rdn(ava(oidCN, tlv(0x00, []byte("x"))))), reject: true},
		{name: "reject-context-tag", raw: name(rdn(ava(oidCN, tlv(0x80, []byte("x"))))), reject: true},
		{name: "reject-application-tag", raw: name(rdn(ava(oidCN, tlv(0x4c, []byte("x"))))), reject: true},
		{name: "reject-primitive-sequence", raw: name(rdn(ava(oidCN, tlv(0x10, []byte("x"))))), reject: true},
		{name: "reject-bmp-odd", raw: name(rdn(ava(oidCN, tlv(0x1e, []byte{0, 'a', 0})))), reject: true},
		{name: "reject-bmp-lone-surrogate", raw: name(rdn(ava(oidCN, tlv(0x1e, []byte{0xd8, 0x00})))), reject: true},
		{name: "reject-bmp-surrogate-pair", raw: name(rdn(ava(oidCN, bmp("😀")))), reject: true},
		{name: "reject-universal-len", raw: name(rdn(ava(oidCN, tlv(0x1c, []byte{0, 0, 0, 'a', 0})))), reject: true},
		{name: "reject-universal-range", raw: name(rdn(ava(oidCN, tlv(0x1c, []byte{0, 0x11, 0, 0})))), reject: true},
		{name: "reject-universal-surrogate", raw: name(rdn(ava(oidCN, tlv(0x1c, []byte{0, 0, 0xdf, 0xff})))), reject: true},
		{name: "reject-utf8-ff", raw: name(rdn(ava(oidCN, utf8s("a\xffb")))), reject: true},
		{name: "reject-utf8-overlong", raw: name(rdn(ava(oidCN, utf8s("\xc0\xaf")))), reject: true},
		{name: "reject-utf8-surrogate", raw: name(rdn(ava(oidCN, utf8s("\xed\xa0\x80")))), reject: true},
		{name: "reject-utf8-too-big", raw: name(rdn(ava(oidCN, utf8s("\xf4\x90\x80\x80")))), reject: true},
		{name: "reject-utf8-truncated", raw: name(rdn(ava(oidCN, utf8s("ok\xe2\x82")))), reject: true},
		{name: "reject-bitstring-pad8", raw: name(rdn(ava(oidCN, tlv(0x03, []byte{8, 0})))), reject: true},
		{name: "reject-bitstring-empty", raw: name(rdn(ava(oidCN, tlv(0x03)))), reject: true},
		{name: "reject-later-rdn", raw: name(rdn(ava(oidC, printable("DE"))), rdn(ava(oidCN, str(0x1a, "v")))), reject: true},
	}
}

func TestOpenSSLDifferential(t *testing.T) {
	bin := requireOpenSSL(t)
	for _, tc := range differentialCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := runOpenSSL(t, bin, "x509", "subject", selfSigned(t, tc.raw))
			if got.ok == tc.reject {
				t.Fatalf("openssl ok=%v, test expects reject=%v (stderr %q)", got.ok, tc.reject, firstLine(got.stderr))
			}
			checkAgainstOpenSSL(t, tc.raw, got)
			if tc.wantLine != "" || tc.name == "empty" {
				if line, _ := Oneline(tc.raw); line != tc.wantLine {
					t.Errorf("Oneline literal mismatch\n got: %q\nwant: %q", line, tc.wantLine)
				}
			}
		})
	}
}

// TestGoParsedCertificates runs the whole pipeline a caller uses: Go parses
// the certificate and Oneline/Hash are applied to cert.RawSubject/RawIssuer.
func TestGoParsedCertificates(t *testing.T) {
	bin := requireOpenSSL(t)
	names := []pkix.Name{
		{Country: []string{"DE"}, Organization: []string{"GermanGrid"}, OrganizationalUnit: []string{"DESY"}, CommonName: "Name"},
		{Country: []string{"AU"}, Province: []string{"Some-State"}, Organization: []string{"Internet Widgits Pty Ltd"}},
		{CommonName: "  Müller,  Hans  ", Organization: []string{"Ümlaut AG", "Second Org"}},
		{OrganizationalUnit: []string{"b", "A", "c"}, SerialNumber: "X 1", Locality: []string{"LoWeR"}},
	}
	for i, n := range names {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			pemData := selfSigned(t, pkixName(t, n))
			blk, _ := pem.Decode(pemData)
			cert, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			got := runOpenSSL(t, bin, "x509", "subject", pemData)
			checkAgainstOpenSSL(t, cert.RawSubject, got)
			got = runOpenSSL(t, bin, "x509", "issuer", pemData)
			got.hash = runOpenSSLIssuerHash(t, bin, pemData)
			checkAgainstOpenSSL(t, cert.RawIssuer, got)
		})
	}
}

func runOpenSSLIssuerHash(t *testing.T, bin string, pemData []byte) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "c.pem")
	if err := os.WriteFile(f, pemData, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "x509", "-in", f, "-noout", "-issuer_hash").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// TestCRLHash checks the CRL side (`openssl crl -hash`, used for HASH.r0).
func TestCRLHash(t *testing.T) {
	bin := requireOpenSSL(t)
	key := signingKey(t)
	for i, raw := range [][]byte{
		pkixName(t, pkix.Name{Country: []string{"DE"}, Organization: []string{"GermanGrid"}, CommonName: "GridKa-CA"}),
		name(rdn(ava(oidDC, ia5("ORG"))), rdn(ava(oidDC, ia5("example"))), rdn(ava(oidCN, utf8s("  Example   CA  "))), rdn(ava(oidCN, printable("A")), ava(oidOU, utf8s("b")))),
	} {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			blk, _ := pem.Decode(selfSigned(t, raw))
			issuer, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			crlDER, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
				Number: big.NewInt(1), ThisUpdate: time.Unix(1700000000, 0), NextUpdate: time.Unix(1900000000, 0),
			}, issuer, key)
			if err != nil {
				t.Fatal(err)
			}
			crl, err := x509.ParseRevocationList(crlDER)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(crl.RawIssuer, raw) {
				t.Fatalf("CRL issuer %x != %x", crl.RawIssuer, raw)
			}
			got := runOpenSSL(t, bin, "crl", "issuer", pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: crlDER}))
			checkAgainstOpenSSL(t, crl.RawIssuer, got)
		})
	}
}

// TestOpenSSLRandomNames compares random, valid Names of many shapes.
func TestOpenSSLRandomNames(t *testing.T) {
	bin := requireOpenSSL(t)
	n := 300
	if testing.Short() {
		n = 40
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := mrand.New(mrand.NewPCG(seed, 0x5eed))
	for i := 0; i < n; i++ {
		raw := randomName(rng)
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			got := runOpenSSL(t, bin, "x509", "subject", selfSigned(t, raw))
			if !got.ok {
				t.Fatalf("openssl rejected generated name %x: %s", raw, got.stderr)
			}
			checkAgainstOpenSSL(t, raw, got)
		})
	}
}

var randomTypes = [][]byte{
	oidC, oidST, oidL, oidO, oidOU, oidCN, oidSN, oidGN, oidSerialNumber, oidTitle, oidDC, oidUID,
	oidEmail, oidJurC, oidOrgID, oidUnknown, oid(1, 2, 3, 4, 5), oid(2, 999, 1),
}

var randomPieces = []string{
	"a", "B", "z", "Q", "0", "9", " ", " ", "  ", "\t", "\n", "\r", "\v", "\f", "/", "+", "\\", "=",
	",", "\"", "#", ";", "<", "~", "-", ".", "@", "'", "(", "\x00", "\x01", "\x7f",
	"Grid", "CERN", "desy", "ü", "Ü", "ß", "é", "日本", "😀", "\u00a0", "\u2028", "\ufeff",
}

func randomString(rng *mrand.Rand) string {
	var b strings.Builder
	for n := rng.IntN(8); n > 0; n-- {
		b.WriteString(randomPieces[rng.IntN(len(randomPieces))])
	}
	return b.String()
}

func randomValue(rng *mrand.Rand) []byte {
	s := randomString(rng)
	switch rng.IntN(10) {
	case 0, 1, 2:
		return utf8s(s)
	case 3, 4:
		return printable(latin1ish(s))
	case 5:
		return ia5(latin1ish(s))
	case 6:
		return t61(latin1ish(s))
	case 7:
		return bmp(strings.ReplaceAll(s, "😀", "☺"))
	case 8:
		return universal(s)
	default:
		return numeric(latin1ish(s))
	}
}

// latin1ish turns s into raw bytes, mapping runes <= 0xFF to one byte and
// dropping the rest, as single-byte string types carry arbitrary octets.
func latin1ish(s string) string {
	var b []byte
	for _, r := range s {
		if r <= 0xff {
			b = append(b, byte(r))
		}
	}
	return string(b)
}

func randomName(rng *mrand.Rand) []byte {
	var rdns [][]byte
	for n := rng.IntN(7); n > 0; n-- {
		var avas [][]byte
		k := 1
		switch rng.IntN(6) {
		case 0:
			k = 2 + rng.IntN(3)
		case 1:
			if rng.IntN(3) == 0 {
				k = 0 // empty SET
			}
		}
		for ; k > 0; k-- {
			avas = append(avas, ava(randomTypes[rng.IntN(len(randomTypes))], randomValue(rng)))
		}
		rdns = append(rdns, rdn(avas...))
	}
	return name(rdns...)
}

// TestCloudkeeperCA checks a real CA certificate from the shared test data.
func TestCloudkeeperCA(t *testing.T) {
	path := vmtest.SharedTestdata(t, "imagelists/cloudkeeper/ca/9da13359.0")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(data)
	if blk == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	h, err := HashName(cert.RawSubject)
	if err != nil || h != "9da13359" {
		t.Fatalf("HashName = %q, %v; want 9da13359", h, err)
	}
	line, err := Oneline(cert.RawSubject)
	if err != nil || line != "/C=AU/ST=Some-State/O=Internet Widgits Pty Ltd" {
		t.Fatalf("Oneline = %q, %v", line, err)
	}
	if bin, err := exec.LookPath("openssl"); err == nil {
		checkAgainstOpenSSL(t, cert.RawSubject, runOpenSSL(t, bin, "x509", "subject", data))
	}
}
