package cli

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmtrust/vmtrust/internal/cache"
	"github.com/vmtrust/vmtrust/internal/catalog"
)

// cachedImageView is an image as people and scripts see it.
type cachedImageView struct {
	catalog.Image
	Subscription string `json:"subscription_url"`
	Endorser     string `json:"endorser"`
	// Admissible: cached, not expired, and its subscription is fresh.
	Admissible bool   `json:"admissible"`
	Verified   string `json:"verified,omitempty"` // with --verify: "ok" or the error
}

func newImagesCmd(g *Globals) *cobra.Command {
	var jsonOut, verify bool
	c := &cobra.Command{
		Use:   "images",
		Short: "Every known image: list, endorser, version, state, path, sha512",
		Long: `images lists every image of every subscription with its state:
  available    endorsed, not (yet) in the cache
  downloading  being fetched (a crashed download resumes at the next update)
  cached       verified file in the cache (read-only, size and sha512 checked)
  expired      past its own or its list's expiry; file moved to expired/
  revoked      no longer in the list, or its endorser's certificate revoked
  refused      new in a list subscribed with --new-images refuse

An image is admissible only when it is cached and its subscription is not
stale. --verify re-reads every cached file and checks its size and sha512.

EXIT STATUS
  0  listed (and, with --verify, every cached file intact)   4  a cached file failed --verify`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return withSite(ctx, g, func(s *site) error {
				subs, err := s.store.Subscriptions(ctx)
				if err != nil {
					return err
				}
				byID := map[int64]catalog.Subscription{}
				for _, sub := range subs {
					byID[sub.ID] = sub
				}
				ims, err := s.store.Images(ctx, catalog.ImageFilter{})
				if err != nil {
					return err
				}
				now := time.Now()
				bad := 0
				views := make([]cachedImageView, 0, len(ims))
				for _, im := range ims {
					sub := byID[im.SubscriptionID]
					v := cachedImageView{Image: im, Subscription: sub.URL, Endorser: sub.Endorser}
					fresh := !viewSubscription(sub, s.cfg.StaleAfter.D(), now).Stale
					v.Admissible = im.State == catalog.ImageCached && fresh && (im.Expires.IsZero() || now.Before(im.Expires))
					if verify && im.State == catalog.ImageCached {
						id, err := s.cache.Verify(ctx, cache.Expect{ID: im.ID, Size: im.Size, SHA512: im.SHA512})
						if err != nil {
							v.Verified, v.Admissible = err.Error(), false
							bad++
						} else {
							v.Verified = "ok"
							// Admission trusts the digest while this identity holds.
							if err := s.store.RecordVerified(ctx, im.SubscriptionID, im.ID, im.SHA512, im.Path, id, time.Now()); err != nil {
								g.Log.Warn("verified identity not recorded", "image.id", im.ID, "err", err)
							}
						}
					}
					views = append(views, v)
				}
				if jsonOut {
					if err := printJSON(g.Stdout, map[string]any{"message_type": "images", "images": views}); err != nil {
						return err
					}
				} else {
					tw := tabwriter.NewWriter(g.Stdout, 0, 0, 2, ' ', 0)
					hdr := "IMAGE\tTITLE\tVERSION\tSTATE\tADMISSIBLE\tSUBSCRIPTION\tENDORSER\tSIZE\tSHA512\tPATH"
					if verify {
						hdr += "\tVERIFIED"
					}
					fmt.Fprintln(tw, hdr)
					for _, v := range views {
						sha := v.SHA512
						if len(sha) > 16 {
							sha = sha[:16] + "…"
						}
						line := fmt.Sprintf("%s\t%s\t%s\t%s\t%v\t%d\t%s\t%d\t%s\t%s", Clean(v.ID, false), Clean(v.Title, false), Clean(v.Version, false),
							v.State, v.Admissible, v.SubscriptionID, v.Endorser, v.Size, sha, Clean(v.Path, false))
						if verify {
							line += "\t" + Clean(v.Verified, false)
						}
						fmt.Fprintln(tw, line)
					}
					tw.Flush()
				}
				if bad > 0 {
					return fmt.Errorf("%w: %d cached image(s) failed verification", ErrPartial, bad)
				}
				return nil
			})
		},
	}
	c.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	c.Flags().BoolVar(&verify, "verify", false, "re-read every cached file and check its size and sha512")
	return c
}
