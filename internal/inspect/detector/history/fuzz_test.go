package history

import (
	"strings"
	"testing"
)

// FuzzHistory: Scan never panics, its counts are consistent, and Describe
// quotes no line content.
func FuzzHistory(f *testing.F) {
	f.Add([]byte("ls\nexport AWS_SECRET_ACCESS_KEY=abc\n"))
	s := NewScanner()
	f.Fuzz(func(t *testing.T, data []byte) {
		matches, lines := s.Scan(data)
		if lines < 0 || lines > strings.Count(string(data), "\n")+1 {
			t.Fatalf("Scan counted %d lines", lines)
		}
		for _, m := range matches {
			if m.Count < len(m.Lines) || len(m.Lines) == 0 || len(m.Lines) > maxLinesKept {
				t.Fatalf("Scan match %+v inconsistent", m)
			}
		}
		if len(matches) > 0 {
			d := Describe(matches)
			if strings.ContainsAny(d, "=\n") {
				t.Fatalf("Describe = %q quotes content", d)
			}
		}
	})
}
