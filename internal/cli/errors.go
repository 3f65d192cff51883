package cli

import (
	"errors"
)

// Error classes the command line maps to exit codes (cmd/vmtrust).
var (
	// ErrUsage: the command line itself is wrong (exit 2).
	ErrUsage = errors.New("usage")
	// ErrInput: a file the user named is missing, unreadable or invalid (exit 3).
	ErrInput = errors.New("input")
)

type classed struct {
	class error
	err   error
}

func (c *classed) Error() string   { return c.err.Error() }
func (c *classed) Unwrap() []error { return []error{c.class, c.err} }

func usageErr(err error) error { return &classed{ErrUsage, err} }
func inputErr(err error) error { return &classed{ErrInput, err} }

// HintError carries a suggestion printed as "vmtrust: hint: ..." after the error.
type HintError struct {
	Err  error
	Hint string
}

func (h *HintError) Error() string { return h.Err.Error() }
func (h *HintError) Unwrap() error { return h.Err }

func withHint(err error, hint string) error { return &HintError{Err: err, Hint: hint} }
