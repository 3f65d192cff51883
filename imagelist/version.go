package imagelist

import (
	"fmt"
	"math/big"
	"strings"
)

// CompareVersions orders two hv:version strings exactly as vmcatcher's
// split_numeric_sort does (its rollback check): both are split into tokens
// at '-', ',', '.' and '/', the separators being tokens too; at the first
// pair of tokens that differ, two numbers compare as numbers, a number is
// newer than anything else, and two words compare by their runs of digits
// and non-digits the same way (numbers newer than words, words by code
// point). When one token list is a prefix of the other, the longer is newer.
// It returns +1 when a is newer than b, -1 when older, 0 when equal.
func CompareVersions(a, b string) int {
	return compareTokens(tokens(a, isSep), tokens(b, isSep), compareWord)
}

func isSep(c byte) bool { return c == '-' || c == ',' || c == '.' || c == '/' }

// tokens splits s at every character for which in holds: each such
// character is a token of its own, and so is the non-empty text between.
func tokens(s string, in func(byte) bool) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if in(s[i]) {
			if start < i {
				out = append(out, s[start:i])
			}
			out = append(out, s[i:i+1])
			start = i + 1
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

// digitRuns splits s into alternating runs of digits and non-digits.
func digitRuns(s string) []string {
	var out []string
	for i := 0; i < len(s); {
		j := i + 1
		for j < len(s) && isDigit(s[j]) == isDigit(s[i]) {
			j++
		}
		out = append(out, s[i:j])
		i = j
	}
	return out
}

func compareTokens(x, y []string, words func(a, b string) int) int {
	for i := 0; i < len(x) && i < len(y); i++ {
		a, b := x[i], y[i]
		if a == b {
			continue
		}
		da, db := isDigits(a), isDigits(b)
		switch {
		case da && db:
			na, _ := new(big.Int).SetString(a, 10)
			nb, _ := new(big.Int).SetString(b, 10)
			// "01" against "1": vmcatcher stops here and calls the
			// versions equal; so do we (an equal version is then only
			// accepted with identical content).
			return na.Cmp(nb)
		case da:
			return 1
		case db:
			return -1
		}
		if c := words(a, b); c != 0 {
			return c
		}
	}
	switch {
	case len(x) < len(y):
		return -1
	case len(x) > len(y):
		return 1
	}
	return 0
}

// compareWord is vmcatcher's string_sort for one token.
func compareWord(a, b string) int {
	return compareTokens(digitRuns(a), digitRuns(b), strings.Compare)
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

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}
