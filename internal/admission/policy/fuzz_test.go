package policy_test

import (
	"context"
	"testing"

	"github.com/vmtrust/vmtrust/internal/admission/policy"
)

// FuzzParse: no panic; an error returns no policy; a returned policy decides
// without panicking and denies with a reason or allows with a valid class
// and profile.
func FuzzParse(f *testing.F) {
	f.Add(policy.DefaultSource())
	f.Add([]byte(rule("a", "true", "allow", 3, "p3") + profiles))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := policy.Parse(b)
		if err != nil {
			if p != nil {
				t.Fatal("Parse returned a policy with an error")
			}
			return
		}
		for _, i := range []policy.Input{in(site()), in(user()), in(), {}} {
			d := p.Decide(context.Background(), i)
			if d.Reason == "" {
				t.Fatalf("Decide = %+v: no reason", d)
			}
			if d.Allow && (d.Class < 1 || d.Class > 3 || d.Profile.Class != d.Class) {
				t.Fatalf("Decide = %+v: allowed with a bad class or profile", d)
			}
		}
	})
}
