package admission_test

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmtrust/vmtrust/internal/admission"
	"github.com/vmtrust/vmtrust/internal/admission/policy"
	"github.com/vmtrust/vmtrust/internal/catalog"
	"github.com/vmtrust/vmtrust/internal/fileid"
)

type fakeCatalog struct {
	ims []admission.Image
	err error
}

func (f *fakeCatalog) AdmissionImages(context.Context, time.Time) ([]admission.Image, error) {
	return f.ims, f.err
}

var _ admission.Catalog = (*fakeCatalog)(nil)

var now = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// qcow2Image is a minimal qcow2 v2 file (64 KiB clusters) naming backing.
func qcow2Image(backing string) []byte {
	const cl = 1 << 16
	b := make([]byte, 3*cl)
	copy(b, "QFI\xfb")
	be := binary.BigEndian
	be.PutUint32(b[4:], 2)
	if backing != "" {
		be.PutUint64(b[8:], 72)
		be.PutUint32(b[16:], uint32(len(backing)))
		copy(b[72:], backing)
	}
	be.PutUint32(b[20:], 16)
	be.PutUint64(b[24:], 1<<20)
	be.PutUint32(b[36:], 1)
	be.PutUint64(b[40:], 2*cl)
	be.PutUint64(b[48:], cl)
	be.PutUint32(b[56:], 1)
	return b
}

type world struct {
	dir, cache, user string
	ims              []admission.Image
}

func newWorld(t *testing.T) *world {
	w := &world{dir: t.TempDir()}
	w.cache = filepath.Join(w.dir, "cache")
	w.user = filepath.Join(w.dir, "user")
	for _, d := range []string{w.cache, w.user} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// addUser registers b as a user image owned by alice, read-only in the
// user directory, and returns its path.
func (w *world) addUser(t *testing.T, name string, b []byte, mod func(*admission.Image)) string {
	p := filepath.Join(w.user, name)
	if err := os.WriteFile(p, b, 0o444); err != nil {
		t.Fatal(err)
	}
	sum := sha512.Sum512(b)
	im := admission.Image{ID: hex.EncodeToString(sum[:8]), State: catalog.ImageCached, Path: p, SHA512: hex.EncodeToString(sum[:]),
		Size: int64(len(b)), User: true, Owner: "alice", Inspection: policy.Inspection{MaxSeverity: "medium", OS: "Debian GNU/Linux 12"}}
	if mod != nil {
		mod(&im)
	}
	w.ims = append(w.ims, im)
	return p
}

// add caches b as image id in state st, read-only, and returns its path.
func (w *world) add(t *testing.T, id string, b []byte, st catalog.ImageState, mod func(*admission.Image)) string {
	p := filepath.Join(w.cache, id)
	if err := os.WriteFile(p, b, 0o444); err != nil {
		t.Fatal(err)
	}
	sum := sha512.Sum512(b)
	im := admission.Image{ID: id, State: st, Path: p, SHA512: hex.EncodeToString(sum[:]), Size: int64(len(b)), Endorser: "egi"}
	if mod != nil {
		mod(&im)
	}
	w.ims = append(w.ims, im)
	return p
}

func domainXML(extra string, disks ...string) []byte {
	var b strings.Builder
	b.WriteString(`<domain type='kvm'><name>vm1</name><uuid>0f0e0d0c-0b0a-0908-0706-050403020100</uuid><devices>`)
	for i, d := range disks {
		b.WriteString(`<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='` + d + `'/><target dev='vd` + string(rune('a'+i)) + `' bus='virtio'/><transient/></disk>`)
	}
	b.WriteString(`<interface type='network'><mac address='52:54:00:12:34:56'/><source network='default'/></interface>`)
	b.WriteString(extra + `</devices></domain>`)
	return []byte(b.String())
}

const pci = "<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/></source></hostdev>"

func TestDecide(t *testing.T) {
	disk := bytes.Repeat([]byte("disk"), 5000)
	tests := []struct {
		name      string
		setup     func(t *testing.T, w *world) []byte
		catErr    error
		allow     bool
		class     int
		reason    string // substring of the reason
		diskState string // state of the first disk, when set
		disks     int    // number of resolved disk files, when set
	}{
		{name: "cached endorsed image", allow: true, class: 2, diskState: "cached", setup: func(t *testing.T, w *world) []byte {
			return domainXML("", w.add(t, "img1", disk, catalog.ImageCached, nil))
		}},
		{name: "through a symlink", allow: true, class: 2, setup: func(t *testing.T, w *world) []byte {
			p := w.add(t, "img1", disk, catalog.ImageCached, nil)
			l := filepath.Join(w.dir, "link")
			if err := os.Symlink(p, l); err != nil {
				t.Fatal(err)
			}
			return domainXML("", l)
		}},
		{name: "cached qcow2 over a cached base", allow: true, class: 2, disks: 2, setup: func(t *testing.T, w *world) []byte {
			w.add(t, "base", disk, catalog.ImageCached, nil)
			return domainXML("", w.add(t, "top", qcow2Image("base"), catalog.ImageCached, nil))
		}},
		{name: "writable cached image", reason: "domain definition check", setup: func(t *testing.T, w *world) []byte {
			return bytes.ReplaceAll(domainXML("", w.add(t, "img1", disk, catalog.ImageCached, nil)), []byte("<transient/>"), nil)
		}},
		{name: "writable user image", reason: "domain definition check", setup: func(t *testing.T, w *world) []byte {
			return bytes.ReplaceAll(domainXML("", w.addUser(t, "u1", disk, nil)), []byte("<transient/>"), nil)
		}},
		{name: "read-only cached image", allow: true, class: 2, setup: func(t *testing.T, w *world) []byte {
			return bytes.ReplaceAll(domainXML("", w.add(t, "img1", disk, catalog.ImageCached, nil)), []byte("<transient/>"), []byte("<readonly/>"))
		}},
		{name: "unknown image", reason: policy.ReasonNoMatch, diskState: "unknown", setup: func(t *testing.T, w *world) []byte {
			w.add(t, "img1", disk, catalog.ImageCached, nil)
			p := filepath.Join(w.dir, "copy")
			os.WriteFile(p, disk, 0o444)
			return domainXML("", p)
		}},
		{name: "modified after caching", reason: "modified after it was cached", diskState: "modified", setup: func(t *testing.T, w *world) []byte {
			p := w.add(t, "img1", disk, catalog.ImageCached, nil)
			os.Chmod(p, 0o644)
			os.WriteFile(p, append(bytes.Clone(disk[:len(disk)-1]), 'X'), 0o644)
			os.Chmod(p, 0o444)
			return domainXML("", p)
		}},
		{name: "made writable", reason: "modified after it was cached", diskState: "modified", setup: func(t *testing.T, w *world) []byte {
			p := w.add(t, "img1", disk, catalog.ImageCached, nil)
			os.Chmod(p, 0o644)
			return domainXML("", p)
		}},
		{name: "expired in the catalog", reason: "expired image list", diskState: "expired", setup: func(t *testing.T, w *world) []byte {
			return domainXML("", w.add(t, "img1", disk, catalog.ImageExpired, nil))
		}},
		{name: "past its expiry", reason: "expired image list", diskState: "expired", setup: func(t *testing.T, w *world) []byte {
			return domainXML("", w.add(t, "img1", disk, catalog.ImageCached, func(im *admission.Image) { im.Expires = now.Add(-time.Hour) }))
		}},
		{name: "revoked", reason: "withdrawn", diskState: "revoked", setup: func(t *testing.T, w *world) []byte {
			return domainXML("", w.add(t, "img1", disk, catalog.ImageRevoked, nil))
		}},
		{name: "withdrawn and retired from the cache", reason: "withdrawn", diskState: "revoked", setup: func(t *testing.T, w *world) []byte {
			p := w.add(t, "img1", disk, catalog.ImageRevoked, nil)
			moved := filepath.Join(w.dir, "img1.20261126T120000Z")
			if err := os.Rename(p, moved); err != nil {
				t.Fatal(err)
			}
			w.ims[0].Path, w.ims[0].FormerPath = moved, p
			return domainXML("", p)
		}},
		{name: "expired and retired from the cache", reason: "expired image list", diskState: "expired", setup: func(t *testing.T, w *world) []byte {
			p := w.add(t, "img1", disk, catalog.ImageExpired, nil)
			os.Remove(p)
			w.ims[0].Path, w.ims[0].FormerPath = "", p
			return domainXML("", p)
		}},
		{name: "a cached image's former path is not admitted", reason: "no such file", setup: func(t *testing.T, w *world) []byte {
			w.add(t, "img1", disk, catalog.ImageCached, nil)
			w.ims[0].FormerPath = filepath.Join(w.cache, "old")
			return domainXML("", w.ims[0].FormerPath)
		}},
		{name: "stale subscription", reason: "not refreshed in time", diskState: "cached", setup: func(t *testing.T, w *world) []byte {
			return domainXML("", w.add(t, "img1", disk, catalog.ImageCached, func(im *admission.Image) { im.SubscriptionStale = true }))
		}},
		{name: "qcow2 backing file not admitted", reason: policy.ReasonNoMatch, disks: 2, setup: func(t *testing.T, w *world) []byte {
			os.WriteFile(filepath.Join(w.cache, "base"), disk, 0o444)
			return domainXML("", w.add(t, "top", qcow2Image("base"), catalog.ImageCached, nil))
		}},
		{name: "backingStore in the XML not admitted", reason: policy.ReasonNoMatch, disks: 2, setup: func(t *testing.T, w *world) []byte {
			p := w.add(t, "img1", disk, catalog.ImageCached, nil)
			o := filepath.Join(w.dir, "other")
			os.WriteFile(o, disk, 0o444)
			x := strings.Replace(string(domainXML("", p)), "<target", "<backingStore type='file'><format type='raw'/><source file='"+o+"'/><backingStore/></backingStore><target", 1)
			return []byte(x)
		}},
		{name: "catalog path outside the cache", reason: policy.ReasonNoMatch, setup: func(t *testing.T, w *world) []byte {
			p := filepath.Join(w.dir, "outside")
			os.WriteFile(p, disk, 0o444)
			sum := sha512.Sum512(disk)
			w.ims = append(w.ims, admission.Image{ID: "x", State: catalog.ImageCached, Path: p, SHA512: hex.EncodeToString(sum[:]), Size: int64(len(disk)), Endorser: "egi"})
			return domainXML("", p)
		}},
		{name: "domain check denies", reason: "domain definition check", setup: func(t *testing.T, w *world) []byte {
			return domainXML("<filesystem type='mount'><source dir='/etc'/><target dir='etc'/></filesystem>", w.add(t, "img1", disk, catalog.ImageCached, nil))
		}},
		{name: "site image with managed PCI passthrough is class 1", allow: true, class: 1, setup: func(t *testing.T, w *world) []byte {
			return domainXML(pci, w.add(t, "img1", disk, catalog.ImageCached, func(im *admission.Image) { im.EndorserIsSite = true }))
		}},
		{name: "endorsed image with managed PCI passthrough", allow: true, class: 2, setup: func(t *testing.T, w *world) []byte {
			return domainXML(pci, w.add(t, "img1", disk, catalog.ImageCached, nil))
		}},
		{name: "malformed xml", reason: "domain xml", setup: func(t *testing.T, w *world) []byte {
			return []byte("<domain type='kvm'><name>x</name")
		}},
		{name: "entity declaration", reason: "domain xml", setup: func(t *testing.T, w *world) []byte {
			return []byte(`<!DOCTYPE d [<!ENTITY a "aaaa">]><domain type='kvm'><name>&a;</name></domain>`)
		}},
		{name: "missing disk file", reason: "no such file", setup: func(t *testing.T, w *world) []byte {
			return domainXML("", filepath.Join(w.dir, "nope"))
		}},
		{name: "catalog unreadable", catErr: errors.New("database is locked"), reason: "catalog: database is locked", setup: func(t *testing.T, w *world) []byte {
			return domainXML("", w.add(t, "img1", disk, catalog.ImageCached, nil))
		}},
		{name: "no disks", reason: "no disk image", setup: func(t *testing.T, w *world) []byte {
			return domainXML("")
		}},
		{name: "registered user image is class 3", allow: true, class: 3, diskState: "user-registered", setup: func(t *testing.T, w *world) []byte {
			return domainXML("", w.addUser(t, "u1", disk, nil))
		}},
		{name: "user image over an endorsed base is class 3", allow: true, class: 3, disks: 2, setup: func(t *testing.T, w *world) []byte {
			w.add(t, "base", disk, catalog.ImageCached, nil)
			return domainXML("", w.addUser(t, "top", qcow2Image("../cache/base"), nil))
		}},
		{name: "user image with PCI passthrough", reason: "host device passthrough", setup: func(t *testing.T, w *world) []byte {
			return domainXML(pci, w.addUser(t, "u1", disk, nil))
		}},
		{name: "user image with a host filesystem share", reason: "host filesystem shares", setup: func(t *testing.T, w *world) []byte {
			return domainXML("<filesystem type='mount'><source dir='/srv/data'/><target dir='data'/></filesystem>", w.addUser(t, "u1", disk, nil))
		}},
		{name: "user image with blocking findings", reason: policy.ReasonNoMatch, setup: func(t *testing.T, w *world) []byte {
			return domainXML("", w.addUser(t, "u1", disk, func(im *admission.Image) { im.Inspection.BlockingFindings = 1 }))
		}},
		{name: "user image modified", reason: "modified after it was cached", diskState: "modified", setup: func(t *testing.T, w *world) []byte {
			p := w.addUser(t, "u1", disk, nil)
			os.Chmod(p, 0o644)
			os.WriteFile(p, append(bytes.Clone(disk[:len(disk)-1]), 'X'), 0o644)
			os.Chmod(p, 0o444)
			return domainXML("", p)
		}},
		{name: "user image path outside the user directory", reason: policy.ReasonNoMatch, diskState: "unknown", setup: func(t *testing.T, w *world) []byte {
			p := w.addUser(t, "u1", disk, nil)
			o := filepath.Join(w.dir, "u1")
			os.WriteFile(o, disk, 0o444)
			w.ims[len(w.ims)-1].Path = o
			_ = p
			return domainXML("", o)
		}},
		{name: "user image recorded in the cache directory", reason: policy.ReasonNoMatch, diskState: "unknown", setup: func(t *testing.T, w *world) []byte {
			p := w.add(t, "img1", disk, catalog.ImageCached, func(im *admission.Image) { im.User, im.Endorser = true, "" })
			return domainXML("", p)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			x := tt.setup(t, w)
			deps := admission.Deps{Policy: policy.Default(), Catalog: &fakeCatalog{w.ims, tt.catErr}, CacheDir: w.cache, UserDir: w.user}
			d := admission.Decide(context.Background(), admission.Request{XML: x, Now: now}, deps)
			if d.Allow != tt.allow || d.Class != tt.class || !strings.Contains(d.Reason, tt.reason) {
				t.Fatalf("Decide = allow %v class %d reason %q, want %v %d %q\n%+v", d.Allow, d.Class, d.Reason, tt.allow, tt.class, tt.reason, d)
			}
			if tt.diskState != "" && (len(d.Disks) == 0 || d.Disks[0].State != tt.diskState) {
				t.Errorf("Decide: disks = %+v, want first in state %s", d.Disks, tt.diskState)
			}
			if tt.disks != 0 && len(d.Disks) != tt.disks {
				t.Errorf("Decide: disks = %+v, want %d", d.Disks, tt.disks)
			}
			if d.Allow && (d.UUID == "" || len(d.MACs) != 1 || d.Disks[0].SHA512 == "" || d.Profile == "") {
				t.Errorf("Decide = %+v: allowed without uuid, MACs, digests or profile", d)
			}
		})
	}
}

// The recorded file identity lets Decide trust the recorded digest without
// reading the file; any change to the file makes it re-hash (or refuse).
func TestIdentityFastPath(t *testing.T) {
	disk := bytes.Repeat([]byte("disk"), 5000)
	refuse, err := policy.Parse(append([]byte("identity_change = 'refuse'\n"), bytes.Replace(policy.DefaultSource(), []byte("identity_change = \"rehash\""), nil, 1)...))
	if err != nil {
		t.Fatal(err)
	}
	decide := func(w *world, pol *policy.Policy, p string) admission.Decision {
		deps := admission.Deps{Policy: pol, Catalog: &fakeCatalog{ims: w.ims}, CacheDir: w.cache, UserDir: w.user}
		return admission.Decide(context.Background(), admission.Request{XML: domainXML("", p), Now: now}, deps)
	}
	setup := func(t *testing.T, recorded bool) (*world, string) {
		w := newWorld(t)
		p := w.add(t, "img1", disk, catalog.ImageCached, nil)
		if recorded {
			id, err := fileid.Path(p)
			if err != nil {
				t.Fatal(err)
			}
			w.ims[0].File = id
		}
		return w, p
	}
	t.Run("unchanged file is not re-hashed", func(t *testing.T) {
		w, p := setup(t, true)
		// A recorded digest that the bytes do not have is believed while
		// the identity holds: proof that the file was not read.
		w.ims[0].SHA512 = strings.Repeat("ab", 64)
		for _, pol := range []*policy.Policy{policy.Default(), refuse} {
			d := decide(w, pol, p)
			if !d.Allow || d.Disks[0].Verified != admission.VerifiedIdentity || len(d.Rehashed()) != 0 {
				t.Fatalf("Decide = %+v, want allowed on the recorded identity", d)
			}
		}
	})
	t.Run("no identity recorded: re-hashed and reported", func(t *testing.T) {
		w, p := setup(t, false)
		d := decide(w, policy.Default(), p)
		id, _ := fileid.Path(p)
		if !d.Allow || d.Disks[0].Verified != admission.VerifiedSHA512 || len(d.Rehashed()) != 1 || d.Rehashed()[0].File != id {
			t.Fatalf("Decide = %+v, want allowed after a re-hash, reporting identity %v", d, id)
		}
		if d := decide(w, refuse, p); d.Allow || d.Disks[0].State != admission.StateModified || !strings.Contains(d.Reason, "no file identity was recorded") {
			t.Fatalf("Decide(refuse) = %+v, want modified", d)
		}
	})
	changes := map[string]func(p string) error{
		"content written, mtime restored": func(p string) error {
			fi, _ := os.Stat(p)
			os.Chmod(p, 0o644)
			if err := os.WriteFile(p, append(bytes.Clone(disk[:10]), disk[10:]...), 0o644); err != nil {
				return err
			}
			os.Chmod(p, 0o444)
			return os.Chtimes(p, fi.ModTime(), fi.ModTime())
		},
		"replaced by rename": func(p string) error {
			q := p + ".new"
			if err := os.WriteFile(q, disk, 0o444); err != nil {
				return err
			}
			return os.Rename(q, p)
		},
		"chowned": func(p string) error { return os.Chown(p, 1, 1) },
	}
	for name, change := range changes {
		t.Run("changed: "+name, func(t *testing.T) {
			w, p := setup(t, true)
			time.Sleep(10 * time.Millisecond) // a ctime tick
			if err := change(p); err != nil {
				t.Skipf("cannot %s here: %v", name, err)
			}
			// Same bytes: re-hashed and allowed by default, with the new identity reported.
			d := decide(w, policy.Default(), p)
			if !d.Allow || d.Disks[0].Verified != admission.VerifiedSHA512 || len(d.Rehashed()) != 1 {
				t.Fatalf("Decide = %+v, want allowed after a re-hash", d)
			}
			if d := decide(w, refuse, p); d.Allow || !strings.Contains(d.Reason, "identity (device, inode, size, mtime, ctime) differs") {
				t.Fatalf("Decide(refuse) = %+v, want modified", d)
			}
			// A wrong digest is caught by the re-hash.
			w.ims[0].SHA512 = strings.Repeat("ab", 64)
			if d := decide(w, policy.Default(), p); d.Allow || d.Disks[0].State != admission.StateModified {
				t.Fatalf("Decide(wrong digest) = %+v, want modified", d)
			}
		})
	}
}

func TestDecideFailsClosed(t *testing.T) {
	w := newWorld(t)
	x := domainXML("", w.add(t, "img1", []byte("disk"), catalog.ImageCached, nil))
	ok := admission.Deps{Policy: policy.Default(), Catalog: &fakeCatalog{ims: w.ims}, CacheDir: w.cache}
	if d := admission.Decide(context.Background(), admission.Request{XML: x, Now: now}, ok); !d.Allow {
		t.Fatalf("Decide = %+v, want allowed", d)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for name, c := range map[string]struct {
		ctx  context.Context
		req  admission.Request
		deps admission.Deps
	}{
		"no time":    {context.Background(), admission.Request{XML: x}, ok},
		"no policy":  {context.Background(), admission.Request{XML: x, Now: now}, admission.Deps{Catalog: ok.Catalog, CacheDir: w.cache}},
		"no cache":   {context.Background(), admission.Request{XML: x, Now: now}, admission.Deps{Policy: ok.Policy, Catalog: ok.Catalog, CacheDir: filepath.Join(w.dir, "gone")}},
		"cancelled":  {cancelled, admission.Request{XML: x, Now: now}, ok},
		"no catalog": {context.Background(), admission.Request{XML: x, Now: now}, admission.Deps{Policy: ok.Policy, CacheDir: w.cache}},
	} {
		if d := admission.Decide(c.ctx, c.req, c.deps); d.Allow || d.Reason == "" {
			t.Errorf("%s: Decide = %+v, want denied with a reason", name, d)
		}
	}
}

func TestRecord(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []admission.Decision{{Allow: true, Class: 2, Reason: "ok", UUID: "u"}, {Reason: "no"}} {
		if err := admission.Record(dir, d); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, admission.RecordFile))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("Record: %d lines, want 2:\n%s", len(lines), b)
	}
	var v struct {
		MessageType string `json:"message_type"`
		Allow       bool   `json:"allow"`
		Class       int    `json:"class"`
		UUID        string `json:"uuid"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &v); err != nil || v.MessageType != "admission" || !v.Allow || v.Class != 2 || v.UUID != "u" {
		t.Errorf("Record line 1 = %s (%v)", lines[0], err)
	}
}
