package cli

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/vmtrust/vmtrust/internal/catalog"
)

func newEndorserCmd(g *Globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "endorser",
		Short: "Manage the endorsers the site trusts (certificate subject + issuer)",
		Long: `An endorser is a signer the site trusts for the lists it subscribes to,
named by the subject and issuer of its certificate in OpenSSL oneline form
(what a list's hv:dn and hv:ca carry). A subscription names one endorser;
a list signed by anyone else is rejected. --site marks the site's own
endorser: the default admission policy runs its images in trust class 1.

  vmtrust endorser add atlas --dn "/DC=ch/DC=cern/OU=Users/CN=atlas-images" --ca "/DC=ch/DC=cern/CN=CERN Grid CA"
  vmtrust endorser add site --site --dn "/DC=org/DC=example/CN=site-images" --ca "/DC=org/DC=example/CN=Site CA"
  vmtrust endorser list
  vmtrust endorser remove atlas      # refused while a subscription names it`,
	}
	var dn, ca string
	var siteOwn, jsonOut bool
	add := &cobra.Command{
		Use:   "add NAME --dn SUBJECT --ca ISSUER",
		Short: "Trust a signer",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withSite(cmd.Context(), g, func(s *site) error {
				if err := s.store.AddEndorser(cmd.Context(), catalog.Endorser{Name: args[0], DN: dn, CA: ca, Site: siteOwn}); err != nil {
					return catalogErr(err)
				}
				g.Log.Info("endorser added", "endorser", args[0], "dn", dn, "ca", ca, "site", siteOwn)
				return nil
			})
		},
	}
	add.Flags().StringVar(&dn, "dn", "", "certificate subject, OpenSSL oneline form (/C=../O=../CN=..)")
	add.Flags().StringVar(&ca, "ca", "", "certificate issuer, OpenSSL oneline form")
	add.Flags().BoolVar(&siteOwn, "site", false, "the site's own endorser (its images may run in trust class 1)")
	_ = add.MarkFlagRequired("dn")
	_ = add.MarkFlagRequired("ca")
	list := &cobra.Command{
		Use:   "list",
		Short: "List the trusted endorsers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withSite(cmd.Context(), g, func(s *site) error {
				es, err := s.store.Endorsers(cmd.Context())
				if err != nil {
					return err
				}
				if jsonOut {
					return printJSON(g.Stdout, map[string]any{"message_type": "endorsers", "endorsers": es})
				}
				tw := tabwriter.NewWriter(g.Stdout, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tSITE\tSUBJECT (hv:dn)\tISSUER (hv:ca)\tADDED")
				for _, e := range es {
					own := "-"
					if e.Site {
						own = "yes"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", Clean(e.Name, false), own, Clean(e.DN, false), Clean(e.CA, false), e.Added.Format("2006-01-02"))
				}
				return tw.Flush()
			})
		},
	}
	list.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	remove := &cobra.Command{
		Use:   "remove NAME",
		Short: "Stop trusting a signer (refused while a subscription names it)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withSite(cmd.Context(), g, func(s *site) error {
				return catalogErr(s.store.RemoveEndorser(cmd.Context(), args[0]))
			})
		},
	}
	c.AddCommand(add, list, remove)
	return c
}

// withSite opens the site, runs f and closes it.
func withSite(ctx context.Context, g *Globals, f func(*site) error) error {
	s, err := openSite(ctx, g)
	if err != nil {
		return err
	}
	defer s.Close()
	return f(s)
}

// catalogErr classifies catalog errors a user caused.
func catalogErr(err error) error {
	switch {
	case err == nil:
		return nil
	case isAny(err, catalog.ErrNotFound, catalog.ErrExists, catalog.ErrInUse, catalog.ErrInvalid, catalog.ErrConflict):
		return inputErr(err)
	}
	return err
}
