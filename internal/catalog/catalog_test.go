package catalog

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCheckVersion(t *testing.T) {
	const a, b = "aaaa", "bbbb"
	for _, tc := range []struct {
		name          string
		accepted, sum string // stored version and digest
		v, vsum       string
		wantUnchanged bool
		wantErr       error
	}{
		{"FirstList", "", "", "1.0", a, false, nil},
		{"Higher", "1.9", a, "1.10", b, false, nil},
		{"HigherNumericNotText", "9", a, "10", b, false, nil},
		{"HigherLongerPrefix", "1.10", a, "1.10.1", b, false, nil},
		{"HigherDate", "20150618211400", a, "20150618211401", b, false, nil},
		{"Lower", "1.10", a, "1.9", b, false, ErrConflict},
		{"LowerPrefix", "1.10.1", a, "1.10", b, false, ErrConflict},
		{"LowerSameDigest", "2", a, "1", a, false, ErrConflict},
		{"EqualOtherContent", "1.10", a, "1.10", b, false, ErrConflict},
		{"EqualSameContent", "1.10", a, "1.10", a, true, nil},
		{"SameNumbersOtherSeparators", "1.0", a, "1-0", b, false, ErrConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			unchanged, err := CheckVersion(tc.accepted, tc.sum, tc.v, tc.vsum)
			if unchanged != tc.wantUnchanged || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Errorf("CheckVersion(%q, %q, %q, %q) = %v, %v; want %v, %v", tc.accepted, tc.sum, tc.v, tc.vsum,
					unchanged, err, tc.wantUnchanged, tc.wantErr)
			}
		})
	}
}

func TestValidName(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want bool
	}{
		{"desy", true},
		{"CERN-IT", true},
		{"egi.appdb_1", true},
		{"0", true},
		{strings.Repeat("a", MaxNameLen), true},
		{"", false},
		{strings.Repeat("a", MaxNameLen+1), false},
		{".", false},
		{"..", false},
		{".hidden", false},
		{"-rf", false},
		{"_x", false},
		{"a/b", false},
		{"a b", false},
		{"a\nb", false},
		{"a\x00", false},
		{"désy", false},
		{"a;b", false},
		{"$(x)", false},
	} {
		if got := ValidName(tc.s); got != tc.want {
			t.Errorf("ValidName(%q) = %v, want %v", tc.s, got, tc.want)
		}
	}
}

func TestValidSHA512(t *testing.T) {
	good := SHA512Hex([]byte("x"))
	for _, tc := range []struct {
		name string
		s    string
		want bool
	}{
		{"Computed", good, true},
		{"Empty", "", false},
		{"Upper", strings.ToUpper(good), false},
		{"Short", good[:127], false},
		{"Long", good + "0", false},
		{"NotHex", "g" + good[1:], false},
		{"SHA256", strings.Repeat("a", 64), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ValidSHA512(tc.s); got != tc.want {
				t.Errorf("ValidSHA512(%.20q...) = %v, want %v", tc.s, got, tc.want)
			}
		})
	}
}

func TestTruncateError(t *testing.T) {
	for _, tc := range []struct {
		name    string
		err     error
		wantLen int
	}{
		{"Nil", nil, 0},
		{"Short", errors.New("boom"), 4},
		{"Exact", errors.New(strings.Repeat("x", MaxErrorLen)), MaxErrorLen},
		{"Long", errors.New(strings.Repeat("x", MaxErrorLen+1)), MaxErrorLen},
		{"CutsAtRune", errors.New("xx" + strings.Repeat("€", MaxErrorLen)), 2 + 3*((MaxErrorLen-2)/3)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := TruncateError(tc.err)
			if len(got) != tc.wantLen || !utf8.ValidString(got) {
				t.Errorf("TruncateError = %d bytes (valid UTF-8: %v), want %d", len(got), utf8.ValidString(got), tc.wantLen)
			}
		})
	}
}

// The Validate methods report ErrInvalid and name the offending field.
func TestValidateNamesTheField(t *testing.T) {
	im := Image{ID: "img", SHA512: SHA512Hex(nil), State: ImageAvailable, Attrs: map[string]string{"sl:comments": "a\nb"}}
	if err := im.Validate(); err != nil {
		t.Fatalf("Image.Validate(valid, multi-line attribute) = %v", err)
	}
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"ImageTitle", func() error { im := im; im.Title = "a\x1b[31m"; return im.Validate() }(), "Title"},
		{"ImageSize", func() error { im := im; im.Size = -1; return im.Validate() }(), "Size"},
		{"ImageAttrNUL", func() error { im := im; im.Attrs = map[string]string{"k": "\x00"}; return im.Validate() }(), "Attrs"},
		{"ImageCachedNoPath", func() error { im := im; im.State = ImageCached; return im.Validate() }(), "Path"},
		{"EventField", func() error {
			ev := Event{Type: EventProcessPrefix, Fields: map[string]string{"a": ""}}
			return ev.Validate()
		}(), `"a"`},
		{"ListRaw", func() error { lv := ListVersion{Version: "1", Identifier: "x"}; return lv.Validate() }(), "Raw"},
		{"Subscription", func() error {
			s := Subscription{URL: "https://x.org/l", Endorser: "e", NewImages: "maybe"}
			return s.Validate()
		}(), "maybe"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !errors.Is(tc.err, ErrInvalid) || !strings.Contains(tc.err.Error(), tc.want) {
				t.Errorf("Validate = %v, want ErrInvalid naming %s", tc.err, tc.want)
			}
		})
	}
}
