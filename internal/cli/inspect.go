package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmtrust/vmtrust/internal/inspect"
	"github.com/vmtrust/vmtrust/internal/inspect/eol"
	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
	"github.com/vmtrust/vmtrust/internal/sarif"
	"github.com/vmtrust/vmtrust/internal/sbom"
	"github.com/vmtrust/vmtrust/internal/vulndb"
)

// ErrFindings: inspection found problems at or above --fail-on (exit 5).
var ErrFindings = errors.New("findings at or above the --fail-on severity")

// DefaultDistroInfo is where Debian's distro-info-data keeps its tables.
const DefaultDistroInfo = "/usr/share/distro-info"

type inspectOptions struct {
	format      string
	failOn      string
	output      string
	backingDirs []string
	vulnDB      string
	noVulns     bool
	distroInfo  string
	packages    bool
}

func newInspectCmd(g *Globals) *cobra.Command {
	var o inspectOptions
	c := &cobra.Command{
		Use:   "inspect IMAGE",
		Short: "Read a disk image offline: OS, kernels, packages, policy findings, end of life, vulnerabilities, SBOM",
		Long: `inspect reads a disk image directly — no boot, no mount, no root needed —
and reports what is inside: the operating system and its end of life, the
kernels, every package (dpkg, rpm, apk) with its source package, findings
against the endorsement policy (accounts, SSH keys, host keys, private keys,
certificates, credentials, setuid files, remote logging) and the known
vulnerabilities of the packages from offline OSV data (vmtrust vulndb import).

Formats: raw, qcow2 (v2, v3, zlib and zstd clusters), VMDK (monolithicSparse,
streamOptimized); GPT and MBR partition tables (extended partitions too);
ext2/3/4 and XFS filesystems.

A qcow2 backing file is opened only when its name resolves inside a
directory given with --backing-dir; by default an image with a backing
file is refused.

Output (--format): table (default), json, cyclonedx (CycloneDX 1.6 JSON SBOM),
spdx (SPDX 2.3 JSON SBOM), sarif (SARIF 2.1.0: findings and vulnerabilities).

EXIT STATUS
  0  inspected; nothing at or above --fail-on
  3  the image cannot be read, or is refused as unsafe (the error says why)
  5  findings or vulnerabilities at or above --fail-on (info|low|medium|high|critical)`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runInspect(cmd, g, &o, args[0])
		},
	}
	f := c.Flags()
	f.StringVar(&o.format, "format", "table", "output format: table, json, cyclonedx, spdx, sarif")
	f.StringVar(&o.failOn, "fail-on", "", "exit 5 when a finding or vulnerability has at least this severity")
	f.StringVarP(&o.output, "output", "o", "-", "write the report to this file (- for stdout)")
	f.StringArrayVar(&o.backingDirs, "backing-dir", nil, "directory qcow2 backing files may resolve into (repeatable)")
	f.StringVar(&o.vulnDB, "vulndb", "", "vulnerability database (default: vulndb.db in the state directory, when present)")
	f.BoolVar(&o.noVulns, "no-vulns", false, "skip vulnerability matching")
	f.StringVar(&o.distroInfo, "distro-info", DefaultDistroInfo, "directory of distro-info-data's debian.csv and ubuntu.csv")
	f.BoolVar(&o.packages, "packages", false, "table format: list every package")
	return c
}

func runInspect(cmd *cobra.Command, g *Globals, o *inspectOptions, image string) error {
	ctx := cmd.Context()
	var threshold inventory.Severity = -1
	if o.failOn != "" {
		s, ok := inventory.ParseSeverity(o.failOn)
		if !ok {
			return usageErr(fmt.Errorf("--fail-on %q: want info, low, medium, high or critical", o.failOn))
		}
		threshold = s
	}
	switch o.format {
	case "table", "json", "cyclonedx", "spdx", "sarif":
	default:
		return usageErr(fmt.Errorf("--format %q: want table, json, cyclonedx, spdx or sarif", o.format))
	}
	if _, err := os.Stat(image); err != nil {
		return inputErr(err)
	}
	opts, closeDB, err := buildInspectOptions(ctx, g, o)
	if err != nil {
		return err
	}
	defer closeDB()
	rep, err := inspect.Inspect(ctx, image, opts)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return inputErr(fmt.Errorf("inspect %s: %w", image, err))
	}
	var buf bytes.Buffer
	switch o.format {
	case "json":
		err = printJSON(&buf, struct {
			MessageType string `json:"message_type"`
			*inventory.Report
		}{"inspection", rep})
	case "cyclonedx":
		err = sbom.CycloneDX(&buf, rep)
	case "spdx":
		err = sbom.SPDX(&buf, rep)
	case "sarif":
		err = sarif.Write(&buf, rep)
	default:
		writeInspectTable(&buf, rep, o.packages)
	}
	if err != nil {
		return err
	}
	if err := writeOutput(g, o.output, buf.Bytes(), 0o644); err != nil {
		return err
	}
	if threshold >= 0 {
		n := 0
		for _, f := range rep.Findings {
			if f.Severity >= threshold {
				n++
			}
		}
		for _, v := range rep.Vulnerabilities {
			if v.Severity >= threshold {
				n++
			}
		}
		if n > 0 {
			return fmt.Errorf("%w: %d at %s or above", ErrFindings, n, threshold)
		}
	}
	return nil
}

// buildInspectOptions builds the inspection's options from o: backing
// directories, distro-info-data and the vulnerability database (closed by
// the returned function).
func buildInspectOptions(ctx context.Context, g *Globals, o *inspectOptions) (inspect.Options, func(), error) {
	opts := inspect.Options{BackingDirs: o.backingDirs, Log: g.Log}
	if o.distroInfo != "" {
		d, err := eol.LoadDistroInfo(o.distroInfo)
		switch {
		case err == nil:
			opts.EOL = d
		case errors.Is(err, fs.ErrNotExist) && o.distroInfo == DefaultDistroInfo:
			g.Log.Warn("no distro-info-data: end of life of Debian and Ubuntu unknown", "dir", o.distroInfo)
		default:
			return opts, nil, inputErr(fmt.Errorf("distro-info: %w", err))
		}
	}
	if o.noVulns {
		return opts, func() {}, nil
	}
	path := o.vulnDB
	if path == "" {
		if p := filepath.Join(g.State, vulndbFile); g.State != "" && fileExists(p) {
			path = p
		}
	} else if !fileExists(path) {
		return opts, nil, inputErr(fmt.Errorf("vulnerability database %s: %w", path, fs.ErrNotExist))
	}
	if path == "" {
		return opts, func() {}, nil
	}
	db, err := vulndb.Open(ctx, path)
	if err != nil {
		return opts, nil, inputErr(fmt.Errorf("vulnerability database %s: %w", path, err))
	}
	opts.Vulns = db
	return opts, func() { db.Close() }, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func writeInspectTable(w io.Writer, r *inventory.Report, allPackages bool) {
	c := func(s string) string { return Clean(s, false) }
	fmt.Fprintf(w, "Image:      %s (%s, %d bytes virtual, %d bytes file, %s; read %d bytes)\n",
		c(r.Image.Path), r.Image.Format, r.Image.VirtualSize, r.Image.FileSize, r.Image.Scheme, r.Image.BytesRead)
	for _, p := range r.Image.Partitions {
		root := ""
		if p.Root {
			root = "  <- root"
		}
		fsName := p.Filesystem
		if fsName == "" {
			fsName = "-"
		}
		fmt.Fprintf(w, "  part %d  start %d  size %d  %s  %s%s\n", p.Index, p.Start, p.Size, c(p.Type), fsName, root)
	}
	osName := r.OS.PrettyName
	if osName == "" {
		osName = strings.TrimSpace(r.OS.ID + " " + r.OS.VersionID)
	}
	fmt.Fprintf(w, "OS:         %s (id %s, version %s, from %s)\n", c(osName), c(r.OS.ID), c(r.OS.VersionID), c(r.OS.Source))
	switch {
	case !r.EndOfLife.Known:
		fmt.Fprintf(w, "End of life: unknown\n")
	case r.EndOfLife.EOL:
		fmt.Fprintf(w, "End of life: REACHED on %s (%s)\n", r.EndOfLife.Date.Format(time.DateOnly), c(r.EndOfLife.Source))
	case r.EndOfLife.Date.IsZero():
		fmt.Fprintf(w, "End of life: supported, no end date announced (%s)\n", c(r.EndOfLife.Source))
	default:
		fmt.Fprintf(w, "End of life: supported until %s (%s)\n", r.EndOfLife.Date.Format(time.DateOnly), c(r.EndOfLife.Source))
	}
	if !r.BuildTime.IsZero() {
		fmt.Fprintf(w, "Built:      %s (newest package install time)\n", r.BuildTime.Format(time.RFC3339))
	}
	var ks []string
	for _, k := range r.Kernels {
		ks = append(ks, c(k.Version))
	}
	if len(ks) == 0 {
		ks = []string{"none found"}
	}
	fmt.Fprintf(w, "Kernels:    %s\n", strings.Join(ks, ", "))
	managers := map[string]int{}
	for _, p := range r.Packages {
		managers[p.Manager]++
	}
	var ms []string
	for _, m := range []string{"dpkg", "rpm", "apk"} {
		if managers[m] > 0 {
			ms = append(ms, fmt.Sprintf("%d %s", managers[m], m))
		}
	}
	if len(ms) == 0 {
		ms = []string{"none found"}
	}
	fmt.Fprintf(w, "Packages:   %s\n", strings.Join(ms, ", "))
	if allPackages {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  NAME\tVERSION\tARCH\tSOURCE\tSOURCE VERSION")
		for _, p := range r.Packages {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", c(p.Name), c(p.Version), c(p.Arch), c(p.SourceName), c(p.SourceVersion))
		}
		tw.Flush()
	}
	fmt.Fprintf(w, "\nFindings:   %d\n", len(r.Findings))
	if len(r.Findings) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  SEVERITY\tRULE\tPATH\tREASON")
		for _, f := range r.Findings {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", f.Severity, c(f.Rule), c(f.Path), c(f.Reason))
		}
		tw.Flush()
	}
	if r.VulnDB == "" {
		fmt.Fprintf(w, "\nVulnerabilities: not checked (no vulnerability data: vmtrust vulndb import)\n")
		return
	}
	fmt.Fprintf(w, "\nVulnerabilities: %d (%s)\n", len(r.Vulnerabilities), c(r.VulnDB))
	if len(r.Vulnerabilities) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  SEVERITY\tID\tPACKAGE\tINSTALLED\tFIXED\tSUMMARY")
		for _, v := range r.Vulnerabilities {
			fixed := v.Fixed
			if fixed == "" {
				fixed = "(no fix)"
			}
			sum := v.Summary
			if len(sum) > 60 {
				sum = sum[:57] + "..."
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", v.Severity, c(v.ID), c(v.Package), c(v.Installed), c(fixed), c(sum))
		}
		tw.Flush()
	}
}
