// Package inspect reads a virtual disk image offline — no boot, no mount,
// no root needed — and reports what is inside it: the operating system,
// kernels, packages (dpkg, rpm, apk), findings against the endorsement
// policy, end of life and known vulnerabilities.
//
// Guarantees: the image is opened read-only through package disk (backing
// files only inside the directories the caller allows); the guest
// filesystem is read through package fsys, so no guest path or symbolic
// link ever reaches the host's files; every stage is bounded in memory by
// its parser's limits and the fixed-size cluster caches; the report's
// slices are sorted, so the same image gives the same report. An error
// means no report: a partial inventory is never presented as complete.
package inspect

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/vmtrust/vmtrust/internal/disk"
	"github.com/vmtrust/vmtrust/internal/fsys"
	"github.com/vmtrust/vmtrust/internal/fsys/ext4"
	"github.com/vmtrust/vmtrust/internal/fsys/xfs"
	"github.com/vmtrust/vmtrust/internal/inspect/detector"
	"github.com/vmtrust/vmtrust/internal/inspect/detector/eolos"
	"github.com/vmtrust/vmtrust/internal/inspect/eol"
	"github.com/vmtrust/vmtrust/internal/inspect/extractor"
	"github.com/vmtrust/vmtrust/internal/inspect/extractor/apk"
	"github.com/vmtrust/vmtrust/internal/inspect/extractor/dpkg"
	"github.com/vmtrust/vmtrust/internal/inspect/extractor/kernel"
	"github.com/vmtrust/vmtrust/internal/inspect/extractor/osrelease"
	"github.com/vmtrust/vmtrust/internal/inspect/extractor/rpm"
	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
	"github.com/vmtrust/vmtrust/internal/partition"
	"github.com/vmtrust/vmtrust/internal/partition/lvm"
	"github.com/vmtrust/vmtrust/internal/vulndb"
)

// VulnMatcher finds the known vulnerabilities of installed packages
// (implemented by vulndb.DB).
type VulnMatcher interface {
	Match(ctx context.Context, os inventory.OS, pkgs []inventory.Package) ([]inventory.Vulnerability, error)
	// Source describes the data Match uses for this guest.
	Source(ctx context.Context, os inventory.OS) (vulndb.EcosystemStatus, error)
}

// Options configure one inspection. The zero value inspects with the
// default detectors, no backing files, no end-of-life and no
// vulnerability data.
type Options struct {
	// BackingDirs are the directories a qcow2 backing file may resolve
	// into. None by default: an image with a backing file is refused.
	BackingDirs []string
	// CacheBytes bounds the decoded-cluster cache (0: the disk package's
	// default).
	CacheBytes int64
	// Detectors run against the guest; nil means detector.Default().
	Detectors []detector.Detector
	// EOL is the end-of-life data; nil reports the release's status as
	// unknown.
	EOL *eol.Data
	// Vulns matches packages to vulnerabilities; nil skips matching.
	Vulns VulnMatcher
	// TempDir receives short-lived private copies of databases that a
	// library can only open by path (rpmdb); "" means os.TempDir().
	TempDir string
	// Now is the clock (end of life, report time); nil means time.Now.
	Now func() time.Time
	Log *slog.Logger
}

// Inspect reads the image at path and returns its report.
func Inspect(ctx context.Context, imagePath string, opts Options) (*inventory.Report, error) {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st, err := os.Stat(imagePath)
	if err != nil {
		return nil, err
	}
	stats := new(disk.Stats)
	img, err := disk.Open(imagePath, disk.Options{BackingDirs: opts.BackingDirs, CacheBytes: opts.CacheBytes, Stats: stats})
	if err != nil {
		return nil, err
	}
	defer img.Close()

	rep := &inventory.Report{
		Image: inventory.Image{
			Path:        imagePath,
			Format:      img.Format(),
			VirtualSize: img.Size(),
			FileSize:    st.Size(),
		},
		InspectedAt: now().UTC(),
	}
	g, err := openGuest(ctx, img, rep, log)
	if err != nil {
		return nil, err
	}
	if err := inventoryOf(ctx, g, rep, opts); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	env := &detector.Env{Root: g.root, OS: rep.OS, Owner: g.owner}
	ds := opts.Detectors
	if ds == nil {
		ds = detector.Default()
	}
	findings, err := detector.Run(ctx, env, ds, detector.RunOptions{})
	if err != nil {
		return nil, fmt.Errorf("findings: %w", err)
	}
	rep.EndOfLife = eol.Lookup(rep.OS, now(), opts.EOL)
	findings = append(findings, eolos.Check(rep.EndOfLife, rep.OS, now()))
	findings = append(findings, g.layout...)
	rep.Findings = sortFindings(findings)
	if err := vulnerabilities(ctx, rep, opts.Vulns, now()); err != nil {
		return nil, err
	}
	rep.Image.BytesRead = stats.BytesRead()
	return rep, nil
}

// vulnerabilities matches the packages against the offline data. A guest
// whose ecosystem the data does not cover is reported as not checked, with
// a finding that says so; it is never reported as free of
// vulnerabilities.
func vulnerabilities(ctx context.Context, rep *inventory.Report, m VulnMatcher, now time.Time) error {
	rep.Vulnerabilities = []inventory.Vulnerability{}
	if m == nil {
		return nil
	}
	if len(rep.Packages) == 0 {
		notChecked(rep, "no package database found in the image")
		return nil
	}
	src, err := m.Source(ctx, rep.OS)
	if err == nil {
		var vs []inventory.Vulnerability
		vs, err = m.Match(ctx, rep.OS, rep.Packages)
		if err == nil {
			rep.Vulnerabilities = vs
			rep.VulnDB = src.Describe(now)
			return nil
		}
	}
	if !errors.Is(err, vulndb.ErrUnsupportedOS) && !errors.Is(err, vulndb.ErrNotImported) {
		return fmt.Errorf("vulnerabilities: %w", err)
	}
	notChecked(rep, err.Error())
	return nil
}

func notChecked(rep *inventory.Report, why string) {
	rep.VulnDB = "not checked: " + why
	rep.Findings = sortFindings(append(rep.Findings, inventory.Finding{Rule: "vulns-not-checked", Severity: inventory.Low,
		Path: rep.OS.Source, Reason: "known vulnerabilities were not checked: " + why,
		Policy: "all security patches applied"}))
}

// guest is the opened root filesystem of the image, with any separate
// /boot filesystem.
type guest struct {
	root  *fsys.Root
	boot  *fsys.Root // a separate /boot partition, or nil
	owner func(string) (string, bool)
	// findings about the disk layout itself: what could not be read, and
	// more than one operating system root.
	layout []inventory.Finding
}

type candidate struct {
	part inventory.Partition
	fs   fsys.FS
}

// openGuest reads the partition table and opens every filesystem it
// recognises, then picks the guest's root.
func openGuest(ctx context.Context, img disk.Image, rep *inventory.Report, log *slog.Logger) (*guest, error) {
	tbl, err := partition.Read(img, img.Size())
	if err != nil {
		return nil, fmt.Errorf("partition table: %w", err)
	}
	rep.Image.Scheme = tbl.Scheme
	var sections []inventory.Partition
	if tbl.Scheme == "none" || len(tbl.Partitions) == 0 {
		sections = append(sections, inventory.Partition{Index: 0, Start: 0, Size: img.Size()})
	}
	for _, p := range tbl.Partitions {
		if p.IsExtended() {
			continue // its logical partitions are listed on their own
		}
		sections = append(sections, inventory.Partition{Index: p.Index, Start: p.Start, Size: p.Size, Type: p.TypeName})
	}
	var cands []candidate
	var unreadable []inventory.Finding
	for i := range sections {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p := &sections[i]
		sec := io.NewSectionReader(img, p.Start, p.Size)
		f, err := openFS(sec, p.Size)
		if err != nil {
			// A filesystem we recognise but cannot read is an error: the
			// guest's root may be on it.
			return nil, fmt.Errorf("partition %d: %w", p.Index, err)
		}
		if f != nil {
			p.Filesystem = f.Type()
			cands = append(cands, candidate{part: *p, fs: f})
			continue
		}
		// An LVM2 physical volume: its linear logical volumes.
		vg, err := lvm.Read(sec, p.Size)
		if errors.Is(err, lvm.ErrNoLabel) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("partition %d: %w", p.Index, err)
		}
		p.Filesystem = "lvm2 (" + vg.Name + ")"
		for _, v := range vg.Volumes {
			lv, err := vg.Open(v.Name)
			if err != nil {
				// The guest's root may be on it: say so, never skip silently.
				unreadable = append(unreadable, inventory.Finding{Rule: "inspection-failed", Severity: inventory.Medium,
					Path: "/", Reason: fmt.Sprintf("logical volume %s/%s not inspected: %v", vg.Name, v.Name, err),
					Policy: "inspection complete"})
				log.Warn("logical volume not read", "vg", vg.Name, "lv", v.Name, "err", err)
				continue
			}
			f, err := openFS(lv, lv.Size())
			if err != nil {
				return nil, fmt.Errorf("logical volume %s/%s: %w", vg.Name, v.Name, err)
			}
			if f != nil {
				lp := inventory.Partition{Index: p.Index, Start: p.Start, Size: lv.Size(), Type: "LVM " + vg.Name + "/" + v.Name, Filesystem: f.Type()}
				cands = append(cands, candidate{part: lp, fs: f})
			}
		}
	}
	g := &guest{layout: unreadable}
	best, bestScore := -1, 0
	var roots []string
	for i, c := range cands {
		s := rootScore(fsys.NewRoot(c.fs))
		if s > 0 {
			roots = append(roots, fmt.Sprintf("partition %d (%s, %s)", c.part.Index, c.part.Type, c.part.Filesystem))
		}
		if s > bestScore {
			best, bestScore = i, s
		}
	}
	if len(roots) > 1 {
		// Only one is inspected; a clean decoy beside the root the boot
		// loader really uses would hide the other's findings.
		g.layout = append(g.layout, inventory.Finding{Rule: "multiple-os-roots", Severity: inventory.High, Path: "/",
			Reason: fmt.Sprintf("%d filesystems look like an operating system root (%s); only the first best match was inspected",
				len(roots), strings.Join(roots, "; ")),
			Policy: "inspection complete"})
	}
	if best < 0 {
		rep.Image.Partitions = sections
		return nil, fmt.Errorf("no operating system found: %s", describeSections(sections))
	}
	g.root = fsys.NewRoot(cands[best].fs)
	rootPart := cands[best].part
	rootPart.Root = true
	placed := false
	for i := range sections {
		if sections[i].Index == rootPart.Index && sections[i].Filesystem == rootPart.Filesystem {
			sections[i].Root, placed = true, true
		}
	}
	if !placed { // a logical volume: listed after its physical volume
		sections = append(sections, rootPart)
	}
	for i, c := range cands {
		if i == best {
			continue
		}
		r := fsys.NewRoot(c.fs)
		ms, err := r.Glob("/vmlinuz-*")
		if err != nil {
			return nil, fmt.Errorf("partition %d: %w", c.part.Index, err)
		}
		if len(ms) > 0 && g.boot == nil {
			g.boot = r
			log.Debug("separate /boot", "partition", c.part.Index)
		}
	}
	rep.Image.Partitions = sections
	return g, nil
}

// openFS opens the filesystem on r when it is one vmtrust reads; nil, nil
// when it is none of them.
func openFS(r io.ReaderAt, size int64) (fsys.FS, error) {
	switch {
	case ext4.Probe(r):
		return ext4.Open(r, size)
	case xfs.Probe(r):
		return xfs.Open(r, size)
	}
	return nil, nil
}

// rootScore says how much a filesystem looks like an operating system's
// root: 0 for not at all.
func rootScore(r *fsys.Root) int {
	score := 0
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release", "/etc/passwd"} {
		if _, err := r.Stat(p); err == nil {
			score += 2
		}
	}
	for _, p := range []string{"/var/lib/dpkg/status", "/var/lib/rpm", "/usr/lib/sysimage/rpm", "/lib/apk/db/installed", "/usr", "/etc"} {
		if _, err := r.Stat(p); err == nil {
			score++
		}
	}
	if score < 3 {
		return 0
	}
	return score
}

func describeSections(ss []inventory.Partition) string {
	var b strings.Builder
	for i, s := range ss {
		if i > 0 {
			b.WriteString("; ")
		}
		fsName := s.Filesystem
		if fsName == "" {
			fsName = "no filesystem vmtrust reads"
		}
		if s.Index == 0 {
			fmt.Fprintf(&b, "whole disk (%d bytes): %s", s.Size, fsName)
		} else {
			fmt.Fprintf(&b, "partition %d (%s, %d bytes): %s", s.Index, s.Type, s.Size, fsName)
		}
	}
	return b.String()
}

// inventoryOf fills in the OS, kernels and packages.
func inventoryOf(ctx context.Context, g *guest, rep *inventory.Report, opts Options) error {
	osr, err := osrelease.Detect(g.root)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("os-release: %w", err)
	}
	rep.OS = osr
	ks, err := kernel.Find(g.root)
	if err != nil {
		return fmt.Errorf("kernels: %w", err)
	}
	if g.boot != nil {
		names, err := g.boot.Glob("/vmlinuz-*")
		if err != nil {
			return fmt.Errorf("kernels on /boot: %w", err)
		}
		for _, n := range names {
			ks = append(ks, inventory.Kernel{Version: strings.TrimPrefix(path.Base(n), "vmlinuz-"), Path: "/boot" + n})
		}
		ks = dedupKernels(ks)
	}
	if ks == nil {
		ks = []inventory.Kernel{}
	}
	rep.Kernels = ks

	var owners []func(string) (string, bool)
	var pkgs []inventory.Package
	// Each package manager's extractor says fs.ErrNotExist when the guest
	// has no database of its kind; any other error fails the inspection:
	// an inventory that silently lacks a database would look clean.
	extractors := []struct {
		name string
		run  func() (*extractor.Result, error)
	}{
		{"dpkg", func() (*extractor.Result, error) { return dpkg.Extract(ctx, g.root) }},
		{"rpm", func() (*extractor.Result, error) { return rpm.Extract(ctx, g.root, opts.TempDir) }},
		{"apk", func() (*extractor.Result, error) { return apk.Extract(ctx, g.root) }},
	}
	for _, e := range extractors {
		res, err := e.run()
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: %w", e.name, err)
		}
		if res != nil {
			pkgs = append(pkgs, res.Packages...)
			owners = append(owners, res.Owner)
		}
	}
	sort.SliceStable(pkgs, func(i, j int) bool {
		if pkgs[i].Name != pkgs[j].Name {
			return pkgs[i].Name < pkgs[j].Name
		}
		if pkgs[i].Arch != pkgs[j].Arch {
			return pkgs[i].Arch < pkgs[j].Arch
		}
		return pkgs[i].Manager < pkgs[j].Manager
	})
	if pkgs == nil {
		pkgs = []inventory.Package{}
	}
	rep.Packages = pkgs
	for _, p := range pkgs {
		if p.InstallTime.After(rep.BuildTime) {
			rep.BuildTime = p.InstallTime.UTC()
		}
	}
	if len(owners) > 0 {
		g.owner = func(p string) (string, bool) {
			for _, o := range owners {
				if o == nil {
					continue
				}
				if name, ok := o(p); ok {
					return name, true
				}
			}
			return "", false
		}
	}
	return nil
}

func dedupKernels(ks []inventory.Kernel) []inventory.Kernel {
	seen := map[string]bool{}
	out := ks[:0]
	for _, k := range ks {
		if seen[k.Version] {
			continue
		}
		seen[k.Version] = true
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out
}

// sortFindings orders findings by severity (highest first), path, rule.
func sortFindings(fs []inventory.Finding) []inventory.Finding {
	if fs == nil {
		return []inventory.Finding{}
	}
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if a.Severity != b.Severity {
			return a.Severity > b.Severity
		}
		if a.Path != b.Path {
			return a.Path < b.Path
		}
		return a.Rule < b.Rule
	})
	return fs
}
