package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmtrust/vmtrust/internal/admission"
	"github.com/vmtrust/vmtrust/internal/admission/domain"
	"github.com/vmtrust/vmtrust/internal/admission/policy"
	"github.com/vmtrust/vmtrust/internal/cache"
	"github.com/vmtrust/vmtrust/internal/catalog"
)

// ErrDenied: the admission decision refuses the domain (exit 6).
var ErrDenied = errors.New("denied")

func newAdmitCmd(g *Globals) *cobra.Command {
	var jsonOut bool
	var policyFile string
	c := &cobra.Command{
		Use:   "admit DOMAIN.xml|-",
		Short: "Decide whether a libvirt domain may start here, and in which trust class",
		Long: `admit takes the decision the libvirt hook takes, without libvirt: it
resolves every disk of the domain XML and every backing file (from
<backingStore> and from qcow2 headers) to a cached image of the catalog,
re-checks that each cached file is read-only, of the endorsed size and
sha512, runs the domain definition checks and evaluates the site policy
(the built-in default, or --policy FILE). Anything that cannot be read or
evaluated denies. Every decision is appended to STATE/admission.jsonl.

EXIT STATUS
  0  allowed   3  the domain XML or the policy file cannot be read   6  denied`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			x, err := readUpTo(g.Stdin, args[0], domain.MaxSize)
			if err != nil {
				return inputErr(fmt.Errorf("domain xml: %w", err))
			}
			pol := policy.Default()
			if policyFile != "" {
				if pol, err = policy.Load(policyFile); err != nil {
					return inputErr(err)
				}
			}
			return withSite(ctx, g, func(s *site) error {
				deps := admission.Deps{Policy: pol, Catalog: siteCatalog{s}, CacheDir: filepath.Join(s.cache.Root(), cache.CacheDir)}
				d := admission.Decide(ctx, admission.Request{XML: x, Now: time.Now().UTC()}, deps)
				if err := admission.Record(g.State, d); err != nil {
					return fmt.Errorf("%w: %v", ErrDenied, err)
				}
				if err := printDecision(g.Stdout, d, jsonOut); err != nil {
					return err
				}
				if !d.Allow {
					return fmt.Errorf("%w: %s", ErrDenied, d.Reason)
				}
				if d.FailOpen {
					g.Log.Warn("admission failed open for class 1", "domain.uuid", d.UUID, "reason", d.Reason)
				}
				return nil
			})
		},
	}
	c.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	c.Flags().StringVar(&policyFile, "policy", "", "site policy file (default: the built-in policy)")
	return c
}

// siteCatalog is the catalog view admission reads.
type siteCatalog struct{ s *site }

var _ admission.Catalog = siteCatalog{}

func (c siteCatalog) AdmissionImages(ctx context.Context, now time.Time) ([]admission.Image, error) {
	subs, err := c.s.store.Subscriptions(ctx)
	if err != nil {
		return nil, err
	}
	byID := map[int64]catalog.Subscription{}
	for _, sub := range subs {
		byID[sub.ID] = sub
	}
	ims, err := c.s.store.Images(ctx, catalog.ImageFilter{})
	if err != nil {
		return nil, err
	}
	out := make([]admission.Image, 0, len(ims))
	for _, im := range ims {
		sub, ok := byID[im.SubscriptionID]
		out = append(out, admission.Image{ID: im.ID, State: im.State, Path: im.Path, SHA512: im.SHA512, Size: im.Size,
			Expires: im.Expires, Endorser: sub.Endorser,
			// The catalog has no notion of the site's own endorser yet.
			EndorserIsSite:    false,
			SubscriptionStale: !ok || viewSubscription(sub, c.s.cfg.StaleAfter.D(), now).Stale})
	}
	return out, nil
}

func printDecision(w io.Writer, d admission.Decision, jsonOut bool) error {
	if jsonOut {
		return printJSON(w, struct {
			MessageType string `json:"message_type"`
			admission.Decision
		}{"admission", d})
	}
	verdict := "DENIED"
	if d.Allow {
		verdict = fmt.Sprintf("ALLOWED class %d, profile %s", d.Class, d.Profile)
	}
	fmt.Fprintf(w, "domain  %s (%s)\ndecision  %s\nreason  %s\n", Clean(d.Domain, false), d.UUID, verdict, Clean(d.Reason, false))
	if d.Rule != "" {
		fmt.Fprintf(w, "rule  %s\n", d.Rule)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if len(d.Disks) > 0 {
		fmt.Fprintln(tw, "\nDISK\tBACKING\tSTATE\tIMAGE\tSHA512\tPATH\tDETAIL")
		for _, k := range d.Disks {
			sha := k.SHA512
			if len(sha) > 16 {
				sha = sha[:16] + "…"
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", Clean(k.Target, false), k.Backing, k.State, Clean(k.ImageID, false), sha, Clean(k.Path, false), Clean(k.Detail, false))
		}
	}
	if len(d.Findings) > 0 {
		fmt.Fprintln(tw, "\nFINDING\tSEVERITY\tWHERE\tREASON")
		for _, f := range d.Findings {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Rule, f.Severity, Clean(f.Path, false), Clean(f.Reason, false))
		}
	}
	return tw.Flush()
}
