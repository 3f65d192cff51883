// Package admission decides whether a libvirt domain may start on this
// hypervisor, and in which trust class: it resolves every disk of the
// domain XML, and every backing file, to an image of the site's catalog,
// runs the domain definition checks and asks the site policy.
//
// # Guarantees
//
// Decide fails closed: any error (malformed XML, an unreadable disk or
// catalog, a qcow2 header that cannot be parsed, a cancelled context, a
// missing policy) denies, with the error as the reason. It never returns an
// allow that the policy did not give.
//
// A disk file is an admitted image only when its path, after
// filepath.EvalSymlinks, is the path of an image the catalog records as
// cached, that path lies in the cache directory, and the file is unchanged:
// a regular file without any write permission bit, of the endorsed size,
// whose sha512 (re-computed on every decision) is the endorsed digest. Such
// an image has policy state "cached" (or "expired" once its expiry has
// passed); a cached image failing these checks is "modified"; a catalog
// image in state expired or revoked keeps that state; any other file is
// "unknown". Backing files count as disks of their own: those the domain
// XML names in <backingStore> and those the qcow2 header of an image names
// (resolved like QEMU, relative to the image's directory). A backing file
// name is only ever compared with catalog paths; the file behind it is
// opened only at the catalog's path, never by the name in the header. A
// qcow2 with an external data file is refused.
//
// The domain checks are run for the class the policy gives, not a class
// guessed beforehand: the policy is evaluated with the findings of class
// 3, then 2, then 1, and the first evaluation that allows the domain in the
// very class its findings were computed for decides (strictest first). When
// none does, the domain is denied with the reason of the evaluation at the
// class another evaluation offered, or, if none allowed, of the most
// lenient evaluation (class 1), whose reason is the most fundamental; the
// first disk file that is not a cached image is named after the reason.
//
// # Trusted
//
// The catalog view is trusted to report the images, their endorsers and
// their subscriptions' freshness as accepted by the update path. The catalog
// has no notion yet of the site's own endorser, so no image is site-endorsed
// (class 1 is unreachable by images alone until it has one).
//
// # Record
//
// Record appends each decision as one JSON object per line to
// STATE/admission.jsonl and fsyncs it before returning; the audit ledger
// takes this file over. Field names are stable; fields may be added.
package admission

import (
	"context"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vmtrust/vmtrust/internal/admission/domain"
	"github.com/vmtrust/vmtrust/internal/admission/policy"
	"github.com/vmtrust/vmtrust/internal/catalog"
	"github.com/vmtrust/vmtrust/internal/disk/qcow2"
)

// Policy image states.
const (
	StateCached   = "cached"
	StateExpired  = "expired"
	StateRevoked  = "revoked"
	StateUnknown  = "unknown"
	StateModified = "modified"
)

// Request is one admission question.
type Request struct {
	XML []byte    // the libvirt domain XML
	Now time.Time // the time of the decision; zero denies
}

// Image is a catalog image as admission needs it.
type Image struct {
	ID                string
	State             catalog.ImageState
	Path              string // file in the cache, or ""
	SHA512            string // endorsed digest, lower-case hex
	Size              int64  // endorsed size in bytes
	Expires           time.Time
	Endorser          string
	EndorserIsSite    bool
	SubscriptionStale bool
}

// Catalog is the read-only view of the catalog admission uses.
type Catalog interface {
	AdmissionImages(ctx context.Context, now time.Time) ([]Image, error)
}

// Deps is what Decide reads besides the request.
type Deps struct {
	Policy   *policy.Policy
	Catalog  Catalog
	CacheDir string // the cache's cache/ directory; catalog paths outside it are not trusted
}

// Disk is one resolved disk file: a domain disk or one of its backing files.
type Disk struct {
	Target  string `json:"target"`            // target dev of the domain disk
	Path    string `json:"path"`              // as named (domain XML or qcow2 header)
	Backing int    `json:"backing,omitempty"` // 0: the disk itself; n: n-th backing level
	ImageID string `json:"image_id,omitempty"`
	SHA512  string `json:"sha512,omitempty"`
	State   string `json:"state"`
	Detail  string `json:"detail,omitempty"` // why the state is not "cached"
}

// Finding is a domain check finding (domain.Finding) as recorded.
type Finding struct {
	Rule     string `json:"rule"`
	Severity string `json:"severity"`
	Path     string `json:"path"`
	Reason   string `json:"reason"`
}

func findings(fs []domain.Finding) []Finding {
	var out []Finding
	for _, f := range fs {
		out = append(out, Finding(f))
	}
	return out
}

// Decision is the outcome of Decide.
type Decision struct {
	Time     time.Time `json:"time"`
	Allow    bool      `json:"allow"`
	Class    int       `json:"class,omitempty"`
	Reason   string    `json:"reason"`
	Rule     string    `json:"rule,omitempty"`
	Profile  string    `json:"profile,omitempty"`
	FailOpen bool      `json:"fail_open,omitempty"`
	Domain   string    `json:"domain,omitempty"`
	UUID     string    `json:"uuid,omitempty"`
	MACs     []string  `json:"macs,omitempty"`
	Disks    []Disk    `json:"disks,omitempty"`
	Findings []Finding `json:"findings,omitempty"`

	// ProfileDetail is the containment profile of an allowed domain.
	ProfileDetail *policy.Profile `json:"-"`
}

func deny(d Decision, err error) Decision {
	d.Allow, d.Class, d.Rule, d.Profile, d.ProfileDetail, d.FailOpen = false, 0, "", "", nil, false
	d.Reason = err.Error()
	return d
}

// Decide answers req. It never returns an error: a failure is a denial
// whose Reason is the error.
func Decide(ctx context.Context, req Request, deps Deps) Decision {
	out := Decision{Time: req.Now}
	if req.Now.IsZero() {
		return deny(out, errors.New("admission: request without a time"))
	}
	if deps.Policy == nil || deps.Catalog == nil || deps.CacheDir == "" {
		return deny(out, errors.New("admission: no policy, catalog or cache directory"))
	}
	dom, err := domain.Parse(req.XML)
	if err != nil {
		return deny(out, fmt.Errorf("domain xml: %w", err))
	}
	out.Domain, out.UUID = dom.Name, dom.UUID
	for _, i := range dom.Interfaces {
		if i.MAC != "" {
			out.MACs = append(out.MACs, i.MAC)
		}
	}
	if err := ctx.Err(); err != nil {
		return deny(out, err)
	}
	ims, err := deps.Catalog.AdmissionImages(ctx, req.Now)
	if err != nil {
		return deny(out, fmt.Errorf("catalog: %w", err))
	}
	r, err := newResolver(ctx, ims, deps.CacheDir, req.Now)
	if err != nil {
		return deny(out, err)
	}
	for _, k := range dom.Disks {
		if err := r.disk(ctx, k); err != nil {
			return deny(out, err)
		}
	}
	out.Disks = r.disks
	if err := ctx.Err(); err != nil {
		return deny(out, err)
	}

	in := policy.Input{Now: req.Now, Images: r.images, Domain: policy.Domain{
		Name: dom.Name, UUID: dom.UUID, Type: dom.Type, Disks: len(dom.Disks),
		Hostdevs: len(dom.Hostdevs), Filesystems: len(dom.Filesystems)}}
	for _, i := range dom.Interfaces {
		in.Domain.Interfaces = append(in.Domain.Interfaces, policy.Interface{MAC: i.MAC, Type: i.Type})
	}
	type pass struct {
		d        policy.Decision
		findings []domain.Finding
	}
	var passes [4]pass
	for class := 3; class >= 1; class-- {
		fs := domain.Check(dom, class)
		in.Domain.Findings = in.Domain.Findings[:0]
		for _, f := range fs {
			in.Domain.Findings = append(in.Domain.Findings, policy.Finding{Rule: f.Rule, Severity: f.Severity})
		}
		pd := deps.Policy.Decide(ctx, in)
		passes[class] = pass{pd, fs}
		if pd.Allow && pd.Class == class {
			out.Allow, out.Class, out.Reason, out.Rule, out.FailOpen = true, pd.Class, pd.Reason, pd.Rule, pd.FailOpen
			out.Profile = pd.Profile.Name
			prof := pd.Profile
			out.ProfileDetail = &prof
			out.Findings = findings(fs)
			return out
		}
	}
	pick := 1
	for class := 3; class >= 1; class-- {
		if p := passes[class].d; p.Allow && p.Class >= 1 && p.Class <= 3 {
			pick = p.Class
			break
		}
	}
	p := passes[pick]
	out.Findings = findings(p.findings)
	if p.d.Allow {
		return deny(out, fmt.Errorf("the policy does not settle on a trust class (class %d checks give class %d)", pick, p.d.Class))
	}
	out.Reason, out.Rule = p.d.Reason, p.d.Rule
	for _, k := range out.Disks {
		if k.State != StateCached {
			out.Reason += fmt.Sprintf(" (disk %s: %s is %s", k.Target, k.Path, k.State)
			if k.Detail != "" {
				out.Reason += ": " + k.Detail
			}
			out.Reason += ")"
			break
		}
	}
	return out
}

// resolver maps disk files to catalog images.
type resolver struct {
	now    time.Time
	byPath map[string][]Image // resolved catalog path -> images
	disks  []Disk
	images []policy.Image
}

func newResolver(ctx context.Context, ims []Image, cacheDir string, now time.Time) (*resolver, error) {
	dir, err := filepath.EvalSymlinks(cacheDir)
	if err != nil {
		return nil, fmt.Errorf("cache directory: %w", err)
	}
	r := &resolver{now: now, byPath: map[string][]Image{}}
	for _, im := range ims {
		if im.Path == "" {
			continue
		}
		p, err := filepath.EvalSymlinks(im.Path)
		if err != nil {
			p = filepath.Clean(im.Path) // gone: it can match nothing that exists
		}
		if rel, err := filepath.Rel(dir, p); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
			continue // not in the cache: not trusted
		}
		r.byPath[p] = append(r.byPath[p], im)
	}
	return r, ctx.Err()
}

func (r *resolver) disk(ctx context.Context, k domain.Disk) error {
	switch k.Type {
	case "file", "":
	case "block", "network", "dir":
		return nil // no image file: the domain checks judge these
	default:
		return fmt.Errorf("disk %s: a disk of type %q cannot be resolved to an admitted image", k.TargetDev, k.Type)
	}
	src := k.Source.File
	if src == "" {
		return nil // an empty drive
	}
	if err := r.file(ctx, k.TargetDev, src, 0); err != nil {
		return err
	}
	for i, b := range k.Backing {
		if b.Type == "" && b.Source.File == "" {
			continue // <backingStore/>: explicitly no backing
		}
		if b.Type != "file" || b.Source.File == "" {
			return fmt.Errorf("disk %s: backing store %d of type %q is not an admitted image", k.TargetDev, i+1, b.Type)
		}
		if err := r.file(ctx, k.TargetDev, b.Source.File, i+1); err != nil {
			return err
		}
	}
	return nil
}

// file resolves one disk file and, through its qcow2 header, its backing
// chain.
func (r *resolver) file(ctx context.Context, target, name string, level int) error {
	for ; ; level++ {
		if level > domain.MaxBackingChain {
			return fmt.Errorf("disk %s: backing chain longer than %d", target, domain.MaxBackingChain)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !filepath.IsAbs(name) {
			return fmt.Errorf("disk %s: %q is not an absolute path", target, name)
		}
		d, im, backing, err := r.identify(ctx, name)
		if err != nil {
			return fmt.Errorf("disk %s: %s: %w", target, name, err)
		}
		d.Target, d.Path, d.Backing = target, name, level
		r.disks = append(r.disks, d)
		r.images = append(r.images, policy.Image{ID: d.ImageID, SHA512: d.SHA512, State: d.State,
			Endorser: im.Endorser, EndorserIsSite: im.EndorserIsSite, SubscriptionStale: im.SubscriptionStale})
		if backing == "" {
			return nil
		}
		if !filepath.IsAbs(backing) {
			backing = filepath.Join(filepath.Dir(name), backing)
		}
		name = backing
	}
}

// identify finds the catalog image of the file called name and, for an
// admitted image only, the backing file its qcow2 header names.
func (r *resolver) identify(ctx context.Context, name string) (Disk, Image, string, error) {
	p, err := filepath.EvalSymlinks(name)
	if err != nil {
		return Disk{}, Image{}, "", err
	}
	cands := r.byPath[p]
	if len(cands) == 0 {
		return Disk{State: StateUnknown, Detail: "not a cached image of the catalog"}, Image{}, "", nil
	}
	var first Disk
	var firstIm Image
	for i, im := range cands {
		d := Disk{ImageID: im.ID, SHA512: im.SHA512}
		switch im.State {
		case catalog.ImageCached:
			if err := verify(ctx, p, im); err != nil {
				if ctx.Err() != nil {
					return Disk{}, Image{}, "", ctx.Err()
				}
				d.State, d.Detail = StateModified, err.Error()
				break
			}
			backing, err := qcowBacking(p)
			if err != nil {
				return Disk{}, Image{}, "", err
			}
			d.State = StateCached
			if !im.Expires.IsZero() && !r.now.Before(im.Expires) {
				d.State, d.Detail = StateExpired, "expired at "+im.Expires.UTC().Format(time.RFC3339)
			}
			return d, im, backing, nil
		case catalog.ImageExpired:
			d.State = StateExpired
		case catalog.ImageRevoked:
			d.State = StateRevoked
		default:
			d.State, d.Detail = StateUnknown, "catalog state "+string(im.State)
		}
		if i == 0 {
			first, firstIm = d, im
		}
	}
	return first, firstIm, "", nil
}

// verify checks that the file at p is still the image im was cached as:
// read-only, of the endorsed size and digest. It re-hashes the whole file.
func verify(ctx context.Context, p string, im Image) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	switch {
	case !st.Mode().IsRegular():
		return errors.New("not a regular file")
	case st.Mode().Perm()&0o222 != 0:
		return fmt.Errorf("file is writable (mode %v)", st.Mode().Perm())
	case st.Size() != im.Size:
		return fmt.Errorf("%d bytes, endorsed %d", st.Size(), im.Size)
	}
	h := sha512.New()
	buf := make([]byte, 1<<20)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := f.Read(buf)
		h.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != im.SHA512 {
		return errors.New("sha512 differs from the endorsed digest")
	}
	return nil
}

// qcowBacking returns the backing file name in the qcow2 header of the file
// at p, "" for a file that is not a qcow2 or has no backing file.
func qcowBacking(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var magic [4]byte
	if _, err := f.ReadAt(magic[:], 0); err != nil || string(magic[:]) != "QFI\xfb" {
		return "", nil
	}
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	h, err := qcow2.ParseHeader(f, st.Size())
	if err != nil {
		return "", err
	}
	if h.DataFile != "" {
		return "", fmt.Errorf("qcow2 with an external data file %q", h.DataFile)
	}
	return h.BackingFile, nil
}
