package eol

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
)

// vendorRelease is one release of a distribution Debian's distro-info-data
// does not cover, with the end of its free security support.
type vendorRelease struct {
	id      string // os-release ID, or "centos-stream"
	version string // the key Lookup derives from VERSION_ID (see tableKey)
	name    string
	eol     time.Time
}

// vendorSource names, per distribution, the vendor page the dates in
// vendorTable come from and what the date means. The dates were checked
// against those pages (as summarised by endoflife.date) in November 2026;
// update them when a vendor announces a new release.
func vendorSource(id string) string {
	switch id {
	case "rhel":
		return "Red Hat Enterprise Linux life cycle, https://access.redhat.com/support/policy/updates/errata: end of Maintenance Support (ELS is a paid add-on)"
	case "rocky":
		return "Rocky Linux release and version guide, https://wiki.rockylinux.org/rocky/version/: end of life (security support)"
	case "almalinux":
		return "AlmaLinux release notes, https://wiki.almalinux.org/release-notes/: end of security support"
	case "centos":
		return "CentOS Linux end of life, https://www.centos.org/centos-linux-eol/"
	case "centos-stream":
		return "CentOS Stream, https://www.centos.org/cl-vs-cs/ and https://www.centos.org/stream10/: end of builds (Stream 10: projected)"
	case "ol":
		return "Oracle Linux lifetime support policy, https://www.oracle.com/a/ocom/docs/elsp-lifetime-069338.pdf: end of Premier Support (Extended Support is paid)"
	case "fedora":
		return "Fedora end of life releases, https://docs.fedoraproject.org/en-US/releases/eol/ and https://fedorapeople.org/groups/schedule/"
	case "alpine":
		return "Alpine Linux releases, https://alpinelinux.org/releases/: end of support of the branch"
	}
	return ""
}

func day(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

// vendorTable returns the compiled-in table; a function, not a variable,
// so that nothing can change it.
func vendorTable() []vendorRelease {
	return []vendorRelease{
		{"rhel", "6", "Red Hat Enterprise Linux 6", day(2020, 11, 30)},
		{"rhel", "7", "Red Hat Enterprise Linux 7", day(2024, 6, 30)},
		{"rhel", "8", "Red Hat Enterprise Linux 8", day(2029, 5, 31)},
		{"rhel", "9", "Red Hat Enterprise Linux 9", day(2032, 5, 31)},
		{"rhel", "10", "Red Hat Enterprise Linux 10", day(2035, 5, 31)},

		{"rocky", "8", "Rocky Linux 8", day(2029, 5, 31)},
		{"rocky", "9", "Rocky Linux 9", day(2032, 5, 31)},
		{"rocky", "10", "Rocky Linux 10", day(2035, 5, 31)},

		{"almalinux", "8", "AlmaLinux 8", day(2029, 3, 1)},
		{"almalinux", "9", "AlmaLinux 9", day(2032, 5, 31)},
		{"almalinux", "10", "AlmaLinux 10", day(2035, 5, 31)},

		{"centos", "5", "CentOS Linux 5", day(2017, 3, 31)},
		{"centos", "6", "CentOS Linux 6", day(2020, 11, 30)},
		{"centos", "7", "CentOS Linux 7", day(2024, 6, 30)},
		{"centos", "8", "CentOS Linux 8", day(2021, 12, 31)},
		{"centos-stream", "8", "CentOS Stream 8", day(2024, 5, 31)},
		{"centos-stream", "9", "CentOS Stream 9", day(2027, 5, 31)},
		{"centos-stream", "10", "CentOS Stream 10", day(2030, 1, 1)},

		{"ol", "6", "Oracle Linux 6", day(2021, 3, 1)},
		{"ol", "7", "Oracle Linux 7", day(2024, 12, 1)},
		{"ol", "8", "Oracle Linux 8", day(2029, 7, 1)},
		{"ol", "9", "Oracle Linux 9", day(2032, 6, 30)},

		{"fedora", "36", "Fedora 36", day(2023, 5, 16)},
		{"fedora", "37", "Fedora 37", day(2023, 12, 5)},
		{"fedora", "38", "Fedora 38", day(2024, 5, 21)},
		{"fedora", "39", "Fedora 39", day(2024, 11, 26)},
		{"fedora", "40", "Fedora 40", day(2025, 5, 13)},
		{"fedora", "41", "Fedora 41", day(2025, 12, 15)},
		{"fedora", "42", "Fedora 42", day(2026, 5, 13)},
		{"fedora", "43", "Fedora 43", day(2026, 12, 9)},

		{"alpine", "3.10", "Alpine Linux 3.10", day(2021, 5, 1)},
		{"alpine", "3.11", "Alpine Linux 3.11", day(2021, 11, 1)},
		{"alpine", "3.12", "Alpine Linux 3.12", day(2022, 5, 1)},
		{"alpine", "3.13", "Alpine Linux 3.13", day(2022, 11, 1)},
		{"alpine", "3.14", "Alpine Linux 3.14", day(2023, 5, 1)},
		{"alpine", "3.15", "Alpine Linux 3.15", day(2023, 11, 1)},
		{"alpine", "3.16", "Alpine Linux 3.16", day(2024, 5, 23)},
		{"alpine", "3.17", "Alpine Linux 3.17", day(2024, 11, 22)},
		{"alpine", "3.18", "Alpine Linux 3.18", day(2025, 5, 9)},
		{"alpine", "3.19", "Alpine Linux 3.19", day(2025, 11, 1)},
		{"alpine", "3.20", "Alpine Linux 3.20", day(2026, 4, 1)},
		{"alpine", "3.21", "Alpine Linux 3.21", day(2026, 11, 1)},
		{"alpine", "3.22", "Alpine Linux 3.22", day(2027, 5, 1)},
		{"alpine", "3.23", "Alpine Linux 3.23", day(2027, 11, 1)},
	}
}

// tableKey maps an os-release to the (id, version) key of vendorTable.
func tableKey(os inventory.OS) (id, version string, ok bool) {
	id = os.ID
	v := os.VersionID
	switch id {
	case "rhel", "rocky", "almalinux", "ol", "centos":
		major, _, _ := strings.Cut(v, ".")
		if !allDigits(major) {
			return "", "", false
		}
		// CentOS Stream says so in its name; 9 and later exist only as Stream.
		if n, err := strconv.Atoi(major); id == "centos" && (strings.Contains(os.PrettyName, "Stream") || err == nil && n >= 9) {
			id = "centos-stream"
		}
		return id, major, true
	case "fedora":
		return id, v, allDigits(v)
	case "alpine":
		// "3.19.1" -> "3.19"; edge ("3.21_alpha20240923") has no branch.
		parts := strings.SplitN(v, ".", 3)
		if len(parts) < 2 || !allDigits(parts[0]) || !allDigits(parts[1]) {
			return "", "", false
		}
		if len(parts) == 3 && !allDigits(parts[2]) {
			return "", "", false
		}
		return id, parts[0] + "." + parts[1], true
	}
	return "", "", false
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func lookupTable(os inventory.OS, at time.Time) inventory.EndOfLife {
	id, version, ok := tableKey(os)
	if !ok {
		if vendorSource(os.ID) == "" {
			return unknown(fmt.Sprintf("no end-of-life data for %q", os.ID))
		}
		return unknown(fmt.Sprintf("%s release %q not recognised", os.ID, os.VersionID))
	}
	for _, r := range vendorTable() {
		if r.id == id && r.version == version {
			return status(at, r.eol, r.name, vendorSource(id))
		}
	}
	return unknown(fmt.Sprintf("no end-of-life data for %s %s", id, version))
}
