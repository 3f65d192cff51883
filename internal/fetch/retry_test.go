package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"
)

var (
	err503 = &StatusError{Code: 503, URL: "https://mirror.example.org/img"}
	err404 = &StatusError{Code: 404, URL: "https://mirror.example.org/img"}
)

// script returns an f for Retry that fails with errs in turn, then
// succeeds, and counts its calls.
func script(calls *int, errs ...error) func() error {
	return func() error {
		*calls++
		if *calls <= len(errs) {
			return errs[*calls-1]
		}
		return nil
	}
}

func TestRetry(t *testing.T) {
	tests := []struct {
		name     string
		b        Backoff
		attempts int
		errs     []error
		calls    int
		sleeps   []time.Duration
		err      error
	}{
		{name: "first try", attempts: 3, calls: 1},
		{name: "success after failures", attempts: 5, errs: []error{err503, err503, err503}, calls: 4,
			sleeps: []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}},
		{name: "gives up", attempts: 3, errs: []error{err503, err503, err503, err503}, calls: 3,
			sleeps: []time.Duration{time.Second, 2 * time.Second}, err: err503},
		{name: "not retryable", attempts: 5, errs: []error{err503, err404}, calls: 2,
			sleeps: []time.Duration{time.Second}, err: err404},
		{name: "insecure", attempts: 5, errs: []error{ErrInsecure}, calls: 1, err: ErrInsecure},
		{name: "too large", attempts: 5, errs: []error{ErrTooLarge}, calls: 1, err: ErrTooLarge},
		{name: "zero attempts means one", attempts: 0, errs: []error{err503}, calls: 1, err: err503},
		{name: "capped", b: Backoff{Max: 3 * time.Second}, attempts: 5, errs: []error{err503, err503, err503, err503}, calls: 5,
			sleeps: []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second}},
		{name: "default cap 32x", attempts: 9, errs: slices.Repeat([]error{ErrTimeout}, 8), calls: 9,
			sleeps: []time.Duration{1, 2, 4, 8, 16, 32, 32, 32}},
		{name: "retry-after", attempts: 3, errs: []error{&StatusError{Code: 429, RetryAfter: 10 * time.Second}}, calls: 2,
			sleeps: []time.Duration{10 * time.Second}},
		{name: "retry-after capped", b: Backoff{Max: 5 * time.Second}, attempts: 3,
			errs: []error{&StatusError{Code: 503, RetryAfter: time.Hour}}, calls: 2, sleeps: []time.Duration{5 * time.Second}},
		{name: "no base no wait", b: Backoff{Base: -1}, attempts: 3, errs: []error{err503, err503}, calls: 3,
			sleeps: []time.Duration{0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.b
			if b.Base == 0 {
				b.Base = time.Second
			}
			if tt.name == "default cap 32x" {
				b.Base = time.Nanosecond
			}
			var sleeps []time.Duration
			b.Sleep = func(_ context.Context, d time.Duration) error { sleeps = append(sleeps, d); return nil }
			b.Rand = func(n int64) int64 { return n - 1 } // the top of the jitter range: the nominal delay
			calls := 0
			err := b.Retry(t.Context(), tt.attempts, script(&calls, tt.errs...))
			if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Errorf("Retry = %v, want %v", err, tt.err)
			}
			if calls != tt.calls {
				t.Errorf("f called %d times, want %d", calls, tt.calls)
			}
			if !slices.Equal(sleeps, tt.sleeps) {
				t.Errorf("sleeps = %v, want %v", sleeps, tt.sleeps)
			}
		})
	}
}

func TestRetryJitter(t *testing.T) {
	for _, tt := range []struct {
		name string
		rand func(int64) int64
		want []time.Duration
	}{
		{"bottom", func(int64) int64 { return 0 }, []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second}},
		{"top", func(n int64) int64 { return n - 1 }, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var sleeps []time.Duration
			b := Backoff{Base: time.Second, Rand: tt.rand,
				Sleep: func(_ context.Context, d time.Duration) error { sleeps = append(sleeps, d); return nil }}
			calls := 0
			b.Retry(t.Context(), 4, script(&calls, err503, err503, err503))
			if !slices.Equal(sleeps, tt.want) {
				t.Errorf("sleeps = %v, want %v", sleeps, tt.want)
			}
		})
	}
	t.Run("real rand stays in range", func(t *testing.T) {
		b := Backoff{Base: time.Second}
		for k := 1; k <= 10; k++ {
			nominal := min(time.Second<<(k-1), 32*time.Second)
			for range 100 {
				if d := b.delay(k, err503); d < nominal/2 || d > nominal {
					t.Fatalf("delay(%d) = %v, want in [%v, %v]", k, d, nominal/2, nominal)
				}
			}
		}
	})
	t.Run("huge base does not overflow", func(t *testing.T) {
		b := Backoff{Base: 1 << 60}
		for k := 1; k < 100; k += 7 {
			if d := b.delay(k, err503); d <= 0 {
				t.Fatalf("delay(%d) = %v, want positive", k, d)
			}
		}
	})
}

func TestRetryContext(t *testing.T) {
	t.Run("cancelled while sleeping", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		b := Backoff{Base: time.Hour, Sleep: func(ctx context.Context, d time.Duration) error {
			cancel()
			<-ctx.Done()
			return ctx.Err()
		}}
		calls := 0
		err := b.Retry(ctx, 5, script(&calls, err503, err503))
		if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrStatus) || Retryable(err) {
			t.Errorf("Retry = %v, want context.Canceled wrapping the last error, not retryable", err)
		}
		if calls != 1 {
			t.Errorf("f called %d times, want 1", calls)
		}
	})
	t.Run("real timer honours cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		calls := 0
		f := func() error { calls++; cancel(); return err503 }
		err := Retry(ctx, 5, time.Hour, f)
		if !errors.Is(err, context.Canceled) || calls != 1 {
			t.Errorf("Retry = %v after %d calls, want context.Canceled after 1", err, calls)
		}
	})
	t.Run("done before start", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		calls := 0
		err := Retry(ctx, 5, time.Second, script(&calls))
		if !errors.Is(err, context.Canceled) || calls != 0 {
			t.Errorf("Retry = %v after %d calls, want context.Canceled after 0", err, calls)
		}
	})
	t.Run("short real sleep", func(t *testing.T) {
		calls := 0
		if err := Retry(t.Context(), 3, time.Millisecond, script(&calls, ErrTruncated, ErrTruncated)); err != nil || calls != 3 {
			t.Errorf("Retry = %v after %d calls, want success after 3", err, calls)
		}
	})
}

func TestRetryable(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("fetch https://h/x: %w", err) }
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{wrap(&StatusError{Code: 404}), false},
		{wrap(&StatusError{Code: 403}), false},
		{wrap(&StatusError{Code: 416}), false},
		{wrap(&StatusError{Code: 408}), true},
		{wrap(&StatusError{Code: 429}), true},
		{wrap(&StatusError{Code: 500}), true},
		{wrap(&StatusError{Code: 501}), false},
		{wrap(&StatusError{Code: 502}), true},
		{wrap(&StatusError{Code: 503}), true},
		{wrap(&StatusError{Code: 504}), true},
		{wrap(&StatusError{Code: 505}), false},
		{wrap(ErrTimeout), true},
		{wrap(ErrTruncated), true},
		{wrap(io.ErrUnexpectedEOF), true},
		{wrap(&net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}), true},
		{wrap(&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}), true},
		{wrap(syscall.EPIPE), true},
		{wrap(&net.DNSError{Err: "timeout", IsTimeout: true}), true},
		{wrap(&net.DNSError{Err: "no such host", IsNotFound: true}), false},
		{wrap(&url.Error{Op: "Get", URL: "u", Err: os.ErrDeadlineExceeded}), true},
		{wrap(ErrInsecure), false},
		{wrap(ErrTLS), false},
		{wrap(fmt.Errorf("%w: %w", ErrTLS, syscall.ECONNRESET)), false},
		{wrap(ErrTooLarge), false},
		{wrap(ErrRange), false},
		{wrap(ErrRedirect), false},
		{errBadURL, false},
		{wrap(context.Canceled), false},
		{wrap(context.DeadlineExceeded), false},
		{fmt.Errorf("retry: %w; last error: %w", context.Canceled, ErrTimeout), false},
		{wrap(&writeError{syscall.ENOSPC}), false},
		{wrap(&writeError{syscall.EPIPE}), false},
		{errors.New("something else"), false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.err), func(t *testing.T) {
			if got := Retryable(tt.err); got != tt.want {
				t.Errorf("Retryable(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
