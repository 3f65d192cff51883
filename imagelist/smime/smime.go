// Package smime reads and writes the S/MIME form of signed HEPiX image
// lists: multipart/signed with a detached PKCS#7 (CMS) SignedData, the form
// produced by `openssl smime -sign`, vmcaster and the EGI AppDB.
//
// # Format
//
//	MIME-Version: 1.0
//	Content-Type: multipart/signed; protocol="application/x-pkcs7-signature"; micalg="sha-256"; boundary="----HEX"
//
//	This is an S/MIME signed message
//
//	------HEX
//	<the list, lines ending CRLF, no MIME headers>
//	------HEX
//	Content-Type: application/x-pkcs7-signature; name="smime.p7s"
//	Content-Transfer-Encoding: base64
//	Content-Disposition: attachment; filename="smime.p7s"
//
//	<base64 DER>
//
//	------HEX--
//
// The signed bytes are the first part canonicalised as OpenSSL does: every
// line's trailing CR/LF run becomes CRLF, and the line ending just before the
// delimiter belongs to the delimiter. Go's mime/multipart cannot read these
// messages (the first part has no headers), so Split parses them by hand.
//
// # Guarantees
//
// Split is strict and bounded (MaxMessageSize): anything but exactly one
// multipart/signed message with a PKCS#7 signature part and a closing
// delimiter is an error. Verify checks only cryptography: that there is
// exactly one signer, that its certificate is in the message, that the
// signed attributes carry the digest of the content, that the signature over
// them is valid, and that the signing time lies in the certificate's
// validity. It never returns content for a message that fails any of these,
// and it says nothing about whether the signer is trusted: that is the
// caller's chain, revocation and endorser policy.
//
// Every error wraps one of the exported Err values, so callers can tell a
// tampered list from an unsigned one.
package smime

import (
	"errors"
)

// MaxMessageSize bounds the whole signed message. A signed list of 10,000
// images is about 7.4 MB.
const MaxMessageSize = 64 << 20

// Error classes. Every error from this package wraps exactly one.
var (
	ErrTooLarge     = errors.New("message too large")
	ErrUnsigned     = errors.New("not a signed message")
	ErrMalformed    = errors.New("malformed S/MIME message")
	ErrUnsupported  = errors.New("unsupported S/MIME signature")
	ErrSignature    = errors.New("malformed PKCS#7 signature")
	ErrSignerCount  = errors.New("not exactly one signer")
	ErrNoSignerCert = errors.New("signer certificate missing")
	ErrTampered     = errors.New("content does not match its signature (tampered)")
	ErrBadSignature = errors.New("signature value is invalid")
	ErrSigningTime  = errors.New("signer certificate not valid at signing time")
)
