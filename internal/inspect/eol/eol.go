// Package eol tells whether a guest's operating system release still gets
// security updates, for the policy clause "all security patches applied".
//
// Debian and Ubuntu are looked up in Debian's distro-info-data CSV files
// (LoadDistroInfo), which the caller loads from the host; every other
// distribution in a table compiled into this package, each entry citing
// the vendor page it comes from (table.go). A release neither source
// knows is reported as unknown (EndOfLife.Known false) with a Source
// saying why, never guessed.
//
// The date Lookup reports is the end of the support that is free of
// charge and includes security fixes: Debian's security support including
// its free LTS phase (run by the Debian LTS team; the regular and the paid
// ELTS dates are named in Source, and Release says "LTS" once in it), Ubuntu's standard support (ESM
// named in Source), Red Hat's Maintenance Support, Oracle's Premier
// Support. A release is end of life from that date on (the date itself
// included). Lookup is pure: it reads nothing and keeps no state.
package eol

import (
	"fmt"
	"strings"
	"time"

	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
)

// Lookup returns the support status of os at the time at.
func Lookup(os inventory.OS, at time.Time, data *Data) inventory.EndOfLife {
	switch os.ID {
	case "debian":
		if data == nil {
			return unknown("distro-info-data not loaded; cannot date Debian releases")
		}
		return lookupDebian(os, at, data.Debian)
	case "ubuntu":
		if data == nil {
			return unknown("distro-info-data not loaded; cannot date Ubuntu releases")
		}
		return lookupUbuntu(os, at, data.Ubuntu)
	case "":
		return unknown("operating system not identified")
	}
	return lookupTable(os, at)
}

func unknown(why string) inventory.EndOfLife {
	return inventory.EndOfLife{Known: false, Source: why}
}

// status fills in an EndOfLife for a release whose free security support
// ends at end (zero: no end announced yet).
func status(at, end time.Time, release, source string) inventory.EndOfLife {
	return inventory.EndOfLife{
		Known:   true,
		EOL:     !end.IsZero() && !at.Before(end),
		Date:    end,
		Release: release,
		Source:  source,
	}
}

func lookupDebian(os inventory.OS, at time.Time, rs []Release) inventory.EndOfLife {
	r, ok := findRelease(rs, os.VersionID, os.VersionCodename, func(v string) string { return v })
	if !ok {
		return unknown(fmt.Sprintf("Debian %s not in distro-info-data debian.csv", describe(os)))
	}
	release := "Debian " + r.Series
	if r.Version != "" {
		release = fmt.Sprintf("Debian %s (%s)", r.Version, r.Series)
	}
	if r.Released.IsZero() || r.Released.After(at) {
		return unknown(fmt.Sprintf("%s is not released (testing or unstable): no security support schedule", release))
	}
	src := []string{"distro-info-data debian.csv"}
	src = appendDate(src, "security support until", r.EOL)
	src = appendDate(src, "LTS until", r.EOLLTS)
	src = appendDate(src, "ELTS (paid) until", r.EOLELTS)
	end := r.EOL
	if !r.EOLLTS.IsZero() {
		end = r.EOLLTS
		if !r.EOL.IsZero() && !at.Before(r.EOL) {
			release += " LTS"
		}
	}
	return status(at, end, release, strings.Join(src, "; "))
}

func lookupUbuntu(os inventory.OS, at time.Time, rs []Release) inventory.EndOfLife {
	r, ok := findRelease(rs, os.VersionID, os.VersionCodename, func(v string) string { return strings.TrimSuffix(v, " LTS") })
	if !ok {
		return unknown(fmt.Sprintf("Ubuntu %s not in distro-info-data ubuntu.csv", describe(os)))
	}
	release := fmt.Sprintf("Ubuntu %s (%s)", r.Version, r.Series)
	if r.Released.IsZero() || r.Released.After(at) {
		return unknown(fmt.Sprintf("%s is not released: no security support schedule", release))
	}
	end := r.EOL
	if r.EOLServer.After(end) {
		end = r.EOLServer
	}
	src := []string{"distro-info-data ubuntu.csv"}
	src = appendDate(src, "standard support until", end)
	src = appendDate(src, "ESM (Ubuntu Pro) until", r.EOLESM)
	return status(at, end, release, strings.Join(src, "; "))
}

// findRelease matches VERSION_ID exactly, then by its major number when
// that is unambiguous, then VERSION_CODENAME against the series.
func findRelease(rs []Release, versionID, codename string, norm func(string) string) (Release, bool) {
	if versionID != "" {
		for _, r := range rs {
			if norm(r.Version) == versionID {
				return r, true
			}
		}
		major, _, _ := strings.Cut(versionID, ".")
		var found []Release
		for _, r := range rs {
			if m, _, _ := strings.Cut(norm(r.Version), "."); m != "" && m == major {
				found = append(found, r)
			}
		}
		if len(found) == 1 {
			return found[0], true
		}
	}
	if codename != "" {
		for _, r := range rs {
			if strings.EqualFold(r.Series, codename) {
				return r, true
			}
		}
	}
	return Release{}, false
}

func appendDate(s []string, what string, t time.Time) []string {
	if t.IsZero() {
		return s
	}
	return append(s, what+" "+t.Format(time.DateOnly))
}

func describe(os inventory.OS) string {
	switch {
	case os.VersionID != "" && os.VersionCodename != "":
		return fmt.Sprintf("%s (%s)", os.VersionID, os.VersionCodename)
	case os.VersionID != "":
		return os.VersionID
	case os.VersionCodename != "":
		return os.VersionCodename
	}
	return "(no version)"
}
