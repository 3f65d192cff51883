package keyfile

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"encoding/pem"
	"strings"
)

// Limits of Sniff.
const (
	MaxObjects   = 64       // objects reported per input
	maxMarkers   = 256      // PEM armour lines examined per input
	maxKeyParses = 4        // private keys parsed (for their public key) per input
	maxDER       = 16 << 10 // a bare DER object is only tried on inputs this small
)

// Kind says what an Object is.
type Kind int

const (
	PrivateKey Kind = iota + 1
	Certificate
)

// Object is one private key or certificate found in a file's content.
type Object struct {
	Kind Kind
	// Format names the encoding: "PEM RSA PRIVATE KEY", "PEM PRIVATE KEY",
	// "OpenSSH", "PuTTY", "DER PKCS#8", "PEM CERTIFICATE", ...
	Format string
	// Encrypted is set for a private key protected by a passphrase.
	Encrypted bool
	// Cert is the parsed certificate (Kind Certificate), nil when its
	// body does not parse.
	Cert *x509.Certificate
	// PublicKey is the DER SubjectPublicKeyInfo of the key or
	// certificate when it could be derived, for pairing keys with
	// certificates; nil otherwise.
	PublicKey []byte
}

// Sniff finds private keys and certificates in data by content alone:
// PEM blocks ("-----BEGIN ... PRIVATE KEY-----", "-----BEGIN
// CERTIFICATE-----"), OpenSSH and PuTTY private keys, and a bare DER
// private key (PKCS#8, PKCS#1, SEC 1) or certificate filling a small
// input. A PEM block is reported by its armour even if its body does not
// decode (a file may be cut short by the read limit). At most MaxObjects
// objects are returned; Sniff never fails.
func Sniff(data []byte) []Object {
	var out []Object
	parses := 0
	out = append(out, sniffPuTTY(data)...)
	for rest, markers := data, 0; len(out) < MaxObjects && markers < maxMarkers; markers++ {
		i := indexLineStart(rest, "-----BEGIN ")
		if i < 0 {
			break
		}
		rest = rest[i:]
		label, ok := pemLabel(rest)
		if !ok {
			rest = rest[1:]
			continue
		}
		o, isObj := classifyLabel(label)
		if block, after := pem.Decode(rest); block != nil && block.Type == label {
			if isObj {
				enrich(&o, block, &parses)
			}
			rest = after
		} else {
			rest = rest[len("-----BEGIN "):]
		}
		if isObj {
			out = append(out, o)
		}
	}
	if len(out) == 0 && len(data) <= maxDER && len(data) > 0 && data[0] == 0x30 {
		if o, ok := sniffDER(data); ok {
			out = append(out, o)
		}
	}
	if len(out) > MaxObjects {
		out = out[:MaxObjects]
	}
	return out
}

// indexLineStart finds marker at the start of a line.
func indexLineStart(b []byte, marker string) int {
	off := 0
	for {
		i := bytes.Index(b[off:], []byte(marker))
		if i < 0 {
			return -1
		}
		if j := off + i; j == 0 || b[j-1] == '\n' {
			return j
		}
		off += i + 1
	}
}

// pemLabel reads the label of "-----BEGIN LABEL-----" at the start of b.
func pemLabel(b []byte) (string, bool) {
	b = b[len("-----BEGIN "):]
	if len(b) > 80 {
		b = b[:80]
	}
	end := bytes.Index(b, []byte("-----"))
	if end <= 0 {
		return "", false
	}
	label := string(b[:end])
	for _, r := range label {
		if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == ' ' || r == '#') {
			return "", false
		}
	}
	return label, true
}

func classifyLabel(label string) (Object, bool) {
	o := Object{Format: "PEM " + label}
	switch {
	case label == "OPENSSH PRIVATE KEY":
		o.Kind, o.Format = PrivateKey, "OpenSSH"
	case strings.HasSuffix(label, "PRIVATE KEY"):
		o.Kind = PrivateKey
		o.Encrypted = strings.Contains(label, "ENCRYPTED")
	case label == "CERTIFICATE" || label == "X509 CERTIFICATE" || label == "TRUSTED CERTIFICATE":
		o.Kind = Certificate
	default:
		return Object{}, false
	}
	return o, true
}

// enrich adds what the decoded block tells: encryption, the certificate,
// the public key.
func enrich(o *Object, block *pem.Block, parses *int) {
	switch {
	case o.Kind == Certificate:
		der := block.Bytes
		if block.Type == "TRUSTED CERTIFICATE" {
			// OpenSSL's trusted form appends trust settings after the
			// certificate: parse the first DER element only.
			var raw asn1.RawValue
			if _, err := asn1.Unmarshal(der, &raw); err == nil {
				der = raw.FullBytes
			}
		}
		if c, err := x509.ParseCertificate(der); err == nil {
			o.Cert = c
			o.PublicKey = c.RawSubjectPublicKeyInfo
		}
	case o.Format == "OpenSSH":
		o.Encrypted = opensshEncrypted(block.Bytes)
	default:
		if block.Headers["Proc-Type"] == "4,ENCRYPTED" || strings.Contains(block.Headers["Proc-Type"], "ENCRYPTED") {
			o.Encrypted = true
		}
		if !o.Encrypted && *parses < maxKeyParses {
			*parses++
			o.PublicKey = publicKeyOf(block.Bytes)
		}
	}
}

// opensshEncrypted reads the cipher name of an "openssh-key-v1" body; a
// body it cannot read counts as unencrypted (the worse case).
func opensshEncrypted(b []byte) bool {
	const magic = "openssh-key-v1\x00"
	if !bytes.HasPrefix(b, []byte(magic)) || len(b) < len(magic)+4 {
		return false
	}
	b = b[len(magic):]
	n := binary.BigEndian.Uint32(b)
	if uint64(n) > uint64(len(b)-4) {
		return false
	}
	return string(b[4:4+n]) != "none"
}

// publicKeyOf parses a DER private key (PKCS#8, PKCS#1 or SEC 1) and
// returns its public key as SubjectPublicKeyInfo, or nil.
func publicKeyOf(der []byte) []byte {
	var pub crypto.PublicKey
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		if s, ok := k.(interface{ Public() crypto.PublicKey }); ok {
			pub = s.Public()
		}
	} else if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		pub = k.Public()
	} else if k, err := x509.ParseECPrivateKey(der); err == nil {
		pub = k.Public()
	}
	if pub == nil {
		return nil
	}
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil
	}
	return spki
}

// sniffDER tries data as a bare DER private key, then as a certificate.
func sniffDER(data []byte) (Object, bool) {
	if spki := publicKeyOf(data); spki != nil {
		return Object{Kind: PrivateKey, Format: "DER private key", PublicKey: spki}, true
	}
	if c, err := x509.ParseCertificate(data); err == nil {
		return Object{Kind: Certificate, Format: "DER CERTIFICATE", Cert: c, PublicKey: c.RawSubjectPublicKeyInfo}, true
	}
	return Object{}, false
}

// sniffPuTTY finds PuTTY private key files ("PuTTY-User-Key-File-2: ssh-rsa"
// followed by an "Encryption:" header).
func sniffPuTTY(data []byte) []Object {
	i := indexLineStart(data, "PuTTY-User-Key-File-")
	if i < 0 {
		return nil
	}
	o := Object{Kind: PrivateKey, Format: "PuTTY"}
	rest := data[i:]
	if len(rest) > 1024 {
		rest = rest[:1024]
	}
	if j := indexLineStart(rest, "Encryption:"); j >= 0 {
		line, _, _ := bytes.Cut(rest[j+len("Encryption:"):], []byte("\n"))
		o.Encrypted = strings.TrimSpace(string(line)) != "none"
	}
	return []Object{o}
}
