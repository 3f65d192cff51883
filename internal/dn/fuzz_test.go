package dn

import "testing"

// The fuzz targets assert that arbitrary input never panics and that the
// invariants checked by checkConsistent hold (errors wrap ErrMalformed or
// ErrRejected, Oneline and Hash accept the same inputs, Oneline output is
// printable ASCII, results are deterministic). Seeds: testdata/fuzz/<Target>/
// plus the differential test names.

func addSeeds(f *testing.F) {
	for _, tc := range differentialCases(f) {
		if len(tc.raw) <= 4096 {
			f.Add(tc.raw)
		}
	}
}

func FuzzOneline(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkConsistent(t, raw)
		a, errA := Oneline(raw)
		b, errB := Oneline(raw)
		if a != b || (errA == nil) != (errB == nil) {
			t.Fatalf("Oneline not deterministic: %q,%v vs %q,%v", a, errA, b, errB)
		}
	})
}

func FuzzHash(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkConsistent(t, raw)
		h1, err1 := Hash(raw)
		h2, err2 := Hash(raw)
		if h1 != h2 || (err1 == nil) != (err2 == nil) {
			t.Fatalf("Hash not deterministic: %08x,%v vs %08x,%v", h1, err1, h2, err2)
		}
		if err1 != nil && h1 != 0 {
			t.Fatalf("Hash returned %08x together with error %v", h1, err1)
		}
	})
}
