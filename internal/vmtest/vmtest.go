// Package vmtest holds helpers shared by vmtrust's tests. It is for tests
// only; nothing outside _test.go files may import it.
package vmtest

import (
	"os"
	"path/filepath"
	"testing"
)

// ModuleRoot is the directory holding go.mod, found from the working
// directory of the test.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("vmtest: no go.mod above the test's directory")
		}
		dir = parent
	}
}

// SharedTestdata returns the path of sub inside the project's third-party
// test data: $VMTRUST_TESTDATA, or ../shared/testdata beside the repository.
// The data is never copied into the repository. When it is absent the test
// is skipped with a message, except under CI (CI set), where it fails.
func SharedTestdata(t testing.TB, sub string) string {
	t.Helper()
	base := os.Getenv("VMTRUST_TESTDATA")
	if base == "" {
		base = filepath.Join(ModuleRoot(t), "..", "shared", "testdata")
	}
	p := filepath.Join(base, sub)
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("third-party test data %s is missing (CI is set, so this test must run): %v", p, err)
		}
		t.Skipf("third-party test data %s is absent (set VMTRUST_TESTDATA to the shared testdata folder): %v", p, err)
	}
	return p
}

// Require fails the test with a clear message when a command the test needs
// is not installed. Tests never skip silently over a missing install step.
func Require(t testing.TB, cmds ...string) {
	t.Helper()
	for _, c := range cmds {
		if _, err := lookPath(c); err != nil {
			t.Fatalf("%s is required by this test but not installed: run 'make setup' (scripts/setup.sh)", c)
		}
	}
}
