// Package engine is the contract endorsement-policy detectors implement
// (Env, FileDetector, TreeDetector, Collector, the policy clauses, bounded
// read helpers) and Run, which drives them over a guest. Package detector
// re-exports it and lists the detectors; the detectors import this
// package, not that one, so that the list can name them.
//
// # Guarantees
//
// Run walks the guest filesystem once (fsys.Root.Walk, which never follows
// links), offering each file to every FileDetector and Collector that
// wants it, then runs every TreeDetector, which reads the few files it
// needs by path through the same confined fsys.Root. Nothing outside the
// guest is read and nothing is written. The contents of /proc, /sys, /dev
// and /run are not walked. Detectors bound every read and every parser is
// strict: a hostile image can make a check fail, but not crash, hang or
// exhaust the process.
//
// A check that fails — an unreadable or malformed file, a damaged
// directory, even a panic in a detector — does not end the run: it
// becomes a finding of rule RuleInspectionFailed at High severity, since a
// check that did not run cannot vouch for the image. Run returns an error
// only when ctx ends or the Env is unusable. No rule lists more than
// RunOptions.MaxPerRule findings; the rest are counted in one more.
//
// Findings name the guest path and the policy clause, and never quote a
// secret: a Reason says what kind of secret was found and where, never
// its value. Run's result is sorted (severity descending, then path, rule
// and reason) and free of duplicates, so that two runs over the same image
// give the same findings.
package engine

import (
	"context"

	"github.com/vmtrust/vmtrust/internal/fsys"
	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
)

// The endorsement-policy clauses findings map to.
const (
	PolicyNoAccounts     = "no accounts"
	PolicyNoSSHKeys      = "no SSH keys"
	PolicyNoCertificates = "no host or service certificates"
	PolicyNoCredentials  = "no credentials of any form"
	PolicyLogging        = "logging not prevented"
	PolicyPatches        = "all security patches applied"
	PolicySetuid         = "no setuid files outside packages"
	PolicyWorldWritable  = "system files not world-writable"
)

// RuleInspectionFailed is the rule of findings that report a check which
// could not be completed.
const RuleInspectionFailed = "inspection-failed"

// Env is what detectors may know about the guest.
type Env struct {
	// Root reads the guest filesystem, confined to it.
	Root *fsys.Root
	// OS is the guest's os-release.
	OS inventory.OS
	// Owner names the package that installed a path, from the dpkg, rpm
	// or apk database; nil when unknown.
	Owner func(path string) (pkg string, ok bool)
}

// Owned reports the package owning path; false when none does or when
// ownership is unknown (see OwnerKnown).
func (e *Env) Owned(path string) (string, bool) {
	if e == nil || e.Owner == nil {
		return "", false
	}
	return e.Owner(path)
}

// OwnerKnown reports whether package ownership of files is known.
func (e *Env) OwnerKnown() bool { return e != nil && e.Owner != nil }

// Detector is a named check. Names are stable, lowercase words joined by
// hyphens; they appear in inspection-failed findings.
type Detector interface {
	Name() string
}

// FileScanner looks at files met by the walk.
type FileScanner interface {
	// Wants is a cheap test on the path and inode (no reads): does File
	// need to see this file? It is called for every walked name,
	// directories and links included.
	Wants(path string, info fsys.Info) bool
	// File examines one wanted file. path is the walked path; info is
	// the walked inode as Lstat sees it (links are not followed).
	File(ctx context.Context, env *Env, path string, info fsys.Info) ([]inventory.Finding, error)
}

// FileDetector is a Detector that needs nothing but the files it wants.
// It must be stateless: one value may serve concurrent runs.
type FileDetector interface {
	Detector
	FileScanner
}

// TreeDetector makes targeted reads through env.Root after the walk
// (passwd and shadow, sshd_config, logging configuration).
type TreeDetector interface {
	Detector
	Detect(ctx context.Context, env *Env) ([]inventory.Finding, error)
}

// Collector is a Detector that relates files met during the walk to one
// another (a certificate and the private key beside it). Run calls Begin
// once per run and feeds the Collection the files it wants; Finish then
// reports. The Collector itself stays stateless, so one value can serve
// concurrent runs.
type Collector interface {
	Detector
	Begin(env *Env) Collection
}

// Collection is the state of one Collector during one run.
type Collection interface {
	FileScanner
	Finish(ctx context.Context, env *Env) ([]inventory.Finding, error)
}
