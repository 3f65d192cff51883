package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmtrust/vmtrust/imagelist"
	"github.com/vmtrust/vmtrust/imagelist/smime"
	"github.com/vmtrust/vmtrust/internal/endorse"
	"github.com/vmtrust/vmtrust/internal/igtf"
)

type verifyOptions struct {
	EndorserDN string
	EndorserCA string
	Identifier string

	CADir   string
	At      string
	CRL     string
	Content string
	JSON    bool
}

func newVerifyCmd(g *Globals) *cobra.Command {
	o := &verifyOptions{}
	c := &cobra.Command{
		Use:   "verify --ca-dir DIR [--at TIME] [--crl require|optional|off] LIST.signed",
		Short: "Verify a signed image list the way a subscribing site must",
		Long: `verify runs vmcatcher's whole procedure on a signed list and prints every
check: S/MIME structure; content digest and signature; exactly one signer
with its certificate; the certificate valid when the list was signed and at
--at (default now); a chain to a CA in the IGTF-style directory --ca-dir
(HASH.0 certificates, HASH.r0 CRLs, HASH.signing_policy / HASH.namespaces);
a current CRL for every issuing CA (--crl require, the default; 'optional'
accepts a CA without one; 'off' skips CRLs); no certificate revoked; the
CA's namespace policy; the list complete and well-formed; hv:dn and hv:ca
equal to the signer's subject and issuer; the list created before --at and
not expired.

With --endorser-dn and --endorser-ca the signer must also be that endorser
(what a subscription authorises), and with --identifier the list must be
that list (its dc:identifier). With --content FILE the verified JSON is
written there, only if every check passed.

EXIT STATUS
  0   every check passed
  1   internal error        2  usage            3  unreadable input
  10  malformed S/MIME or truncated             11 unsigned input
  12  unsupported protocol, micalg or form      13 input too large
  14  invalid PKCS#7                            15 tampered content
  16  invalid signature value                   17 not exactly one signer
  18  signer certificate missing                19 certificate not valid at signing time
  20  unknown CA / no chain                     21 certificate expired
  22  certificate not yet valid                 23 CRL missing
  24  CRL expired, not yet valid or bad         25 certificate revoked
  26  signer outside the CA's namespace         27 content is not strict JSON / not a list
  28  list incomplete or malformed              29 hv:dn is not the signer
  30  hv:ca is not the signer's issuer          31 list created in the future
  32  list expired                              33 certificate may not sign (key usage)
  34  signer is not the authorised endorser     35 dc:identifier is not the expected one`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runVerify(cmd.Context(), g, o, args[0])
		},
	}
	f := c.Flags()
	f.StringVar(&o.CADir, "ca-dir", "", "IGTF-style trust directory (e.g. /etc/grid-security/certificates)")
	f.StringVar(&o.At, "at", "", "check validity at this time (RFC 3339 or YYYY-MM-DD) instead of now")
	f.StringVar(&o.CRL, "crl", string(igtf.CRLRequire), "CRL policy: require, optional or off")
	f.StringVar(&o.Content, "content", "", "write the verified list JSON to this file")
	f.StringVar(&o.EndorserDN, "endorser-dn", "", "the only signer accepted (subject, OpenSSL oneline form)")
	f.StringVar(&o.EndorserCA, "endorser-ca", "", "the authorised signer's issuer (with --endorser-dn)")
	f.StringVar(&o.Identifier, "identifier", "", "the list's expected dc:identifier")
	f.BoolVar(&o.JSON, "json", false, "print the report as JSON")
	_ = c.MarkFlagRequired("ca-dir")
	return c
}

// ParseTime reads a --at style time.
func ParseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("time %q: want RFC 3339 (2026-11-25T14:03:00Z) or a date (2026-11-25)", s)
}

func runVerify(ctx context.Context, g *Globals, o *verifyOptions, in string) error {
	batchGC()
	mode, err := igtf.ParseCRLMode(o.CRL)
	if err != nil {
		return usageErr(err)
	}
	var at time.Time
	if o.At != "" {
		if at, err = ParseTime(o.At); err != nil {
			return usageErr(err)
		}
	}
	if (o.EndorserDN == "") != (o.EndorserCA == "") {
		return usageErr(fmt.Errorf("--endorser-dn and --endorser-ca go together"))
	}
	vopts := endorse.Options{At: at, CRL: mode, Identifier: o.Identifier}
	if o.EndorserDN != "" {
		vopts.Endorsers = []endorse.Endorser{{DN: o.EndorserDN, CA: o.EndorserCA}}
	}
	trust, err := igtf.Load(o.CADir)
	if err != nil {
		return inputErr(err)
	}
	for _, s := range trust.Skipped {
		g.Log.Warn("trust directory file not used", "file", s)
	}
	if len(trust.CAs) == 0 {
		return withHint(inputErr(fmt.Errorf("trust directory %s holds no CA certificate (HASH.0 files)", o.CADir)),
			"name each CA file after its subject hash: openssl x509 -hash -noout -in CA.pem")
	}
	raw, err := readUpTo(g.Stdin, in, smime.MaxMessageSize)
	if err != nil {
		return err
	}
	rep := endorse.Verify(raw, trust, vopts)
	if rep.OK && o.Content != "" {
		if err := writeOutput(g, o.Content, rep.Content, 0o644); err != nil {
			return err
		}
	}
	if o.JSON {
		if err := printJSON(g.Stdout, struct {
			MessageType string `json:"message_type"`
			File        string `json:"file"`
			*endorse.Report
		}{"imagelist_verification", in, rep}); err != nil {
			return err
		}
	} else {
		printReport(g.Stdout, in, rep)
	}
	return rep.Err()
}

func printReport(w io.Writer, file string, rep *endorse.Report) {
	c := func(s string) string { return Clean(s, false) }
	fmt.Fprintf(w, "list:     %s\n", c(file))
	if rep.Signer != "" {
		fmt.Fprintf(w, "signer:   %s\n          issued by %s", c(rep.Signer), c(rep.SignerIssuer))
		if rep.SigningTime != "" {
			fmt.Fprintf(w, ", signed %s", rep.SigningTime)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "checked:  at %s\n\n", rep.At)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, ck := range rep.Checks {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", strings.ToUpper(string(ck.Status)), ck.Name, c(ck.Detail))
	}
	tw.Flush()
	fmt.Fprintln(w)
	if rep.OK {
		l := rep.List
		fmt.Fprintf(w, "result:   VERIFIED: list %s version %s, %d image(s), valid until %s\n",
			c(l.Identifier), c(l.Version), len(l.Images), l.Expires.Format(imagelist.TimeFormat))
		return
	}
	fmt.Fprintf(w, "result:   REJECTED (%s): %s\n", rep.Reason, c(rep.Error))
}
