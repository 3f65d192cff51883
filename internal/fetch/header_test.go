package fetch

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"
)

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		in                 string
		first, last, total int64
		ok                 bool
	}{
		{"bytes 0-99/100", 0, 99, 100, true},
		{"bytes 100-199/1000", 100, 199, 1000, true},
		{"bytes 5-5/6", 5, 5, 6, true},
		{"bytes 0-99/*", 0, 99, -1, true},
		{"bytes */1000", -1, -1, 1000, true},
		{"BYTES 0-0/1", 0, 0, 1, true},
		{"bytes 007-8/9", 7, 8, 9, true},
		{"bytes 0-999999999999999999/*", 0, 999999999999999999, -1, true},
		{"", 0, 0, 0, false},
		{"bytes", 0, 0, 0, false},
		{"bytes ", 0, 0, 0, false},
		{"items 0-1/2", 0, 0, 0, false},
		{"bytes  0-1/2", 0, 0, 0, false},
		{"bytes 0-1/2 ", 0, 0, 0, false},
		{" bytes 0-1/2", 0, 0, 0, false},
		{"bytes 0-1", 0, 0, 0, false},
		{"bytes 1-0/2", 0, 0, 0, false},
		{"bytes 0-2/2", 0, 0, 0, false},
		{"bytes */*", 0, 0, 0, false},
		{"bytes -1-2/3", 0, 0, 0, false},
		{"bytes +1-2/3", 0, 0, 0, false},
		{"bytes 1--2/3", 0, 0, 0, false},
		{"bytes 1-/3", 0, 0, 0, false},
		{"bytes -2/3", 0, 0, 0, false},
		{"bytes 0x1-2/3", 0, 0, 0, false},
		{"bytes 0-1/2/3", 0, 0, 0, false},
		{"bytes 0-1,2-3/4", 0, 0, 0, false},
		{"bytes 0-9999999999999999999/*", 0, 0, 0, false},
		{"bytes 0-1/99999999999999999999", 0, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.in), func(t *testing.T) {
			first, last, total, ok := parseContentRange(tt.in)
			if ok != tt.ok || ok && (first != tt.first || last != tt.last || total != tt.total) {
				t.Errorf("parseContentRange(%q) = %d, %d, %d, %v, want %d, %d, %d, %v",
					tt.in, first, last, total, ok, tt.first, tt.last, tt.total, tt.ok)
			}
		})
	}
}

func FuzzContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-99/100", "bytes 0-99/*", "bytes */1000", "bytes 1-0/2", "Bytes 12-34/56", "bytes 0-1,2-3/4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		first, last, total, ok := parseContentRange(s)
		if !ok {
			if first != 0 || last != 0 || total != 0 {
				t.Fatalf("parseContentRange(%q) failed but returned %d, %d, %d", s, first, last, total)
			}
			return
		}
		if first == -1 {
			if last != -1 || total < 0 {
				t.Fatalf("parseContentRange(%q) = %d, %d, %d: bad unsatisfied range", s, first, last, total)
			}
			return
		}
		if first < 0 || last < first || total < -1 || total >= 0 && last >= total {
			t.Fatalf("parseContentRange(%q) = %d, %d, %d: inconsistent", s, first, last, total)
		}
		// Canonical re-encoding parses to the same values.
		tot := "*"
		if total >= 0 {
			tot = strconv.FormatInt(total, 10)
		}
		again := fmt.Sprintf("bytes %d-%d/%s", first, last, tot)
		f2, l2, t2, ok2 := parseContentRange(again)
		if !ok2 || f2 != first || l2 != last || t2 != total {
			t.Fatalf("parseContentRange(%q) = %d, %d, %d, but %q gives %d, %d, %d, %v", s, first, last, total, again, f2, l2, t2, ok2)
		}
	})
}

func TestRetryAfterHeader(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"120", 2 * time.Minute},
		{"-5", 0},
		{"+5", 0},
		{"1.5", 0},
		{"99999999999", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"yesterday", 0},
	}
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.in), func(t *testing.T) {
			if got := retryAfter(tt.in, now); got != tt.want {
				t.Errorf("retryAfter(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}
