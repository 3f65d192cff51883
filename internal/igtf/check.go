package igtf

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vmtrust/vmtrust/internal/dn"
)

// CRLMode says how a missing CRL is treated.
type CRLMode string

const (
	CRLRequire  CRLMode = "require"  // every issuing CA must have a current CRL (vmcatcher)
	CRLOptional CRLMode = "optional" // a CRL that is present must be valid and current
	CRLOff      CRLMode = "off"      // CRLs are not consulted (tests, air-gapped triage)
)

// ParseCRLMode parses the --crl flag.
func ParseCRLMode(s string) (CRLMode, error) {
	switch m := CRLMode(s); m {
	case CRLRequire, CRLOptional, CRLOff:
		return m, nil
	}
	return "", fmt.Errorf("CRL mode %q: want require, optional or off", s)
}

func (d *Dir) find(c *x509.Certificate) *CA {
	for _, ca := range d.CAs {
		if bytes.Equal(ca.Cert.Raw, c.Raw) {
			return ca
		}
	}
	return nil
}

func name(c *x509.Certificate) string {
	s, err := dn.Oneline(c.RawSubject)
	if err != nil {
		return c.Subject.String()
	}
	return s
}

// Chain builds the path from signer to a self-signed CA of the directory,
// valid at the time t (the signing time). extra are certificates that came
// with the signature; each CA on the returned path is one of the directory's.
func (d *Dir) Chain(signer *x509.Certificate, extra []*x509.Certificate, t time.Time) ([]*x509.Certificate, error) {
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	for _, ca := range d.CAs {
		if bytes.Equal(ca.Cert.RawIssuer, ca.Cert.RawSubject) && ca.Cert.CheckSignatureFrom(ca.Cert) == nil {
			roots.AddCert(ca.Cert)
		} else {
			inter.AddCert(ca.Cert)
		}
	}
	for _, c := range extra {
		if c.IsCA {
			inter.AddCert(c)
		}
	}
	chains, err := signer.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   t,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		var inv x509.CertificateInvalidError
		if errors.As(err, &inv) && inv.Reason == x509.Expired {
			return nil, fmt.Errorf("%w: %s is not valid at %s", ErrCertAtSigning, name(inv.Cert), t.UTC().Format(time.RFC3339))
		}
		var ua x509.UnknownAuthorityError
		if errors.As(err, &ua) {
			return nil, fmt.Errorf("%w: no CA in %s issued %q", ErrUntrusted, d.Path, issuerName(signer))
		}
		return nil, fmt.Errorf("%w: %v", ErrUntrusted, err)
	}
	var why []string
	for _, ch := range chains {
		ok := true
		for _, c := range ch[1:] {
			if d.find(c) == nil {
				ok = false
				why = append(why, fmt.Sprintf("CA %q is not in the trust directory", name(c)))
				break
			}
		}
		if ok {
			return ch, nil
		}
	}
	return nil, fmt.Errorf("%w: %s", ErrUntrusted, strings.Join(why, "; "))
}

func issuerName(c *x509.Certificate) string {
	s, err := dn.Oneline(c.RawIssuer)
	if err != nil {
		return c.Issuer.String()
	}
	return s
}

// Validity checks that every certificate of chain is valid at t.
func Validity(chain []*x509.Certificate, t time.Time) error {
	for i, c := range chain {
		what := "signer certificate"
		if i > 0 {
			what = "CA certificate"
		}
		if t.After(c.NotAfter) {
			return fmt.Errorf("%w: %s %q expired %s", ErrCertExpired, what, name(c), c.NotAfter.UTC().Format(time.RFC3339))
		}
		if t.Before(c.NotBefore) {
			return fmt.Errorf("%w: %s %q is valid only from %s", ErrCertNotYetValid, what, name(c), c.NotBefore.UTC().Format(time.RFC3339))
		}
	}
	return nil
}

// issued lists the (certificate, issuing CA) pairs of chain whose
// revocation the CA's CRL answers: every certificate except a self-signed
// root, and the root itself when it is the signer.
func (d *Dir) issued(chain []*x509.Certificate) [][2]*x509.Certificate {
	var pairs [][2]*x509.Certificate
	for i, c := range chain {
		switch {
		case i+1 < len(chain):
			pairs = append(pairs, [2]*x509.Certificate{c, chain[i+1]})
		case i == 0:
			pairs = append(pairs, [2]*x509.Certificate{c, c})
		}
	}
	return pairs
}

// Revocation is the CRL state found for one certificate of the chain.
type Revocation struct {
	Cert   *x509.Certificate
	Issuer *CA
	CRL    *CRL // nil when there is none and the mode allows that
}

// CRLs finds, for every certificate of chain, a CRL of its issuer that is
// signed by it and current at t. In CRLOff mode it returns nothing.
func (d *Dir) CRLs(chain []*x509.Certificate, t time.Time, mode CRLMode) ([]Revocation, error) {
	if mode == CRLOff {
		return nil, nil
	}
	var out []Revocation
	for _, p := range d.issued(chain) {
		ca := d.find(p[1])
		if ca == nil {
			return nil, fmt.Errorf("%w: issuer %q is not in the trust directory", ErrCRLMissing, name(p[1]))
		}
		var best *CRL
		var problems []string
		for _, c := range ca.CRLs {
			switch {
			case c.Err != nil:
				problems = append(problems, fmt.Sprintf("%s: %v", c.File, c.Err))
			case t.Before(c.List.ThisUpdate):
				problems = append(problems, fmt.Sprintf("%s: issued %s, after %s", c.File, c.List.ThisUpdate.UTC().Format(time.RFC3339), t.UTC().Format(time.RFC3339)))
			case c.List.NextUpdate.IsZero() || !t.Before(c.List.NextUpdate):
				problems = append(problems, fmt.Sprintf("%s: expired %s (nextUpdate)", c.File, c.List.NextUpdate.UTC().Format(time.RFC3339)))
			default:
				if best == nil || c.List.ThisUpdate.After(best.List.ThisUpdate) {
					best = c
				}
			}
		}
		switch {
		case best != nil:
		case len(problems) > 0:
			return nil, fmt.Errorf("%w: CA %q (%s): %s", ErrCRLInvalid, ca.Subject, ca.File, strings.Join(problems, "; "))
		case mode == CRLRequire:
			return nil, fmt.Errorf("%w: CA %q has no CRL (%s.r0) in %s", ErrCRLMissing, ca.Subject, ca.Hash, d.Path)
		}
		out = append(out, Revocation{Cert: p[0], Issuer: ca, CRL: best})
	}
	return out, nil
}

// Revoked checks each certificate against the CRL found for it.
func Revoked(revs []Revocation) error {
	for _, r := range revs {
		if r.CRL == nil {
			continue
		}
		for _, e := range r.CRL.List.RevokedCertificateEntries {
			if e.SerialNumber != nil && e.SerialNumber.Cmp(r.Cert.SerialNumber) == 0 {
				return fmt.Errorf("%w: %q (serial %s) revoked on %s by %s", ErrRevoked, name(r.Cert),
					r.Cert.SerialNumber.Text(16), e.RevocationTime.UTC().Format(time.RFC3339), r.CRL.File)
			}
		}
	}
	return nil
}

// Namespaces checks every issuing CA's namespace policy, if it has one.
// It returns the policy files consulted.
func (d *Dir) Namespaces(chain []*x509.Certificate) ([]string, error) {
	var used []string
	for _, p := range d.issued(chain) {
		ca := d.find(p[1])
		if ca == nil {
			return used, fmt.Errorf("%w: issuer %q is not in the trust directory", ErrNamespace, name(p[1]))
		}
		if ca.policyErr != nil {
			return used, fmt.Errorf("%w: CA %q: unusable policy %v", ErrNamespace, ca.Subject, ca.policyErr)
		}
		subj := name(p[0])
		for i, pol := range ca.Policies {
			if err := pol.Check(ca.Subject, subj); err != nil {
				return used, fmt.Errorf("%w: %q may not be issued by %q (%s): %v", ErrNamespace, subj, ca.Subject, ca.PolicyFiles[i], err)
			}
		}
		used = append(used, ca.PolicyFiles...)
	}
	return used, nil
}

// Purpose checks that a certificate may sign S/MIME content, as OpenSSL's
// default smimesign purpose does: a keyUsage extension, when present, must
// allow digitalSignature or nonRepudiation; an extKeyUsage extension, when
// present, must allow emailProtection (or any purpose). A TLS server
// certificate of the same CA cannot endorse images.
func Purpose(c *x509.Certificate) error {
	if c.KeyUsage != 0 && c.KeyUsage&(x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment) == 0 {
		return fmt.Errorf("%w: %q: keyUsage allows neither digitalSignature nor nonRepudiation", ErrPurpose, name(c))
	}
	if len(c.ExtKeyUsage) > 0 || len(c.UnknownExtKeyUsage) > 0 {
		for _, u := range c.ExtKeyUsage {
			if u == x509.ExtKeyUsageEmailProtection || u == x509.ExtKeyUsageAny {
				return nil
			}
		}
		return fmt.Errorf("%w: %q: extKeyUsage does not include emailProtection", ErrPurpose, name(c))
	}
	return nil
}
