package update_test

import (
	"bytes"
	"context"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmtrust/vmtrust/imagelist"
	"github.com/vmtrust/vmtrust/imagelist/smime"
	"github.com/vmtrust/vmtrust/internal/cache"
	"github.com/vmtrust/vmtrust/internal/catalog"
	"github.com/vmtrust/vmtrust/internal/catalog/sqlite"
	"github.com/vmtrust/vmtrust/internal/fetch"
	"github.com/vmtrust/vmtrust/internal/igtf"
	"github.com/vmtrust/vmtrust/internal/pkitest"
	"github.com/vmtrust/vmtrust/internal/update"
)

const listID = "5d5e7c4e-2f1a-4f43-9d3c-0a9a4f1b2c3d"

var (
	pkiOnce                 sync.Once
	ca, endorser, impostor  *pkitest.Identity
	sharedCADir             string
	sharedCADirErr          error
	caDN, endorserDN, impDN = "/DC=org/DC=vmtrust-test/CN=Update CA", "/DC=org/DC=vmtrust-test/CN=Update Endorser", "/DC=org/DC=vmtrust-test/CN=Other Endorser"
)

// server is the endorser's web server: a real HTTPS server on 127.0.0.1.
type server struct {
	mu    sync.Mutex
	files map[string][]byte
	// misbehave, when set for a path, serves the request instead.
	misbehave map[string]func(w http.ResponseWriter, r *http.Request, body []byte) bool
	srv       *httptest.Server
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	body, ok := s.files[r.URL.Path]
	mis := s.misbehave[r.URL.Path]
	s.mu.Unlock()
	if mis != nil && mis(w, r, body) {
		return
	}
	if !ok {
		http.NotFound(w, r)
		return
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

func (s *server) put(path string, b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[path] = b
}

func (s *server) on(path string, f func(w http.ResponseWriter, r *http.Request, body []byte) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.misbehave[path] = f
}

// world is one site with one subscription to the endorser's server.
type world struct {
	t     *testing.T
	srv   *server
	store catalog.Store
	cache *cache.Cache
	root  string
	now   time.Time
	sub   int64
	opts  update.Options
	roots *x509.CertPool
}

func newWorld(t *testing.T, mode catalog.NewImages) *world {
	t.Helper()
	pkiOnce.Do(func() {
		ca = pkitest.NewCA(t, caDN, pkitest.Opts{})
		endorser = ca.Issue(t, endorserDN, false, pkitest.Opts{})
		impostor = ca.Issue(t, impDN, false, pkitest.Opts{})
		d := pkitest.NewDir(t).AddCA(ca).AddCRL(ca, ca.CRL(t, time.Now().Add(-time.Hour), time.Now().Add(365*24*time.Hour)))
		// The directory must outlive the first test: copy it somewhere stable.
		sharedCADir, sharedCADirErr = os.MkdirTemp("", "vmtrust-update-ca")
		if sharedCADirErr == nil {
			entries, _ := os.ReadDir(d.Path)
			for _, e := range entries {
				b, _ := os.ReadFile(filepath.Join(d.Path, e.Name()))
				os.WriteFile(filepath.Join(sharedCADir, e.Name()), b, 0o644)
			}
		}
	})
	if sharedCADirErr != nil {
		t.Fatal(sharedCADirErr)
	}
	trust, err := igtf.Load(sharedCADir)
	if err != nil {
		t.Fatal(err)
	}
	s := &server{files: map[string][]byte{}, misbehave: map[string]func(http.ResponseWriter, *http.Request, []byte) bool{}}
	s.srv = httptest.NewTLSServer(s)
	t.Cleanup(s.srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(s.srv.Certificate())

	w := &world{t: t, srv: s, root: t.TempDir(), now: time.Now().UTC().Truncate(time.Second), roots: roots}
	w.store, err = sqlite.Open(context.Background(), filepath.Join(w.root, "catalog.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.store.Close() })
	if w.cache, err = cache.Open(w.root, nil); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := w.store.AddEndorser(ctx, catalog.Endorser{Name: "site", DN: endorserDN, CA: caDN}); err != nil {
		t.Fatal(err)
	}
	w.sub, err = w.store.AddSubscription(ctx, catalog.Subscription{URL: s.srv.URL + "/image.list", Endorser: "site", NewImages: mode})
	if err != nil {
		t.Fatal(err)
	}
	w.opts = update.Options{
		Trust: trust, CRL: igtf.CRLRequire, MaxListLifetime: 90 * 24 * time.Hour, Downloads: 2, Retries: 2,
		RetryBase: time.Millisecond, Now: func() time.Time { return w.now },
		Fetcher: func(catalog.Subscription) (update.Fetcher, error) {
			return fetch.New(fetch.Options{RootCAs: roots, Timeout: 10 * time.Second}), nil
		},
	}
	return w
}

// image publishes data and returns its list entry.
func (w *world) image(n int, data []byte) imagelist.Image {
	id := fmt.Sprintf("8c0a7d1e-1111-4c4c-8d8d-%012d", n)
	w.srv.put("/img/"+id, data)
	sum := sha512.Sum512(data)
	return imagelist.Image{Identifier: id, Title: "Image " + strconv.Itoa(n), Description: "test image", Size: int64(len(data)),
		SHA512: hex.EncodeToString(sum[:]), URI: w.srv.srv.URL + "/img/" + id, Version: "1", Hypervisor: "QEMU",
		Format: "raw", Arch: "x86_64", OS: "Linux", OSVersion: "12"}
}

func (w *world) list(version string, images ...imagelist.Image) *imagelist.List {
	return &imagelist.List{Created: w.now.Add(-time.Minute), Expires: w.now.Add(28 * 24 * time.Hour), Identifier: listID,
		Title: "Site list", Description: "d", Source: "https://site.test/", URI: w.srv.srv.URL + "/image.list", Version: version,
		Endorser: imagelist.Endorser{DN: endorserDN, CA: caDN, Email: "a@site.test", Creator: "site"}, Images: images}
}

// publish signs l as id and serves it as the subscription's list.
func (w *world) publish(l *imagelist.List, id *pkitest.Identity) []byte {
	w.t.Helper()
	b, err := imagelist.Marshal(l)
	if err != nil {
		w.t.Fatal(err)
	}
	signed, err := smime.Sign(b, id.Cert, id.Key, smime.SignOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	w.srv.put("/image.list", signed)
	return signed
}

func (w *world) update() update.SubResult {
	w.t.Helper()
	u, err := update.New(w.store, w.cache, w.opts)
	if err != nil {
		w.t.Fatal(err)
	}
	res, err := u.Run(context.Background())
	if err != nil {
		w.t.Fatalf("Run = %v", err)
	}
	if len(res) != 1 {
		w.t.Fatalf("Run returned %d results", len(res))
	}
	return res[0]
}

func (w *world) state(id string) catalog.ImageState {
	w.t.Helper()
	im, err := w.store.Image(context.Background(), w.sub, id)
	if err != nil {
		w.t.Fatalf("image %s: %v", id, err)
	}
	return im.State
}

func (w *world) dir(name string) []string {
	es, _ := os.ReadDir(filepath.Join(w.root, name))
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func (w *world) events() []catalog.EventType {
	evs, err := w.store.Events(context.Background(), 0, 1000)
	if err != nil {
		w.t.Fatal(err)
	}
	var ts []catalog.EventType
	for _, e := range evs {
		ts = append(ts, e.Type)
	}
	return ts
}

func count(ts []catalog.EventType, t catalog.EventType) int {
	n := 0
	for _, x := range ts {
		if x == t {
			n++
		}
	}
	return n
}

func data(n int, s string) []byte { return bytes.Repeat([]byte(s), n) }

func TestHappyPath(t *testing.T) {
	w := newWorld(t, catalog.NewImagesSubscribe)
	a, b := w.image(1, data(50_000, "a")), w.image(2, data(70_000, "b"))
	w.publish(w.list("1", a, b), endorser)
	r := w.update()
	if r.Outcome != update.Accepted || r.Cached != 2 || r.Version != "1" {
		t.Fatalf("update = %+v", r)
	}
	for _, im := range []imagelist.Image{a, b} {
		if st := w.state(im.Identifier); st != catalog.ImageCached {
			t.Fatalf("image %s state %s", im.Identifier, st)
		}
		p, _ := w.cache.Path(im.Identifier)
		fi, err := os.Stat(p)
		if err != nil || fi.Size() != im.Size || fi.Mode().Perm() != 0o444 {
			t.Fatalf("cached file %s: %v %v", p, fi, err)
		}
	}
	ev := w.events()
	if count(ev, catalog.EventListAccepted) != 1 || count(ev, catalog.EventSubscriptionImageNew) != 2 ||
		count(ev, catalog.EventAvailablePrefix) != 2 || count(ev, catalog.EventAvailablePostfix) != 2 {
		t.Fatalf("events = %v", ev)
	}
	// The same list again changes nothing.
	if r := w.update(); r.Outcome != update.Unchanged || r.Cached != 0 {
		t.Fatalf("second update = %+v", r)
	}
	// The accepted list is kept verbatim.
	lv, err := w.store.ListVersion(context.Background(), w.sub, "1")
	if err != nil || len(lv.Raw) == 0 {
		t.Fatalf("ListVersion = %v", err)
	}
}

// The same list signed again (new signature, same content) is not a new
// version and not a conflict.
func TestResignedListUnchanged(t *testing.T) {
	w := newWorld(t, catalog.NewImagesSubscribe)
	l := w.list("2", w.image(1, data(1000, "a")))
	first := w.publish(l, endorser)
	if r := w.update(); r.Outcome != update.Accepted {
		t.Fatalf("first update = %+v", r)
	}
	time.Sleep(1100 * time.Millisecond) // a new signingTime, so new signed bytes
	if again := w.publish(l, endorser); bytes.Equal(again, first) {
		t.Fatal("the second signature is byte-identical; the test proves nothing")
	}
	if r := w.update(); r.Outcome != update.Unchanged {
		t.Fatalf("update of a re-signed list = %+v, want unchanged", r)
	}
}

func TestListRules(t *testing.T) {
	for _, tc := range []struct {
		name   string
		second func(w *world, imgs []imagelist.Image)
		reason string
	}{
		{"rollback", func(w *world, imgs []imagelist.Image) { w.publish(w.list("1", imgs...), endorser) }, update.ReasonRollback},
		{"equal version, new content", func(w *world, imgs []imagelist.Image) {
			l := w.list("2", imgs...)
			l.Title = "changed"
			w.publish(l, endorser)
		}, update.ReasonSameVersion},
		{"wrong endorser", func(w *world, imgs []imagelist.Image) {
			l := w.list("3", imgs...)
			l.Endorser.DN = impDN
			w.publish(l, impostor)
		}, "unauthorised"},
		{"identifier swap", func(w *world, imgs []imagelist.Image) {
			l := w.list("3", imgs...)
			l.Identifier = "00000000-2f1a-4f43-9d3c-0a9a4f1b2c3d"
			w.publish(l, endorser)
		}, "identifier"},
		{"tampered", func(w *world, imgs []imagelist.Image) {
			signed := w.publish(w.list("3", imgs...), endorser)
			w.srv.put("/image.list", bytes.Replace(signed, []byte(`"hv:version": "3"`), []byte(`"hv:version": "4"`), 1))
		}, "tampered"},
		{"list larger than the cap", func(w *world, imgs []imagelist.Image) {
			w.publish(w.list("3", imgs...), endorser)
			w.opts.MaxListSize = 1000
		}, update.ReasonFetch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, catalog.NewImagesSubscribe)
			a := w.image(1, data(1000, "a"))
			w.publish(w.list("2", a), endorser)
			if r := w.update(); r.Outcome != update.Accepted {
				t.Fatalf("first update = %+v", r)
			}
			tc.second(w, []imagelist.Image{a})
			r := w.update()
			if r.Outcome == update.Accepted || r.Reason != tc.reason {
				t.Fatalf("update = %+v, want rejected as %s", r, tc.reason)
			}
			sub, _ := w.store.Subscription(context.Background(), w.sub)
			if sub.Version != "2" || sub.LastError == "" {
				t.Fatalf("subscription after rejection: version %q, last error %q", sub.Version, sub.LastError)
			}
			if w.state(a.Identifier) != catalog.ImageCached || count(w.events(), catalog.EventListRejected) != 1 {
				t.Fatalf("a rejected list changed the cache: %s, events %v", w.state(a.Identifier), w.events())
			}
		})
	}
}

func TestExpiry(t *testing.T) {
	t.Run("expired list expires its cached images", func(t *testing.T) {
		w := newWorld(t, catalog.NewImagesSubscribe)
		a := w.image(1, data(1000, "a"))
		w.publish(w.list("1", a), endorser)
		w.update()
		w.now = w.now.Add(29 * 24 * time.Hour) // the list expired; the endorser did not publish again
		r := w.update()
		if r.Outcome != update.Rejected || r.Reason != "list-expired" || r.Expired != 1 {
			t.Fatalf("update = %+v", r)
		}
		if w.state(a.Identifier) != catalog.ImageExpired || len(w.dir("cache")) != 0 || len(w.dir("expired")) != 1 {
			t.Fatalf("state %s, cache %v, expired %v", w.state(a.Identifier), w.dir("cache"), w.dir("expired"))
		}
	})
	t.Run("list that cannot be fetched still expires", func(t *testing.T) {
		w := newWorld(t, catalog.NewImagesSubscribe)
		a := w.image(1, data(1000, "a"))
		w.publish(w.list("1", a), endorser)
		w.update()
		w.srv.on("/image.list", func(rw http.ResponseWriter, r *http.Request, _ []byte) bool {
			http.Error(rw, "gone", http.StatusServiceUnavailable)
			return true
		})
		w.now = w.now.Add(29 * 24 * time.Hour)
		if r := w.update(); r.Outcome != update.Failed || r.Expired != 1 || w.state(a.Identifier) != catalog.ImageExpired {
			t.Fatalf("update = %+v, state %s", r, w.state(a.Identifier))
		}
	})
	t.Run("image removed from the list", func(t *testing.T) {
		w := newWorld(t, catalog.NewImagesSubscribe)
		a, b := w.image(1, data(1000, "a")), w.image(2, data(1000, "b"))
		w.publish(w.list("1", a, b), endorser)
		w.update()
		w.publish(w.list("2", b), endorser)
		r := w.update()
		if r.Outcome != update.Accepted || r.Expired != 1 || w.state(a.Identifier) != catalog.ImageRevoked || w.state(b.Identifier) != catalog.ImageCached {
			t.Fatalf("update = %+v, states %s %s", r, w.state(a.Identifier), w.state(b.Identifier))
		}
		if exp := w.dir("expired"); len(exp) != 1 || !strings.HasPrefix(exp[0], a.Identifier+".") {
			t.Fatalf("expired/ = %v", exp)
		}
		ev := w.events()
		if count(ev, catalog.EventExpirePrefix) != 1 || count(ev, catalog.EventExpirePostfix) != 1 {
			t.Fatalf("events = %v", ev)
		}
	})
	t.Run("per-image expiry", func(t *testing.T) {
		w := newWorld(t, catalog.NewImagesSubscribe)
		a, b := w.image(1, data(1000, "a")), w.image(2, data(1000, "b"))
		a.Expires = w.now.Add(24 * time.Hour)
		w.publish(w.list("1", a, b), endorser)
		w.update()
		w.now = w.now.Add(2 * 24 * time.Hour)
		r := w.update()
		if r.Expired != 1 || w.state(a.Identifier) != catalog.ImageExpired || w.state(b.Identifier) != catalog.ImageCached {
			t.Fatalf("update = %+v, states %s %s", r, w.state(a.Identifier), w.state(b.Identifier))
		}
	})
	t.Run("site cap on list lifetime", func(t *testing.T) {
		w := newWorld(t, catalog.NewImagesSubscribe)
		a := w.image(1, data(1000, "a"))
		l := w.list("1", a)
		l.Expires = time.Date(2499, 12, 31, 22, 0, 0, 0, time.UTC)
		w.publish(l, endorser)
		w.update()
		w.now = w.now.Add(91 * 24 * time.Hour)
		if r := w.update(); r.Outcome != update.Rejected || r.Reason != update.ReasonLifetimeCap || w.state(a.Identifier) != catalog.ImageExpired {
			t.Fatalf("update = %+v, state %s", r, w.state(a.Identifier))
		}
	})
}

func TestDownloads(t *testing.T) {
	t.Run("oversize image aborted without filling the disk", func(t *testing.T) {
		w := newWorld(t, catalog.NewImagesSubscribe)
		a := w.image(1, data(1000, "a"))
		var sent int64
		w.srv.on("/img/"+a.Identifier, func(rw http.ResponseWriter, r *http.Request, _ []byte) bool {
			for i := 0; i < 1000; i++ { // 10 MB against an endorsed 1,000 bytes, no Content-Length
				n, err := rw.Write(data(10_000, "x"))
				sent += int64(n)
				if err != nil {
					break
				}
			}
			return true
		})
		w.publish(w.list("1", a), endorser)
		r := w.update()
		if r.DownErrors != 1 || w.state(a.Identifier) != catalog.ImageAvailable || len(w.dir("cache")) != 0 || len(w.dir("partial")) != 0 {
			t.Fatalf("update = %+v, state %s, cache %v, partial %v", r, w.state(a.Identifier), w.dir("cache"), w.dir("partial"))
		}
	})
	t.Run("wrong hash leaves nothing in cache", func(t *testing.T) {
		w := newWorld(t, catalog.NewImagesSubscribe)
		a := w.image(1, data(1000, "a"))
		w.srv.put("/img/"+a.Identifier, data(1000, "b"))
		w.publish(w.list("1", a), endorser)
		if r := w.update(); r.DownErrors != 1 || len(w.dir("cache")) != 0 || len(w.dir("partial")) != 0 {
			t.Fatalf("update = %+v, cache %v, partial %v", r, w.dir("cache"), w.dir("partial"))
		}
	})
	t.Run("truncated download resumed", func(t *testing.T) {
		w := newWorld(t, catalog.NewImagesSubscribe)
		body := data(100_000, "0123456789")
		a := w.image(1, body)
		first := true
		var ranges []string
		w.srv.on("/img/"+a.Identifier, func(rw http.ResponseWriter, r *http.Request, b []byte) bool {
			ranges = append(ranges, r.Header.Get("Range"))
			if !first {
				return false // serve normally (with Range)
			}
			first = false
			hj, _ := rw.(http.Hijacker)
			conn, buf, _ := hj.Hijack()
			fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(b))
			buf.Write(b[:len(b)/3])
			buf.Flush()
			conn.Close()
			return true
		})
		w.publish(w.list("1", a), endorser)
		r := w.update()
		if r.Cached != 1 || w.state(a.Identifier) != catalog.ImageCached {
			t.Fatalf("update = %+v, state %s", r, w.state(a.Identifier))
		}
		if len(ranges) != 2 || ranges[1] == "" {
			t.Fatalf("requests' Range headers = %q, want a resumed second request", ranges)
		}
	})
	t.Run("interrupted run finished by the next", func(t *testing.T) {
		w := newWorld(t, catalog.NewImagesSubscribe)
		body := data(200_000, "z")
		a := w.image(1, body)
		ctx, cancel := context.WithCancel(context.Background())
		stall := make(chan struct{})
		w.srv.on("/img/"+a.Identifier, func(rw http.ResponseWriter, r *http.Request, b []byte) bool {
			select {
			case <-stall:
				return false
			default:
			}
			rw.Header().Set("Content-Length", strconv.Itoa(len(b)))
			rw.Write(b[:len(b)/2])
			rw.(http.Flusher).Flush()
			cancel() // the process dies mid-download
			<-r.Context().Done()
			return true
		})
		w.publish(w.list("1", a), endorser)
		u, _ := update.New(w.store, w.cache, w.opts)
		u.Run(ctx)
		if st := w.state(a.Identifier); st == catalog.ImageCached {
			t.Fatalf("state after the crash = %s", st)
		}
		close(stall)
		if r := w.update(); r.Cached != 1 || w.state(a.Identifier) != catalog.ImageCached {
			t.Fatalf("next update = %+v, state %s", r, w.state(a.Identifier))
		}
		p, _ := w.cache.Path(a.Identifier)
		if got, _ := os.ReadFile(p); !bytes.Equal(got, body) {
			t.Fatal("cached file differs from the image")
		}
	})
	t.Run("new images refused", func(t *testing.T) {
		w := newWorld(t, catalog.NewImagesRefuse)
		a := w.image(1, data(1000, "a"))
		w.publish(w.list("1", a), endorser)
		if r := w.update(); r.Cached != 0 || w.state(a.Identifier) != catalog.ImageRefused || len(w.dir("cache")) != 0 {
			t.Fatalf("update = %+v, state %s", r, w.state(a.Identifier))
		}
	})
}

func TestTransport(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(w *world)
	}{
		{"untrusted TLS certificate", func(w *world) {
			w.opts.Fetcher = func(catalog.Subscription) (update.Fetcher, error) { return fetch.New(fetch.Options{}), nil } // system roots only
		}},
		{"redirect to http", func(w *world) {
			w.srv.on("/image.list", func(rw http.ResponseWriter, r *http.Request, _ []byte) bool {
				http.Redirect(rw, r, "http://127.0.0.1:1/image.list", http.StatusFound)
				return true
			})
		}},
		{"redirect to file", func(w *world) {
			w.srv.on("/image.list", func(rw http.ResponseWriter, r *http.Request, _ []byte) bool {
				http.Redirect(rw, r, "file:///etc/hostname", http.StatusFound)
				return true
			})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, catalog.NewImagesSubscribe)
			w.publish(w.list("1", w.image(1, data(10, "a"))), endorser)
			tc.setup(w)
			if r := w.update(); r.Outcome != update.Failed || r.Reason != update.ReasonFetch {
				t.Fatalf("update = %+v", r)
			}
			if len(w.dir("cache")) != 0 {
				t.Fatal("something was cached")
			}
		})
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedCADir != "" {
		os.RemoveAll(sharedCADir)
	}
	os.Exit(code)
}
