package sshd

import "testing"

// FuzzSSHDConfig: Parse never panics and stays bounded even when every
// Include names the input itself; it returns nil on error.
func FuzzSSHDConfig(f *testing.F) {
	f.Add([]byte(debianConfig))
	f.Fuzz(func(t *testing.T, data []byte) {
		self := func(pattern string) ([]File, error) {
			return []File{{Path: pattern, Data: data}, {Path: pattern + ".2", Data: data}}, nil
		}
		cfg, err := Parse("/etc/ssh/sshd_config", data, self)
		if err != nil {
			if cfg != nil {
				t.Fatalf("Parse = %v with error %v", cfg, err)
			}
			return
		}
		if len(cfg.Files) > MaxFiles {
			t.Fatalf("Parse read %d files, limit %d", len(cfg.Files), MaxFiles)
		}
		_ = Check(cfg, "/etc/ssh/sshd_config")
	})
}
