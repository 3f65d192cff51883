package keyfile

import "testing"

// FuzzSniffKey: Sniff never panics, stays within MaxObjects, and every
// object it reports is a key or a certificate with a format.
func FuzzSniffKey(f *testing.F) {
	f.Add([]byte(opensshPEM("none")))
	f.Add([]byte(puttyKey))
	f.Fuzz(func(t *testing.T, data []byte) {
		objs := Sniff(data)
		if len(objs) > MaxObjects {
			t.Fatalf("Sniff returned %d objects, limit %d", len(objs), MaxObjects)
		}
		for _, o := range objs {
			if (o.Kind != PrivateKey && o.Kind != Certificate) || o.Format == "" {
				t.Fatalf("Sniff returned %+v", o)
			}
			if o.Kind == Certificate && o.Encrypted {
				t.Fatalf("Sniff returned an encrypted certificate %+v", o)
			}
		}
		_ = partners(string(data))
	})
}
