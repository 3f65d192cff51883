package endorse

import (
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vmtrust/vmtrust/imagelist"
	"github.com/vmtrust/vmtrust/imagelist/smime"
	"github.com/vmtrust/vmtrust/internal/dn"
	"github.com/vmtrust/vmtrust/internal/igtf"
)

// Check names, in the order they run.
const (
	CheckFormat       = "smime-format"
	CheckSignature    = "signature"
	CheckSigningTime  = "cert-at-signing-time"
	CheckPurpose      = "cert-purpose"
	CheckChain        = "chain"
	CheckValidity     = "cert-validity"
	CheckCRL          = "crl"
	CheckRevocation   = "revocation"
	CheckNamespace    = "namespace"
	CheckListFormat   = "list-format"
	CheckEndorserDN   = "endorser-dn"
	CheckEndorserCA   = "endorser-ca"
	CheckAuthorised   = "authorised-endorser"
	CheckIdentifier   = "list-identifier"
	CheckListCreated  = "list-created"
	CheckListValidity = "list-expires"
)

var checkOrder = []string{
	CheckFormat, CheckSignature, CheckSigningTime, CheckPurpose, CheckChain, CheckValidity,
	CheckCRL, CheckRevocation, CheckNamespace, CheckListFormat,
	CheckEndorserDN, CheckEndorserCA, CheckAuthorised, CheckIdentifier, CheckListCreated, CheckListValidity,
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
	case errors.Is(err, igtf.ErrPurpose):
		return ReasonPurpose
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
	content, list := x.verify(raw, trust, at, mode, &opts)
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
func (x *run) verify(raw []byte, trust *igtf.Dir, at time.Time, mode igtf.CRLMode, opts *Options) ([]byte, *imagelist.List) {
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
	subject, err1 := dn.Oneline(sig.Signer.RawSubject)
	issuer, err2 := dn.Oneline(sig.Signer.RawIssuer)
	if err := errors.Join(err1, err2); err != nil {
		x.fail(CheckSignature, ReasonBadPKCS7, fmt.Errorf("the signer's name cannot be written in OpenSSL form: %w", err))
		return nil, nil
	}
	x.r.Signer, x.r.SignerIssuer = subject, issuer
	x.pass(CheckSignature, "one signer, %s; content digest and signature valid", x.r.Signer)
	chainAt := at
	if !sig.SigningTime.IsZero() {
		chainAt = sig.SigningTime.UTC()
		x.r.SigningTime = chainAt.Format(time.RFC3339)
		x.pass(CheckSigningTime, "signed %s, within the signer certificate's validity", x.r.SigningTime)
	} else {
		x.pass(CheckSigningTime, "no signingTime attribute; validity is checked at %s only", x.r.At)
	}
	if err := igtf.Purpose(sig.Signer); err != nil {
		x.fail(CheckPurpose, ReasonPurpose, err)
	} else {
		x.pass(CheckPurpose, "may sign S/MIME content")
	}

	chain, err := trust.Chain(sig.Signer, sig.Certificates, chainAt)
	if err != nil {
		if sig.SigningTime.IsZero() && errors.Is(err, igtf.ErrCertAtSigning) {
			// No signing time: the chain was built at the check time, so
			// this is the certificate's validity now, not when it signed.
			err = igtf.Validity([]*x509.Certificate{sig.Signer}, at)
			if err == nil {
				err = fmt.Errorf("%w: a CA certificate is not valid at %s", igtf.ErrCertExpired, x.r.At)
			}
			x.pass(CheckChain, "not checked: see cert-validity")
			x.fail(CheckValidity, igtfReason(err), err)
		} else {
			x.fail(CheckChain, igtfReason(err), err)
		}
		// An untrusted signer's content is not parsed at all.
		for _, c := range []string{CheckListFormat, CheckEndorserDN, CheckEndorserCA, CheckAuthorised, CheckIdentifier, CheckListCreated, CheckListValidity} {
			x.set(c, Skip, "", "not run: the signer does not chain to a trusted CA")
		}
		return nil, nil
	}
	names := make([]string, len(chain))
	for i, c := range chain {
		names[i] = display(c.RawSubject)
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

	// The signature is valid and the signer chains to a trusted CA, so the
	// content is what a known signer wrote: parse it and compare what it
	// claims with who signed it.
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
	switch {
	case len(opts.Endorsers) == 0:
		x.set(CheckAuthorised, Skip, "", "no authorised endorsers given")
	case authorised(opts.Endorsers, x.r.Signer, x.r.SignerIssuer):
		x.pass(CheckAuthorised, "the signer is an authorised endorser")
	default:
		x.fail(CheckAuthorised, ReasonUnauthorised, fmt.Errorf("signer %q (CA %q) is not an authorised endorser", x.r.Signer, x.r.SignerIssuer))
	}
	switch {
	case opts.Identifier == "":
		x.set(CheckIdentifier, Skip, "", "no expected identifier given")
	case list.Identifier == opts.Identifier:
		x.pass(CheckIdentifier, "dc:identifier %s as expected", list.Identifier)
	default:
		x.fail(CheckIdentifier, ReasonIdentifier, fmt.Errorf("dc:identifier %q, expected %q (another list served at this address?)", list.Identifier, opts.Identifier))
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

func authorised(es []Endorser, dn, ca string) bool {
	for _, e := range es {
		if e.DN == dn && e.CA == ca {
			return true
		}
	}
	return false
}

func prefixed(p string, items []string) string {
	if len(items) == 0 {
		return ""
	}
	return p + strings.Join(items, ", ")
}
