package vulndb

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
)

// The OSV fields vulndb reads (schema 1.x). Unknown members are ignored;
// the known ones must have the schema's types.
type osvEntry struct {
	ID               string         `json:"id"`
	Modified         string         `json:"modified"`
	Withdrawn        string         `json:"withdrawn"`
	Aliases          []string       `json:"aliases"`
	Upstream         []string       `json:"upstream"`
	Related          []string       `json:"related"`
	Summary          string         `json:"summary"`
	Details          string         `json:"details"`
	Severity         []osvSeverity  `json:"severity"`
	Affected         []osvAffected  `json:"affected"`
	DatabaseSpecific jsontext.Value `json:"database_specific"`
}

type osvSeverity struct {
	Type  string `json:"type"`
	Score string `json:"score"`
}

type osvAffected struct {
	Package struct {
		Ecosystem string `json:"ecosystem"`
		Name      string `json:"name"`
	} `json:"package"`
	Severity          []osvSeverity  `json:"severity"`
	Ranges            []osvRange     `json:"ranges"`
	Versions          []string       `json:"versions"`
	EcosystemSpecific jsontext.Value `json:"ecosystem_specific"`
	DatabaseSpecific  jsontext.Value `json:"database_specific"`
}

type osvRange struct {
	Type   string     `json:"type"`
	Events []osvEvent `json:"events"`
}

type osvEvent struct {
	Introduced   *string `json:"introduced"`
	Fixed        *string `json:"fixed"`
	LastAffected *string `json:"last_affected"`
	Limit        *string `json:"limit"`
}

// advisory is one OSV entry reduced to what matching needs.
type advisory struct {
	ID        string
	Modified  time.Time
	Withdrawn bool
	Summary   string
	Aliases   []string   // aliases, upstream, and the CVE ids among related; sorted
	Affected  []affected // packages of supported families with a usable range or version
	// SkippedRanges counts ranges and versions dropped as malformed or
	// unparsable in the ecosystem's version order.
	SkippedRanges int
}

// affected is one (ecosystem, package) of an advisory.
type affected struct {
	Ecosystem string
	Family    string
	Package   string
	Severity  inventory.Severity
	Spec      spec
}

// errNotObject: an entry that is valid JSON but not an object (null,
// an array, ...) would otherwise decode into an empty advisory.
var errNotObject = errors.New("not a JSON object")

// parseOSV reads one OSV advisory strictly: one JSON object, valid UTF-8,
// no duplicate member names, known members of the schema's types, within
// the per-advisory bounds. It returns nil and an error, or the advisory.
func parseOSV(data []byte) (*advisory, error) {
	if len(data) > MaxEntrySize {
		return nil, fmt.Errorf("%d bytes, more than the limit of %d", len(data), MaxEntrySize)
	}
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return nil, errNotObject
	}
	if d := depth(data); d > maxDepth {
		return nil, fmt.Errorf("nested %d deep, more than the limit of %d", d, maxDepth)
	}
	var e osvEntry
	// v2 defaults: duplicate names and invalid UTF-8 are errors, member
	// names match case-sensitively, trailing data is an error.
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, err
	}
	return e.normalise()
}

func (e *osvEntry) normalise() (*advisory, error) {
	if err := checkText("id", e.ID, maxIDLen); err != nil {
		return nil, err
	}
	a := &advisory{ID: e.ID}
	wrap := func(err error) error { return fmt.Errorf("advisory %s: %w", e.ID, err) }
	var err error
	if a.Modified, err = parseOSVTime(e.Modified); err != nil {
		return nil, wrap(fmt.Errorf("modified: %w", err))
	}
	if e.Withdrawn != "" {
		if _, err := parseOSVTime(e.Withdrawn); err != nil {
			return nil, wrap(fmt.Errorf("withdrawn: %w", err))
		}
		a.Withdrawn = true
	}
	if a.Aliases, err = e.aliases(); err != nil {
		return nil, wrap(err)
	}
	a.Summary = summary(e.Summary, e.Details)
	if len(e.Affected) > maxAffected {
		return nil, wrap(fmt.Errorf("%d affected packages, more than the limit of %d", len(e.Affected), maxAffected))
	}
	if len(e.Severity) > maxSeverities {
		return nil, wrap(fmt.Errorf("%d severities, more than the limit of %d", len(e.Severity), maxSeverities))
	}
	for i := range e.Affected {
		af, ok, skipped, err := e.affected(&e.Affected[i])
		if err != nil {
			return nil, wrap(fmt.Errorf("affected[%d]: %w", i, err))
		}
		a.SkippedRanges += skipped
		if ok {
			a.Affected = append(a.Affected, af)
		}
	}
	return a, nil
}

// affected normalises one affected package. ok is false for a package of
// an unsupported ecosystem, or one left without a usable range or version.
func (e *osvEntry) affected(in *osvAffected) (af affected, ok bool, skipped int, err error) {
	eco, name := in.Package.Ecosystem, in.Package.Name
	fam, ok := familyOf(eco)
	if !ok {
		return af, false, 0, nil // another ecosystem, or no package (a GIT-only entry)
	}
	if err := checkText("ecosystem", eco, maxNameLen); err != nil {
		return af, false, 0, err
	}
	if err := checkText("package name", name, maxNameLen); err != nil {
		return af, false, 0, err
	}
	if len(in.Ranges) > maxRanges {
		return af, false, 0, fmt.Errorf("%d ranges, more than the limit of %d", len(in.Ranges), maxRanges)
	}
	if len(in.Versions) > maxVersions {
		return af, false, 0, fmt.Errorf("%d versions, more than the limit of %d", len(in.Versions), maxVersions)
	}
	if len(in.Severity) > maxSeverities {
		return af, false, 0, fmt.Errorf("%d severities, more than the limit of %d", len(in.Severity), maxSeverities)
	}
	o := fam.order
	var sp spec
	for _, r := range in.Ranges {
		if r.Type != "ECOSYSTEM" {
			continue // SEMVER and GIT ranges do not order distribution packages
		}
		evs, err := normaliseEvents(o, r.Events)
		if err != nil {
			skipped++
			continue
		}
		sp.Ranges = append(sp.Ranges, evs)
	}
	for _, v := range in.Versions {
		if o.valid(v) != nil {
			skipped++
			continue
		}
		sp.Versions = append(sp.Versions, v)
	}
	if len(sp.Ranges) == 0 && len(sp.Versions) == 0 {
		return af, false, skipped, nil
	}
	return affected{Ecosystem: eco, Family: fam.name, Package: name, Severity: e.severity(fam, in), Spec: sp}, true, skipped, nil
}

// aliases gathers the identifiers an operator looks for: aliases, upstream
// and the CVE ids among related.
func (e *osvEntry) aliases() ([]string, error) {
	n := len(e.Aliases) + len(e.Upstream) + len(e.Related)
	if n > maxAliases {
		return nil, fmt.Errorf("%d aliases, upstream and related ids, more than the limit of %d", n, maxAliases)
	}
	var out []string
	for i, list := range [][]string{e.Aliases, e.Upstream, e.Related} {
		related := i == 2
		for _, id := range list {
			if err := checkText("alias", id, maxIDLen); err != nil {
				return nil, err
			}
			if related && !strings.HasPrefix(id, "CVE-") {
				continue
			}
			if id != e.ID {
				out = append(out, id)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// depth returns the deepest nesting of objects and arrays in data, which
// need not be valid JSON: brackets inside strings do not count.
func depth(data []byte) int {
	d, deepest, inString, escaped := 0, 0, false, false
	for _, c := range data {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			d++
			deepest = max(deepest, d)
		case c == '}' || c == ']':
			d--
		}
	}
	return deepest
}

// checkText requires a non-empty string of at most max bytes without
// control characters.
func checkText(what, s string, max int) error {
	if s == "" {
		return fmt.Errorf("empty %s", what)
	}
	if len(s) > max {
		return fmt.Errorf("%s of %d bytes, more than the limit of %d", what, len(s), max)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return fmt.Errorf("%s %q has a control character", what, s)
		}
	}
	return nil
}

// parseOSVTime reads an OSV timestamp: RFC 3339, as the schema requires.
func parseOSVTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, errors.New("missing")
	}
	if len(s) > 64 {
		return time.Time{}, fmt.Errorf("time of %d bytes", len(s))
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time", s)
	}
	return t.UTC(), nil
}

// summary is the advisory's summary, else the first line of its details,
// cut to maxSummaryBytes.
func summary(sum, details string) string {
	s := strings.TrimSpace(sum)
	if s == "" {
		s, _, _ = strings.Cut(strings.TrimSpace(details), "\n")
		s = strings.TrimSpace(s)
	}
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) <= maxSummaryBytes {
		return s
	}
	cut := maxSummaryBytes - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// stringMember returns the string value of member name in a JSON object,
// or "" when raw is not an object, lacks the member, or it is no string.
func stringMember(raw jsontext.Value, name string) string {
	if len(raw) == 0 || raw.Kind() != '{' {
		return ""
	}
	var m map[string]jsontext.Value
	if json.Unmarshal(raw, &m) != nil {
		return ""
	}
	v, ok := m[name]
	if !ok || v.Kind() != '"' {
		return ""
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return ""
	}
	return s
}
