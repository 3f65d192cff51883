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
			return withSite(ctx, g, func(s *site) error {
				pol, err := sitePolicy(s, policyFile)
				if err != nil {
					return inputErr(err)
				}
				d, err := decideAndRecord(ctx, g, s, pol, x, "")
				if err != nil {
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
	c.Flags().StringVar(&policyFile, "policy", "", "site policy file (default: admission_policy of the configuration, else the built-in policy)")
	return c
}

// UserDir is the directory of registered user images in the state directory.
const UserDir = "user"

// sitePolicy loads the admission policy: the file given, else the
// configuration's admission_policy, else the built-in default.
func sitePolicy(s *site, file string) (*policy.Policy, error) {
	if file == "" {
		file = s.cfg.AdmissionPolicy
	}
	if file == "" {
		return policy.Default(), nil
	}
	return policy.Load(file)
}

// decideAndRecord takes the admission decision for the domain XML x,
// records the identity of every file it re-hashed (so that the next
// decision can trust the digest without reading the file), and appends the
// decision to STATE/admission.jsonl. name, when set, is the domain name
// libvirt gave: a domain XML naming another domain is denied. An error
// means the decision could not be recorded: the caller must deny.
func decideAndRecord(ctx context.Context, g *Globals, s *site, pol *policy.Policy, x []byte, name string) (admission.Decision, error) {
	deps := admission.Deps{Policy: pol, Catalog: siteCatalog{s}, CacheDir: filepath.Join(s.cache.Root(), cache.CacheDir),
		UserDir: filepath.Join(g.State, UserDir)}
	d := admission.Decide(ctx, admission.Request{XML: x, Now: time.Now().UTC()}, deps)
	if name != "" && d.Allow && d.Domain != name {
		d = d.Denied(fmt.Sprintf("libvirt named the domain %q but its XML names %q", name, d.Domain))
	}
	for _, k := range d.Rehashed() {
		var err error
		if k.User {
			err = s.store.RecordUserVerified(ctx, k.SHA512, k.Path, k.File, d.Time)
		} else {
			err = s.store.RecordVerified(ctx, k.Subscription, k.ImageID, k.SHA512, k.Path, k.File, d.Time)
		}
		if err != nil {
			// Only the next decision's speed depends on it.
			g.Log.Warn("verified file identity not recorded", "path", k.Path, "err", err)
		}
	}
	return d, admission.Record(g.State, d)
}

// siteCatalog is the catalog view admission reads.
type siteCatalog struct{ s *site }

var _ admission.Catalog = siteCatalog{}

func (c siteCatalog) AdmissionImages(ctx context.Context, now time.Time) ([]admission.Image, error) {
	subs, err := c.s.store.Subscriptions(ctx)
	if err != nil {
		return nil, err
	}
	ends, err := c.s.store.Endorsers(ctx)
	if err != nil {
		return nil, err
	}
	siteOwn := map[string]bool{}
	for _, e := range ends {
		siteOwn[e.Name] = e.Site
	}
	byID := map[int64]catalog.Subscription{}
	for _, sub := range subs {
		byID[sub.ID] = sub
	}
	ims, err := c.s.store.Images(ctx, catalog.ImageFilter{})
	if err != nil {
		return nil, err
	}
	users, err := c.s.store.UserImages(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]admission.Image, 0, len(ims)+len(users))
	for _, im := range ims {
		sub, ok := byID[im.SubscriptionID]
		a := admission.Image{ID: im.ID, Subscription: im.SubscriptionID, State: im.State, Path: im.Path, SHA512: im.SHA512, Size: im.Size,
			Expires: im.Expires, Endorser: sub.Endorser, EndorserIsSite: ok && siteOwn[sub.Endorser], File: im.File,
			SubscriptionStale: !ok || viewSubscription(sub, c.s.cfg.StaleAfter.D(), now).Stale}
		if im.State == catalog.ImageExpired || im.State == catalog.ImageRevoked {
			a.FormerPath, _ = c.s.cache.Path(im.ID)
		}
		out = append(out, a)
	}
	for _, u := range users {
		out = append(out, admission.Image{ID: "user:" + u.SHA512[:16], State: catalog.ImageCached, Path: u.Path, SHA512: u.SHA512,
			Size: u.Size, File: u.File, User: true, Owner: u.Owner, Inspection: policy.Inspection{
				BlockingFindings: u.Inspection.Blocking, MaxSeverity: u.Inspection.MaxSeverity, EOL: u.Inspection.EOL,
				OS: u.Inspection.OS, Vulnerabilities: u.Inspection.Vulns, VulnsNotChecked: u.Inspection.VulnsNotChecked}})
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
