package eol

import "testing"

// FuzzDistroInfoCSV: the parser never panics, returns nil with an error,
// and what it accepts satisfies the documented invariants.
func FuzzDistroInfoCSV(f *testing.F) {
	f.Add([]byte(debianHeader + "12,Bookworm,bookworm,2021-08-14,2023-06-10,2026-06-10,2028-06-30,2033-06-30\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, distro := range []string{"debian", "ubuntu"} {
			rs, err := ParseDistroInfo(distro, data)
			if err != nil {
				if rs != nil {
					t.Fatalf("ParseDistroInfo(%s) = %v with error %v, want nil", distro, rs, err)
				}
				continue
			}
			seen := map[string]bool{}
			for _, r := range rs {
				if r.Series == "" || r.Codename == "" || r.Created.IsZero() || seen[r.Series] {
					t.Fatalf("ParseDistroInfo(%s) accepted %+v", distro, r)
				}
				seen[r.Series] = true
			}
		}
	})
}
