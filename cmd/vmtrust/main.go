// Command vmtrust lets a computing site run virtual machines it did not
// build, safely. All work is in the packages under internal/ and imagelist/;
// main builds the command, runs it, and maps its error to an exit code.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/vmtrust/vmtrust/internal/cli"
	"github.com/vmtrust/vmtrust/internal/endorse"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	g := &cli.Globals{Stdin: stdin, Stdout: stdout, Stderr: stderr}
	err := cli.Run(ctx, g, args)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "vmtrust: error: %s\n", cli.Clean(err.Error(), true))
	var h *cli.HintError
	if errors.As(err, &h) {
		fmt.Fprintf(stderr, "vmtrust: hint: %s\n", cli.Clean(h.Hint, true))
	}
	return exitCode(err)
}

// Exit codes. Verification failures each have their own, so scripts can
// tell "expired" from "tampered" from "wrong endorser"; they are listed in
// 'vmtrust imagelist verify --help'.
const (
	exitOK        = 0
	exitInternal  = 1
	exitUsage     = 2
	exitInput     = 3
	exitPartial   = 4
	exitFindings  = 5 // inspect: findings at or above --fail-on
	exitDenied    = 6 // admit: the domain is refused
	exitTampered  = 7 // ledger: it does not verify
	exitCancelled = 130
)

var reasonCodes = map[endorse.Reason]int{
	endorse.ReasonMalformed:       10,
	endorse.ReasonUnsigned:        11,
	endorse.ReasonUnsupported:     12,
	endorse.ReasonTooLarge:        13,
	endorse.ReasonBadPKCS7:        14,
	endorse.ReasonTampered:        15,
	endorse.ReasonBadSignature:    16,
	endorse.ReasonSignerCount:     17,
	endorse.ReasonNoSignerCert:    18,
	endorse.ReasonCertAtSigning:   19,
	endorse.ReasonUntrusted:       20,
	endorse.ReasonCertExpired:     21,
	endorse.ReasonCertNotYetValid: 22,
	endorse.ReasonCRLMissing:      23,
	endorse.ReasonCRLInvalid:      24,
	endorse.ReasonRevoked:         25,
	endorse.ReasonNamespace:       26,
	endorse.ReasonInvalidJSON:     27,
	endorse.ReasonInvalidList:     28,
	endorse.ReasonDNMismatch:      29,
	endorse.ReasonCAMismatch:      30,
	endorse.ReasonListFuture:      31,
	endorse.ReasonListExpired:     32,
	endorse.ReasonPurpose:         33,
	endorse.ReasonUnauthorised:    34,
	endorse.ReasonIdentifier:      35,
}

// exitCode is the one place errors become exit codes.
func exitCode(err error) int {
	var rej *endorse.RejectedError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &rej):
		if c, ok := reasonCodes[rej.Reason]; ok {
			return c
		}
		return exitInternal
	case errors.Is(err, context.Canceled):
		return exitCancelled
	case errors.Is(err, cli.ErrUsage), isCobraUsage(err):
		return exitUsage
	case errors.Is(err, cli.ErrInput):
		return exitInput
	case errors.Is(err, cli.ErrPartial):
		return exitPartial
	case errors.Is(err, cli.ErrFindings):
		return exitFindings
	case errors.Is(err, cli.ErrDenied):
		return exitDenied
	case errors.Is(err, cli.ErrTampered):
		return exitTampered
	}
	return exitInternal
}
