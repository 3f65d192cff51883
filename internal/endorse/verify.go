package endorse

import (
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vmtrust/vmtrust/imagelist"
	"github.com/vmtrust/vmtrust/imagelist/smime"
	"github.com/vmtrust/vmtrust/internal/igtf"
)

// Check names, in the order they run.
const (
	CheckFormat       = "smime-format"
	CheckSignature    = "signature"
	CheckSigningTime  = "cert-at-signing-time"
	CheckChain        = "chain"
	CheckValidity     = "cert-validity"
	CheckCRL          = "crl"
	CheckRevocation   = "revocation"
	CheckNamespace    = "namespace"
	CheckListFormat   = "list-format"
	CheckEndorserDN   = "endorser-dn"
	CheckEndorserCA   = "endorser-ca"
	CheckListCreated  = "list-created"
	CheckListValidity = "list-expires"
)

var checkOrder = []string{
	CheckFormat, CheckSignature, CheckSigningTime, CheckChain, CheckValidity,
	CheckCRL, CheckRevocation, CheckNamespace, CheckListFormat,
	CheckEndorserDN, CheckEndorserCA, CheckListCreated, CheckListValidity,
}

type run struct {
	r     *Report
	byKey map[string]*Check
}

func (x *run) set(name string, st Status, reason Reason, format string, args ...any) {
	c := x.byKey[name]
	c.Status, c.Reason, c.Detail = st, reason, fmt.Sprintf(format, args...)
}

func (x *run) pass(name, format string, args ...any) { x.set(name, Pass, "", format, args...) }

func (x *run) fail(name string, reason Reason, err error) {
	x.set(name, Fail, reason, "%v", err)
}

// smimeReason maps a smime error class to a Reason.
func smimeReason(err error) Reason {
	switch {
	case errors.Is(err, smime.ErrTooLarge):
		return ReasonTooLarge
	case errors.Is(err, smime.ErrUnsigned):
		return ReasonUnsigned
	case errors.Is(err, smime.ErrUnsupported):
		return ReasonUnsupported
	case errors.Is(err, smime.ErrSignature):
		return ReasonBadPKCS7
	case errors.Is(err, smime.ErrSignerCount):
		return ReasonSignerCount
	case errors.Is(err, smime.ErrNoSignerCert):
		return ReasonNoSignerCert
	case errors.Is(err, smime.ErrTampered):
		return ReasonTampered
	case errors.Is(err, smime.ErrBadSignature):
		return ReasonBadSignature
	case errors.Is(err, smime.ErrSigningTime):
		return ReasonCertAtSigning
	}
	return ReasonMalformed
}

func igtfReason(err error) Reason {
	switch {
	case errors.Is(err, igtf.ErrCertAtSigning):
		return ReasonCertAtSigning
	case errors.Is(err, igtf.ErrCertExpired):
		return ReasonCertExpired
	case errors.Is(err, igtf.ErrCertNotYetValid):
		return ReasonCertNotYetValid
	case errors.Is(err, igtf.ErrCRLMissing):
		return ReasonCRLMissing
	case errors.Is(err, igtf.ErrCRLInvalid):
		return ReasonCRLInvalid
	case errors.Is(err, igtf.ErrRevoked):
		return ReasonRevoked
	case errors.Is(err, igtf.ErrNamespace):
		return ReasonNamespace
	}
	return ReasonUntrusted
}

// Verify runs the whole procedure on a signed list against a trust
// directory. It never returns a nil report.
func Verify(raw []byte, trust *igtf.Dir, opts Options) *Report {
	at := opts.At
	if at.IsZero() {
		at = time.Now()
	}
	at = at.UTC()
	mode := opts.CRL
	if mode == "" {
		mode = igtf.CRLRequire
	}
	x := &run{r: &Report{At: at.Format(time.RFC3339)}, byKey: map[string]*Check{}}
	x.r.Checks = make([]Check, len(checkOrder))
	for i, n := range checkOrder {
		x.r.Checks[i] = Check{Name: n, Status: Skip, Detail: "not run: an earlier check failed"}
		x.byKey[n] = &x.r.Checks[i]
	}
	content, list := x.verify(raw, trust, at, mode)
	for _, c := range x.r.Checks {
		if c.Status == Fail {
			x.r.Reason, x.r.Error = c.Reason, c.Detail
			return x.r
		}
	}
	x.r.OK, x.r.List, x.r.Content = true, list, content
	return x.r
}

// verify fills in the checks; it returns content and list only when every
// check it ran passed.
func (x *run) verify(raw []byte, trust *igtf.Dir, at time.Time, mode igtf.CRLMode) ([]byte, *imagelist.List) {
	msg, err := smime.Split(raw)
	if err != nil {
		x.fail(CheckFormat, smimeReason(err), err)
		return nil, nil
	}
	x.pass(CheckFormat, "multipart/signed, protocol %s, micalg %s, %d bytes of content", msg.Protocol, msg.MicAlg, len(msg.Content))

	sig, err := smime.Verify(msg)
	if err != nil {
		if errors.Is(err, smime.ErrSigningTime) {
			x.pass(CheckSignature, "content digest matches the signed digest")
			x.fail(CheckSigningTime, ReasonCertAtSigning, err)
		} else {
			x.fail(CheckSignature, smimeReason(err), err)
		}
		return nil, nil
	}
	sum := sha512.Sum512(msg.Content)
	x.r.ContentSHA512 = hex.EncodeToString(sum[:])
	x.r.Signer, x.r.SignerIssuer = oneline(sig.Signer.RawSubject), oneline(sig.Signer.RawIssuer)
	x.pass(CheckSignature, "one signer, %s; content digest and signature valid", x.r.Signer)
	signedAt := at
	if !sig.SigningTime.IsZero() {
		signedAt = sig.SigningTime.UTC()
		x.r.SigningTime = signedAt.Format(time.RFC3339)
		x.pass(CheckSigningTime, "signed %s, within the signer certificate's validity", x.r.SigningTime)
	} else {
		x.pass(CheckSigningTime, "no signingTime attribute; validity is checked at %s only", x.r.At)
	}

	chain, err := trust.Chain(sig.Signer, sig.Certificates, signedAt)
	if err != nil {
		x.fail(CheckChain, igtfReason(err), err)
	} else {
		names := make([]string, len(chain))
		for i, c := range chain {
			names[i] = oneline(c.RawSubject)
		}
		x.pass(CheckChain, "%s", strings.Join(names, " <- "))
		if err := igtf.Validity(chain, at); err != nil {
			x.fail(CheckValidity, igtfReason(err), err)
		} else {
			x.pass(CheckValidity, "every certificate valid at %s", x.r.At)
		}
		switch revs, err := trust.CRLs(chain, at, mode); {
		case err != nil:
			x.fail(CheckCRL, igtfReason(err), err)
		case mode == igtf.CRLOff:
			x.set(CheckCRL, Skip, "", "CRL checking switched off (--crl off)")
			x.set(CheckRevocation, Skip, "", "CRL checking switched off (--crl off)")
		default:
			var files, missing []string
			for _, r := range revs {
				if r.CRL != nil {
					files = append(files, fmt.Sprintf("%s (next update %s)", r.CRL.File, r.CRL.List.NextUpdate.UTC().Format(time.RFC3339)))
				} else {
					missing = append(missing, r.Issuer.Subject)
				}
			}
			if len(missing) > 0 {
				x.pass(CheckCRL, "no CRL for %s (allowed by --crl optional)%s", strings.Join(missing, ", "), prefixed("; current: ", files))
			} else {
				x.pass(CheckCRL, "current: %s", strings.Join(files, ", "))
			}
			if err := igtf.Revoked(revs); err != nil {
				x.fail(CheckRevocation, igtfReason(err), err)
			} else if len(files) > 0 {
				x.pass(CheckRevocation, "not on any CRL")
			} else {
				x.set(CheckRevocation, Skip, "", "no CRL to consult")
			}
		}
		if files, err := trust.Namespaces(chain); err != nil {
			x.fail(CheckNamespace, igtfReason(err), err)
		} else if len(files) == 0 {
			x.pass(CheckNamespace, "no namespace policy for the issuing CA")
		} else {
			x.pass(CheckNamespace, "permitted by %s", strings.Join(files, ", "))
		}
	}

	// The signature is valid, so the content is what the signer wrote: it is
	// safe to parse it and compare what it claims with who signed it.
	list, err := imagelist.Parse(msg.Content)
	if err != nil {
		x.fail(CheckListFormat, ReasonInvalidJSON, err)
		return nil, nil
	}
	if ps := list.Problems(); len(ps) > 0 {
		s := make([]string, len(ps))
		for i, p := range ps {
			s[i] = p.String()
		}
		x.fail(CheckListFormat, ReasonInvalidList, fmt.Errorf("%d problem(s): %s", len(ps), strings.Join(s, "; ")))
	} else {
		x.pass(CheckListFormat, "list %s version %s, %d image(s)", list.Identifier, list.Version, len(list.Images))
	}
	if list.Endorser.DN != x.r.Signer {
		x.fail(CheckEndorserDN, ReasonDNMismatch, fmt.Errorf("hv:dn %q is not the signer %q", list.Endorser.DN, x.r.Signer))
	} else {
		x.pass(CheckEndorserDN, "hv:dn is the signer")
	}
	if list.Endorser.CA != x.r.SignerIssuer {
		x.fail(CheckEndorserCA, ReasonCAMismatch, fmt.Errorf("hv:ca %q is not the signer's issuer %q", list.Endorser.CA, x.r.SignerIssuer))
	} else {
		x.pass(CheckEndorserCA, "hv:ca is the signer's issuer")
	}
	if list.Created.IsZero() {
		x.set(CheckListCreated, Skip, "", "no valid dc:date:created")
	} else if list.Created.After(at) {
		x.fail(CheckListCreated, ReasonListFuture, fmt.Errorf("created %s, after %s", list.Created.Format(imagelist.TimeFormat), x.r.At))
	} else {
		x.pass(CheckListCreated, "created %s", list.Created.Format(imagelist.TimeFormat))
	}
	if list.Expires.IsZero() {
		x.set(CheckListValidity, Skip, "", "no valid dc:date:expires")
	} else if !at.Before(list.Expires) {
		x.fail(CheckListValidity, ReasonListExpired, fmt.Errorf("expired %s", list.Expires.Format(imagelist.TimeFormat)))
	} else {
		x.pass(CheckListValidity, "valid until %s", list.Expires.Format(imagelist.TimeFormat))
	}
	return msg.Content, list
}

func prefixed(p string, items []string) string {
	if len(items) == 0 {
		return ""
	}
	return p + strings.Join(items, ", ")
}
