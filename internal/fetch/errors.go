package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"time"
)

// Error classes. An error from Get or Download wraps at most one of them
// and names the (redacted) URL.
var (
	ErrInsecure  = errors.New("insecure URL")           // scheme other than https (or file when allowed), also after a redirect
	ErrTLS       = errors.New("TLS handshake failed")   // untrusted, mismatched or expired certificate; protocol failure
	ErrStatus    = errors.New("unexpected HTTP status") // matched by every *StatusError
	ErrTooLarge  = errors.New("resource exceeds size limit")
	ErrTruncated = errors.New("response truncated")        // body shorter than declared, connection closed early
	ErrTimeout   = errors.New("timed out")                 // our own timeouts, not the caller's context deadline
	ErrRedirect  = errors.New("too many redirects")        // more than MaxRedirects
	ErrRange     = errors.New("inconsistent range answer") // resume impossible: restart from offset 0
)

// errBadURL reports a URL that does not parse; its text is not repeated,
// since it may hold credentials that cannot be redacted reliably.
var errBadURL = errors.New("malformed URL")

// StatusError is a non-2xx answer. errors.Is(err, ErrStatus) matches it.
type StatusError struct {
	Code       int           // HTTP status code
	URL        string        // the requested URL, redacted
	At         string        // the URL that answered, when a redirect led elsewhere (redacted)
	RetryAfter time.Duration // from Retry-After on 429 and 503; 0 when absent
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("fetch %s: %v: %d %s", e.URL, ErrStatus, e.Code, http.StatusText(e.Code))
	if e.At != "" {
		s += " (at " + e.At + ")"
	}
	return s
}

// Is makes errors.Is(err, ErrStatus) true.
func (e *StatusError) Is(target error) bool { return target == ErrStatus }

// Retryable reports whether the status is worth another attempt: 408, 429,
// and 5xx other than 501 Not Implemented and 505 HTTP Version Not Supported.
func (e *StatusError) Retryable() bool {
	switch e.Code {
	case http.StatusRequestTimeout, http.StatusTooManyRequests:
		return true
	case http.StatusNotImplemented, http.StatusHTTPVersionNotSupported:
		return false
	}
	return e.Code >= 500 && e.Code <= 599
}

// Retryable reports whether err is transient: a retryable status, a timeout
// of this package or the network, a reset, refused or aborted connection, a
// truncated body. Cancellation or expiry of the caller's context is not.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	var se *StatusError
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false
	case errors.Is(err, ErrTimeout):
		return true
	case errors.As(err, &se):
		return se.Retryable()
	case errors.Is(err, ErrInsecure), errors.Is(err, ErrTLS), errors.Is(err, ErrTooLarge),
		errors.Is(err, ErrRedirect), errors.Is(err, ErrRange), errors.Is(err, errBadURL):
		return false
	case errors.Is(err, ErrTruncated):
		return true
	}
	var we *writeError
	if errors.As(err, &we) {
		return false
	}
	return transient(err)
}

// transient recognises network failures that may go away.
func transient(err error) bool {
	var ne net.Error
	var de *net.DNSError
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ETIMEDOUT):
		return true
	case errors.As(err, &de):
		return de.IsTimeout || de.IsTemporary
	case errors.As(err, &ne):
		return ne.Timeout()
	}
	return false
}

// Redact returns u as text with the userinfo and the query replaced by
// "xxxxx" and the fragment dropped, for errors and logs.
func Redact(u *url.URL) string {
	r := *u
	if r.User != nil {
		r.User = url.User("xxxxx")
	}
	if r.RawQuery != "" || r.ForceQuery {
		r.RawQuery = "xxxxx"
	}
	r.Fragment, r.RawFragment = "", ""
	return r.String()
}
