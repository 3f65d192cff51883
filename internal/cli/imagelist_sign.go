package cli

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/vmtrust/vmtrust/imagelist"
	"github.com/vmtrust/vmtrust/imagelist/smime"
	"github.com/vmtrust/vmtrust/internal/dn"
)

type signOptions struct {
	Cert   string
	Key    string
	Chain  string
	Digest string
	Output string
	Force  bool
}

func newSignCmd(g *Globals) *cobra.Command {
	o := &signOptions{}
	c := &cobra.Command{
		Use:   "sign --cert CERT.pem --key KEY.pem [-o LIST.signed] LIST.json",
		Short: "Sign an image list as S/MIME with a detached PKCS#7 signature",
		Long: `sign wraps a list in S/MIME multipart/signed with a detached PKCS#7
signature (signed attributes, SHA-256 by default), byte-compatible with
'openssl smime -sign' and vmcaster: 'openssl smime -verify' accepts it and
vmcatcher, cloudkeeper and atrope read it.

Before signing, the list is checked: it must parse without problems, and its
hv:dn and hv:ca must be the certificate's subject and issuer, or every
subscriber would reject it (--force skips these checks). The key must be
unencrypted PEM (RSA or ECDSA).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSign(cmd.Context(), g, o, args[0])
		},
	}
	f := c.Flags()
	f.StringVar(&o.Cert, "cert", "", "signer certificate (PEM)")
	f.StringVar(&o.Key, "key", "", "signer private key (PEM, unencrypted)")
	f.StringVar(&o.Chain, "chain", "", "intermediate CA certificates to include (PEM, issuer first)")
	f.StringVar(&o.Digest, "digest", "sha-256", "digest: sha-256, sha-384 or sha-512")
	f.StringVarP(&o.Output, "output", "o", "-", "where to write the signed list")
	f.BoolVar(&o.Force, "force", false, "sign even if the list has problems or names another endorser")
	_ = c.MarkFlagRequired("cert")
	_ = c.MarkFlagRequired("key")
	return c
}

func runSign(ctx context.Context, g *Globals, o *signOptions, in string) error {
	var h crypto.Hash
	switch o.Digest {
	case "sha-256", "sha256":
		h = crypto.SHA256
	case "sha-384", "sha384":
		h = crypto.SHA384
	case "sha-512", "sha512":
		h = crypto.SHA512
	default:
		return usageErr(fmt.Errorf("--digest %q: want sha-256, sha-384 or sha-512", o.Digest))
	}
	content, err := readBounded(g.Stdin, in, imagelist.MaxListSize)
	if err != nil {
		return err
	}
	if _, err := smime.Split(content); err == nil {
		return inputErr(fmt.Errorf("%s is already a signed message; sign the plain JSON list", in))
	}
	cert, err := loadCert(o.Cert)
	if err != nil {
		return err
	}
	key, err := loadKey(o.Key)
	if err != nil {
		return err
	}
	if !publicKeyMatches(cert, key) {
		return inputErr(errors.New("the private key does not belong to the certificate"))
	}
	opts := smime.SignOptions{Hash: h}
	if o.Chain != "" {
		cs, err := loadCerts(o.Chain)
		if err != nil {
			return err
		}
		opts.Chain = cs
	}
	if !o.Force {
		l, err := imagelist.Parse(content)
		if err != nil {
			return inputErr(fmt.Errorf("%s: %w", in, err))
		}
		if ps := l.Problems(); len(ps) > 0 {
			return withHint(inputErr(fmt.Errorf("%s: %d problem(s), first: %s", in, len(ps), ps[0])),
				"run 'vmtrust imagelist show "+in+"' to see them all; --force signs anyway")
		}
		subj, _ := dn.Oneline(cert.RawSubject)
		iss, _ := dn.Oneline(cert.RawIssuer)
		if l.Endorser.DN != subj || l.Endorser.CA != iss {
			return withHint(inputErr(fmt.Errorf("the list names endorser %q (CA %q), but the certificate is %q (CA %q); subscribers would reject it",
				l.Endorser.DN, l.Endorser.CA, subj, iss)),
				"recreate the list with 'vmtrust imagelist create --cert "+o.Cert+"'")
		}
	}
	signed, err := smime.Sign(content, cert, key, opts)
	if err != nil {
		return err
	}
	if err := writeOutput(g, o.Output, signed, 0o644); err != nil {
		return err
	}
	signer, _ := dn.Oneline(cert.RawSubject)
	g.Log.Info("list signed", "signer", signer, "bytes", len(signed))
	return nil
}

func publicKeyMatches(cert *x509.Certificate, key crypto.Signer) bool {
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(cert.PublicKey)
}
