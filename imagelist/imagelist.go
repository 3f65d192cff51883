// Package imagelist reads and writes HEPiX image lists, the JSON format that
// vmcaster, vmcatcher, cloudkeeper, atrope and the EGI AppDB exchange.
//
// # Format
//
// A list is {"hv:imagelist": {...}} with Dublin Core (dc:), StratusLab (sl:),
// HEPiX (hv:) and AppDB (ad:) fields. Dates are exactly
// "2006-01-02T15:04:05Z" in UTC. hv:size is a number in some lists and a
// string in others; both are accepted.
//
// # Guarantees
//
// Parse is strict where a security decision depends on the result and
// lenient where real lists differ:
//
//   - The input must be one JSON document of valid UTF-8 with no duplicate
//     object keys, at most MaxListSize bytes and MaxDepth levels deep;
//     otherwise Parse returns an error wrapping ErrSyntax and no list.
//   - A field of the wrong JSON type, a missing required field, a malformed
//     date, size, sha512 or identifier, and two images with the same
//     identifier are all reported by Validate as Problems, each with its path.
//     Nothing is dropped silently: an image that lacks a required field is
//     kept and reported (the reference Python parser drops it).
//   - Unknown fields are kept in Extra and written back by Marshal.
//
// Parse does not verify anything about who wrote the list. Only content that
// has passed S/MIME verification (package smime) may be trusted.
package imagelist

import (
	"encoding/json"
	"time"
)

// TimeFormat is the one date format HEPiX lists use.
const TimeFormat = "2006-01-02T15:04:05Z"

// DefaultLifetime is how long a list is valid by default, as in vmcaster.
const DefaultLifetime = 28 * 24 * time.Hour

// List is one HEPiX image list.
type List struct {
	Created     time.Time // dc:date:created
	Expires     time.Time // dc:date:expires
	Identifier  string    // dc:identifier, a UUID that stays the same across versions
	Title       string    // dc:title
	Description string    // dc:description
	Source      string    // dc:source
	Version     string    // hv:version
	URI         string    // hv:uri: where the next version is published
	VO          string    // ad:vo (optional)
	Endorser    Endorser  // hv:endorser/hv:x509
	Images      []Image   // hv:images

	// Extra holds fields of hv:imagelist that this package does not know.
	Extra map[string]json.RawMessage

	problems []Problem
}

// Endorser is the hv:endorser/hv:x509 object. DN and CA are OpenSSL
// "oneline" distinguished names of the signer and of its issuer.
type Endorser struct {
	DN      string // hv:dn
	CA      string // hv:ca
	Email   string // hv:email
	Creator string // dc:creator

	Extra map[string]json.RawMessage
}

// Image is one hv:image entry.
type Image struct {
	Identifier  string // dc:identifier
	Title       string // dc:title
	Description string // dc:description
	Size        int64  // hv:size in bytes
	SHA512      string // sl:checksum:sha512, lower-case hex
	URI         string // hv:uri
	Version     string // hv:version
	Arch        string // sl:arch
	OS          string // sl:os
	OSName      string // sl:osname (optional)
	OSVersion   string // sl:osversion
	Comments    string // sl:comments
	Hypervisor  string // hv:hypervisor
	Format      string // hv:format (optional)

	Expires time.Time // dc:date:expires (optional, per image)

	RAMMinimum      string // hv:ram_minimum (optional)
	RAMRecommended  string // ad:ram_recommended (optional)
	CoreMinimum     string // hv:core_minimum (optional)
	CoreRecommended string // ad:core_recommended (optional)

	VO           string // ad:vo (optional)
	MPURI        string // ad:mpuri (optional)
	BaseMPURI    string // ad:base_mpuri (optional)
	Group        string // ad:group (optional)
	AppID        string // ad:appid (optional)
	UserFullname string // ad:user:fullname (optional)
	UserGUID     string // ad:user:guid (optional)
	UserURI      string // ad:user:uri (optional)

	Extra map[string]json.RawMessage
}

// Problem is one thing wrong with a parsed list, at a JSON path such as
// "hv:imagelist/hv:images[2]/sl:checksum:sha512".
type Problem struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

func (p Problem) String() string { return p.Path + ": " + p.Message }

// Problems returns everything Parse found wrong with the list, in document
// order. A list with problems must not be used to admit anything.
func (l *List) Problems() []Problem { return l.problems }

// ExpiresAt reports when an image stops being endorsed: its own
// dc:date:expires when that comes before the list's, else the list's.
func (l *List) ExpiresAt(img *Image) time.Time {
	if !img.Expires.IsZero() && img.Expires.Before(l.Expires) {
		return img.Expires
	}
	return l.Expires
}
