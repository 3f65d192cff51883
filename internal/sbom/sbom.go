// Package sbom writes the software bill of materials of an inspected disk
// image, from an inventory.Report, as CycloneDX 1.6 JSON or SPDX 2.3 JSON.
//
// # Guarantees
//
//   - Output depends on the report alone: the same report gives
//     byte-identical output. The CycloneDX serial number and the SPDX
//     document namespace are derived from the image (its SHA-512 when
//     known, else its path) and the report's InspectedAt time, and
//     components and packages are sorted.
//   - Every package with a known package manager gets a package URL
//     (https://github.com/package-url/purl-spec) as Trivy and osv-scalibr
//     write them: pkg:deb/<os id>/<name>@<version>, pkg:rpm/<os
//     id>/<name>@<version>-<release> with an epoch qualifier when the epoch
//     is not zero, pkg:apk/<os id>/<name>@<version>; the arch qualifier
//     when known, and distro=<os id>-<VERSION_ID> (e.g. debian-12,
//     rocky-9.3, alpine-3.19.1).
//   - The image is the document's subject: the CycloneDX metadata
//     component (type file, name the image file's base name, SHA-512 hash
//     when computed) and the SPDX package the document DESCRIBES. The
//     guest OS is an operating-system component / package that the image
//     contains, and that contains the installed packages.
//   - Vulnerabilities (from package vulndb) go into the CycloneDX
//     vulnerabilities section, one entry per advisory with every affected
//     component; SPDX 2.3 has no such section, so each affected package
//     gets a SECURITY "advisory" external reference to the OSV entry.
//   - The source package is the CycloneDX component property
//     "vmtrust:package:source_name" (and "...:source_version") and the SPDX
//     package's sourceInfo.
//
// The reports are not trusted to be well formed beyond their Go types: a
// nil report is an error, and text is written as data, never interpreted.
package sbom

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	packageurl "github.com/package-url/packageurl-go"

	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
)

// ToolName names vmtrust as the producer of the documents.
const ToolName = "vmtrust"

// PackageURL returns the package URL of an installed package of the guest,
// or "" when its package manager is unknown.
func PackageURL(guest inventory.OS, p inventory.Package) string {
	var typ, ns, name, version string
	q := map[string]string{}
	id := strings.ToLower(guest.ID)
	switch p.Manager {
	case "dpkg":
		typ, ns, name, version = packageurl.TypeDebian, or(id, "debian"), strings.ToLower(p.Name), p.Version
	case "apk":
		typ, ns, name, version = packageurl.TypeApk, or(id, "alpine"), strings.ToLower(p.Name), p.Version
	case "rpm":
		typ, ns, name, version = packageurl.TypeRPM, id, p.Name, p.Version
		if e, rest, ok := strings.Cut(p.Version, ":"); ok {
			version = rest
			if strings.Trim(e, "0") != "" {
				q["epoch"] = e
			}
		}
	default:
		return ""
	}
	if p.Name == "" {
		return ""
	}
	if p.Arch != "" {
		q["arch"] = p.Arch
	}
	if id != "" && guest.VersionID != "" {
		q["distro"] = id + "-" + guest.VersionID
	}
	return packageurl.NewPackageURL(typ, ns, name, version, packageurl.QualifiersFromMap(q), "").ToString()
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// imageName is the base name of the image file.
func imageName(r *inventory.Report) string {
	if r.Image.Path == "" {
		return "image"
	}
	return filepath.Base(r.Image.Path)
}

// documentID is a UUID (RFC 9562 version 8, name-based on SHA-256) that
// identifies one inspection of one image: the same report always gets the
// same id, another image or inspection time another.
func documentID(r *inventory.Report, kind string) string {
	h := sha256.New()
	subject := r.Image.SHA512
	if subject == "" {
		subject = "path:" + r.Image.Path
	}
	fmt.Fprintf(h, "vmtrust %s\n%s\n%s\n", kind, subject, r.InspectedAt.UTC().Format(time.RFC3339Nano))
	b := h.Sum(nil)[:16]
	b[6] = b[6]&0x0f | 0x80 // version 8
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	x := hex.EncodeToString(b)
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}

// timestamp formats t as the documents want it: RFC 3339 in UTC, seconds.
func timestamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// osvURL is the page of an OSV advisory.
func osvURL(id string) string {
	return "https://osv.dev/vulnerability/" + id
}
