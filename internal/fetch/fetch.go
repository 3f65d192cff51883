// Package fetch retrieves image lists and images for a site's subscriptions,
// with bounded size and time. It knows nothing about trust beyond transport
// security: what it returns is only what a server that holds a certificate
// for the URL's host sent. Callers verify content (S/MIME for a list, the
// endorsed size and sha512 for an image) before using it.
//
// # Guarantees
//
//   - Only https:// URLs are fetched, and file:// URLs when Options.AllowFile
//     is set. Every other scheme, http:// included, fails with ErrInsecure
//     before any connection is made.
//   - TLS 1.2 or later, with the server certificate verified against
//     Options.RootCAs (the system roots when nil) and the URL's host. A
//     failed verification or TLS protocol failure wraps ErrTLS and is never
//     retried; a connection reset or closed during the handshake is a
//     network error like any other.
//   - At most MaxRedirects redirects are followed, each only to https://; a
//     redirect elsewhere (http://, file://, ...) wraps ErrInsecure and more
//     redirects wrap ErrRedirect.
//   - Sizes are bounded by the caller's max. A declared Content-Length (or
//     Content-Range total) above max fails with ErrTooLarge before the body
//     is read. Bodies are read through a limit: Get holds at most max bytes,
//     Download writes at most max-offset bytes and stops the moment one more
//     byte arrives.
//   - A body shorter than its declared length, or a connection closed early,
//     is an error wrapping ErrTruncated, never a short success.
//   - A non-2xx answer is a *StatusError (errors.Is(err, ErrStatus)); its
//     body is drained (a little) and discarded, never returned.
//   - Get has a whole-request timeout. Download has connect, TLS handshake
//     and response-header timeouts, and fails when no byte arrives for the
//     same duration (a stalled server; time spent in w.Write counts); it has
//     no overall deadline, which the caller sets through the context.
//     Timeouts wrap ErrTimeout.
//   - The context is honoured everywhere: a cancelled context ends the call
//     with an error wrapping ctx.Err().
//   - Every error names the URL with its userinfo and query replaced by
//     "xxxxx" (see Redact); logs use the same form. A URL that does not
//     parse is not repeated at all.
//
// Connections go directly to the URL's host: proxy environment variables are
// not consulted. Responses are not decompressed (no Accept-Encoding is
// sent), so byte offsets are offsets into the resource itself. HTTP/1.1 only.
//
// # Resuming downloads
//
// Download(ctx, url, w, offset, max) asks for bytes=offset- and writes to w
// only bytes from offset on, so w receives the continuation whatever the
// server does:
//
//   - 206 Partial Content: the Content-Range must start at offset, else
//     ErrRange.
//   - 200 OK (the server ignores Range): the first offset bytes are read and
//     discarded, then the rest is written. This costs bandwidth, not
//     correctness. A resource shorter than offset fails with ErrRange.
//   - 416 Range Not Satisfiable with a total length equal to offset: the
//     resource is already complete; Download returns 0, nil.
//
// Download returns the number of bytes written even when it fails, so the
// caller can retry from offset+n:
//
//	off := w.Offset()
//	err := fetch.Retry(ctx, 5, time.Second, func() error {
//		n, err := c.Download(ctx, url, w, off, size)
//		off += n
//		return err
//	})
//
// fetch cannot tell whether the bytes before offset belong to the same
// version of the resource (no If-Range): the caller's digest check decides.
// After ErrTooLarge or ErrRange the caller should discard what it wrote.
//
// # file:// URLs
//
// file:///abs/path (host empty or "localhost") names a local file, read with
// the same bounds as a download. Relative paths, other hosts, directories and
// other non-regular files (FIFOs, devices) are refused. Symbolic links are
// followed: the site owns its file system. A missing file wraps
// fs.ErrNotExist.
//
// # Errors and retries
//
// Retryable reports whether an error is worth another attempt: 408, 429 and
// 5xx answers other than 501 and 505, timeouts, connection resets and
// refusals, truncated bodies. It is false for ErrInsecure, ErrTLS,
// ErrTooLarge, ErrRange, ErrRedirect, other statuses (404 in particular),
// writer errors and cancellation. Retry and Backoff retry only those.
package fetch

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// MaxRedirects is the number of redirects a request may follow.
const MaxRedirects = 5

// DefaultTimeout applies when Options.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// maxErrorBody is how much of a non-2xx body is drained to keep the
// connection reusable.
const maxErrorBody = 4 << 10

// Options configure a Client.
type Options struct {
	RootCAs   *x509.CertPool // trust anchors for server certificates; nil: system roots
	Timeout   time.Duration  // Get: whole request; Download: connect, handshake, response header, and idle body (default DefaultTimeout)
	UserAgent string         // default "vmtrust"
	AllowFile bool           // permit file:// URLs (lists a site keeps locally)
	Log       *slog.Logger   // nil: discard
}

// Client fetches resources. It is safe for concurrent use.
type Client struct {
	hc        *http.Client
	tr        *http.Transport
	tls       *tls.Config
	dialer    *net.Dialer
	timeout   time.Duration
	ua        string
	allowFile bool
	log       *slog.Logger
}

// New returns a Client for o.
func New(o Options) *Client {
	c := &Client{
		timeout:   o.Timeout,
		ua:        o.UserAgent,
		allowFile: o.AllowFile,
		log:       o.Log,
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.ua == "" {
		c.ua = "vmtrust"
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.tls = &tls.Config{
		RootCAs:    o.RootCAs,
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"http/1.1"},
	}
	c.dialer = &net.Dialer{Timeout: c.timeout, KeepAlive: 30 * time.Second}
	c.tr = &http.Transport{
		Proxy: nil,
		// Only https:// is ever requested; a plain connection is a bug.
		DialContext: func(context.Context, string, string) (net.Conn, error) {
			return nil, fmt.Errorf("%w: plain connection refused", ErrInsecure)
		},
		DialTLSContext:         c.dialTLS,
		ResponseHeaderTimeout:  c.timeout,
		DisableCompression:     true,
		MaxResponseHeaderBytes: 64 << 10,
		MaxIdleConnsPerHost:    4,
		IdleConnTimeout:        90 * time.Second,
	}
	c.hc = &http.Client{Transport: c.tr, CheckRedirect: checkRedirect}
	return c
}

// CloseIdleConnections closes connections kept for reuse.
func (c *Client) CloseIdleConnections() { c.tr.CloseIdleConnections() }

// dialTLS connects and completes the handshake itself, so that every
// handshake failure can be classified as ErrTLS and every socket failure
// stays a (retryable) network error.
func (c *Client) dialTLS(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	raw, err := c.dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	cfg := c.tls.Clone()
	cfg.ServerName = host
	tc := tls.Client(raw, cfg)
	hctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		raw.Close()
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case hctx.Err() != nil:
			return nil, fmt.Errorf("%w: TLS handshake with %s took more than %s", ErrTimeout, addr, c.timeout)
		case transient(err):
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrTLS, err)
	}
	return tc, nil
}

func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > MaxRedirects {
		return fmt.Errorf("%w: more than %d", ErrRedirect, MaxRedirects)
	}
	if req.URL.Scheme != "https" {
		return fmt.Errorf("redirect to %s: %w: scheme %q", Redact(req.URL), ErrInsecure, req.URL.Scheme)
	}
	return nil
}

// parse checks rawURL against the scheme rules.
func (c *Client) parse(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme == "" {
		// The text may hold credentials and cannot be redacted reliably.
		return nil, fmt.Errorf("fetch: %w", errBadURL)
	}
	switch u.Scheme {
	case "https":
		if u.Host == "" || u.Opaque != "" {
			return nil, fmt.Errorf("fetch %s: %w", Redact(u), errBadURL)
		}
		return u, nil
	case "file":
		if !c.allowFile {
			return nil, fmt.Errorf("fetch %s: %w: file URLs not allowed", Redact(u), ErrInsecure)
		}
		return u, nil
	}
	return nil, fmt.Errorf("fetch %s: %w: scheme %q", Redact(u), ErrInsecure, u.Scheme)
}

func (c *Client) request(ctx context.Context, u *url.URL) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", Redact(u), errBadURL)
	}
	req.Header.Set("User-Agent", c.ua)
	return req, nil
}

// Get fetches a whole document (an image list) of at most max bytes.
func (c *Client) Get(ctx context.Context, rawURL string, max int64) ([]byte, error) {
	if max < 0 {
		return nil, fmt.Errorf("fetch: negative size limit %d", max)
	}
	u, err := c.parse(rawURL)
	if err != nil {
		return nil, err
	}
	red := Redact(u)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("fetch %s: %w", red, err)
	}
	buf := &capped{limit: max}
	if u.Scheme == "file" {
		if _, err := c.readFile(ctx, u, red, buf, 0, max); err != nil {
			return nil, err
		}
		return buf.bytes(), nil
	}

	rctx, cancel := context.WithTimeoutCause(ctx, c.timeout,
		fmt.Errorf("%w: request took more than %s", ErrTimeout, c.timeout))
	defer cancel()
	req, err := c.request(rctx, u)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.fail(ctx, rctx, red, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, c.status(red, resp)
	}
	if resp.ContentLength > max {
		return nil, fmt.Errorf("fetch %s: %w: Content-Length %d exceeds %d", red, ErrTooLarge, resp.ContentLength, max)
	}
	if resp.ContentLength > 0 {
		// The declaration is the server's word: trust it only so far.
		buf.b = make([]byte, 0, min(resp.ContentLength, 1<<20))
	}
	n, err := pump(buf, resp.Body, max)
	if err == ErrTooLarge {
		return nil, fmt.Errorf("fetch %s: %w: more than %d bytes", red, ErrTooLarge, max)
	}
	if err == nil && rctx.Err() != nil {
		// A cancelled request can end in what looks like a clean EOF.
		err = context.Cause(rctx)
	}
	if err != nil {
		return nil, c.fail(ctx, rctx, red, err)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return nil, fmt.Errorf("fetch %s: %w: %d of %d bytes", red, ErrTruncated, n, resp.ContentLength)
	}
	c.log.DebugContext(ctx, "fetched", "url", red, "status", resp.StatusCode, "bytes", n)
	return buf.bytes(), nil
}

// Download streams the resource at rawURL into w, starting at byte offset
// (Range: bytes=offset-). A server that ignores Range and answers 200 is
// handled by discarding the first offset bytes (see the package doc). It
// aborts the moment offset plus the bytes received would exceed max,
// returning ErrTooLarge, having written at most max-offset bytes. It returns
// the number of bytes written, also on error.
func (c *Client) Download(ctx context.Context, rawURL string, w io.Writer, offset, max int64) (int64, error) {
	u, err := c.parse(rawURL)
	if err != nil {
		return 0, err
	}
	red := Redact(u)
	switch {
	case offset < 0 || max < 0:
		return 0, fmt.Errorf("fetch %s: negative offset %d or size limit %d", red, offset, max)
	case offset > max:
		return 0, fmt.Errorf("fetch %s: %w: offset %d already exceeds %d", red, ErrTooLarge, offset, max)
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("fetch %s: %w", red, err)
	}
	if u.Scheme == "file" {
		return c.readFile(ctx, u, red, w, offset, max)
	}

	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	req, err := c.request(rctx, u)
	if err != nil {
		return 0, err
	}
	if offset > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, c.fail(ctx, rctx, red, err)
	}
	defer resp.Body.Close()

	// From here on a body that stops flowing for c.timeout ends the request.
	stall := fmt.Errorf("%w: no data for %s", ErrTimeout, c.timeout)
	idle := time.AfterFunc(c.timeout, func() { cancel(stall) })
	defer idle.Stop()
	body := &idleReader{r: resp.Body, t: idle, d: c.timeout}

	// want is how many bytes the body should carry from offset on; -1: unknown.
	want := int64(-1)
	switch {
	case resp.StatusCode == http.StatusPartialContent:
		first, last, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
		switch {
		case !ok || first < 0:
			return 0, fmt.Errorf("fetch %s: %w: 206 with Content-Range %q", red, ErrRange, trim(resp.Header.Get("Content-Range")))
		case first != offset:
			return 0, fmt.Errorf("fetch %s: %w: asked for bytes from %d, got %d-%d", red, ErrRange, offset, first, last)
		case total > max:
			return 0, fmt.Errorf("fetch %s: %w: Content-Range total %d exceeds %d", red, ErrTooLarge, total, max)
		case last >= max:
			return 0, fmt.Errorf("fetch %s: %w: Content-Range ends at byte %d, limit %d", red, ErrTooLarge, last, max)
		case resp.ContentLength >= 0 && resp.ContentLength != last-first+1:
			return 0, fmt.Errorf("fetch %s: %w: Content-Length %d for range %d-%d", red, ErrRange, resp.ContentLength, first, last)
		}
		want = last - first + 1
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && offset > 0:
		_, _, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
		switch {
		case ok && total == offset:
			c.log.DebugContext(ctx, "download already complete", "url", red, "offset", offset)
			return 0, nil
		case ok && total >= 0 && total < offset:
			return 0, fmt.Errorf("fetch %s: %w: resource has %d bytes, fewer than offset %d", red, ErrRange, total, offset)
		}
		return 0, c.status(red, resp)
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return 0, c.status(red, resp)
	default:
		// The whole resource, whether or not Range was sent.
		if resp.ContentLength > max {
			return 0, fmt.Errorf("fetch %s: %w: Content-Length %d exceeds %d", red, ErrTooLarge, resp.ContentLength, max)
		}
		if resp.ContentLength >= 0 {
			if resp.ContentLength < offset {
				return 0, fmt.Errorf("fetch %s: %w: resource has %d bytes, fewer than offset %d", red, ErrRange, resp.ContentLength, offset)
			}
			want = resp.ContentLength - offset
		}
		if offset > 0 {
			c.log.DebugContext(ctx, "server ignored Range; skipping", "url", red, "offset", offset)
			skipped, err := io.CopyN(io.Discard, body, offset)
			if err == io.EOF && rctx.Err() != nil {
				err = context.Cause(rctx)
			}
			if err == io.EOF {
				return 0, fmt.Errorf("fetch %s: %w: resource has %d bytes, fewer than offset %d", red, ErrRange, skipped, offset)
			}
			if err != nil {
				return 0, c.fail(ctx, rctx, red, err)
			}
		}
	}

	n, err := pump(w, body, max-offset)
	if err == ErrTooLarge {
		return n, fmt.Errorf("fetch %s: %w: more than %d bytes (offset %d + %d received)", red, ErrTooLarge, max, offset, n)
	}
	if err == nil && rctx.Err() != nil {
		// A cancelled request can end in what looks like a clean EOF.
		err = context.Cause(rctx)
	}
	if err != nil {
		return n, c.fail(ctx, rctx, red, err)
	}
	switch {
	case want >= 0 && n < want:
		return n, fmt.Errorf("fetch %s: %w: %d of %d bytes", red, ErrTruncated, n, want)
	case want >= 0 && n > want:
		return n, fmt.Errorf("fetch %s: %w: %d bytes, range had %d", red, ErrRange, n, want)
	}
	c.log.DebugContext(ctx, "downloaded", "url", red, "status", resp.StatusCode, "offset", offset, "bytes", n)
	return n, nil
}

// status builds the *StatusError for resp and drains a little of its body.
func (c *Client) status(red string, resp *http.Response) error {
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	e := &StatusError{Code: resp.StatusCode, URL: red}
	if resp.Request != nil && resp.Request.URL != nil {
		if at := Redact(resp.Request.URL); at != red {
			e.At = at
		}
	}
	if e.Code == http.StatusTooManyRequests || e.Code == http.StatusServiceUnavailable {
		e.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	c.log.Debug("fetch failed", "url", red, "status", e.Code)
	return e
}

// fail turns err from a request or body read into the error to return.
// parent is the caller's context, rctx the request's.
func (c *Client) fail(parent, rctx context.Context, red string, err error) error {
	var we *writeError
	if errors.As(err, &we) {
		return fmt.Errorf("fetch %s: %w", red, we)
	}
	if perr := parent.Err(); perr != nil {
		return fmt.Errorf("fetch %s: %w", red, perr)
	}
	if cause := context.Cause(rctx); cause != nil && errors.Is(cause, ErrTimeout) {
		return fmt.Errorf("fetch %s: %w", red, cause)
	}
	// url.Error repeats the URL, with only the password stripped.
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	switch {
	case errors.Is(err, ErrTLS), errors.Is(err, ErrInsecure), errors.Is(err, ErrRedirect), errors.Is(err, ErrTimeout):
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		err = fmt.Errorf("%w: %w", ErrTruncated, err)
	case errors.As(err, &ne) && ne.Timeout():
		// Not %w: net/http's timeouts also match context.DeadlineExceeded,
		// which stands for the caller's deadline here.
		err = fmt.Errorf("%w: %v", ErrTimeout, err)
	}
	return fmt.Errorf("fetch %s: %w", red, err)
}

// pump copies r to w until EOF, writing at most limit bytes. When r has
// more it returns ErrTooLarge (bare) without writing the excess. Errors from w come
// back as *writeError.
func pump(w io.Writer, r io.Reader, limit int64) (int64, error) {
	buf := make([]byte, 32<<10)
	var n int64
	for {
		p := buf
		if rem := limit - n; rem < int64(len(p)) {
			p = p[:max(rem, 1)] // with nothing left, probe for one byte more
		}
		m, rerr := r.Read(p)
		if m > 0 {
			if int64(m) > limit-n {
				return n, ErrTooLarge
			}
			wm, werr := w.Write(p[:m])
			n += int64(wm)
			if werr == nil && wm != m {
				werr = io.ErrShortWrite
			}
			if werr != nil {
				return n, &writeError{werr}
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// capped is a byte buffer whose capacity never exceeds limit.
type capped struct {
	b     []byte
	limit int64
}

func (c *capped) Write(p []byte) (int, error) {
	need := len(c.b) + len(p)
	if int64(need) > c.limit {
		return 0, ErrTooLarge // pump never asks for this
	}
	if need > cap(c.b) {
		nb := make([]byte, len(c.b), min(int64(max(2*cap(c.b), need, 4096)), c.limit))
		copy(nb, c.b)
		c.b = nb
	}
	c.b = append(c.b, p...)
	return len(p), nil
}

func (c *capped) bytes() []byte {
	if c.b == nil {
		return []byte{}
	}
	return c.b
}

type writeError struct{ err error }

func (e *writeError) Error() string { return "writing: " + e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// idleReader restarts t (which ends the request) whenever data arrives.
type idleReader struct {
	r io.Reader
	t *time.Timer
	d time.Duration
}

func (r *idleReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.t.Reset(r.d)
	}
	return n, err
}

// trim shortens header text quoted in an error.
func trim(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
