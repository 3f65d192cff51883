package eolos

import (
	"strings"
	"testing"
	"time"

	"github.com/vmtrust/vmtrust/internal/fsys/fsystest"
	dt "github.com/vmtrust/vmtrust/internal/inspect/detector/detectortest"
	"github.com/vmtrust/vmtrust/internal/inspect/eol"
	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
)

func date(s string) time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestCheck(t *testing.T) {
	at := date("2026-01-01")
	tests := []struct {
		name string
		e    inventory.EndOfLife
		sev  string
		in   string // substring of the reason
	}{
		{"ended", inventory.EndOfLife{Known: true, EOL: true, Date: date("2024-06-30"), Release: "Debian 10 (buster)", Source: "s"}, "high", "reached the end of its security support on 2024-06-30"},
		{"ends in 30 days", inventory.EndOfLife{Known: true, Date: date("2026-01-31"), Release: "R", Source: "s"}, "medium", "in 30 days"},
		{"ends in exactly 90 days", inventory.EndOfLife{Known: true, Date: at.Add(Warning), Release: "R", Source: "s"}, "medium", "in 90 days"},
		{"ends in 91 days", inventory.EndOfLife{Known: true, Date: at.Add(Warning + 24*time.Hour), Release: "R", Source: "s"}, "info", "supported until"},
		{"no end announced", inventory.EndOfLife{Known: true, Release: "R", Source: "s"}, "info", "no end of support announced"},
		{"unknown", inventory.EndOfLife{Source: "no end-of-life data for \"arch\""}, "low", "unknown"},
	}
	for _, tt := range tests {
		f := Check(tt.e, inventory.OS{Source: "/usr/lib/os-release"}, at)
		if f.Severity.String() != tt.sev || !strings.Contains(f.Reason, tt.in) || f.Rule != Rule || f.Path != "/usr/lib/os-release" || f.Policy == "" {
			t.Errorf("%s: Check = %+v, want severity %s and reason containing %q", tt.name, f, tt.sev, tt.in)
		}
	}
}

// Through the detector, with the compiled-in table (no distro-info).
func TestDetect(t *testing.T) {
	tests := []struct {
		os  inventory.OS
		sev string
	}{
		{inventory.OS{ID: "alpine", VersionID: "3.18.4", Source: "/etc/os-release"}, "high"},
		{inventory.OS{ID: "rocky", VersionID: "9.4", Source: "/etc/os-release"}, "info"},
		{inventory.OS{ID: "debian", VersionID: "12", Source: "/etc/os-release"}, "low"}, // no distro-info given
		{inventory.OS{}, "low"},
	}
	for _, tt := range tests {
		env := dt.Env(fsystest.MapFS{}, nil)
		env.OS = tt.os
		got := dt.Run(t, env, New((*eol.Data)(nil), date("2026-01-01")))
		if len(got) != 1 || got[0].Severity.String() != tt.sev {
			t.Errorf("Detect(%+v) = %+v, want one %s finding", tt.os, got, tt.sev)
		}
	}
}
