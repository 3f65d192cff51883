package cli

import (
	"context"
	"errors"
)

// deliverHooks runs the configured hooks for pending events. Until hook
// delivery lands, a configuration with hooks is refused rather than
// silently ignored; the events stay in the catalog's log.
func deliverHooks(ctx context.Context, g *Globals, s *site) error {
	if len(s.cfg.Hooks) > 0 {
		return inputErr(errors.New("hooks are configured, but this build cannot run them yet; the events are kept in the catalog"))
	}
	return nil
}
