package cli

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/vmtrust/vmtrust/internal/cache"
	"github.com/vmtrust/vmtrust/internal/catalog"
	"github.com/vmtrust/vmtrust/internal/catalog/sqlite"
	"github.com/vmtrust/vmtrust/internal/config"
	"github.com/vmtrust/vmtrust/internal/fetch"
	"github.com/vmtrust/vmtrust/internal/update"
)

// DefaultConfig is read when --config is not given (and may be absent).
const DefaultConfig = "/etc/vmtrust/vmtrust.toml"

// CatalogFile is the catalog's file in the state directory.
const CatalogFile = "catalog.db"

// site is what the subscription commands work on: the configuration, the
// catalog and the cache under the state directory.
type site struct {
	cfg   *config.Config
	store catalog.Store
	cache *cache.Cache
}

func (s *site) Close() error { return s.store.Close() }

func openSite(ctx context.Context, g *Globals) (*site, error) { return openSiteMode(ctx, g, false) }

// openExistingSite opens a site for the admission hook: the state
// directory and its catalog must exist already (a hook that created an
// empty state would turn a lost state into "unknown image" instead of the
// real failure), and the site's event hooks are not registered (the hook
// must not write more than its decisions).
func openExistingSite(ctx context.Context, g *Globals) (*site, error) {
	return openSiteMode(ctx, g, true)
}

func openSiteMode(ctx context.Context, g *Globals, existing bool) (*site, error) {
	cfg, err := loadConfig(g)
	if err != nil {
		return nil, err
	}
	// Paths in the catalog must not depend on the working directory.
	abs, err := filepath.Abs(g.State)
	if err != nil {
		return nil, usageErr(err)
	}
	g.State = abs
	if existing {
		if _, err := os.Stat(filepath.Join(g.State, CatalogFile)); err != nil {
			return nil, fmt.Errorf("state directory %s: %w", g.State, err)
		}
	} else if err := os.MkdirAll(g.State, 0o755); err != nil {
		return nil, inputErr(fmt.Errorf("state directory: %w", err))
	}
	store, err := sqlite.Open(ctx, filepath.Join(g.State, CatalogFile), g.Log)
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	c, err := cache.Open(g.State, g.Log)
	if err != nil {
		store.Close()
		return nil, err
	}
	s := &site{cfg: cfg, store: store, cache: c}
	if existing {
		return s, nil
	}
	if err := registerHooks(ctx, s); err != nil {
		store.Close()
		return nil, err
	}
	return s, nil
}

// fetcherFor builds the HTTPS client of one subscription: the system roots,
// or only the certificates of its CA bundle.
func (s *site) fetcherFor(g *Globals) func(catalog.Subscription) (update.Fetcher, error) {
	return func(sub catalog.Subscription) (update.Fetcher, error) {
		o := fetch.Options{Timeout: s.cfg.HTTPTimeout.D(), AllowFile: true, Log: g.Log, UserAgent: "vmtrust"}
		if sub.CABundle != "" {
			certs, err := loadCerts(sub.CABundle)
			if err != nil {
				return nil, fmt.Errorf("subscription %d: CA bundle: %w", sub.ID, err)
			}
			o.RootCAs = x509.NewCertPool()
			for _, c := range certs {
				o.RootCAs.AddCert(c)
			}
		}
		return fetch.New(o), nil
	}
}

// loadConfig reads the configuration (--config, or DefaultConfig when it
// exists) and requires a state directory.
func loadConfig(g *Globals) (*config.Config, error) {
	path, explicit := g.Config, g.Config != ""
	if !explicit {
		path = DefaultConfig
	}
	cfg, err := config.Load(path, explicit)
	if err != nil {
		return nil, inputErr(err)
	}
	if g.State == "" {
		return nil, usageErr(errors.New("no state directory: give --state or set VMTRUST_STATE"))
	}
	return cfg, nil
}
