// Package osrelease identifies a guest's operating system from its files,
// without running anything: /etc/os-release, else /usr/lib/os-release
// (os-release(5)), else the older release files — /etc/debian_version
// (with /etc/lsb-release for Ubuntu), /etc/{rocky,almalinux,centos,
// redhat}-release and /etc/alpine-release.
//
// Guarantees: files are read through fsys.Root, so links are followed
// inside the guest only; every file is bounded (MaxFileSize) and parsed
// strictly (see Parse); the first candidate that exists decides, and a
// malformed one is an error, never a silent fall-through to the next.
// Identifiers in the result (ID, ID_LIKE, VERSION_ID, VERSION_CODENAME) are
// checked against os-release(5)'s character set; free text (PRETTY_NAME)
// is returned as the guest wrote it and must be escaped before display.
package osrelease

import (
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"strings"

	"github.com/vmtrust/vmtrust/internal/fsys"
	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
)

// ErrNotFound is returned (wrapped) when the guest has none of the files
// Detect looks for.
var ErrNotFound = errors.New("no os-release or release file")

// Detect identifies the guest's operating system. Source in the result is
// the guest path it was read from ("/etc/os-release", ...).
func Detect(r *fsys.Root) (inventory.OS, error) {
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		b, err := readFile(r, p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return inventory.OS{}, err
		}
		o, err := FromOSRelease(b)
		if err != nil {
			return inventory.OS{}, fmt.Errorf("%s: %w", p, err)
		}
		o.Source = p
		return o, nil
	}
	for _, fb := range fallbacks {
		b, err := readFile(r, fb.path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return inventory.OS{}, err
		}
		o, err := fb.parse(r, b)
		if err != nil {
			return inventory.OS{}, fmt.Errorf("%s: %w", fb.path, err)
		}
		if o.Source == "" {
			o.Source = fb.path
		}
		return o, nil
	}
	return inventory.OS{}, fmt.Errorf("osrelease: %w", ErrNotFound)
}

func readFile(r *fsys.Root, p string) ([]byte, error) {
	b, err := r.ReadFile(p, MaxFileSize)
	if err != nil {
		return nil, fmt.Errorf("osrelease: %w", err)
	}
	return b, nil
}

// fallbacks are tried in order when there is no os-release file. The
// distribution-specific Red Hat family files come before redhat-release,
// which is often a link to one of them.
var fallbacks = []struct {
	path  string
	parse func(r *fsys.Root, b []byte) (inventory.OS, error)
}{
	{"/etc/debian_version", parseDebian},
	{"/etc/rocky-release", parseRedHat},
	{"/etc/almalinux-release", parseRedHat},
	{"/etc/centos-release", parseRedHat},
	{"/etc/redhat-release", parseRedHat},
	{"/etc/alpine-release", parseAlpine},
}

var (
	// os-release(5): ID and ID_LIKE are "0–9, a–z, '.', '_' and '-'".
	idRE = regexp.MustCompile(`^[a-z0-9._-]{1,64}$`)
	// VERSION_ID and VERSION_CODENAME use the same set; upper case and
	// "+" / "~" are tolerated in versions, as some distributions use them.
	versionRE = regexp.MustCompile(`^[A-Za-z0-9._~+-]{1,64}$`)
)

// maxPrettyName bounds free-text names.
const maxPrettyName = 256

// FromOSRelease turns os-release content into an OS (Source left empty).
// ID defaults to "linux" as os-release(5) says; PRETTY_NAME defaults to
// NAME; VERSION_CODENAME falls back to UBUNTU_CODENAME.
func FromOSRelease(b []byte) (inventory.OS, error) {
	v, err := Parse(b)
	if err != nil {
		return inventory.OS{}, err
	}
	o := inventory.OS{
		ID:              v["ID"],
		VersionID:       v["VERSION_ID"],
		VersionCodename: v["VERSION_CODENAME"],
		PrettyName:      v["PRETTY_NAME"],
	}
	if o.ID == "" {
		o.ID = "linux"
	}
	if o.VersionCodename == "" {
		o.VersionCodename = v["UBUNTU_CODENAME"]
	}
	if o.PrettyName == "" {
		o.PrettyName = v["NAME"]
	}
	if like := v["ID_LIKE"]; like != "" {
		o.IDLike = strings.Fields(like)
	}
	return checked(o)
}

// checked returns o if its identifiers are valid, else the zero OS and
// the error.
func checked(o inventory.OS) (inventory.OS, error) {
	if err := check(o); err != nil {
		return inventory.OS{}, err
	}
	return o, nil
}

// check validates the identifiers of o.
func check(o inventory.OS) error {
	if !idRE.MatchString(o.ID) {
		return fmt.Errorf("invalid ID %q", trunc(o.ID))
	}
	for _, l := range o.IDLike {
		if !idRE.MatchString(l) {
			return fmt.Errorf("invalid ID_LIKE entry %q", trunc(l))
		}
	}
	if len(o.IDLike) > 16 {
		return fmt.Errorf("ID_LIKE has %d entries, limit 16", len(o.IDLike))
	}
	if o.VersionID != "" && !versionRE.MatchString(o.VersionID) {
		return fmt.Errorf("invalid VERSION_ID %q", trunc(o.VersionID))
	}
	if o.VersionCodename != "" && !versionRE.MatchString(o.VersionCodename) {
		return fmt.Errorf("invalid VERSION_CODENAME %q", trunc(o.VersionCodename))
	}
	if len(o.PrettyName) > maxPrettyName {
		return fmt.Errorf("PRETTY_NAME longer than %d bytes", maxPrettyName)
	}
	return nil
}

// singleLine returns the only line of a release file: content without a
// trailing newline, checked for NUL, control characters and size.
func singleLine(b []byte) (string, error) {
	s := strings.TrimRight(string(b), "\n")
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return "", errors.New("empty")
	case len(s) > maxPrettyName:
		return "", fmt.Errorf("first line longer than %d bytes", maxPrettyName)
	}
	for _, c := range []byte(s) {
		if c < 0x20 || c == 0x7f {
			return "", fmt.Errorf("control character %#x", c)
		}
	}
	return s, nil
}

// debianCodenames maps Debian major releases to codenames, for images old
// enough to have no os-release.
var debianCodenames = map[string]string{
	"4": "etch", "5": "lenny", "6": "squeeze", "7": "wheezy", "8": "jessie",
	"9": "stretch", "10": "buster", "11": "bullseye", "12": "bookworm", "13": "trixie",
}

// parseDebian reads /etc/debian_version ("12.5", "bookworm/sid"); when
// /etc/lsb-release names another distribution (Ubuntu keeps a
// debian_version too), that wins.
func parseDebian(r *fsys.Root, b []byte) (inventory.OS, error) {
	if lsb, err := readFile(r, "/etc/lsb-release"); err == nil {
		o, err := fromLSB(lsb)
		if err != nil {
			return inventory.OS{}, fmt.Errorf("/etc/lsb-release: %w", err)
		}
		if o.ID != "debian" && o.ID != "" {
			o.Source = "/etc/lsb-release"
			return o, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return inventory.OS{}, err
	}
	s, err := singleLine(b)
	if err != nil {
		return inventory.OS{}, err
	}
	o := inventory.OS{ID: "debian", PrettyName: "Debian GNU/Linux " + s}
	if major, _, _ := strings.Cut(s, "."); isDigits(major) {
		o.VersionID = major
		o.VersionCodename = debianCodenames[major]
	} else if name, _, ok := strings.Cut(s, "/"); ok {
		// "trixie/sid": testing or unstable, which has no VERSION_ID.
		o.VersionCodename = name
	} else {
		return inventory.OS{}, fmt.Errorf("unrecognised Debian version %q", trunc(s))
	}
	return checked(o)
}

// fromLSB reads /etc/lsb-release (DISTRIB_ID, DISTRIB_RELEASE,
// DISTRIB_CODENAME, DISTRIB_DESCRIPTION).
func fromLSB(b []byte) (inventory.OS, error) {
	v, err := Parse(b)
	if err != nil {
		return inventory.OS{}, err
	}
	o := inventory.OS{
		ID:              strings.ToLower(v["DISTRIB_ID"]),
		VersionID:       v["DISTRIB_RELEASE"],
		VersionCodename: v["DISTRIB_CODENAME"],
		PrettyName:      v["DISTRIB_DESCRIPTION"],
	}
	if o.ID == "" {
		return o, nil
	}
	if o.ID != "debian" {
		o.IDLike = []string{"debian"}
	}
	return checked(o)
}

// redHatNames maps the distribution name at the start of a Red Hat family
// release line to its os-release ID and ID_LIKE. Longer prefixes first.
var redHatNames = []struct {
	prefix string
	id     string
	like   []string
}{
	{"Rocky Linux", "rocky", []string{"rhel", "centos", "fedora"}},
	{"AlmaLinux", "almalinux", []string{"rhel", "centos", "fedora"}},
	{"CentOS Stream", "centos", []string{"rhel", "fedora"}},
	{"CentOS Linux", "centos", []string{"rhel", "fedora"}},
	{"CentOS", "centos", []string{"rhel", "fedora"}},
	{"Red Hat Enterprise Linux", "rhel", []string{"fedora"}},
	{"Scientific Linux", "scientific", []string{"rhel", "centos", "fedora"}},
	{"Oracle Linux", "ol", []string{"fedora"}},
	{"Fedora", "fedora", nil},
}

// parseRedHat reads a line like "Rocky Linux release 9.3 (Blue Onyx)" or
// "Red Hat Enterprise Linux Server release 7.9 (Maipo)". The version is
// kept as written ("7.9.2009" on CentOS 7).
func parseRedHat(_ *fsys.Root, b []byte) (inventory.OS, error) {
	s, err := singleLine(b)
	if err != nil {
		return inventory.OS{}, err
	}
	name, rest, ok := strings.Cut(s, " release ")
	if !ok {
		return inventory.OS{}, fmt.Errorf("no \" release \" in %q", trunc(s))
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return inventory.OS{}, fmt.Errorf("no version in %q", trunc(s))
	}
	o := inventory.OS{VersionID: fields[0], PrettyName: s}
	for _, n := range redHatNames {
		if strings.HasPrefix(name, n.prefix) {
			o.ID = n.id
			o.IDLike = n.like
			break
		}
	}
	if o.ID == "" {
		return inventory.OS{}, fmt.Errorf("unrecognised distribution %q", trunc(name))
	}
	return checked(o)
}

// parseAlpine reads /etc/alpine-release ("3.19.1").
func parseAlpine(_ *fsys.Root, b []byte) (inventory.OS, error) {
	s, err := singleLine(b)
	if err != nil {
		return inventory.OS{}, err
	}
	o := inventory.OS{ID: "alpine", VersionID: s, PrettyName: "Alpine Linux v" + s}
	return checked(o)
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
