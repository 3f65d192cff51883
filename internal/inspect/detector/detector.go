// Package detector finds breaches of the endorsement policy in a guest's
// filesystem read from a disk image: accounts with passwords, SSH keys,
// private keys and certificates, credential files and shell histories,
// risky sshd settings, setuid and world-writable files, logging that is
// prevented or not forwarded, an end-of-life release.
//
// Default lists the detectors (an explicit list, fresh values on every
// call) and Run drives them with one walk of the guest; see package
// engine for the guarantees Run gives and the contract a detector
// implements. The rules themselves live in the subpackages accounts,
// sshkeys, keyfile, credfile, history, sshd, perms, logging and eolos.
package detector

import (
	"context"
	"time"

	"github.com/vmtrust/vmtrust/internal/inspect/detector/accounts"
	"github.com/vmtrust/vmtrust/internal/inspect/detector/credfile"
	"github.com/vmtrust/vmtrust/internal/inspect/detector/engine"
	"github.com/vmtrust/vmtrust/internal/inspect/detector/eolos"
	"github.com/vmtrust/vmtrust/internal/inspect/detector/history"
	"github.com/vmtrust/vmtrust/internal/inspect/detector/keyfile"
	"github.com/vmtrust/vmtrust/internal/inspect/detector/logging"
	"github.com/vmtrust/vmtrust/internal/inspect/detector/perms"
	"github.com/vmtrust/vmtrust/internal/inspect/detector/sshd"
	"github.com/vmtrust/vmtrust/internal/inspect/detector/sshkeys"
	"github.com/vmtrust/vmtrust/internal/inspect/eol"
	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
)

// The contract, from package engine.
type (
	Env          = engine.Env
	Detector     = engine.Detector
	FileScanner  = engine.FileScanner
	FileDetector = engine.FileDetector
	TreeDetector = engine.TreeDetector
	Collector    = engine.Collector
	Collection   = engine.Collection
	RunOptions   = engine.RunOptions
)

// RuleInspectionFailed is the rule of findings reporting a check that
// could not be completed.
const RuleInspectionFailed = engine.RuleInspectionFailed

// Run inspects the guest in env with the detectors ds (see engine.Run).
func Run(ctx context.Context, env *Env, ds []Detector, opts RunOptions) ([]inventory.Finding, error) {
	return engine.Run(ctx, env, ds, opts)
}

// Default returns the detectors that need nothing but the guest. The
// end-of-life check is not among them (it needs data and a clock): see
// All, or eolos.Check for a caller that looks the release up itself.
func Default() []Detector {
	return []Detector{
		accounts.New(),
		sshkeys.New(),
		keyfile.New(),
		credfile.New(),
		history.New(),
		sshd.New(),
		perms.New(),
		logging.New(),
	}
}

// All returns Default and the end-of-life check, which judges support at
// the time at with the distro-info data (eol.LoadDistroInfo; nil leaves
// Debian and Ubuntu unknown).
func All(data *eol.Data, at time.Time) []Detector {
	return append(Default(), eolos.New(data, at))
}
