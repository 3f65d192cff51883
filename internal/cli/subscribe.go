package cli

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmtrust/vmtrust/internal/catalog"
)

func newSubscribeCmd(g *Globals) *cobra.Command {
	var endorser, mode, bundle, ident string
	c := &cobra.Command{
		Use:   "subscribe URL --endorser NAME [--new-images refuse|accept|subscribe]",
		Short: "Follow an endorser's image list",
		Long: `subscribe adds an image list to follow. Every 'vmtrust update' then fetches
it (https:// with certificate verification, or file://), accepts it only if
it is signed by the named endorser, and brings the cache in line.

--new-images says what happens to an image that appears in the list:
  subscribe  record it and cache it (the default)
  accept     record it as available, but do not download it
  refuse     record it as refused (vmcatcher's default): never downloaded

--ca-bundle gives the only roots trusted for this URL's TLS certificate
(default: the system's). --identifier pins the list's dc:identifier;
otherwise the first accepted list sets it, and a list with another one is
refused from then on.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkListURL(args[0]); err != nil {
				return usageErr(err)
			}
			if bundle != "" {
				abs, err := filepath.Abs(bundle)
				if err != nil {
					return usageErr(err)
				}
				if _, err := loadCerts(abs); err != nil {
					return err
				}
				bundle = abs
			}
			return withSite(cmd.Context(), g, func(s *site) error {
				id, err := s.store.AddSubscription(cmd.Context(), catalog.Subscription{URL: args[0], Endorser: endorser,
					NewImages: catalog.NewImages(mode), CABundle: bundle, Identifier: ident})
				if err != nil {
					return catalogErr(err)
				}
				g.Log.Info("subscribed", "subscription", id, "url", args[0], "endorser", endorser)
				fmt.Fprintf(g.Stdout, "subscription %d: %s (endorser %s); run 'vmtrust update' to fetch it\n", id, Clean(args[0], false), endorser)
				return nil
			})
		},
	}
	c.Flags().StringVar(&endorser, "endorser", "", "the endorser (see 'vmtrust endorser add') who must sign the list")
	c.Flags().StringVar(&mode, "new-images", string(catalog.NewImagesSubscribe), "refuse, accept or subscribe")
	c.Flags().StringVar(&bundle, "ca-bundle", "", "PEM file of the only roots trusted for this URL's TLS certificate")
	c.Flags().StringVar(&ident, "identifier", "", "the list's expected dc:identifier")
	_ = c.MarkFlagRequired("endorser")
	return c
}

// findSubscription accepts an ID or a URL.
func findSubscription(ctx context.Context, s *site, arg string) (catalog.Subscription, error) {
	if id, err := strconv.ParseInt(arg, 10, 64); err == nil {
		sub, err := s.store.Subscription(ctx, id)
		return sub, catalogErr(err)
	}
	sub, err := s.store.SubscriptionByURL(ctx, arg)
	return sub, catalogErr(err)
}

func newUnsubscribeCmd(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "unsubscribe URL|ID",
		Short: "Stop following a list; its cached images move to expired/",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return withSite(ctx, g, func(s *site) error {
				sub, err := findSubscription(ctx, s, args[0])
				if err != nil {
					return err
				}
				ims, err := s.store.Images(ctx, catalog.ImageFilter{SubscriptionID: sub.ID})
				if err != nil {
					return err
				}
				now := time.Now()
				var events []catalog.Event
				for _, im := range ims {
					path, err := s.cache.Expire(im.ID, now)
					if err != nil {
						return err
					}
					if path != "" {
						events = append(events,
							catalog.Event{Type: catalog.EventExpirePrefix, SubscriptionID: sub.ID, ImageID: im.ID, Fields: map[string]string{"DC_IDENTIFIER": im.ID}},
							catalog.Event{Type: catalog.EventExpirePostfix, SubscriptionID: sub.ID, ImageID: im.ID, Fields: map[string]string{"DC_IDENTIFIER": im.ID, "FILENAME": path}})
					}
				}
				if len(events) > 0 {
					if _, err := s.store.AppendEvents(ctx, events...); err != nil {
						return err
					}
				}
				if err := s.store.RemoveSubscription(ctx, sub.ID); err != nil {
					return catalogErr(err)
				}
				if err := deliverHooks(ctx, g, s); err != nil {
					return err
				}
				g.Log.Info("unsubscribed", "subscription", sub.ID, "url", sub.URL, "images_expired", len(events)/2)
				return nil
			})
		},
	}
}

// subscriptionView is a subscription as people and scripts see it.
type subscriptionView struct {
	catalog.Subscription
	Stale  bool   `json:"stale"`
	Status string `json:"status"`
}

func viewSubscription(sub catalog.Subscription, staleAfter time.Duration, now time.Time) subscriptionView {
	v := subscriptionView{Subscription: sub}
	switch {
	case sub.LastSuccess.IsZero() && sub.LastError != "":
		v.Stale, v.Status = true, "never updated; last attempt failed: "+sub.LastError
	case sub.LastSuccess.IsZero():
		v.Stale, v.Status = true, "never updated"
	case now.Sub(sub.LastSuccess) > staleAfter:
		v.Stale, v.Status = true, fmt.Sprintf("STALE: not refreshed since %s", sub.LastSuccess.Format(time.RFC3339))
	case sub.LastError != "":
		v.Status = "last attempt failed: " + sub.LastError
	default:
		v.Status = "ok"
	}
	return v
}

func newSubscriptionsCmd(g *Globals) *cobra.Command {
	var jsonOut bool
	c := &cobra.Command{
		Use:   "subscriptions",
		Short: "List the subscriptions, their accepted version and freshness",
		Long: `A subscription not refreshed successfully within stale_after (see the
configuration; default 7 days) is STALE: its list may have been frozen by an
attacker, and its images are no longer admissible.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withSite(cmd.Context(), g, func(s *site) error {
				subs, err := s.store.Subscriptions(cmd.Context())
				if err != nil {
					return err
				}
				now := time.Now()
				views := make([]subscriptionView, 0, len(subs))
				for _, sub := range subs {
					views = append(views, viewSubscription(sub, s.cfg.StaleAfter.D(), now))
				}
				if jsonOut {
					return printJSON(g.Stdout, map[string]any{"message_type": "subscriptions", "subscriptions": views})
				}
				tw := tabwriter.NewWriter(g.Stdout, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tURL\tENDORSER\tNEW IMAGES\tVERSION\tLAST SUCCESS\tSTATUS")
				for _, v := range views {
					last := "-"
					if !v.LastSuccess.IsZero() {
						last = v.LastSuccess.Format(time.RFC3339)
					}
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", v.ID, Clean(v.URL, false), v.Endorser, v.NewImages, Clean(v.Version, false), last, Clean(v.Status, false))
				}
				return tw.Flush()
			})
		},
	}
	c.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	return c
}

// checkListURL accepts https://HOST[:PORT]/... and file:///ABSOLUTE/PATH.
func checkListURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("list URL %q: %v", raw, err)
	}
	switch u.Scheme {
	case "https":
		if u.Hostname() == "" || strings.HasSuffix(u.Host, ":") {
			return fmt.Errorf("list URL %q: want https://HOST[:PORT]/PATH", raw)
		}
	case "file":
		if u.Host != "" && u.Host != "localhost" || !strings.HasPrefix(u.Path, "/") {
			return fmt.Errorf("list URL %q: want file:///ABSOLUTE/PATH", raw)
		}
	default:
		return fmt.Errorf("list URL %q: only https:// (certificate verified) and file:// are accepted", raw)
	}
	return nil
}
