package vulndb

import (
	"math"
	"strings"

	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
)

// severity rates one affected package of the advisory; the mapping is in
// the package doc. It never fails: what it cannot read it ignores.
func (e *osvEntry) severity(fam family, in *osvAffected) inventory.Severity {
	if s, ok := e.vendorRating(fam, in); ok {
		return s
	}
	if s, ok := cvssRating(in.Severity, e.Severity); ok {
		return s
	}
	return inventory.Medium
}

// vendorRating is the distribution's own rating of the issue.
func (e *osvEntry) vendorRating(fam family, in *osvAffected) (inventory.Severity, bool) {
	// Debian's urgency, per affected package.
	for _, raw := range [][]byte{in.EcosystemSpecific, in.DatabaseSpecific, e.DatabaseSpecific} {
		if u := stringMember(raw, "urgency"); u != "" {
			if s, ok := debianUrgency(u); ok {
				return s, true
			}
		}
	}
	// Ubuntu's priority.
	for _, list := range [][]osvSeverity{in.Severity, e.Severity} {
		for _, s := range list {
			if s.Type == "Ubuntu" {
				if r, ok := ubuntuPriority(s.Score); ok {
					return r, true
				}
			}
		}
	}
	// A Red Hat style rating.
	for _, raw := range [][]byte{in.DatabaseSpecific, e.DatabaseSpecific} {
		if r, ok := redHatRating(stringMember(raw, "severity")); ok {
			return r, true
		}
	}
	if fam.order == orderRPM {
		if prefix, _, ok := strings.Cut(e.Summary, ":"); ok {
			if r, ok := redHatRating(prefix); ok {
				return r, true
			}
		}
	}
	return 0, false
}

func debianUrgency(u string) (inventory.Severity, bool) {
	switch strings.TrimRight(strings.ToLower(strings.TrimSpace(u)), "*") {
	case "unimportant":
		return inventory.Info, true
	case "low":
		return inventory.Low, true
	case "medium":
		return inventory.Medium, true
	case "high":
		return inventory.High, true
	}
	return 0, false // "not yet assigned", "end-of-life", ...
}

func ubuntuPriority(p string) (inventory.Severity, bool) {
	switch strings.ToLower(strings.TrimSpace(p)) {
	case "negligible", "low":
		return inventory.Low, true
	case "medium":
		return inventory.Medium, true
	case "high":
		return inventory.High, true
	case "critical":
		return inventory.Critical, true
	}
	return 0, false // "untriaged"
}

func redHatRating(r string) (inventory.Severity, bool) {
	switch strings.ToLower(strings.TrimSpace(r)) {
	case "low":
		return inventory.Low, true
	case "moderate", "medium":
		return inventory.Medium, true
	case "important", "high":
		return inventory.High, true
	case "critical":
		return inventory.Critical, true
	}
	return 0, false
}

// cvssRating rates the highest CVSS v3.x base score among the lists, else
// the highest v2 one.
func cvssRating(lists ...[]osvSeverity) (inventory.Severity, bool) {
	best3, best2 := -1.0, -1.0
	for _, list := range lists {
		for _, s := range list {
			switch s.Type {
			case "CVSS_V3":
				if v, ok := cvss3Score(s.Score); ok && v > best3 {
					best3 = v
				}
			case "CVSS_V2":
				if v, ok := cvss2Score(s.Score); ok && v > best2 {
					best2 = v
				}
			}
		}
	}
	switch {
	case best3 >= 0:
		return scoreSeverity(best3), true
	case best2 >= 0:
		if s := scoreSeverity(best2); s < inventory.Critical {
			return s, true
		}
		return inventory.High, true
	}
	return 0, false
}

// scoreSeverity maps a base score to the CVSS v3 qualitative ratings.
func scoreSeverity(score float64) inventory.Severity {
	switch {
	case score == 0:
		return inventory.Info
	case score < 4:
		return inventory.Low
	case score < 7:
		return inventory.Medium
	case score < 9:
		return inventory.High
	}
	return inventory.Critical
}

// cvssMetrics splits "K:V/K:V" into a map, requiring each key in want
// exactly once with one of its values, and every other key to be one of
// the optional ones. It returns nil when the vector is not well formed.
func cvssMetrics(parts []string, want map[string]string, optional string) map[string]string {
	if len(parts) > 40 {
		return nil
	}
	m := make(map[string]string, len(parts))
	for _, p := range parts {
		k, v, ok := strings.Cut(p, ":")
		if !ok || k == "" || v == "" {
			return nil
		}
		if _, dup := m[k]; dup {
			return nil
		}
		if vals, ok := want[k]; ok {
			if len(v) != 1 || !strings.Contains(vals, v) {
				return nil
			}
		} else if !strings.Contains(" "+optional+" ", " "+k+" ") {
			return nil
		}
		m[k] = v
	}
	for k := range want {
		if _, ok := m[k]; !ok {
			return nil
		}
	}
	return m
}

// cvss3Score computes the base score of a CVSS v3.0 or v3.1 vector
// ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"), per the v3.1
// specification's formulas.
func cvss3Score(vector string) (float64, bool) {
	if len(vector) > 512 {
		return 0, false
	}
	parts := strings.Split(vector, "/")
	if len(parts) < 2 || (parts[0] != "CVSS:3.0" && parts[0] != "CVSS:3.1") {
		return 0, false
	}
	m := cvssMetrics(parts[1:], map[string]string{
		"AV": "NALP", "AC": "LH", "PR": "NLH", "UI": "NR", "S": "UC", "C": "HLN", "I": "HLN", "A": "HLN",
	}, "E RL RC CR IR AR MAV MAC MPR MUI MS MC MI MA")
	if m == nil {
		return 0, false
	}
	changed := m["S"] == "C"
	cia := map[string]float64{"H": 0.56, "L": 0.22, "N": 0}
	av := map[string]float64{"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2}[m["AV"]]
	ac := map[string]float64{"L": 0.77, "H": 0.44}[m["AC"]]
	ui := map[string]float64{"N": 0.85, "R": 0.62}[m["UI"]]
	pr := map[string]float64{"N": 0.85, "L": 0.62, "H": 0.27}[m["PR"]]
	if changed {
		pr = map[string]float64{"N": 0.85, "L": 0.68, "H": 0.5}[m["PR"]]
	}
	iss := 1 - (1-cia[m["C"]])*(1-cia[m["I"]])*(1-cia[m["A"]])
	var impact float64
	if changed {
		impact = 7.52*(iss-0.029) - 3.25*math.Pow(iss-0.02, 15)
	} else {
		impact = 6.42 * iss
	}
	if impact <= 0 {
		return 0, true
	}
	expl := 8.22 * av * ac * pr * ui
	if changed {
		return roundUp(math.Min(1.08*(impact+expl), 10)), true
	}
	return roundUp(math.Min(impact+expl, 10)), true
}

// roundUp is the v3.1 specification's Roundup: the smallest number with
// one decimal that is equal to or higher than x, free of float error.
func roundUp(x float64) float64 {
	i := int64(math.Round(x * 100000))
	if i%10000 == 0 {
		return float64(i) / 100000
	}
	return float64(i/10000+1) / 10
}

// cvss2Score computes the base score of a CVSS v2 vector
// ("AV:N/AC:L/Au:N/C:P/I:P/A:P", optionally prefixed "CVSS:2.0/").
func cvss2Score(vector string) (float64, bool) {
	if len(vector) > 512 {
		return 0, false
	}
	vector = strings.TrimPrefix(vector, "CVSS:2.0/")
	m := cvssMetrics(strings.Split(vector, "/"), map[string]string{
		"AV": "LAN", "AC": "HML", "Au": "MSN", "C": "NPC", "I": "NPC", "A": "NPC",
	}, "E RL RC CDP TD CR IR AR")
	if m == nil {
		return 0, false
	}
	cia := map[string]float64{"N": 0, "P": 0.275, "C": 0.660}
	impact := 10.41 * (1 - (1-cia[m["C"]])*(1-cia[m["I"]])*(1-cia[m["A"]]))
	av := map[string]float64{"L": 0.395, "A": 0.646, "N": 1.0}[m["AV"]]
	ac := map[string]float64{"H": 0.35, "M": 0.61, "L": 0.71}[m["AC"]]
	au := map[string]float64{"M": 0.45, "S": 0.56, "N": 0.704}[m["Au"]]
	expl := 20 * av * ac * au
	f := 1.176
	if impact == 0 {
		f = 0
	}
	score := ((0.6 * impact) + (0.4 * expl) - 1.5) * f
	return math.Round(score*10) / 10, true
}
