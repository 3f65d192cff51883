package accounts

import (
	"strings"
	"testing"
)

// FuzzShadow: the passwd and shadow parsers never panic, return nil on
// error, and Check never puts a password field into a reason.
func FuzzShadow(f *testing.F) {
	f.Add([]byte(basePasswd), []byte(baseShadow))
	f.Fuzz(func(t *testing.T, passwd, shadow []byte) {
		p, err := ParsePasswd(passwd)
		if err != nil && p != nil {
			t.Fatalf("ParsePasswd = %v with error %v", p, err)
		}
		s, err := ParseShadow(shadow)
		if err != nil && s != nil {
			t.Fatalf("ParseShadow = %v with error %v", s, err)
		}
		for _, f := range Check(p, s) {
			for _, e := range s {
				if len(e.Password) >= 8 && strings.Contains(f.Reason, e.Password) {
					t.Fatalf("finding %+v reveals a password field", f)
				}
			}
		}
	})
}
