package endorse_test

// In-process benchmarks of the whole verification procedure, the Go-side
// counterpart of bench/verify-imagelist.sh (which times the command against
// `openssl smime -verify`). Everything is built here with crypto/x509: an
// RSA-2048 CA, an endorser certificate, a CRL with one revoked entry, a
// signing policy, and an IGTF trust directory named by OpenSSL subject hash;
// the list has the same shape as the script's (about 750 bytes an image, so
// 10,000 images make a 7.5 MB message, near FIELD-NOTES §6's 7.4 MB).
//
//	go test ./internal/endorse -run '^$' -bench Verify -benchmem
//	go test ./internal/endorse -run '^$' -bench Verify10000 -cpuprofile cpu.prof

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmtrust/vmtrust/imagelist"
	"github.com/vmtrust/vmtrust/imagelist/smime"
	"github.com/vmtrust/vmtrust/internal/dn"
	"github.com/vmtrust/vmtrust/internal/endorse"
	"github.com/vmtrust/vmtrust/internal/igtf"
)

func BenchmarkVerify10000(b *testing.B) { benchmarkVerify(b, 10000) }
func BenchmarkVerify10(b *testing.B)    { benchmarkVerify(b, 10) }

func benchmarkVerify(b *testing.B, images int) {
	p := newBenchPKI(b)
	content, err := imagelist.Marshal(benchList(b, p.endorser, images))
	if err != nil {
		b.Fatal(err)
	}
	signed, err := smime.Sign(content, p.endorser, p.endorserKey, smime.SignOptions{})
	if err != nil {
		b.Fatal(err)
	}
	trust, err := igtf.Load(p.dir)
	if err != nil {
		b.Fatal(err)
	}
	if len(trust.CAs) != 1 || len(trust.Skipped) != 0 {
		b.Fatalf("trust directory: CAs %d, skipped %v", len(trust.CAs), trust.Skipped)
	}
	opts := endorse.Options{At: time.Now(), CRL: igtf.CRLRequire}
	rep := endorse.Verify(signed, trust, opts)
	if !rep.OK {
		b.Fatalf("the benchmark list does not verify: %s: %s", rep.Reason, rep.Error)
	}
	if len(rep.List.Images) != images {
		b.Fatalf("verified list has %d images, want %d", len(rep.List.Images), images)
	}
	for _, c := range rep.Checks {
		if c.Status != endorse.Pass {
			b.Fatalf("check %s: %s (%s), want every check to pass", c.Name, c.Status, c.Detail)
		}
	}
	b.SetBytes(int64(len(signed)))
	b.ReportAllocs()
	for b.Loop() {
		if rep := endorse.Verify(signed, trust, opts); !rep.OK {
			b.Fatalf("rejected: %s", rep.Error)
		}
	}
	b.ReportMetric(float64(len(signed)), "msg-bytes")
}

type benchPKI struct {
	dir         string // the IGTF trust directory
	endorser    *x509.Certificate
	endorserKey crypto.Signer
}

const (
	benchCADN       = "/DC=org/DC=vmtrust-bench/CN=vmtrust Bench CA"
	benchEndorserDN = "/DC=org/DC=vmtrust-bench/O=Bench Site/CN=Bench Endorser"
)

// benchName encodes a oneline DN of DC, O and CN components as DER, RDNs in
// the order written: DC as IA5String, the rest as PrintableString. (`openssl
// req` writes UTF8String; neither the oneline form nor the subject hash
// depends on the string type.)
func benchName(b *testing.B, oneline string) []byte {
	b.Helper()
	oids := map[string]asn1.ObjectIdentifier{
		"DC": {0, 9, 2342, 19200300, 100, 1, 25}, "O": {2, 5, 4, 10}, "CN": {2, 5, 4, 3},
	}
	var seq pkix.RDNSequence
	for _, part := range strings.Split(strings.TrimPrefix(oneline, "/"), "/") {
		k, v, _ := strings.Cut(part, "=")
		var val any = v
		if k == "DC" {
			val = asn1.RawValue{Tag: asn1.TagIA5String, Bytes: []byte(v)}
		}
		seq = append(seq, pkix.RelativeDistinguishedNameSET{{Type: oids[k], Value: val}})
	}
	der, err := asn1.Marshal(seq)
	if err != nil {
		b.Fatal(err)
	}
	return der
}

func newBenchPKI(b *testing.B) *benchPKI {
	b.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	newKey := func() *rsa.PrivateKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			b.Fatal(err)
		}
		return k
	}
	caKey, eeKey := newKey(), newKey()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), RawSubject: benchName(b, benchCADN),
		NotBefore: now.Add(-24 * time.Hour), NotAfter: now.Add(10 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		b.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		b.Fatal(err)
	}
	eeTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(4097), RawSubject: benchName(b, benchEndorserDN),
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection, x509.ExtKeyUsageClientAuth},
	}
	eeDER, err := x509.CreateCertificate(rand.Reader, eeTmpl, ca, eeKey.Public(), caKey)
	if err != nil {
		b.Fatal(err)
	}
	ee, err := x509.ParseCertificate(eeDER)
	if err != nil {
		b.Fatal(err)
	}
	crl, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(1), ThisUpdate: now.Add(-time.Hour), NextUpdate: now.Add(30 * 24 * time.Hour),
		RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: big.NewInt(4098), RevocationTime: now.Add(-time.Hour)}},
	}, ca, caKey)
	if err != nil {
		b.Fatal(err)
	}
	hash, err := dn.HashName(ca.RawSubject)
	if err != nil {
		b.Fatal(err)
	}
	caSubject, err := dn.Oneline(ca.RawSubject)
	if err != nil {
		b.Fatal(err)
	}
	dir := filepath.Join(b.TempDir(), "certificates")
	files := map[string][]byte{
		hash + ".0":  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		hash + ".r0": pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: crl}),
		hash + ".signing_policy": []byte("access_id_CA X509 '" + caSubject + "'\npos_rights globus CA:sign\n" +
			"cond_subjects globus '\"/DC=org/DC=vmtrust-bench/*\"'\n"),
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return &benchPKI{dir: dir, endorser: ee, endorserKey: eeKey}
}

// benchList is a list of n images with the fields bench/verify-imagelist.sh
// writes: every required field of a HEPiX image (a 128-hex sha512, hv:size,
// ...), sl:comments empty.
func benchList(b *testing.B, endorser *x509.Certificate, n int) *imagelist.List {
	b.Helper()
	subject, err1 := dn.Oneline(endorser.RawSubject)
	issuer, err2 := dn.Oneline(endorser.RawIssuer)
	if err1 != nil || err2 != nil {
		b.Fatal(err1, err2)
	}
	now := time.Now().UTC().Truncate(time.Second)
	l := &imagelist.List{
		Created: now.Add(-10 * time.Minute), Expires: now.Add(imagelist.DefaultLifetime),
		Identifier:  "5d5e7c4e-2f1a-4f43-9d3c-0a9a4f1b2c3d",
		Title:       "Bench site images",
		Description: "Virtual machine images endorsed by the bench site for its grid and cloud resources",
		Source:      "https://images.bench-site.example/", URI: "https://images.bench-site.example/image.list",
		Version: "2026.07-1",
		Endorser: imagelist.Endorser{DN: subject, CA: issuer,
			Email: "cloud-admins@bench-site.example", Creator: "Bench site cloud administrators"},
	}
	osNames, osVersions := []string{"Debian", "AlmaLinux", "Ubuntu", "Rocky"}, []string{"12", "9.4", "24.04", "9.4"}
	for i := 1; i <= n; i++ {
		sum := sha512.Sum512(fmt.Appendf(nil, "bench image %d", i))
		h := hex.EncodeToString(sum[:])
		uuid := h[0:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:32]
		osName, osVersion := osNames[(i-1)%4], osVersions[(i-1)%4]
		l.Images = append(l.Images, imagelist.Image{
			Identifier:  uuid,
			Title:       fmt.Sprintf("%s %s worker node %05d", osName, osVersion, i),
			Description: fmt.Sprintf("%s %s worker node image, build %05d", osName, osVersion, i),
			Size:        2147483648 + int64(i)*65536,
			SHA512:      h,
			URI:         "https://images.site.example/" + uuid + ".qcow2",
			Version:     fmt.Sprintf("2026.%02d-%d", i%12+1, i),
			Hypervisor:  "QEMU,KVM", Arch: "x86_64", OS: "Linux", OSVersion: osVersion,
		})
	}
	return l
}
