package cli

import (
	"context"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmtrust/vmtrust/internal/cache"
	"github.com/vmtrust/vmtrust/internal/catalog"
	"github.com/vmtrust/vmtrust/internal/fileid"
	"github.com/vmtrust/vmtrust/internal/inspect"
	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
)

func newUserImagesCmd(g *Globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "user-images",
		Short: "Register user-supplied images that passed inspection (trust class 3)",
		Long: `A user-supplied image is admitted only after an operator registered it: the
image is copied into STATE/user/ (read-only, its sha512 computed while
copying), the copy is inspected offline as 'vmtrust inspect' does, and it is
registered only when no finding or vulnerability reaches block_on (the
configuration, default high; --block-on overrides). The admission policy
sees it in state "user-registered" with its inspection summary; the default
policy runs it in trust class 3 (full containment) and refuses host device
passthrough and host filesystem shares for it. Domains must name the
registered copy (the path 'register' prints), never the original file.

  vmtrust user-images register ./analysis.qcow2 --owner alice
  vmtrust user-images list
  vmtrust user-images remove SHA512     # a prefix of at least 16 hex digits`,
	}
	c.AddCommand(newUserImagesRegisterCmd(g), newUserImagesListCmd(g), newUserImagesRemoveCmd(g))
	return c
}

type registerOptions struct {
	inspectOptions
	owner   string
	blockOn string
	jsonOut bool
}

func newUserImagesRegisterCmd(g *Globals) *cobra.Command {
	o := &registerOptions{}
	c := &cobra.Command{
		Use:   "register IMAGE --owner USER",
		Short: "Copy, inspect and register a user-supplied image",
		Long: `register copies IMAGE into STATE/user/<sha512>.<format>, inspects the copy and
registers it when nothing reaches the blocking severity. An image with a
qcow2 backing file is refused (register a self-contained image: qemu-img
convert). Nothing is kept when the image is refused.

EXIT STATUS
  0  registered (or already registered)   3  unreadable or refused as unsafe
  5  findings or vulnerabilities at or above the blocking severity: not registered`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runRegister(cmd.Context(), g, o, args[0]) },
	}
	f := c.Flags()
	f.StringVar(&o.owner, "owner", "", "the user responsible for the image (a safe identifier)")
	f.StringVar(&o.blockOn, "block-on", "", "severity from which a finding blocks registration (default: block_on of the configuration)")
	f.StringVar(&o.vulnDB, "vulndb", "", "vulnerability database (default: vulndb.db in the state directory, when present)")
	f.StringVar(&o.distroInfo, "distro-info", DefaultDistroInfo, "directory of distro-info-data's debian.csv and ubuntu.csv")
	f.BoolVar(&o.jsonOut, "json", false, "print JSON")
	_ = c.MarkFlagRequired("owner")
	return c
}

func runRegister(ctx context.Context, g *Globals, o *registerOptions, src string) error {
	if !catalog.ValidName(o.owner) {
		return usageErr(fmt.Errorf("--owner %q: want a safe identifier ([A-Za-z0-9][A-Za-z0-9._-]*)", o.owner))
	}
	return withSite(ctx, g, func(s *site) error {
		blockOn := o.blockOn
		if blockOn == "" {
			blockOn = s.cfg.BlockOn
		}
		threshold, ok := inventory.ParseSeverity(blockOn)
		if !ok || threshold < inventory.Low {
			return usageErr(fmt.Errorf("--block-on %q: want low, medium, high or critical", blockOn))
		}
		dir := filepath.Join(g.State, UserDir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		tmp, sum, size, err := copyHashed(ctx, src, dir)
		if err != nil {
			return inputErr(err)
		}
		defer os.Remove(tmp) // a no-op once renamed
		if u, err := s.store.UserImage(ctx, sum); err == nil {
			fmt.Fprintf(g.Stdout, "REGISTERED already  %s\nsha512  %s\nowner  %s\n", Clean(u.Path, false), u.SHA512, u.Owner)
			return nil
		}
		opts, closeDB, err := buildInspectOptions(ctx, g, &o.inspectOptions)
		if err != nil {
			return err
		}
		defer closeDB()
		rep, err := inspect.Inspect(ctx, tmp, opts)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return inputErr(fmt.Errorf("inspect %s: %w", src, err))
		}
		insp := summarize(rep, threshold)
		u := catalog.UserImage{SHA512: sum, Size: size, Format: rep.Image.Format, Name: filepath.Base(src), Owner: o.owner,
			RegisteredBy: operator(), Inspection: insp}
		u.Path = filepath.Join(dir, sum+"."+u.Format)
		if insp.Blocking > 0 {
			u.Path = "" // nothing is kept
			printRegistration(g, u, rep, threshold, false, o.jsonOut)
			return &classed{ErrFindings, fmt.Errorf("%s not registered: %d findings or vulnerabilities at %s or above (block_on)", src, insp.Blocking, threshold)}
		}
		if err := os.Rename(tmp, u.Path); err != nil {
			return err
		}
		cache.SyncDir(dir)
		if u.File, err = fileid.Path(u.Path); err != nil {
			os.Remove(u.Path)
			return err
		}
		if err := s.store.AddUserImage(ctx, u); err != nil {
			os.Remove(u.Path)
			return catalogErr(err)
		}
		g.Log.Info("user image registered", "sha512", sum, "owner", o.owner, "path", u.Path, "findings", len(rep.Findings))
		printRegistration(g, u, rep, threshold, true, o.jsonOut)
		return nil
	})
}

// copyHashed copies the regular file src into a new read-only temporary
// file in dir, hashing it on the way, and fsyncs it.
func copyHashed(ctx context.Context, src, dir string) (tmp, sum string, size int64, err error) {
	in, err := os.OpenFile(src, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return "", "", 0, err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return "", "", 0, err
	}
	if !st.Mode().IsRegular() {
		return "", "", 0, fmt.Errorf("%s: not a regular file", src)
	}
	out, err := os.CreateTemp(dir, ".register-*")
	if err != nil {
		return "", "", 0, err
	}
	tmp = out.Name()
	fail := func(err error) (string, string, int64, error) {
		out.Close()
		os.Remove(tmp)
		return "", "", 0, err
	}
	h := sha512.New()
	n, err := io.Copy(io.MultiWriter(out, h), ctxReader{ctx, in})
	if err != nil {
		return fail(fmt.Errorf("copying %s: %w", src, err))
	}
	if err := out.Chmod(0o444); err != nil {
		return fail(err)
	}
	if err := out.Sync(); err != nil {
		return fail(err)
	}
	if err := out.Close(); err != nil {
		return fail(err)
	}
	return tmp, hex.EncodeToString(h.Sum(nil)), n, nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// summarize is the inspection summary registration stores.
func summarize(rep *inventory.Report, threshold inventory.Severity) catalog.Inspection {
	in := catalog.Inspection{At: rep.InspectedAt, BlockOn: threshold.String(), Findings: map[string]int{},
		EOL: rep.EndOfLife.Known && rep.EndOfLife.EOL, Packages: len(rep.Packages), Vulns: len(rep.Vulnerabilities)}
	if in.At.IsZero() {
		in.At = time.Now().UTC()
	}
	in.OS = rep.OS.PrettyName
	if in.OS == "" {
		in.OS = strings.TrimSpace(rep.OS.ID + " " + rep.OS.VersionID)
	}
	max := inventory.Severity(-1)
	count := func(sev inventory.Severity) {
		in.Findings[sev.String()]++
		if sev >= threshold {
			in.Blocking++
		}
		if sev > max {
			max = sev
		}
	}
	for _, f := range rep.Findings {
		count(f.Severity)
		if f.Rule == "vulns-not-checked" {
			in.VulnsNotChecked = true
		}
	}
	for _, v := range rep.Vulnerabilities {
		count(v.Severity)
	}
	if max >= 0 {
		in.MaxSeverity = max.String()
	}
	return in
}

// operator names who ran the command, for the record.
func operator() string {
	name := os.Getenv("SUDO_USER")
	if u, err := user.Current(); err == nil && name == "" {
		name = u.Username
	}
	return fmt.Sprintf("%s (uid %d)", name, os.Getuid())
}

func printRegistration(g *Globals, u catalog.UserImage, rep *inventory.Report, threshold inventory.Severity, registered, jsonOut bool) {
	if jsonOut {
		_ = printJSON(g.Stdout, map[string]any{"message_type": "user-image", "registered": registered, "image": u, "findings": rep.Findings,
			"vulnerabilities": rep.Vulnerabilities})
		return
	}
	verdict, where := "REGISTERED", u.Path
	if !registered {
		verdict, where = "NOT REGISTERED", u.Name
	}
	fmt.Fprintf(g.Stdout, "%s  %s\nsha512  %s\nowner  %s\nos  %s\nfindings  %d (%d at %s or above)\n",
		verdict, Clean(where, false), u.SHA512, u.Owner, Clean(u.Inspection.OS, false), len(rep.Findings)+len(rep.Vulnerabilities), u.Inspection.Blocking, threshold)
	if !registered {
		tw := tabwriter.NewWriter(g.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "\nSEVERITY\tRULE\tPATH\tREASON")
		for _, f := range rep.Findings {
			if f.Severity >= threshold {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Severity, f.Rule, Clean(f.Path, false), Clean(f.Reason, false))
			}
		}
		for _, v := range rep.Vulnerabilities {
			if v.Severity >= threshold {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", v.Severity, v.ID, Clean(v.Package, false), Clean(v.Summary, false))
			}
		}
		tw.Flush()
	}
}

func newUserImagesListCmd(g *Globals) *cobra.Command {
	var jsonOut bool
	c := &cobra.Command{
		Use:   "list",
		Short: "List the registered user images",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withSite(cmd.Context(), g, func(s *site) error {
				us, err := s.store.UserImages(cmd.Context())
				if err != nil {
					return err
				}
				if jsonOut {
					return printJSON(g.Stdout, map[string]any{"message_type": "user-images", "images": us})
				}
				tw := tabwriter.NewWriter(g.Stdout, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "SHA512\tOWNER\tNAME\tFORMAT\tSIZE\tOS\tMAX SEVERITY\tREGISTERED\tPATH")
				for _, u := range us {
					sev := u.Inspection.MaxSeverity
					if sev == "" {
						sev = "-"
					}
					fmt.Fprintf(tw, "%s…\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", u.SHA512[:16], u.Owner, Clean(u.Name, false), u.Format, u.Size,
						Clean(u.Inspection.OS, false), sev, u.RegisteredAt.Format(time.RFC3339), Clean(u.Path, false))
				}
				return tw.Flush()
			})
		},
	}
	c.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	return c
}

func newUserImagesRemoveCmd(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "remove SHA512",
		Short: "Forget a registered user image and delete its copy (domains using it are refused from then on)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			prefix := strings.ToLower(args[0])
			if len(prefix) < 16 {
				return usageErr(errors.New("give at least 16 hex digits of the sha512"))
			}
			return withSite(ctx, g, func(s *site) error {
				us, err := s.store.UserImages(ctx)
				if err != nil {
					return err
				}
				var match []catalog.UserImage
				for _, u := range us {
					if strings.HasPrefix(u.SHA512, prefix) {
						match = append(match, u)
					}
				}
				sort.Slice(match, func(i, j int) bool { return match[i].SHA512 < match[j].SHA512 })
				switch len(match) {
				case 0:
					return inputErr(fmt.Errorf("user image %s: %w", prefix, catalog.ErrNotFound))
				case 1:
				default:
					return usageErr(fmt.Errorf("%s matches %d user images: give more digits", prefix, len(match)))
				}
				u := match[0]
				// Forget it first: a file without a record is never admitted.
				if err := s.store.RemoveUserImage(ctx, u.SHA512); err != nil {
					return catalogErr(err)
				}
				if err := os.Remove(u.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
					g.Log.Warn("registered copy not removed", "path", u.Path, "err", err)
				}
				g.Log.Info("user image removed", "sha512", u.SHA512, "owner", u.Owner)
				return nil
			})
		},
	}
}
