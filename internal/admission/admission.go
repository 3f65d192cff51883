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
// cached (in the cache directory) or as a registered user image (in the
// user image directory), and the file is unchanged: a regular file without
// any write permission bit, of the endorsed size, whose sha512 is the
// endorsed digest. The digest is re-computed unless the file's identity
// (package fileid: device, inode, size, mtime, ctime) is the one recorded
// when the digest was last verified; with the policy's identity_change =
// "refuse" such a file is refused instead of re-hashed. A re-hashed file is
// reported (Decision.Rehashed) so the caller can record its new identity.
// An endorsed image has policy state "cached" (or "expired" once its expiry
// has passed), a user image "user-registered"; a file failing these checks
// is "modified"; a catalog image in state expired or revoked keeps that
// state, also when the domain names the cache path it had before the cache
// retired it (Image.FormerPath); any other file is "unknown". Backing files count as disks of their own: those the domain
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
// first disk file that is not an admitted image is named after the reason.
//
// # Trusted
//
// The catalog view is trusted to report the images, their endorsers (and
// which one is the site's own), their subscriptions' freshness and the user
// images' inspection summaries as recorded by the update and registration
// paths, and the file identities recorded right after a verification.
// Root on the hypervisor is trusted: it could change the system clock to
// forge a ctime.
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
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vmtrust/vmtrust/internal/admission/domain"
	"github.com/vmtrust/vmtrust/internal/admission/policy"
	"github.com/vmtrust/vmtrust/internal/catalog"
	"github.com/vmtrust/vmtrust/internal/disk/qcow2"
	"github.com/vmtrust/vmtrust/internal/fileid"
)

// Policy image states.
const (
	StateCached   = "cached"
	StateExpired  = "expired"
	StateRevoked  = "revoked"
	StateUnknown  = "unknown"
	StateModified = "modified"
	StateUser     = "user-registered"
)

// How a disk file's digest was established (Disk.Verified).
const (
	// VerifiedIdentity: the file's identity (package fileid) is the one
	// recorded when its sha512 was last verified, so that digest holds.
	VerifiedIdentity = "identity"
	// VerifiedSHA512: the file was re-hashed for this decision.
	VerifiedSHA512 = "sha512"
)

// Request is one admission question.
type Request struct {
	XML []byte    // the libvirt domain XML
	Now time.Time // the time of the decision; zero denies
}

// Image is a catalog image (an endorsed image of a subscription, or a
// registered user image) as admission needs it.
type Image struct {
	ID                string
	Subscription      int64 // 0 for a user image
	State             catalog.ImageState
	Path              string // file in the cache or the user image directory, or ""
	SHA512            string // endorsed (or registered) digest, lower-case hex
	Size              int64  // endorsed size in bytes
	Expires           time.Time
	Endorser          string
	EndorserIsSite    bool
	SubscriptionStale bool

	// File is the identity the file at Path had when SHA512 was last
	// verified; zero when none is recorded (the file is then re-hashed).
	File fileid.ID

	// FormerPath, for an expired or revoked image, is where it was cached
	// before the cache retired it: a disk naming that (now missing) file
	// is reported in the image's state instead of as a missing file.
	FormerPath string

	// User marks a registered user-supplied image (State is ImageCached
	// for it): policy state "user-registered", never class 1 or 2.
	User       bool
	Owner      string
	Inspection policy.Inspection
}

// Catalog is the read-only view of the catalog admission uses.
type Catalog interface {
	AdmissionImages(ctx context.Context, now time.Time) ([]Image, error)
}

// Deps is what Decide reads besides the request.
type Deps struct {
	Policy   *policy.Policy
	Catalog  Catalog
	CacheDir string // the cache's cache/ directory; endorsed image paths outside it are not trusted
	UserDir  string // the registered user images' directory; user image paths outside it are not trusted
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
	// Verified says how the digest was established: VerifiedIdentity or
	// VerifiedSHA512 ("" when the file was not verified).
	Verified string `json:"verified,omitempty"`
	User     bool   `json:"user,omitempty"`     // a registered user image
	Owner    string `json:"owner,omitempty"`    // its owner
	Endorser string `json:"endorser,omitempty"` // the endorser of a catalog image

	// File is the identity of the file that was re-hashed (Verified ==
	// VerifiedSHA512), for the caller to record; Subscription names the
	// catalog image (0 for a user image).
	File         fileid.ID `json:"-"`
	Subscription int64     `json:"-"`
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
	// ElapsedMicros is how long Decide took, in microseconds.
	ElapsedMicros int64 `json:"elapsed_us"`

	// ProfileDetail is the containment profile of an allowed domain.
	ProfileDetail *policy.Profile `json:"-"`
}

// Denied returns d turned into a denial for reason (a caller's own check,
// such as the domain name libvirt gave).
func (d Decision) Denied(reason string) Decision { return deny(d, errors.New(reason)) }

func deny(d Decision, err error) Decision {
	d.Allow, d.Class, d.Rule, d.Profile, d.ProfileDetail, d.FailOpen = false, 0, "", "", nil, false
	d.Reason = err.Error()
	return d
}

// Decide answers req. It never returns an error: a failure is a denial
// whose Reason is the error.
func Decide(ctx context.Context, req Request, deps Deps) Decision {
	start := time.Now()
	d := decide(ctx, req, deps)
	d.ElapsedMicros = time.Since(start).Microseconds()
	return d
}

// Rehashed returns the disks whose files were re-hashed and found to be the
// admitted image, so that the caller can record their new identity.
func (d Decision) Rehashed() []Disk {
	var out []Disk
	for _, k := range d.Disks {
		if k.Verified == VerifiedSHA512 && k.File.Valid() && (k.State == StateCached || k.State == StateUser || k.State == StateExpired) {
			out = append(out, k)
		}
	}
	return out
}

func decide(ctx context.Context, req Request, deps Deps) Decision {
	out := Decision{Time: req.Now}
	if req.Now.IsZero() {
		return deny(out, errors.New("admission: request without a time"))
	}
	if deps.Policy == nil || deps.Catalog == nil || deps.CacheDir == "" {
		return deny(out, errors.New("admission: no policy, catalog or cache directory"))
	}
	dom, err := domain.Parse(req.XML)
	if err != nil {
		return deny(out, err) // "domain xml: ..."
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
	r, err := newResolver(ctx, ims, deps.CacheDir, deps.UserDir, req.Now, deps.Policy.RefuseChangedImages())
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
	written := writtenImages(dom, r.disks)

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
		fs := append(domain.Check(dom, class), written...)
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
		if k.State != StateCached && k.State != StateUser {
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

// RuleImageWritten is the finding for a domain disk that would write to an
// admitted image itself. It denies in every class: the cached or registered
// file must stay what was verified, and a guest must not change what the
// next guest boots. <transient/> (libvirt puts a throw-away overlay on top)
// or <readonly/> avoid it.
const RuleImageWritten = "image-written"

// writtenImages returns a deny finding for every domain disk whose own file
// (not a backing file) is an admitted image attached writable.
func writtenImages(dom *domain.Domain, disks []Disk) []domain.Finding {
	var out []domain.Finding
	for _, k := range dom.Disks {
		if k.ReadOnly || k.Transient {
			continue
		}
		for _, d := range disks {
			if d.Target == k.TargetDev && d.Backing == 0 && (d.State == StateCached || d.State == StateUser) {
				out = append(out, domain.Finding{Rule: RuleImageWritten, Severity: domain.Deny, Path: k.Path,
					Reason: "disk " + k.TargetDev + " would write to the admitted image " + d.Path + ": add <transient/> (a throw-away overlay) or <readonly/>"})
			}
		}
	}
	return out
}

// resolver maps disk files to catalog images.
type resolver struct {
	now           time.Time
	refuseChanged bool
	byPath        map[string][]Image // resolved catalog path -> images
	byFormer      map[string][]Image // cleaned former cache path -> retired images
	disks         []Disk
	images        []policy.Image
}

func newResolver(ctx context.Context, ims []Image, cacheDir, userDir string, now time.Time, refuseChanged bool) (*resolver, error) {
	dir, err := filepath.EvalSymlinks(cacheDir)
	if err != nil {
		return nil, fmt.Errorf("cache directory: %w", err)
	}
	udir := ""
	if userDir != "" {
		if udir, err = filepath.EvalSymlinks(userDir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("user image directory: %w", err)
		}
	}
	r := &resolver{now: now, refuseChanged: refuseChanged, byPath: map[string][]Image{}, byFormer: map[string][]Image{}}
	for _, im := range ims {
		retired := im.State == catalog.ImageExpired || im.State == catalog.ImageRevoked
		if retired && im.FormerPath != "" {
			r.byFormer[filepath.Clean(im.FormerPath)] = append(r.byFormer[filepath.Clean(im.FormerPath)], im)
		}
		if im.Path == "" {
			continue
		}
		p, err := filepath.EvalSymlinks(im.Path)
		if err != nil {
			p = filepath.Clean(im.Path) // gone: it can match nothing that exists
		}
		base := dir
		if im.User {
			base = udir
		}
		if !within(base, p) && !retired {
			continue // not in its directory: not trusted (a retired image only ever denies)
		}
		r.byPath[p] = append(r.byPath[p], im)
	}
	return r, ctx.Err()
}

// within reports whether p lies strictly inside dir ("" contains nothing).
func within(dir, p string) bool {
	if dir == "" {
		return false
	}
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
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
			Endorser: im.Endorser, EndorserIsSite: im.EndorserIsSite, SubscriptionStale: im.SubscriptionStale,
			Owner: im.Owner, Inspection: im.Inspection})
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
	if errors.Is(err, fs.ErrNotExist) {
		if ims := r.byFormer[filepath.Clean(name)]; len(ims) > 0 {
			im := ims[0]
			d := Disk{ImageID: im.ID, SHA512: im.SHA512, Subscription: im.Subscription, State: StateExpired,
				Detail: "retired from the cache"}
			if im.State == catalog.ImageRevoked {
				d.State = StateRevoked
			}
			if im.Path != "" {
				d.Detail += " to " + im.Path
			}
			return d, im, "", nil
		}
	}
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
		d := Disk{ImageID: im.ID, SHA512: im.SHA512, User: im.User, Owner: im.Owner, Endorser: im.Endorser, Subscription: im.Subscription}
		switch im.State {
		case catalog.ImageCached:
			how, id, err := verify(ctx, p, im, r.refuseChanged)
			if err != nil {
				if ctx.Err() != nil {
					return Disk{}, Image{}, "", ctx.Err()
				}
				d.State, d.Detail = StateModified, err.Error()
				break
			}
			d.Verified, d.File = how, id
			backing, err := qcowBacking(p)
			if err != nil {
				return Disk{}, Image{}, "", err
			}
			d.State = StateCached
			if im.User {
				d.State = StateUser
			}
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

// verify checks that the file at p is still the image im was cached (or
// registered) as: a read-only regular file of the endorsed size whose
// digest is the endorsed one. The digest is trusted without reading the
// file only while the file's identity is the one recorded when it was last
// verified; otherwise the file is re-hashed, or, with refuseChanged,
// refused. It returns how the digest was established and the file's
// identity.
func verify(ctx context.Context, p string, im Image, refuseChanged bool) (string, fileid.ID, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return "", fileid.ID{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fileid.ID{}, err
	}
	switch {
	case !st.Mode().IsRegular():
		return "", fileid.ID{}, errors.New("not a regular file")
	case st.Mode().Perm()&0o222 != 0:
		return "", fileid.ID{}, fmt.Errorf("file is writable (mode %v)", st.Mode().Perm())
	case st.Size() != im.Size:
		return "", fileid.ID{}, fmt.Errorf("%d bytes, endorsed %d", st.Size(), im.Size)
	}
	id, err := fileid.Of(st)
	if err != nil {
		return "", fileid.ID{}, err
	}
	if im.File.Valid() && id == im.File {
		return VerifiedIdentity, id, nil
	}
	if refuseChanged {
		if !im.File.Valid() {
			return "", fileid.ID{}, errors.New("no file identity was recorded when its sha512 was verified (policy identity_change = \"refuse\")")
		}
		return "", fileid.ID{}, errors.New("file changed since its sha512 was verified: its identity (device, inode, size, mtime, ctime) differs (policy identity_change = \"refuse\")")
	}
	h := sha512.New()
	buf := make([]byte, 1<<20)
	for {
		if err := ctx.Err(); err != nil {
			return "", fileid.ID{}, err
		}
		n, err := f.Read(buf)
		h.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", fileid.ID{}, err
		}
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != im.SHA512 {
		return "", fileid.ID{}, errors.New("sha512 differs from the endorsed digest")
	}
	after, err := fileid.File(f)
	if err != nil {
		return "", fileid.ID{}, err
	}
	if after != id {
		return "", fileid.ID{}, errors.New("file changed while it was hashed")
	}
	return VerifiedSHA512, id, nil
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
