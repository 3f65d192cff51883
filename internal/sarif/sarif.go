// Package sarif writes the policy findings and known vulnerabilities of an
// inspected disk image, from an inventory.Report, as a SARIF 2.1.0 log
// (https://docs.oasis-open.org/sarif/sarif/v2.1.0/) with one run of the
// tool "vmtrust".
//
// # Guarantees
//
//   - Output depends on the report alone, and the same report gives
//     byte-identical output: rules are sorted by id, results by severity
//     (highest first), rule and location.
//   - Each inventory.Finding is a result of the rule named by its Rule;
//     the rule's help text is the endorsement-policy clause (Policy). Each
//     inventory.Vulnerability is a result of a rule named by the advisory
//     id, whose help points at the OSV entry.
//   - Levels: critical and high are "error", medium is "warning", low and
//     info are "note". Every result and rule also carries the vmtrust
//     severity as the property "vmtrust/severity", and the GitHub code
//     scanning "security-severity" score (9.5, 8.0, 5.5, 2.0, 0.0).
//   - Locations are paths inside the guest, never on the host: an artifact
//     location is the guest path made relative ("/etc/shadow" is
//     "etc/shadow", each segment percent-encoded) against the uriBaseId
//     "GUEST_ROOT". The run's originalUriBaseIds describes GUEST_ROOT as the
//     root of the image's guest file system and deliberately gives it no
//     URI, so no SARIF viewer resolves a guest path to a file of the
//     machine it runs on. A vulnerability is located at the database of the
//     package manager that installed the package (dpkg's status file,
//     rpm's database directory, apk's installed file) with the package as
//     a logical location.
//   - The run's properties name the image (base name, format, SHA-512 when
//     computed) and the guest OS, and the vulnerability data used.
package sarif

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"path/filepath"
	"slices"
	"strings"

	gosarif "github.com/owenrumney/go-sarif/v2/sarif"

	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
)

// ToolName is the SARIF tool driver's name.
const ToolName = "vmtrust"

// GuestRoot is the uriBaseId of guest paths.
const GuestRoot = "GUEST_ROOT"

const informationURI = "https://github.com/vmtrust/vmtrust"

// Write writes r's findings and vulnerabilities as a SARIF 2.1.0 log.
func Write(w io.Writer, r *inventory.Report) error {
	if r == nil {
		return errors.New("sarif: nil report")
	}
	log, err := gosarif.New(gosarif.Version210)
	if err != nil {
		return fmt.Errorf("sarif: %w", err)
	}
	run := gosarif.NewRunWithInformationURI(ToolName, informationURI)
	run.OriginalUriBaseIDs = map[string]*gosarif.ArtifactLocation{
		GuestRoot: gosarif.NewArtifactLocation().WithDescriptionText(
			"The root directory of the guest file system inside the inspected image " + imageName(r) +
				". Guest paths are not paths on the machine reading this log, so no URI is given."),
	}
	run.Properties = runProperties(r)

	findings := slices.Clone(r.Findings)
	slices.SortStableFunc(findings, func(a, b inventory.Finding) int {
		return cmp.Or(cmp.Compare(b.Severity, a.Severity), cmp.Compare(a.Rule, b.Rule), cmp.Compare(a.Path, b.Path))
	})
	vulns := slices.Clone(r.Vulnerabilities)
	slices.SortStableFunc(vulns, func(a, b inventory.Vulnerability) int {
		return cmp.Or(cmp.Compare(b.Severity, a.Severity), cmp.Compare(a.ID, b.ID),
			cmp.Compare(a.Package, b.Package), cmp.Compare(a.Installed, b.Installed))
	})

	rules := map[string]*gosarif.ReportingDescriptor{}
	for _, f := range findings {
		if _, ok := rules[f.Rule]; !ok {
			rules[f.Rule] = findingRule(f)
		}
	}
	for _, v := range vulns {
		if _, ok := rules[v.ID]; !ok {
			rules[v.ID] = vulnerabilityRule(v)
		}
	}
	ids := make([]string, 0, len(rules))
	for id := range rules {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	index := map[string]int{}
	for i, id := range ids {
		run.Tool.Driver.Rules = append(run.Tool.Driver.Rules, rules[id])
		index[id] = i
	}

	for _, f := range findings {
		res := gosarif.NewRuleResult(f.Rule).
			WithRuleIndex(index[f.Rule]).
			WithLevel(level(f.Severity)).
			WithMessage(gosarif.NewTextMessage(f.Reason))
		if loc := guestLocation(f.Path); loc != nil {
			res.AddLocation(loc)
		}
		res.Properties = severityProperties(f.Severity)
		run.AddResult(res)
	}
	for _, v := range vulns {
		res := gosarif.NewRuleResult(v.ID).
			WithRuleIndex(index[v.ID]).
			WithLevel(level(v.Severity)).
			WithMessage(gosarif.NewTextMessage(vulnerabilityMessage(v)))
		if loc := guestLocation(packageDatabase(r.Packages, v.Package)); loc != nil {
			res.AddLocation(loc.WithLogicalLocations([]*gosarif.LogicalLocation{
				gosarif.NewLogicalLocation().WithName(v.Package).WithKind("package"),
			}))
		}
		props := severityProperties(v.Severity)
		props["vmtrust/package"] = v.Package
		props["vmtrust/source_name"] = v.SourceName
		props["vmtrust/installed"] = v.Installed
		props["vmtrust/ecosystem"] = v.Ecosystem
		if v.Fixed != "" {
			props["vmtrust/fixed"] = v.Fixed
		}
		res.Properties = props
		run.AddResult(res)
	}
	log.AddRun(run)
	if err := log.PrettyWrite(w); err != nil {
		return fmt.Errorf("sarif: %w", err)
	}
	return nil
}

func findingRule(f inventory.Finding) *gosarif.ReportingDescriptor {
	rule := gosarif.NewRule(f.Rule).
		WithName(f.Rule).
		WithShortDescription(gosarif.NewMultiformatMessageString(f.Rule)).
		WithDefaultConfiguration(gosarif.NewReportingConfiguration().WithLevel(level(f.Severity)))
	help := f.Policy
	if help == "" {
		help = "No endorsement-policy clause is recorded for this rule."
	}
	rule.WithTextHelp("Endorsement policy: " + help)
	rule.Properties = gosarif.Properties{"tags": []string{"security", "policy"}}
	for k, v := range severityProperties(f.Severity) {
		rule.Properties[k] = v
	}
	return rule
}

func vulnerabilityRule(v inventory.Vulnerability) *gosarif.ReportingDescriptor {
	desc := v.Summary
	if desc == "" {
		desc = v.ID
	}
	help := desc
	if len(v.Aliases) > 0 {
		help += "\nAliases: " + strings.Join(v.Aliases, ", ")
	}
	help += "\nSee " + osvURL(v.ID)
	rule := gosarif.NewRule(v.ID).
		WithName(v.ID).
		WithShortDescription(gosarif.NewMultiformatMessageString(desc)).
		WithHelpURI(osvURL(v.ID)).
		WithTextHelp(help).
		WithDefaultConfiguration(gosarif.NewReportingConfiguration().WithLevel(level(v.Severity)))
	rule.Properties = gosarif.Properties{"tags": []string{"security", "vulnerability"}}
	for k, val := range severityProperties(v.Severity) {
		rule.Properties[k] = val
	}
	return rule
}

func vulnerabilityMessage(v inventory.Vulnerability) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (source %s %s) is affected by %s", v.Package, v.SourceName, v.Installed, v.ID)
	if len(v.Aliases) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(v.Aliases, ", "))
	}
	if v.Summary != "" {
		fmt.Fprintf(&b, ": %s", v.Summary)
	}
	if v.Fixed != "" {
		fmt.Fprintf(&b, ". Fixed in %s.", v.Fixed)
	} else {
		b.WriteString(". No fix is known.")
	}
	return b.String()
}

// level maps a severity to a SARIF result level.
func level(s inventory.Severity) string {
	switch {
	case s >= inventory.High:
		return "error"
	case s == inventory.Medium:
		return "warning"
	}
	return "note"
}

// securitySeverity is GitHub code scanning's score for a severity.
func securitySeverity(s inventory.Severity) string {
	switch s {
	case inventory.Critical:
		return "9.5"
	case inventory.High:
		return "8.0"
	case inventory.Medium:
		return "5.5"
	case inventory.Low:
		return "2.0"
	}
	return "0.0"
}

func severityProperties(s inventory.Severity) gosarif.Properties {
	return gosarif.Properties{"vmtrust/severity": s.String(), "security-severity": securitySeverity(s)}
}

// guestLocation locates a guest path relative to GUEST_ROOT, or returns nil
// for an empty path.
func guestLocation(guestPath string) *gosarif.Location {
	uri := guestURI(guestPath)
	if uri == "" {
		return nil
	}
	return gosarif.NewLocationWithPhysicalLocation(gosarif.NewPhysicalLocation().WithArtifactLocation(
		gosarif.NewSimpleArtifactLocation(uri).WithUriBaseId(GuestRoot)))
}

// guestURI makes an absolute guest path a relative URI reference: cleaned
// (it cannot climb above the root), without its leading slash, each segment
// percent-encoded. The root itself is ".".
func guestURI(p string) string {
	if p == "" {
		return ""
	}
	clean := strings.TrimPrefix(path.Clean("/"+p), "/")
	if clean == "" {
		return "."
	}
	segs := strings.Split(clean, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// packageDatabase is where the package manager of the named package keeps
// its database in the guest.
func packageDatabase(pkgs []inventory.Package, name string) string {
	manager := ""
	for _, p := range pkgs {
		if p.Name == name {
			manager = p.Manager
			break
		}
	}
	switch manager {
	case "dpkg":
		return "/var/lib/dpkg/status"
	case "rpm":
		return "/var/lib/rpm"
	case "apk":
		return "/lib/apk/db/installed"
	}
	return ""
}

func runProperties(r *inventory.Report) gosarif.Properties {
	pb := gosarif.NewPropertyBag()
	pb.Add("vmtrust/image", imageName(r))
	if r.Image.Format != "" {
		pb.Add("vmtrust/image_format", r.Image.Format)
	}
	if r.Image.SHA512 != "" {
		pb.Add("vmtrust/image_sha512", r.Image.SHA512)
	}
	if r.OS.ID != "" {
		pb.Add("vmtrust/os", strings.TrimSpace(r.OS.ID+" "+r.OS.VersionID))
	}
	if r.VulnDB != "" {
		pb.Add("vmtrust/vulndb", r.VulnDB)
	}
	if !r.InspectedAt.IsZero() {
		pb.Add("vmtrust/inspected_at", r.InspectedAt.UTC().Format("2006-01-02T15:04:05Z07:00"))
	}
	return pb.Properties
}

func imageName(r *inventory.Report) string {
	if r.Image.Path == "" {
		return "image"
	}
	return filepath.Base(r.Image.Path)
}

func osvURL(id string) string { return "https://osv.dev/vulnerability/" + id }
