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
