package catalogtest

import (
	"testing"
	"time"

	"github.com/vmtrust/vmtrust/internal/catalog"
	"github.com/vmtrust/vmtrust/internal/fileid"
)

func (o opener) testSiteEndorser(t *testing.T) {
	s := o.store(t)
	ctx := t.Context()
	site := endorser("site")
	site.Site = true
	check(t, "AddEndorser(site)", s.AddEndorser(ctx, site), nil)
	check(t, "AddEndorser(other)", s.AddEndorser(ctx, endorser("other")), nil)
	got, err := s.Endorser(ctx, "site")
	check(t, "Endorser(site)", err, nil)
	same(t, "Endorser(site)", got, site)
	got, err = s.Endorser(ctx, "other")
	check(t, "Endorser(other)", err, nil)
	if got.Site {
		t.Error("an endorser added without Site is the site's")
	}
}

var fid = fileid.ID{Dev: 2049, Ino: 131073, Size: 1001, Mtime: 1700000000123456789, Ctime: 1700000000987654321}

func (o opener) testFileIdentity(t *testing.T) {
	ctx := t.Context()
	f := o.fixture(t)
	f.accept(t, list("1", "a"), image("img", "x"), image("other", "y"))
	sum := catalog.SHA512Hex([]byte("x"))
	get := func(t *testing.T) catalog.Image {
		t.Helper()
		im, err := f.s.Image(ctx, f.sub, "img")
		check(t, "Image", err, nil)
		return im
	}
	check(t, "SetImageState(cached)", f.s.SetImageState(ctx, catalog.StateChange{SubscriptionID: f.sub, ImageID: "img",
		State: catalog.ImageCached, Path: "/cache/x", SHA512: sum, File: fid, At: t2}), nil)
	if im := get(t); im.File != fid || !im.VerifiedAt.Equal(t2) {
		t.Fatalf("after caching: File %v VerifiedAt %v, want %v %v", im.File, im.VerifiedAt, fid, t2)
	}

	t.Run("RecordVerified", func(t *testing.T) {
		next := fid
		next.Ctime++
		check(t, "RecordVerified", f.s.RecordVerified(ctx, f.sub, "img", sum, "/cache/x", next, t3), nil)
		if im := get(t); im.File != next || !im.VerifiedAt.Equal(t3) {
			t.Fatalf("File %v VerifiedAt %v, want %v %v", im.File, im.VerifiedAt, next, t3)
		}
		check(t, "RecordVerified(same)", f.s.RecordVerified(ctx, f.sub, "img", sum, "/cache/x", next, t3), nil)
		check(t, "SetImageState(cached)", f.s.SetImageState(ctx, catalog.StateChange{SubscriptionID: f.sub, ImageID: "img",
			State: catalog.ImageCached, Path: "/cache/x", SHA512: sum, File: fid, At: t2}), nil)
	})
	for _, tc := range []struct {
		name       string
		id, sum, p string
		file       fileid.ID
		want       error
	}{
		{"OtherPath", "img", sum, "/cache/y", fid, catalog.ErrConflict},
		{"OtherDigest", "img", catalog.SHA512Hex([]byte("z")), "/cache/x", fid, catalog.ErrConflict},
		{"NotCached", "other", catalog.SHA512Hex([]byte("y")), "/cache/x", fid, catalog.ErrConflict},
		{"MissingImage", "nope", sum, "/cache/x", fid, catalog.ErrConflict},
		{"ZeroIdentity", "img", sum, "/cache/x", fileid.ID{}, catalog.ErrInvalid},
		{"BadDigest", "img", "xyz", "/cache/x", fid, catalog.ErrInvalid},
		{"NoPath", "img", sum, "", fid, catalog.ErrInvalid},
	} {
		t.Run("Refused"+tc.name, func(t *testing.T) {
			before := snapshot(t, f.s)
			check(t, "RecordVerified", f.s.RecordVerified(ctx, f.sub, tc.id, tc.sum, tc.p, tc.file, t3), tc.want)
			same(t, "store after a refused RecordVerified", snapshot(t, f.s), before)
		})
	}
	t.Run("KeptByAnUnchangedList", func(t *testing.T) {
		f.accept(t, list("2", "b"), image("img", "x"), image("other", "y"))
		if im := get(t); im.File != fid || im.State != catalog.ImageCached {
			t.Fatalf("an unchanged cached image lost its identity: %+v", im)
		}
	})
	t.Run("ClearedOnStateChange", func(t *testing.T) {
		check(t, "SetImageState(expired)", f.s.SetImageState(ctx, catalog.StateChange{SubscriptionID: f.sub, ImageID: "img",
			State: catalog.ImageExpired, Path: "/expired/x", File: fid}), nil)
		if im := get(t); im.File.Valid() || !im.VerifiedAt.IsZero() {
			t.Fatalf("an expired image keeps a verified identity: %+v", im)
		}
		check(t, "SetImageState(cached)", f.s.SetImageState(ctx, catalog.StateChange{SubscriptionID: f.sub, ImageID: "img",
			State: catalog.ImageCached, Path: "/cache/x", SHA512: sum, File: fid, At: t2}), nil)
	})
	t.Run("ClearedOnContentChange", func(t *testing.T) {
		f.accept(t, list("3", "c"), image("img", "new content"), image("other", "y"))
		if im := get(t); im.File.Valid() || im.State != catalog.ImageAvailable {
			t.Fatalf("an image whose content changed keeps its identity: %+v", im)
		}
	})
	t.Run("ClearedOnRevoke", func(t *testing.T) {
		newSum := catalog.SHA512Hex([]byte("new content"))
		check(t, "SetImageState(cached)", f.s.SetImageState(ctx, catalog.StateChange{SubscriptionID: f.sub, ImageID: "img",
			State: catalog.ImageCached, Path: "/cache/n", SHA512: newSum, File: fid, At: t2}), nil)
		f.accept(t, list("4", "d"), image("other", "y"))
		if im := get(t); im.File.Valid() || im.State != catalog.ImageRevoked {
			t.Fatalf("a revoked image keeps its identity: %+v", im)
		}
	})
}

func userImage(content string) catalog.UserImage {
	return catalog.UserImage{
		SHA512: catalog.SHA512Hex([]byte(content)), Size: int64(len(content)), Format: "qcow2",
		Path: "/state/user/" + content, Name: "my image.qcow2", Owner: "alice", RegisteredBy: "root (uid 0)",
		RegisteredAt: t1, File: fid,
		Inspection: catalog.Inspection{At: t0, BlockOn: "high", Findings: map[string]int{"low": 2, "medium": 1},
			MaxSeverity: "medium", OS: "Debian GNU/Linux 12 (bookworm)", Packages: 132, VulnsNotChecked: true},
	}
}

func (o opener) testUserImages(t *testing.T) {
	ctx := t.Context()
	s := o.store(t)
	a, b := userImage("a"), userImage("b")
	b.RegisteredAt = t0
	check(t, "AddUserImage(a)", s.AddUserImage(ctx, a), nil)
	check(t, "AddUserImage(b)", s.AddUserImage(ctx, b), nil)
	a.VerifiedAt = a.RegisteredAt // an identity given without a time is verified at registration
	b.VerifiedAt = b.RegisteredAt

	t.Run("Get", func(t *testing.T) {
		got, err := s.UserImage(ctx, a.SHA512)
		check(t, "UserImage", err, nil)
		same(t, "UserImage", got, a)
	})
	t.Run("ListByRegistration", func(t *testing.T) {
		got, err := s.UserImages(ctx)
		check(t, "UserImages", err, nil)
		same(t, "UserImages", got, []catalog.UserImage{b, a})
	})
	t.Run("RecordUserVerified", func(t *testing.T) {
		next := fid
		next.Mtime++
		check(t, "RecordUserVerified", s.RecordUserVerified(ctx, a.SHA512, a.Path, next, t3), nil)
		got, err := s.UserImage(ctx, a.SHA512)
		check(t, "UserImage", err, nil)
		if got.File != next || !got.VerifiedAt.Equal(t3) {
			t.Fatalf("File %v VerifiedAt %v", got.File, got.VerifiedAt)
		}
		a = got
	})
	bad := func(f func(*catalog.UserImage)) catalog.UserImage {
		u := userImage("c")
		f(&u)
		return u
	}
	for _, tc := range []struct {
		name string
		u    catalog.UserImage
		want error
	}{
		{"Duplicate", userImage("a"), catalog.ErrExists},
		{"BadDigest", bad(func(u *catalog.UserImage) { u.SHA512 = "ABC" }), catalog.ErrInvalid},
		{"NegativeSize", bad(func(u *catalog.UserImage) { u.Size = -1 }), catalog.ErrInvalid},
		{"UnknownFormat", bad(func(u *catalog.UserImage) { u.Format = "iso" }), catalog.ErrInvalid},
		{"RelativePath", bad(func(u *catalog.UserImage) { u.Path = "user/c" }), catalog.ErrInvalid},
		{"BadOwner", bad(func(u *catalog.UserImage) { u.Owner = "alice; rm -rf /" }), catalog.ErrInvalid},
		{"NoOwner", bad(func(u *catalog.UserImage) { u.Owner = "" }), catalog.ErrInvalid},
		{"ControlInName", bad(func(u *catalog.UserImage) { u.Name = "a\nb" }), catalog.ErrInvalid},
		{"NoInspection", bad(func(u *catalog.UserImage) { u.Inspection.At = time.Time{} }), catalog.ErrInvalid},
	} {
		t.Run("Refused"+tc.name, func(t *testing.T) {
			before := snapshot(t, s)
			check(t, "AddUserImage", s.AddUserImage(ctx, tc.u), tc.want)
			same(t, "store after a refused AddUserImage", snapshot(t, s), before)
		})
	}
	t.Run("RefusedVerifications", func(t *testing.T) {
		before := snapshot(t, s)
		check(t, "RecordUserVerified(other path)", s.RecordUserVerified(ctx, a.SHA512, "/elsewhere", fid, t3), catalog.ErrConflict)
		check(t, "RecordUserVerified(unknown)", s.RecordUserVerified(ctx, userImage("z").SHA512, "/state/user/z", fid, t3), catalog.ErrConflict)
		check(t, "RecordUserVerified(zero)", s.RecordUserVerified(ctx, a.SHA512, a.Path, fileid.ID{}, t3), catalog.ErrInvalid)
		same(t, "store after refused verifications", snapshot(t, s), before)
	})
	t.Run("Remove", func(t *testing.T) {
		check(t, "RemoveUserImage", s.RemoveUserImage(ctx, b.SHA512), nil)
		check(t, "RemoveUserImage(again)", s.RemoveUserImage(ctx, b.SHA512), catalog.ErrNotFound)
		_, err := s.UserImage(ctx, b.SHA512)
		check(t, "UserImage(removed)", err, catalog.ErrNotFound)
		got, err := s.UserImages(ctx)
		check(t, "UserImages", err, nil)
		same(t, "UserImages", got, []catalog.UserImage{a})
	})
}
