package cli

import (
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmtrust/vmtrust/internal/igtf"
	"github.com/vmtrust/vmtrust/internal/update"
)

// ErrPartial: the command ran, but some subscription or download failed (exit 4).
var ErrPartial = errors.New("partial failure")

type updateOptions struct {
	CADir string
	JSON  bool
}

func newUpdateCmd(g *Globals) *cobra.Command {
	o := &updateOptions{}
	c := &cobra.Command{
		Use:   "update [URL|ID ...]",
		Short: "Refresh subscriptions: fetch and verify lists, download and expire images",
		Long: `update fetches every subscription's list (or those named), verifies it as
'vmtrust imagelist verify' does with the subscription's endorser as the only
authorised signer, and applies the site's rules: the list's dc:identifier is
the subscription's, its hv:version is newer than the accepted one (an equal
version must be byte-identical; a lower one is a rollback), and its age is
within max_list_lifetime. Accepted lists are recorded with their signed
bytes. Then images that left the list, expired, or whose endorser was
revoked move to expired/ (also when the list cannot be fetched), and
endorsed images missing from the cache are downloaded — bounded by their
hv:size, sha512 computed as they arrive, resumed after an interruption.

Every decision is recorded as an event before any hook runs.

EXIT STATUS
  0  every subscription updated      4  some subscription or download failed
  2  usage                           3  unreadable configuration or input`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return withSite(ctx, g, func(s *site) error {
				var ids []int64
				for _, a := range args {
					sub, err := findSubscription(ctx, s, a)
					if err != nil {
						return err
					}
					ids = append(ids, sub.ID)
				}
				dir := s.cfg.TrustDir
				if o.CADir != "" {
					dir = o.CADir
				}
				trust, err := igtf.Load(dir)
				if err != nil {
					return inputErr(err)
				}
				for _, sk := range trust.Skipped {
					g.Log.Warn("trust directory file not used", "file", sk)
				}
				mode, err := igtf.ParseCRLMode(s.cfg.CRL)
				if err != nil {
					return inputErr(err)
				}
				bars := newProgress(g)
				var prog update.Progress
				if bars != nil {
					prog = bars
				}
				u, err := update.New(s.store, s.cache, update.Options{
					Trust: trust, CRL: mode, MaxListLifetime: s.cfg.MaxListLifetime.D(), MaxListSize: s.cfg.MaxListSize,
					Downloads: s.cfg.Downloads, Retries: s.cfg.Retries, Log: g.Log, Progress: prog, Fetcher: s.fetcherFor(g),
				})
				if err != nil {
					return err
				}
				res, err := u.Run(ctx, ids...)
				bars.Wait()
				if err != nil {
					return err
				}
				if err := deliverHooks(ctx, g, s); err != nil {
					return err
				}
				if err := syncCatalogToLedger(ctx, g, s); err != nil {
					return fmt.Errorf("ledger: %w", err)
				}
				if o.JSON {
					if err := printJSON(g.Stdout, map[string]any{"message_type": "update", "subscriptions": res}); err != nil {
						return err
					}
				} else {
					tw := tabwriter.NewWriter(g.Stdout, 0, 0, 2, ' ', 0)
					fmt.Fprintln(tw, "ID\tURL\tOUTCOME\tVERSION\tCACHED\tEXPIRED\tDOWNLOAD ERRORS\tREASON")
					for _, r := range res {
						why := r.Reason
						if r.Error != "" {
							why += ": " + r.Error
						}
						fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", r.ID, Clean(r.URL, false), r.Outcome, Clean(r.Version, false), r.Cached, r.Expired, r.DownErrors, Clean(why, false))
					}
					tw.Flush()
				}
				if n := update.Failures(res); n > 0 {
					return fmt.Errorf("%w: %d subscription(s) not fully updated at %s", ErrPartial, n, time.Now().UTC().Format(time.RFC3339))
				}
				return nil
			})
		},
	}
	c.Flags().StringVar(&o.CADir, "ca-dir", "", "trust directory (default: trust_dir of the configuration)")
	c.Flags().BoolVar(&o.JSON, "json", false, "print JSON")
	return c
}
