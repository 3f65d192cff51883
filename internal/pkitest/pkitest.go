// Package pkitest builds throw-away X.509 PKIs for tests: CAs, endorser
// certificates, CRLs, and IGTF-style trust directories named by OpenSSL
// subject hash. It is for tests only; nothing outside _test.go files may
// import it.
//
// Names are given in OpenSSL oneline form ("/DC=org/DC=example/CN=Alice")
// and encoded in exactly that RDN order, so the verifier's hv:dn comparison
// is exercised on real orderings.
package pkitest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmtrust/vmtrust/internal/dn"
)

var attrOIDs = map[string]asn1.ObjectIdentifier{
	"C":            {2, 5, 4, 6},
	"ST":           {2, 5, 4, 8},
	"L":            {2, 5, 4, 7},
	"O":            {2, 5, 4, 10},
	"OU":           {2, 5, 4, 11},
	"CN":           {2, 5, 4, 3},
	"DC":           {0, 9, 2342, 19200300, 100, 1, 25},
	"emailAddress": {1, 2, 840, 113549, 1, 9, 1},
}

// RawName encodes a oneline DN ("/C=DE/O=Grid/CN=x") as DER, RDNs in order.
func RawName(t testing.TB, oneline string) []byte {
	t.Helper()
	var seq pkix.RDNSequence
	for _, part := range strings.Split(strings.TrimPrefix(oneline, "/"), "/") {
		k, v, ok := strings.Cut(part, "=")
		oid, known := attrOIDs[k]
		if !ok || !known {
			t.Fatalf("pkitest: bad name component %q in %q", part, oneline)
		}
		var val any = v
		if k == "DC" || k == "emailAddress" {
			val = asn1.RawValue{Tag: asn1.TagIA5String, Bytes: []byte(v)}
		}
		seq = append(seq, pkix.RelativeDistinguishedNameSET{{Type: oid, Value: val}})
	}
	der, err := asn1.Marshal(seq)
	if err != nil {
		t.Fatalf("pkitest: encoding %q: %v", oneline, err)
	}
	return der
}

var serial atomic.Int64

func nextSerial() *big.Int { return big.NewInt(1000 + serial.Add(1)) }

// Key generation is the slow part of a test PKI; RSA only where asked.
func newKey(t testing.TB, rsaKey bool) crypto.Signer {
	t.Helper()
	if rsaKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Identity is a certificate and its key.
type Identity struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// Subject and Issuer in OpenSSL oneline form.
func (id *Identity) Subject() string { s, _ := dn.Oneline(id.Cert.RawSubject); return s }
func (id *Identity) Issuer() string  { s, _ := dn.Oneline(id.Cert.RawIssuer); return s }

// Opts shape a certificate. Zero times mean one year either side of now.
type Opts struct {
	NotBefore, NotAfter time.Time
	RSA                 bool // an RSA-2048 key instead of ECDSA P-256
	// EKU replaces the end-entity default, emailProtection.
	EKU []x509.ExtKeyUsage
}

func (o Opts) times() (time.Time, time.Time) {
	nb, na := o.NotBefore, o.NotAfter
	if nb.IsZero() {
		nb = time.Now().Add(-365 * 24 * time.Hour)
	}
	if na.IsZero() {
		na = time.Now().Add(365 * 24 * time.Hour)
	}
	return nb.UTC().Truncate(time.Second), na.UTC().Truncate(time.Second)
}

// NewCA makes a self-signed root CA.
func NewCA(t testing.TB, subject string, o Opts) *Identity {
	t.Helper()
	key := newKey(t, o.RSA)
	nb, na := o.times()
	raw := RawName(t, subject)
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(), RawSubject: raw, NotBefore: nb, NotAfter: na,
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatalf("pkitest: CA %s: %v", subject, err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &Identity{Cert: c, Key: key}
}

// Issue makes a certificate signed by ca. ca==true makes an intermediate CA.
func (ca *Identity) Issue(t testing.TB, subject string, isCA bool, o Opts) *Identity {
	t.Helper()
	key := newKey(t, o.RSA)
	nb, na := o.times()
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(), RawSubject: RawName(t, subject), NotBefore: nb, NotAfter: na,
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	if isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}
		if o.EKU != nil {
			tmpl.ExtKeyUsage = o.EKU
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		t.Fatalf("pkitest: issuing %s: %v", subject, err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &Identity{Cert: c, Key: key}
}

// CRL makes a CRL of ca, valid from thisUpdate to nextUpdate, listing revoked.
func (ca *Identity) CRL(t testing.TB, thisUpdate, nextUpdate time.Time, revoked ...*x509.Certificate) []byte {
	t.Helper()
	var entries []x509.RevocationListEntry
	for _, c := range revoked {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: thisUpdate})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: nextSerial(), ThisUpdate: thisUpdate.UTC(), NextUpdate: nextUpdate.UTC(),
		RevokedCertificateEntries: entries,
	}, ca.Cert, ca.Key)
	if err != nil {
		t.Fatalf("pkitest: CRL: %v", err)
	}
	return der
}

// CurrentCRL is a CRL valid from an hour ago for a week.
func (ca *Identity) CurrentCRL(t testing.TB, revoked ...*x509.Certificate) []byte {
	now := time.Now()
	return ca.CRL(t, now.Add(-time.Hour), now.Add(7*24*time.Hour), revoked...)
}

// Hash is the OpenSSL subject hash of the certificate, as used in file names.
func (id *Identity) Hash(t testing.TB) string {
	h, err := dn.HashName(id.Cert.RawSubject)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// CertPEM and KeyPEM encode the identity for files and OpenSSL.
func (id *Identity) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: id.Cert.Raw})
}

func (id *Identity) KeyPEM(t testing.TB) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(id.Key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// Dir is an IGTF trust directory being assembled.
type Dir struct {
	t    testing.TB
	Path string
}

// NewDir makes an empty trust directory under t.TempDir().
func NewDir(t testing.TB) *Dir {
	p := filepath.Join(t.TempDir(), "certificates")
	if err := os.Mkdir(p, 0o755); err != nil {
		t.Fatal(err)
	}
	return &Dir{t: t, Path: p}
}

func (d *Dir) write(name string, b []byte) {
	d.t.Helper()
	if err := os.WriteFile(filepath.Join(d.Path, name), b, 0o644); err != nil {
		d.t.Fatal(err)
	}
}

// AddCA writes HASH.0.
func (d *Dir) AddCA(ca *Identity) *Dir { d.write(ca.Hash(d.t)+".0", ca.CertPEM()); return d }

// AddCRL writes HASH.r0 (PEM) for ca.
func (d *Dir) AddCRL(ca *Identity, der []byte) *Dir {
	d.write(ca.Hash(d.t)+".r0", pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}))
	return d
}

// AddSigningPolicy writes HASH.signing_policy permitting the given globs.
func (d *Dir) AddSigningPolicy(ca *Identity, subjects ...string) *Dir {
	q := make([]string, len(subjects))
	for i, s := range subjects {
		q[i] = `"` + s + `"`
	}
	d.write(ca.Hash(d.t)+".signing_policy", []byte("access_id_CA X509 '"+ca.Subject()+"'\npos_rights globus CA:sign\ncond_subjects globus '"+strings.Join(q, " ")+"'\n"))
	return d
}

// WriteFile writes any file into the directory (for hostile cases).
func (d *Dir) WriteFile(name string, b []byte) *Dir { d.write(name, b); return d }
