package fetch

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Backoff retries an operation with exponential backoff and jitter. The
// zero value retries without waiting.
type Backoff struct {
	// Base is the nominal delay before the second attempt; it doubles for
	// each further attempt, up to Max.
	Base time.Duration
	// Max caps a delay, Retry-After included; 0 means 32×Base.
	Max time.Duration
	// Sleep waits for d or until ctx is done, returning ctx.Err() then.
	// nil: a timer.
	Sleep func(ctx context.Context, d time.Duration) error
	// Rand returns a uniform value in [0, n); nil: math/rand/v2.
	Rand func(n int64) int64
}

// Retry calls f up to attempts times (at least once) with
// Backoff{Base: base}, while f fails with a Retryable error.
func Retry(ctx context.Context, attempts int, base time.Duration, f func() error) error {
	return Backoff{Base: base}.Retry(ctx, attempts, f)
}

// Retry calls f until it succeeds, fails with an error that is not
// Retryable, or has been called attempts times (at least once); it returns
// f's last error. The delay before attempt k+1 (k ≥ 1) is drawn uniformly
// from [d/2, d], d = min(Base·2^(k-1), Max), and is at least the server's
// Retry-After (capped at Max). When ctx ends first, the error wraps both
// ctx.Err() and f's last error, and is not Retryable.
func (b Backoff) Retry(ctx context.Context, attempts int, f func() error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("retry: %w", err)
	}
	for k := 1; ; k++ {
		ferr := f()
		if ferr == nil || k >= attempts || !Retryable(ferr) {
			return ferr
		}
		serr := b.sleep(ctx, b.delay(k, ferr))
		if serr == nil {
			serr = ctx.Err()
		}
		if serr != nil {
			return fmt.Errorf("retry: %w; last error: %w", serr, ferr)
		}
	}
}

// delay is the wait after the k-th failed attempt (k ≥ 1), which failed
// with err.
func (b Backoff) delay(k int, err error) time.Duration {
	if b.Base <= 0 {
		return 0
	}
	ceil := b.Max
	if ceil <= 0 {
		ceil = time.Duration(math.MaxInt64)
		if b.Base <= ceil/32 {
			ceil = 32 * b.Base
		}
	}
	d := min(b.Base, ceil)
	for i := 1; i < k && d < ceil; i++ {
		if d > ceil/2 {
			d = ceil
			break
		}
		d *= 2
	}
	half := d / 2
	rnd := b.Rand
	if rnd == nil {
		rnd = rand.Int64N
	}
	d = half + time.Duration(rnd(int64(d-half)+1))
	var se *StatusError
	if errors.As(err, &se) && se.RetryAfter > d {
		d = min(se.RetryAfter, ceil)
	}
	return d
}

func (b Backoff) sleep(ctx context.Context, d time.Duration) error {
	if b.Sleep != nil {
		return b.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
