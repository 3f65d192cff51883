package fetch

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// checkErr checks err against a wanted class (nil: success) and
// retryability.
func checkErr(t *testing.T, what string, err, want error, retryable bool) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("%s = %v, want success", what, err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("%s = %v, want %v", what, err, want)
	}
	if got := Retryable(err); got != retryable {
		t.Errorf("Retryable(%v) = %v, want %v", err, got, retryable)
	}
}

func TestGet(t *testing.T) {
	body := content(5000)
	const max = 5000
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { w.Write(body) })
	mux.HandleFunc("/chunked", chunked(body))
	mux.HandleFunc("/empty", status(http.StatusNoContent))
	mux.HandleFunc("/declared-over", declareOnly(max+1))
	mux.HandleFunc("/declared-huge", declareOnly(1<<50))
	mux.HandleFunc("/chunked-over", chunked(content(max+1)))
	mux.HandleFunc("/endless", endless)
	mux.HandleFunc("/404", status(http.StatusNotFound))
	mux.HandleFunc("/410", status(http.StatusGone))
	mux.HandleFunc("/500", status(http.StatusInternalServerError))
	mux.HandleFunc("/501", status(http.StatusNotImplemented))
	mux.HandleFunc("/503", status(http.StatusServiceUnavailable))
	mux.HandleFunc("/429", status(http.StatusTooManyRequests))
	mux.HandleFunc("/truncated", truncated(t, body[:100], len(body)))
	mux.HandleFunc("/truncated-chunked", func(w http.ResponseWriter, r *http.Request) {
		rawResponse(t, w, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", []byte("64\r\n"+strings.Repeat("y", 100)+"\r\n"))
	})
	mux.HandleFunc("/closed", func(w http.ResponseWriter, r *http.Request) { rawResponse(t, w, "", nil) })
	e := newEnv(t, mux, Options{})

	tests := []struct {
		name      string
		path      string
		want      []byte
		err       error
		retryable bool
		code      int
	}{
		{name: "content-length", path: "/ok", want: body},
		{name: "chunked", path: "/chunked", want: body},
		{name: "no content", path: "/empty", want: []byte{}},
		{name: "declared over max", path: "/declared-over", err: ErrTooLarge},
		{name: "declared huge", path: "/declared-huge", err: ErrTooLarge},
		{name: "chunked over max", path: "/chunked-over", err: ErrTooLarge},
		{name: "endless", path: "/endless", err: ErrTooLarge},
		{name: "404", path: "/404", err: ErrStatus, code: 404},
		{name: "410", path: "/410", err: ErrStatus, code: 410},
		{name: "500", path: "/500", err: ErrStatus, code: 500, retryable: true},
		{name: "501", path: "/501", err: ErrStatus, code: 501},
		{name: "503", path: "/503", err: ErrStatus, code: 503, retryable: true},
		{name: "429", path: "/429", err: ErrStatus, code: 429, retryable: true},
		{name: "truncated", path: "/truncated", err: ErrTruncated, retryable: true},
		{name: "truncated chunked", path: "/truncated-chunked", err: ErrTruncated, retryable: true},
		{name: "closed before response", path: "/closed", err: ErrTruncated, retryable: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := e.c.Get(t.Context(), e.srv.URL+tt.path, max)
			checkErr(t, "Get("+tt.path+")", err, tt.err, tt.retryable)
			if tt.err != nil {
				if got != nil {
					t.Errorf("Get(%s) returned %d bytes with an error", tt.path, len(got))
				}
				var se *StatusError
				if tt.code != 0 && (!errors.As(err, &se) || se.Code != tt.code) {
					t.Errorf("Get(%s) = %v, want *StatusError with code %d", tt.path, err, tt.code)
				}
				return
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("Get(%s) = %d bytes, want %d bytes", tt.path, len(got), len(tt.want))
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	date := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
	mux := http.NewServeMux()
	mux.HandleFunc("/seconds", status(http.StatusServiceUnavailable, "Retry-After", "7"))
	mux.HandleFunc("/date", status(http.StatusTooManyRequests, "Retry-After", date))
	mux.HandleFunc("/bogus", status(http.StatusServiceUnavailable, "Retry-After", "-3"))
	mux.HandleFunc("/ignored", status(http.StatusNotFound, "Retry-After", "7"))
	e := newEnv(t, mux, Options{})
	tests := []struct {
		path     string
		min, max time.Duration
	}{
		{"/seconds", 7 * time.Second, 7 * time.Second},
		{"/date", 50 * time.Minute, time.Hour},
		{"/bogus", 0, 0},
		{"/ignored", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			_, err := e.c.Get(t.Context(), e.srv.URL+tt.path, 100)
			var se *StatusError
			if !errors.As(err, &se) {
				t.Fatalf("Get(%s) = %v, want *StatusError", tt.path, err)
			}
			if se.RetryAfter < tt.min || se.RetryAfter > tt.max {
				t.Errorf("RetryAfter = %v, want in [%v, %v]", se.RetryAfter, tt.min, tt.max)
			}
		})
	}
}

func TestTLS(t *testing.T) {
	ok := func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "secret list") }
	pki := newPKI(t)
	other := newPKI(t)
	past := time.Now().Add(-48 * time.Hour)
	future := time.Now().Add(48 * time.Hour)
	cert := func(o leafOpts) *tls.Config {
		return &tls.Config{Certificates: []tls.Certificate{pki.leaf(t, o)}}
	}
	tests := []struct {
		name string
		cfg  *tls.Config
		pool *testPKI
		err  error
	}{
		{name: "trusted", cfg: cert(leafOpts{}), pool: pki},
		{name: "unknown authority", cfg: cert(leafOpts{}), pool: other, err: ErrTLS},
		{name: "system roots", cfg: cert(leafOpts{}), pool: nil, err: ErrTLS},
		{name: "hostname mismatch", cfg: cert(leafOpts{dns: []string{"mirror.example.org"}}), pool: pki, err: ErrTLS},
		{name: "expired", cfg: cert(leafOpts{notBefore: past.Add(-time.Hour), notAfter: past}), pool: pki, err: ErrTLS},
		{name: "not yet valid", cfg: cert(leafOpts{notBefore: future}), pool: pki, err: ErrTLS},
		{name: "TLS 1.1", cfg: &tls.Config{Certificates: []tls.Certificate{pki.leaf(t, leafOpts{})},
			MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}, pool: pki, err: ErrTLS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := serve(t, tt.cfg, http.HandlerFunc(ok))
			o := Options{}
			if tt.pool != nil {
				o.RootCAs = tt.pool.pool
			}
			c := New(o)
			defer c.CloseIdleConnections()
			got, err := c.Get(t.Context(), srv.URL+"/list", 100)
			checkErr(t, "Get", err, tt.err, false)
			if tt.err == nil && string(got) != "secret list" {
				t.Errorf("Get = %q, want %q", got, "secret list")
			}
			var w countingWriter
			n, err := c.Download(t.Context(), srv.URL+"/list", &w, 0, 100)
			checkErr(t, "Download", err, tt.err, false)
			if tt.err != nil && (n != 0 || w.n != 0) {
				t.Errorf("Download = %d bytes (writer got %d), want 0", n, w.n)
			}
		})
	}

	t.Run("plain HTTP server", func(t *testing.T) {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(ok))
		srv.Config.ErrorLog = log.New(io.Discard, "", 0)
		srv.Start()
		defer srv.Close()
		c := New(Options{RootCAs: pki.pool})
		_, err := c.Get(t.Context(), "https"+strings.TrimPrefix(srv.URL, "http"), 100)
		checkErr(t, "Get", err, ErrTLS, false)
	})
}

func TestInsecure(t *testing.T) {
	var hits atomic.Int64
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer plain.Close()
	e := newEnv(t, http.NotFoundHandler(), Options{})
	urls := map[string]string{
		"http":             plain.URL + "/list",
		"HTTP upper case":  "HTTP" + strings.TrimPrefix(plain.URL, "http") + "/list",
		"ftp":              "ftp://127.0.0.1/list",
		"file not allowed": "file:///etc/hostname",
		"data":             "data:text/plain,hello",
		"gopher":           "gopher://127.0.0.1/",
		"ws":               "ws://127.0.0.1/",
	}
	for name, u := range urls {
		t.Run(name, func(t *testing.T) {
			_, err := e.c.Get(t.Context(), u, 100)
			checkErr(t, "Get", err, ErrInsecure, false)
			_, err = e.c.Download(t.Context(), u, io.Discard, 0, 100)
			checkErr(t, "Download", err, ErrInsecure, false)
		})
	}
	for _, u := range []string{"", "no-scheme/list", "//127.0.0.1/list", "https:///list", "https://[::1/list", "https://127.0.0.1:port/list"} {
		t.Run(fmt.Sprintf("malformed %q", u), func(t *testing.T) {
			_, err := e.c.Get(t.Context(), u, 100)
			if err == nil || errors.Is(err, ErrInsecure) || Retryable(err) {
				t.Errorf("Get(%q) = %v, want a malformed-URL error", u, err)
			}
		})
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("plain HTTP server got %d requests, want 0", n)
	}
}

func TestRedirect(t *testing.T) {
	body := []byte("the list")
	var plainHits atomic.Int64
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		plainHits.Add(1)
		w.Write(body)
	}))
	defer plain.Close()
	dir := t.TempDir()
	local := filepath.Join(dir, "list")
	if err := os.WriteFile(local, body, 0o644); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/list", func(w http.ResponseWriter, r *http.Request) { w.Write(body) })
	mux.HandleFunc("/hop/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.PathValue("n"))
		if n == 0 {
			http.Redirect(w, r, "/list", http.StatusFound)
			return
		}
		http.Redirect(w, r, "/hop/"+strconv.Itoa(n-1), http.StatusMovedPermanently)
	})
	mux.HandleFunc("/to-http", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, plain.URL+"/list", http.StatusFound)
	})
	mux.HandleFunc("/to-file", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "file://"+local, http.StatusFound)
	})
	mux.HandleFunc("/to-other", func(w http.ResponseWriter, r *http.Request) {
		_, port, _ := net.SplitHostPort(r.Host)
		http.Redirect(w, r, "https://localhost:"+port+"/list", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/to-missing", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/gone", http.StatusFound)
	})
	e := newEnv(t, mux, Options{AllowFile: true})

	tests := []struct {
		name string
		path string
		err  error
	}{
		{name: "one hop", path: "/hop/0"},
		{name: "five hops", path: "/hop/4"},
		{name: "to another host", path: "/to-other"},
		{name: "six hops", path: "/hop/5", err: ErrRedirect},
		{name: "many hops", path: "/hop/50", err: ErrRedirect},
		{name: "to http", path: "/to-http", err: ErrInsecure},
		{name: "to file", path: "/to-file", err: ErrInsecure},
		{name: "to 404", path: "/to-missing", err: ErrStatus},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := e.c.Get(t.Context(), e.srv.URL+tt.path, 100)
			checkErr(t, "Get", err, tt.err, false)
			if tt.err == nil && !bytes.Equal(got, body) {
				t.Errorf("Get = %q, want %q", got, body)
			}
			var buf bytes.Buffer
			_, err = e.c.Download(t.Context(), e.srv.URL+tt.path, &buf, 0, 100)
			checkErr(t, "Download", err, tt.err, false)
			if tt.err == nil && !bytes.Equal(buf.Bytes(), body) {
				t.Errorf("Download = %q, want %q", buf.Bytes(), body)
			}
		})
	}
	t.Run("status names final URL", func(t *testing.T) {
		_, err := e.c.Get(t.Context(), e.srv.URL+"/to-missing", 100)
		var se *StatusError
		if !errors.As(err, &se) || se.Code != 404 || !strings.HasSuffix(se.At, "/gone") {
			t.Errorf("Get = %#v, want 404 at .../gone", err)
		}
	})
	if n := plainHits.Load(); n != 0 {
		t.Errorf("plain HTTP server got %d requests, want 0", n)
	}
}

// rangeServer serves data with http.ServeContent (Range, 206, 416).
func rangeServer(data []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "image.qcow2", time.Time{}, bytes.NewReader(data))
	}
}

// ignoreRange always answers 200 with the whole of data.
func ignoreRange(data []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Write(data)
	}
}

func TestDownloadResume(t *testing.T) {
	data := content(100_000)
	mux := http.NewServeMux()
	mux.HandleFunc("/range", rangeServer(data))
	mux.HandleFunc("/ignore", ignoreRange(data))
	mux.HandleFunc("/ignore-chunked", chunked(data))
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/range", http.StatusFound) })
	e := newEnv(t, mux, Options{})
	for _, path := range []string{"/range", "/ignore", "/ignore-chunked", "/redirect"} {
		for _, off := range []int64{0, 1, 32 << 10, 50_000, int64(len(data)) - 1, int64(len(data))} {
			for _, max := range []int64{int64(len(data)), int64(len(data)) + 1, 1 << 40} {
				t.Run(fmt.Sprintf("%s/offset=%d/max=%d", path[1:], off, max), func(t *testing.T) {
					var buf bytes.Buffer
					buf.Write(data[:off]) // what a previous attempt left
					n, err := e.c.Download(t.Context(), e.srv.URL+path, &buf, off, max)
					if err != nil {
						t.Fatalf("Download(offset %d) = %v", off, err)
					}
					if n != int64(len(data))-off {
						t.Errorf("Download(offset %d) = %d, want %d", off, n, int64(len(data))-off)
					}
					if !bytes.Equal(buf.Bytes(), data) {
						t.Errorf("content after resume from %d differs (%d bytes, want %d)", off, buf.Len(), len(data))
					}
				})
			}
		}
	}
}

func TestDownloadErrors(t *testing.T) {
	data := content(10_000)
	const max = 10_000
	rangeResp := func(code int, hdr string, body []byte) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			rawResponse(t, w, fmt.Sprintf("HTTP/1.1 %d X\r\n%sContent-Length: %d\r\nConnection: close\r\n\r\n", code, hdr, len(body)), body)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/declared-over", declareOnly(max+1))
	mux.HandleFunc("/chunked-over", chunked(content(max+1)))
	mux.HandleFunc("/endless", endless)
	mux.HandleFunc("/truncated", truncated(t, data[:3000], len(data)))
	mux.HandleFunc("/closed", func(w http.ResponseWriter, r *http.Request) { rawResponse(t, w, "", nil) })
	mux.HandleFunc("/short", ignoreRange(data[:100]))
	mux.HandleFunc("/short-chunked", chunked(data[:100]))
	mux.HandleFunc("/range-total-over", rangeResp(206, "Content-Range: bytes 100-199/10001\r\n", data[100:200]))
	mux.HandleFunc("/range-end-over", rangeResp(206, "Content-Range: bytes 100-10000/*\r\n", data[:100]))
	mux.HandleFunc("/range-wrong-start", rangeResp(206, "Content-Range: bytes 0-9999/10000\r\n", data))
	mux.HandleFunc("/range-malformed", rangeResp(206, "Content-Range: bytes 100-/10000\r\n", data[100:]))
	mux.HandleFunc("/range-missing", rangeResp(206, "", data[100:]))
	mux.HandleFunc("/range-length", rangeResp(206, "Content-Range: bytes 100-9999/10000\r\n", data[100:200]))
	mux.HandleFunc("/range-truncated", func(w http.ResponseWriter, r *http.Request) {
		rawResponse(t, w, "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 100-9999/10000\r\nContent-Length: 9900\r\n\r\n", data[100:600])
	})
	mux.HandleFunc("/416-shorter", rangeResp(416, "Content-Range: bytes */50\r\n", nil))
	mux.HandleFunc("/416-other", rangeResp(416, "Content-Range: bytes */5000\r\n", nil))
	mux.HandleFunc("/404", status(http.StatusNotFound))
	mux.HandleFunc("/503", status(http.StatusServiceUnavailable))
	e := newEnv(t, mux, Options{})

	tests := []struct {
		name      string
		path      string
		offset    int64
		max       int64
		err       error
		retryable bool
		n         int64 // bytes written
	}{
		{name: "declared over max", path: "/declared-over", max: max, err: ErrTooLarge},
		{name: "chunked over max", path: "/chunked-over", max: max, err: ErrTooLarge, n: max},
		{name: "chunked over max from offset", path: "/chunked-over", offset: 1234, max: max, err: ErrTooLarge, n: max - 1234},
		{name: "endless", path: "/endless", max: max, err: ErrTooLarge, n: max},
		{name: "endless small max", path: "/endless", max: 1, err: ErrTooLarge, n: 1},
		{name: "endless zero max", path: "/endless", max: 0, err: ErrTooLarge, n: 0},
		{name: "offset over max", path: "/404", offset: max + 1, max: max, err: ErrTooLarge},
		{name: "truncated", path: "/truncated", max: max, err: ErrTruncated, retryable: true, n: 3000},
		{name: "truncated from offset", path: "/truncated", offset: 1000, max: max, err: ErrTruncated, retryable: true, n: 2000},
		{name: "truncated before offset", path: "/truncated", offset: 5000, max: max, err: ErrTruncated, retryable: true},
		{name: "closed", path: "/closed", offset: 10, max: max, err: ErrTruncated, retryable: true},
		{name: "resource shorter than offset", path: "/short", offset: 200, max: max, err: ErrRange},
		{name: "chunked shorter than offset", path: "/short-chunked", offset: 200, max: max, err: ErrRange},
		{name: "range total over max", path: "/range-total-over", offset: 100, max: max, err: ErrTooLarge},
		{name: "range end over max", path: "/range-end-over", offset: 100, max: max, err: ErrTooLarge},
		{name: "range wrong start", path: "/range-wrong-start", offset: 100, max: max, err: ErrRange},
		{name: "range malformed", path: "/range-malformed", offset: 100, max: max, err: ErrRange},
		{name: "range missing", path: "/range-missing", offset: 100, max: max, err: ErrRange},
		{name: "range length mismatch", path: "/range-length", offset: 100, max: max, err: ErrRange},
		{name: "range truncated", path: "/range-truncated", offset: 100, max: max, err: ErrTruncated, retryable: true, n: 500},
		{name: "416 resource shorter", path: "/416-shorter", offset: 100, max: max, err: ErrRange},
		{name: "416 other", path: "/416-other", offset: 100, max: max, err: ErrStatus},
		{name: "404", path: "/404", max: max, err: ErrStatus},
		{name: "503", path: "/503", offset: 5, max: max, err: ErrStatus, retryable: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w countingWriter
			n, err := e.c.Download(t.Context(), e.srv.URL+tt.path, &w, tt.offset, tt.max)
			checkErr(t, "Download", err, tt.err, tt.retryable)
			if n != tt.n || w.n != tt.n {
				t.Errorf("Download = %d (writer got %d), want %d", n, w.n, tt.n)
			}
			if w.n > tt.max-tt.offset && tt.max >= tt.offset {
				t.Errorf("writer got %d bytes, more than max-offset = %d", w.n, tt.max-tt.offset)
			}
		})
	}

	t.Run("negative offset", func(t *testing.T) {
		if _, err := e.c.Download(t.Context(), e.srv.URL+"/404", io.Discard, -1, max); err == nil || Retryable(err) {
			t.Errorf("Download(offset -1) = %v, want a permanent error", err)
		}
	})
	t.Run("negative max", func(t *testing.T) {
		if _, err := e.c.Get(t.Context(), e.srv.URL+"/404", -1); err == nil || Retryable(err) {
			t.Errorf("Get(max -1) = %v, want a permanent error", err)
		}
	})
}

// failingWriter accepts limit bytes, then fails.
type failingWriter struct {
	limit int
	n     int
}

var errDiskFull = errors.New("disk full")

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.n+len(p) > w.limit {
		k := w.limit - w.n
		w.n = w.limit
		return k, errDiskFull
	}
	w.n += len(p)
	return len(p), nil
}

func TestDownloadWriterError(t *testing.T) {
	data := content(100_000)
	e := newEnv(t, rangeServer(data), Options{})
	w := &failingWriter{limit: 40_000}
	n, err := e.c.Download(t.Context(), e.srv.URL+"/img", w, 0, int64(len(data)))
	if !errors.Is(err, errDiskFull) || Retryable(err) {
		t.Errorf("Download = %v, want errDiskFull, not retryable", err)
	}
	if n != 40_000 {
		t.Errorf("Download = %d bytes, want 40000", n)
	}
}

// A download cut short resumes, through Retry, to exactly the content.
func TestResumeAfterTruncation(t *testing.T) {
	data := content(200_000)
	var calls atomic.Int64
	e := newEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch calls.Add(1) {
		case 1:
			truncated(t, data[:70_000], len(data))(w, r)
		case 2:
			w.WriteHeader(http.StatusServiceUnavailable)
		case 3:
			// Cut short again, this time answering the Range request.
			off, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(r.Header.Get("Range"), "bytes="), "-"))
			rawResponse(t, w, fmt.Sprintf("HTTP/1.1 206 Partial Content\r\nContent-Range: bytes %d-%d/%d\r\nContent-Length: %d\r\n\r\n",
				off, len(data)-1, len(data), len(data)-off), data[off:off+1000])
		default:
			rangeServer(data)(w, r)
		}
	}), Options{})
	var buf bytes.Buffer
	var off int64
	var sleeps []time.Duration
	b := Backoff{Base: time.Second, Sleep: func(_ context.Context, d time.Duration) error {
		sleeps = append(sleeps, d)
		return nil
	}}
	err := b.Retry(t.Context(), 5, func() error {
		n, err := e.c.Download(t.Context(), e.srv.URL+"/img", &buf, off, int64(len(data)))
		off += n
		return err
	})
	if err != nil {
		t.Fatalf("Retry(Download) = %v", err)
	}
	if !bytes.Equal(buf.Bytes(), data) {
		t.Errorf("resumed content differs: %d bytes, want %d", buf.Len(), len(data))
	}
	if got := calls.Load(); got != 4 || len(sleeps) != 3 {
		t.Errorf("%d requests and %d sleeps, want 4 and 3", got, len(sleeps))
	}
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	mux := http.NewServeMux()
	mux.HandleFunc("/no-headers", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	mux.HandleFunc("/stall", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.Write(make([]byte, 10))
		http.NewResponseController(w).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	e := newEnv(t, mux, Options{Timeout: 100 * time.Millisecond})
	for _, path := range []string{"/no-headers", "/stall"} {
		t.Run("Get"+path, func(t *testing.T) {
			_, err := e.c.Get(t.Context(), e.srv.URL+path, 1000)
			checkErr(t, "Get", err, ErrTimeout, true)
		})
		t.Run("Download"+path, func(t *testing.T) {
			var w countingWriter
			n, err := e.c.Download(t.Context(), e.srv.URL+path, &w, 0, 1000)
			checkErr(t, "Download", err, ErrTimeout, true)
			if path == "/stall" && (n != 10 || w.n != 10) {
				t.Errorf("Download = %d (writer got %d), want 10", n, w.n)
			}
		})
	}
}

func TestCancel(t *testing.T) {
	started := make(chan struct{}, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("partial"))
		http.NewResponseController(w).Flush()
		started <- struct{}{}
		<-r.Context().Done()
	})
	mux.HandleFunc("/endless", endless)
	e := newEnv(t, mux, Options{})

	t.Run("before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := e.c.Get(ctx, e.srv.URL+"/slow", 100)
		checkErr(t, "Get", err, context.Canceled, false)
		_, err = e.c.Download(ctx, e.srv.URL+"/slow", io.Discard, 0, 100)
		checkErr(t, "Download", err, context.Canceled, false)
	})
	t.Run("Get during body", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		go func() { <-started; cancel() }()
		_, err := e.c.Get(ctx, e.srv.URL+"/slow", 100)
		checkErr(t, "Get", err, context.Canceled, false)
	})
	t.Run("Download during body", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		w := writerFunc(func(p []byte) (int, error) { cancel(); return len(p), nil })
		n, err := e.c.Download(ctx, e.srv.URL+"/endless", w, 0, 1<<40)
		checkErr(t, "Download", err, context.Canceled, false)
		if n == 0 {
			t.Errorf("Download = 0 bytes, want what was written before the cancel")
		}
	})
	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
		defer cancel()
		_, err := e.c.Get(ctx, e.srv.URL+"/slow", 100)
		checkErr(t, "Get", err, context.DeadlineExceeded, false)
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// Credentials in a URL never reach an error message or a log line.
func TestRedaction(t *testing.T) {
	const secret = "s3cret"
	var logs bytes.Buffer
	mux := http.NewServeMux()
	mux.HandleFunc("/404", status(http.StatusNotFound))
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("/to-http", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://bob:"+secret+"@127.0.0.1:1/x?sig="+secret, http.StatusFound)
	})
	e := newEnv(t, mux, Options{Log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	host := strings.TrimPrefix(e.srv.URL, "https://")
	untrusted := serve(t, &tls.Config{Certificates: []tls.Certificate{newPKI(t).leaf(t, leafOpts{})}}, http.NotFoundHandler())
	closed := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}()
	cred := "alice:" + secret + "@"
	tests := []struct {
		name string
		url  string
		err  bool
	}{
		{name: "success", url: "https://" + cred + host + "/ok?token=" + secret},
		{name: "status", url: "https://" + cred + host + "/404?token=" + secret, err: true},
		{name: "insecure scheme", url: "http://" + cred + host + "/x?token=" + secret, err: true},
		{name: "redirect to http", url: "https://" + cred + host + "/to-http", err: true},
		{name: "untrusted", url: "https://" + cred + strings.TrimPrefix(untrusted.URL, "https://") + "/x#" + secret, err: true},
		{name: "connection refused", url: "https://" + cred + closed + "/x?" + secret, err: true},
		{name: "malformed", url: "https://" + cred + "[::1/x", err: true},
		{name: "bad port", url: "https://" + cred + "127.0.0.1:port/x", err: true},
		{name: "user only", url: "https://" + secret + "@" + host + "/404", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, gerr := e.c.Get(t.Context(), tt.url, 100)
			_, derr := e.c.Download(t.Context(), tt.url, io.Discard, 0, 100)
			for _, err := range []error{gerr, derr} {
				if (err != nil) != tt.err {
					t.Fatalf("error = %v, want error %v", err, tt.err)
				}
				if err != nil && strings.Contains(err.Error(), secret) {
					t.Errorf("error %q contains the credential", err)
				}
			}
		})
	}
	if strings.Contains(logs.String(), secret) {
		t.Errorf("logs contain the credential:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "xxxxx@") {
		t.Errorf("logs do not show a redacted URL:\n%s", logs.String())
	}
}

// Get never holds more than max bytes, even while its buffer grows.
func TestCappedBuffer(t *testing.T) {
	for _, limit := range []int64{0, 1, 100, 4096, 5000, 100_000} {
		for _, size := range []int64{0, 1, limit / 2, limit, limit + 1, 3 * limit} {
			t.Run(fmt.Sprintf("limit=%d/size=%d", limit, size), func(t *testing.T) {
				buf := &capped{limit: limit}
				n, err := pump(buf, bytes.NewReader(content(int(size))), limit)
				if size > limit && err != ErrTooLarge || size <= limit && (err != nil || n != size) {
					t.Errorf("pump = %d, %v; size %d, limit %d", n, err, size, limit)
				}
				if int64(cap(buf.b)) > limit || int64(len(buf.b)) != n {
					t.Errorf("buffer len %d cap %d, want len %d and cap <= %d", len(buf.b), cap(buf.b), n, limit)
				}
			})
		}
	}
}
