package catalog

import (
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vmtrust/vmtrust/imagelist"
)

// Limits on what the catalog stores. Implementations enforce them through
// the Validate methods.
const (
	MaxNameLen  = 64   // endorser and hook names
	MaxTextLen  = 4096 // any other string field, except Raw and paths
	MaxPathLen  = 4096 // Path, CABundle
	MaxErrorLen = 1024 // LastError and Delivery.LastError; longer ones are truncated
	MaxFields   = 64   // Event.Fields and Image.Attrs entries
	MaxPage     = 1000 // most events one Events or Pending call returns
)

// ValidName reports whether s is a safe identifier: 1 to MaxNameLen ASCII
// letters, digits, '.', '_' and '-', starting with a letter or digit. Such
// a name is safe as a path component, a shell word and a log value.
func ValidName(s string) bool {
	return len(s) <= MaxNameLen && imagelist.ValidIdentifier(s)
}

// Valid reports whether m is one of the three modes.
func (m NewImages) Valid() bool {
	return m == NewImagesRefuse || m == NewImagesAccept || m == NewImagesSubscribe
}

// Valid reports whether s is one of the six states.
func (s ImageState) Valid() bool {
	switch s {
	case ImageAvailable, ImageDownloading, ImageCached, ImageExpired, ImageRevoked, ImageRefused:
		return true
	}
	return false
}

// Valid reports whether t is a known event type.
func (t EventType) Valid() bool {
	switch t {
	case EventProcessPrefix, EventProcessPostfix, EventAvailablePrefix, EventAvailablePostfix,
		EventExpirePrefix, EventExpirePostfix, EventSubscriptionImageNew,
		EventListAccepted, EventListRejected:
		return true
	}
	return false
}

// ValidSHA512 reports whether s is a SHA-512 digest in lower-case hex.
func ValidSHA512(s string) bool {
	if len(s) != 2*sha512.Size {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// SHA512Hex is the lower-case hex SHA-512 of b.
func SHA512Hex(b []byte) string {
	sum := sha512.Sum512(b)
	return hex.EncodeToString(sum[:])
}

// OrNow returns t in UTC, or the current time in UTC when t is zero.
func OrNow(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now().UTC()
	}
	return t.UTC()
}

// TruncateError returns err's message cut to MaxErrorLen bytes at a rune
// boundary, or "" for nil.
func TruncateError(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	if len(s) <= MaxErrorLen {
		return s
	}
	s = s[:MaxErrorLen]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// CheckVersion applies the version rule to a list with version v and
// digest sum, given the accepted version and digest (both "" before the
// first list). It returns unchanged=true for the same version with the same
// digest, and an error wrapping ErrConflict for a lower version or for the
// same version with another digest.
func CheckVersion(accepted, acceptedSHA512, v, sum string) (unchanged bool, err error) {
	if accepted == "" {
		return false, nil
	}
	switch c := imagelist.CompareVersions(v, accepted); {
	case c > 0:
		return false, nil
	case c < 0:
		return false, fmt.Errorf("list version %q is lower than the accepted %q (rollback): %w", v, accepted, ErrConflict)
	case sum != acceptedSHA512:
		return false, fmt.Errorf("list version %q was already accepted with other content: %w", v, ErrConflict)
	}
	return true, nil
}

func invalid(subject, format string, args ...any) error {
	return fmt.Errorf("%s: %s: %w", subject, fmt.Sprintf(format, args...), ErrInvalid)
}

// checkText rejects strings that are not valid UTF-8, contain control
// characters or exceed max bytes, and empty ones when required.
func checkText(subject, field, s string, max int, required bool) error {
	switch {
	case s == "" && required:
		return invalid(subject, "%s is empty", field)
	case len(s) > max:
		return invalid(subject, "%s is longer than %d bytes", field, max)
	case !utf8.ValidString(s):
		return invalid(subject, "%s is not valid UTF-8", field)
	case strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return invalid(subject, "%s contains a control character", field)
	}
	return nil
}

func checkTime(subject, field string, t time.Time, required bool) error {
	if t.IsZero() {
		if required {
			return invalid(subject, "%s is not set", field)
		}
		return nil
	}
	if y := t.UTC().Year(); y < 1 || y > 9999 {
		return invalid(subject, "%s %v is outside years 1 to 9999", field, t)
	}
	return nil
}

// Validate checks e before it is stored.
func (e *Endorser) Validate() error {
	subject := fmt.Sprintf("endorser %q", e.Name)
	if !ValidName(e.Name) {
		return invalid(subject, "name is not a safe identifier ([A-Za-z0-9][A-Za-z0-9._-]*, at most %d bytes)", MaxNameLen)
	}
	for _, f := range []struct{ name, v string }{{"DN", e.DN}, {"CA", e.CA}} {
		if err := checkText(subject, f.name, f.v, MaxTextLen, true); err != nil {
			return err
		}
		if !strings.HasPrefix(f.v, "/") {
			return invalid(subject, "%s %q is not in OpenSSL oneline form (/C=../CN=..)", f.name, f.v)
		}
	}
	return checkTime(subject, "Added", e.Added, false)
}

// Validate checks the fields of s that AddSubscription stores.
func (s *Subscription) Validate() error {
	subject := fmt.Sprintf("subscription %q", s.URL)
	if err := checkText(subject, "URL", s.URL, MaxTextLen, true); err != nil {
		return err
	}
	if u, err := url.Parse(s.URL); err != nil || !u.IsAbs() || (u.Host == "" && u.Path == "") || strings.ContainsAny(s.URL, " \t") {
		return invalid(subject, "URL is not an absolute URL")
	}
	if err := checkText(subject, "Identifier", s.Identifier, MaxTextLen, false); err != nil {
		return err
	}
	if err := checkTime(subject, "Created", s.Created, false); err != nil {
		return err
	}
	return (&SubscriptionUpdate{Endorser: s.Endorser, NewImages: s.NewImages, CABundle: s.CABundle}).validate(subject)
}

// Validate checks u before it is applied.
func (u *SubscriptionUpdate) Validate() error { return u.validate("subscription update") }

func (u *SubscriptionUpdate) validate(subject string) error {
	if !ValidName(u.Endorser) {
		return invalid(subject, "endorser %q is not a safe identifier", u.Endorser)
	}
	if !u.NewImages.Valid() {
		return invalid(subject, "new-images mode %q is not refuse, accept or subscribe", u.NewImages)
	}
	return checkText(subject, "CABundle", u.CABundle, MaxPathLen, false)
}

// Validate checks lv before it is stored. SHA512 may be empty (it is then
// computed from Raw); when set it must match Raw.
func (lv *ListVersion) Validate() error {
	subject := fmt.Sprintf("list version %q", lv.Version)
	if err := checkText(subject, "Version", lv.Version, MaxTextLen, true); err != nil {
		return err
	}
	if err := checkText(subject, "Identifier", lv.Identifier, MaxTextLen, true); err != nil {
		return err
	}
	if len(lv.Raw) == 0 {
		return invalid(subject, "Raw is empty")
	}
	if lv.SHA512 != "" && lv.SHA512 != SHA512Hex(lv.Raw) {
		return invalid(subject, "SHA512 does not match Raw")
	}
	for _, f := range []struct{ name, v string }{{"Signer", lv.Signer}, {"SignerCA", lv.SignerCA}} {
		if err := checkText(subject, f.name, f.v, MaxTextLen, true); err != nil {
			return err
		}
	}
	for _, f := range []struct {
		name string
		t    time.Time
		req  bool
	}{{"Created", lv.Created, true}, {"Expires", lv.Expires, true}, {"AcceptedAt", lv.AcceptedAt, false}} {
		if err := checkTime(subject, f.name, f.t, f.req); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks im before AcceptList stores it. SubscriptionID,
// ListVersion and UpdatedAt are set by the store and not checked.
func (im *Image) Validate() error {
	subject := fmt.Sprintf("image %q", im.ID)
	if err := checkText(subject, "ID", im.ID, MaxTextLen, true); err != nil {
		return err
	}
	if !ValidSHA512(im.SHA512) {
		return invalid(subject, "SHA512 is not a lower-case hex SHA-512 digest")
	}
	if im.Size < 0 {
		return invalid(subject, "Size %d is negative", im.Size)
	}
	for _, f := range []struct{ name, v string }{{"Title", im.Title}, {"Version", im.Version}, {"URI", im.URI}, {"Format", im.Format}} {
		if err := checkText(subject, f.name, f.v, MaxTextLen, false); err != nil {
			return err
		}
	}
	if err := checkTime(subject, "Expires", im.Expires, false); err != nil {
		return err
	}
	if err := checkState(subject, im.State, im.Path); err != nil {
		return err
	}
	if len(im.Attrs) > MaxFields {
		return invalid(subject, "more than %d Attrs", MaxFields)
	}
	for k, v := range im.Attrs {
		if err := checkText(subject, "Attrs key", k, MaxTextLen, true); err != nil {
			return err
		}
		if !validValue(v) {
			return invalid(subject, "Attrs[%q] is longer than %d bytes, holds a NUL or is not UTF-8", k, MaxTextLen)
		}
	}
	return nil
}

func checkState(subject string, st ImageState, path string) error {
	if !st.Valid() {
		return invalid(subject, "state %q is unknown", st)
	}
	if err := checkText(subject, "Path", path, MaxPathLen, false); err != nil {
		return err
	}
	if st == ImageCached && path == "" {
		return invalid(subject, "state cached needs a Path")
	}
	return nil
}

// Validate checks c before it is applied.
func (c *StateChange) Validate() error {
	subject := fmt.Sprintf("image %q of subscription %d", c.ImageID, c.SubscriptionID)
	if c.ImageID == "" {
		return invalid(subject, "ImageID is empty")
	}
	if err := checkState(subject, c.State, c.Path); err != nil {
		return err
	}
	if c.State == ImageCached && c.SHA512 == "" {
		return invalid(subject, "state cached needs the verified SHA512")
	}
	if c.SHA512 != "" && !ValidSHA512(c.SHA512) {
		return invalid(subject, "SHA512 is not a lower-case hex SHA-512 digest")
	}
	for _, s := range c.From {
		if !s.Valid() {
			return invalid(subject, "From state %q is unknown", s)
		}
	}
	return checkTime(subject, "At", c.At, false)
}

// Validate checks ev before it is appended.
func (ev *Event) Validate() error {
	subject := fmt.Sprintf("event %s", ev.Type)
	if !ev.Type.Valid() {
		return invalid("event", "type %q is unknown", ev.Type)
	}
	if ev.SubscriptionID < 0 {
		return invalid(subject, "SubscriptionID %d is negative", ev.SubscriptionID)
	}
	if err := checkText(subject, "ImageID", ev.ImageID, MaxTextLen, false); err != nil {
		return err
	}
	if err := checkTime(subject, "Time", ev.Time, false); err != nil {
		return err
	}
	if len(ev.Fields) > MaxFields {
		return invalid(subject, "more than %d Fields", MaxFields)
	}
	for k, v := range ev.Fields {
		if !validFieldName(k) {
			return invalid(subject, "field name %q is not [A-Z0-9_]+", k)
		}
		if !validValue(v) {
			return invalid(subject, "field %s is longer than %d bytes, holds a NUL or is not UTF-8", k, MaxTextLen)
		}
	}
	return nil
}

// validValue allows free text (newlines included) that is safe in an
// environment variable.
func validValue(v string) bool {
	return len(v) <= MaxTextLen && strings.IndexByte(v, 0) < 0 && utf8.ValidString(v)
}

func validFieldName(k string) bool {
	if k == "" || len(k) > MaxNameLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; !('A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// Validate checks h before it is added.
func (h *Hook) Validate() error {
	if !ValidName(h.Name) {
		return invalid(fmt.Sprintf("hook %q", h.Name), "name is not a safe identifier")
	}
	return checkTime(fmt.Sprintf("hook %q", h.Name), "Added", h.Added, false)
}

// Validate checks u before it is stored.
func (u *UserImage) Validate() error {
	subject := fmt.Sprintf("user image %.16s", u.SHA512)
	if !ValidSHA512(u.SHA512) {
		return invalid(subject, "SHA512 is not a lower-case hex SHA-512 digest")
	}
	if u.Size < 0 {
		return invalid(subject, "negative size")
	}
	switch u.Format {
	case "raw", "qcow2", "vmdk":
	default:
		return invalid(subject, "format %q is not raw, qcow2 or vmdk", u.Format)
	}
	if !filepath.IsAbs(u.Path) {
		return invalid(subject, "path %q is not absolute", u.Path)
	}
	if !ValidName(u.Owner) {
		return invalid(subject, "owner %q is not a safe identifier", u.Owner)
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{{"Path", u.Path, MaxPathLen}, {"Name", u.Name, MaxPathLen}, {"RegisteredBy", u.RegisteredBy, MaxTextLen},
		{"Inspection.BlockOn", u.Inspection.BlockOn, MaxTextLen}, {"Inspection.MaxSeverity", u.Inspection.MaxSeverity, MaxTextLen},
		{"Inspection.OS", u.Inspection.OS, MaxTextLen}} {
		if err := checkText(subject, f.name, f.v, f.max, false); err != nil {
			return err
		}
	}
	if len(u.Inspection.Findings) > MaxFields {
		return invalid(subject, "more than %d severities", MaxFields)
	}
	if err := checkTime(subject, "RegisteredAt", u.RegisteredAt, false); err != nil {
		return err
	}
	if err := checkTime(subject, "Inspection.At", u.Inspection.At, true); err != nil {
		return err
	}
	return checkTime(subject, "VerifiedAt", u.VerifiedAt, false)
}
