// Package igtf reads a grid trust-anchor directory in the layout of the IGTF
// distribution (/etc/grid-security/certificates) and checks a signer
// certificate against it as vmcatcher does.
//
// # Layout
//
//	HASH.N               a CA certificate (PEM), HASH its OpenSSL subject hash
//	HASH.rN              a CRL of that CA (PEM or DER)
//	HASH.signing_policy  Globus EACL namespace policy (optional)
//	HASH.namespaces      EUGridPMA namespace policy (optional)
//
// # Guarantees
//
// Load is bounded (MaxFiles, MaxFileSize) and never fails open: a file it
// cannot use is recorded in Dir.Skipped with the reason, and a CA whose CRL
// or policy file is unreadable is treated as having a bad one, not none.
// Chain requires every CA in the path to be in the directory; Validity,
// CRLs, Revoked and Namespaces each check one property of that chain and
// return an error wrapping one of the exported classes.
package igtf

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"

	"github.com/vmtrust/vmtrust/internal/dn"
	"github.com/vmtrust/vmtrust/internal/igtf/policy"
)

// Bounds on what Load reads.
const (
	MaxFiles    = 20_000
	MaxFileSize = 64 << 20 // large CRLs run to several MB
)

// Error classes.
var (
	ErrUntrusted       = errors.New("signer does not chain to a CA in the trust directory")
	ErrCertExpired     = errors.New("certificate expired")
	ErrCertNotYetValid = errors.New("certificate not yet valid")
	ErrCertAtSigning   = errors.New("certificate not valid at signing time")
	ErrCRLMissing      = errors.New("CRL missing")
	ErrCRLInvalid      = errors.New("CRL not valid")
	ErrRevoked         = errors.New("certificate revoked")
	ErrNamespace       = errors.New("signer outside its CA's namespace")
	ErrPurpose         = errors.New("certificate not usable for signing")
)

// CA is one trust anchor or intermediate CA of the directory.
type CA struct {
	File        string // base name of the certificate file, e.g. 9da13359.0
	Hash        string // the HASH part of the name
	Cert        *x509.Certificate
	Subject     string // OpenSSL oneline form
	CRLs        []*CRL
	Policies    []*policy.Policy // from .signing_policy and .namespaces
	PolicyFiles []string
	policyErr   error // a policy file exists but does not parse: fail closed
}

// CRL is one revocation list file of a CA.
type CRL struct {
	File string
	List *x509.RevocationList
	Err  error // not signed by the CA, or otherwise unusable
}

// Dir is a loaded trust directory.
type Dir struct {
	Path    string
	CAs     []*CA
	Skipped []string // "file: reason" for every file that was not used
}

var (
	certName   = regexp.MustCompile(`^([0-9a-f]{8})\.([0-9]+)$`)
	crlName    = regexp.MustCompile(`^([0-9a-f]{8})\.r([0-9]+)$`)
	policyName = regexp.MustCompile(`^([0-9a-f]{8})\.(signing_policy|namespaces)$`)
)

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("larger than %d bytes", MaxFileSize)
	}
	return b, nil
}

// Load reads the trust directory at path.
func Load(path string) (*Dir, error) {
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("trust directory: %w", err)
	}
	if len(entries) > MaxFiles {
		return nil, fmt.Errorf("trust directory %s: %d entries, more than %d", path, len(entries), MaxFiles)
	}
	d := &Dir{Path: path}
	byHash := map[string][]*CA{}
	var crlFiles, policyFiles []string
	skip := func(name string, format string, args ...any) {
		d.Skipped = append(d.Skipped, name+": "+fmt.Sprintf(format, args...))
	}
	for _, e := range entries {
		name := e.Name()
		switch {
		case certName.MatchString(name):
			b, err := readBounded(filepath.Join(path, name))
			if err != nil {
				skip(name, "%v", err)
				continue
			}
			cert, err := parseCert(b)
			if err != nil {
				skip(name, "%v", err)
				continue
			}
			h, err := dn.HashName(cert.RawSubject)
			if err != nil {
				skip(name, "subject: %v", err)
				continue
			}
			if want := certName.FindStringSubmatch(name)[1]; h != want {
				skip(name, "subject hash is %s, not %s (a stale or old-style link)", h, want)
				continue
			}
			subj, err := dn.Oneline(cert.RawSubject)
			if err != nil {
				skip(name, "subject: %v", err)
				continue
			}
			ca := &CA{File: name, Hash: h, Cert: cert, Subject: subj}
			d.CAs = append(d.CAs, ca)
			byHash[h] = append(byHash[h], ca)
		case crlName.MatchString(name):
			crlFiles = append(crlFiles, name)
		case policyName.MatchString(name):
			policyFiles = append(policyFiles, name)
		}
	}
	for _, name := range crlFiles {
		h := crlName.FindStringSubmatch(name)[1]
		cas := byHash[h]
		if len(cas) == 0 {
			skip(name, "no CA certificate %s.N beside it", h)
			continue
		}
		b, err := readBounded(filepath.Join(path, name))
		var list *x509.RevocationList
		if err == nil {
			list, err = parseCRL(b)
		}
		for _, ca := range cas {
			c := &CRL{File: name, List: list, Err: err}
			if err == nil {
				if !bytes.Equal(list.RawIssuer, ca.Cert.RawSubject) {
					c.Err = fmt.Errorf("issued by another CA")
				} else if err := list.CheckSignatureFrom(ca.Cert); err != nil {
					c.Err = fmt.Errorf("signature does not verify with the CA's key: %v", err)
				}
			}
			ca.CRLs = append(ca.CRLs, c)
		}
	}
	for _, name := range policyFiles {
		m := policyName.FindStringSubmatch(name)
		cas := byHash[m[1]]
		if len(cas) == 0 {
			skip(name, "no CA certificate %s.N beside it", m[1])
			continue
		}
		b, err := readBounded(filepath.Join(path, name))
		for _, ca := range cas {
			ca.PolicyFiles = append(ca.PolicyFiles, name)
			if err != nil {
				ca.policyErr = fmt.Errorf("%s: %v", name, err)
				continue
			}
			var p *policy.Policy
			var perr error
			if m[2] == "signing_policy" {
				p, perr = policy.ParseSigningPolicy(b)
			} else {
				p, perr = policy.ParseNamespaces(b, ca.Subject)
			}
			if perr != nil {
				ca.policyErr = fmt.Errorf("%s: %v", name, perr)
				continue
			}
			ca.Policies = append(ca.Policies, p)
		}
	}
	sort.Slice(d.CAs, func(i, j int) bool { return d.CAs[i].File < d.CAs[j].File })
	return d, nil
}

func parseCert(b []byte) (*x509.Certificate, error) {
	blk, rest := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("not a PEM certificate")
	}
	if blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("PEM block %q, want CERTIFICATE", blk.Type)
	}
	if next, _ := pem.Decode(rest); next != nil {
		return nil, fmt.Errorf("more than one PEM block; a trust directory has one CA per file")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, err
	}
	if !c.IsCA {
		return nil, fmt.Errorf("not a CA certificate (basicConstraints CA:FALSE or absent)")
	}
	return c, nil
}

func parseCRL(b []byte) (*x509.RevocationList, error) {
	der := b
	if blk, _ := pem.Decode(b); blk != nil {
		if blk.Type != "X509 CRL" {
			return nil, fmt.Errorf("PEM block %q, want X509 CRL", blk.Type)
		}
		der = blk.Bytes
	}
	return x509.ParseRevocationList(der)
}
