package cli

import "testing"

func TestClean(t *testing.T) {
	for _, tc := range []struct {
		in     string
		keepNL bool
		want   string
	}{
		{"plain /DC=org/CN=Müller", false, "plain /DC=org/CN=Müller"},
		{"\x1b[2Jfake VERIFIED", false, `\u001b[2Jfake VERIFIED`},
		{"a\tb\rc", false, `a\u0009b\u000dc`},
		{"line\nnext", false, `line\u000anext`},
		{"line\nnext", true, "line\nnext"},
		{"evil\u202egnp.exe", false, `evil\u202egnp.exe`},
		{"\u0085next line", false, `\u0085next line`},
	} {
		if got := Clean(tc.in, tc.keepNL); got != tc.want {
			t.Errorf("Clean(%q, %v) = %q, want %q", tc.in, tc.keepNL, got, tc.want)
		}
	}
}
