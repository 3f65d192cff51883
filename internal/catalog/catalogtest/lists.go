package catalogtest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vmtrust/vmtrust/internal/catalog"
)

func (o opener) testVersionRule(t *testing.T) {
	f := o.fixture(t)
	ctx := t.Context()
	// Applied in order to one subscription; each step names the version
	// and content the subscription must hold afterwards.
	steps := []struct {
		name             string
		version, content string
		want             error
		wantVersion      string
		wantContent      string
	}{
		{"FirstList", "1.9", "a", nil, "1.9", "a"},
		{"Higher_1.10_after_1.9", "1.10", "b", nil, "1.10", "b"},
		{"Lower_1.9_after_1.10", "1.9", "c", catalog.ErrConflict, "1.10", "b"},
		{"LowerReplayOfOldList", "1.9", "a", catalog.ErrConflict, "1.10", "b"},
		{"EqualWithOtherContent", "1.10", "c", catalog.ErrConflict, "1.10", "b"},
		{"EqualWithSameContentIsNoop", "1.10", "b", nil, "1.10", "b"},
		{"Higher_1.10.1", "1.10.1", "d", nil, "1.10.1", "d"},
		{"PrefixIsLower_1.10", "1.10", "e", catalog.ErrConflict, "1.10.1", "d"},
		{"Higher_2", "2", "f", nil, "2", "f"},
		{"Higher_10_numeric_not_text", "10", "g", nil, "10", "g"},
		{"Lower_9", "9", "h", catalog.ErrConflict, "10", "g"},
		{"Date_20150618211400", "20150618211400", "i", nil, "20150618211400", "i"},
		{"Higher_20150618211401", "20150618211401", "j", nil, "20150618211401", "j"},
	}
	accepted := 0
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			before := snapshot(t, f.s)
			lv := list(st.version, st.content)
			lv.AcceptedAt = t1.Add(time.Duration(len(before.Events)) * time.Minute)
			// Each call carries an image change and an event: a rejected or
			// no-op call must apply neither.
			im := image("img-"+st.content, st.content)
			err := f.s.AcceptList(ctx, f.sub, lv, []catalog.Image{im}, []catalog.Event{event(catalog.EventListAccepted, "HV_VERSION", st.version)})
			check(t, "AcceptList("+st.version+")", err, st.want)

			sub, err := f.s.Subscription(ctx, f.sub)
			check(t, "Subscription", err, nil)
			wantSHA := catalog.SHA512Hex(list(st.wantVersion, st.wantContent).Raw)
			if sub.Version != st.wantVersion || sub.ListSHA512 != wantSHA {
				t.Fatalf("after AcceptList(%q): Version, ListSHA512 = %q, %.16s, want %q, %.16s",
					st.version, sub.Version, sub.ListSHA512, st.wantVersion, wantSHA)
			}
			after := snapshot(t, f.s)
			stored := st.want == nil && (len(before.Subscriptions) == 0 || before.Subscriptions[0].Version != st.version)
			if !stored {
				same(t, "store after a rejected or no-op AcceptList", after, before)
				return
			}
			accepted++
			if got := len(after.Versions[f.sub]); got != accepted {
				t.Errorf("ListVersions = %d versions, want %d", got, accepted)
			}
			if got := len(after.Events); got != len(before.Events)+1 {
				t.Errorf("Events = %d, want %d", got, len(before.Events)+1)
			}
		})
	}
}

func (o opener) testIdentifier(t *testing.T) {
	ctx := t.Context()
	t.Run("FirstListSetsIt", func(t *testing.T) {
		f := o.fixture(t)
		f.accept(t, list("1", "a"))
		sub, err := f.s.Subscription(ctx, f.sub)
		check(t, "Subscription", err, nil)
		if sub.Identifier != listID {
			t.Fatalf("Subscription.Identifier = %q, want %q", sub.Identifier, listID)
		}
		other := list("2", "b")
		other.Identifier = "0c9e3c2a-0000-4000-8000-000000000000"
		check(t, "AcceptList(other identifier)", f.s.AcceptList(ctx, f.sub, other, nil, nil), catalog.ErrConflict)
	})
	t.Run("PinnedAtAdd", func(t *testing.T) {
		f := o.fixture(t)
		sub := subscription("https://lists.example.org/pinned.list", "desy")
		sub.Identifier = "0c9e3c2a-0000-4000-8000-000000000000"
		id, err := f.s.AddSubscription(ctx, sub)
		check(t, "AddSubscription", err, nil)
		check(t, "AcceptList(other identifier)", f.s.AcceptList(ctx, id, list("1", "a"), nil, nil), catalog.ErrConflict)
		lv := list("1", "a")
		lv.Identifier = sub.Identifier
		check(t, "AcceptList(pinned identifier)", f.s.AcceptList(ctx, id, lv, nil, nil), nil)
	})
}

func (o opener) testAcceptList(t *testing.T) {
	f := o.fixture(t)
	ctx := t.Context()
	lv := list("3.1", "a")
	lv.SHA512 = catalog.SHA512Hex(lv.Raw) // given and correct
	a, b := image("img-a", "a"), image("img-b", "b")
	b.Expires, b.Attrs, b.State = time.Time{}, nil, catalog.ImageRefused
	evs := []catalog.Event{
		event(catalog.EventListAccepted, "HV_VERSION", "3.1"),
		{Type: catalog.EventSubscriptionImageNew, ImageID: "img-a", Time: t2, Fields: map[string]string{"DC_IDENTIFIER": "img-a"}},
		{Type: catalog.EventProcessPostfix, SubscriptionID: 4242, Time: t2}, // kept as given
	}
	check(t, "AcceptList", f.s.AcceptList(ctx, f.sub, lv, []catalog.Image{a, b}, evs), nil)

	t.Run("ListVersionVerbatim", func(t *testing.T) {
		got, err := f.s.ListVersion(ctx, f.sub, "3.1")
		check(t, "ListVersion", err, nil)
		want := lv
		want.SubscriptionID = f.sub
		same(t, "ListVersion", got, want)
		if string(got.Raw) != string(lv.Raw) {
			t.Errorf("ListVersion.Raw = %q, want %q", got.Raw, lv.Raw)
		}
	})
	t.Run("ListVersionsWithoutRaw", func(t *testing.T) {
		got, err := f.s.ListVersions(ctx, f.sub)
		check(t, "ListVersions", err, nil)
		want := lv
		want.SubscriptionID, want.Raw = f.sub, nil
		same(t, "ListVersions", got, []catalog.ListVersion{want})
	})
	t.Run("Subscription", func(t *testing.T) {
		sub, err := f.s.Subscription(ctx, f.sub)
		check(t, "Subscription", err, nil)
		if sub.Version != "3.1" || sub.ListSHA512 != lv.SHA512 || sub.Identifier != listID {
			t.Errorf("Subscription = %+v, want version 3.1 with the list's digest and identifier", sub)
		}
		if !sub.LastSuccess.IsZero() || !sub.LastAttempt.IsZero() {
			t.Errorf("AcceptList set LastAttempt/LastSuccess (%v, %v); only RecordAttempt may", sub.LastAttempt, sub.LastSuccess)
		}
	})
	t.Run("Images", func(t *testing.T) {
		got, err := f.s.Images(ctx, catalog.ImageFilter{SubscriptionID: f.sub})
		check(t, "Images", err, nil)
		for _, im := range []*catalog.Image{&a, &b} {
			im.SubscriptionID, im.ListVersion, im.UpdatedAt = f.sub, "3.1", lv.AcceptedAt
		}
		same(t, "Images", got, []catalog.Image{a, b})
	})
	t.Run("Events", func(t *testing.T) {
		got, err := f.s.Events(ctx, 0, 10)
		check(t, "Events", err, nil)
		if len(got) != 3 {
			t.Fatalf("Events = %d events, want 3", len(got))
		}
		want := append([]catalog.Event(nil), evs...)
		want[0].SubscriptionID, want[1].SubscriptionID = f.sub, f.sub
		for i := range want {
			want[i].Seq = got[i].Seq
		}
		same(t, "Events", got, want)
	})

	bad := func(f func(lv *catalog.ListVersion)) catalog.ListVersion {
		lv := list("4", "z")
		f(&lv)
		return lv
	}
	for _, tc := range []struct {
		name   string
		sub    int64
		lv     catalog.ListVersion
		images []catalog.Image
		want   error
	}{
		{"MissingSubscription", f.sub + 100, list("4", "z"), nil, catalog.ErrNotFound},
		{"SHA512Mismatch", f.sub, bad(func(lv *catalog.ListVersion) { lv.SHA512 = catalog.SHA512Hex([]byte("other")) }), nil, catalog.ErrInvalid},
		{"EmptyVersion", f.sub, bad(func(lv *catalog.ListVersion) { lv.Version = "" }), nil, catalog.ErrInvalid},
		{"EmptyRaw", f.sub, bad(func(lv *catalog.ListVersion) { lv.Raw = nil }), nil, catalog.ErrInvalid},
		{"EmptyIdentifier", f.sub, bad(func(lv *catalog.ListVersion) { lv.Identifier = "" }), nil, catalog.ErrInvalid},
		{"ZeroCreated", f.sub, bad(func(lv *catalog.ListVersion) { lv.Created = time.Time{} }), nil, catalog.ErrInvalid},
		{"ZeroExpires", f.sub, bad(func(lv *catalog.ListVersion) { lv.Expires = time.Time{} }), nil, catalog.ErrInvalid},
		{"EmptySigner", f.sub, bad(func(lv *catalog.ListVersion) { lv.Signer = "" }), nil, catalog.ErrInvalid},
		{"ImageOfOtherSubscription", f.sub, list("4", "z"), []catalog.Image{func() catalog.Image {
			im := image("img-c", "c")
			im.SubscriptionID = f.sub + 1
			return im
		}()}, catalog.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, f.s)
			check(t, "AcceptList", f.s.AcceptList(ctx, tc.sub, tc.lv, tc.images, nil), tc.want)
			same(t, "store after a failed AcceptList", snapshot(t, f.s), before)
		})
	}
}

// testMergeRule checks how AcceptList treats images it already holds.
func (o opener) testMergeRule(t *testing.T) {
	ctx := t.Context()
	cachedPath := "/var/lib/vmtrust/cache/sha512-x"
	for _, tc := range []struct {
		name      string
		stored    catalog.ImageState // state before the new list
		content   string             // image content in the new list ("x" before)
		given     catalog.ImageState
		givenPath string
		want      catalog.ImageState
		wantPath  string
	}{
		{"CachedUnchangedStaysCached", catalog.ImageCached, "x", catalog.ImageAvailable, "", catalog.ImageCached, cachedPath},
		{"DownloadingUnchangedStaysDownloading", catalog.ImageDownloading, "x", catalog.ImageAvailable, "", catalog.ImageDownloading, cachedPath},
		{"CachedChangedBecomesAvailable", catalog.ImageCached, "x2", catalog.ImageAvailable, "", catalog.ImageAvailable, ""},
		{"CachedResizedBecomesAvailable", catalog.ImageCached, "x+1", catalog.ImageAvailable, "", catalog.ImageAvailable, ""},
		{"CachedUnchangedGivenExpired", catalog.ImageCached, "x", catalog.ImageExpired, cachedPath, catalog.ImageExpired, cachedPath},
		{"RefusedGivenAvailable", catalog.ImageRefused, "x", catalog.ImageAvailable, "", catalog.ImageAvailable, ""},
		{"RefusedStaysRefused", catalog.ImageRefused, "x", catalog.ImageRefused, "", catalog.ImageRefused, ""},
		{"RevokedReturnsAvailable", catalog.ImageRevoked, "x", catalog.ImageAvailable, "", catalog.ImageAvailable, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := o.fixture(t)
			f.accept(t, list("1", "a"), image("img", "x"))
			if tc.stored != catalog.ImageAvailable {
				c := catalog.StateChange{SubscriptionID: f.sub, ImageID: "img", State: tc.stored, At: t1,
					SHA512: catalog.SHA512Hex([]byte("x"))}
				if tc.stored == catalog.ImageCached || tc.stored == catalog.ImageDownloading {
					c.Path = cachedPath
				}
				check(t, "SetImageState", f.s.SetImageState(ctx, c), nil)
			}
			im := image("img", tc.content)
			if content, ok := strings.CutSuffix(tc.content, "+1"); ok { // same digest, other size
				im = image("img", content)
				im.Size++
			}
			im.State, im.Path = tc.given, tc.givenPath
			im.Title = "renamed"
			f.accept(t, list("2", "b"), im)
			got, err := f.s.Image(ctx, f.sub, "img")
			check(t, "Image", err, nil)
			if got.State != tc.want || got.Path != tc.wantPath {
				t.Errorf("Image after the new list: State, Path = %s, %q, want %s, %q", got.State, got.Path, tc.want, tc.wantPath)
			}
			if got.Title != "renamed" || got.ListVersion != "2" || got.SHA512 != im.SHA512 {
				t.Errorf("Image after the new list = %+v, want the new metadata", got)
			}
		})
	}

	t.Run("MissingImagesAreRevoked", func(t *testing.T) {
		f := o.fixture(t)
		f.accept(t, list("1", "a"), image("keep", "k"), image("drop", "d"), image("gone", "g"))
		check(t, "SetImageState", f.s.SetImageState(ctx, catalog.StateChange{SubscriptionID: f.sub, ImageID: "drop",
			State: catalog.ImageCached, Path: "/cache/d", SHA512: catalog.SHA512Hex([]byte("d")), At: t1}), nil)
		lv := list("2", "b")
		lv.AcceptedAt = t3
		f.accept(t, lv, image("keep", "k"))
		for _, tc := range []struct {
			id       string
			want     catalog.ImageState
			wantPath string
			wantLV   string
		}{
			{"keep", catalog.ImageAvailable, "", "2"},
			{"drop", catalog.ImageRevoked, "/cache/d", "1"}, // the cache retires the file
			{"gone", catalog.ImageRevoked, "", "1"},
		} {
			got, err := f.s.Image(ctx, f.sub, tc.id)
			check(t, "Image("+tc.id+")", err, nil)
			if got.State != tc.want || got.Path != tc.wantPath || got.ListVersion != tc.wantLV || !got.UpdatedAt.Equal(t3) {
				t.Errorf("Image(%s) = %s, %q, list %q, updated %v; want %s, %q, list %q, updated %v",
					tc.id, got.State, got.Path, got.ListVersion, got.UpdatedAt, tc.want, tc.wantPath, tc.wantLV, t3)
			}
		}
		// Revoked stays revoked (UpdatedAt unchanged) across later lists.
		f.accept(t, list("3", "c"), image("keep", "k"))
		got, err := f.s.Image(ctx, f.sub, "gone")
		check(t, "Image(gone)", err, nil)
		if !got.UpdatedAt.Equal(t3) {
			t.Errorf("Image(gone).UpdatedAt = %v after another list, want %v (unchanged)", got.UpdatedAt, t3)
		}
	})
}

func (o opener) testAtomicity(t *testing.T) {
	f := o.fixture(t)
	ctx := t.Context()
	f.accept(t, list("1", "a"), image("img-1", "1"), image("img-2", "2"))
	check(t, "SetImageState", f.s.SetImageState(ctx, catalog.StateChange{SubscriptionID: f.sub, ImageID: "img-1",
		State: catalog.ImageCached, Path: "/cache/1", SHA512: catalog.SHA512Hex([]byte("1"))}), nil)
	check(t, "AddHook", f.s.AddHook(ctx, catalog.Hook{Name: "openstack", Added: t0}), nil)
	_, err := f.s.AppendEvents(ctx, event(catalog.EventListAccepted))
	check(t, "AppendEvents", err, nil)

	badImage := image("img-3", "3")
	badImage.SHA512 = "ABCDEF"
	ok := event(catalog.EventSubscriptionImageNew, "DC_IDENTIFIER", "img-3")
	for _, tc := range []struct {
		name   string
		images []catalog.Image
		events []catalog.Event
		want   error
	}{
		{"DuplicateImageIDs", []catalog.Image{image("img-3", "3"), image("img-1", "1b"), image("img-3", "3")}, []catalog.Event{ok}, catalog.ErrInvalid},
		{"InvalidImageAfterValidOnes", []catalog.Image{image("img-1", "1c"), image("img-4", "4"), badImage}, []catalog.Event{ok}, catalog.ErrInvalid},
		{"InvalidStateAfterValidOnes", []catalog.Image{image("img-4", "4"), func() catalog.Image {
			im := image("img-5", "5")
			im.State = "deleted"
			return im
		}()}, nil, catalog.ErrInvalid},
		{"InvalidEventAfterImages", []catalog.Image{image("img-1", "1d"), image("img-4", "4")},
			[]catalog.Event{ok, {Type: "ImageDeleted"}}, catalog.ErrInvalid},
		{"InvalidFieldNameInLastEvent", []catalog.Image{image("img-4", "4")},
			[]catalog.Event{ok, event(catalog.EventProcessPostfix, "lower_case", "x")}, catalog.ErrInvalid},
	} {
		t.Run("AcceptList"+tc.name, func(t *testing.T) {
			before := snapshot(t, f.s)
			err := f.s.AcceptList(ctx, f.sub, list("2", "b"), tc.images, tc.events)
			check(t, "AcceptList", err, tc.want)
			same(t, "store after a failed AcceptList", snapshot(t, f.s), before)
		})
	}
	t.Run("SetImageStateInvalidEvent", func(t *testing.T) {
		before := snapshot(t, f.s)
		err := f.s.SetImageState(ctx, catalog.StateChange{SubscriptionID: f.sub, ImageID: "img-2", State: catalog.ImageExpired},
			event(catalog.EventExpirePrefix), catalog.Event{Type: "Bogus"})
		check(t, "SetImageState", err, catalog.ErrInvalid)
		same(t, "store after a failed SetImageState", snapshot(t, f.s), before)
	})
	t.Run("AppendEventsInvalidLast", func(t *testing.T) {
		before := snapshot(t, f.s)
		_, err := f.s.AppendEvents(ctx, event(catalog.EventProcessPrefix), event(catalog.EventProcessPostfix, "X", "a\x00b"))
		check(t, "AppendEvents", err, catalog.ErrInvalid)
		same(t, "store after a failed AppendEvents", snapshot(t, f.s), before)
	})
	t.Run("AfterFailuresTheListIsAccepted", func(t *testing.T) {
		err := f.s.AcceptList(ctx, f.sub, list("2", "b"), []catalog.Image{image("img-1", "1"), image("img-4", "4")}, []catalog.Event{ok})
		check(t, "AcceptList", err, nil)
	})
}

func (o opener) testImages(t *testing.T) {
	ctx := t.Context()
	f := o.fixture(t)
	sub2, err := f.s.AddSubscription(ctx, subscription("https://lists.example.org/second.list", "desy"))
	check(t, "AddSubscription", err, nil)
	f.accept(t, list("1", "a"), image("b", "b"), image("a", "a"), image("c", "c"))
	check(t, "AcceptList(second)", f.s.AcceptList(ctx, sub2, list("1", "a"), []catalog.Image{image("a", "a2")}, nil), nil)
	check(t, "SetImageState", f.s.SetImageState(ctx, catalog.StateChange{SubscriptionID: f.sub, ImageID: "c",
		State: catalog.ImageCached, Path: "/cache/c", SHA512: catalog.SHA512Hex([]byte("c"))}), nil)
	check(t, "SetImageState", f.s.SetImageState(ctx, catalog.StateChange{SubscriptionID: f.sub, ImageID: "b",
		State: catalog.ImageRefused}), nil)

	type key struct {
		Sub int64
		ID  string
	}
	for _, tc := range []struct {
		name   string
		filter catalog.ImageFilter
		want   []key
	}{
		{"All", catalog.ImageFilter{}, []key{{f.sub, "a"}, {f.sub, "b"}, {f.sub, "c"}, {sub2, "a"}}},
		{"BySubscription", catalog.ImageFilter{SubscriptionID: sub2}, []key{{sub2, "a"}}},
		{"ByID", catalog.ImageFilter{ID: "a"}, []key{{f.sub, "a"}, {sub2, "a"}}},
		{"ByState", catalog.ImageFilter{States: []catalog.ImageState{catalog.ImageCached}}, []key{{f.sub, "c"}}},
		{"ByStates", catalog.ImageFilter{States: []catalog.ImageState{catalog.ImageRefused, catalog.ImageAvailable}},
			[]key{{f.sub, "a"}, {f.sub, "b"}, {sub2, "a"}}},
		{"Combined", catalog.ImageFilter{SubscriptionID: f.sub, ID: "a", States: []catalog.ImageState{catalog.ImageAvailable}}, []key{{f.sub, "a"}}},
		{"NoMatch", catalog.ImageFilter{SubscriptionID: f.sub, States: []catalog.ImageState{catalog.ImageRevoked}}, nil},
		{"UnknownSubscription", catalog.ImageFilter{SubscriptionID: sub2 + 100}, nil},
	} {
		t.Run("Filter"+tc.name, func(t *testing.T) {
			got, err := f.s.Images(ctx, tc.filter)
			check(t, "Images", err, nil)
			var keys []key
			for _, im := range got {
				keys = append(keys, key{im.SubscriptionID, im.ID})
			}
			same(t, "Images", keys, tc.want)
		})
	}
	t.Run("Get", func(t *testing.T) {
		got, err := f.s.Image(ctx, sub2, "a")
		check(t, "Image", err, nil)
		want := image("a", "a2")
		want.SubscriptionID, want.ListVersion, want.UpdatedAt = sub2, "1", t1
		same(t, "Image", got, want)
	})
	t.Run("GetMissing", func(t *testing.T) {
		_, err := f.s.Image(ctx, sub2, "b")
		check(t, "Image(missing)", err, catalog.ErrNotFound)
		_, err = f.s.Image(ctx, sub2+100, "a")
		check(t, "Image(missing subscription)", err, catalog.ErrNotFound)
	})
}

func (o opener) testSetImageState(t *testing.T) {
	ctx := t.Context()
	f := o.fixture(t)
	f.accept(t, list("1", "a"), image("img", "x"), image("other", "y"))
	sum := catalog.SHA512Hex([]byte("x"))

	t.Run("DownloadThenCache", func(t *testing.T) {
		check(t, "SetImageState(downloading)", f.s.SetImageState(ctx, catalog.StateChange{SubscriptionID: f.sub, ImageID: "img",
			State: catalog.ImageDownloading, SHA512: sum, From: []catalog.ImageState{catalog.ImageAvailable}, At: t2},
			event(catalog.EventAvailablePrefix)), nil)
		check(t, "SetImageState(cached)", f.s.SetImageState(ctx, catalog.StateChange{SubscriptionID: f.sub, ImageID: "img",
			State: catalog.ImageCached, Path: "/cache/x", SHA512: sum, From: []catalog.ImageState{catalog.ImageDownloading}, At: t3},
			event(catalog.EventAvailablePostfix, "FILENAME", "/cache/x")), nil)
		got, err := f.s.Image(ctx, f.sub, "img")
		check(t, "Image", err, nil)
		if got.State != catalog.ImageCached || got.Path != "/cache/x" || !got.UpdatedAt.Equal(t3) {
			t.Errorf("Image = %s, %q, %v; want cached, /cache/x, %v", got.State, got.Path, got.UpdatedAt, t3)
		}
		evs, err := f.s.Events(ctx, 0, 10)
		check(t, "Events", err, nil)
		if len(evs) != 2 {
			t.Fatalf("Events = %d, want 2", len(evs))
		}
		for i, want := range []catalog.EventType{catalog.EventAvailablePrefix, catalog.EventAvailablePostfix} {
			if evs[i].Type != want || evs[i].SubscriptionID != f.sub || evs[i].ImageID != "img" {
				t.Errorf("Events[%d] = %+v, want %s for the image", i, evs[i], want)
			}
		}
	})

	for _, tc := range []struct {
		name string
		c    catalog.StateChange
		want error
	}{
		{"MissingImage", catalog.StateChange{SubscriptionID: f.sub, ImageID: "nope", State: catalog.ImageExpired}, catalog.ErrNotFound},
		{"MissingSubscription", catalog.StateChange{SubscriptionID: f.sub + 100, ImageID: "img", State: catalog.ImageExpired}, catalog.ErrNotFound},
		{"ContentChanged", catalog.StateChange{SubscriptionID: f.sub, ImageID: "other", State: catalog.ImageCached, Path: "/c",
			SHA512: sum}, catalog.ErrConflict},
		{"NotInFromStates", catalog.StateChange{SubscriptionID: f.sub, ImageID: "other", State: catalog.ImageDownloading,
			From: []catalog.ImageState{catalog.ImageRefused, catalog.ImageExpired}}, catalog.ErrConflict},
		{"CachedWithoutPath", catalog.StateChange{SubscriptionID: f.sub, ImageID: "img", State: catalog.ImageCached, SHA512: sum}, catalog.ErrInvalid},
		{"CachedWithoutDigest", catalog.StateChange{SubscriptionID: f.sub, ImageID: "img", State: catalog.ImageCached, Path: "/c"}, catalog.ErrInvalid},
		{"BadDigest", catalog.StateChange{SubscriptionID: f.sub, ImageID: "img", State: catalog.ImageExpired, SHA512: "xyz"}, catalog.ErrInvalid},
		{"UnknownState", catalog.StateChange{SubscriptionID: f.sub, ImageID: "img", State: "gone"}, catalog.ErrInvalid},
		{"UnknownFromState", catalog.StateChange{SubscriptionID: f.sub, ImageID: "img", State: catalog.ImageExpired,
			From: []catalog.ImageState{"gone"}}, catalog.ErrInvalid},
		{"EmptyImageID", catalog.StateChange{SubscriptionID: f.sub, State: catalog.ImageExpired}, catalog.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, f.s)
			check(t, "SetImageState", f.s.SetImageState(ctx, tc.c, event(catalog.EventExpirePrefix)), tc.want)
			same(t, "store after a failed SetImageState", snapshot(t, f.s), before)
		})
	}

	// A download that finishes after a newer list revoked the image must
	// not make it cached.
	t.Run("RevokedDuringDownload", func(t *testing.T) {
		check(t, "SetImageState(downloading)", f.s.SetImageState(ctx, catalog.StateChange{SubscriptionID: f.sub, ImageID: "other",
			State: catalog.ImageDownloading, Path: "/partial/y"}), nil)
		f.accept(t, list("2", "b"), image("img", "x"))
		err := f.s.SetImageState(ctx, catalog.StateChange{SubscriptionID: f.sub, ImageID: "other", State: catalog.ImageCached,
			Path: "/cache/y", SHA512: catalog.SHA512Hex([]byte("y")), From: []catalog.ImageState{catalog.ImageDownloading}})
		check(t, "SetImageState(cached) after revocation", err, catalog.ErrConflict)
	})
	// A download of content that a newer list replaced must not be cached.
	t.Run("ReplacedDuringDownload", func(t *testing.T) {
		f.accept(t, list("3", "c"), image("img", "x2"))
		err := f.s.SetImageState(ctx, catalog.StateChange{SubscriptionID: f.sub, ImageID: "img", State: catalog.ImageCached,
			Path: "/cache/x", SHA512: sum})
		check(t, "SetImageState(cached) with the old digest", err, catalog.ErrConflict)
	})
}

// canceled is a context that is already done.
func canceled(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	return ctx
}
