package fetch

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// parseContentRange parses a Content-Range value (RFC 9110 §14.4):
// "bytes first-last/total", "bytes first-last/*" (total -1) or
// "bytes */total" (first and last -1). It accepts nothing else: one space,
// decimal digits only, at most 18 of them, last ≥ first, last < total.
func parseContentRange(s string) (first, last, total int64, ok bool) {
	unit, rest, found := strings.Cut(s, " ")
	if !found || !strings.EqualFold(unit, "bytes") {
		return 0, 0, 0, false
	}
	rng, tot, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, 0, false
	}
	total = -1
	if tot != "*" {
		if total, ok = digits(tot); !ok {
			return 0, 0, 0, false
		}
	}
	if rng == "*" {
		if total < 0 {
			return 0, 0, 0, false
		}
		return -1, -1, total, true
	}
	f, l, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, 0, false
	}
	if first, ok = digits(f); !ok {
		return 0, 0, 0, false
	}
	if last, ok = digits(l); !ok {
		return 0, 0, 0, false
	}
	if last < first || total >= 0 && last >= total {
		return 0, 0, 0, false
	}
	return first, last, total, true
}

// digits parses 1 to 18 ASCII digits.
func digits(s string) (int64, bool) {
	if len(s) == 0 || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// retryAfter parses a Retry-After value (delay-seconds or HTTP-date); 0 when
// absent or invalid.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
