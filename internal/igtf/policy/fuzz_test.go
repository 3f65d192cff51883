package policy

import (
	"errors"
	"strings"
	"testing"
)

// The checked-in seed corpora live in testdata/fuzz/<FuzzTarget>/.

// checkParseResult asserts the contract shared by both parsers.
func checkParseResult(t *testing.T, kind string, p *Policy, err error) {
	t.Helper()
	if err != nil {
		if p != nil {
			t.Fatalf("error %v returned with a non-nil policy", err)
		}
		if !strings.HasPrefix(err.Error(), kind) {
			t.Fatalf("error %q does not start with %q", err, kind)
		}
		return
	}
	if p == nil {
		t.Fatal("nil policy returned without an error")
	}
	if len(p.parts) != 1 {
		t.Fatalf("policy has %d parts, want 1", len(p.parts))
	}
}

// fuzzSubjects are subjects checked against every issuer of a parsed policy.
func fuzzSubjects(data []byte) []string {
	s := []string{"/C=DE/O=GermanGrid/CN=x", "/DC=org/DC=example/CN=y"}
	if len(data) > 0 && len(data) <= MaxDNLength {
		s = append(s, "/"+string(data), "/CN="+string(data))
	}
	return s
}

func checkNoPanic(t *testing.T, p *Policy, issuer, subject string) {
	t.Helper()
	if err := p.Check(issuer, subject); err != nil && !errors.Is(err, ErrNotPermitted) {
		t.Fatalf("Check(%q, %q) error %v does not wrap ErrNotPermitted", issuer, subject, err)
	}
}

func FuzzParseSigningPolicy(f *testing.F) {
	f.Add([]byte(gridkaSigningPolicy))
	f.Add([]byte(cernSigningPolicy))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseSigningPolicy(data)
		checkParseResult(t, kindSigning, p, err)
		if p == nil {
			return
		}
		sp := p.parts[0].(*signingPolicy)
		rules := 0
		for i, b := range sp.blocks {
			if len(b.issuers) == 0 || len(b.patterns) == 0 {
				t.Fatalf("block at line %d has %d issuers and %d patterns", b.line, len(b.issuers), len(b.patterns))
			}
			rules += len(b.issuers) + len(b.patterns)
			if i >= 16 || len(b.issuers)*len(b.patterns) > 256 {
				continue // keep each input fast; Check itself is O(rules)
			}
			for _, iss := range b.issuers {
				for _, subj := range fuzzSubjects(data) {
					checkNoPanic(t, p, iss, subj)
				}
				// Every glob matches its own text, so a pattern that
				// is itself a valid DN must be permitted.
				for _, pat := range b.patterns {
					if validateDN(pat.glob) == nil {
						if err := p.Check(iss, pat.glob); err != nil {
							t.Fatalf("Check(%q, %q) = %v, want permitted", iss, pat.glob, err)
						}
					}
				}
			}
		}
		if rules == 0 || rules > MaxRules {
			t.Fatalf("parsed %d rules", rules)
		}
	})
}

func FuzzParseNamespaces(f *testing.F) {
	f.Add([]byte(cernGridNamespaces))
	f.Add([]byte(ukNamespaces))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseNamespaces(data, selfDN)
		checkParseResult(t, kindNamespaces, p, err)
		if p == nil {
			return
		}
		np := p.parts[0].(*namespacesPolicy)
		if len(np.rules) == 0 || len(np.rules) > MaxRules {
			t.Fatalf("parsed %d rules", len(np.rules))
		}
		for i, r := range np.rules {
			if i == 64 { // keep each input fast; Check itself is O(rules)
				break
			}
			if validateDN(r.issuer) != nil || r.re == nil {
				t.Fatalf("rule at line %d is malformed: %+v", r.line, r)
			}
			for _, subj := range fuzzSubjects(data) {
				checkNoPanic(t, p, r.issuer, subj)
				// A subject matched by a DENY rule is never permitted.
				if r.deny && validateDN(subj) == nil && r.re.MatchString(subj) {
					if err := p.Check(r.issuer, subj); err == nil {
						t.Fatalf("Check(%q, %q) permitted despite DENY on line %d", r.issuer, subj, r.line)
					}
				}
			}
		}
	})
}
