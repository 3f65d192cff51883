package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmtrust/vmtrust/internal/config"
)

func write(t *testing.T, s string) string {
	p := filepath.Join(t.TempDir(), "vmtrust.toml")
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoad(t *testing.T) {
	c, err := config.Load(write(t, `
trust_dir = "/srv/ca"
crl = "optional"
max_list_lifetime = "30d"
downloads = 4
[[hook]]
name = "log"
command = ["/bin/true"]
`), true)
	if err != nil {
		t.Fatal(err)
	}
	if c.TrustDir != "/srv/ca" || c.CRL != "optional" || time.Duration(c.MaxListLifetime) != 30*24*time.Hour ||
		c.Downloads != 4 || c.Retries != config.DefaultRetries || len(c.Hooks) != 1 || time.Duration(c.Hooks[0].Timeout) != config.DefaultHookTimeout {
		t.Fatalf("Load = %+v", c)
	}
	if c, err := config.Load(filepath.Join(t.TempDir(), "absent.toml"), false); err != nil || c.TrustDir != config.DefaultTrustDir {
		t.Fatalf("absent, implicit: %v %+v", err, c)
	}
	if _, err := config.Load(filepath.Join(t.TempDir(), "absent.toml"), true); err == nil {
		t.Fatal("absent, explicit: no error")
	}
}

func TestLoadRejects(t *testing.T) {
	for name, tc := range map[string]struct{ in, want string }{
		"unknown key":       {`trsut_dir = "/x"`, "unknown key"},
		"wrong type":        {`downloads = "many"`, "downloads"},
		"bad block_on":      {`block_on = "severe"`, "block_on"},
		"relative policy":   {`admission_policy = "policy.toml"`, "admission_policy"},
		"bad crl":           {`crl = "sometimes"`, "crl"},
		"bad duration":      {`stale_after = "7 weeks"`, "duration"},
		"zero downloads":    {`downloads = 0`, "downloads"},
		"relative hook":     {"[[hook]]\nname = \"x\"\ncommand = [\"run.sh\"]", "absolute path"},
		"duplicate hook":    {"[[hook]]\nname = \"x\"\ncommand = [\"/a\"]\n[[hook]]\nname = \"x\"\ncommand = [\"/b\"]", "unique name"},
		"not toml":          {`{"trust_dir": "/x"}`, "config"},
		"list size too big": {`max_list_size = 999999999999`, "max_list_size"},
		"negative retries":  {`retries = -1`, "retries"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := config.Load(write(t, tc.in), true)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load = %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}
