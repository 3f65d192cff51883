package imagelist_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/vmtrust/vmtrust/imagelist"
)

// FuzzParse: Parse never panics, returns no list with an error, and what it
// accepts marshals to a fixed point (Marshal . Parse . Marshal = Marshal).
func FuzzParse(f *testing.F) {
	good, err := imagelist.Marshal(sample())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"hv:imagelist": {"hv:images": [{"hv:image": {"hv:size": "12"}}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := imagelist.Parse(data)
		if err != nil {
			if l != nil {
				t.Fatal("Parse returned a list with an error")
			}
			if !errors.Is(err, imagelist.ErrSyntax) {
				t.Fatalf("Parse error %v does not wrap ErrSyntax", err)
			}
			return
		}
		// Never more lenient than the standard library.
		if !json.Valid(data) {
			t.Fatalf("Parse accepted what encoding/json calls invalid: %q", data)
		}
		m1, err := imagelist.Marshal(l)
		if err != nil {
			t.Fatalf("Marshal(Parse(x)) = %v", err)
		}
		l2, err := imagelist.Parse(m1)
		if err != nil {
			t.Fatalf("Parse(Marshal(Parse(x))) = %v\n%s", err, m1)
		}
		m2, err := imagelist.Marshal(l2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(m1, m2) {
			t.Fatalf("Marshal is not a fixed point:\n%s\n---\n%s", m1, m2)
		}
	})
}

// FuzzCompareVersions: the order is antisymmetric and never panics.
func FuzzCompareVersions(f *testing.F) {
	f.Add("1.10", "1.9")
	f.Add("3.3.0-1", "rc10")
	f.Fuzz(func(t *testing.T, a, b string) {
		if x, y := imagelist.CompareVersions(a, b), imagelist.CompareVersions(b, a); x != -y {
			t.Fatalf("CompareVersions(%q, %q) = %d but reversed = %d", a, b, x, y)
		}
	})
}
