package imagelist

import (
	"fmt"
	"math/big"
	"regexp"
	"strings"
)

var versionSep = regexp.MustCompile(`[-,./]`)

// CompareVersions orders two hv:version strings the way vmcatcher does:
// both are split on '-', ',', '.' and '/', parts that are all digits compare
// as numbers and others as strings, and a version that is a prefix of the
// other is the lower. It returns -1, 0 or +1.
func CompareVersions(a, b string) int {
	pa, pb := versionSep.Split(a, -1), versionSep.Split(b, -1)
	for i := 0; i < len(pa) && i < len(pb); i++ {
		if c := comparePart(pa[i], pb[i]); c != 0 {
			return c
		}
	}
	switch {
	case len(pa) < len(pb):
		return -1
	case len(pa) > len(pb):
		return 1
	}
	return strings.Compare(a, b) // same parts, different separators
}

func comparePart(a, b string) int {
	na, oka := new(big.Int).SetString(a, 10)
	nb, okb := new(big.Int).SetString(b, 10)
	if oka && okb && isDigits(a) && isDigits(b) {
		return na.Cmp(nb)
	}
	if oka && isDigits(a) && !(okb && isDigits(b)) {
		return -1 // numbers sort before words, as in Debian and RPM
	}
	if okb && isDigits(b) && !(oka && isDigits(a)) {
		return 1
	}
	return strings.Compare(a, b)
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// BumpVersion returns the smallest natural successor of v: its last numeric
// part plus one ("1.4" -> "1.5", "20150618211400" -> "20150618211401").
// A version with no numeric part gets ".1" appended.
func BumpVersion(v string) (string, error) {
	if v == "" {
		return "", fmt.Errorf("cannot bump an empty version")
	}
	locs := regexp.MustCompile(`[0-9]+`).FindAllStringIndex(v, -1)
	var next string
	if len(locs) == 0 {
		next = v + ".1"
	} else {
		last := locs[len(locs)-1]
		n, _ := new(big.Int).SetString(v[last[0]:last[1]], 10)
		n.Add(n, big.NewInt(1))
		next = v[:last[0]] + n.String() + v[last[1]:]
	}
	if CompareVersions(next, v) <= 0 {
		return "", fmt.Errorf("version %q has no successor that compares higher; give one explicitly", v)
	}
	return next, nil
}
