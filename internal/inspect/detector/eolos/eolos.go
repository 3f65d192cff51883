// Package eolos turns the support status of the guest's release (package
// eol) into a finding of rule eol-os, for the policy clause "all security
// patches applied": high when security support has ended, medium when it
// ends within Warning (90 days), info with the end date otherwise, low
// when the status is unknown.
//
// The detector reads nothing from the guest beyond Env.OS; the
// distro-info data and the time of the inspection are given to New, so
// that results are reproducible.
package eolos

import (
	"context"
	"fmt"
	"time"

	"github.com/vmtrust/vmtrust/internal/inspect/detector/engine"
	"github.com/vmtrust/vmtrust/internal/inspect/eol"
	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
)

// Name is the detector's name and Rule the rule of its findings.
const (
	Name = "end-of-life"
	Rule = "eol-os"
)

// Warning is how close an end of support must be to raise the severity
// to medium.
const Warning = 90 * 24 * time.Hour

// Detector is the end-of-life TreeDetector.
type Detector struct {
	data *eol.Data
	at   time.Time
}

var _ engine.TreeDetector = Detector{}

// New returns the detector, judging support at the time at with the
// distro-info data (nil: Debian and Ubuntu are unknown).
func New(data *eol.Data, at time.Time) Detector { return Detector{data: data, at: at} }

func (Detector) Name() string { return Name }

func (d Detector) Detect(ctx context.Context, env *engine.Env) ([]inventory.Finding, error) {
	return []inventory.Finding{Check(eol.Lookup(env.OS, d.at, d.data), env.OS, d.at)}, nil
}

// Check turns a support status into a finding.
func Check(e inventory.EndOfLife, os inventory.OS, at time.Time) inventory.Finding {
	f := inventory.Finding{Rule: Rule, Path: os.Source, Policy: engine.PolicyPatches}
	if f.Path == "" {
		f.Path = "/etc/os-release"
	}
	day := func(t time.Time) string { return t.UTC().Format(time.DateOnly) }
	switch {
	case !e.Known:
		f.Severity = inventory.Low
		f.Reason = "support status of the release unknown: " + e.Source
	case e.EOL:
		f.Severity = inventory.High
		f.Reason = fmt.Sprintf("%s reached the end of its security support on %s (%s)", e.Release, day(e.Date), e.Source)
	case e.Date.IsZero():
		f.Severity = inventory.Info
		f.Reason = fmt.Sprintf("%s is supported; no end of support announced (%s)", e.Release, e.Source)
	case e.Date.Sub(at) <= Warning:
		f.Severity = inventory.Medium
		f.Reason = fmt.Sprintf("%s security support ends on %s, in %d days (%s)", e.Release, day(e.Date), int(e.Date.Sub(at).Hours()/24), e.Source)
	default:
		f.Severity = inventory.Info
		f.Reason = fmt.Sprintf("%s is supported until %s (%s)", e.Release, day(e.Date), e.Source)
	}
	return f
}
