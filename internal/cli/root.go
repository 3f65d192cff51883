// Package cli is vmtrust's command line: one file per command, each with a
// newXCmd constructor, an options struct and a runX function that tests can
// call without cobra. Commands write data to stdout (a table, or JSON with
// --json) and nothing else; diagnostics go to stderr through the injected
// logger. Errors are returned, never printed here: cmd/vmtrust maps them to
// exit codes in one place.
package cli

import (
	"context"
	"io"
	"log/slog"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Globals are the options every command shares, and the process's I/O.
type Globals struct {
	State  string // state directory
	Config string // configuration file
	Debug  bool

	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Log    *slog.Logger
}

// DefaultState is the state directory when neither --state nor
// $VMTRUST_STATE is given.
const DefaultState = "/var/lib/vmtrust"

// operatorCommands are the commands recorded in the ledger as operator
// actions.
var operatorCommands = map[string]bool{
	"vmtrust endorser add": true, "vmtrust endorser remove": true, "vmtrust subscribe": true, "vmtrust unsubscribe": true,
	"vmtrust user-images register": true, "vmtrust user-images remove": true, "vmtrust hook install": true,
	"vmtrust net apply": true, "vmtrust net remove": true, "vmtrust net quarantine": true, "vmtrust net release": true,
	"vmtrust net reconcile": true, "vmtrust ledger cosign": true,
}

// NewRoot builds the whole command tree around g.
func NewRoot(g *Globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "vmtrust",
		Short: "Run virtual machines you did not build, safely",
		Long: `vmtrust lets a computing site run virtual machine images built by others:
signed and expiring image endorsements (HEPiX image lists), and, as the
project grows, a verified image cache, offline inspection, admission at the
hypervisor, network containment and a tamper-evident audit ledger.

Data goes to stdout (add --json for machine-readable output); diagnostics go
to stderr, prefixed "vmtrust:".`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, args []string) {
			level := slog.LevelInfo
			if g.Debug {
				level = slog.LevelDebug
			}
			g.Log = slog.New(slog.NewTextHandler(g.Stderr, &slog.HandlerOptions{Level: level}))
		},
		// Every operator action that changes the site is an event in the
		// ledger (after it succeeded; a failure to record is a warning).
		PersistentPostRun: func(cmd *cobra.Command, args []string) {
			if !operatorCommands[cmd.CommandPath()] {
				return
			}
			line := append([]string{cmd.CommandPath()}, args...)
			cmd.Flags().Visit(func(f *pflag.Flag) { line = append(line, "--"+f.Name+"="+f.Value.String()) })
			operatorAction(cmd.Context(), g, "", line...)
		},
	}
	state := os.Getenv("VMTRUST_STATE")
	if state == "" {
		state = DefaultState
	}
	root.PersistentFlags().StringVar(&g.State, "state", state, "state directory (env VMTRUST_STATE)")
	root.PersistentFlags().StringVar(&g.Config, "config", "", "configuration file")
	root.PersistentFlags().BoolVar(&g.Debug, "debug", false, "log debugging detail to stderr")
	root.SetIn(g.Stdin)
	root.SetOut(g.Stdout)
	root.SetErr(g.Stderr)
	root.AddCommand(newImagelistCmd(g), newEndorserCmd(g), newSubscribeCmd(g), newUnsubscribeCmd(g),
		newSubscriptionsCmd(g), newUpdateCmd(g), newImagesCmd(g), newInspectCmd(g), newVulndbCmd(g), newAdmitCmd(g), newHookCmd(g), newUserImagesCmd(g), newNetCmd(g),
		newLedgerCmd(g), newWhoHadCmd(g), newTimelineCmd(g), newWitnessCmd(g))
	return root
}

// Run executes the command line args and returns the error of the command.
func Run(ctx context.Context, g *Globals, args []string) error {
	if g.Log == nil {
		g.Log = slog.New(slog.NewTextHandler(g.Stderr, nil))
	}
	root := NewRoot(g)
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

func newImagelistCmd(g *Globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "imagelist",
		Short: "Create, sign, verify and show HEPiX image lists (the endorser's side)",
		Long: `An image list is an endorser's signed, expiring statement of which disk
images it vouches for: identifier, size, sha512 and where to fetch each.
The format is HEPiX's (vmcaster, vmcatcher, cloudkeeper, the EGI AppDB):
JSON signed as S/MIME with a detached PKCS#7 signature.

A typical endorser session:

  vmtrust imagelist create --spec list.json --cert endorser.pem --version 1 -o list.json.new
  vmtrust imagelist sign --cert endorser.pem --key endorser.key -o list.signed list.json.new
  vmtrust imagelist verify --ca-dir /etc/grid-security/certificates list.signed`,
	}
	c.AddCommand(newCreateCmd(g), newSignCmd(g), newVerifyCmd(g), newShowCmd(g))
	return c
}
