package cli

import (
	"fmt"
	"strings"
	"unicode"
)

// Clean makes text from a list, a certificate or an error safe to print on
// a terminal: control characters (an ESC could rewrite the screen and hide
// a REJECTED line), bidirectional overrides and other invisible format
// characters are shown as \u escapes. Newlines are kept only when keepNL.
func Clean(s string, keepNL bool) string {
	clean := true
	for _, r := range s {
		if unsafeRune(r, keepNL) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unsafeRune(r, keepNL) {
			fmt.Fprintf(&b, "\\u%04x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func unsafeRune(r rune, keepNL bool) bool {
	if r == '\n' && keepNL {
		return false
	}
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r)
}
