package main

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vmtrust/vmtrust/imagelist"
	"github.com/vmtrust/vmtrust/imagelist/smime"
	"github.com/vmtrust/vmtrust/internal/catalog/sqlite"
)

// The test binary doubles as vmtrust, so a test can run it as a process and
// kill it.
func TestMain(m *testing.M) {
	if os.Getenv("VMTRUST_TEST_AS_MAIN") == "1" {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// siteWorld: an endorser's HTTPS server on 127.0.0.1 and a site state dir.
type siteWorld struct {
	*endorserWorld
	srv      *httptest.Server
	mu       sync.Mutex // guards files, read by the server's goroutines
	files    map[string][]byte
	slow     atomic.Bool // serve images slowly (for the kill test)
	state    string
	caBundle string
}

func newSiteWorld(t *testing.T) *siteWorld {
	w := &siteWorld{endorserWorld: newEndorserWorld(t), files: map[string][]byte{}}
	w.state = filepath.Join(w.dir, "state")
	w.srv = httptest.NewTLSServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.mu.Lock()
		b, ok := w.files[r.URL.Path]
		w.mu.Unlock()
		if !ok {
			http.NotFound(rw, r)
			return
		}
		if w.slow.Load() && strings.HasPrefix(r.URL.Path, "/img/") {
			rw.Header().Set("Content-Length", strconv.Itoa(len(b)))
			for i := 0; i < len(b); i += 4096 {
				if _, err := rw.Write(b[i:min(i+4096, len(b))]); err != nil {
					return
				}
				rw.(http.Flusher).Flush()
				time.Sleep(20 * time.Millisecond)
			}
			return
		}
		http.ServeContent(rw, r, "", time.Time{}, bytes.NewReader(b))
	}))
	t.Cleanup(w.srv.Close)
	w.caBundle = w.write(t, "server-ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: w.srv.Certificate().Raw}))
	return w
}

// publish creates and signs a list with the files given and serves it; the
// list expires 28 days after its creation.
func (w *siteWorld) publish(t *testing.T, version string, images map[string][]byte) {
	t.Helper()
	w.publishExpiring(t, version, images, time.Now().UTC().Add(-time.Minute).Truncate(time.Second).Add(28*24*time.Hour))
}

// publishExpiring creates and signs a list with the files given, expiring
// at expires, and serves it.
func (w *siteWorld) publishExpiring(t *testing.T, version string, images map[string][]byte, expires time.Time) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	l := &imagelist.List{Created: time.Now().UTC().Add(-time.Minute).Truncate(time.Second), Identifier: "5d5e7c4e-2f1a-4f43-9d3c-0a9a4f1b2c3d",
		Title: "CLI site list", Description: "d", Source: "https://site.test/", URI: w.srv.URL + "/image.list", Version: version,
		Endorser: imagelist.Endorser{DN: "/DC=org/DC=vmtrust-test/CN=CLI Endorser", CA: "/DC=org/DC=vmtrust-test/CN=CLI CA", Email: "a@site.test", Creator: "admins"}}
	l.Expires = expires.UTC().Truncate(time.Second)
	for id, b := range images {
		sum := sha512.Sum512(b)
		w.files["/img/"+id] = b
		l.Images = append(l.Images, imagelist.Image{Identifier: id, Title: "Disk " + id[len(id)-1:], Description: "d", Size: int64(len(b)),
			SHA512: hex.EncodeToString(sum[:]), URI: w.srv.URL + "/img/" + id, Version: "1", Hypervisor: "QEMU", Arch: "x86_64", OS: "Linux", OSVersion: "12"})
	}
	body, err := imagelist.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := smime.Sign(body, w.endorser.Cert, w.endorser.Key, smime.SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w.files["/image.list"] = signed
}

func (w *siteWorld) vm(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return vmtrust(t, append([]string{"--state", w.state, "--config", w.config(t)}, args...)...)
}

func (w *siteWorld) config(t *testing.T) string {
	p := filepath.Join(w.dir, "vmtrust.toml")
	if _, err := os.Stat(p); err != nil {
		w.write(t, "vmtrust.toml", []byte("trust_dir = \""+w.caDir+"\"\nretries = 1\n"))
	}
	return p
}

func (w *siteWorld) subscribe(t *testing.T) {
	t.Helper()
	if code, _, errs := w.vm(t, "endorser", "add", "site", "--dn", "/DC=org/DC=vmtrust-test/CN=CLI Endorser", "--ca", "/DC=org/DC=vmtrust-test/CN=CLI CA"); code != 0 {
		t.Fatalf("endorser add: %d %s", code, errs)
	}
	if code, _, errs := w.vm(t, "subscribe", w.srv.URL+"/image.list", "--endorser", "site", "--ca-bundle", w.caBundle); code != 0 {
		t.Fatalf("subscribe: %d %s", code, errs)
	}
}

type imageRow struct {
	ID         string `json:"id"`
	State      string `json:"state"`
	Path       string `json:"path"`
	Admissible bool   `json:"admissible"`
	Verified   string `json:"verified"`
}

func (w *siteWorld) images(t *testing.T, extra ...string) (int, map[string]imageRow) {
	t.Helper()
	code, out, errs := w.vm(t, append([]string{"images", "--json"}, extra...)...)
	var v struct {
		Images []imageRow `json:"images"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("images --json: %v\n%s\n%s", err, out, errs)
	}
	m := map[string]imageRow{}
	for _, r := range v.Images {
		m[r.ID] = r
	}
	return code, m
}

const img1 = "8c0a7d1e-1111-4c4c-8d8d-000000000001"

func TestSiteCommands(t *testing.T) {
	w := newSiteWorld(t)
	w.subscribe(t)
	for _, bad := range []string{"http://127.0.0.1/image.list", "https://127.0.0.1:/image.list", "file://relative/x", "ftp://h/x"} {
		if code, _, _ := w.vm(t, "subscribe", bad, "--endorser", "site"); code != exitUsage {
			t.Errorf("subscribe %s: exit %d, want %d", bad, code, exitUsage)
		}
	}
	if code, _, errs := w.vm(t, "endorser", "remove", "site"); code != exitInput || !strings.Contains(errs, "in use") {
		t.Fatalf("endorser remove while subscribed: %d %s", code, errs)
	}
	disk := bytes.Repeat([]byte("disk"), 100_000)
	w.publish(t, "1", map[string][]byte{img1: disk})
	if code, out, errs := w.vm(t, "update"); code != 0 || !strings.Contains(out, "accepted") {
		t.Fatalf("update: %d\n%s\n%s", code, out, errs)
	}
	code, ims := w.images(t, "--verify")
	if im := ims[img1]; code != 0 || im.State != "cached" || !im.Admissible || im.Verified != "ok" {
		t.Fatalf("images: %d %+v", code, ims)
	}
	if code, out, _ := w.vm(t, "subscriptions"); code != 0 || !strings.Contains(out, " ok") {
		t.Fatalf("subscriptions: %d\n%s", code, out)
	}
	// A cached file that changes on disk is caught by --verify.
	p := ims[img1].Path
	os.Chmod(p, 0o644)
	os.WriteFile(p, append(disk[:len(disk)-1], 'X'), 0o444)
	if code, ims := w.images(t, "--verify"); code != exitPartial || ims[img1].Admissible {
		t.Fatalf("images --verify of a modified file: %d %+v", code, ims[img1])
	}
	// A rollback is refused and reported.
	w.publish(t, "2", map[string][]byte{img1: disk})
	w.vm(t, "update")
	w.publish(t, "1", map[string][]byte{img1: disk})
	if code, out, _ := w.vm(t, "update"); code != exitPartial || !strings.Contains(out, "rollback") {
		t.Fatalf("update with a rollback: %d\n%s", code, out)
	}
	// Unsubscribing moves the image out of the cache.
	if code, _, errs := w.vm(t, "unsubscribe", w.srv.URL+"/image.list"); code != 0 {
		t.Fatalf("unsubscribe: %d %s", code, errs)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatal("unsubscribe left the image in cache/")
	}
	if es, _ := os.ReadDir(filepath.Join(w.state, "expired")); len(es) != 1 {
		t.Fatalf("expired/ = %v", es)
	}
	// Nothing outside the state directory was touched.
	for _, d := range []string{"cache", "partial", "expired", "catalog.db"} {
		if _, err := os.Stat(filepath.Join(w.state, d)); err != nil {
			t.Errorf("state %s: %v", d, err)
		}
	}
}

// A process killed in the middle of a download leaves a consistent state,
// and the next update finishes the job.
func TestKilledMidDownload(t *testing.T) {
	w := newSiteWorld(t)
	w.subscribe(t)
	disk := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB, served in ~5 s when slow
	w.publish(t, "1", map[string][]byte{img1: disk})
	w.slow.Store(true)

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "--state", w.state, "--config", w.config(t), "update")
	cmd.Env = append(os.Environ(), "VMTRUST_TEST_AS_MAIN=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	partial := filepath.Join(w.state, "partial", img1)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if fi, err := os.Stat(partial); err == nil && fi.Size() > 64<<10 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the download never started\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if _, ims := w.images(t); ims[img1].State != "downloading" {
		t.Fatalf("state after the kill = %+v, want downloading", ims[img1])
	}
	w.slow.Store(false)
	if code, out, errs := w.vm(t, "update"); code != 0 {
		t.Fatalf("update after the kill: %d\n%s\n%s", code, out, errs)
	}
	code, ims := w.images(t, "--verify")
	if code != 0 || ims[img1].State != "cached" || ims[img1].Verified != "ok" {
		t.Fatalf("after the second update: %d %+v", code, ims[img1])
	}
	if es, _ := os.ReadDir(filepath.Join(w.state, "partial")); len(es) != 0 {
		t.Fatalf("partial/ = %v", es)
	}
}

// Every event reaches the journal and the hooks, with vmcatcher's variables;
// a failing hook keeps its event for a later run.
func TestHooksAndJournal(t *testing.T) {
	w := newSiteWorld(t)
	record := filepath.Join(w.dir, "hook.log")
	ok := w.write(t, "ok-hook.sh", []byte("#!/bin/sh\n{ echo \"$VMCATCHER_EVENT_TYPE $VMCATCHER_EVENT_DC_IDENTIFIER $VMCATCHER_EVENT_FILENAME\"; } >> "+record+"\n"))
	bad := w.write(t, "bad-hook.sh", []byte("#!/bin/sh\necho refusing >&2\nexit 3\n"))
	os.Chmod(ok, 0o755)
	os.Chmod(bad, 0o755)
	w.write(t, "vmtrust.toml", []byte("trust_dir = \""+w.caDir+"\"\nretries = 1\n"+
		"[[hook]]\nname = \"ok\"\ncommand = [\""+ok+"\"]\n[[hook]]\nname = \"bad\"\ncommand = [\""+bad+"\"]\ntimeout = \"2s\"\n"))
	w.subscribe(t)
	w.publish(t, "1", map[string][]byte{img1: bytes.Repeat([]byte("x"), 10_000)})
	code, out, errs := w.vm(t, "update")
	if code != exitPartial || !strings.Contains(errs, "hook(s) failed") {
		t.Fatalf("update with a failing hook: exit %d, want %d\n%s\n%s", code, exitPartial, out, errs)
	}
	log, _ := os.ReadFile(record)
	for _, want := range []string{"ListAccepted", "SubscriptionImageNew " + img1, "AvailablePrefix " + img1, "AvailablePostfix " + img1 + " " + filepath.Join(w.state, "cache", img1)} {
		if !strings.Contains(string(log), want) {
			t.Errorf("the hook did not see %q:\n%s", want, log)
		}
	}
	journal, err := os.ReadFile(filepath.Join(w.state, "events.jsonl"))
	if err != nil || strings.Count(string(journal), "\n") < 4 || !strings.Contains(string(journal), `"type":"AvailablePostfix"`) {
		t.Fatalf("events.jsonl: %v\n%s", err, journal)
	}
	// The journal is written once per event, however often update runs.
	w.vm(t, "update")
	journal, _ = os.ReadFile(filepath.Join(w.state, "events.jsonl"))
	if strings.Count(string(journal), `"type":"AvailablePostfix"`) != 1 {
		t.Fatalf("the journal repeated events:\n%s", journal)
	}
	// The failing hook's first event is kept, with its failed attempt, and
	// is due again after the backoff: nothing was lost or skipped.
	store, err := sqlite.Open(context.Background(), filepath.Join(w.state, "catalog.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ds, err := store.Pending(context.Background(), "bad", time.Now().Add(2*time.Hour), 100)
	if err != nil || len(ds) < 4 || ds[0].Attempts != 1 || ds[0].Type != "ListAccepted" || !strings.Contains(ds[0].LastError, "refusing") {
		t.Fatalf("pending for the failing hook: %v %+v", err, ds)
	}
	if ds, _ := store.Pending(context.Background(), "ok", time.Now().Add(2*time.Hour), 100); len(ds) != 0 {
		t.Fatalf("the good hook still has %d pending events", len(ds))
	}
}
