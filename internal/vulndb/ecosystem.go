package vulndb

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
)

// ErrUnsupportedOS is returned (wrapped) for a guest whose os-release names
// no OSV ecosystem vulndb can match.
var ErrUnsupportedOS = errors.New("no OSV ecosystem for this operating system")

// ErrNotImported is returned (wrapped) when the guest's family has no
// imported data: an empty match would read as "no vulnerabilities".
var ErrNotImported = errors.New("no vulnerability data imported for this family (run 'vmtrust vulndb import')")

// family is an OSV ecosystem without its release suffix.
type family struct {
	name     string
	order    order
	manager  string // the inventory.Package.Manager of its packages
	byBinary bool   // advisories name binary packages too (AlmaLinux)
}

// familyByName knows the five supported families.
func familyByName(name string) (family, bool) {
	switch name {
	case "Debian", "Ubuntu":
		return family{name: name, order: orderDpkg, manager: "dpkg"}, true
	case "Alpine":
		return family{name: name, order: orderAPK, manager: "apk"}, true
	case "Rocky Linux":
		return family{name: name, order: orderRPM, manager: "rpm"}, true
	case "AlmaLinux":
		return family{name: name, order: orderRPM, manager: "rpm", byBinary: true}, true
	}
	return family{}, false
}

// familyOf returns the family of an ecosystem string such as "Debian:12".
func familyOf(ecosystem string) (family, bool) {
	name, _, _ := strings.Cut(ecosystem, ":")
	return familyByName(name)
}

// guestEcosystems is where a guest's packages are looked up.
type guestEcosystems struct {
	family     family
	ecosystems []string // in order of preference
}

// Ecosystems returns the OSV ecosystems Match looks a guest's packages up
// in, most specific first, or an error wrapping ErrUnsupportedOS.
func Ecosystems(guest inventory.OS) ([]string, error) {
	g, err := ecosystemsFor(guest)
	if err != nil {
		return nil, err
	}
	return g.ecosystems, nil
}

func ecosystemsFor(guest inventory.OS) (guestEcosystems, error) {
	unsupported := func(why string) (guestEcosystems, error) {
		return guestEcosystems{}, fmt.Errorf("vulndb: os %q version %q: %s: %w", guest.ID, guest.VersionID, why, ErrUnsupportedOS)
	}
	nums, ok := versionNumbers(guest.VersionID)
	if !ok {
		return unsupported("VERSION_ID is not a numeric release")
	}
	var name string
	var ecos []string
	switch guest.ID {
	case "debian":
		name, ecos = "Debian", []string{"Debian:" + nums[0]}
	case "ubuntu":
		if len(nums) < 2 || len(nums[0]) != 2 || len(nums[1]) != 2 {
			return unsupported("Ubuntu VERSION_ID is not YY.MM")
		}
		rel := nums[0] + "." + nums[1]
		name = "Ubuntu"
		if ubuntuLTS(nums[0], nums[1], guest.PrettyName) {
			ecos = []string{"Ubuntu:" + rel + ":LTS", "Ubuntu:Pro:" + rel + ":LTS"}
		} else {
			ecos = []string{"Ubuntu:" + rel}
		}
	case "alpine":
		if len(nums) < 2 {
			return unsupported("Alpine VERSION_ID has no minor version")
		}
		name, ecos = "Alpine", []string{"Alpine:v" + nums[0] + "." + nums[1]}
	case "rocky":
		name, ecos = "Rocky Linux", []string{"Rocky Linux:" + nums[0]}
	case "almalinux":
		name, ecos = "AlmaLinux", []string{"AlmaLinux:" + nums[0]}
	default:
		return unsupported("not Debian, Ubuntu, Alpine, Rocky Linux or AlmaLinux")
	}
	fam, _ := familyByName(name)
	return guestEcosystems{family: fam, ecosystems: ecos}, nil
}

// versionNumbers splits a VERSION_ID of one to three dot-separated decimal
// numbers ("12", "22.04", "3.19.1"), keeping leading zeros.
func versionNumbers(v string) ([]string, bool) {
	parts := strings.Split(v, ".")
	if v == "" || len(parts) > 3 {
		return nil, false
	}
	for _, p := range parts {
		if p == "" || len(p) > 4 || strings.Trim(p, "0123456789") != "" {
			return nil, false
		}
	}
	return parts, true
}

// ubuntuLTS: every LTS release is an April release of an even year
// (6.06 aside), and os-release's PRETTY_NAME says "LTS".
func ubuntuLTS(year, month, pretty string) bool {
	if strings.Contains(pretty, " LTS") {
		return true
	}
	y, err := strconv.Atoi(year)
	return err == nil && month == "04" && y%2 == 0
}
