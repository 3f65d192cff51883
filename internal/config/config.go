// Package config reads vmtrust's one configuration file (TOML) and holds
// every default and bound in one place.
//
// # Guarantees
//
// Load is strict: an unknown key, a value of the wrong type or out of its
// bounds is an error naming the key, never ignored; the file is bounded in
// size. A missing file is an error when its path was given explicitly and
// the defaults otherwise. The zero Config is never used: Default and Load
// return complete values.
//
// # Example
//
//	trust_dir = "/etc/grid-security/certificates"
//	crl = "require"
//	max_list_lifetime = "90d"   # a list valid until 2499 counts as valid for 90 days from its creation
//	stale_after = "7d"          # a subscription not refreshed for this long stops being admissible
//	downloads = 2
//	retries = 4
//	admission_policy = "/etc/vmtrust/policy.toml"   # default: the built-in policy
//	block_on = "high"           # user images with a finding this severe are not registered
//	ledger_postgres = "postgres://vmtrust@db.example/ledger"   # default: SQLite in the state directory
//	ledger_host = "hv01.example"                              # default: the host name
//
//	[[hook]]
//	name = "glance"
//	command = ["/usr/local/bin/vmcatcher_eventHndl_OS"]
//	timeout = "30s"
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Bounds and defaults.
const (
	MaxFileSize = 1 << 20

	DefaultTrustDir        = "/etc/grid-security/certificates"
	DefaultCRL             = "require"
	DefaultMaxListLifetime = 90 * 24 * time.Hour
	DefaultStaleAfter      = 7 * 24 * time.Hour
	DefaultMaxListSize     = 64 << 20
	DefaultDownloads       = 2
	DefaultRetries         = 4
	DefaultHTTPTimeout     = 60 * time.Second
	DefaultHookTimeout     = 10 * time.Second // vmcatcher kills hooks after 10 s
	DefaultBlockOn         = "high"

	MaxDownloads = 16
	MaxRetries   = 20
	MaxHooks     = 32
)

// Duration is a time.Duration written as "90d", "36h" or "15m".
type Duration time.Duration

// D is the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// ParseDuration accepts Go durations and a "d" suffix for days.
func ParseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 || n > 100*365 {
			return 0, fmt.Errorf("duration %q: want a positive number of days like 28d", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("duration %q: want a positive duration like 28d, 36h or 30s", s)
	}
	return d, nil
}

// Hook is a program run for every cache event, with vmcatcher's
// VMCATCHER_EVENT_* environment.
type Hook struct {
	Name    string   `toml:"name"`
	Command []string `toml:"command"`
	Timeout Duration `toml:"timeout"`
}

// Config is the whole configuration.
type Config struct {
	TrustDir        string   `toml:"trust_dir"`
	CRL             string   `toml:"crl"`
	MaxListLifetime Duration `toml:"max_list_lifetime"`
	StaleAfter      Duration `toml:"stale_after"`
	MaxListSize     int64    `toml:"max_list_size"`
	Downloads       int      `toml:"downloads"`
	Retries         int      `toml:"retries"`
	HTTPTimeout     Duration `toml:"http_timeout"`
	Hooks           []Hook   `toml:"hook"`

	// AdmissionPolicy is the site admission policy file (package
	// admission/policy); "" is the built-in default policy.
	AdmissionPolicy string `toml:"admission_policy"`
	// BlockOn is the inspection severity from which a finding blocks the
	// registration of a user-supplied image (low, medium, high, critical).
	BlockOn string `toml:"block_on"`
	// LedgerPostgres is the PostgreSQL connection string of a shared
	// ledger; "" keeps the ledger in SQLite in the state directory.
	LedgerPostgres string `toml:"ledger_postgres"`
	// LedgerHost is this host's name in the ledger (its signing key's
	// name); "" is the system's host name.
	LedgerHost string `toml:"ledger_host"`
}

// Default is the configuration without a file.
func Default() *Config {
	return &Config{
		TrustDir: DefaultTrustDir, CRL: DefaultCRL,
		MaxListLifetime: Duration(DefaultMaxListLifetime), StaleAfter: Duration(DefaultStaleAfter),
		MaxListSize: DefaultMaxListSize, Downloads: DefaultDownloads, Retries: DefaultRetries,
		HTTPTimeout: Duration(DefaultHTTPTimeout), BlockOn: DefaultBlockOn,
	}
}

// Load reads the file at path over the defaults. explicit says whether the
// user named the file (then it must exist).
func Load(path string, explicit bool) (*Config, error) {
	c := Default()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) && !explicit {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("config %s: larger than %d bytes", path, MaxFileSize)
	}
	c, err = Parse(b)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse reads a configuration file's content over the defaults.
func Parse(b []byte) (*Config, error) {
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("larger than %d bytes", MaxFileSize)
	}
	c := Default()
	if err := DecodeStrict(b, c); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Validate checks every value against its bounds.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.TrustDir == "" {
		bad("trust_dir must not be empty")
	}
	switch c.CRL {
	case "require", "optional", "off":
	default:
		bad("crl = %q: want require, optional or off", c.CRL)
	}
	if c.MaxListLifetime <= 0 || c.StaleAfter <= 0 || c.HTTPTimeout <= 0 {
		bad("max_list_lifetime, stale_after and http_timeout must be positive")
	}
	if c.MaxListSize <= 0 || c.MaxListSize > DefaultMaxListSize {
		bad("max_list_size = %d: want 1..%d", c.MaxListSize, DefaultMaxListSize)
	}
	if c.Downloads < 1 || c.Downloads > MaxDownloads {
		bad("downloads = %d: want 1..%d", c.Downloads, MaxDownloads)
	}
	if c.Retries < 0 || c.Retries > MaxRetries {
		bad("retries = %d: want 0..%d", c.Retries, MaxRetries)
	}
	switch c.BlockOn {
	case "low", "medium", "high", "critical":
	default:
		bad("block_on = %q: want low, medium, high or critical", c.BlockOn)
	}
	if c.AdmissionPolicy != "" && !strings.HasPrefix(c.AdmissionPolicy, "/") {
		bad("admission_policy = %q: want an absolute path", c.AdmissionPolicy)
	}
	if len(c.Hooks) > MaxHooks {
		bad("%d hooks: at most %d", len(c.Hooks), MaxHooks)
	}
	names := map[string]bool{}
	for i := range c.Hooks {
		h := &c.Hooks[i]
		if h.Name == "" || names[h.Name] {
			bad("hook %d: a unique name is required", i)
		}
		names[h.Name] = true
		if len(h.Command) == 0 || !strings.HasPrefix(h.Command[0], "/") {
			bad("hook %q: command must be a list whose first element is an absolute path", h.Name)
		}
		if h.Timeout == 0 {
			h.Timeout = Duration(DefaultHookTimeout)
		}
	}
	return errors.Join(errs...)
}

// DecodeStrict decodes the TOML document b into v and refuses any key v has
// no field for: a misspelt setting is an error, never silently ignored.
func DecodeStrict(b []byte, v any) error {
	md, err := toml.NewDecoder(bytes.NewReader(b)).Decode(v)
	if err != nil {
		return err
	}
	if un := md.Undecoded(); len(un) > 0 {
		keys := make([]string, len(un))
		for i, k := range un {
			keys[i] = k.String()
		}
		return fmt.Errorf("unknown key(s) %s", strings.Join(keys, ", "))
	}
	return nil
}
