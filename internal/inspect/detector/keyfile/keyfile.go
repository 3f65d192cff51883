// Package keyfile finds private keys and certificates in a guest by their
// content, not their names, for the policy clauses "no credentials of any
// form" and "no host or service certificates".
//
// Rules: private-key (a file holding a private key: critical, high when
// every key in it is passphrase-protected, low when a package installed
// the file, as test keys are); x509-cert-with-key (an X.509 certificate
// whose private key is in the same file, in a file named like its partner
// — hostcert.pem/hostkey.pem, name.crt/name.key, fullchain.pem/privkey.pem
// — or anywhere in the guest with the same public key: high); grid-proxy
// (a Globus/RFC 3820 proxy credential: /tmp/x509up_u*, or a certificate
// with the proxyCertInfo extension, or a legacy "CN=proxy" one, stored
// with its key: critical).
//
// Scope and bounds: every regular file not installed by a package is
// sniffed; a package's files only when their names look like private keys
// (then any finding is low). Documentation trees (/usr/share/doc, man
// pages, locales) and package-manager state (/var/lib/dpkg, apt lists and
// caches, the rpm and apk databases) are skipped, and so are the SSH host
// keys, which package sshkeys reports. Without package ownership every
// file is sniffed, which costs a read of the head of each. Of a file at most MaxHead bytes are read, and of a file
// larger than that whose first 4 KiB are not text, only those 4 KiB.
// Reasons name the kind of key, the subject and expiry of a certificate,
// never key material.
package keyfile

import (
	"github.com/vmtrust/vmtrust/internal/dn"

	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/vmtrust/vmtrust/internal/fsys"
	"github.com/vmtrust/vmtrust/internal/inspect/detector/engine"
	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
)

// Name is the detector's name.
const Name = "key-files"

// Rules.
const (
	RulePrivateKey  = "private-key"
	RuleCertWithKey = "x509-cert-with-key"
	RuleGridProxy   = "grid-proxy"
)

// Limits.
const (
	MaxHead      = 64 << 10 // bytes read of one file
	sniffHead    = 4 << 10  // bytes read first of a larger file
	MaxCollect   = 10_000   // certificates and keys kept for pairing per run
	maxPerReason = 3        // certificates named in one reason
)

// skipped reports whether p lies in a tree that holds documentation or
// package-manager state, never live credentials: skipping them keeps the
// sniffing cheap (a Debian image has several files per package in
// /var/lib/dpkg/info alone).
func skipped(p string) bool {
	for _, s := range []string{
		"/usr/share/doc/", "/usr/share/man/", "/usr/share/locale/", "/usr/share/info/", "/usr/share/i18n/",
		"/var/lib/dpkg/", "/var/lib/apt/lists/", "/var/cache/apt/", "/var/lib/rpm/", "/usr/lib/sysimage/rpm/",
		"/var/cache/dnf/", "/var/cache/yum/", "/lib/apk/db/", "/var/cache/apk/",
	} {
		if strings.HasPrefix(p, s) {
			return true
		}
	}
	return false
}

// Detector is the key-files Collector.
type Detector struct{}

var _ engine.Collector = Detector{}

// New returns the key-files detector.
func New() Detector { return Detector{} }

func (Detector) Name() string { return Name }

// Begin starts one run.
func (Detector) Begin(env *engine.Env) engine.Collection {
	return &collection{keyPubs: map[[32]byte]string{}, keyPaths: map[string]bool{}}
}

type certRec struct {
	path     string
	subject  string
	notAfter time.Time
	owned    bool
	pub      [32]byte // SHA-256 of the SubjectPublicKeyInfo; zero if unknown
	sameFile bool     // a private key is in the same file
}

type collection struct {
	keyPubs  map[[32]byte]string // public key digest -> first key file
	keyPaths map[string]bool     // files holding a private key
	certs    []certRec
	dropped  int // records not kept past MaxCollect
}

// Wants selects regular, non-empty files outside documentation trees and
// package-manager state.
func (c *collection) Wants(p string, info fsys.Info) bool {
	return info.Mode.IsRegular() && info.Size > 0 && !skipped(p) && !isHostKey(p)
}

// isHostKey matches /etc/ssh/ssh_host_*_key, reported by package sshkeys.
func isHostKey(p string) bool {
	ok, _ := path.Match("/etc/ssh/ssh_host_*_key", p)
	return ok
}

// keyLikeName says whether a package-owned file is worth sniffing: its
// name looks like a private key's ("*.key", "*.pem", "id_*", "*key").
// Package-owned certificates alone (the CA bundle's *.crt) are not read.
func keyLikeName(p string) bool {
	b := strings.ToLower(path.Base(p))
	switch path.Ext(b) {
	case ".pem", ".key", ".p8", ".pk8", ".ppk":
		return true
	case "":
		return strings.HasPrefix(b, "id_") || strings.HasSuffix(b, "key")
	}
	return false
}

func isGridProxyPath(p string) bool { return strings.HasPrefix(p, "/tmp/x509up_u") }

func (c *collection) File(ctx context.Context, env *engine.Env, p string, info fsys.Info) ([]inventory.Finding, error) {
	_, owned := env.Owned(p)
	if owned && !keyLikeName(p) {
		return nil, nil
	}
	data, err := readSniffable(env, info)
	if err != nil || data == nil {
		return nil, err
	}
	objs := Sniff(data)
	if len(objs) == 0 {
		if isGridProxyPath(p) {
			return []inventory.Finding{gridProxy(p, "a grid proxy credential file (content not recognised)")}, nil
		}
		return nil, nil
	}
	var keys []Object
	var certs []Object
	for _, o := range objs {
		if o.Kind == PrivateKey {
			keys = append(keys, o)
		} else {
			certs = append(certs, o)
		}
	}
	for _, k := range keys {
		if k.PublicKey != nil && len(c.keyPubs) < MaxCollect {
			d := sha256.Sum256(k.PublicKey)
			if _, seen := c.keyPubs[d]; !seen {
				c.keyPubs[d] = p
			}
		}
	}
	if len(keys) > 0 {
		if len(c.keyPaths) < MaxCollect {
			c.keyPaths[p] = true
		} else {
			c.dropped++
		}
	}
	proxy := isGridProxyPath(p)
	var recs []certRec
	for _, o := range certs {
		r := certRec{path: p, owned: owned, sameFile: len(keys) > 0}
		if o.Cert != nil {
			r.subject = subjectOf(o.Cert)
			r.notAfter = o.Cert.NotAfter
			r.pub = sha256.Sum256(o.PublicKey)
			proxy = proxy || isProxyCert(o.Cert) && len(keys) > 0
		}
		recs = append(recs, r)
	}
	if proxy {
		// A proxy file (certificate, key and the chain that signed it) is
		// one credential: reported once, its certificates not paired.
		return []inventory.Finding{gridProxy(p, describeProxy(certs, keys))}, nil
	}
	for _, r := range recs {
		if len(c.certs) < MaxCollect {
			c.certs = append(c.certs, r)
		} else {
			c.dropped++
		}
	}
	switch {
	case len(keys) > 0:
		return []inventory.Finding{privateKeyFinding(p, keys, owned)}, nil
	}
	return nil, nil
}

// readSniffable reads what Sniff needs of a file: all of a small one, and
// of a larger one its first 4 KiB, then MaxHead bytes if those are text.
func readSniffable(env *engine.Env, info fsys.Info) ([]byte, error) {
	if info.Size <= MaxHead {
		b, _, err := engine.ReadHead(env, info, MaxHead)
		return b, err
	}
	b, _, err := engine.ReadHead(env, info, sniffHead)
	if err != nil || bytes.IndexByte(b, 0) >= 0 {
		return nil, err
	}
	b, _, err = engine.ReadHead(env, info, MaxHead)
	return b, err
}

func privateKeyFinding(p string, keys []Object, owned bool) inventory.Finding {
	enc := 0
	formats := map[string]bool{}
	var names []string
	for _, k := range keys {
		if k.Encrypted {
			enc++
		}
		if !formats[k.Format] {
			formats[k.Format] = true
			names = append(names, k.Format)
		}
	}
	f := inventory.Finding{Rule: RulePrivateKey, Severity: inventory.Critical, Path: p, Policy: engine.PolicyNoCredentials}
	what := "an unencrypted private key"
	if len(keys) > 1 {
		what = fmt.Sprintf("%d private keys, %d unencrypted,", len(keys), len(keys)-enc)
	}
	if enc == len(keys) {
		f.Severity = inventory.High
		what = "a passphrase-protected private key"
		if len(keys) > 1 {
			what = fmt.Sprintf("%d passphrase-protected private keys", len(keys))
		}
	}
	f.Reason = fmt.Sprintf("%s (%s)", what, strings.Join(names, ", "))
	if owned {
		f.Severity = inventory.Low
		f.Reason += ", installed by a package"
	}
	return f
}

func gridProxy(p, reason string) inventory.Finding {
	return inventory.Finding{Rule: RuleGridProxy, Severity: inventory.Critical, Path: p, Policy: engine.PolicyNoCredentials, Reason: reason}
}

func describeProxy(certs, keys []Object) string {
	for _, o := range certs {
		if o.Cert != nil && isProxyCert(o.Cert) {
			return fmt.Sprintf("grid proxy credential for %s, expires %s, with its private key", subjectOf(o.Cert), o.Cert.NotAfter.UTC().Format(time.DateOnly))
		}
	}
	if len(keys) > 0 {
		return "grid proxy credential file holding a private key"
	}
	return "grid proxy credential file"
}

// isProxyCert recognises a proxy certificate: RFC 3820 proxyCertInfo, its
// pre-RFC (GSI 3) identifier, or a legacy GT2 "CN=proxy".
func isProxyCert(c *x509.Certificate) bool {
	oidProxyCertInfo := asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 14}
	oidProxyCertInfoDraft := asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3536, 1, 222}
	for _, e := range c.Extensions {
		if e.Id.Equal(oidProxyCertInfo) || e.Id.Equal(oidProxyCertInfoDraft) {
			return true
		}
	}
	// Legacy (GT2) proxies append CN=proxy or CN=limited proxy.
	if n := len(c.Subject.Names); n > 0 {
		last := c.Subject.Names[n-1]
		if last.Type.Equal(asn1.ObjectIdentifier{2, 5, 4, 3}) {
			if v, ok := last.Value.(string); ok && (v == "proxy" || v == "limited proxy") {
				return true
			}
		}
	}
	return false
}

// partners lists the names a certificate's key file would have beside it.
func partners(p string) []string {
	dir, base := path.Split(p)
	var out []string
	add := func(b string) {
		if b != base && b != "" {
			out = append(out, dir+b)
		}
	}
	lower := asciiLower(base) // same length as base, unlike strings.ToLower
	if i := strings.LastIndex(lower, "cert"); i >= 0 {
		add(base[:i] + "key" + base[i+4:])
	}
	if i := strings.LastIndex(lower, "crt"); i >= 0 {
		add(base[:i] + "key" + base[i+3:])
	}
	switch ext := path.Ext(base); strings.ToLower(ext) {
	case ".crt", ".pem", ".cer", ".cert", ".der":
		stem := strings.TrimSuffix(base, ext)
		add(stem + ".key")
		add(stem + ".key.pem")
		add(stem + "-key.pem")
	}
	if lower == "fullchain.pem" || lower == "cert.pem" {
		add("privkey.pem")
	}
	return out
}

// asciiLower lowercases ASCII letters only, keeping byte offsets.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// Finish pairs the certificates seen with the private keys seen.
func (c *collection) Finish(ctx context.Context, env *engine.Env) ([]inventory.Finding, error) {
	type fileCerts struct {
		recs  []certRec
		keyAt string
	}
	byFile := map[string]*fileCerts{}
	var order []string
	for _, r := range c.certs {
		keyAt := ""
		switch {
		case r.sameFile:
			keyAt = "in the same file"
		default:
			for _, q := range partners(r.path) {
				if c.keyPaths[q] {
					keyAt = "in " + q
					break
				}
			}
			if keyAt == "" && r.pub != ([32]byte{}) {
				if q, ok := c.keyPubs[r.pub]; ok {
					keyAt = "in " + q + " (same public key)"
				}
			}
		}
		if keyAt == "" {
			continue
		}
		fc := byFile[r.path]
		if fc == nil {
			fc = &fileCerts{keyAt: keyAt}
			byFile[r.path] = fc
			order = append(order, r.path)
		}
		fc.recs = append(fc.recs, r)
	}
	var out []inventory.Finding
	for _, p := range order {
		fc := byFile[p]
		var names []string
		owned := true
		for i, r := range fc.recs {
			owned = owned && r.owned
			if i >= maxPerReason {
				continue
			}
			if r.subject == "" && r.notAfter.IsZero() {
				names = append(names, "an unparsable certificate")
				continue
			}
			names = append(names, fmt.Sprintf("certificate %q, expires %s", r.subject, r.notAfter.UTC().Format(time.DateOnly)))
		}
		reason := strings.Join(names, "; ")
		if extra := len(fc.recs) - maxPerReason; extra > 0 {
			reason += fmt.Sprintf(" and %d more", extra)
		}
		reason += ", with its private key " + fc.keyAt
		f := inventory.Finding{Rule: RuleCertWithKey, Severity: inventory.High, Path: p, Policy: engine.PolicyNoCertificates, Reason: reason}
		if owned {
			f.Severity = inventory.Low
			f.Reason += "; installed by a package"
		}
		out = append(out, f)
	}
	if c.dropped > 0 {
		return out, fmt.Errorf("more than %d keys or certificates: %d not paired", MaxCollect, c.dropped)
	}
	return out, nil
}

// subjectOf prints a certificate's subject as OpenSSL and the grid tools
// do ("/DC=org/DC=example/CN=host/example.org"), falling back to Go's
// RFC 4514 form for a name OpenSSL's printer would refuse.
func subjectOf(c *x509.Certificate) string {
	if s, err := dn.Oneline(c.RawSubject); err == nil {
		return s
	}
	return c.Subject.String()
}
