package cli

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmtrust/vmtrust/imagelist"
	"github.com/vmtrust/vmtrust/imagelist/smime"
	"github.com/vmtrust/vmtrust/internal/endorse"
	"github.com/vmtrust/vmtrust/internal/igtf"
)

type showOptions struct {
	CADir string
	CRL   string
	JSON  bool
	now   func() time.Time
}

func newShowCmd(g *Globals) *cobra.Command {
	o := &showOptions{}
	c := &cobra.Command{
		Use:   "show [--ca-dir DIR] LIST",
		Short: "Show an image list: endorser, validity and images",
		Long: `show prints a readable view of a list, signed or plain: who endorses it,
when it was created and when it expires, where it is published, and every
image with its version, size, architecture, OS and digest, followed by
anything wrong with the list.

A signed list is verified first when --ca-dir is given, and show fails if it
does not verify. Without --ca-dir the signature is NOT checked and the view
says so: use it to read a list, never to decide to trust one.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runShow(cmd.Context(), g, o, args[0])
		},
	}
	f := c.Flags()
	f.StringVar(&o.CADir, "ca-dir", "", "verify the signature against this trust directory first")
	f.StringVar(&o.CRL, "crl", string(igtf.CRLRequire), "CRL policy when verifying: require, optional or off")
	f.BoolVar(&o.JSON, "json", false, "print JSON")
	return c
}

// listView is the JSON form of a list for people and scripts.
type listView struct {
	MessageType string              `json:"message_type"`
	File        string              `json:"file"`
	Signed      bool                `json:"signed"`
	Verified    bool                `json:"verified"`
	Signer      string              `json:"signer,omitempty"`
	Identifier  string              `json:"identifier"`
	Title       string              `json:"title"`
	Description string              `json:"description"`
	Version     string              `json:"version"`
	Created     string              `json:"created"`
	Expires     string              `json:"expires"`
	Expired     bool                `json:"expired"`
	Source      string              `json:"source"`
	URI         string              `json:"uri"`
	VO          string              `json:"vo,omitempty"`
	Endorser    imagelist.Endorser  `json:"endorser"`
	Images      []imageView         `json:"images"`
	Problems    []imagelist.Problem `json:"problems"`
}

type imageView struct {
	Identifier string `json:"identifier"`
	Title      string `json:"title"`
	Version    string `json:"version"`
	Size       int64  `json:"size"`
	SHA512     string `json:"sha512"`
	URI        string `json:"uri"`
	Arch       string `json:"arch"`
	OS         string `json:"os"`
	OSName     string `json:"osname,omitempty"`
	OSVersion  string `json:"osversion"`
	Hypervisor string `json:"hypervisor"`
	Format     string `json:"format,omitempty"`
	Expires    string `json:"expires"`
}

func runShow(ctx context.Context, g *Globals, o *showOptions, in string) error {
	batchGC()
	now := time.Now
	if o.now != nil {
		now = o.now
	}
	raw, err := readUpTo(g.Stdin, in, smime.MaxMessageSize)
	if err != nil {
		return err
	}
	v := listView{MessageType: "imagelist", File: in}
	var l *imagelist.List
	msg, splitErr := smime.Split(raw)
	switch {
	case o.CADir != "":
		// Whatever the input is, it must verify: an unsigned or stripped
		// list is refused here, not shown.
		mode, err := igtf.ParseCRLMode(o.CRL)
		if err != nil {
			return usageErr(err)
		}
		trust, err := igtf.Load(o.CADir)
		if err != nil {
			return inputErr(err)
		}
		rep := endorse.Verify(raw, trust, endorse.Options{CRL: mode})
		if !rep.OK {
			return rep.Err()
		}
		l, v.Signed, v.Verified, v.Signer = rep.List, true, true, rep.Signer
	case splitErr == nil:
		v.Signed = true
		if l, err = imagelist.Parse(msg.Content); err != nil {
			return inputErr(fmt.Errorf("%s: %w", in, err))
		}
	default:
		if l, err = imagelist.Parse(raw); err != nil {
			return inputErr(fmt.Errorf("%s: not a signed list (%v), and not a plain one: %w", in, splitErr, err))
		}
	}
	t := now()
	v.Identifier, v.Title, v.Description, v.Version = l.Identifier, l.Title, l.Description, l.Version
	v.Created, v.Expires = fmtTime(l.Created), fmtTime(l.Expires)
	v.Expired = !l.Expires.IsZero() && !t.Before(l.Expires)
	v.Source, v.URI, v.VO, v.Endorser = l.Source, l.URI, l.VO, l.Endorser
	v.Problems = l.Problems()
	if v.Problems == nil {
		v.Problems = []imagelist.Problem{}
	}
	v.Images = []imageView{}
	for i := range l.Images {
		im := &l.Images[i]
		v.Images = append(v.Images, imageView{
			Identifier: im.Identifier, Title: im.Title, Version: im.Version, Size: im.Size, SHA512: im.SHA512,
			URI: im.URI, Arch: im.Arch, OS: im.OS, OSName: im.OSName, OSVersion: im.OSVersion,
			Hypervisor: im.Hypervisor, Format: im.Format, Expires: fmtTime(l.ExpiresAt(im)),
		})
	}
	if o.JSON {
		return printJSON(g.Stdout, v)
	}
	printList(g.Stdout, &v, t)
	return nil
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(imagelist.TimeFormat)
}

func printList(w io.Writer, v *listView, now time.Time) {
	c := func(s string) string { return Clean(s, false) }
	switch {
	case v.Verified:
		fmt.Fprintf(w, "signature:   VERIFIED, signed by %s\n", c(v.Signer))
	case v.Signed:
		fmt.Fprintf(w, "signature:   NOT VERIFIED (give --ca-dir to verify it); do not trust what follows\n")
	default:
		fmt.Fprintf(w, "signature:   none: this is a plain, unsigned list\n")
	}
	fmt.Fprintf(w, "list:        %s\n", c(v.Title))
	fmt.Fprintf(w, "identifier:  %s\n", c(v.Identifier))
	fmt.Fprintf(w, "version:     %s\n", c(v.Version))
	fmt.Fprintf(w, "endorser:    %s\n", c(v.Endorser.DN))
	fmt.Fprintf(w, "  CA:        %s\n", c(v.Endorser.CA))
	fmt.Fprintf(w, "  contact:   %s <%s>\n", c(v.Endorser.Creator), c(v.Endorser.Email))
	fmt.Fprintf(w, "created:     %s\n", c(v.Created))
	state := "valid"
	if v.Expired {
		state = "EXPIRED"
	} else if t, err := imagelist.ParseTime(v.Expires); err == nil {
		state = fmt.Sprintf("valid, %s left", roughDuration(now, t))
	}
	fmt.Fprintf(w, "expires:     %s (%s)\n", c(v.Expires), state)
	fmt.Fprintf(w, "published:   %s\n", c(v.URI))
	if v.VO != "" {
		fmt.Fprintf(w, "VO:          %s\n", c(v.VO))
	}
	fmt.Fprintf(w, "\nimages (%d):\n", len(v.Images))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  IDENTIFIER\tTITLE\tVERSION\tSIZE\tARCH\tOS\tEXPIRES\tSHA512\n")
	for _, im := range v.Images {
		sha := im.SHA512
		if len(sha) > 16 {
			sha = sha[:16] + "…"
		}
		osv := im.OS
		if im.OSName != "" {
			osv = im.OSName
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%s\t%s %s\t%s\t%s\n", c(im.Identifier), c(im.Title), c(im.Version), im.Size, c(im.Arch), c(osv), c(im.OSVersion), c(im.Expires), c(sha))
	}
	tw.Flush()
	if len(v.Problems) > 0 {
		fmt.Fprintf(w, "\nproblems (%d): this list must not be trusted as it is\n", len(v.Problems))
		for _, p := range v.Problems {
			fmt.Fprintf(w, "  %s\n", c(p.String()))
		}
	}
}

func roughDuration(from, to time.Time) string {
	if y := to.Year() - from.Year(); y >= 2 {
		return fmt.Sprintf("%d years", y)
	}
	d := to.Sub(from)
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%d days", int(d.Hours()/24))
	case d >= 2*time.Hour:
		return fmt.Sprintf("%d hours", int(d.Hours()))
	}
	return fmt.Sprintf("%d minutes", int(d.Minutes()))
}
