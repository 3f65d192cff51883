package config_test

import (
	"testing"

	"github.com/vmtrust/vmtrust/internal/config"
)

// FuzzParse: no panic; an error returns no config; a config returned is valid.
func FuzzParse(f *testing.F) {
	f.Add([]byte("trust_dir = \"/srv/ca\"\ncrl = \"optional\"\nmax_list_lifetime = \"30d\"\n[[hook]]\nname = \"x\"\ncommand = [\"/bin/true\"]\ntimeout = \"5s\"\n"))
	f.Add([]byte("downloads = 3\nretries = 0\nstale_after = \"36h\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := config.Parse(b)
		if err != nil {
			if c != nil {
				t.Fatal("Parse returned a config with an error")
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse returned an invalid config: %v", err)
		}
	})
}
