package dn

import (
	"encoding/asn1"
	"encoding/binary"
	"math/big"
	"unicode/utf16"
)

// Small DER builders for hand-crafted Names in tests.

func tlv(id byte, content ...[]byte) []byte {
	n := 0
	for _, c := range content {
		n += len(c)
	}
	return appendTLV(nil, id, n, content...)
}

func name(rdns ...[]byte) []byte { return tlv(0x30, rdns...) }
func rdn(avas ...[]byte) []byte  { return tlv(0x31, avas...) }

func ava(oidTLV, value []byte) []byte { return tlv(0x30, oidTLV, value) }

// oid encodes a dotted OID with encoding/asn1 (arcs must fit in int).
func oid(arcs ...int) []byte {
	b, err := asn1.Marshal(asn1.ObjectIdentifier(arcs))
	if err != nil {
		panic(err)
	}
	return b
}

// oidBig encodes an OID whose arcs may be arbitrarily large.
func oidBig(arcs ...*big.Int) []byte {
	first := new(big.Int).Mul(arcs[0], big.NewInt(40))
	first.Add(first, arcs[1])
	var content []byte
	for _, a := range append([]*big.Int{first}, arcs[2:]...) {
		content = append(content, base128(a)...)
	}
	return tlv(0x06, content)
}

func base128(n *big.Int) []byte {
	if n.Sign() == 0 {
		return []byte{0}
	}
	var rev []byte
	v := new(big.Int).Set(n)
	m := new(big.Int)
	for v.Sign() > 0 {
		v.DivMod(v, big.NewInt(128), m)
		rev = append(rev, byte(m.Int64()))
	}
	out := make([]byte, len(rev))
	for i := range rev {
		out[i] = rev[len(rev)-1-i]
		if i != len(rev)-1 {
			out[i] |= 0x80
		}
	}
	return out
}

func bigInt(s string) *big.Int {
	n, ok := new(big.Int).SetString(s, 10)
	if !ok {
		panic(s)
	}
	return n
}

func str(tag byte, s string) []byte { return tlv(tag, []byte(s)) }
func printable(s string) []byte     { return str(tagPrintableString, s) }
func utf8s(s string) []byte         { return str(tagUTF8String, s) }
func ia5(s string) []byte           { return str(tagIA5String, s) }
func t61(s string) []byte           { return str(tagT61String, s) }
func numeric(s string) []byte       { return str(tagNumericString, s) }

func bmp(s string) []byte {
	var b []byte
	for _, u := range utf16.Encode([]rune(s)) {
		b = binary.BigEndian.AppendUint16(b, u)
	}
	return tlv(tagBMPString, b)
}

func universal(s string) []byte {
	var b []byte
	for _, r := range s {
		b = binary.BigEndian.AppendUint32(b, uint32(r))
	}
	return tlv(tagUniversalString, b)
}

// Well-known attribute types.
var (
	oidC            = oid(2, 5, 4, 6)
	oidST           = oid(2, 5, 4, 8)
	oidL            = oid(2, 5, 4, 7)
	oidO            = oid(2, 5, 4, 10)
	oidOU           = oid(2, 5, 4, 11)
	oidCN           = oid(2, 5, 4, 3)
	oidSN           = oid(2, 5, 4, 4)
	oidGN           = oid(2, 5, 4, 42)
	oidSerialNumber = oid(2, 5, 4, 5)
	oidTitle        = oid(2, 5, 4, 12)
	oidStreet       = oid(2, 5, 4, 9)
	oidPostalCode   = oid(2, 5, 4, 17)
	oidName         = oid(2, 5, 4, 41)
	oidInitials     = oid(2, 5, 4, 43)
	oidGenQual      = oid(2, 5, 4, 44)
	oidDNQualifier  = oid(2, 5, 4, 46)
	oidPseudonym    = oid(2, 5, 4, 65)
	oidBusinessCat  = oid(2, 5, 4, 15)
	oidOrgID        = oid(2, 5, 4, 97)
	oidDC           = oid(0, 9, 2342, 19200300, 100, 1, 25)
	oidUID          = oid(0, 9, 2342, 19200300, 100, 1, 1)
	oidUniqueID     = oid(0, 9, 2342, 19200300, 100, 1, 44)
	oidEmail        = oid(1, 2, 840, 113549, 1, 9, 1)
	oidJurC         = oid(1, 3, 6, 1, 4, 1, 311, 60, 2, 1, 3)
	oidJurST        = oid(1, 3, 6, 1, 4, 1, 311, 60, 2, 1, 2)
	oidJurL         = oid(1, 3, 6, 1, 4, 1, 311, 60, 2, 1, 1)
	oidRSAEnc       = oid(1, 2, 840, 113549, 1, 1, 1) // long name only in OpenSSL
	oidORG          = oid(1, 3)                       // duplicate OID in OpenSSL's table
	oidUnknown      = oid(1, 3, 6, 1, 4, 1, 99999, 42, 7)
)
