package igtf_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vmtrust/vmtrust/internal/igtf"
	"github.com/vmtrust/vmtrust/internal/pkitest"
)

func TestLoadSkipsWhatItCannotUse(t *testing.T) {
	ca := pkitest.NewCA(t, "/DC=org/DC=igtf-test/CN=Good CA", pkitest.Opts{})
	other := pkitest.NewCA(t, "/DC=org/DC=igtf-test/CN=Other CA", pkitest.Opts{})
	leaf := ca.Issue(t, "/DC=org/DC=igtf-test/CN=Leaf", false, pkitest.Opts{})
	d := pkitest.NewDir(t).AddCA(ca).AddCRL(ca, ca.CurrentCRL(t)).
		WriteFile("0badbeef.0", other.CertPEM()).     // named after another hash
		WriteFile(leaf.Hash(t)+".0", leaf.CertPEM()). // not a CA
		WriteFile("12345678.0", []byte("garbage")).
		WriteFile("abcdef01.r0", ca.CurrentCRL(t)). // CRL without its CA
		WriteFile("README", []byte("ignored"))
	dir, err := igtf.Load(d.Path)
	if err != nil {
		t.Fatal(err)
	}
	if len(dir.CAs) != 1 || dir.CAs[0].Subject != "/DC=org/DC=igtf-test/CN=Good CA" || len(dir.CAs[0].CRLs) != 1 {
		t.Fatalf("CAs = %+v", dir.CAs)
	}
	joined := strings.Join(dir.Skipped, "\n")
	for _, want := range []string{"0badbeef.0: subject hash", ".0: not a CA certificate", "12345678.0: not a PEM", "abcdef01.r0: no CA certificate"} {
		if !strings.Contains(joined, want) {
			t.Errorf("Skipped lacks %q:\n%s", want, joined)
		}
	}
	if _, err := igtf.Load(d.Path + "/missing"); err == nil {
		t.Fatal("Load of a missing directory succeeded")
	}
}

// A policy file that does not parse must deny, not be ignored.
func TestBrokenPolicyFailsClosed(t *testing.T) {
	ca := pkitest.NewCA(t, "/DC=org/DC=igtf-test/CN=Policy CA", pkitest.Opts{})
	leaf := ca.Issue(t, "/DC=org/DC=igtf-test/CN=Leaf", false, pkitest.Opts{})
	d := pkitest.NewDir(t).AddCA(ca).WriteFile(ca.Hash(t)+".namespaces", []byte("TO Issuer \"SELF\" PERMIT Subject \"(\"\n"))
	dir, err := igtf.Load(d.Path)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := dir.Chain(leaf.Cert, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dir.Namespaces(chain); !errors.Is(err, igtf.ErrNamespace) {
		t.Fatalf("Namespaces with a broken policy = %v, want ErrNamespace", err)
	}
	good := pkitest.NewDir(t).AddCA(ca).WriteFile(ca.Hash(t)+".namespaces", []byte("TO Issuer \"SELF\" PERMIT Subject \"/DC=org/DC=igtf-test/.*\"\n"))
	dir, _ = igtf.Load(good.Path)
	if files, err := dir.Namespaces(chain); err != nil || len(files) != 1 {
		t.Fatalf("Namespaces with a permitting policy = %v, %v", files, err)
	}
}

func TestCRLModes(t *testing.T) {
	if _, err := igtf.ParseCRLMode("maybe"); err == nil {
		t.Fatal("ParseCRLMode accepted nonsense")
	}
	ca := pkitest.NewCA(t, "/DC=org/DC=igtf-test/CN=CRL CA", pkitest.Opts{})
	leaf := ca.Issue(t, "/DC=org/DC=igtf-test/CN=Leaf", false, pkitest.Opts{})
	now := time.Now()
	d := pkitest.NewDir(t).AddCA(ca).
		WriteFile(ca.Hash(t)+".r1", pemCRL(ca.CRL(t, now.Add(-48*time.Hour), now.Add(-24*time.Hour)))).
		AddCRL(ca, ca.CRL(t, now.Add(-time.Hour), now.Add(time.Hour), leaf.Cert))
	dir, err := igtf.Load(d.Path)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := dir.Chain(leaf.Cert, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	// The current CRL is chosen over the stale one, and it revokes the leaf.
	revs, err := dir.CRLs(chain, now, igtf.CRLRequire)
	if err != nil {
		t.Fatal(err)
	}
	if err := igtf.Revoked(revs); !errors.Is(err, igtf.ErrRevoked) {
		t.Fatalf("Revoked = %v, want ErrRevoked", err)
	}
	// Two hours later both CRLs are stale: invalid, in every mode but off.
	for _, m := range []igtf.CRLMode{igtf.CRLRequire, igtf.CRLOptional} {
		if _, err := dir.CRLs(chain, now.Add(2*time.Hour), m); !errors.Is(err, igtf.ErrCRLInvalid) {
			t.Errorf("mode %s: CRLs = %v, want ErrCRLInvalid", m, err)
		}
	}
	if revs, err := dir.CRLs(chain, now.Add(2*time.Hour), igtf.CRLOff); err != nil || revs != nil {
		t.Errorf("mode off: %v %v", revs, err)
	}
}
