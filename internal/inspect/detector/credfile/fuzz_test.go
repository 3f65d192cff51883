package credfile

import "testing"

// FuzzCredentialChecks: every content check never panics and never
// reports a negative count.
func FuzzCredentialChecks(f *testing.F) {
	f.Add([]byte("[default]\naws_secret_access_key = x\n"))
	ks := kinds()
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, k := range ks {
			if n, _ := k.check(data); n < 0 {
				t.Fatalf("%s: count %d", k.rel, n)
			}
		}
		_, _ = match(ks, string(data))
	})
}
