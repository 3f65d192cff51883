//go:build !linux

package hooks

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// run is Linux-only: the process-group handling relies on waitid(WNOWAIT).
func run(_ context.Context, _, _ []string, _ []byte, _ time.Duration) result {
	return result{err: fmt.Errorf("%w: %v", ErrStart, errors.New("hooks run only on Linux"))}
}
