package policy_test

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmtrust/vmtrust/internal/admission/policy"
)

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func site() policy.Image {
	return policy.Image{ID: "site-worker", SHA512: "aa", State: "cached", Endorser: "CN=site", EndorserIsSite: true}
}

func endorsed() policy.Image {
	return policy.Image{ID: "atlas", SHA512: "bb", State: "cached", Endorser: "CN=atlas"}
}

func user() policy.Image {
	return policy.Image{ID: "mine", SHA512: "cc", State: "user-registered", Inspection: policy.Inspection{MaxSeverity: "low"}}
}

func with(im policy.Image, f func(*policy.Image)) policy.Image { f(&im); return im }

func in(images ...policy.Image) policy.Input {
	return policy.Input{
		Domain: policy.Domain{Name: "vm1", UUID: "u", Type: "qemu", Disks: len(images),
			Interfaces: []policy.Interface{{MAC: "52:54:00:00:00:01", Type: "bridge"}}},
		Images: images, Now: t0,
	}
}

func TestDefault(t *testing.T) {
	hostdev := in(user())
	hostdev.Domain.Hostdevs = 1
	fsShare := in(user())
	fsShare.Domain.Filesystems = 1
	denyFinding := in(site())
	denyFinding.Domain.Findings = []policy.Finding{{Rule: "graphics-listen", Severity: "warn"}, {Rule: "seclabel-none", Severity: "deny"}}
	warnFinding := in(endorsed())
	warnFinding.Domain.Findings = []policy.Finding{{Rule: "graphics-listen", Severity: "warn"}}
	endorsedHostdev := in(endorsed())
	endorsedHostdev.Domain.Hostdevs = 1
	noTime := in(site())
	noTime.Now = time.Time{}

	tests := []struct {
		name    string
		in      policy.Input
		allow   bool
		class   int
		rule    string
		profile string
	}{
		{"site image is class 1", in(site()), true, 1, "class1-site", "site"},
		{"endorsed image is class 2", in(endorsed()), true, 2, "class2-endorsed", "endorsed"},
		{"site and endorsed disks are class 2", in(site(), endorsed()), true, 2, "class2-endorsed", "endorsed"},
		{"user image is class 3", in(user()), true, 3, "class3-user", "dmz"},
		{"user and endorsed disks are class 3", in(user(), endorsed()), true, 3, "class3-user", "dmz"},
		{"warn finding does not deny", warnFinding, true, 2, "class2-endorsed", "endorsed"},
		{"endorsed image may have a hostdev", endorsedHostdev, true, 2, "class2-endorsed", "endorsed"},

		{"no images", in(), false, 0, "no-images", ""},
		{"unknown image", in(with(endorsed(), func(i *policy.Image) { i.State = "unknown" })), false, 0, "", ""},
		{"unknown beside site image", in(site(), with(site(), func(i *policy.Image) { i.State = "unknown" })), false, 0, "", ""},
		{"revoked image", in(with(endorsed(), func(i *policy.Image) { i.State = "revoked" })), false, 0, "image-revoked", ""},
		{"modified image", in(with(site(), func(i *policy.Image) { i.State = "modified" })), false, 0, "image-modified", ""},
		{"expired list", in(with(endorsed(), func(i *policy.Image) { i.State = "expired" })), false, 0, "image-expired", ""},
		{"stale subscription", in(with(endorsed(), func(i *policy.Image) { i.SubscriptionStale = true })), false, 0, "subscription-stale", ""},
		{"stale site subscription", in(with(site(), func(i *policy.Image) { i.SubscriptionStale = true })), false, 0, "subscription-stale", ""},
		{"revoked beside good", in(site(), with(endorsed(), func(i *policy.Image) { i.State = "revoked" })), false, 0, "image-revoked", ""},
		{"user image with blocking findings", in(with(user(), func(i *policy.Image) { i.Inspection.BlockingFindings = 2 })), false, 0, "", ""},
		{"cached image without endorser", in(with(endorsed(), func(i *policy.Image) { i.Endorser = "" })), false, 0, "", ""},
		{"unrecognised state", in(with(endorsed(), func(i *policy.Image) { i.State = "Cached" })), false, 0, "", ""},
		{"class 3 with hostdev", hostdev, false, 0, "class3-passthrough", ""},
		{"class 3 with filesystem share", fsShare, false, 0, "class3-passthrough", ""},
		{"domain check deny", denyFinding, false, 0, "domain-check-deny", ""},
		{"missing time", noTime, false, 0, "", ""},
		{"zero input", policy.Input{}, false, 0, "", ""},
	}
	p := policy.Default()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := p.Decide(context.Background(), tt.in)
			if d.Allow != tt.allow || d.Class != tt.class || d.Rule != tt.rule || d.Profile.Name != tt.profile {
				t.Errorf("Decide = %+v, want allow=%v class=%d rule=%q profile=%q", d, tt.allow, tt.class, tt.rule, tt.profile)
			}
			if d.Reason == "" {
				t.Error("Decide: empty reason")
			}
			if !d.Allow && (d.Class != 0 || d.Profile.Name != "" || d.FailOpen) {
				t.Errorf("Decide = %+v: a denial carries a class, profile or fail-open", d)
			}
		})
	}
}

func TestDefaultProfiles(t *testing.T) {
	p := policy.Default()
	if p.FailOpenClass1() {
		t.Error("Default().FailOpenClass1() = true, want false")
	}
	dmz, ok := p.Profile("dmz")
	if !ok || dmz.Class != 3 || dmz.Inbound != policy.InboundDeny || len(dmz.AllowedAddresses) != 0 || dmz.RateLimitPPS == 0 {
		t.Errorf("Profile(dmz) = %+v, %v; want class 3, inbound deny, no addresses, a rate limit", dmz, ok)
	}
	d := p.Decide(context.Background(), in(user()))
	d.Profile.Egress[0].Ports[0] = 1 // a Decision's profile is a copy
	if again, _ := p.Profile("dmz"); again.Egress[0].Ports[0] == 1 {
		t.Error("Decide returned a profile aliasing the policy")
	}
}

const profiles = `
[profile.p1]
class = 1
inbound = "allow"
[profile.p3]
class = 3
inbound = "deny"
allowed_addresses = ["192.0.2.0/24", "2001:db8::/32"]
egress = [{ cidr = "198.51.100.0/24", ports = [443] }]
rate_limit_pps = 100
quarantine = true
`

func rule(name, when, decision string, class int, profile string) string {
	s := "[[rule]]\nname = " + q(name) + "\nwhen = " + q(when) + "\ndecision = " + q(decision) + "\nreason = " + q("because "+name) + "\n"
	if class != 0 {
		s += "class = " + string(rune('0'+class)) + "\n"
	}
	if profile != "" {
		s += "profile = " + q(profile) + "\n"
	}
	return s
}

func q(s string) string { return "'''" + s + "'''" }

func TestCustom(t *testing.T) {
	hostile := "[0,1,2,3,4,5,6,7,8,9].all(a, [0,1,2,3,4,5,6,7,8,9].all(b, [0,1,2,3,4,5,6,7,8,9].all(c, [0,1,2,3,4,5,6,7,8,9].all(d, a+b+c+d >= 0))))"
	tests := []struct {
		name   string
		policy string
		in     policy.Input
		allow  bool
		class  int
		rule   string
		reason string // substring
		fo     bool
	}{
		{"first match wins", rule("a", "true", "allow", 3, "p3") + rule("b", "true", "allow", 1, "p1"), in(site()), true, 3, "a", "because a", false},
		{"deny before allow", rule("d", "domain.name == 'vm1'", "deny", 0, "") + rule("a", "true", "allow", 1, "p1"), in(site()), false, 0, "d", "because d", false},
		{"false rules fall through", rule("d", "domain.name == 'other'", "deny", 0, "") + rule("a", "true", "allow", 1, "p1"), in(site()), true, 1, "a", "because a", false},
		{"no match denies", rule("a", "false", "allow", 1, "p1"), in(site()), false, 0, "", policy.ReasonNoMatch, false},
		{"time in rule", rule("a", "now > timestamp('2026-01-01T00:00:00Z')", "allow", 1, "p1"), in(site()), true, 1, "a", "", false},
		{"mac in rule", rule("a", "domain.interfaces.all(i, i.mac.startsWith('52:54:00:'))", "allow", 1, "p1"), in(site()), true, 1, "a", "", false},
		{"inspection fields", rule("a", "images.all(i, !i.inspection.eol && i.inspection.max_severity != 'critical')", "allow", 3, "p3"), in(user()), true, 3, "a", "", false},
		{"cost limit denies", rule("a", hostile, "allow", 1, "p1"), in(site()), false, 0, "a", "cost", false},
		{"runtime error denies", rule("a", "images[5].id == 'x'", "allow", 1, "p1"), in(site()), false, 0, "a", "policy evaluation failed", false},
		{"division by zero denies", rule("a", "1 / (domain.disks - 1) == 0", "allow", 1, "p1"), in(site()), false, 0, "a", "division", false},
		{"error stops later rules", rule("e", "images[3].id == 'x'", "deny", 0, "") + rule("a", "true", "allow", 1, "p1"), in(site()), false, 0, "e", "policy evaluation failed", false},
		{"fail open for class 1", "fail_open_class1 = true\n" + rule("e", "images[3].id == 'x'", "deny", 0, "") + rule("a", "true", "allow", 1, "p1"), in(site()), true, 1, "a", "fail_open_class1", true},
		{"fail open not for class 2", "fail_open_class1 = true\n" + rule("e", "images[3].id == 'x'", "deny", 0, "") + rule("a", "true", "allow", 1, "p1"), in(endorsed()), false, 0, "e", "policy evaluation failed", false},
		{"fail open not for a deny finding", "fail_open_class1 = true\n" + rule("e", "images[3].id == 'x'", "deny", 0, "") + rule("a", "true", "allow", 1, "p1"),
			func() policy.Input { i := in(site()); i.Domain.Findings = []policy.Finding{{"x", "deny"}}; return i }(), false, 0, "e", "", false},
		{"fail open needs a class 1 rule", "fail_open_class1 = true\n" + rule("e", "images[3].id == 'x'", "deny", 0, ""), in(site()), false, 0, "e", "", false},
		{"fail open needs images", "fail_open_class1 = true\n" + rule("e", "images[3].id == 'x'", "deny", 0, "") + rule("a", "true", "allow", 1, "p1"), in(), false, 0, "e", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := policy.Parse([]byte(tt.policy + profiles))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			d := p.Decide(context.Background(), tt.in)
			if d.Allow != tt.allow || d.Class != tt.class || d.Rule != tt.rule || d.FailOpen != tt.fo || !strings.Contains(d.Reason, tt.reason) {
				t.Errorf("Decide = %+v, want allow=%v class=%d rule=%q fail-open=%v reason containing %q", d, tt.allow, tt.class, tt.rule, tt.fo, tt.reason)
			}
		})
	}
}

func TestCustomProfile(t *testing.T) {
	p, err := policy.Parse([]byte(rule("a", "true", "allow", 3, "p3") + profiles))
	if err != nil {
		t.Fatal(err)
	}
	d := p.Decide(context.Background(), in(user()))
	want := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/32")}
	pr := d.Profile
	if pr.Name != "p3" || pr.Class != 3 || len(pr.AllowedAddresses) != 2 || pr.AllowedAddresses[0] != want[0] || pr.AllowedAddresses[1] != want[1] ||
		len(pr.Egress) != 1 || pr.Egress[0].CIDR != netip.MustParsePrefix("198.51.100.0/24") || len(pr.Egress[0].Ports) != 1 || pr.Egress[0].Ports[0] != 443 ||
		pr.RateLimitPPS != 100 || !pr.Quarantine || pr.Inbound != "deny" {
		t.Errorf("Decide(...).Profile = %+v", pr)
	}
}

func TestIdentityChange(t *testing.T) {
	ok := rule("a", "true", "allow", 1, "p1") + profiles
	for _, tc := range []struct {
		src    string
		refuse bool
	}{{ok, false}, {"identity_change = 'rehash'\n" + ok, false}, {"identity_change = 'refuse'\n" + ok, true}} {
		p, err := policy.Parse([]byte(tc.src))
		if err != nil || p.RefuseChangedImages() != tc.refuse {
			t.Errorf("Parse(%.30q): %v, RefuseChangedImages %v, want %v", tc.src, err, p != nil && p.RefuseChangedImages(), tc.refuse)
		}
	}
	if p, err := policy.Parse([]byte("privileged_networks = ['10.10.0.0/16', '2001:db8:1::/48']\n" + ok)); err != nil || len(p.PrivilegedNetworks()) != 2 {
		t.Errorf("privileged_networks: %v", err)
	}
	if policy.Default().RefuseChangedImages() {
		t.Error("the default policy refuses changed images; it re-hashes them")
	}
}

func TestDecideCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if d := policy.Default().Decide(ctx, in(site())); d.Allow || !strings.Contains(d.Reason, "canceled") {
		t.Errorf("Decide(cancelled) = %+v, want a denial naming the cancellation", d)
	}
}

func TestParseErrors(t *testing.T) {
	ok := rule("a", "true", "allow", 1, "p1")
	tests := []struct {
		name, policy, want string
	}{
		{"empty", "", "no [[rule]]"},
		{"not toml", "[[rule", "expected"},
		{"unknown top key", "fail_closed = true\n" + ok + profiles, "unknown key"},
		{"unknown rule key", ok + "priority = 3\n" + profiles, "unknown key"},
		{"unknown profile key", ok + profiles + "ports = 3\n", "unknown key"},
		{"wrong type", "fail_open_class1 = 'yes'\n" + ok + profiles, "fail_open_class1"},
		{"bad identity_change", "identity_change = 'trust'\n" + ok + profiles, "identity_change"},
		{"privileged host bits", "privileged_networks = ['10.1.2.3/16']\n" + ok + profiles, "privileged_networks"},
		{"privileged not a cidr", "privileged_networks = ['storage']\n" + ok + profiles, "privileged_networks"},
		{"identity_change not a string", "identity_change = true\n" + ok + profiles, "identity_change"},
		{"syntax error", rule("a", "domain.name ==", "allow", 1, "p1") + profiles, `rule "a"`},
		{"type error", rule("a", "domain.disks == 'two'", "allow", 1, "p1") + profiles, `rule "a"`},
		{"timestamp type error", rule("a", "now > 3", "allow", 1, "p1") + profiles, `rule "a"`},
		{"missing variable", rule("a", "user.name == 'x'", "allow", 1, "p1") + profiles, "undeclared reference"},
		{"missing field", rule("a", "domain.owner == 'x'", "allow", 1, "p1") + profiles, "owner"},
		{"non-bool int", rule("a", "domain.disks", "allow", 1, "p1") + profiles, "want bool"},
		{"non-bool string", rule("a", "domain.name", "deny", 0, "") + profiles, "want bool"},
		{"non-bool dyn", rule("a", "dyn(true)", "deny", 0, "") + profiles, "want bool"},
		{"empty when", rule("a", " ", "deny", 0, "") + profiles, "when is empty"},
		{"too long when", rule("a", strings.Repeat("true && ", 600)+"true", "deny", 0, "") + profiles, "longer than"},
		{"bad decision", rule("a", "true", "maybe", 0, "") + profiles, "want allow or deny"},
		{"allow without class", rule("a", "true", "allow", 0, "p1") + profiles, "class = 0"},
		{"allow class 4", strings.Replace(ok, "class = 1", "class = 4", 1) + profiles, "class = 4"},
		{"allow without profile", rule("a", "true", "allow", 1, "") + profiles, "needs a profile"},
		{"unknown profile", rule("a", "true", "allow", 1, "nope") + profiles, "not defined"},
		{"profile of other class", rule("a", "true", "allow", 1, "p3") + profiles, "of class 3"},
		{"deny with class", rule("a", "true", "deny", 2, "") + profiles, "no class or profile"},
		{"duplicate rule", ok + ok + profiles, "duplicate"},
		{"bad rule name", rule("A b", "true", "deny", 0, "") + profiles, "name"},
		{"template reason", strings.Replace(ok, "because a", "{{.Name}}", 1) + profiles, "templates"},
		{"empty reason", strings.Replace(ok, "because a", "", 1) + profiles, "reason: empty"},
		{"control in reason", strings.Replace(ok, q("because a"), `"a\u001b[2Jb"`, 1) + profiles, "non-printable"},
		{"bad inbound", ok + strings.Replace(profiles, `"allow"`, `"open"`, 1), "inbound"},
		{"bad cidr", ok + strings.Replace(profiles, "192.0.2.0/24", "192.0.2.0/33", 1), "192.0.2.0/33"},
		{"host bits", ok + strings.Replace(profiles, "192.0.2.0/24", "192.0.2.1/24", 1), "host bits"},
		{"bad port", ok + strings.Replace(profiles, "[443]", "[0]", 1), "port 0"},
		{"negative rate", ok + strings.Replace(profiles, "= 100\n", "= -1\n", 1), "rate_limit_pps"},
		{"profile class 0", ok + strings.Replace(profiles, "class = 3", "class = 0", 1), "class = 0"},
		{"too large", ok + profiles + "#" + strings.Repeat("x", policy.MaxFileSize), "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := policy.Parse([]byte(tt.policy))
			if err == nil || p != nil {
				t.Fatalf("Parse = %v, %v; want nil and an error containing %q", p, err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse error = %q, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "policy.toml")
	if err := os.WriteFile(good, policy.DefaultSource(), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := policy.Load(good)
	if err != nil {
		t.Fatalf("Load(default source) = %v", err)
	}
	if len(p.Rules()) != len(policy.Default().Rules()) {
		t.Errorf("Load(default source) has %d rules, want %d", len(p.Rules()), len(policy.Default().Rules()))
	}
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("x = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{bad, filepath.Join(dir, "missing.toml"), dir} {
		if p, err := policy.Load(path); err == nil || p != nil || !strings.Contains(err.Error(), "policy") {
			t.Errorf("Load(%s) = %v, %v; want nil and a policy error", path, p, err)
		}
	}
}
