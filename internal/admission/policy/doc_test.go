package policy_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/vmtrust/vmtrust/internal/admission/policy"
)

// TestDocFormat: the example in the package documentation is a valid policy
// and means what the documentation says.
func TestDocFormat(t *testing.T) {
	src, err := os.ReadFile("policy.go")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(src), "// # Format\n//\n")
	if !ok {
		t.Fatal("policy.go: no # Format section")
	}
	var b strings.Builder
	for _, line := range strings.Split(rest, "\n") {
		l, ok := strings.CutPrefix(line, "//\t")
		if !ok {
			if line == "//" {
				b.WriteString("\n")
				continue
			}
			break
		}
		b.WriteString(l + "\n")
	}
	p, err := policy.Parse([]byte(b.String()))
	if err != nil {
		t.Fatalf("Parse(doc example) = %v\n%s", err, b.String())
	}
	if d := p.Decide(context.Background(), in(user())); !d.Allow || d.Class != 3 || d.Profile.Name != "dmz" {
		t.Errorf("doc example: Decide(user image) = %+v, want class 3 in dmz", d)
	}
	if d := p.Decide(context.Background(), in(site())); d.Allow || d.Reason != policy.ReasonNoMatch {
		t.Errorf("doc example: Decide(site image) = %+v, want %q", d, policy.ReasonNoMatch)
	}
}

func BenchmarkDecideDefault(b *testing.B) {
	p := policy.Default()
	i := in(user(), endorsed())
	i.Domain.Findings = []policy.Finding{{Rule: "graphics-listen", Severity: "warn"}}
	ctx := context.Background()
	for b.Loop() {
		if d := p.Decide(ctx, i); !d.Allow {
			b.Fatal(d.Reason)
		}
	}
}

func BenchmarkDefault(b *testing.B) {
	for b.Loop() {
		policy.Default()
	}
}
