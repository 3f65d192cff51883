package sbom

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx/v2/common"
	spdx "github.com/spdx/tools-golang/spdx/v2/v2_3"

	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
)

// SPDX element ids of the fixed packages.
const (
	spdxImage = "Image"
	spdxOS    = "OperatingSystem"
)

// spdxNamespacePrefix starts every document namespace; the rest is the
// image name and the document id.
const spdxNamespacePrefix = "https://github.com/vmtrust/vmtrust/spdx/image/"

const noAssertion = "NOASSERTION"

// SPDX writes r as an SPDX 2.3 JSON document.
func SPDX(w io.Writer, r *inventory.Report) error {
	if r == nil {
		return errors.New("sbom: nil report")
	}
	name := imageName(r)
	doc := &spdx.Document{
		SPDXVersion:       spdx.Version,
		DataLicense:       spdx.DataLicense,
		SPDXIdentifier:    "DOCUMENT",
		DocumentName:      name,
		DocumentNamespace: spdxNamespacePrefix + pathSegment(name) + "-" + documentID(r, "spdx"),
		CreationInfo: &spdx.CreationInfo{
			Creators: []common.Creator{{CreatorType: "Tool", Creator: ToolName}},
			Created:  timestamp(r.InspectedAt),
		},
	}
	if r.VulnDB != "" {
		doc.DocumentComment = "vulnerability data: " + r.VulnDB
	}
	img := &spdx.Package{
		PackageName:             name,
		PackageSPDXIdentifier:   spdxImage,
		PackageFileName:         name,
		PackageDownloadLocation: noAssertion,
		PrimaryPackagePurpose:   "FILE",
		PackageComment:          fmt.Sprintf("%s disk image, virtual size %d bytes, partition scheme %s", r.Image.Format, r.Image.VirtualSize, r.Image.Scheme),
	}
	if r.Image.SHA512 != "" {
		img.PackageChecksums = []common.Checksum{{Algorithm: common.SHA512, Value: r.Image.SHA512}}
	}
	osPkg := &spdx.Package{
		PackageName:             or(r.OS.ID, "unknown"),
		PackageSPDXIdentifier:   spdxOS,
		PackageVersion:          r.OS.VersionID,
		PackageDownloadLocation: noAssertion,
		PrimaryPackagePurpose:   "OPERATING-SYSTEM",
		PackageDescription:      r.OS.PrettyName,
	}
	doc.Packages = []*spdx.Package{img, osPkg}
	doc.Relationships = []*spdx.Relationship{
		relate("DOCUMENT", "DESCRIBES", spdxImage),
		relate(spdxImage, "CONTAINS", spdxOS),
	}
	advisories := map[string][]string{} // package name → advisory ids
	for _, v := range r.Vulnerabilities {
		advisories[v.Package] = append(advisories[v.Package], v.ID)
	}
	seen := map[common.ElementID]bool{}
	for _, p := range sortedPackages(r.Packages) {
		sp := spdxPackage(r.OS, p, advisories[p.Name])
		if seen[sp.PackageSPDXIdentifier] {
			continue // the same package listed twice
		}
		seen[sp.PackageSPDXIdentifier] = true
		doc.Packages = append(doc.Packages, sp)
		doc.Relationships = append(doc.Relationships, relate(spdxOS, "CONTAINS", sp.PackageSPDXIdentifier))
	}
	if err := spdxjson.Write(doc, w, spdxjson.Indent("  "), spdxjson.EscapeHTML(false)); err != nil {
		return fmt.Errorf("sbom: spdx: %w", err)
	}
	return nil
}

func spdxPackage(guest inventory.OS, p inventory.Package, advisories []string) *spdx.Package {
	purl := PackageURL(guest, p)
	sp := &spdx.Package{
		PackageName:             p.Name,
		PackageSPDXIdentifier:   packageID(p, purl),
		PackageVersion:          p.Version,
		PackageDownloadLocation: noAssertion,
	}
	if p.SourceName != "" {
		sp.PackageSourceInfo = "built package from: " + strings.TrimSpace(p.SourceName+" "+p.SourceVersion)
	}
	if purl != "" {
		sp.PackageExternalReferences = append(sp.PackageExternalReferences, &spdx.PackageExternalReference{
			Category: common.CategoryPackageManager, RefType: common.TypePackageManagerPURL, Locator: purl,
		})
	}
	advisories = slices.Clone(advisories)
	slices.Sort(advisories)
	seen := map[string]bool{}
	for _, id := range advisories {
		if seen[id] {
			continue
		}
		seen[id] = true
		sp.PackageExternalReferences = append(sp.PackageExternalReferences, &spdx.PackageExternalReference{
			Category: common.CategorySecurity, RefType: common.TypeSecurityAdvisory, Locator: osvURL(id),
		})
	}
	return sp
}

// packageID is a stable SPDX element id: the package's manager, name and
// arch reduced to the allowed characters, and a hash that keeps ids of
// distinct packages distinct.
func packageID(p inventory.Package, purl string) common.ElementID {
	h := sha256.Sum256([]byte(strings.Join([]string{purl, p.Manager, p.Name, p.Version, p.Arch}, "\x00")))
	return common.ElementID("Package-" + idChars(p.Manager+"-"+p.Name+"-"+p.Arch) + "-" + hex.EncodeToString(h[:6]))
}

// idChars keeps what SPDX ids allow ([A-Za-z0-9.-]), replacing the rest.
func idChars(s string) string {
	return strings.Map(func(r rune) rune {
		if 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '-'
	}, s)
}

// pathSegment makes name safe in the namespace URI.
func pathSegment(name string) string { return idChars(name) }

func relate(a, rel string, b common.ElementID) *spdx.Relationship {
	return &spdx.Relationship{
		RefA:         common.MakeDocElementID("", a),
		RefB:         common.MakeDocElementID("", string(b)),
		Relationship: rel,
	}
}
