package smime

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/smallstep/pkcs7"
)

// Signature is what Verify learned from a valid signature. The signer is
// authenticated only in the sense that it made this signature; whether it is
// trusted is for the caller to decide.
type Signature struct {
	Signer       *x509.Certificate   // the one signer's certificate
	Certificates []*x509.Certificate // every certificate in the message, for chain building
	SigningTime  time.Time           // the signingTime attribute; zero if absent
	Hash         crypto.Hash         // the digest algorithm of the signer
}

var digestOIDs = map[crypto.Hash]asn1.ObjectIdentifier{
	crypto.SHA1:   pkcs7.OIDDigestAlgorithmSHA1,
	crypto.SHA224: pkcs7.OIDDigestAlgorithmSHA224,
	crypto.SHA256: pkcs7.OIDDigestAlgorithmSHA256,
	crypto.SHA384: pkcs7.OIDDigestAlgorithmSHA384,
	crypto.SHA512: pkcs7.OIDDigestAlgorithmSHA512,
}

func hashForOID(oid asn1.ObjectIdentifier) (crypto.Hash, bool) {
	for h, o := range digestOIDs {
		if o.Equal(oid) {
			return h, true
		}
	}
	return 0, false
}

// parse runs the PKCS#7 parser, turning a panic on hostile DER into an error.
func parse(der []byte) (p7 *pkcs7.PKCS7, err error) {
	defer func() {
		if r := recover(); r != nil {
			p7, err = nil, fmt.Errorf("%w: parser failed: %v", ErrSignature, r)
		}
	}()
	p7, err = pkcs7.Parse(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSignature, err)
	}
	return p7, nil
}

// Verify checks the message's signature over its content (see the package
// doc for what that covers). On success the content is m.Content.
func Verify(m *Message) (*Signature, error) {
	p7, err := parse(m.Signature)
	if err != nil {
		return nil, err
	}
	if len(p7.Content) != 0 {
		return nil, fmt.Errorf("%w: the PKCS#7 carries its own content; a detached signature is required", ErrUnsupported)
	}
	switch n := len(p7.Signers); {
	case n == 0:
		return nil, fmt.Errorf("%w: the signature has no signer", ErrSignerCount)
	case n > 1:
		return nil, fmt.Errorf("%w: the signature has %d signers, vmcatcher's rule is exactly one", ErrSignerCount, n)
	}
	si := p7.Signers[0]
	signer := p7.GetOnlySigner()
	if signer == nil {
		return nil, fmt.Errorf("%w: no certificate in the message matches the signer's issuer and serial number", ErrNoSignerCert)
	}
	if len(si.AuthenticatedAttributes) == 0 {
		return nil, fmt.Errorf("%w: the signer has no signed attributes", ErrUnsupported)
	}
	h, ok := hashForOID(si.DigestAlgorithm.Algorithm)
	if !ok {
		return nil, fmt.Errorf("%w: digest algorithm %v", ErrUnsupported, si.DigestAlgorithm.Algorithm)
	}
	if h != m.Hash {
		return nil, fmt.Errorf("%w: micalg %q does not match the signer's digest %s", ErrUnsupported, m.MicAlg, micalgName(h))
	}
	var ctype asn1.ObjectIdentifier
	if err := p7.UnmarshalSignedAttribute(pkcs7.OIDAttributeContentType, &ctype); err != nil || !ctype.Equal(pkcs7.OIDData) {
		return nil, fmt.Errorf("%w: the contentType attribute is missing or not id-data", ErrSignature)
	}
	var signingTime time.Time
	_ = p7.UnmarshalSignedAttribute(pkcs7.OIDAttributeSigningTime, &signingTime) // optional

	// The library checks the signing time against the signer's validity
	// before it checks the signature value, so a forged signature with an
	// odd signing time would never have its value checked. Verify against
	// copies whose validity spans all time, then check the time ourselves.
	certs := p7.Certificates
	wide := make([]*x509.Certificate, len(certs))
	for i, c := range certs {
		cp := *c
		cp.NotBefore, cp.NotAfter = time.Time{}, time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
		wide[i] = &cp
	}
	p7.Certificates = wide
	p7.Content = m.Content
	err = p7.Verify()
	p7.Certificates = certs
	if err != nil {
		var mm *pkcs7.MessageDigestMismatchError
		if errors.As(err, &mm) {
			return nil, fmt.Errorf("%w: message digest %s, content digest %s", ErrTampered,
				hex.EncodeToString(mm.ExpectedDigest), hex.EncodeToString(mm.ActualDigest))
		}
		return nil, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	if !signingTime.IsZero() && (signingTime.Before(signer.NotBefore) || signingTime.After(signer.NotAfter)) {
		return nil, fmt.Errorf("%w: signed at %s, certificate valid %s to %s", ErrSigningTime,
			signingTime.UTC().Format(time.RFC3339), signer.NotBefore.UTC().Format(time.RFC3339), signer.NotAfter.UTC().Format(time.RFC3339))
	}
	return &Signature{Signer: signer, Certificates: certs, SigningTime: signingTime, Hash: h}, nil
}

// Open splits and verifies a signed message and returns its content and
// signature. It is Split followed by Verify.
func Open(raw []byte) ([]byte, *Signature, error) {
	m, err := Split(raw)
	if err != nil {
		return nil, nil, err
	}
	sig, err := Verify(m)
	if err != nil {
		return nil, nil, err
	}
	return m.Content, sig, nil
}

// SignOptions refine Sign. The zero value signs with SHA-256.
type SignOptions struct {
	Hash  crypto.Hash         // digest; default crypto.SHA256
	Chain []*x509.Certificate // intermediate certificates to include, issuer first
}

// Sign returns content as an S/MIME multipart/signed message with a detached
// PKCS#7 signature by cert and key, with signed attributes (contentType,
// messageDigest, signingTime). The content is canonicalised (CRLF) first, so
// `openssl smime -verify` and Verify accept the result.
func Sign(content []byte, cert *x509.Certificate, key crypto.Signer, opts SignOptions) ([]byte, error) {
	if opts.Hash == 0 {
		opts.Hash = crypto.SHA256
	}
	oid, ok := digestOIDs[opts.Hash]
	if !ok || opts.Hash == crypto.SHA1 {
		return nil, fmt.Errorf("smime: signing with %v is not supported", opts.Hash)
	}
	canon := Canonicalize(content)
	sd, err := pkcs7.NewSignedData(canon)
	if err != nil {
		return nil, fmt.Errorf("smime: %w", err)
	}
	sd.SetDigestAlgorithm(oid)
	if len(opts.Chain) > 0 {
		err = sd.AddSignerChain(cert, key, opts.Chain, pkcs7.SignerInfoConfig{})
	} else {
		err = sd.AddSigner(cert, key, pkcs7.SignerInfoConfig{})
	}
	if err != nil {
		return nil, fmt.Errorf("smime: signing: %w", err)
	}
	sd.Detach()
	der, err := sd.Finish()
	if err != nil {
		return nil, fmt.Errorf("smime: signing: %w", err)
	}
	var rnd [16]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, fmt.Errorf("smime: boundary: %w", err)
	}
	boundary := "----" + strings.ToUpper(hex.EncodeToString(rnd[:]))

	var b bytes.Buffer
	b.WriteString("MIME-Version: 1.0\n")
	fmt.Fprintf(&b, "Content-Type: multipart/signed; protocol=\"application/x-pkcs7-signature\"; micalg=\"%s\"; boundary=\"%s\"\n\n", micalgName(opts.Hash), boundary)
	b.WriteString("This is an S/MIME signed message\n\n")
	fmt.Fprintf(&b, "--%s\n", boundary)
	b.Write(canon)
	fmt.Fprintf(&b, "\n--%s\n", boundary)
	b.WriteString("Content-Type: application/x-pkcs7-signature; name=\"smime.p7s\"\n")
	b.WriteString("Content-Transfer-Encoding: base64\n")
	b.WriteString("Content-Disposition: attachment; filename=\"smime.p7s\"\n\n")
	enc := base64.StdEncoding.EncodeToString(der)
	for len(enc) > 64 {
		b.WriteString(enc[:64])
		b.WriteByte('\n')
		enc = enc[64:]
	}
	b.WriteString(enc)
	fmt.Fprintf(&b, "\n\n--%s--\n\n", boundary)
	return b.Bytes(), nil
}
