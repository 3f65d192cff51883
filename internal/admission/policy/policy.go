// Package policy is the site admission policy: one TOML file of ordered
// rules whose conditions are CEL expressions over a domain, its images and
// the time, and of the containment profiles the rules assign.
//
// # Guarantees
//
// Parse is strict and bounded: the file is at most MaxFileSize bytes; an
// unknown key, a value of the wrong type or out of its bounds, a duplicate
// rule name, an allow rule without a class or with a profile that does not
// exist or is of another class, and a CIDR that is not canonical are
// errors. Every rule is compiled and type-checked at load time against the
// declared variables (domain, images, now); a syntax or type error, a
// reference to an undeclared variable or field, or a result type other than
// bool is a load error naming the rule. A returned *Policy is immutable and
// safe for concurrent use.
//
// Decide fails closed: the first rule whose condition is true decides; no
// match denies with "no rule allows this domain". An evaluation error, a
// condition whose evaluation exceeds MaxRuleCost (a hostile policy cannot
// hang the hook), a cancelled context or an input without a time all deny,
// with the error as the reason. The one exception is the explicit policy
// switch fail_open_class1 (default false): when it is set and a rule fails
// to evaluate, a domain whose images are all cached, site-endorsed and not
// from a stale subscription, with no domain finding of severity "deny", is
// allowed as class 1 with the profile of the first class-1 allow rule, and
// the Decision says FailOpen so the caller logs it.
//
// # Trusted
//
// The policy file is trusted to express the site's intent, not to be
// benign: its cost is bounded. The Input is trusted to describe the domain
// and images truthfully; computing it is the caller's job.
//
// # Format
//
//	fail_open_class1 = false
//	identity_change = "rehash"    # or "refuse": a cached file whose identity changed is "modified"
//	privileged_networks = ["10.10.0.0/16"]   # class 3 never reaches these (network containment)
//
//	[[rule]]
//	name = "class3-user"
//	when = "images.all(i, i.state == 'user-registered' && i.inspection.blocking_findings == 0)"
//	decision = "allow"            # or "deny"
//	class = 3                     # 1, 2 or 3; allow rules only
//	profile = "dmz"               # allow rules only
//	reason = "user-supplied image that passed inspection"
//
//	[profile.dmz]
//	class = 3
//	allowed_addresses = ["192.0.2.0/24"]   # networks the guest's addresses must lie in; empty: only its lease
//	inbound = "deny"                       # "deny", "allow-established" or "allow"
//	egress = [{ cidr = "0.0.0.0/0", ports = [80, 443] }]   # no ports: all ports
//	rate_limit_pps = 10000                 # 0: no limit
//	quarantine = false
//
// CEL variables: domain (name, uuid, type, disks, interfaces[{mac, type}],
// hostdevs, filesystems, findings[{rule, severity}]), images[{id, sha512,
// state, endorser, owner, endorser_is_site, subscription_stale, inspection{
// blocking_findings, max_severity, eol, os, vulnerabilities,
// vulnerabilities_not_checked}}] and now (timestamp). Image states
// are "cached", "expired", "revoked", "unknown", "modified" and
// "user-registered".
//
// # Compatibility
//
// New variables and fields may be added; existing ones keep their names and
// types. Default is the documented default for the three trust classes.
package policy

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/ext"
	"github.com/vmtrust/vmtrust/internal/config"
)

// Bounds.
const (
	MaxFileSize    = 1 << 20
	MaxRules       = 128
	MaxProfiles    = 64
	MaxExprLen     = 4096
	MaxReasonLen   = 512
	MaxAddresses   = 256
	MaxEgressRules = 256
	MaxPorts       = 64
	MaxRatePPS     = 100_000_000
	// MaxRuleCost bounds one rule's evaluation (CEL cost units, roughly one
	// per operation or comprehension step).
	MaxRuleCost = 10_000
)

// Decisions and inbound modes.
const (
	Allow = "allow"
	Deny  = "deny"

	InboundDeny        = "deny"
	InboundEstablished = "allow-established"
	InboundAllow       = "allow"
)

// What admission does with an image whose file identity changed since its
// digest was verified (identity_change).
const (
	IdentityRehash = "rehash" // re-compute the digest (the default)
	IdentityRefuse = "refuse" // treat the image as modified
)

// RefuseChangedImages reports whether identity_change is "refuse": an image
// file whose identity (device, inode, size, mtime, ctime) differs from the
// one recorded when its digest was verified is treated as modified instead
// of being re-hashed.
func (p *Policy) RefuseChangedImages() bool { return p.refuseChanged }

// PrivilegedNetworks are the site's privileged networks
// (privileged_networks: storage, management, LHC-OPN, ...): network
// containment keeps class-3 VMs from ever reaching them.
func (p *Policy) PrivilegedNetworks() []netip.Prefix { return slices.Clone(p.privileged) }

// ReasonNoMatch is the reason when no rule matches.
const ReasonNoMatch = "no rule allows this domain"

//go:embed default.toml
var defaultTOML []byte

// Input is what a policy decides on.
type Input struct {
	Domain Domain
	Images []Image
	Now    time.Time
}

// Domain describes the libvirt domain.
type Domain struct {
	Name        string      `cel:"name"`
	UUID        string      `cel:"uuid"`
	Type        string      `cel:"type"`
	Disks       int         `cel:"disks"`
	Interfaces  []Interface `cel:"interfaces"`
	Hostdevs    int         `cel:"hostdevs"`
	Filesystems int         `cel:"filesystems"`
	Findings    []Finding   `cel:"findings"`
}

// Interface is one network interface of the domain.
type Interface struct {
	MAC  string `cel:"mac"`
	Type string `cel:"type"`
}

// Finding is one result of the domain definition checks.
type Finding struct {
	Rule     string `cel:"rule"`
	Severity string `cel:"severity"`
}

// Image is one disk image of the domain, as the cache or registry knows it.
type Image struct {
	ID                string     `cel:"id"`
	SHA512            string     `cel:"sha512"`
	State             string     `cel:"state"`
	Endorser          string     `cel:"endorser"`
	Owner             string     `cel:"owner"` // user images: the owner given at registration
	EndorserIsSite    bool       `cel:"endorser_is_site"`
	SubscriptionStale bool       `cel:"subscription_stale"`
	Inspection        Inspection `cel:"inspection"`
}

// Inspection summarises `vmtrust inspect` for a user-supplied image.
type Inspection struct {
	BlockingFindings int    `cel:"blocking_findings"`
	MaxSeverity      string `cel:"max_severity"`
	EOL              bool   `cel:"eol"`
	OS               string `cel:"os"`
	Vulnerabilities  int    `cel:"vulnerabilities"`
	VulnsNotChecked  bool   `cel:"vulnerabilities_not_checked"`
}

// Egress allows traffic to CIDR on Ports (all ports when empty).
type Egress struct {
	CIDR  netip.Prefix `toml:"cidr"`
	Ports []int        `toml:"ports"`
}

// Profile is a containment profile applied by the network layer.
type Profile struct {
	Name             string         `toml:"-"`
	Class            int            `toml:"class"`
	AllowedAddresses []netip.Prefix `toml:"allowed_addresses"`
	Inbound          string         `toml:"inbound"`
	Egress           []Egress       `toml:"egress"`
	RateLimitPPS     int            `toml:"rate_limit_pps"`
	Quarantine       bool           `toml:"quarantine"`
}

// Rule is one policy rule as written in the file.
type Rule struct {
	Name     string `toml:"name"`
	When     string `toml:"when"`
	Decision string `toml:"decision"`
	Class    int    `toml:"class"`
	Reason   string `toml:"reason"`
	Profile  string `toml:"profile"`
}

// Decision is the outcome of Decide. Profile is zero when Allow is false.
type Decision struct {
	Allow    bool
	Class    int
	Reason   string
	Rule     string
	Profile  Profile
	FailOpen bool
}

// file is the TOML document.
type file struct {
	FailOpenClass1 bool               `toml:"fail_open_class1"`
	IdentityChange string             `toml:"identity_change"`
	Privileged     []netip.Prefix     `toml:"privileged_networks"`
	Rules          []Rule             `toml:"rule"`
	Profiles       map[string]Profile `toml:"profile"`
}

type compiled struct {
	Rule
	prg cel.Program
}

// Policy is a loaded, compiled policy.
type Policy struct {
	failOpenClass1 bool
	refuseChanged  bool
	privileged     []netip.Prefix
	rules          []compiled
	profiles       map[string]Profile
}

// validName: 1..64 of [a-z0-9_.-], starting with a letter or digit.
func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case i > 0 && (c == '_' || c == '.' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// Default is the documented default policy (default.toml) for the three
// trust classes.
func Default() *Policy {
	p, err := Parse(defaultTOML)
	if err != nil {
		panic("policy: embedded default: " + err.Error()) // covered by tests
	}
	return p
}

// DefaultSource is the text of the default policy, for documentation.
func DefaultSource() []byte { return bytes.Clone(defaultTOML) }

// Load reads and parses the policy file at path.
func Load(path string) (*Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", path, err)
	}
	p, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", path, err)
	}
	return p, nil
}

// Parse parses and compiles a policy file's content.
func Parse(b []byte) (*Policy, error) {
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("larger than %d bytes", MaxFileSize)
	}
	var f file
	if err := config.DecodeStrict(b, &f); err != nil {
		return nil, err
	}
	if err := f.validate(); err != nil {
		return nil, err
	}
	env, err := newEnv()
	if err != nil {
		return nil, fmt.Errorf("cel environment: %w", err)
	}
	p := &Policy{failOpenClass1: f.FailOpenClass1, refuseChanged: f.IdentityChange == IdentityRefuse,
		privileged: f.Privileged, profiles: map[string]Profile{}}
	for name, pr := range f.Profiles {
		pr.Name = name
		p.profiles[name] = pr
	}
	for _, r := range f.Rules {
		ast, iss := env.Compile(r.When)
		if iss.Err() != nil {
			return nil, fmt.Errorf("rule %q: %w", r.Name, iss.Err())
		}
		if !ast.OutputType().IsExactType(types.BoolType) {
			return nil, fmt.Errorf("rule %q: when is of type %s, want bool", r.Name, ast.OutputType())
		}
		prg, err := env.Program(ast,
			cel.CostLimit(MaxRuleCost),
			cel.InterruptCheckFrequency(64),
			cel.EvalOptions(cel.OptOptimize))
		if err != nil {
			return nil, fmt.Errorf("rule %q: %w", r.Name, err)
		}
		p.rules = append(p.rules, compiled{Rule: r, prg: prg})
	}
	return p, nil
}

func newEnv() (*cel.Env, error) {
	domainT := reflect.TypeFor[Domain]()
	imageT := reflect.TypeFor[Image]()
	return cel.NewEnv(
		ext.NativeTypes(domainT, imageT, reflect.TypeFor[Interface](),
			reflect.TypeFor[Finding](), reflect.TypeFor[Inspection](),
			ext.ParseStructTags(true)),
		cel.Variable("domain", cel.ObjectType(celName(domainT))),
		cel.Variable("images", cel.ListType(cel.ObjectType(celName(imageT)))),
		cel.Variable("now", cel.TimestampType),
		cel.ParserExpressionSizeLimit(MaxExprLen),
		cel.ParserRecursionLimit(64),
	)
}

// celName is the type name ext.NativeTypes gives a Go type.
func celName(t reflect.Type) string {
	pkg := t.PkgPath()
	if i := strings.LastIndexByte(pkg, '/'); i >= 0 {
		pkg = pkg[i+1:]
	}
	return pkg + "." + t.Name()
}

func (f *file) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(f.Rules) == 0 {
		bad("no [[rule]]")
	}
	if len(f.Rules) > MaxRules {
		bad("%d rules: at most %d", len(f.Rules), MaxRules)
	}
	if len(f.Profiles) > MaxProfiles {
		bad("%d profiles: at most %d", len(f.Profiles), MaxProfiles)
	}
	if len(f.Privileged) > MaxAddresses {
		bad("%d privileged_networks: at most %d", len(f.Privileged), MaxAddresses)
	}
	for _, pfx := range f.Privileged {
		if err := canonical(pfx); err != nil {
			bad("privileged_networks: %v", err)
		}
	}
	switch f.IdentityChange {
	case "", IdentityRehash, IdentityRefuse:
	default:
		bad("identity_change %q: want %q or %q", f.IdentityChange, IdentityRehash, IdentityRefuse)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	names := make([]string, 0, len(f.Profiles))
	for name := range f.Profiles {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		pr := f.Profiles[name]
		if !validName(name) {
			bad("profile %q: want a name of [a-z0-9_.-], at most 64 characters", name)
		}
		if pr.Class < 1 || pr.Class > 3 {
			bad("profile %q: class = %d, want 1, 2 or 3", name, pr.Class)
		}
		switch pr.Inbound {
		case InboundDeny, InboundEstablished, InboundAllow:
		default:
			bad("profile %q: inbound = %q, want deny, allow-established or allow", name, pr.Inbound)
		}
		if len(pr.AllowedAddresses) > MaxAddresses {
			bad("profile %q: %d allowed_addresses, at most %d", name, len(pr.AllowedAddresses), MaxAddresses)
		}
		for _, a := range pr.AllowedAddresses {
			if err := canonical(a); err != nil {
				bad("profile %q: allowed_addresses: %v", name, err)
			}
		}
		if len(pr.Egress) > MaxEgressRules {
			bad("profile %q: %d egress rules, at most %d", name, len(pr.Egress), MaxEgressRules)
		}
		for i, e := range pr.Egress {
			if err := canonical(e.CIDR); err != nil {
				bad("profile %q: egress %d: %v", name, i, err)
			}
			if len(e.Ports) > MaxPorts {
				bad("profile %q: egress %d: %d ports, at most %d", name, i, len(e.Ports), MaxPorts)
			}
			for _, port := range e.Ports {
				if port < 1 || port > 65535 {
					bad("profile %q: egress %d: port %d, want 1..65535", name, i, port)
				}
			}
		}
		if pr.RateLimitPPS < 0 || pr.RateLimitPPS > MaxRatePPS {
			bad("profile %q: rate_limit_pps = %d, want 0..%d", name, pr.RateLimitPPS, MaxRatePPS)
		}
	}
	seen := map[string]bool{}
	for i, r := range f.Rules {
		if !validName(r.Name) {
			bad("rule %d: name %q: want [a-z0-9_.-], at most 64 characters", i, r.Name)
		} else if seen[r.Name] {
			bad("rule %q: duplicate name", r.Name)
		}
		seen[r.Name] = true
		if strings.TrimSpace(r.When) == "" {
			bad("rule %q: when is empty", r.Name)
		}
		if len(r.When) > MaxExprLen {
			bad("rule %q: when is longer than %d bytes", r.Name, MaxExprLen)
		}
		if err := checkReason(r.Reason); err != nil {
			bad("rule %q: reason: %v", r.Name, err)
		}
		switch r.Decision {
		case Allow:
			if r.Class < 1 || r.Class > 3 {
				bad("rule %q: class = %d, want 1, 2 or 3 for an allow rule", r.Name, r.Class)
			}
			pr, ok := f.Profiles[r.Profile]
			switch {
			case r.Profile == "":
				bad("rule %q: an allow rule needs a profile", r.Name)
			case !ok:
				bad("rule %q: profile %q is not defined", r.Name, r.Profile)
			case pr.Class != r.Class:
				bad("rule %q: profile %q is of class %d, the rule of class %d", r.Name, r.Profile, pr.Class, r.Class)
			}
		case Deny:
			if r.Class != 0 || r.Profile != "" {
				bad("rule %q: a deny rule takes no class or profile", r.Name)
			}
		default:
			bad("rule %q: decision = %q, want allow or deny", r.Name, r.Decision)
		}
	}
	return errors.Join(errs...)
}

func canonical(p netip.Prefix) error {
	if !p.IsValid() {
		return errors.New("missing CIDR")
	}
	if p != p.Masked() {
		return fmt.Errorf("CIDR %s has host bits set (want %s)", p, p.Masked())
	}
	return nil
}

func checkReason(s string) error {
	if strings.TrimSpace(s) == "" {
		return errors.New("empty")
	}
	if len(s) > MaxReasonLen {
		return fmt.Errorf("longer than %d bytes", MaxReasonLen)
	}
	if strings.Contains(s, "{{") || strings.Contains(s, "}}") {
		return errors.New("templates ({{ }}) are not supported")
	}
	for _, c := range s {
		if !unicode.IsPrint(c) || c == unicode.ReplacementChar {
			return fmt.Errorf("non-printable character %U", c)
		}
	}
	return nil
}

// FailOpenClass1 reports whether the policy switch fail_open_class1 is set.
func (p *Policy) FailOpenClass1() bool { return p.failOpenClass1 }

// Rules returns the rules in order.
func (p *Policy) Rules() []Rule {
	out := make([]Rule, len(p.rules))
	for i := range p.rules {
		out[i] = p.rules[i].Rule
	}
	return out
}

// Profile returns the named containment profile.
func (p *Policy) Profile(name string) (Profile, bool) {
	pr, ok := p.profiles[name]
	return clone(pr), ok
}

// Decide evaluates the rules in order on in. It never returns an error:
// anything that goes wrong denies, with what went wrong as the reason.
func (p *Policy) Decide(ctx context.Context, in Input) Decision {
	if err := ctx.Err(); err != nil {
		return Decision{Reason: fmt.Sprintf("policy not evaluated: %v", err)}
	}
	if in.Now.IsZero() {
		return Decision{Reason: "policy not evaluated: input has no time"}
	}
	if in.Images == nil {
		in.Images = []Image{}
	}
	vars := map[string]any{"domain": in.Domain, "images": in.Images, "now": in.Now}
	for _, r := range p.rules {
		out, _, err := r.prg.ContextEval(ctx, vars)
		if err == nil {
			if types.IsError(out) {
				err = fmt.Errorf("%v", out)
			} else if b, ok := out.Value().(bool); !ok {
				err = fmt.Errorf("result of type %s, want bool", out.Type())
			} else if !b {
				continue
			} else {
				return p.decision(r.Rule)
			}
		}
		err = fmt.Errorf("rule %q: %w", r.Name, err)
		if d, ok := p.failOpen(in, err); ok {
			return d
		}
		return Decision{Rule: r.Name, Reason: fmt.Sprintf("policy evaluation failed: %v", err)}
	}
	return Decision{Reason: ReasonNoMatch}
}

func (p *Policy) decision(r Rule) Decision {
	if r.Decision != Allow {
		return Decision{Rule: r.Name, Reason: r.Reason}
	}
	return Decision{Allow: true, Class: r.Class, Reason: r.Reason, Rule: r.Name, Profile: clone(p.profiles[r.Profile])}
}

// failOpen applies fail_open_class1 after an evaluation error.
func (p *Policy) failOpen(in Input, err error) (Decision, bool) {
	if !p.failOpenClass1 || len(in.Images) == 0 {
		return Decision{}, false
	}
	for _, f := range in.Domain.Findings {
		if f.Severity == Deny {
			return Decision{}, false
		}
	}
	for _, im := range in.Images {
		if im.State != "cached" || !im.EndorserIsSite || im.SubscriptionStale {
			return Decision{}, false
		}
	}
	for _, r := range p.rules {
		if r.Decision == Allow && r.Class == 1 {
			d := p.decision(r.Rule)
			d.FailOpen = true
			d.Reason = fmt.Sprintf("fail_open_class1: allowed as class 1 although %v", err)
			return d, true
		}
	}
	return Decision{}, false
}

func clone(pr Profile) Profile {
	pr.AllowedAddresses = append([]netip.Prefix(nil), pr.AllowedAddresses...)
	eg := make([]Egress, len(pr.Egress))
	for i, e := range pr.Egress {
		eg[i] = Egress{CIDR: e.CIDR, Ports: append([]int(nil), e.Ports...)}
	}
	if pr.Egress == nil {
		eg = nil
	}
	pr.Egress = eg
	return pr
}
