package sqlite

import (
	"slices"
	"strings"
	"testing"
)

func TestParseIndexes(t *testing.T) {
	for _, ix := range [][]int64{{0}, {7}, {3, 4, 90, 1 << 40}} {
		got, err := parseIndexes(formatIndexes(ix), ix[0])
		if err != nil || !slices.Equal(got, ix) {
			t.Errorf("parseIndexes(formatIndexes(%v)) = %v, %v", ix, got, err)
		}
	}
	for _, c := range []struct {
		list  string
		first int64
	}{
		{"", 0}, {",", 0}, {"1,", 1}, {",1", 1}, {"01", 1}, {"+1", 1}, {"-1", -1}, {"1 ", 1}, {" 1", 1},
		{"1,1", 1}, {"2,1", 2}, {"1,2", 2}, {"0x10", 16}, {"1e3", 1000}, {"9223372036854775808", 0},
		{"1,,2", 1}, {"1;2", 1}, {strings.Repeat("1", maxTimelineRow*20+1), 1},
	} {
		if got, err := parseIndexes(c.list, c.first); err == nil {
			t.Errorf("parseIndexes(%.40q, %d) = %v, want an error", c.list, c.first, got)
		}
	}
}

func FuzzParseIndexes(f *testing.F) {
	for _, s := range []string{"0", "1,2,3", "5,4", "01", "", "1,,2", "18446744073709551615"} {
		f.Add(s, int64(1))
	}
	f.Fuzz(func(t *testing.T, list string, first int64) {
		ix, err := parseIndexes(list, first)
		if err != nil {
			return
		}
		// What it accepts is exactly what formatIndexes writes.
		if len(ix) == 0 || ix[0] != first || formatIndexes(ix) != list {
			t.Fatalf("parseIndexes(%q, %d) = %v, which does not format back", list, first, ix)
		}
		for i := 1; i < len(ix); i++ {
			if ix[i] <= ix[i-1] {
				t.Fatalf("parseIndexes(%q) = %v: not ascending", list, ix)
			}
		}
	})
}
