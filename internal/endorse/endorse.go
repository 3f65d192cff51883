// Package endorse runs the whole verification of a signed HEPiX image list,
// the procedure vmcatcher applies before it trusts a list, and reports every
// check separately.
//
// # Procedure
//
// In order: S/MIME structure; content digest and signature; exactly one
// signer with its certificate; the signer valid at signing time; a chain to a
// CA of the IGTF trust directory; every certificate valid at the check time;
// a current CRL for every issuing CA; no certificate revoked; the CAs'
// namespace policies; the JSON list well-formed and complete; hv:dn and
// hv:ca equal to the signer's subject and issuer (OpenSSL oneline form); the
// list created no later than the check time and not expired.
//
// # Guarantees
//
// Verify returns a Report whatever happens. Report.OK is true only when
// every check passed; Report.List is set only then (content that failed a
// check is never handed out as a list). A check that could not run because
// an earlier one failed is reported as skipped, never as passed. The Reason
// of the first failed check classifies the whole report, so a caller can
// tell a tampered list from an expired one from a wrong endorser.
package endorse

import (
	"errors"
	"time"

	"github.com/vmtrust/vmtrust/imagelist"
	"github.com/vmtrust/vmtrust/internal/dn"
	"github.com/vmtrust/vmtrust/internal/igtf"
)

// Reason classifies a failed verification. Each has its own exit code in
// the command line tool.
type Reason string

const (
	ReasonMalformed       Reason = "malformed"          // not a well-formed S/MIME message, or truncated
	ReasonUnsigned        Reason = "unsigned"           // plain input where a signed list is required
	ReasonUnsupported     Reason = "unsupported"        // protocol, micalg or signature form not accepted
	ReasonTooLarge        Reason = "too-large"          // input over the size bound
	ReasonBadPKCS7        Reason = "bad-pkcs7"          // the signature part is not valid PKCS#7
	ReasonTampered        Reason = "tampered"           // content digest does not match the signed digest
	ReasonBadSignature    Reason = "bad-signature"      // signature value does not verify
	ReasonSignerCount     Reason = "signer-count"       // zero or several signers
	ReasonNoSignerCert    Reason = "no-signer-cert"     // the signer's certificate is not in the message
	ReasonCertAtSigning   Reason = "cert-at-signing"    // a certificate was not valid when the list was signed
	ReasonPurpose         Reason = "cert-purpose"       // the signer's certificate may not sign (keyUsage, extKeyUsage)
	ReasonUntrusted       Reason = "untrusted-ca"       // no chain to a CA of the trust directory
	ReasonCertExpired     Reason = "cert-expired"       // a certificate has expired at the check time
	ReasonCertNotYetValid Reason = "cert-not-yet-valid" // a certificate is not yet valid at the check time
	ReasonCRLMissing      Reason = "crl-missing"        // an issuing CA has no CRL
	ReasonCRLInvalid      Reason = "crl-invalid"        // a CRL is expired, not yet valid or badly signed
	ReasonRevoked         Reason = "revoked"            // a certificate is on its CA's CRL
	ReasonNamespace       Reason = "namespace"          // the signer is outside its CA's namespace
	ReasonInvalidJSON     Reason = "invalid-json"       // the content is not strict JSON or not an image list
	ReasonInvalidList     Reason = "invalid-list"       // a field is missing or malformed, or identifiers repeat
	ReasonDNMismatch      Reason = "endorser-dn"        // hv:dn is not the signer's subject
	ReasonCAMismatch      Reason = "endorser-ca"        // hv:ca is not the signer's issuer
	ReasonUnauthorised    Reason = "unauthorised"       // the signer is not an endorser the site authorised
	ReasonIdentifier      Reason = "identifier"         // dc:identifier is not the expected list's
	ReasonListFuture      Reason = "list-future"        // dc:date:created is after the check time
	ReasonListExpired     Reason = "list-expired"       // dc:date:expires has passed
)

// Reasons lists every Reason in the order of the procedure.
var Reasons = []Reason{
	ReasonTooLarge, ReasonMalformed, ReasonUnsigned, ReasonUnsupported, ReasonBadPKCS7,
	ReasonTampered, ReasonBadSignature, ReasonSignerCount, ReasonNoSignerCert,
	ReasonCertAtSigning, ReasonPurpose, ReasonUntrusted, ReasonCertExpired, ReasonCertNotYetValid,
	ReasonCRLMissing, ReasonCRLInvalid, ReasonRevoked, ReasonNamespace,
	ReasonInvalidJSON, ReasonInvalidList, ReasonDNMismatch, ReasonCAMismatch,
	ReasonUnauthorised, ReasonIdentifier, ReasonListFuture, ReasonListExpired,
}

// Status of one check.
type Status string

const (
	Pass Status = "pass"
	Fail Status = "fail"
	Skip Status = "skip" // not run: an earlier check it depends on failed, or switched off
)

// Check is the outcome of one step of the procedure.
type Check struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	Reason Reason `json:"reason,omitempty"` // set when Status is Fail
	Detail string `json:"detail"`
}

// Report is the outcome of Verify.
type Report struct {
	OK     bool    `json:"ok"`
	Reason Reason  `json:"reason,omitempty"` // of the first failed check
	Error  string  `json:"error,omitempty"`  // its detail
	At     string  `json:"checked_at"`
	Checks []Check `json:"checks"`

	Signer        string `json:"signer,omitempty"`         // subject, oneline
	SignerIssuer  string `json:"signer_issuer,omitempty"`  // issuer, oneline
	SigningTime   string `json:"signing_time,omitempty"`   // RFC 3339
	ContentSHA512 string `json:"content_sha512,omitempty"` // of the signed bytes

	// List is the verified list, set only when OK.
	List *imagelist.List `json:"-"`
	// Content is the signed content, set only when OK.
	Content []byte `json:"-"`
}

// Options tune Verify.
type Options struct {
	At  time.Time    // the time to check validity at; zero means now
	CRL igtf.CRLMode // default CRLRequire

	// Endorsers, when not empty, are the only signers accepted: the signer's
	// subject and issuer must equal one entry's (vmcatcher's "signer
	// authorised for this subscription").
	Endorsers []Endorser
	// Identifier, when set, must equal the list's dc:identifier.
	Identifier string
}

// Endorser is an authorised signer, in OpenSSL oneline form.
type Endorser struct {
	DN string // subject
	CA string // issuer
}

// Err returns the report's failure as an error wrapping ErrRejected, or nil.
func (r *Report) Err() error {
	if r.OK {
		return nil
	}
	return &RejectedError{Reason: r.Reason, Detail: r.Error}
}

// RejectedError is a verification failure. The command line tool maps its
// Reason to an exit code.
type RejectedError struct {
	Reason Reason
	Detail string
}

func (e *RejectedError) Error() string {
	return "list rejected (" + string(e.Reason) + "): " + e.Detail
}

// ErrRejected is wrapped by every RejectedError.
var ErrRejected = errors.New("list rejected")

func (e *RejectedError) Unwrap() error { return ErrRejected }

// display renders a name for a message only; it is never compared.
func display(raw []byte) string {
	s, err := dn.Oneline(raw)
	if err != nil {
		return "(unprintable name)"
	}
	return s
}
