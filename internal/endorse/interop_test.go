package endorse_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vmtrust/vmtrust/internal/endorse"
	"github.com/vmtrust/vmtrust/internal/igtf"
	"github.com/vmtrust/vmtrust/internal/vmtest"
)

// The cloudkeeper project's signed lists: valid signatures by a self-signed
// certificate in ca/, whose hv:dn/hv:ca name someone else.
func TestCloudkeeperLists(t *testing.T) {
	dir := vmtest.SharedTestdata(t, "imagelists/cloudkeeper")
	trust, err := igtf.Load(filepath.Join(dir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	if len(trust.CAs) != 1 || trust.CAs[0].Hash != "9da13359" {
		t.Fatalf("trust dir CAs = %+v, skipped %v; want 9da13359.0", trust.CAs, trust.Skipped)
	}
	at := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC) // inside the signer's validity (2018-2028)
	for _, name := range []string{"imagelist01.signed", "imagelist02.signed", "imagelist03.signed", "imagelist04.signed"} {
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			status := func(r *endorse.Report) map[string]endorse.Status {
				m := map[string]endorse.Status{}
				for _, c := range r.Checks {
					m[c.Name] = c.Status
				}
				return m
			}
			// The directory has no CRL: without one the signature, chain and
			// list are fine and the endorser mismatch is what rejects it.
			rep := endorse.Verify(raw, trust, endorse.Options{At: at, CRL: igtf.CRLOptional})
			if rep.OK || rep.Reason != endorse.ReasonDNMismatch {
				t.Fatalf("reason = %q (%s), want %s\n%s", rep.Reason, rep.Error, endorse.ReasonDNMismatch, dump(rep))
			}
			st := status(rep)
			for _, c := range []string{endorse.CheckFormat, endorse.CheckSignature, endorse.CheckSigningTime, endorse.CheckChain, endorse.CheckValidity, endorse.CheckListCreated, endorse.CheckListValidity} {
				if st[c] != endorse.Pass {
					t.Errorf("check %s = %s, want pass\n%s", c, st[c], dump(rep))
				}
			}
			if st[endorse.CheckEndorserDN] != endorse.Fail || st[endorse.CheckEndorserCA] != endorse.Fail {
				t.Errorf("endorser checks = %s/%s, want fail/fail", st[endorse.CheckEndorserDN], st[endorse.CheckEndorserCA])
			}
			if rep.Signer != "/C=AU/ST=Some-State/O=Internet Widgits Pty Ltd" {
				t.Errorf("signer = %q", rep.Signer)
			}
			// vmcatcher's rule: the CRL must be there. Both failures are reported.
			rep = endorse.Verify(raw, trust, endorse.Options{At: at})
			if rep.Reason != endorse.ReasonCRLMissing {
				t.Fatalf("with CRLs required: reason = %q, want %s", rep.Reason, endorse.ReasonCRLMissing)
			}
			if st := status(rep); st[endorse.CheckEndorserDN] != endorse.Fail {
				t.Errorf("with CRLs required the endorser mismatch is still reported: got %s", st[endorse.CheckEndorserDN])
			}
		})
	}
	t.Run("imagelist_invalid.signed", func(t *testing.T) {
		raw, err := os.ReadFile(filepath.Join(dir, "imagelist_invalid.signed"))
		if err != nil {
			t.Fatal(err)
		}
		rep := endorse.Verify(raw, trust, endorse.Options{At: at, CRL: igtf.CRLOptional})
		if rep.Reason != endorse.ReasonTampered {
			t.Fatalf("reason = %q (%s), want %s", rep.Reason, rep.Error, endorse.ReasonTampered)
		}
	})
	t.Run("imagelist01.unsigned", func(t *testing.T) {
		raw, err := os.ReadFile(filepath.Join(dir, "imagelist01.unsigned"))
		if err != nil {
			t.Fatal(err)
		}
		if rep := endorse.Verify(raw, trust, endorse.Options{At: at}); rep.Reason != endorse.ReasonUnsigned {
			t.Fatalf("reason = %q, want %s", rep.Reason, endorse.ReasonUnsigned)
		}
	})
}
