package sbom

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	cdx "github.com/CycloneDX/cyclonedx-go"

	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
)

// CycloneDXVersion is the specification version CycloneDX writes.
const CycloneDXVersion = cdx.SpecVersion1_6

// bom-refs of the fixed components.
const (
	refImage = "image"
	refOS    = "os"
)

// CycloneDX writes r as a CycloneDX 1.6 JSON BOM.
func CycloneDX(w io.Writer, r *inventory.Report) error {
	if r == nil {
		return errors.New("sbom: nil report")
	}
	bom := cdx.NewBOM()
	bom.SerialNumber = "urn:uuid:" + documentID(r, "cyclonedx")
	bom.Metadata = &cdx.Metadata{
		Timestamp: timestamp(r.InspectedAt),
		Tools: &cdx.ToolsChoice{Components: &[]cdx.Component{
			{Type: cdx.ComponentTypeApplication, Name: ToolName},
		}},
		Component: imageComponent(r),
	}
	comps := []cdx.Component{osComponent(r)}
	byName := map[string][]string{} // package name → bom-refs, for vulnerabilities
	seen := map[string]bool{refImage: true, refOS: true}
	for _, p := range sortedPackages(r.Packages) {
		c := packageComponent(r.OS, p)
		if seen[c.BOMRef] {
			continue // the same package listed twice
		}
		seen[c.BOMRef] = true
		comps = append(comps, c)
		byName[p.Name] = append(byName[p.Name], c.BOMRef)
	}
	bom.Components = &comps
	var pkgRefs []string
	for _, c := range comps[1:] {
		pkgRefs = append(pkgRefs, c.BOMRef)
	}
	bom.Dependencies = &[]cdx.Dependency{
		{Ref: refImage, Dependencies: &[]string{refOS}},
		{Ref: refOS, Dependencies: nonEmpty(pkgRefs)},
	}
	if vs := cdxVulnerabilities(r.Vulnerabilities, byName); len(vs) > 0 {
		bom.Vulnerabilities = &vs
	}
	if r.VulnDB != "" {
		bom.Properties = &[]cdx.Property{{Name: "vmtrust:vulndb", Value: r.VulnDB}}
	}
	enc := cdx.NewBOMEncoder(w, cdx.BOMFileFormatJSON).SetPretty(true).SetEscapeHTML(false)
	if err := enc.EncodeVersion(bom, CycloneDXVersion); err != nil {
		return fmt.Errorf("sbom: cyclonedx: %w", err)
	}
	return nil
}

func imageComponent(r *inventory.Report) *cdx.Component {
	c := &cdx.Component{
		BOMRef: refImage,
		Type:   cdx.ComponentTypeFile,
		Name:   imageName(r),
	}
	if r.Image.SHA512 != "" {
		c.Hashes = &[]cdx.Hash{{Algorithm: cdx.HashAlgoSHA512, Value: r.Image.SHA512}}
	}
	props := []cdx.Property{
		{Name: "vmtrust:image:format", Value: r.Image.Format},
		{Name: "vmtrust:image:virtual_size", Value: strconv.FormatInt(r.Image.VirtualSize, 10)},
		{Name: "vmtrust:image:partition_scheme", Value: r.Image.Scheme},
	}
	c.Properties = &props
	return c
}

func osComponent(r *inventory.Report) cdx.Component {
	c := cdx.Component{
		BOMRef:      refOS,
		Type:        cdx.ComponentTypeOS,
		Name:        or(r.OS.ID, "unknown"),
		Version:     r.OS.VersionID,
		Description: r.OS.PrettyName,
	}
	var props []cdx.Property
	if r.OS.VersionCodename != "" {
		props = append(props, cdx.Property{Name: "vmtrust:os:codename", Value: r.OS.VersionCodename})
	}
	if e := r.EndOfLife; e.Known {
		props = append(props, cdx.Property{Name: "vmtrust:os:end_of_life", Value: strconv.FormatBool(e.EOL)})
		if !e.Date.IsZero() {
			props = append(props, cdx.Property{Name: "vmtrust:os:end_of_life_date", Value: e.Date.UTC().Format("2006-01-02")})
		}
	}
	for _, k := range r.Kernels {
		props = append(props, cdx.Property{Name: "vmtrust:os:kernel", Value: k.Version})
	}
	if len(props) > 0 {
		c.Properties = &props
	}
	return c
}

func packageComponent(guest inventory.OS, p inventory.Package) cdx.Component {
	purl := PackageURL(guest, p)
	ref := purl
	if ref == "" {
		ref = "package:" + p.Manager + ":" + p.Name + "@" + p.Version + ":" + p.Arch
	}
	c := cdx.Component{
		BOMRef:     ref,
		Type:       cdx.ComponentTypeLibrary,
		Name:       p.Name,
		Version:    p.Version,
		PackageURL: purl,
	}
	props := []cdx.Property{{Name: "vmtrust:package:manager", Value: p.Manager}}
	if p.SourceName != "" {
		props = append(props, cdx.Property{Name: "vmtrust:package:source_name", Value: p.SourceName})
	}
	if p.SourceVersion != "" {
		props = append(props, cdx.Property{Name: "vmtrust:package:source_version", Value: p.SourceVersion})
	}
	if !p.InstallTime.IsZero() {
		props = append(props, cdx.Property{Name: "vmtrust:package:install_time", Value: timestamp(p.InstallTime)})
	}
	c.Properties = &props
	return c
}

// cdxVulnerabilities groups the report's vulnerabilities by advisory.
func cdxVulnerabilities(vs []inventory.Vulnerability, byName map[string][]string) []cdx.Vulnerability {
	groups := map[string][]inventory.Vulnerability{}
	var ids []string
	for _, v := range vs {
		if _, ok := groups[v.ID]; !ok {
			ids = append(ids, v.ID)
		}
		groups[v.ID] = append(groups[v.ID], v)
	}
	slices.Sort(ids)
	var out []cdx.Vulnerability
	for _, id := range ids {
		g := groups[id]
		first := g[0]
		sev := first.Severity
		var affects []cdx.Affects
		var fixes []string
		refSeen := map[string]bool{}
		for _, v := range g {
			sev = max(sev, v.Severity)
			for _, ref := range byName[v.Package] {
				if refSeen[ref] {
					continue
				}
				refSeen[ref] = true
				affects = append(affects, cdx.Affects{Ref: ref, Range: &[]cdx.AffectedVersions{
					{Version: v.Installed, Status: cdx.VulnerabilityStatusAffected},
				}})
			}
			if v.Fixed != "" {
				fixes = append(fixes, fmt.Sprintf("upgrade %s (source %s) to %s", v.Package, v.SourceName, v.Fixed))
			}
		}
		slices.SortFunc(affects, func(a, b cdx.Affects) int { return cmp.Compare(a.Ref, b.Ref) })
		slices.Sort(fixes)
		fixes = slices.Compact(fixes)
		cv := cdx.Vulnerability{
			BOMRef:      "vuln:" + id,
			ID:          id,
			Source:      &cdx.Source{Name: "OSV", URL: osvURL(id)},
			Description: first.Summary,
			Ratings: &[]cdx.VulnerabilityRating{{
				Source:   &cdx.Source{Name: first.Ecosystem},
				Severity: cdxSeverity(sev),
				Method:   cdx.ScoringMethodOther,
			}},
			Recommendation: strings.Join(fixes, "; "),
			Properties:     &[]cdx.Property{{Name: "vmtrust:ecosystem", Value: first.Ecosystem}},
		}
		if len(affects) > 0 {
			cv.Affects = &affects
		}
		if len(first.Aliases) > 0 {
			var refs []cdx.VulnerabilityReference
			for _, a := range first.Aliases {
				refs = append(refs, cdx.VulnerabilityReference{ID: a, Source: &cdx.Source{Name: "OSV", URL: osvURL(a)}})
			}
			cv.References = &refs
		}
		out = append(out, cv)
	}
	return out
}

func cdxSeverity(s inventory.Severity) cdx.Severity {
	switch s {
	case inventory.Info:
		return cdx.SeverityInfo
	case inventory.Low:
		return cdx.SeverityLow
	case inventory.Medium:
		return cdx.SeverityMedium
	case inventory.High:
		return cdx.SeverityHigh
	case inventory.Critical:
		return cdx.SeverityCritical
	}
	return cdx.SeverityUnknown
}

// sortedPackages returns the packages by name, version, arch and manager.
func sortedPackages(ps []inventory.Package) []inventory.Package {
	out := slices.Clone(ps)
	slices.SortStableFunc(out, func(a, b inventory.Package) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Version, b.Version),
			cmp.Compare(a.Arch, b.Arch), cmp.Compare(a.Manager, b.Manager))
	})
	return out
}

func nonEmpty(s []string) *[]string {
	if len(s) == 0 {
		return nil
	}
	return &s
}
