package catalogtest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vmtrust/vmtrust/internal/catalog"
)

func (o opener) testEndorsers(t *testing.T) {
	s := o.store(t)
	ctx := t.Context()

	for _, name := range []string{"desy", "CERN-IT", "egi.appdb_1"} {
		check(t, "AddEndorser("+name+")", s.AddEndorser(ctx, endorser(name)), nil)
	}

	t.Run("Get", func(t *testing.T) {
		got, err := s.Endorser(ctx, "desy")
		check(t, "Endorser(desy)", err, nil)
		same(t, "Endorser(desy)", got, endorser("desy"))
	})
	t.Run("ListByName", func(t *testing.T) {
		got, err := s.Endorsers(ctx)
		check(t, "Endorsers", err, nil)
		same(t, "Endorsers", got, []catalog.Endorser{endorser("CERN-IT"), endorser("desy"), endorser("egi.appdb_1")})
	})
	t.Run("TimeInUTC", func(t *testing.T) {
		e := endorser("zoned")
		e.Added = t0.In(time.FixedZone("CET", 3600))
		check(t, "AddEndorser(zoned)", s.AddEndorser(ctx, e), nil)
		got, err := s.Endorser(ctx, "zoned")
		check(t, "Endorser(zoned)", err, nil)
		if !got.Added.Equal(t0) || got.Added.Location() != time.UTC {
			t.Errorf("Endorser(zoned).Added = %v, want %v", got.Added, t0)
		}
		check(t, "RemoveEndorser(zoned)", s.RemoveEndorser(ctx, "zoned"), nil)
	})
	t.Run("ZeroAddedIsNow", func(t *testing.T) {
		e := endorser("now")
		e.Added = time.Time{}
		before := time.Now().Add(-time.Second)
		check(t, "AddEndorser(now)", s.AddEndorser(ctx, e), nil)
		got, err := s.Endorser(ctx, "now")
		check(t, "Endorser(now)", err, nil)
		if got.Added.Before(before) || got.Added.After(time.Now().Add(time.Second)) {
			t.Errorf("Endorser(now).Added = %v, want about now", got.Added)
		}
		check(t, "RemoveEndorser(now)", s.RemoveEndorser(ctx, "now"), nil)
	})

	bad := func(f func(e *catalog.Endorser)) catalog.Endorser {
		e := endorser("bad")
		f(&e)
		return e
	}
	for _, tc := range []struct {
		name string
		e    catalog.Endorser
		want error
	}{
		{"Duplicate", endorser("desy"), catalog.ErrExists},
		{"EmptyName", bad(func(e *catalog.Endorser) { e.Name = "" }), catalog.ErrInvalid},
		{"NameWithSlash", bad(func(e *catalog.Endorser) { e.Name = "a/b" }), catalog.ErrInvalid},
		{"NameDotDot", bad(func(e *catalog.Endorser) { e.Name = ".." }), catalog.ErrInvalid},
		{"NameWithSpace", bad(func(e *catalog.Endorser) { e.Name = "a b" }), catalog.ErrInvalid},
		{"NameStartsWithDash", bad(func(e *catalog.Endorser) { e.Name = "-rf" }), catalog.ErrInvalid},
		{"NameTooLong", bad(func(e *catalog.Endorser) { e.Name = strings.Repeat("a", catalog.MaxNameLen+1) }), catalog.ErrInvalid},
		{"NameNotASCII", bad(func(e *catalog.Endorser) { e.Name = "désy" }), catalog.ErrInvalid},
		{"EmptyDN", bad(func(e *catalog.Endorser) { e.DN = "" }), catalog.ErrInvalid},
		{"DNNotOneline", bad(func(e *catalog.Endorser) { e.DN = "CN=x, O=y" }), catalog.ErrInvalid},
		{"CAWithNewline", bad(func(e *catalog.Endorser) { e.CA = "/CN=a\n/CN=b" }), catalog.ErrInvalid},
		{"EmptyCA", bad(func(e *catalog.Endorser) { e.CA = "" }), catalog.ErrInvalid},
	} {
		t.Run("Add"+tc.name, func(t *testing.T) {
			check(t, "AddEndorser", s.AddEndorser(ctx, tc.e), tc.want)
		})
	}

	t.Run("GetMissing", func(t *testing.T) {
		_, err := s.Endorser(ctx, "nobody")
		check(t, "Endorser(nobody)", err, catalog.ErrNotFound)
	})
	t.Run("RemoveMissing", func(t *testing.T) {
		check(t, "RemoveEndorser(nobody)", s.RemoveEndorser(ctx, "nobody"), catalog.ErrNotFound)
	})
	t.Run("RemoveInUse", func(t *testing.T) {
		id, err := s.AddSubscription(ctx, subscription("https://example.org/cern.list", "CERN-IT"))
		check(t, "AddSubscription", err, nil)
		check(t, "RemoveEndorser(CERN-IT)", s.RemoveEndorser(ctx, "CERN-IT"), catalog.ErrInUse)
		if _, err := s.Endorser(ctx, "CERN-IT"); err != nil {
			t.Fatalf("Endorser(CERN-IT) after a refused removal = %v", err)
		}
		check(t, "RemoveSubscription", s.RemoveSubscription(ctx, id), nil)
		check(t, "RemoveEndorser(CERN-IT)", s.RemoveEndorser(ctx, "CERN-IT"), nil)
		_, err = s.Endorser(ctx, "CERN-IT")
		check(t, "Endorser(CERN-IT) after removal", err, catalog.ErrNotFound)
	})
}

func (o opener) testSubscriptions(t *testing.T) {
	s := o.store(t)
	ctx := t.Context()
	check(t, "AddEndorser", s.AddEndorser(ctx, endorser("desy")), nil)
	check(t, "AddEndorser", s.AddEndorser(ctx, endorser("cern")), nil)

	a := subscription("https://lists.example.org/a.list", "desy")
	a.CABundle = "/etc/vmtrust/roots.pem"
	a.NewImages = catalog.NewImagesRefuse
	// Fields AddSubscription ignores.
	a.ID, a.Version, a.ListSHA512, a.LastError, a.LastAttempt = 99, "7", "ff", "boom", t3
	idA, err := s.AddSubscription(ctx, a)
	check(t, "AddSubscription(a)", err, nil)
	b := subscription("https://lists.example.org/b.list", "cern")
	b.Identifier = listID
	idB, err := s.AddSubscription(ctx, b)
	check(t, "AddSubscription(b)", err, nil)
	if idA <= 0 || idB <= idA {
		t.Fatalf("AddSubscription IDs = %d, %d, want positive and increasing", idA, idB)
	}
	wantA := catalog.Subscription{ID: idA, URL: a.URL, Endorser: "desy", NewImages: catalog.NewImagesRefuse,
		CABundle: a.CABundle, Created: t0}
	wantB := catalog.Subscription{ID: idB, URL: b.URL, Endorser: "cern", NewImages: catalog.NewImagesSubscribe,
		Created: t0, Identifier: listID}

	t.Run("Get", func(t *testing.T) {
		got, err := s.Subscription(ctx, idA)
		check(t, "Subscription", err, nil)
		same(t, "Subscription(a)", got, wantA)
	})
	t.Run("GetByURL", func(t *testing.T) {
		got, err := s.SubscriptionByURL(ctx, b.URL)
		check(t, "SubscriptionByURL", err, nil)
		same(t, "SubscriptionByURL(b)", got, wantB)
	})
	t.Run("ListByID", func(t *testing.T) {
		got, err := s.Subscriptions(ctx)
		check(t, "Subscriptions", err, nil)
		same(t, "Subscriptions", got, []catalog.Subscription{wantA, wantB})
	})
	t.Run("GetMissing", func(t *testing.T) {
		_, err := s.Subscription(ctx, idB+100)
		check(t, "Subscription(missing)", err, catalog.ErrNotFound)
		_, err = s.SubscriptionByURL(ctx, "https://lists.example.org/none")
		check(t, "SubscriptionByURL(missing)", err, catalog.ErrNotFound)
	})

	bad := func(f func(s *catalog.Subscription)) catalog.Subscription {
		sub := subscription("https://lists.example.org/new.list", "desy")
		f(&sub)
		return sub
	}
	for _, tc := range []struct {
		name string
		sub  catalog.Subscription
		want error
	}{
		{"DuplicateURL", subscription(a.URL, "cern"), catalog.ErrExists},
		{"UnknownEndorser", bad(func(s *catalog.Subscription) { s.Endorser = "nobody" }), catalog.ErrNotFound},
		{"BadEndorserName", bad(func(s *catalog.Subscription) { s.Endorser = "../x" }), catalog.ErrInvalid},
		{"EmptyURL", bad(func(s *catalog.Subscription) { s.URL = "" }), catalog.ErrInvalid},
		{"RelativeURL", bad(func(s *catalog.Subscription) { s.URL = "lists/a.list" }), catalog.ErrInvalid},
		{"URLWithSpace", bad(func(s *catalog.Subscription) { s.URL = "https://x.org/a b" }), catalog.ErrInvalid},
		{"URLWithNewline", bad(func(s *catalog.Subscription) { s.URL = "https://x.org/a\nb" }), catalog.ErrInvalid},
		{"EmptyMode", bad(func(s *catalog.Subscription) { s.NewImages = "" }), catalog.ErrInvalid},
		{"UnknownMode", bad(func(s *catalog.Subscription) { s.NewImages = "download" }), catalog.ErrInvalid},
		{"CABundleWithNUL", bad(func(s *catalog.Subscription) { s.CABundle = "/etc/a\x00" }), catalog.ErrInvalid},
		{"CreatedYear10000", bad(func(s *catalog.Subscription) { s.Created = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }), catalog.ErrInvalid},
	} {
		t.Run("Add"+tc.name, func(t *testing.T) {
			_, err := s.AddSubscription(ctx, tc.sub)
			check(t, "AddSubscription", err, tc.want)
		})
	}

	t.Run("Update", func(t *testing.T) {
		u := catalog.SubscriptionUpdate{Endorser: "cern", NewImages: catalog.NewImagesAccept}
		check(t, "UpdateSubscription", s.UpdateSubscription(ctx, idA, u), nil)
		got, err := s.Subscription(ctx, idA)
		check(t, "Subscription", err, nil)
		want := wantA
		want.Endorser, want.NewImages, want.CABundle = "cern", catalog.NewImagesAccept, ""
		same(t, "Subscription after update", got, want)
	})
	for _, tc := range []struct {
		name string
		id   int64
		u    catalog.SubscriptionUpdate
		want error
	}{
		{"Missing", idB + 100, catalog.SubscriptionUpdate{Endorser: "desy", NewImages: catalog.NewImagesRefuse}, catalog.ErrNotFound},
		{"UnknownEndorser", idA, catalog.SubscriptionUpdate{Endorser: "nobody", NewImages: catalog.NewImagesRefuse}, catalog.ErrNotFound},
		{"BadMode", idA, catalog.SubscriptionUpdate{Endorser: "desy", NewImages: "all"}, catalog.ErrInvalid},
		{"BadEndorser", idA, catalog.SubscriptionUpdate{Endorser: "", NewImages: catalog.NewImagesRefuse}, catalog.ErrInvalid},
	} {
		t.Run("Update"+tc.name, func(t *testing.T) {
			check(t, "UpdateSubscription", s.UpdateSubscription(ctx, tc.id, tc.u), tc.want)
		})
	}
}

func (o opener) testRecordAttempt(t *testing.T) {
	f := o.fixture(t)
	ctx := t.Context()
	get := func(t *testing.T) catalog.Subscription {
		t.Helper()
		sub, err := f.s.Subscription(ctx, f.sub)
		check(t, "Subscription", err, nil)
		return sub
	}
	long := errors.New(strings.Repeat("é", catalog.MaxErrorLen)) // 2 bytes a rune

	steps := []struct {
		name                string
		at                  time.Time
		err                 error
		wantAttempt, wantOK time.Time
		wantErr             string
	}{
		{"FirstFailure", t1, errors.New("download failed: connection refused"), t1, time.Time{}, "download failed: connection refused"},
		{"Success", t2, nil, t2, t2, ""},
		{"FailureKeepsLastSuccess", t3, errors.New("signature: certificate revoked"), t3, t2, "signature: certificate revoked"},
		{"LongErrorTruncated", t3.Add(time.Hour), long, t3.Add(time.Hour), t2, strings.Repeat("é", catalog.MaxErrorLen/2)},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			check(t, "RecordAttempt", f.s.RecordAttempt(ctx, f.sub, st.at, st.err), nil)
			got := get(t)
			if !got.LastAttempt.Equal(st.wantAttempt) || !got.LastSuccess.Equal(st.wantOK) || got.LastError != st.wantErr {
				t.Errorf("after RecordAttempt: LastAttempt, LastSuccess, LastError = %v, %v, %.40q, want %v, %v, %.40q",
					got.LastAttempt, got.LastSuccess, got.LastError, st.wantAttempt, st.wantOK, st.wantErr)
			}
		})
	}
	t.Run("Missing", func(t *testing.T) {
		check(t, "RecordAttempt(missing)", f.s.RecordAttempt(ctx, f.sub+100, t1, nil), catalog.ErrNotFound)
	})
	t.Run("ZeroTime", func(t *testing.T) {
		check(t, "RecordAttempt(zero time)", f.s.RecordAttempt(ctx, f.sub, time.Time{}, nil), catalog.ErrInvalid)
	})
}

func (o opener) testRemoveSubscription(t *testing.T) {
	f := o.fixture(t)
	ctx := t.Context()
	f.accept(t, list("1", "a"), image("img-1", "x"), image("img-2", "y"))
	seqs, err := f.s.AppendEvents(ctx, catalog.Event{Type: catalog.EventListRejected, SubscriptionID: f.sub, Time: t2})
	check(t, "AppendEvents", err, nil)
	before := snapshot(t, f.s)

	check(t, "RemoveSubscription", f.s.RemoveSubscription(ctx, f.sub), nil)
	check(t, "RemoveSubscription again", f.s.RemoveSubscription(ctx, f.sub), catalog.ErrNotFound)
	_, err = f.s.Subscription(ctx, f.sub)
	check(t, "Subscription after removal", err, catalog.ErrNotFound)
	_, err = f.s.ListVersion(ctx, f.sub, "1")
	check(t, "ListVersion after removal", err, catalog.ErrNotFound)
	lvs, err := f.s.ListVersions(ctx, f.sub)
	check(t, "ListVersions after removal", err, nil)
	if len(lvs) != 0 {
		t.Errorf("ListVersions after removal = %d versions, want none", len(lvs))
	}
	ims, err := f.s.Images(ctx, catalog.ImageFilter{SubscriptionID: f.sub})
	check(t, "Images after removal", err, nil)
	if len(ims) != 0 {
		t.Errorf("Images after removal = %d images, want none", len(ims))
	}
	evs, err := f.s.Events(ctx, 0, 100)
	check(t, "Events after removal", err, nil)
	same(t, "Events after removal", evs, before.Events)
	if len(evs) == 0 || evs[len(evs)-1].Seq != seqs[0] || evs[len(evs)-1].SubscriptionID != f.sub {
		t.Errorf("Events after removal lost the subscription's event %d", seqs[0])
	}
	err = f.s.AcceptList(ctx, f.sub, list("2", "b"), nil, nil)
	check(t, "AcceptList on a removed subscription", err, catalog.ErrNotFound)

	// IDs are never reused, so the old events cannot name a new subscription.
	id, err := f.s.AddSubscription(ctx, subscription("https://lists.example.org/desy.list", "desy"))
	check(t, "AddSubscription with the removed URL", err, nil)
	if id <= f.sub {
		t.Errorf("AddSubscription after removing %d = ID %d, want a new ID above it", f.sub, id)
	}
	got, err := f.s.Subscription(ctx, id)
	check(t, "Subscription", err, nil)
	if got.Version != "" || got.Identifier != "" {
		t.Errorf("re-added subscription = %+v, want no version or identifier", got)
	}
}
