// Package catalogtest is the conformance suite for catalog.Store
// implementations. Every implementation runs it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		catalogtest.TestStore(t, func(t *testing.T) catalog.Store { ... })
//	}
//
// The suite checks every method, every error class, the version rule with
// vmcatcher ordering, the atomicity of AcceptList and SetImageState, the
// event log's ordering and per-hook delivery bookkeeping, concurrent
// writers, cancelled contexts and persistence across a reopen.
//
// # Contract of open
//
// open(t) must return a store holding no data the first time it is called
// for a given t. After the suite has closed that store, a second open(t)
// with the same t must return a store over the same data (a reopen). A
// store's data must not be visible to another t. The suite closes every
// store it opens, then may call Close again: a second Close must return
// nil.
//
// This package is for tests only.
package catalogtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vmtrust/vmtrust/internal/catalog"
)

// TestStore runs the conformance suite against stores made by open.
func TestStore(t *testing.T, open func(t *testing.T) catalog.Store) {
	o := opener(open)
	t.Run("Endorsers", o.testEndorsers)
	t.Run("Subscriptions", o.testSubscriptions)
	t.Run("RecordAttempt", o.testRecordAttempt)
	t.Run("RemoveSubscription", o.testRemoveSubscription)
	t.Run("VersionRule", o.testVersionRule)
	t.Run("Identifier", o.testIdentifier)
	t.Run("AcceptList", o.testAcceptList)
	t.Run("MergeRule", o.testMergeRule)
	t.Run("Atomicity", o.testAtomicity)
	t.Run("Images", o.testImages)
	t.Run("SetImageState", o.testSetImageState)
	t.Run("SiteEndorser", o.testSiteEndorser)
	t.Run("FileIdentity", o.testFileIdentity)
	t.Run("UserImages", o.testUserImages)
	t.Run("Events", o.testEvents)
	t.Run("Hooks", o.testHooks)
	t.Run("Delivery", o.testDelivery)
	t.Run("ConcurrentWriters", o.testConcurrentWriters)
	t.Run("CanceledContext", o.testCanceledContext)
	t.Run("Reopen", o.testReopen)
}

type opener func(t *testing.T) catalog.Store

// store opens a store for t and closes it when t ends.
func (o opener) store(t *testing.T) catalog.Store {
	t.Helper()
	s := o(t)
	if s == nil {
		t.Fatal("open returned a nil store")
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("second Close() = %v, want nil", err)
		}
	})
	return s
}

var classes = []error{catalog.ErrNotFound, catalog.ErrExists, catalog.ErrInUse, catalog.ErrConflict, catalog.ErrInvalid}

// check fails t unless err wraps class, and no other class; a nil class
// wants success.
func check(t *testing.T, what string, err, class error) {
	t.Helper()
	if class == nil {
		if err != nil {
			t.Fatalf("%s = %v, want success", what, err)
		}
		return
	}
	if !errors.Is(err, class) {
		t.Fatalf("%s = %v, want an error wrapping %v", what, err, class)
	}
	for _, c := range classes {
		if c != class && errors.Is(err, c) {
			t.Fatalf("%s = %v, wraps %v as well as %v", what, err, c, class)
		}
	}
}

// Fixed times with nanoseconds, to check exact round trips.
var (
	t0 = time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)
	t1 = t0.Add(time.Hour)
	t2 = t0.Add(2 * time.Hour)
	t3 = t0.Add(3 * time.Hour)
	// Real AppDB lists expire in 2499, beyond int64 nanoseconds.
	farFuture = time.Date(2499, 12, 31, 22, 0, 0, 0, time.UTC)
)

const listID = "e55c1afe-0a62-4d31-a8d7-fb8c825f92a2"

func endorser(name string) catalog.Endorser {
	return catalog.Endorser{
		Name:  name,
		DN:    "/C=DE/O=GermanGrid/OU=DESY/CN=" + name,
		CA:    "/C=DE/O=GermanGrid/CN=GridKa-CA",
		Added: t0,
	}
}

func subscription(url, endorser string) catalog.Subscription {
	return catalog.Subscription{URL: url, Endorser: endorser, NewImages: catalog.NewImagesSubscribe, Created: t0}
}

// list is a list version whose signed bytes depend on content; they hold
// CRLF, a NUL and bytes that are not UTF-8, which must survive verbatim.
func list(version, content string) catalog.ListVersion {
	raw := "MIME-Version: 1.0\r\nContent-Type: multipart/signed\r\n\r\n{\"hv:version\": \"" + version + "\"}\r\n" + content + "\x00\xff\xfe\r\n"
	return catalog.ListVersion{
		Version:    version,
		Identifier: listID,
		Raw:        []byte(raw),
		Created:    t0,
		Expires:    farFuture,
		Signer:     "/C=DE/O=GermanGrid/OU=DESY/CN=signer",
		SignerCA:   "/C=DE/O=GermanGrid/CN=GridKa-CA",
		AcceptedAt: t1,
	}
}

// image is an available image whose digest depends on content.
func image(id, content string) catalog.Image {
	return catalog.Image{
		ID:      id,
		Title:   "Image " + id,
		Version: "1.0",
		Size:    int64(1000 + len(content)),
		SHA512:  catalog.SHA512Hex([]byte(content)),
		URI:     "https://appdb.example.org/images/" + id + ".qcow2",
		Format:  "qcow2",
		Expires: t0.Add(28 * 24 * time.Hour),
		State:   catalog.ImageAvailable,
		Attrs:   map[string]string{"sl:arch": "x86_64", "sl:comments": "line one\nline two"},
	}
}

func event(typ catalog.EventType, fields ...string) catalog.Event {
	ev := catalog.Event{Type: typ, Time: t2}
	if len(fields) > 0 {
		ev.Fields = map[string]string{}
		for i := 0; i+1 < len(fields); i += 2 {
			ev.Fields[fields[i]] = fields[i+1]
		}
	}
	return ev
}

// fixture is a store with one endorser and one subscription.
type fixture struct {
	s   catalog.Store
	sub int64
}

func (o opener) fixture(t *testing.T) fixture {
	t.Helper()
	s := o.store(t)
	ctx := t.Context()
	check(t, "AddEndorser", s.AddEndorser(ctx, endorser("desy")), nil)
	id, err := s.AddSubscription(ctx, subscription("https://lists.example.org/desy.list", "desy"))
	check(t, "AddSubscription", err, nil)
	return fixture{s, id}
}

// accept calls AcceptList and fails t on error.
func (f fixture) accept(t *testing.T, lv catalog.ListVersion, images ...catalog.Image) {
	t.Helper()
	check(t, fmt.Sprintf("AcceptList(%q)", lv.Version), f.s.AcceptList(t.Context(), f.sub, lv, images, nil), nil)
}

// state is everything a store holds, for before/after comparisons.
type state struct {
	Endorsers     []catalog.Endorser
	Subscriptions []catalog.Subscription
	Versions      map[int64][]catalog.ListVersion // with Raw
	Images        []catalog.Image
	UserImages    []catalog.UserImage
	Events        []catalog.Event
	Hooks         []catalog.Hook
	Pending       map[string][]catalog.Delivery
}

func snapshot(t *testing.T, s catalog.Store) state {
	t.Helper()
	ctx := t.Context()
	var st state
	var err error
	st.Endorsers, err = s.Endorsers(ctx)
	check(t, "Endorsers", err, nil)
	st.Subscriptions, err = s.Subscriptions(ctx)
	check(t, "Subscriptions", err, nil)
	st.Versions = map[int64][]catalog.ListVersion{}
	for _, sub := range st.Subscriptions {
		lvs, err := s.ListVersions(ctx, sub.ID)
		check(t, "ListVersions", err, nil)
		for _, lv := range lvs {
			full, err := s.ListVersion(ctx, sub.ID, lv.Version)
			check(t, "ListVersion", err, nil)
			st.Versions[sub.ID] = append(st.Versions[sub.ID], full)
		}
	}
	st.Images, err = s.Images(ctx, catalog.ImageFilter{})
	check(t, "Images", err, nil)
	st.UserImages, err = s.UserImages(ctx)
	check(t, "UserImages", err, nil)
	for after := int64(0); ; {
		evs, err := s.Events(ctx, after, 100)
		check(t, "Events", err, nil)
		if len(evs) == 0 {
			break
		}
		st.Events = append(st.Events, evs...)
		after = evs[len(evs)-1].Seq
	}
	st.Hooks, err = s.Hooks(ctx)
	check(t, "Hooks", err, nil)
	st.Pending = map[string][]catalog.Delivery{}
	for _, h := range st.Hooks {
		st.Pending[h.Name], err = s.Pending(ctx, h.Name, farFuture, catalog.MaxPage)
		check(t, "Pending", err, nil)
	}
	return st
}

// diff describes how got differs from want ("" when equal), comparing
// their JSON forms line by line. Empty and nil slices and maps are equal.
func diff(got, want any) string {
	g, err1 := canonicalJSON(got)
	w, err2 := canonicalJSON(want)
	if err1 != nil || err2 != nil {
		return fmt.Sprintf("cannot compare: %v %v", err1, err2)
	}
	if string(g) == string(w) {
		return ""
	}
	gl, wl := strings.Split(string(g), "\n"), strings.Split(string(w), "\n")
	var b strings.Builder
	for i := 0; i < len(gl) || i < len(wl); i++ {
		var a, c string
		if i < len(gl) {
			a = gl[i]
		}
		if i < len(wl) {
			c = wl[i]
		}
		if a != c {
			fmt.Fprintf(&b, "line %d:\n  got:  %s\n  want: %s\n", i+1, a, c)
			if b.Len() > 2000 {
				break
			}
		}
	}
	return b.String()
}

// same fails t when got and want differ.
func same(t *testing.T, what string, got, want any) {
	t.Helper()
	if d := diff(got, want); d != "" {
		t.Fatalf("%s differs (-got +want):\n%s", what, d)
	}
}

func canonicalJSON(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var x any
	if err := json.Unmarshal(b, &x); err != nil {
		return nil, err
	}
	return json.MarshalIndent(emptyToNil(x), "", "  ")
}

func emptyToNil(x any) any {
	switch x := x.(type) {
	case []any:
		if len(x) == 0 {
			return nil
		}
		for i := range x {
			x[i] = emptyToNil(x[i])
		}
	case map[string]any:
		if len(x) == 0 {
			return nil
		}
		for k := range x {
			x[k] = emptyToNil(x[k])
		}
	}
	return x
}
