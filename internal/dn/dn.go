// Package dn renders and hashes DER-encoded X.509 distinguished names
// (cert.RawSubject, cert.RawIssuer, CRL issuers) byte-for-byte the way
// OpenSSL 3.0 does, so that DNs and CA-directory file names computed in Go
// agree with the openssl command line tool and with OpenSSL-based software
// (grid middleware, X509_LOOKUP_hash_dir, c_rehash, ...).
//
// # Guarantees
//
//   - Oneline returns exactly the string produced by OpenSSL's
//     X509_NAME_oneline (what `openssl x509 -noout -subject -nameopt compat`
//     prints after "subject="), and Hash returns exactly X509_NAME_hash (what
//     `openssl x509 -noout -hash` / `openssl crl -noout -hash` print). This was
//     verified against the OpenSSL 3.0 CLI; see the tests.
//   - Attribute types are named with OpenSSL's own short names: the package
//     carries a table generated from OpenSSL 3.0's obj_mac.h
//     (objects_table.go, see gen_objects.go), so every object OpenSSL knows is
//     printed as OpenSSL prints it, and any other OID in dotted form with
//     OpenSSL's quirks (truncated to 79 characters; printed as the empty string
//     when the OID encoding exceeds 586 octets).
//   - A Name is accepted only if it is DER and OpenSSL's d2i_X509_NAME would
//     accept it (this includes OpenSSL's canonicalisation step, which rejects
//     e.g. invalid UTF-8 in a UTF8String or a surrogate in a BMPString, and
//     the 1 MiB X509_NAME_MAX limit). Everything else yields an error that
//     wraps ErrMalformed (not well-formed DER / not a Name) or ErrRejected
//     (well-formed, but OpenSSL refuses it). Oneline and Hash accept exactly
//     the same inputs, except that Oneline also fails, like
//     X509_NAME_oneline, when its result would exceed 1 MiB.
//   - The functions never panic, do not retain or modify their input, use
//     only the standard library and are safe for concurrent use.
//
// # Deliberate deviations
//
// OpenSSL's decoder is a BER decoder; this package accepts DER only. Inputs
// that OpenSSL would also accept but that are not DER — indefinite lengths,
// non-minimal length octets, constructed (segmented) string encodings — are
// rejected with ErrMalformed instead of being normalised. Go's crypto/x509
// never hands out such RawSubject/RawIssuer bytes.
//
// X509_NAME_oneline's special case for GeneralString values (printing only
// every fourth octet of UCS-4-like data) is unreachable in OpenSSL 3.0,
// because d2i_X509_NAME refuses GeneralString values; so does this package.
package dn

import (
	"bytes"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ErrMalformed is wrapped by errors for input that is not a DER-encoded
// X.509 Name.
var ErrMalformed = errors.New("dn: malformed DER X.509 Name")

// ErrRejected is wrapped by errors for well-formed DER that OpenSSL 3.0 would
// nevertheless refuse to decode or print (wrong attribute value type, invalid
// string contents, size limits).
var ErrRejected = errors.New("dn: X.509 Name rejected by OpenSSL rules")

const (
	// x509NameMax is X509_NAME_MAX in crypto/x509/x_name.c: d2i_X509_NAME
	// never reads more than this many octets.
	x509NameMax = 1024 * 1024
	// nameOnelineMax is NAME_ONELINE_MAX in crypto/x509/x509_obj.c.
	nameOnelineMax = 1024 * 1024
	// onelineObjBuf is the size of tmp_buf in X509_NAME_oneline, which holds
	// the dotted form of unknown OIDs (so at most onelineObjBuf-1 characters).
	onelineObjBuf = 80
	// obj2txtMaxLen is the OID content length above which OBJ_obj2txt refuses
	// to translate (RFC 2578 bound, added for CVE-2023-2650).
	obj2txtMaxLen = 586
)

// Universal tag numbers used below.
const (
	tagBitString       = 3
	tagUTF8String      = 12
	tagSequence        = 16
	tagNumericString   = 18
	tagPrintableString = 19
	tagT61String       = 20
	tagIA5String       = 22
	tagVisibleString   = 26
	tagUniversalString = 28
	tagBMPString       = 30
)

// printableTags is OpenSSL's B_ASN1_PRINTABLE (the type mask of the
// ASN1_PRINTABLE MSTRING that X509_NAME_ENTRY.value is decoded as), expressed
// through ASN1_tag2bit: the string types plus BIT STRING, SEQUENCE and the
// tags ASN1_tag2bit maps to B_ASN1_UNKNOWN. Notably VisibleString,
// GeneralString, GraphicString, VideotexString, the time types, OCTET STRING
// and INTEGER are NOT accepted by OpenSSL as Name attribute values.
var printableTags = [31]bool{
	tagBitString:       true,
	7:                  true, // ObjectDescriptor (B_ASN1_UNKNOWN)
	8:                  true, // EXTERNAL (B_ASN1_UNKNOWN)
	9:                  true, // REAL (B_ASN1_UNKNOWN)
	11:                 true, // EMBEDDED PDV (B_ASN1_UNKNOWN)
	tagUTF8String:      true,
	13:                 true, // RELATIVE-OID (B_ASN1_UNKNOWN)
	14:                 true, // B_ASN1_UNKNOWN
	15:                 true, // B_ASN1_UNKNOWN
	tagSequence:        true,
	tagNumericString:   true,
	tagPrintableString: true,
	tagT61String:       true,
	tagIA5String:       true,
	tagUniversalString: true,
	29:                 true, // CHARACTER STRING (B_ASN1_UNKNOWN)
	tagBMPString:       true,
}

// attr is one AttributeTypeAndValue as OpenSSL holds it after decoding.
type attr struct {
	oid []byte // OBJECT IDENTIFIER content octets
	tag byte   // universal tag number of the value (ASN1_STRING.type)
	// data is ASN1_STRING.data: the content octets; for SEQUENCE the whole
	// encoding; for BIT STRING the bits without the unused-bits octet, with
	// the unused bits cleared.
	data     []byte
	bitsLeft byte   // BIT STRING unused-bits count
	canon    []byte // DER of the canonical AttributeTypeAndValue
}

// Oneline formats a DER-encoded X.509 Name (cert.RawSubject / cert.RawIssuer)
// exactly as OpenSSL's X509_NAME_oneline does: "/C=DE/O=GermanGrid/OU=DESY/CN=Name",
// RDNs in DER order, OpenSSL short names (C, ST, L, O, OU, CN, DC,
// emailAddress, UID, serialNumber, SN, GN, title, street, postalCode, name,
// initials, dnQualifier, pseudonym, generationQualifier, businessCategory,
// jurisdictionC/jurisdictionST/jurisdictionL, ... — every object in OpenSSL's
// table), unknown OIDs in dotted form, the members of a multi-valued RDN
// joined with '+' (in DER order), '/' and '+' inside values escaped with a
// backslash, and every byte outside 0x20..0x7E written as \xHH (upper-case
// hex). Values are printed from their raw content octets without any
// character-set conversion, so UTF-8 "Müller" becomes "M\xC3\xBCller" and a
// BMPString "AB" becomes "\x00A\x00B". An empty Name yields "".
//
// It returns an error (wrapping ErrMalformed or ErrRejected) on malformed DER
// or on a Name OpenSSL would not decode, and never panics.
func Oneline(rawName []byte) (string, error) {
	rdns, err := parseName(rawName)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, rdn := range rdns {
		for i, a := range rdn {
			name := objectName(a.oid)
			n := 1 + len(name) + 1 + escapedLen(a.data)
			if b.Len()+n > nameOnelineMax {
				return "", fmt.Errorf("%w: one-line form exceeds OpenSSL's NAME_ONELINE_MAX (%d bytes)", ErrRejected, nameOnelineMax)
			}
			b.Grow(n)
			if i == 0 {
				b.WriteByte('/')
			} else {
				b.WriteByte('+')
			}
			b.WriteString(name)
			b.WriteByte('=')
			writeEscaped(&b, a.data)
		}
	}
	return b.String(), nil
}

// Hash returns OpenSSL's X509_NAME_hash (the "subject hash" used to name
// HASH.0 / HASH.r0 files in a CA directory, as printed by `openssl x509 -hash`
// and `openssl crl -hash`): SHA-1 over the canonical encoding, first 4 bytes
// as a little-endian uint32. The canonical encoding (x509_name_canon) is:
//   - UTF8String, PrintableString, T61String, IA5String, BMPString and
//     UniversalString values converted to UTF8String (single-byte types read
//     as Latin-1), ASCII-lowercased, leading/trailing ASCII whitespace removed
//     and internal whitespace runs collapsed to one space (non-ASCII
//     characters are neither case-folded nor treated as whitespace);
//   - all other value types (NumericString, BIT STRING, SEQUENCE, ...) kept
//     as they are;
//   - the members of each multi-valued RDN re-sorted by their DER encoding
//     (OpenSSL's SET OF ordering);
//   - the RDN SETs concatenated WITHOUT the outer SEQUENCE header, empty RDNs
//     dropped (an empty Name hashes SHA-1 of nothing: eea339da).
//
// It returns an error (wrapping ErrMalformed or ErrRejected) on malformed DER
// or on a Name OpenSSL would not decode, and never panics.
func Hash(rawName []byte) (uint32, error) {
	rdns, err := parseName(rawName)
	if err != nil {
		return 0, err
	}
	h := sha1.New()
	var set []byte
	for _, rdn := range rdns {
		set = appendCanonicalSet(set[:0], rdn)
		h.Write(set)
	}
	var sum [sha1.Size]byte
	return binary.LittleEndian.Uint32(h.Sum(sum[:0])), nil
}

// HashName formats Hash as the 8 lower-case hex digits used in file names
// (e.g. "9da13359" for 9da13359.0 / 9da13359.r0).
func HashName(rawName []byte) (string, error) {
	h, err := Hash(rawName)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%08x", h), nil
}

// parseName decodes a Name the way d2i_X509_NAME does (restricted to DER)
// and returns its non-empty RDNs. Like x509_name_ex_d2i it also computes the
// canonical form of every value, failing where OpenSSL's decode would fail.
func parseName(raw []byte) ([][]attr, error) {
	id, content, _, rest, err := readTLV(raw)
	if err != nil {
		return nil, err
	}
	if id != 0x30 {
		return nil, fmt.Errorf("%w: Name is not a SEQUENCE (identifier 0x%02x)", ErrMalformed, id)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes after the Name", ErrMalformed, len(rest))
	}
	if len(raw) > x509NameMax {
		return nil, fmt.Errorf("%w: Name is %d bytes, more than OpenSSL's X509_NAME_MAX (%d)", ErrRejected, len(raw), x509NameMax)
	}
	var rdns [][]attr
	for len(content) > 0 {
		var set []byte
		id, set, _, content, err = readTLV(content)
		if err != nil {
			return nil, err
		}
		if id != 0x31 {
			return nil, fmt.Errorf("%w: RelativeDistinguishedName is not a SET (identifier 0x%02x)", ErrMalformed, id)
		}
		var rdn []attr
		for len(set) > 0 {
			var seq []byte
			id, seq, _, set, err = readTLV(set)
			if err != nil {
				return nil, err
			}
			if id != 0x30 {
				return nil, fmt.Errorf("%w: AttributeTypeAndValue is not a SEQUENCE (identifier 0x%02x)", ErrMalformed, id)
			}
			a, err := parseAttr(seq)
			if err != nil {
				return nil, err
			}
			rdn = append(rdn, a)
		}
		// An empty SET decodes to no entries at all in OpenSSL: it
		// contributes nothing to the one-line form or the canonical encoding.
		if len(rdn) > 0 {
			rdns = append(rdns, rdn)
		}
	}
	return rdns, nil
}

func parseAttr(seq []byte) (attr, error) {
	var a attr
	id, oid, oidTLV, seq, err := readTLV(seq)
	if err != nil {
		return a, err
	}
	if id != 0x06 {
		return a, fmt.Errorf("%w: attribute type is not an OBJECT IDENTIFIER (identifier 0x%02x)", ErrMalformed, id)
	}
	if err := checkOID(oid); err != nil {
		return a, err
	}
	a.oid = oid
	id, val, valTLV, seq, err := readTLV(seq)
	if err != nil {
		return a, err
	}
	if len(seq) != 0 {
		return a, fmt.Errorf("%w: trailing data in AttributeTypeAndValue", ErrMalformed)
	}
	if id&0xc0 != 0 {
		return a, fmt.Errorf("%w: attribute value has non-universal identifier 0x%02x", ErrRejected, id)
	}
	tag, constructed := id&0x1f, id&0x20 != 0
	if !printableTags[tag] {
		return a, fmt.Errorf("%w: attribute value type (universal tag %d) is not one OpenSSL accepts in a Name", ErrRejected, tag)
	}
	a.tag = tag
	switch {
	case tag == tagSequence:
		if !constructed {
			return a, fmt.Errorf("%w: primitive SEQUENCE attribute value", ErrRejected)
		}
		a.data = valTLV
	case constructed:
		return a, fmt.Errorf("%w: constructed encoding of universal tag %d (not DER)", ErrMalformed, tag)
	case tag == tagBitString:
		if len(val) < 1 {
			return a, fmt.Errorf("%w: empty BIT STRING", ErrRejected)
		}
		if val[0] > 7 {
			return a, fmt.Errorf("%w: BIT STRING with %d unused bits", ErrRejected, val[0])
		}
		a.bitsLeft = val[0]
		if len(val) > 1 {
			a.data = append([]byte(nil), val[1:]...)
			a.data[len(a.data)-1] &= 0xff << a.bitsLeft
		}
	case tag == tagBMPString && len(val)%2 != 0:
		return a, fmt.Errorf("%w: BMPString of odd length %d", ErrRejected, len(val))
	case tag == tagUniversalString && len(val)%4 != 0:
		return a, fmt.Errorf("%w: UniversalString length %d is not a multiple of 4", ErrRejected, len(val))
	default:
		a.data = val
	}
	v, err := canonicalValue(a)
	if err != nil {
		return a, err
	}
	a.canon = appendTLV(nil, 0x30, len(oidTLV)+len(v), oidTLV, v)
	return a, nil
}

// checkOID applies c2i_ASN1_OBJECT's sanity checks (which, for DER input,
// are also exactly the DER rules for OBJECT IDENTIFIER contents).
func checkOID(oid []byte) error {
	if len(oid) == 0 {
		return fmt.Errorf("%w: empty OBJECT IDENTIFIER", ErrMalformed)
	}
	if oid[len(oid)-1]&0x80 != 0 {
		return fmt.Errorf("%w: truncated OBJECT IDENTIFIER subidentifier", ErrMalformed)
	}
	for i, c := range oid {
		if c == 0x80 && (i == 0 || oid[i-1]&0x80 == 0) {
			return fmt.Errorf("%w: non-minimal OBJECT IDENTIFIER subidentifier", ErrMalformed)
		}
	}
	return nil
}

// readTLV reads one DER element with a single-octet identifier and a
// minimal definite length. It returns the identifier octet, the contents, the
// whole element and the input following it.
func readTLV(in []byte) (id byte, content, whole, rest []byte, err error) {
	if len(in) < 2 {
		return 0, nil, nil, nil, fmt.Errorf("%w: truncated element header", ErrMalformed)
	}
	id = in[0]
	if id&0x1f == 0x1f {
		return 0, nil, nil, nil, fmt.Errorf("%w: unexpected high-tag-number identifier", ErrMalformed)
	}
	hdr := 2
	length := uint64(in[1])
	if length&0x80 != 0 {
		n := int(length & 0x7f)
		switch {
		case n == 0:
			return 0, nil, nil, nil, fmt.Errorf("%w: indefinite length (BER, not DER)", ErrMalformed)
		case n > 4:
			return 0, nil, nil, nil, fmt.Errorf("%w: length field of %d octets", ErrMalformed, n)
		case len(in) < 2+n:
			return 0, nil, nil, nil, fmt.Errorf("%w: truncated length field", ErrMalformed)
		}
		length = 0
		for _, c := range in[2 : 2+n] {
			length = length<<8 | uint64(c)
		}
		if in[2] == 0 || length < 0x80 {
			return 0, nil, nil, nil, fmt.Errorf("%w: non-minimal length encoding", ErrMalformed)
		}
		hdr += n
	}
	if length > uint64(len(in)-hdr) {
		return 0, nil, nil, nil, fmt.Errorf("%w: element length %d exceeds the %d available bytes", ErrMalformed, length, len(in)-hdr)
	}
	end := hdr + int(length)
	return id, in[hdr:end:end], in[:end:end], in[end:], nil
}

// appendTLV appends a DER element with the given identifier, content length
// and content parts.
func appendTLV(dst []byte, id byte, length int, parts ...[]byte) []byte {
	dst = append(dst, id)
	switch {
	case length < 0x80:
		dst = append(dst, byte(length))
	case length <= 0xff:
		dst = append(dst, 0x81, byte(length))
	case length <= 0xffff:
		dst = append(dst, 0x82, byte(length>>8), byte(length))
	case length <= 0xffffff:
		dst = append(dst, 0x83, byte(length>>16), byte(length>>8), byte(length))
	default:
		dst = append(dst, 0x84, byte(length>>24), byte(length>>16), byte(length>>8), byte(length))
	}
	for _, p := range parts {
		dst = append(dst, p...)
	}
	return dst
}

// canonicalValue returns the DER encoding of the value that
// asn1_string_canon produces for a.
func canonicalValue(a attr) ([]byte, error) {
	switch a.tag {
	case tagUTF8String, tagPrintableString, tagT61String, tagIA5String,
		tagVisibleString, tagUniversalString, tagBMPString:
		// ASN1_MASK_CANON: converted with ASN1_STRING_to_UTF8, then folded.
		u, err := toUTF8(a.tag, a.data)
		if err != nil {
			return nil, err
		}
		u = foldCanon(u)
		return appendTLV(nil, 0x0c, len(u), u), nil
	case tagSequence:
		// The stored "string" is the whole encoding, re-emitted verbatim.
		return a.data, nil
	case tagBitString:
		// ossl_i2c_ASN1_BIT_STRING with ASN1_STRING_FLAG_BITS_LEFT set.
		bits := a.bitsLeft
		if len(a.data) == 0 {
			bits = 0
		}
		return appendTLV(nil, tagBitString, 1+len(a.data), []byte{bits}, a.data), nil
	default:
		// NumericString and the B_ASN1_UNKNOWN types are copied unchanged.
		return appendTLV(nil, a.tag, len(a.data), a.data), nil
	}
}

// toUTF8 mirrors ASN1_STRING_to_UTF8 (ASN1_mbstring_copy to a UTF8String):
// single-byte types are taken as Latin-1, BMPString as UCS-2 (no surrogate
// pairs), UniversalString as UCS-4; every character must be a Unicode scalar
// value, and UTF8String contents must be valid UTF-8.
func toUTF8(tag byte, s []byte) ([]byte, error) {
	switch tag {
	case tagUTF8String:
		if !utf8.Valid(s) {
			return nil, fmt.Errorf("%w: invalid UTF-8 in UTF8String", ErrRejected)
		}
		return s, nil
	case tagBMPString:
		out := make([]byte, 0, len(s))
		for i := 0; i+1 < len(s); i += 2 {
			r := rune(s[i])<<8 | rune(s[i+1])
			if r >= 0xd800 && r <= 0xdfff {
				return nil, fmt.Errorf("%w: surrogate U+%04X in BMPString", ErrRejected, r)
			}
			out = utf8.AppendRune(out, r)
		}
		return out, nil
	case tagUniversalString:
		out := make([]byte, 0, len(s))
		for i := 0; i+3 < len(s); i += 4 {
			r := binary.BigEndian.Uint32(s[i:])
			if r > 0x10ffff || (r >= 0xd800 && r <= 0xdfff) {
				return nil, fmt.Errorf("%w: invalid character 0x%X in UniversalString", ErrRejected, r)
			}
			out = utf8.AppendRune(out, rune(r))
		}
		return out, nil
	default:
		out := make([]byte, 0, len(s))
		for _, c := range s {
			out = utf8.AppendRune(out, rune(c))
		}
		return out, nil
	}
}

// isSpace is ossl_isspace: ASCII HT, LF, VT, FF, CR and SPACE only.
func isSpace(c byte) bool { return c == ' ' || (c >= '\t' && c <= '\r') }

// foldCanon is the in-place part of asn1_string_canon: strip leading and
// trailing whitespace, collapse internal whitespace runs to one SPACE and
// lower-case ASCII letters; bytes >= 0x80 are copied unchanged.
func foldCanon(s []byte) []byte {
	i, j := 0, len(s)
	for i < j && isSpace(s[i]) {
		i++
	}
	for j > i && isSpace(s[j-1]) {
		j--
	}
	out := make([]byte, 0, j-i)
	for i < j {
		c := s[i]
		switch {
		case c >= 0x80:
			out = append(out, c)
			i++
		case isSpace(c):
			out = append(out, ' ')
			for i < j && isSpace(s[i]) {
				i++
			}
		default:
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			out = append(out, c)
			i++
		}
	}
	return out
}

// appendCanonicalSet appends the canonical DER SET for one RDN: OpenSSL's
// i2d of a SET OF sorts the member encodings (der_cmp: memcmp, then length).
func appendCanonicalSet(dst []byte, rdn []attr) []byte {
	encs := make([][]byte, len(rdn))
	n := 0
	for i := range rdn {
		encs[i] = rdn[i].canon
		n += len(encs[i])
	}
	if len(encs) > 1 {
		sort.Slice(encs, func(i, j int) bool { return bytes.Compare(encs[i], encs[j]) < 0 })
	}
	return appendTLV(dst, 0x31, n, encs...)
}

// objectName returns what X509_NAME_oneline prints for an attribute type:
// OBJ_nid2sn for objects in OpenSSL's table, otherwise the dotted form from
// i2t_ASN1_OBJECT in an 80-byte buffer.
func objectName(oid []byte) string {
	if sn, ok := objectShortNames[string(oid)]; ok {
		return sn
	}
	s := dottedOID(oid)
	if len(s) > onelineObjBuf-1 {
		s = s[:onelineObjBuf-1]
	}
	return s
}

// dottedOID is the numeric branch of OBJ_obj2txt for a validated OID: it
// returns "" (OBJ_obj2txt fails, leaving an empty buffer) for encodings
// longer than obj2txtMaxLen octets.
func dottedOID(oid []byte) string {
	if len(oid) > obj2txtMaxLen {
		return ""
	}
	var b strings.Builder
	first := true
	for len(oid) > 0 {
		var v uint64
		var bv *big.Int
		for len(oid) > 0 {
			c := oid[0]
			oid = oid[1:]
			if bv != nil {
				bv.Lsh(bv, 7)
				bv.Or(bv, big.NewInt(int64(c&0x7f)))
			} else {
				v = v<<7 | uint64(c&0x7f)
			}
			if c&0x80 == 0 {
				break
			}
			// Like OBJ_obj2txt, switch to a bignum before the next 7-bit
			// shift could overflow.
			if bv == nil && v > (^uint64(0))>>7 {
				bv = new(big.Int).SetUint64(v)
			}
		}
		if first {
			first = false
			switch {
			case bv != nil:
				b.WriteByte('2')
				bv.Sub(bv, big.NewInt(80))
			case v >= 80:
				b.WriteByte('2')
				v -= 80
			default:
				b.WriteByte(byte('0' + v/40))
				v %= 40
			}
		}
		b.WriteByte('.')
		if bv != nil {
			b.WriteString(bv.String())
		} else {
			b.WriteString(strconv.FormatUint(v, 10))
		}
	}
	return b.String()
}

// escapedLen is the number of bytes writeEscaped produces for s.
func escapedLen(s []byte) int {
	n := 0
	for _, c := range s {
		switch {
		case c < ' ' || c > '~':
			n += 4
		case c == '/' || c == '+':
			n += 2
		default:
			n++
		}
	}
	return n
}

// writeEscaped applies X509_NAME_oneline's value escaping.
func writeEscaped(b *strings.Builder, s []byte) {
	const hexDigits = "0123456789ABCDEF"
	for _, c := range s {
		switch {
		case c < ' ' || c > '~':
			b.WriteString(`\x`)
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&0x0f])
		case c == '/' || c == '+':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
}
