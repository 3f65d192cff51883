// Package inventory holds the values an inspection of a disk image
// produces: the operating system, packages, kernels and policy findings.
// It has no behaviour beyond ordering and naming; the scanners fill it in.
package inventory

import "time"

// OS is what the guest says it is (os-release, or a fallback file).
type OS struct {
	ID              string   `json:"id"` // "debian", "ubuntu", "rocky", "alpine", ...
	IDLike          []string `json:"id_like,omitempty"`
	VersionID       string   `json:"version_id"` // "12", "22.04", "3.19.1", "9.3"
	VersionCodename string   `json:"version_codename,omitempty"`
	PrettyName      string   `json:"pretty_name,omitempty"`
	Source          string   `json:"source"` // the guest path it was read from
}

// Package is one installed package.
type Package struct {
	Name          string    `json:"name"`
	Version       string    `json:"version"` // full version as the package manager orders it (epoch:version-release)
	Arch          string    `json:"arch,omitempty"`
	SourceName    string    `json:"source_name"`    // source package (dpkg Source:, rpm SOURCERPM name, apk origin); Name when the database gives none
	SourceVersion string    `json:"source_version"` // source package version; Version when the database gives none
	Manager       string    `json:"manager"`        // "dpkg", "rpm" or "apk"
	InstallTime   time.Time `json:"install_time,omitzero"`
}

// Kernel is one installed kernel image.
type Kernel struct {
	Version string `json:"version"`
	Path    string `json:"path"`
}

// Severity orders findings; the zero value is Info.
type Severity int

const (
	Info Severity = iota
	Low
	Medium
	High
	Critical
)

var severityNames = [...]string{"info", "low", "medium", "high", "critical"}

func (s Severity) String() string {
	if s < 0 || int(s) >= len(severityNames) {
		return "unknown"
	}
	return severityNames[s]
}

// ParseSeverity reads a severity name as String writes it.
func ParseSeverity(s string) (Severity, bool) {
	for i, n := range severityNames {
		if n == s {
			return Severity(i), true
		}
	}
	return 0, false
}

func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Finding is one breach, or risk, of the endorsement policy.
type Finding struct {
	Rule     string   `json:"rule"` // stable identifier, e.g. "ssh-authorized-keys"
	Severity Severity `json:"severity"`
	Path     string   `json:"path"`   // guest path, absolute
	Reason   string   `json:"reason"` // one sentence for the operator
	Policy   string   `json:"policy"` // the endorsement-policy clause it maps to
}

// Vulnerability is one known vulnerability of an installed package, from
// offline OSV data, matched by source package and the ecosystem's version
// order.
type Vulnerability struct {
	ID         string   `json:"id"`                // OSV identifier, e.g. "DSA-5514-1", "CVE-2023-4911"
	Aliases    []string `json:"aliases,omitempty"` // e.g. CVE identifiers
	Ecosystem  string   `json:"ecosystem"`         // OSV ecosystem, e.g. "Debian:12"
	Package    string   `json:"package"`           // installed (binary) package name
	SourceName string   `json:"source_name"`       // the source package the OSV entry names
	Installed  string   `json:"installed"`         // installed source version
	Fixed      string   `json:"fixed,omitempty"`   // first fixed version; empty when no fix is known
	Severity   Severity `json:"severity"`
	Summary    string   `json:"summary,omitempty"`
}

// Partition describes one partition (or the whole disk when there is no
// partition table) and what was found on it.
type Partition struct {
	Index      int    `json:"index"` // 0: the whole disk
	Start      int64  `json:"start"`
	Size       int64  `json:"size"`
	Type       string `json:"type,omitempty"`
	Filesystem string `json:"filesystem,omitempty"` // "ext4", "xfs", "" when none recognised
	Root       bool   `json:"root,omitempty"`       // the partition inspected as the guest's root
}

// Image describes the inspected image file itself.
type Image struct {
	Path        string      `json:"path"`
	Format      string      `json:"format"` // "raw", "qcow2", "vmdk"
	VirtualSize int64       `json:"virtual_size"`
	FileSize    int64       `json:"file_size"`
	SHA512      string      `json:"sha512,omitempty"` // of the image file, when computed
	Scheme      string      `json:"partition_scheme"` // "gpt", "mbr", "none"
	Partitions  []Partition `json:"partitions"`
	BytesRead   int64       `json:"bytes_read"` // bytes of the image file(s) read by the inspection
}

// EndOfLife states the support status of the guest's release.
type EndOfLife struct {
	Known   bool      `json:"known"`
	EOL     bool      `json:"eol"`
	Date    time.Time `json:"date,omitzero"` // end of (standard or LTS) support
	Source  string    `json:"source,omitempty"`
	Release string    `json:"release,omitempty"` // e.g. "bookworm", "22.04 LTS"
}

// Report is the whole result of inspecting one image. Its slices are
// sorted (packages by name, findings by severity then path) so that two
// inspections of the same image give byte-identical JSON.
type Report struct {
	Image           Image           `json:"image"`
	OS              OS              `json:"os"`
	EndOfLife       EndOfLife       `json:"end_of_life"`
	Kernels         []Kernel        `json:"kernels"`
	Packages        []Package       `json:"packages"`
	BuildTime       time.Time       `json:"build_time,omitzero"` // newest package install time
	Findings        []Finding       `json:"findings"`
	Vulnerabilities []Vulnerability `json:"vulnerabilities"`
	VulnDB          string          `json:"vulndb,omitempty"` // what vulnerability data was used, and its age; empty when none
	InspectedAt     time.Time       `json:"inspected_at"`
}
