package policy

import (
	"errors"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

func mustSigning(t *testing.T, data string) *Policy {
	t.Helper()
	p, err := ParseSigningPolicy([]byte(data))
	if err != nil {
		t.Fatalf("ParseSigningPolicy: %v", err)
	}
	return p
}

func mustNamespaces(t *testing.T, data, self string) *Policy {
	t.Helper()
	p, err := ParseNamespaces([]byte(data), self)
	if err != nil {
		t.Fatalf("ParseNamespaces: %v", err)
	}
	return p
}

func TestCheckFailsClosed(t *testing.T) {
	p := mustSigning(t, gridkaSigningPolicy)
	const okSubject = "/C=DE/O=GermanGrid/CN=x"
	tests := []struct {
		name    string
		policy  *Policy
		issuer  string
		subject string
		errSub  string
	}{
		{"nil_policy", nil, gridkaDN, okSubject, "empty policy"},
		{"zero_policy", &Policy{}, gridkaDN, okSubject, "empty policy"},
		{"empty_issuer", p, "", okSubject, "issuer DN: empty DN"},
		{"empty_subject", p, gridkaDN, "", "subject DN: empty DN"},
		{"rfc2253_subject", p, gridkaDN, "CN=x,O=GermanGrid,C=DE", "subject DN: DN \"CN=x,O=GermanGrid,C=DE\" is not in OpenSSL oneline form"},
		{"slash_only", p, gridkaDN, "/", "not in OpenSSL oneline form"},
		{"nul_in_subject", p, gridkaDN, "/C=DE/O=GermanGrid/CN=x\x00/CN=y", "subject DN: control character U+0000"},
		{"newline_in_subject", p, gridkaDN, "/C=DE/O=GermanGrid/CN=x\n/CN=y", "subject DN: control character U+000A"},
		{"invalid_utf8_subject", p, gridkaDN, "/C=DE/O=GermanGrid/CN=\xff", "subject DN: invalid UTF-8"},
		{"long_subject", p, gridkaDN, "/C=DE/O=GermanGrid/CN=" + strings.Repeat("x", MaxDNLength), "subject DN: DN is"},
		{"nul_in_issuer", p, gridkaDN + "\x00", okSubject, "issuer DN: control character"},
		{"issuer_prefix", p, "/C=DE/O=GermanGrid/CN=GridKa", okSubject, "no access_id_CA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.policy.Check(tt.issuer, tt.subject)
			if err == nil {
				t.Fatal("Check succeeded, want error")
			}
			if !errors.Is(err, ErrNotPermitted) {
				t.Errorf("error %v does not wrap ErrNotPermitted", err)
			}
			if !strings.Contains(err.Error(), tt.errSub) {
				t.Errorf("error %q does not contain %q", err, tt.errSub)
			}
		})
	}
}

func TestCombine(t *testing.T) {
	sp := mustSigning(t, "access_id_CA X509 '/C=X/CN=CA'\npos_rights globus CA:sign\n"+
		"cond_subjects globus '\"/C=X/O=a/*\" \"/C=X/O=b/*\"'\n")
	ns := mustNamespaces(t, "TO Issuer SELF PERMIT Subject \"/C=X/O=(a|c)/.*\"\n", "/C=X/CN=CA")
	both, err := Combine(sp, ns)
	if err != nil {
		t.Fatalf("Combine: %v", err)
	}
	runChecks(t, both, []checkCase{
		{"both_permit", "/C=X/CN=CA", "/C=X/O=a/CN=u", ""},
		{"only_signing_policy_permits", "/C=X/CN=CA", "/C=X/O=b/CN=u", "namespaces: no PERMIT rule"},
		{"only_namespaces_permits", "/C=X/CN=CA", "/C=X/O=c/CN=u", "signing_policy: no cond_subjects pattern"},
		{"neither_permits", "/C=X/CN=CA", "/C=X/O=d/CN=u", "signing_policy: no cond_subjects pattern"},
	})

	for _, tt := range []struct {
		name string
		args []*Policy
	}{
		{"no_arguments", nil},
		{"nil_argument", []*Policy{sp, nil}},
		{"zero_argument", []*Policy{{}, ns}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Combine(tt.args...)
			if err == nil || p != nil {
				t.Fatalf("Combine = %v, %v; want nil, error", p, err)
			}
		})
	}
}

// TestGlobMatchAgainstRegexp compares globMatch with a straightforward
// translation of the glob into an anchored regular expression.
func TestGlobMatchAgainstRegexp(t *testing.T) {
	toRegexp := func(glob string) *regexp.Regexp {
		var b strings.Builder
		b.WriteString(`^(?s:`)
		for _, r := range glob {
			switch r {
			case '*':
				b.WriteString(`.*`)
			case '?':
				b.WriteString(`.`)
			default:
				b.WriteString(regexp.QuoteMeta(string(r)))
			}
		}
		b.WriteString(`)$`)
		return regexp.MustCompile(b.String())
	}
	fixed := []struct{ glob, s string }{
		{"", ""}, {"", "a"}, {"*", ""}, {"*", "abc"}, {"?", ""}, {"?", "é"},
		{"a*b*c", "aXbYc"}, {"a*b*c", "abcabc"}, {"a*b*c", "acb"}, {"*a", "bbba"},
		{"*a*", "xyz"}, {"a**b", "ab"}, {"*?*", ""}, {"*?*", "x"}, {".", "x"},
		{"/C=DE/*", "/C=DE/"}, {"/C=DE/*", "/C=DE"}, {"a?c*", "abcdef"},
	}
	for _, f := range fixed {
		if got, want := globMatch(f.glob, f.s), toRegexp(f.glob).MatchString(f.s); got != want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", f.glob, f.s, got, want)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "ab/*?.é"
	runes := []rune(alphabet)
	gen := func(n int, wild bool) string {
		var b strings.Builder
		for i := rng.IntN(n + 1); i > 0; i-- {
			r := runes[rng.IntN(len(runes))]
			if !wild && (r == '*' || r == '?') {
				r = 'a'
			}
			b.WriteRune(r)
		}
		return b.String()
	}
	for i := 0; i < 20000; i++ {
		glob, s := gen(8, true), gen(10, rng.IntN(4) == 0)
		if got, want := globMatch(glob, s), toRegexp(glob).MatchString(s); got != want {
			t.Fatalf("globMatch(%q, %q) = %v, want %v", glob, s, got, want)
		}
	}
}

func TestConcurrentCheck(t *testing.T) {
	p := mustNamespaces(t, ukNamespaces, "")
	done := make(chan error, 8)
	for i := 0; i < 8; i++ {
		go func() {
			var err error
			for j := 0; j < 200 && err == nil; j++ {
				err = p.Check(ukDN, "/C=UK/O=eScience/OU=Oxford/L=OeSC/CN=alice")
			}
			done <- err
		}()
	}
	for i := 0; i < 8; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}
