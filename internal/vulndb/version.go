package vulndb

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	apkversion "github.com/knqyf263/go-apk-version"
	debversion "github.com/knqyf263/go-deb-version"
	rpmversion "github.com/knqyf263/go-rpm-version"
)

// order is a package manager's version order.
type order int

const (
	orderDpkg order = iota + 1
	orderRPM
	orderAPK
)

func (o order) String() string {
	switch o {
	case orderDpkg:
		return "dpkg"
	case orderRPM:
		return "rpm"
	case orderAPK:
		return "apk"
	}
	return "unknown"
}

// valid reports whether v is a version of the order. Only valid versions
// are compared: the comparison libraries accept anything and would order
// garbage somewhere.
func (o order) valid(v string) error {
	if v == "" {
		return errors.New("empty version")
	}
	if len(v) > maxVersionLen {
		return fmt.Errorf("version of %d bytes, more than the limit of %d", len(v), maxVersionLen)
	}
	if strings.TrimSpace(v) != v {
		return fmt.Errorf("version %q has surrounding space", v)
	}
	switch o {
	case orderDpkg:
		if _, err := debversion.NewVersion(v); err != nil {
			return fmt.Errorf("dpkg version %q: %v", v, err)
		}
		return nil
	case orderRPM:
		return validRPM(v)
	case orderAPK:
		if !validAPK(v) || !apkversion.Valid(v) {
			return fmt.Errorf("apk version %q is not valid", v)
		}
		return nil
	}
	return fmt.Errorf("no version order %d", int(o))
}

// validAPK checks apk-tools' grammar, which go-apk-version's Valid does
// not fully: digits{.digits}[letter]{_suffix[digits]}[-r digits].
func validAPK(v string) bool {
	i := 0
	digits := func() bool {
		j := i
		for i < len(v) && '0' <= v[i] && v[i] <= '9' {
			i++
		}
		return i > j
	}
	if !digits() {
		return false
	}
	for i < len(v) && v[i] == '.' {
		i++
		if !digits() {
			return false
		}
	}
	if i < len(v) && 'a' <= v[i] && v[i] <= 'z' {
		i++
	}
	for i < len(v) && v[i] == '_' {
		i++
		ok := false
		for _, suf := range []string{"alpha", "beta", "pre", "rc", "cvs", "svn", "git", "hg", "p"} {
			if strings.HasPrefix(v[i:], suf) {
				i += len(suf)
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
		digits()
	}
	if strings.HasPrefix(v[i:], "-r") {
		i += 2
		if !digits() {
			return false
		}
	}
	return i == len(v)
}

// validRPM accepts [epoch:]version[-release] with rpm's characters: the
// version and release are non-empty runs of alphanumerics and ._+~^.
func validRPM(v string) error {
	rest := v
	if e, r, ok := strings.Cut(v, ":"); ok {
		if e == "" || len(e) > 9 || strings.Trim(e, "0123456789") != "" {
			return fmt.Errorf("rpm version %q: bad epoch", v)
		}
		rest = r
	}
	ver, rel, hasRel := strings.Cut(rest, "-")
	if !rpmPart(ver) || (hasRel && !rpmPart(rel)) {
		return fmt.Errorf("rpm version %q is not [epoch:]version[-release]", v)
	}
	return nil
}

func rpmPart(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || strings.IndexByte("._+~^", c) >= 0) {
			return false
		}
	}
	return true
}

// compare orders two valid versions: negative when a < b, 0 when equal,
// positive when a > b.
func (o order) compare(a, b string) int {
	switch o {
	case orderDpkg:
		va, errA := debversion.NewVersion(a)
		vb, errB := debversion.NewVersion(b)
		if errA != nil || errB != nil {
			return strings.Compare(a, b) // unreachable for valid versions
		}
		return va.Compare(vb)
	case orderRPM:
		return rpmversion.NewVersion(a).Compare(rpmversion.NewVersion(b))
	case orderAPK:
		return apkversion.Version(a).Compare(apkversion.Version(b))
	}
	return strings.Compare(a, b)
}

// Event kinds, as stored.
const (
	evIntroduced   = "i"
	evFixed        = "f"
	evLastAffected = "l"
	evLimit        = "x"
)

// event is one range event, as stored.
type event struct {
	Kind    string `json:"k"`
	Version string `json:"v"`
}

// spec is what one affected package says, as stored: ECOSYSTEM ranges with
// their events sorted, and explicit versions.
type spec struct {
	Ranges   [][]event `json:"r,omitempty"`
	Versions []string  `json:"v,omitempty"`
}

// normaliseEvents checks one ECOSYSTEM range and sorts its events in the
// order. Each event has exactly one of introduced, fixed, last_affected and
// limit; there is at least one introduced event; every version is valid in
// the order, except the introduced version "0" that stands for "since the
// beginning".
func normaliseEvents(o order, in []osvEvent) ([]event, error) {
	if len(in) == 0 || len(in) > maxEvents {
		return nil, fmt.Errorf("%d events", len(in))
	}
	out := make([]event, 0, len(in))
	introduced := false
	for _, e := range in {
		var kinds []event
		if e.Introduced != nil {
			kinds = append(kinds, event{evIntroduced, *e.Introduced})
		}
		if e.Fixed != nil {
			kinds = append(kinds, event{evFixed, *e.Fixed})
		}
		if e.LastAffected != nil {
			kinds = append(kinds, event{evLastAffected, *e.LastAffected})
		}
		if e.Limit != nil {
			kinds = append(kinds, event{evLimit, *e.Limit})
		}
		if len(kinds) != 1 {
			return nil, fmt.Errorf("event with %d kinds", len(kinds))
		}
		ev := kinds[0]
		if ev.Kind == evIntroduced {
			introduced = true
		}
		if !(ev.Kind == evIntroduced && ev.Version == "0") {
			if err := o.valid(ev.Version); err != nil {
				return nil, err
			}
		}
		out = append(out, ev)
	}
	if !introduced {
		return nil, errors.New("range without an introduced event")
	}
	sortEvents(o, out)
	return out, nil
}

// sortEvents sorts events by version, "introduced: 0" first; at equal
// versions an introduced event comes before the others, so that a range
// introduced and fixed at the same version affects nothing.
func sortEvents(o order, evs []event) {
	rank := func(e event) int {
		if e.Kind == evIntroduced {
			return 0
		}
		return 1
	}
	slices.SortStableFunc(evs, func(a, b event) int {
		az := a.Kind == evIntroduced && a.Version == "0"
		bz := b.Kind == evIntroduced && b.Version == "0"
		switch {
		case az && bz:
			return 0
		case az:
			return -1
		case bz:
			return 1
		}
		if c := o.compare(a.Version, b.Version); c != 0 {
			return c
		}
		return rank(a) - rank(b)
	})
}

// affects reports whether version v (valid in o) is affected by s, and the
// fixed version of the range that affects it ("" when none is known or the
// match is on an explicit version).
func (s *spec) affects(o order, v string) (bool, string) {
	hit, fix := false, ""
	for _, r := range s.Ranges {
		ok, f := rangeAffects(o, r, v)
		if ok && (!hit || (fix == "" && f != "")) {
			hit, fix = true, f
		}
	}
	if hit {
		return true, fix
	}
	for _, x := range s.Versions {
		if x == v || o.compare(x, v) == 0 {
			return true, ""
		}
	}
	return false, ""
}

// rangeAffects walks the sorted events of one range, as the OSV schema's
// evaluation algorithm does.
func rangeAffects(o order, evs []event, v string) (bool, string) {
	vulnerable, last := false, -1
	for i, e := range evs {
		switch e.Kind {
		case evIntroduced:
			if e.Version == "0" || o.compare(v, e.Version) >= 0 {
				vulnerable, last = true, i
			}
		case evFixed:
			if o.compare(v, e.Version) >= 0 {
				vulnerable, last = false, i
			}
		case evLastAffected:
			if o.compare(v, e.Version) > 0 {
				vulnerable, last = false, i
			}
		case evLimit:
			if o.compare(v, e.Version) >= 0 {
				return false, ""
			}
		}
	}
	if !vulnerable {
		return false, ""
	}
	// The fix is the next closing event above v, if it is a fixed one.
	for _, e := range evs[last+1:] {
		switch e.Kind {
		case evFixed:
			return true, e.Version
		case evLastAffected, evLimit:
			return true, ""
		}
	}
	return true, ""
}
