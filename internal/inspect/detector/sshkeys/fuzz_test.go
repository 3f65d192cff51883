package sshkeys

import (
	"strings"
	"testing"
)

// FuzzAuthorizedKeys: the parser never panics, accepts only known key
// types, and describe stays short and printable.
func FuzzAuthorizedKeys(f *testing.F) {
	f.Add([]byte(pub("ssh-ed25519", "alice@laptop")))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys := ParseAuthorizedKeys(data)
		for _, k := range keys {
			if !keyType(k.Type) || k.Line < 1 {
				t.Fatalf("accepted %+v", k)
			}
		}
		if len(keys) > 0 {
			d := describe(keys, false)
			if strings.ContainsAny(d, "\n\r\x00") || len(d) > 400 {
				t.Fatalf("describe = %q", d)
			}
		}
	})
}
