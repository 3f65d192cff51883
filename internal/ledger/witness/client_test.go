package witness

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestAddCheckpointHostileWitness checks the client against bad responses.
func TestAddCheckpointHostileWitness(t *testing.T) {
	good := "— w AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"
	cases := []struct {
		name   string
		code   int
		ctype  string
		body   string
		ok     bool
		size   int64 // >= 0: want ConflictError
		status int   // > 0: want StatusError
	}{
		{"good", 200, "text/plain", good, true, -1, 0},
		{"empty 200", 200, "text/plain", "", false, -1, 0},
		{"no newline", 200, "text/plain", strings.TrimSuffix(good, "\n"), false, -1, 0},
		{"not a signature", 200, "text/plain", "hello\n", false, -1, 0},
		{"bad base64", 200, "text/plain", "— w !!!!\n", false, -1, 0},
		{"too short sig", 200, "text/plain", "— w AAAA\n", false, -1, 0},
		{"too many lines", 200, "text/plain", strings.Repeat(good, maxCosignatures+1), false, -1, 0},
		{"oversized", 200, "text/plain", strings.Repeat("x", MaxResponseSize+1), false, -1, 0},
		{"conflict", 409, SizeContentType, "42\n", false, 42, 0},
		{"conflict with params", 409, SizeContentType + "; charset=utf-8", "7\n", false, 7, 0},
		{"conflict bad size", 409, SizeContentType, "-1\n", false, -1, 0},
		{"conflict leading zero", 409, SizeContentType, "042\n", false, -1, 0},
		{"conflict no newline", 409, SizeContentType, "42", false, -1, 0},
		{"conflict plain text", 409, "text/plain", "fork\n", false, -1, 409},
		{"forbidden", 403, "text/plain", "no\x00 way\n", false, -1, 403},
		{"not found", 404, "text/plain", "", false, -1, 404},
	}
	for _, tc := range cases {
		srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost || r.URL.Path != "/prefix/add-checkpoint" {
				rw.WriteHeader(http.StatusTeapot)
				return
			}
			rw.Header().Set("Content-Type", tc.ctype)
			rw.WriteHeader(tc.code)
			rw.Write([]byte(tc.body))
		}))
		lines, err := AddCheckpoint(context.Background(), srv.Client(), srv.URL+"/prefix/", 0, nil, []byte("o\n1\nx\n\n— o AAAA\n"))
		srv.Close()
		if tc.ok {
			if err != nil || string(lines) != tc.body {
				t.Errorf("%s: %q, %v", tc.name, lines, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: accepted %q", tc.name, lines)
			continue
		}
		var ce *ConflictError
		if got := errors.As(err, &ce); got != (tc.size >= 0) || got && ce.Size != tc.size {
			t.Errorf("%s: err %v, want ConflictError %d", tc.name, err, tc.size)
		}
		var se *StatusError
		if got := errors.As(err, &se); got != (tc.status > 0) || got && se.Code != tc.status {
			t.Errorf("%s: err %v, want StatusError %d", tc.name, err, tc.status)
		}
		if se != nil && strings.ContainsAny(se.Body, "\x00\n") {
			t.Errorf("%s: unsanitised body %q", tc.name, se.Body)
		}
	}
}
