package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmtrust/vmtrust/internal/vulndb"
)

// vulndbFile is the vulnerability database's name in the state directory.
const vulndbFile = vulndb.File

func newVulndbCmd(g *Globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "vulndb",
		Short: "Offline vulnerability data (OSV dumps) for vmtrust inspect",
		Long: `vulndb keeps offline vulnerability data in the state directory (vulndb.db),
for 'vmtrust inspect' to match installed packages against. It loads OSV's
per-ecosystem dumps (all.zip: Debian, Ubuntu, Alpine, Rocky Linux,
AlmaLinux), fetched by the site by whatever means it trusts, e.g.
https://osv-vulnerabilities.storage.googleapis.com/Debian/all.zip

  vmtrust vulndb import Debian-all.zip Alpine-all.zip
  vmtrust vulndb status

Re-importing an ecosystem replaces what was loaded for it, so advisories
withdrawn upstream disappear. A failed import changes nothing.`,
	}
	c.AddCommand(newVulndbImportCmd(g), newVulndbStatusCmd(g))
	return c
}

func openVulnDB(ctx context.Context, g *Globals) (*vulndb.DB, error) {
	if err := os.MkdirAll(g.State, 0o700); err != nil {
		return nil, inputErr(fmt.Errorf("state directory: %w", err))
	}
	return vulndb.Open(ctx, filepath.Join(g.State, vulndbFile))
}

func newVulndbImportCmd(g *Globals) *cobra.Command {
	var jsonOut bool
	c := &cobra.Command{
		Use:   "import FILE.zip...",
		Short: "Load OSV per-ecosystem dumps (all.zip) into the state directory",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			for _, a := range args {
				if _, err := os.Stat(a); err != nil {
					return inputErr(err)
				}
			}
			db, err := openVulnDB(ctx, g)
			if err != nil {
				return err
			}
			defer db.Close()
			var all []vulndb.ImportStats
			for _, a := range args {
				st, err := db.Import(ctx, a)
				if err != nil {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					return inputErr(fmt.Errorf("import %s: %w", a, err))
				}
				g.Log.Debug("imported", "file", a, "family", st.Family, "advisories", st.Advisories)
				all = append(all, st)
			}
			if jsonOut {
				return printJSON(g.Stdout, map[string]any{"message_type": "vulndb_import", "imports": all})
			}
			for i, st := range all {
				fmt.Fprintf(g.Stdout, "%s: %s, %d advisories (%d package entries) from %d files, newest modified %s; replaced %d\n",
					Clean(args[i], false), st.Family, st.Advisories, st.Affected, st.Entries, fmtTimeOrDash(st.NewestModified), st.Replaced)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	return c
}

func newVulndbStatusCmd(g *Globals) *cobra.Command {
	var jsonOut bool
	c := &cobra.Command{
		Use:   "status",
		Short: "What vulnerability data is loaded, and how old it is",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			path := filepath.Join(g.State, vulndbFile)
			if _, err := os.Stat(path); err != nil {
				if jsonOut {
					return printJSON(g.Stdout, map[string]any{"message_type": "vulndb_status", "ecosystems": []any{}})
				}
				fmt.Fprintf(g.Stdout, "no vulnerability data in %s (vmtrust vulndb import FILE.zip)\n", g.State)
				return nil
			}
			db, err := vulndb.Open(ctx, path)
			if err != nil {
				return inputErr(fmt.Errorf("vulnerability database %s: %w", path, err))
			}
			defer db.Close()
			sts, err := db.Status(ctx)
			if err != nil {
				return err
			}
			sort.Slice(sts, func(i, j int) bool { return sts[i].Family < sts[j].Family })
			if jsonOut {
				return printJSON(g.Stdout, map[string]any{"message_type": "vulndb_status", "ecosystems": sts})
			}
			now := time.Now()
			tw := tabwriter.NewWriter(g.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "FAMILY\tADVISORIES\tNEWEST ADVISORY\tAGE\tIMPORTED\tSOURCE\tSHA256")
			for _, s := range sts {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%.16s\n", Clean(s.Family, false), s.Advisories,
					fmtTimeOrDash(s.NewestModified), ageOf(s.Age(now)), fmtTimeOrDash(s.ImportedAt), Clean(s.Source, false), s.SHA256)
			}
			return tw.Flush()
		},
	}
	c.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	return c
}

// fmtTimeOrDash prints t in UTC, or "-" when it is unset.
func fmtTimeOrDash(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func ageOf(d time.Duration) string {
	if d < 48*time.Hour {
		return d.Round(time.Minute).String()
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}
