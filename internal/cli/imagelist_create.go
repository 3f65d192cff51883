package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmtrust/vmtrust/imagelist"
	"github.com/vmtrust/vmtrust/imagelist/smime"
	"github.com/vmtrust/vmtrust/internal/config"
	"github.com/vmtrust/vmtrust/internal/dn"
)

// maxSpecSize bounds the spec file.
const maxSpecSize = 4 << 20

// Spec is the endorser's description of a list; create adds sizes, digests,
// dates and the version.
type Spec struct {
	Identifier  string       `json:"identifier"`
	Title       string       `json:"title"`
	Description string       `json:"description"`
	Source      string       `json:"source"`
	URI         string       `json:"uri"`
	VO          string       `json:"vo,omitempty"`
	Version     string       `json:"version,omitempty"`
	Endorser    SpecEndorser `json:"endorser"`
	Images      []SpecImage  `json:"images"`
}

// SpecEndorser names the endorser. DN and CA may be left out when --cert
// gives the endorser's certificate.
type SpecEndorser struct {
	DN      string `json:"dn,omitempty"`
	CA      string `json:"ca,omitempty"`
	Email   string `json:"email"`
	Creator string `json:"creator"`
}

// SpecImage is one image: the file to measure and what to say about it.
type SpecImage struct {
	File            string `json:"file"`
	Identifier      string `json:"identifier"`
	Title           string `json:"title"`
	Description     string `json:"description"`
	URI             string `json:"uri"`
	Version         string `json:"version"`
	Hypervisor      string `json:"hypervisor"`
	Format          string `json:"format,omitempty"`
	Arch            string `json:"arch"`
	OS              string `json:"os"`
	OSName          string `json:"osname,omitempty"`
	OSVersion       string `json:"osversion"`
	Comments        string `json:"comments"`
	Expires         string `json:"expires,omitempty"`
	RAMMinimum      string `json:"ram_minimum,omitempty"`
	RAMRecommended  string `json:"ram_recommended,omitempty"`
	CoreMinimum     string `json:"core_minimum,omitempty"`
	CoreRecommended string `json:"core_recommended,omitempty"`
	VO              string `json:"vo,omitempty"`
	MPURI           string `json:"mpuri,omitempty"`
	BaseMPURI       string `json:"base_mpuri,omitempty"`
	Group           string `json:"group,omitempty"`
	AppID           string `json:"appid,omitempty"`
	UserFullname    string `json:"user_fullname,omitempty"`
	UserGUID        string `json:"user_guid,omitempty"`
	UserURI         string `json:"user_uri,omitempty"`
}

type createOptions struct {
	Spec     string
	Cert     string
	Version  string
	Bump     string
	Lifetime string
	Output   string
	JSON     bool
	now      func() time.Time
}

func newCreateCmd(g *Globals) *cobra.Command {
	o := &createOptions{}
	c := &cobra.Command{
		Use:   "create --spec SPEC.json (--version V | --bump PREVIOUS) [-o LIST.json]",
		Short: "Write an unsigned image list from a spec file and the image files",
		Long: `create reads a small JSON spec (the list's title, identifier, where it is
published, the endorser, and for each image its file and description),
measures every image file in one streaming pass (size and sha512), and
writes a complete HEPiX image list with every required field.

The list's version must be given (--version) or derived from the previous
list (--bump PREVIOUS, signed or not: its last number plus one). It is valid
from now for --lifetime (default 28 days, as vmcaster). With --cert, hv:dn
and hv:ca are taken from the endorser's certificate in OpenSSL oneline form,
which is what verifiers compare them against.

Spec example:

  {"identifier": "5d5e7c4e-...", "title": "Site images", "description": "...",
   "source": "https://site.example/", "uri": "https://site.example/image.list",
   "endorser": {"email": "admin@site.example", "creator": "Site admins"},
   "images": [{"file": "worker.qcow2", "identifier": "8c0a...", "title": "Worker node",
     "description": "...", "uri": "https://site.example/worker.qcow2", "version": "12.5",
     "hypervisor": "QEMU,KVM", "format": "qcow2", "arch": "x86_64", "os": "Linux",
     "osname": "Debian", "osversion": "12", "comments": ""}]}

Image file paths are relative to the spec file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCreate(cmd.Context(), g, o)
		},
	}
	f := c.Flags()
	f.StringVar(&o.Spec, "spec", "", "spec file (JSON)")
	f.StringVar(&o.Cert, "cert", "", "endorser certificate (PEM); fills hv:dn and hv:ca")
	f.StringVar(&o.Version, "version", "", "the list's hv:version")
	f.StringVar(&o.Bump, "bump", "", "previous list: use its version plus one")
	f.StringVar(&o.Lifetime, "lifetime", "28d", "how long the list is valid (e.g. 28d, 36h)")
	f.StringVarP(&o.Output, "output", "o", "-", "where to write the list")
	f.BoolVar(&o.JSON, "json", false, "print a JSON summary on stdout when -o is a file")
	_ = c.MarkFlagRequired("spec")
	return c
}

func runCreate(ctx context.Context, g *Globals, o *createOptions) error {
	now := time.Now
	if o.now != nil {
		now = o.now
	}
	lifetime, err := config.ParseDuration(o.Lifetime)
	if err != nil {
		return usageErr(err)
	}
	raw, err := readFileBounded(o.Spec, maxSpecSize)
	if err != nil {
		return err
	}
	var spec Spec
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&spec); err != nil {
		return inputErr(fmt.Errorf("spec %s: %w", o.Spec, err))
	}
	if spec.Identifier == "" {
		return inputErr(fmt.Errorf("spec %s has no \"identifier\"; a list keeps one identifier across versions, so subscribers can follow it: add %q", o.Spec, newUUID()))
	}
	version, err := chooseVersion(o, spec.Version)
	if err != nil {
		return err
	}
	e := imagelist.Endorser{DN: spec.Endorser.DN, CA: spec.Endorser.CA, Email: spec.Endorser.Email, Creator: spec.Endorser.Creator}
	if o.Cert != "" {
		cert, err := loadCert(o.Cert)
		if err != nil {
			return err
		}
		subj, err1 := dn.Oneline(cert.RawSubject)
		iss, err2 := dn.Oneline(cert.RawIssuer)
		if err := errors.Join(err1, err2); err != nil {
			return inputErr(fmt.Errorf("certificate %s: %w", o.Cert, err))
		}
		if e.DN != "" && e.DN != subj || e.CA != "" && e.CA != iss {
			return inputErr(fmt.Errorf("spec endorser dn/ca (%q, %q) differ from the certificate's (%q, %q); remove them from the spec", e.DN, e.CA, subj, iss))
		}
		e.DN, e.CA = subj, iss
	}
	created := now().UTC().Truncate(time.Second)
	l := &imagelist.List{
		Created: created, Expires: created.Add(lifetime),
		Identifier: spec.Identifier, Title: spec.Title, Description: spec.Description,
		Source: spec.Source, URI: spec.URI, VO: spec.VO, Version: version, Endorser: e,
	}
	base := filepath.Dir(o.Spec)
	digests, err := measure(ctx, g, base, spec.Images)
	if err != nil {
		return err
	}
	for i, si := range spec.Images {
		im := imagelist.Image{
			Identifier: si.Identifier, Title: si.Title, Description: si.Description, URI: si.URI,
			Version: si.Version, Hypervisor: si.Hypervisor, Format: si.Format, Arch: si.Arch,
			OS: si.OS, OSName: si.OSName, OSVersion: si.OSVersion, Comments: si.Comments,
			RAMMinimum: si.RAMMinimum, RAMRecommended: si.RAMRecommended, CoreMinimum: si.CoreMinimum,
			CoreRecommended: si.CoreRecommended, VO: si.VO, MPURI: si.MPURI, BaseMPURI: si.BaseMPURI,
			Group: si.Group, AppID: si.AppID, UserFullname: si.UserFullname, UserGUID: si.UserGUID, UserURI: si.UserURI,
			Size: digests[i].size, SHA512: digests[i].sha512,
		}
		if si.Expires != "" {
			t, err := imagelist.ParseTime(si.Expires)
			if err != nil {
				return inputErr(fmt.Errorf("spec image %d (%s): expires: %w", i, si.File, err))
			}
			im.Expires = t
		}
		l.Images = append(l.Images, im)
	}
	out, err := imagelist.Marshal(l)
	if err != nil {
		return err
	}
	// Never write a list a verifier would refuse: read back what we made.
	check, err := imagelist.Parse(out)
	if err != nil {
		return fmt.Errorf("internal error: the list written does not parse: %w", err)
	}
	if ps := check.Problems(); len(ps) > 0 {
		msgs := make([]string, len(ps))
		for i, p := range ps {
			msgs[i] = p.String()
		}
		return inputErr(fmt.Errorf("the spec does not make a valid list:\n  %s", strings.Join(msgs, "\n  ")))
	}
	if err := writeOutput(g, o.Output, out, 0o644); err != nil {
		return err
	}
	g.Log.Info("list created", "list.id", l.Identifier, "version", l.Version, "images", len(l.Images), "expires", l.Expires.Format(imagelist.TimeFormat))
	if o.JSON && o.Output != "-" {
		return printJSON(g.Stdout, map[string]any{
			"message_type": "imagelist_created", "identifier": l.Identifier, "version": l.Version,
			"created": l.Created.Format(imagelist.TimeFormat), "expires": l.Expires.Format(imagelist.TimeFormat),
			"images": len(l.Images), "output": o.Output,
		})
	}
	return nil
}

func chooseVersion(o *createOptions, specVersion string) (string, error) {
	switch {
	case o.Version != "" && o.Bump != "":
		return "", usageErr(errors.New("give --version or --bump, not both"))
	case o.Version != "":
		return o.Version, nil
	case o.Bump != "":
		raw, err := readFileBounded(o.Bump, smime.MaxMessageSize)
		if err != nil {
			return "", err
		}
		content := raw
		if m, err := smime.Split(raw); err == nil {
			content = m.Content // only its version is used, to count up from
		}
		prev, err := imagelist.Parse(content)
		if err != nil {
			return "", inputErr(fmt.Errorf("previous list %s: %w", o.Bump, err))
		}
		v, err := imagelist.BumpVersion(prev.Version)
		if err != nil {
			return "", inputErr(fmt.Errorf("previous list %s: %w", o.Bump, err))
		}
		return v, nil
	case specVersion != "":
		return specVersion, nil
	}
	return "", usageErr(errors.New("the list needs a version: give --version V, or --bump PREVIOUS to count up from the last list"))
}

type digest struct {
	size   int64
	sha512 string
}

// measure hashes every image file in one streaming pass each, in parallel.
func measure(ctx context.Context, g *Globals, base string, imgs []SpecImage) ([]digest, error) {
	out := make([]digest, len(imgs))
	errs := make([]error, len(imgs))
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i, im := range imgs {
		if im.File == "" {
			return nil, inputErr(fmt.Errorf("spec image %d (%s) has no \"file\"", i, im.Title))
		}
		path := im.File
		if !filepath.IsAbs(path) {
			path = filepath.Join(base, path)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			start := time.Now()
			out[i], errs[i] = hashFile(ctx, path)
			if errs[i] == nil {
				g.Log.Debug("image measured", "file", path, "bytes", out[i].size, "seconds", time.Since(start).Seconds())
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

func hashFile(ctx context.Context, path string) (digest, error) {
	f, err := os.Open(path)
	if err != nil {
		return digest{}, inputErr(fmt.Errorf("image file: %w", err))
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return digest{}, inputErr(fmt.Errorf("image file %s: not a regular file", path))
	}
	h := sha512.New()
	buf := make([]byte, 1<<20)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return digest{}, err
		}
		k, err := f.Read(buf)
		h.Write(buf[:k])
		n += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			return digest{}, fmt.Errorf("image file %s: %w", path, err)
		}
	}
	return digest{size: n, sha512: hex.EncodeToString(h.Sum(nil))}, nil
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
