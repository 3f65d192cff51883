// Package dpkg reads the packages a Debian-family guest has installed from
// its dpkg database, without running dpkg: /var/lib/dpkg/status (or, in
// distroless images, the stanzas in /var/lib/dpkg/status.d/), the file
// lists /var/lib/dpkg/info/<package>[:<arch>].list and
// /var/lib/dpkg/diversions.
//
// Guarantees: the guest is read through fsys.Root only (links confined to
// the guest); every file is bounded (MaxStatusSize, MaxListSize, MaxFiles)
// and parsed strictly (ParseStatus, ParseList, ParseDiversions), so a
// hostile database gives an error, never a crash or unbounded memory. The
// packages returned are those `dpkg-query -W` lists: every stanza whose
// state is not not-installed. A package's InstallTime is the modification
// time of its .list file, which dpkg rewrites when it unpacks the package
// (zero when there is none, as in distroless images). Ownership is where
// dpkg put each file: a path a package lists but another package (or the
// administrator) diverted belongs, under its diverted name, to the listing
// package; paths reached through a directory link (/bin -> usr/bin) are
// owned too.
package dpkg

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/vmtrust/vmtrust/internal/fsys"
	"github.com/vmtrust/vmtrust/internal/inspect/extractor"
	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
)

// Manager is the inventory.Package Manager value of dpkg packages.
const Manager = "dpkg"

// Result is the packages and file ownership found.
type Result = extractor.Result

const (
	statusPath     = "/var/lib/dpkg/status"
	statusDir      = "/var/lib/dpkg/status.d"
	infoDir        = "/var/lib/dpkg/info"
	diversionsPath = "/var/lib/dpkg/diversions"
)

// Extract reads the dpkg database of the guest. It returns an error
// wrapping fs.ErrNotExist when the guest has neither a status file nor a
// status.d directory.
func Extract(ctx context.Context, r *fsys.Root) (*Result, error) {
	entries, err := readStatus(ctx, r)
	if err != nil {
		return nil, err
	}
	div, err := readDiversions(r)
	if err != nil {
		return nil, err
	}
	owners := extractor.NewOwners(MaxFiles)
	var pkgs []inventory.Package
	lines := 0
	for _, e := range entries {
		if !e.Listed() {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		mtime, n, err := readList(r, e, owners, div, lines)
		if err != nil {
			return nil, err
		}
		lines += n
		pkgs = append(pkgs, inventory.Package{
			Name:          e.Package,
			Version:       e.Version,
			Arch:          e.Arch,
			SourceName:    e.SourceName,
			SourceVersion: e.SourceVersion,
			Manager:       Manager,
			InstallTime:   mtime,
		})
	}
	if err := owners.AddAliases(r); err != nil {
		return nil, fmt.Errorf("dpkg: %w", err)
	}
	return extractor.NewResult(pkgs, owners), nil
}

// readStatus parses /var/lib/dpkg/status, or the files of status.d when
// there is no status file. In status.d, files whose name contains a dot
// (the .md5sums files distroless keeps beside each stanza) are skipped.
func readStatus(ctx context.Context, r *fsys.Root) ([]Entry, error) {
	b, err := r.ReadFile(statusPath, MaxStatusSize)
	if err == nil {
		return ParseStatus(b)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("dpkg: %w", err)
	}
	ents, derr := r.ReadDir(statusDir)
	if errors.Is(derr, fs.ErrNotExist) {
		return nil, fmt.Errorf("dpkg: no database: %w", err)
	}
	if derr != nil {
		return nil, fmt.Errorf("dpkg: %w", derr)
	}
	if len(ents) > MaxStanzas {
		return nil, fmt.Errorf("dpkg: %s: more than %d files", statusDir, MaxStanzas)
	}
	p := statusParser{seen: make(map[string]bool)}
	for _, e := range ents {
		if strings.Contains(e.Name, ".") {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		name := statusDir + "/" + e.Name
		info, err := r.Lstat(name)
		if err != nil {
			return nil, fmt.Errorf("dpkg: %w", err)
		}
		if !info.Mode.IsRegular() {
			continue
		}
		b, err := r.ReadFile(name, int64(MaxStatusSize-p.bytes))
		if err != nil {
			return nil, fmt.Errorf("dpkg: %w", err)
		}
		if err := p.parse(b); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	return p.out, nil
}

// readDiversions parses /var/lib/dpkg/diversions; none when it is absent.
func readDiversions(r *fsys.Root) (map[string]Diversion, error) {
	b, err := r.ReadFile(diversionsPath, MaxListSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dpkg: %w", err)
	}
	return ParseDiversions(b)
}

// readList records the paths in e's .list file as owned by e, applying
// diversions, and returns the file's modification time and line count.
// The arch-qualified name (Multi-Arch: same packages) is tried first. A
// package without a list file owns nothing.
func readList(r *fsys.Root, e Entry, owners *extractor.Owners, div map[string]Diversion, linesSoFar int) (time.Time, int, error) {
	var names []string
	if e.Arch != "" {
		names = append(names, infoDir+"/"+e.Package+":"+e.Arch+".list")
	}
	names = append(names, infoDir+"/"+e.Package+".list")
	for _, name := range names {
		ra, info, err := r.Open(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return time.Time{}, 0, fmt.Errorf("dpkg: %w", err)
		}
		if info.Size > MaxListSize {
			return time.Time{}, 0, fmt.Errorf("dpkg: %s: %d bytes, limit %d", name, info.Size, MaxListSize)
		}
		b := make([]byte, info.Size)
		if n, err := ra.ReadAt(b, 0); n < len(b) {
			return time.Time{}, 0, fmt.Errorf("dpkg: %s: short read: %v", name, err)
		}
		paths, err := ParseList(b, MaxFiles-linesSoFar)
		if err != nil {
			return time.Time{}, 0, fmt.Errorf("dpkg: %s: %w", name, err)
		}
		for _, p := range paths {
			if d, ok := div[p]; ok && d.By != e.Package {
				p = d.To // the package's file lives under the diverted name
			}
			if err := owners.Add(p, e.Package); err != nil {
				return time.Time{}, 0, fmt.Errorf("dpkg: %s: %w", name, err)
			}
		}
		return info.Mtime, len(paths), nil
	}
	return time.Time{}, 0, nil
}
