package imagelist

import (
	"fmt"
	"math/big"
	"strings"
)

// splitVersionKeep splits on '-', ',', '.' and '/', keeping empty parts
// (as Python's re.split does in vmcatcher).
func splitVersionKeep(v string) []string {
	var parts []string
	start := 0
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '-', ',', '.', '/':
			parts = append(parts, v[start:i])
			start = i + 1
		}
	}
	return append(parts, v[start:])
}

// CompareVersions orders two hv:version strings the way vmcatcher does:
// both are split on '-', ',', '.' and '/', parts that are all digits compare
// as numbers and others as strings, and a version that is a prefix of the
// other is the lower. It returns -1, 0 or +1.
func CompareVersions(a, b string) int {
	pa, pb := splitVersionKeep(a), splitVersionKeep(b)
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

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

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
	// The last run of digits.
	end := len(v)
	for end > 0 && !isDigit(v[end-1]) {
		end--
	}
	start := end
	for start > 0 && isDigit(v[start-1]) {
		start--
	}
	var next string
	if start == end {
		next = v + ".1"
	} else {
		n, _ := new(big.Int).SetString(v[start:end], 10)
		n.Add(n, big.NewInt(1))
		next = v[:start] + n.String() + v[end:]
	}
	if CompareVersions(next, v) <= 0 {
		return "", fmt.Errorf("version %q has no successor that compares higher; give one explicitly", v)
	}
	return next, nil
}
