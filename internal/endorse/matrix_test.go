package endorse_test

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmtrust/vmtrust/imagelist"
	"github.com/vmtrust/vmtrust/imagelist/smime"
	"github.com/vmtrust/vmtrust/internal/endorse"
	"github.com/vmtrust/vmtrust/internal/igtf"
	"github.com/vmtrust/vmtrust/internal/pkitest"
)

const (
	caDN       = "/DC=org/DC=vmtrust-test/CN=Test Grid CA"
	endorserDN = "/DC=org/DC=vmtrust-test/O=Test Site/CN=Test Endorser"
)

// pki is the shared world of the matrix: one CA, its endorser, and variants.
type pki struct {
	ca, endorser, rsaEndorser *pkitest.Identity
	other                     *pkitest.Identity // a CA the site does not trust
	otherEndorser             *pkitest.Identity
	inter, interEndorser      *pkitest.Identity // intermediate CA under ca
	revoked                   *pkitest.Identity
	expired                   *pkitest.Identity // expired before anything was signed
	shortLived                *pkitest.Identity // expires in two days
	late                      *pkitest.Identity // valid only from an hour ago
	outside                   *pkitest.Identity // outside the CA's namespace
	tlsServer                 *pkitest.Identity // a TLS server certificate of the same CA
	impostorCA                *pkitest.Identity // same name as ca, another key
}

var (
	worldOnce sync.Once
	world     *pki
)

func getPKI(t *testing.T) *pki {
	worldOnce.Do(func() {
		now := time.Now()
		p := &pki{}
		p.ca = pkitest.NewCA(t, caDN, pkitest.Opts{})
		p.endorser = p.ca.Issue(t, endorserDN, false, pkitest.Opts{})
		p.rsaEndorser = p.ca.Issue(t, "/DC=org/DC=vmtrust-test/O=Test Site/CN=RSA Endorser", false, pkitest.Opts{RSA: true})
		p.other = pkitest.NewCA(t, "/DC=org/DC=elsewhere/CN=Other CA", pkitest.Opts{})
		p.otherEndorser = p.other.Issue(t, "/DC=org/DC=elsewhere/CN=Other Endorser", false, pkitest.Opts{})
		p.inter = p.ca.Issue(t, "/DC=org/DC=vmtrust-test/CN=Test Intermediate CA", true, pkitest.Opts{})
		p.interEndorser = p.inter.Issue(t, "/DC=org/DC=vmtrust-test/O=Experiment/CN=Experiment Endorser", false, pkitest.Opts{})
		p.revoked = p.ca.Issue(t, "/DC=org/DC=vmtrust-test/O=Test Site/CN=Revoked Endorser", false, pkitest.Opts{})
		p.expired = p.ca.Issue(t, "/DC=org/DC=vmtrust-test/O=Test Site/CN=Expired Endorser", false,
			pkitest.Opts{NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-24 * time.Hour)})
		p.shortLived = p.ca.Issue(t, "/DC=org/DC=vmtrust-test/O=Test Site/CN=Short Endorser", false,
			pkitest.Opts{NotBefore: now.Add(-time.Hour), NotAfter: now.Add(48 * time.Hour)})
		p.late = p.ca.Issue(t, "/DC=org/DC=vmtrust-test/O=Test Site/CN=Late Endorser", false,
			pkitest.Opts{NotBefore: now.Add(-time.Hour), NotAfter: now.Add(48 * time.Hour)})
		p.outside = p.ca.Issue(t, "/DC=com/DC=intruder/CN=Outside Endorser", false, pkitest.Opts{})
		p.tlsServer = p.ca.Issue(t, "/DC=org/DC=vmtrust-test/CN=host.vmtrust-test.org", false, pkitest.Opts{EKU: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		p.impostorCA = pkitest.NewCA(t, caDN, pkitest.Opts{})
		world = p
	})
	if world == nil {
		t.Fatal("test PKI could not be built")
	}
	return world
}

// trustDir is the site's directory: ca with a current CRL revoking p.revoked,
// a namespace policy, and the intermediate with its CRL.
func (p *pki) trustDir(t *testing.T) *pkitest.Dir {
	return pkitest.NewDir(t).
		AddCA(p.ca).AddCRL(p.ca, p.ca.CurrentCRL(t, p.revoked.Cert)).
		AddSigningPolicy(p.ca, "/DC=org/DC=vmtrust-test/*").
		AddCA(p.inter).AddCRL(p.inter, p.inter.CurrentCRL(t))
}

func newList(signer *pkitest.Identity) *imagelist.List {
	now := time.Now().UTC().Truncate(time.Second)
	return &imagelist.List{
		Created: now.Add(-time.Hour), Expires: now.Add(28 * 24 * time.Hour),
		Identifier: "5d5e7c4e-2f1a-4f43-9d3c-0a9a4f1b2c3d", Title: "Test list", Description: "Images of the test site",
		Source: "https://site.test/", URI: "https://site.test/image.list", Version: "7",
		Endorser: imagelist.Endorser{DN: signer.Subject(), CA: signer.Issuer(), Email: "admin@site.test", Creator: "Test admins"},
		Images: []imagelist.Image{
			testImage("8c0a7d1e-1111-4c4c-8d8d-000000000001", "Worker node"),
			testImage("8c0a7d1e-1111-4c4c-8d8d-000000000002", "Login node"),
		},
	}
}

func testImage(id, title string) imagelist.Image {
	return imagelist.Image{
		Identifier: id, Title: title, Description: title + " image", Size: 16 << 20,
		SHA512: strings.Repeat("ab", 64), URI: "https://site.test/" + id + ".qcow2", Version: "12.5",
		Hypervisor: "QEMU,KVM", Format: "qcow2", Arch: "x86_64", OS: "Linux", OSName: "Debian", OSVersion: "12",
	}
}

func marshal(t *testing.T, l *imagelist.List) []byte {
	t.Helper()
	b, err := imagelist.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sign(t *testing.T, id *pkitest.Identity, content []byte, opts smime.SignOptions) []byte {
	t.Helper()
	out, err := smime.Sign(content, id.Cert, id.Key, opts)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func signedList(t *testing.T, id *pkitest.Identity, edit func(*imagelist.List)) []byte {
	l := newList(id)
	if edit != nil {
		edit(l)
	}
	return sign(t, id, marshal(t, l), smime.SignOptions{})
}

// opensslSign signs with the real openssl smime, for shapes Go's library
// cannot make (no certificates, two signers).
func opensslSign(t *testing.T, content []byte, extra []string, ids ...*pkitest.Identity) []byte {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("openssl is required for this test: run scripts/setup.sh (apt-get install openssl)")
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "list.json")
	if err := os.WriteFile(in, content, 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"smime", "-sign", "-in", in, "-md", "sha256"}
	for i, id := range ids {
		c, k := filepath.Join(dir, "c"+string(rune('0'+i))), filepath.Join(dir, "k"+string(rune('0'+i)))
		os.WriteFile(c, id.CertPEM(), 0o644)
		os.WriteFile(k, id.KeyPEM(t), 0o600)
		args = append(args, "-signer", c, "-inkey", k)
	}
	args = append(args, extra...)
	out, err := exec.Command("openssl", args...).Output()
	if err != nil {
		t.Fatalf("openssl %v: %v", args, err)
	}
	return out
}

type matrixCase struct {
	opts  endorse.Options // Endorsers and Identifier
	name  string
	raw   func(t *testing.T, p *pki) []byte
	dir   func(t *testing.T, p *pki) *pkitest.Dir // default p.trustDir
	at    time.Duration                           // offset from now
	crl   igtf.CRLMode
	want  endorse.Reason // "" = must verify
	check string         // the check that must fail
}

func matrix() []matrixCase {
	ok := func(t *testing.T, p *pki) []byte { return signedList(t, p.endorser, nil) }
	replace := func(old, new string) func(t *testing.T, p *pki) []byte {
		return func(t *testing.T, p *pki) []byte {
			raw := ok(t, p)
			if !bytes.Contains(raw, []byte(old)) {
				t.Fatalf("%q not in the signed list", old)
			}
			return bytes.Replace(raw, []byte(old), []byte(new), 1)
		}
	}
	withContent := func(content string) func(t *testing.T, p *pki) []byte {
		return func(t *testing.T, p *pki) []byte { return sign(t, p.endorser, []byte(content), smime.SignOptions{}) }
	}
	return []matrixCase{
		{name: "valid", raw: ok},
		{name: "valid RSA signer", raw: func(t *testing.T, p *pki) []byte { return signedList(t, p.rsaEndorser, nil) }},
		{name: "valid via intermediate CA", raw: func(t *testing.T, p *pki) []byte {
			return sign(t, p.interEndorser, marshal(t, newList(p.interEndorser)), smime.SignOptions{Chain: nil})
		}},
		{name: "valid sha-512", raw: func(t *testing.T, p *pki) []byte {
			return sign(t, p.endorser, marshal(t, newList(p.endorser)), smime.SignOptions{Hash: crypto.SHA512})
		}},
		{name: "valid signed by openssl", raw: func(t *testing.T, p *pki) []byte {
			return opensslSign(t, marshal(t, newList(p.endorser)), nil, p.endorser)
		}},

		{name: "expired list", want: endorse.ReasonListExpired, check: endorse.CheckListValidity, raw: func(t *testing.T, p *pki) []byte {
			return signedList(t, p.endorser, func(l *imagelist.List) {
				l.Created, l.Expires = l.Created.Add(-72*time.Hour), l.Created.Add(-time.Hour)
			})
		}},
		{name: "created in the future", want: endorse.ReasonListFuture, check: endorse.CheckListCreated, raw: func(t *testing.T, p *pki) []byte {
			return signedList(t, p.endorser, func(l *imagelist.List) { l.Created = l.Created.Add(3 * time.Hour) })
		}},
		{name: "signer certificate expired at check time", want: endorse.ReasonCertExpired, check: endorse.CheckValidity, at: 72 * time.Hour,
			raw: func(t *testing.T, p *pki) []byte { return signedList(t, p.shortLived, nil) }},
		{name: "signer certificate not yet valid at check time", want: endorse.ReasonCertNotYetValid, check: endorse.CheckValidity, at: -90 * time.Minute,
			raw: func(t *testing.T, p *pki) []byte {
				return signedList(t, p.late, func(l *imagelist.List) { l.Created = l.Created.Add(-time.Hour) })
			}},
		{name: "signer certificate expired when signed", want: endorse.ReasonCertAtSigning, check: endorse.CheckSigningTime,
			raw: func(t *testing.T, p *pki) []byte { return signedList(t, p.expired, nil) }},
		{name: "signer revoked", want: endorse.ReasonRevoked, check: endorse.CheckRevocation,
			raw: func(t *testing.T, p *pki) []byte { return signedList(t, p.revoked, nil) }},
		{name: "CRL missing", want: endorse.ReasonCRLMissing, check: endorse.CheckCRL, raw: ok,
			dir: func(t *testing.T, p *pki) *pkitest.Dir { return pkitest.NewDir(t).AddCA(p.ca) }},
		{name: "CRL missing allowed by --crl optional", raw: ok, crl: igtf.CRLOptional,
			dir: func(t *testing.T, p *pki) *pkitest.Dir { return pkitest.NewDir(t).AddCA(p.ca) }},
		{name: "CRL expired", want: endorse.ReasonCRLInvalid, check: endorse.CheckCRL, raw: ok,
			dir: func(t *testing.T, p *pki) *pkitest.Dir {
				now := time.Now()
				return pkitest.NewDir(t).AddCA(p.ca).AddCRL(p.ca, p.ca.CRL(t, now.Add(-10*24*time.Hour), now.Add(-3*24*time.Hour)))
			}},
		{name: "CRL expired even with --crl optional", want: endorse.ReasonCRLInvalid, check: endorse.CheckCRL, raw: ok, crl: igtf.CRLOptional,
			dir: func(t *testing.T, p *pki) *pkitest.Dir {
				now := time.Now()
				return pkitest.NewDir(t).AddCA(p.ca).AddCRL(p.ca, p.ca.CRL(t, now.Add(-10*24*time.Hour), now.Add(-3*24*time.Hour)))
			}},
		{name: "CRL forged by another CA", want: endorse.ReasonCRLInvalid, check: endorse.CheckCRL, raw: ok,
			dir: func(t *testing.T, p *pki) *pkitest.Dir {
				return pkitest.NewDir(t).AddCA(p.ca).AddCRL(p.ca, p.other.CurrentCRL(t))
			}},
		{name: "forged signature with a signing time outside the validity", want: endorse.ReasonBadSignature, check: endorse.CheckSignature,
			raw: func(t *testing.T, p *pki) []byte { return flipSignatureByte(t, signedList(t, p.expired, nil)) }},
		{name: "TLS server certificate as signer", want: endorse.ReasonPurpose, check: endorse.CheckPurpose,
			raw: func(t *testing.T, p *pki) []byte { return signedList(t, p.tlsServer, nil) }},
		{name: "CRL under the CA's name, signed by another key", want: endorse.ReasonCRLInvalid, check: endorse.CheckCRL, raw: ok,
			dir: func(t *testing.T, p *pki) *pkitest.Dir {
				return pkitest.NewDir(t).AddCA(p.ca).AddCRL(p.ca, p.impostorCA.CurrentCRL(t))
			}},
		{name: "intermediate CA revoked by the root", want: endorse.ReasonRevoked, check: endorse.CheckRevocation,
			raw: func(t *testing.T, p *pki) []byte {
				return sign(t, p.interEndorser, marshal(t, newList(p.interEndorser)), smime.SignOptions{})
			},
			dir: func(t *testing.T, p *pki) *pkitest.Dir {
				return pkitest.NewDir(t).AddCA(p.ca).AddCRL(p.ca, p.ca.CurrentCRL(t, p.inter.Cert)).
					AddCA(p.inter).AddCRL(p.inter, p.inter.CurrentCRL(t))
			}},
		{name: "authorised endorser", raw: ok, opts: endorse.Options{
			Endorsers:  []endorse.Endorser{{DN: "/DC=org/DC=other/CN=x", CA: caDN}, {DN: endorserDN, CA: caDN}},
			Identifier: "5d5e7c4e-2f1a-4f43-9d3c-0a9a4f1b2c3d"}},
		{name: "signer not the authorised endorser", want: endorse.ReasonUnauthorised, check: endorse.CheckAuthorised,
			raw:  func(t *testing.T, p *pki) []byte { return signedList(t, p.rsaEndorser, nil) },
			opts: endorse.Options{Endorsers: []endorse.Endorser{{DN: endorserDN, CA: caDN}}}},
		{name: "another list at the subscription's address", want: endorse.ReasonIdentifier, check: endorse.CheckIdentifier, raw: ok,
			opts: endorse.Options{Identifier: "00000000-2f1a-4f43-9d3c-0a9a4f1b2c3d"}},
		{name: "unknown CA", want: endorse.ReasonUntrusted, check: endorse.CheckChain,
			raw: func(t *testing.T, p *pki) []byte { return signedList(t, p.otherEndorser, nil) }},
		{name: "intermediate carried in the message but not in the directory", want: endorse.ReasonUntrusted, check: endorse.CheckChain,
			raw: func(t *testing.T, p *pki) []byte {
				return sign(t, p.interEndorser, marshal(t, newList(p.interEndorser)), smime.SignOptions{Chain: []*x509.Certificate{p.inter.Cert}})
			},
			dir: func(t *testing.T, p *pki) *pkitest.Dir {
				return pkitest.NewDir(t).AddCA(p.ca).AddCRL(p.ca, p.ca.CurrentCRL(t))
			}},
		{name: "signer outside the CA namespace", want: endorse.ReasonNamespace, check: endorse.CheckNamespace,
			raw: func(t *testing.T, p *pki) []byte { return signedList(t, p.outside, nil) }},
		{name: "hv:dn is not the signer", want: endorse.ReasonDNMismatch, check: endorse.CheckEndorserDN, raw: func(t *testing.T, p *pki) []byte {
			return signedList(t, p.endorser, func(l *imagelist.List) { l.Endorser.DN = "/DC=org/DC=vmtrust-test/O=Test Site/CN=Someone Else" })
		}},
		{name: "hv:ca is not the issuer", want: endorse.ReasonCAMismatch, check: endorse.CheckEndorserCA, raw: func(t *testing.T, p *pki) []byte {
			return signedList(t, p.endorser, func(l *imagelist.List) { l.Endorser.CA = "/DC=org/DC=elsewhere/CN=Other CA" })
		}},
		{name: "tampered JSON", want: endorse.ReasonTampered, check: endorse.CheckSignature, raw: replace(`"hv:size": 16777216`, `"hv:size": 16777217`)},
		{name: "tampered JSON, line endings changed", want: endorse.ReasonTampered, check: endorse.CheckSignature,
			raw: replace(`"Test list",`+"\r\n", `"Test list", `+"\r\n")},
		{name: "tampered signature value", want: endorse.ReasonBadSignature, check: endorse.CheckSignature, raw: func(t *testing.T, p *pki) []byte {
			return flipSignatureByte(t, signedList(t, p.rsaEndorser, nil))
		}},
		{name: "two signers", want: endorse.ReasonSignerCount, check: endorse.CheckSignature, raw: func(t *testing.T, p *pki) []byte {
			return opensslSign(t, marshal(t, newList(p.endorser)), nil, p.endorser, p.rsaEndorser)
		}},
		{name: "no signer certificate", want: endorse.ReasonNoSignerCert, check: endorse.CheckSignature, raw: func(t *testing.T, p *pki) []byte {
			return opensslSign(t, marshal(t, newList(p.endorser)), []string{"-nocerts"}, p.endorser)
		}},
		{name: "no signed attributes", want: endorse.ReasonUnsupported, check: endorse.CheckSignature, raw: func(t *testing.T, p *pki) []byte {
			return opensslSign(t, marshal(t, newList(p.endorser)), []string{"-noattr"}, p.endorser)
		}},
		{name: "unsigned input", want: endorse.ReasonUnsigned, check: endorse.CheckFormat,
			raw: func(t *testing.T, p *pki) []byte { return marshal(t, newList(p.endorser)) }},
		{name: "not multipart/signed", want: endorse.ReasonUnsigned, check: endorse.CheckFormat,
			raw: func(t *testing.T, p *pki) []byte {
				return []byte("MIME-Version: 1.0\nContent-Type: text/plain\n\nhello\n")
			}},
		{name: "truncated file", want: endorse.ReasonMalformed, check: endorse.CheckFormat, raw: func(t *testing.T, p *pki) []byte {
			raw := ok(t, p)
			return raw[:len(raw)*2/3]
		}},
		{name: "truncated signature", want: endorse.ReasonBadPKCS7, check: endorse.CheckSignature, raw: func(t *testing.T, p *pki) []byte {
			raw := ok(t, p)
			i := bytes.LastIndex(raw, []byte("\n\n------"))
			j := bytes.Index(raw, []byte("filename=\"smime.p7s\"\n\n")) + len("filename=\"smime.p7s\"\n\n")
			return append(append(append([]byte{}, raw[:j]...), raw[j:j+(i-j)/2/4*4]...), raw[i:]...)
		}},
		{name: "wrong micalg", want: endorse.ReasonUnsupported, check: endorse.CheckFormat, raw: replace(`micalg="sha-256"`, `micalg="md5"`)},
		{name: "micalg does not match the signature", want: endorse.ReasonUnsupported, check: endorse.CheckSignature, raw: replace(`micalg="sha-256"`, `micalg="sha-512"`)},
		{name: "wrong protocol", want: endorse.ReasonUnsupported, check: endorse.CheckFormat,
			raw: replace(`protocol="application/x-pkcs7-signature"`, `protocol="application/pgp-signature"`)},
		{name: "signature not base64", want: endorse.ReasonMalformed, check: endorse.CheckFormat, raw: func(t *testing.T, p *pki) []byte {
			raw := ok(t, p)
			j := bytes.Index(raw, []byte("filename=\"smime.p7s\"\n\n")) + len("filename=\"smime.p7s\"\n\n")
			raw[j+5] = '*'
			return raw
		}},
		{name: "oversize input", want: endorse.ReasonTooLarge, check: endorse.CheckFormat, raw: func(t *testing.T, p *pki) []byte {
			return append(ok(t, p), make([]byte, smime.MaxMessageSize)...)
		}},
		{name: "invalid UTF-8", want: endorse.ReasonInvalidJSON, check: endorse.CheckListFormat, raw: func(t *testing.T, p *pki) []byte {
			c := bytes.Replace(marshal(t, newList(p.endorser)), []byte("Test list"), []byte("Test \xff\xfe list"), 1)
			return sign(t, p.endorser, c, smime.SignOptions{})
		}},
		{name: "invalid JSON", want: endorse.ReasonInvalidJSON, check: endorse.CheckListFormat, raw: withContent(`{"hv:imagelist": {"dc:title": "x",}}`)},
		{name: "not an image list", want: endorse.ReasonInvalidJSON, check: endorse.CheckListFormat, raw: withContent(`{"hello": "world"}`)},
		{name: "duplicate JSON key", want: endorse.ReasonInvalidJSON, check: endorse.CheckListFormat, raw: func(t *testing.T, p *pki) []byte {
			c := bytes.Replace(marshal(t, newList(p.endorser)), []byte(`"hv:version": "7"`), []byte(`"hv:version": "7", "hv:version": "999"`), 1)
			return sign(t, p.endorser, c, smime.SignOptions{})
		}},
		{name: "duplicate image identifiers", want: endorse.ReasonInvalidList, check: endorse.CheckListFormat, raw: func(t *testing.T, p *pki) []byte {
			return signedList(t, p.endorser, func(l *imagelist.List) { l.Images[1].Identifier = l.Images[0].Identifier })
		}},
		{name: "bad sha512", want: endorse.ReasonInvalidList, check: endorse.CheckListFormat, raw: func(t *testing.T, p *pki) []byte {
			return signedList(t, p.endorser, func(l *imagelist.List) { l.Images[0].SHA512 = strings.Repeat("zz", 64) })
		}},
		{name: "image missing a required field", want: endorse.ReasonInvalidList, check: endorse.CheckListFormat, raw: func(t *testing.T, p *pki) []byte {
			c := bytes.Replace(marshal(t, newList(p.endorser)), []byte(`"hv:uri": "https://site.test/8c0a7d1e-1111-4c4c-8d8d-000000000002.qcow2",`), nil, 1)
			return sign(t, p.endorser, c, smime.SignOptions{})
		}},
		{name: "negative size", want: endorse.ReasonInvalidList, check: endorse.CheckListFormat, raw: func(t *testing.T, p *pki) []byte {
			c := bytes.Replace(marshal(t, newList(p.endorser)), []byte(`"hv:size": 16777216`), []byte(`"hv:size": -1`), 1)
			return sign(t, p.endorser, c, smime.SignOptions{})
		}},
	}
}

// flipSignatureByte changes the last byte of the PKCS#7 DER, which for an
// RSA signer without unsigned attributes is the last byte of the signature.
func flipSignatureByte(t *testing.T, raw []byte) []byte {
	t.Helper()
	marker := []byte("filename=\"smime.p7s\"\n\n")
	j := bytes.Index(raw, marker) + len(marker)
	k := bytes.Index(raw[j:], []byte("\n\n")) + j
	der, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(string(raw[j:k]), "\n", ""))
	if err != nil {
		t.Fatal(err)
	}
	der[len(der)-1] ^= 0x01
	out := append([]byte{}, raw[:j]...)
	out = append(out, base64.StdEncoding.EncodeToString(der)...)
	return append(out, raw[k:]...)
}

func TestVerifyMatrix(t *testing.T) {
	p := getPKI(t)
	negatives := 0
	for _, tc := range matrix() {
		t.Run(tc.name, func(t *testing.T) {
			dir := p.trustDir(t)
			if tc.dir != nil {
				dir = tc.dir(t, p)
			}
			trust, err := igtf.Load(dir.Path)
			if err != nil {
				t.Fatal(err)
			}
			raw := tc.raw(t, p)
			opts := tc.opts
			opts.At, opts.CRL = time.Now().Add(tc.at), tc.crl
			rep := endorse.Verify(raw, trust, opts)
			if tc.want == "" {
				if !rep.OK {
					t.Fatalf("Verify = rejected (%s): %s, want verified\n%s", rep.Reason, rep.Error, dump(rep))
				}
				if rep.List == nil || len(rep.List.Images) != 2 || rep.Err() != nil {
					t.Fatalf("verified report has list %v, err %v", rep.List, rep.Err())
				}
				return
			}
			if rep.OK || rep.List != nil || rep.Content != nil {
				t.Fatalf("Verify accepted a list that must be rejected as %s\n%s", tc.want, dump(rep))
			}
			if rep.Reason != tc.want {
				t.Fatalf("Verify reason = %s (%s), want %s\n%s", rep.Reason, rep.Error, tc.want, dump(rep))
			}
			var failed *endorse.Check
			for i := range rep.Checks {
				if rep.Checks[i].Status == endorse.Fail {
					failed = &rep.Checks[i]
					break
				}
			}
			if failed == nil || failed.Name != tc.check {
				t.Fatalf("first failed check = %+v, want %s\n%s", failed, tc.check, dump(rep))
			}
			if rep.Error == "" {
				t.Fatal("rejection without a reason text")
			}
		})
		if tc.want != "" {
			negatives++
		}
	}
	if negatives < 20 {
		t.Fatalf("the negative matrix has %d cases, want at least 20", negatives)
	}
}

func dump(r *endorse.Report) string {
	var b strings.Builder
	for _, c := range r.Checks {
		b.WriteString("  " + string(c.Status) + " " + c.Name + ": " + c.Detail + "\n")
	}
	return b.String()
}
