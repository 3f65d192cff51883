// Package update refreshes a site's subscriptions: it fetches each image
// list, verifies it, applies the site's trust rules, records the decision in
// the catalog and brings the image cache in line — vmcatcher's update,
// without its gaps.
//
// # Trust rules, each a distinct rejection
//
// A fetched list is accepted only when endorse.Verify passes with the
// subscription's endorser as the only authorised signer and, once known,
// the subscription's dc:identifier; when the site's cap on list lifetime
// (a list valid until 2499 counts as valid for at most the cap from its
// creation) has not passed; and when its hv:version is newer than the
// accepted one (a lower version is a rollback; an equal version is
// accepted only byte for byte identical, where vmcatcher takes any
// content). The catalog re-checks the version rule in its transaction.
//
// # Guarantees
//
// The decision and its events are recorded in the catalog before any file
// moves; hooks read them later from the durable log. An image enters the
// cache only through cache.Writer.Commit (size and sha512 checked while the
// bytes arrive) and is recorded cached only if the catalog still holds the
// same digest. Images that leave the list, pass their own or the list's
// (capped) expiry, or whose endorser's certificate is revoked are moved to
// expired/ — even when the list itself can no longer be fetched or
// verified, the case vmcatcher misses. A download interrupted by a crash is
// resumed by the next run; every step is idempotent.
package update

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/vmtrust/vmtrust/imagelist"
	"github.com/vmtrust/vmtrust/imagelist/smime"
	"github.com/vmtrust/vmtrust/internal/cache"
	"github.com/vmtrust/vmtrust/internal/catalog"
	"github.com/vmtrust/vmtrust/internal/endorse"
	"github.com/vmtrust/vmtrust/internal/fetch"
	"github.com/vmtrust/vmtrust/internal/igtf"
)

// Fetcher retrieves lists and images; internal/fetch.Client is one.
type Fetcher interface {
	Get(ctx context.Context, rawURL string, max int64) ([]byte, error)
	Download(ctx context.Context, rawURL string, w io.Writer, offset, max int64) (int64, error)
}

// Progress reports downloads, for a progress bar on a terminal.
type Progress interface {
	// Start returns a writer that receives a copy of the image's bytes
	// from offset on; total is the endorsed size.
	Start(id, title string, offset, total int64) io.Writer
	Done(id string, err error)
}

// Options tune an Updater. Zero values take the defaults of internal/config.
type Options struct {
	Trust           *igtf.Dir
	CRL             igtf.CRLMode
	MaxListLifetime time.Duration
	MaxListSize     int64
	Downloads       int // concurrent downloads
	Retries         int // attempts per download after the first
	RetryBase       time.Duration
	Now             func() time.Time
	Log             *slog.Logger
	Progress        Progress
	// Fetcher returns the fetcher for a subscription (its CA bundle).
	Fetcher func(catalog.Subscription) (Fetcher, error)
}

// Updater runs updates against one catalog and cache.
type Updater struct {
	store catalog.Store
	cache *cache.Cache
	o     Options
	mu    sync.Mutex // serialises updates of the same process
}

// New makes an Updater.
func New(store catalog.Store, c *cache.Cache, o Options) (*Updater, error) {
	if o.Trust == nil || o.Fetcher == nil {
		return nil, errors.New("update: a trust directory and a fetcher are required")
	}
	if o.CRL == "" {
		o.CRL = igtf.CRLRequire
	}
	if o.MaxListLifetime <= 0 {
		o.MaxListLifetime = 90 * 24 * time.Hour
	}
	if o.MaxListSize <= 0 {
		o.MaxListSize = imagelist.MaxListSize
	}
	if o.Downloads <= 0 {
		o.Downloads = 2
	}
	if o.RetryBase <= 0 {
		o.RetryBase = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Updater{store: store, cache: c, o: o}, nil
}

// Outcome of one subscription's update.
type Outcome string

const (
	Accepted  Outcome = "accepted"  // a new list version was accepted
	Unchanged Outcome = "unchanged" // the same list again
	Rejected  Outcome = "rejected"  // the list failed a check; nothing of it was used
	Failed    Outcome = "failed"    // the list could not be fetched
)

// SubResult reports one subscription.
type SubResult struct {
	ID         int64   `json:"id"`
	URL        string  `json:"url"`
	Outcome    Outcome `json:"outcome"`
	Reason     string  `json:"reason,omitempty"` // why it was rejected
	Error      string  `json:"error,omitempty"`
	Version    string  `json:"version,omitempty"`
	Cached     int     `json:"cached"`  // images downloaded and verified in this run
	Expired    int     `json:"expired"` // images moved to expired/ in this run
	DownErrors int     `json:"download_errors"`
}

// Failures counts subscriptions that were rejected or failed, and downloads
// that failed.
func Failures(rs []SubResult) int {
	n := 0
	for _, r := range rs {
		if r.Outcome == Rejected || r.Outcome == Failed || r.DownErrors > 0 {
			n++
		}
	}
	return n
}

// Reasons a list is rejected by the site's rules, beside endorse.Reason.
const (
	ReasonRollback     = "rollback"      // hv:version lower than the accepted one
	ReasonSameVersion  = "same-version"  // hv:version equal, content different
	ReasonLifetimeCap  = "lifetime-cap"  // valid by its own dates, not by the site's cap
	ReasonFetch        = "fetch"         // could not be fetched
	ReasonCatalogCheck = "catalog-check" // the catalog refused it (version or identifier)
)

// Run updates the given subscriptions, or all when ids is empty.
func (u *Updater) Run(ctx context.Context, ids ...int64) ([]SubResult, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	var subs []catalog.Subscription
	if len(ids) == 0 {
		all, err := u.store.Subscriptions(ctx)
		if err != nil {
			return nil, err
		}
		subs = all
	} else {
		for _, id := range ids {
			s, err := u.store.Subscription(ctx, id)
			if err != nil {
				return nil, err
			}
			subs = append(subs, s)
		}
	}
	var out []SubResult
	for _, s := range subs {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		r, err := u.one(ctx, s)
		if err != nil {
			return out, fmt.Errorf("subscription %d (%s): %w", s.ID, s.URL, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// one updates one subscription. Errors returned are storage failures; list
// problems are outcomes.
func (u *Updater) one(ctx context.Context, sub catalog.Subscription) (SubResult, error) {
	now := u.o.Now().UTC()
	res := SubResult{ID: sub.ID, URL: sub.URL, Version: sub.Version}
	log := u.o.Log.With("subscription", sub.ID, "url", sub.URL)

	reject := func(outcome Outcome, reason string, err error) error {
		res.Outcome, res.Reason, res.Error = outcome, reason, err.Error()
		log.Warn("list not accepted", "outcome", outcome, "reason", reason, "error", err)
		if rerr := u.store.RecordAttempt(ctx, sub.ID, now, fmt.Errorf("%s: %w", reason, err)); rerr != nil {
			return rerr
		}
		_, rerr := u.store.AppendEvents(ctx, catalog.Event{Type: catalog.EventListRejected, SubscriptionID: sub.ID,
			Fields: map[string]string{"REASON": reason, "ERROR": truncate(err.Error(), 1024), "IL_URI": sub.URL}})
		return rerr
	}

	e, err := u.store.Endorser(ctx, sub.Endorser)
	if err != nil {
		return res, err
	}
	f, err := u.o.Fetcher(sub)
	if err != nil {
		return res, err
	}
	raw, ferr := f.Get(ctx, sub.URL, u.o.MaxListSize)
	switch {
	case ferr != nil:
		if err := reject(Failed, ReasonFetch, ferr); err != nil {
			return res, err
		}
	default:
		if err := u.decide(ctx, sub, e, raw, now, &res, reject); err != nil {
			return res, err
		}
	}
	// Whatever happened to the list: retire what is no longer endorsed,
	// then fetch what is endorsed and missing.
	expired, err := u.retire(ctx, sub.ID, now)
	res.Expired += expired
	if err != nil {
		return res, err
	}
	sub, err = u.store.Subscription(ctx, sub.ID)
	if err != nil {
		return res, err
	}
	if sub.NewImages == catalog.NewImagesSubscribe || sub.NewImages == "" {
		cached, failed, err := u.download(ctx, sub, f, now)
		res.Cached, res.DownErrors = cached, failed
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// decide verifies a fetched list and records it.
func (u *Updater) decide(ctx context.Context, sub catalog.Subscription, e catalog.Endorser, raw []byte, now time.Time,
	res *SubResult, reject func(Outcome, string, error) error) error {
	rep := endorse.Verify(raw, u.o.Trust, endorse.Options{
		At: now, CRL: u.o.CRL, Identifier: sub.Identifier,
		Endorsers: []endorse.Endorser{{DN: e.DN, CA: e.CA}},
	})
	if !rep.OK {
		if err := reject(Rejected, string(rep.Reason), errors.New(rep.Error)); err != nil {
			return err
		}
		if rep.Reason == endorse.ReasonRevoked {
			// The endorser's certificate is revoked: nothing it signed
			// stays admissible.
			return u.markAll(ctx, sub.ID, catalog.ImageRevoked)
		}
		return nil
	}
	l := rep.List
	capAt := l.Created.Add(u.o.MaxListLifetime)
	listExpires := l.Expires
	if capAt.Before(listExpires) {
		listExpires = capAt
	}
	if !now.Before(listExpires) {
		return reject(Rejected, ReasonLifetimeCap, fmt.Errorf("list created %s is older than the site's cap of %s on list lifetime",
			l.Created.Format(imagelist.TimeFormat), u.o.MaxListLifetime))
	}
	sum := sha512.Sum512(raw)
	digest := hex.EncodeToString(sum[:])
	if sub.Version != "" {
		switch c := imagelist.CompareVersions(l.Version, sub.Version); {
		case c < 0:
			return reject(Rejected, ReasonRollback, fmt.Errorf("hv:version %q is older than the accepted %q", l.Version, sub.Version))
		case c == 0 && digest != sub.ListSHA512:
			same, err := u.sameContent(ctx, sub, rep.Content)
			if err != nil {
				return err
			}
			if !same {
				return reject(Rejected, ReasonSameVersion, fmt.Errorf("hv:version %q is the accepted version, but its content differs; an endorser must raise the version", l.Version))
			}
			// The same list, signed again: nothing changes.
			res.Outcome = Unchanged
			return u.store.RecordAttempt(ctx, sub.ID, now, nil)
		case c == 0:
			res.Outcome = Unchanged
			return u.store.RecordAttempt(ctx, sub.ID, now, nil)
		}
	}

	known := map[string]catalog.Image{}
	old, err := u.store.Images(ctx, catalog.ImageFilter{SubscriptionID: sub.ID})
	if err != nil {
		return err
	}
	for _, im := range old {
		known[im.ID] = im
	}
	events := []catalog.Event{{Type: catalog.EventListAccepted, SubscriptionID: sub.ID, Fields: map[string]string{
		"IL_DC_IDENTIFIER": l.Identifier, "IL_HV_VERSION": l.Version, "IL_URI": sub.URL}}}
	images := make([]catalog.Image, 0, len(l.Images))
	for i := range l.Images {
		li := &l.Images[i]
		exp := l.ExpiresAt(li)
		if listExpires.Before(exp) {
			exp = listExpires
		}
		im := catalog.Image{
			ID: li.Identifier, Title: li.Title, Version: li.Version, Size: li.Size, SHA512: li.SHA512,
			URI: li.URI, Format: li.Format, Expires: exp, State: catalog.ImageAvailable, Attrs: attrs(l, li),
		}
		prev, seen := known[li.Identifier]
		switch {
		case !now.Before(exp):
			im.State = catalog.ImageExpired
		case !seen || prev.State == catalog.ImageRefused && sub.NewImages != catalog.NewImagesRefuse:
			if sub.NewImages == catalog.NewImagesRefuse {
				im.State = catalog.ImageRefused
			}
			events = append(events, imageEvent(catalog.EventSubscriptionImageNew, sub.ID, l, li, ""))
		case prev.State == catalog.ImageRefused:
			im.State = catalog.ImageRefused
		}
		images = append(images, im)
	}
	lv := catalog.ListVersion{Version: l.Version, Identifier: l.Identifier, Raw: raw, SHA512: digest,
		Created: l.Created, Expires: l.Expires, Signer: rep.Signer, SignerCA: rep.SignerIssuer, AcceptedAt: now}
	if err := u.store.AcceptList(ctx, sub.ID, lv, images, events); err != nil {
		if errors.Is(err, catalog.ErrConflict) {
			return reject(Rejected, ReasonCatalogCheck, err)
		}
		return err
	}
	res.Outcome, res.Version = Accepted, l.Version
	return u.store.RecordAttempt(ctx, sub.ID, now, nil)
}

// sameContent reports whether the accepted list's signed content equals
// content (a list signed again without change).
func (u *Updater) sameContent(ctx context.Context, sub catalog.Subscription, content []byte) (bool, error) {
	lv, err := u.store.ListVersion(ctx, sub.ID, sub.Version)
	if err != nil {
		return false, err
	}
	m, err := smime.Split(lv.Raw)
	if err != nil {
		return false, nil
	}
	return bytes.Equal(m.Content, content), nil
}

// markAll sets every image of a subscription that is still endorsed to
// state (revoked or expired), for retire to move the files.
func (u *Updater) markAll(ctx context.Context, subID int64, state catalog.ImageState) error {
	ims, err := u.store.Images(ctx, catalog.ImageFilter{SubscriptionID: subID,
		States: []catalog.ImageState{catalog.ImageAvailable, catalog.ImageDownloading, catalog.ImageCached, catalog.ImageRefused}})
	if err != nil {
		return err
	}
	for _, im := range ims {
		if err := u.store.SetImageState(ctx, catalog.StateChange{SubscriptionID: subID, ImageID: im.ID, State: state,
			Path: im.Path, From: []catalog.ImageState{im.State}}); err != nil && !errors.Is(err, catalog.ErrConflict) {
			return err
		}
	}
	return nil
}

// retire expires images whose effective expiry has passed and moves every
// no-longer-endorsed image's file out of cache/. It returns how many files
// it moved.
func (u *Updater) retire(ctx context.Context, subID int64, now time.Time) (int, error) {
	ims, err := u.store.Images(ctx, catalog.ImageFilter{SubscriptionID: subID})
	if err != nil {
		return 0, err
	}
	moved := 0
	for _, im := range ims {
		state := im.State
		live := state == catalog.ImageAvailable || state == catalog.ImageDownloading || state == catalog.ImageCached
		if live && !im.Expires.IsZero() && !now.Before(im.Expires) {
			state = catalog.ImageExpired
		}
		if live && state == im.State {
			continue
		}
		if state == catalog.ImageRefused {
			continue
		}
		// Not endorsed any more: nothing of it may stay in cache/ or partial/.
		path, err := u.cache.Expire(im.ID, now)
		if err != nil {
			return moved, err
		}
		if path == "" && state == im.State {
			continue // nothing to move, nothing to record
		}
		var events []catalog.Event
		if path != "" {
			moved++
			events = []catalog.Event{
				storedImageEvent(catalog.EventExpirePrefix, &im, ""),
				storedImageEvent(catalog.EventExpirePostfix, &im, path),
			}
		}
		err = u.store.SetImageState(ctx, catalog.StateChange{SubscriptionID: subID, ImageID: im.ID, State: state,
			Path: path, At: now, From: []catalog.ImageState{im.State}}, events...)
		if err != nil && !errors.Is(err, catalog.ErrConflict) {
			return moved, err
		}
	}
	return moved, nil
}

// download fetches every endorsed image that is not yet cached, a few at a
// time. It returns how many were cached and how many failed.
func (u *Updater) download(ctx context.Context, sub catalog.Subscription, f Fetcher, now time.Time) (int, int, error) {
	ims, err := u.store.Images(ctx, catalog.ImageFilter{SubscriptionID: sub.ID,
		States: []catalog.ImageState{catalog.ImageAvailable, catalog.ImageDownloading}})
	if err != nil {
		return 0, 0, err
	}
	var (
		mu             sync.Mutex
		cached, failed int
		fatal          error
		wg             sync.WaitGroup
	)
	sem := make(chan struct{}, u.o.Downloads)
	for i := range ims {
		im := ims[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			ok, err := u.fetchImage(ctx, sub, f, &im, now)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil && fatal == nil:
				fatal = err
			case ok:
				cached++
			default:
				failed++
			}
		}()
	}
	wg.Wait()
	return cached, failed, fatal
}

// fetchImage downloads one image into the cache. It reports whether the
// image is now cached; an error is a storage failure.
func (u *Updater) fetchImage(ctx context.Context, sub catalog.Subscription, f Fetcher, im *catalog.Image, now time.Time) (bool, error) {
	log := u.o.Log.With("subscription", sub.ID, "image.id", im.ID)
	if err := u.store.SetImageState(ctx, catalog.StateChange{SubscriptionID: sub.ID, ImageID: im.ID,
		State: catalog.ImageDownloading, At: now, From: []catalog.ImageState{catalog.ImageAvailable, catalog.ImageDownloading}}); err != nil {
		if errors.Is(err, catalog.ErrConflict) {
			return false, nil
		}
		return false, err
	}
	exp := cache.Expect{ID: im.ID, Size: im.Size, SHA512: im.SHA512}
	w, err := u.cache.Create(exp)
	if err != nil {
		log.Error("cannot start download", "error", err)
		return false, u.back(ctx, sub.ID, im.ID)
	}
	var sink io.Writer = w
	if u.o.Progress != nil {
		sink = io.MultiWriter(w, u.o.Progress.Start(im.ID, im.Title, w.Offset(), im.Size))
	}
	err = fetch.Backoff{Base: u.o.RetryBase}.Retry(ctx, u.o.Retries+1, func() error {
		// Decrypting and hashing run on two cores; w.Offset is read only
		// once the previous attempt's bytes are all written.
		aw := cache.NewAsyncWriter(sink, 8, 256<<10)
		_, err := f.Download(ctx, im.URI, aw, w.Offset(), im.Size)
		if cerr := aw.Close(); err == nil {
			err = cerr
		}
		return err
	})
	if err == nil {
		var path string
		path, err = w.Commit()
		if err == nil {
			events := []catalog.Event{storedImageEvent(catalog.EventAvailablePrefix, im, ""), storedImageEvent(catalog.EventAvailablePostfix, im, path)}
			serr := u.store.SetImageState(ctx, catalog.StateChange{SubscriptionID: sub.ID, ImageID: im.ID, State: catalog.ImageCached,
				Path: path, SHA512: im.SHA512, File: w.File(), At: u.o.Now().UTC(), From: []catalog.ImageState{catalog.ImageDownloading}}, events...)
			if u.o.Progress != nil {
				u.o.Progress.Done(im.ID, serr)
			}
			if errors.Is(serr, catalog.ErrConflict) {
				// The image changed or left the list meanwhile: the file is
				// not the endorsed one any more.
				_, xerr := u.cache.Expire(im.ID, u.o.Now())
				return false, xerr
			}
			return serr == nil, serr
		}
	} else {
		// Keep what arrived when the next run can resume it; a download
		// that broke a bound has already been discarded by the cache.
		_ = w.Abort(fetch.Retryable(err))
	}
	if u.o.Progress != nil {
		u.o.Progress.Done(im.ID, err)
	}
	log.Error("download failed", "error", err)
	return false, u.back(ctx, sub.ID, im.ID)
}

// back returns an image whose download failed to available, so the next run
// tries again.
func (u *Updater) back(ctx context.Context, subID int64, id string) error {
	err := u.store.SetImageState(ctx, catalog.StateChange{SubscriptionID: subID, ImageID: id, State: catalog.ImageAvailable,
		From: []catalog.ImageState{catalog.ImageDownloading}})
	if errors.Is(err, catalog.ErrConflict) {
		return nil
	}
	return err
}

// attrs keeps the list fields events need.
func attrs(l *imagelist.List, im *imagelist.Image) map[string]string {
	m := map[string]string{
		"dc:description": im.Description, "hv:hypervisor": im.Hypervisor, "sl:arch": im.Arch,
		"sl:comments": im.Comments, "sl:os": im.OS, "sl:osversion": im.OSVersion,
		"ad:mpuri": im.MPURI, "il:dc:identifier": l.Identifier, "sl:osname": im.OSName,
	}
	vo := im.VO
	if vo == "" {
		vo = l.VO
	}
	m["ad:vo"] = vo
	for k, v := range m {
		if v == "" {
			delete(m, k)
		}
	}
	return m
}

// imageEvent builds an event with vmcatcher's VMCATCHER_EVENT_* fields from
// a list entry.
func imageEvent(t catalog.EventType, subID int64, l *imagelist.List, li *imagelist.Image, file string) catalog.Event {
	im := catalog.Image{ID: li.Identifier, Title: li.Title, Version: li.Version, Size: li.Size, SHA512: li.SHA512,
		URI: li.URI, Format: li.Format, Attrs: attrs(l, li)}
	ev := storedImageEvent(t, &im, file)
	ev.SubscriptionID = subID
	return ev
}

// storedImageEvent builds an event from a catalog image.
func storedImageEvent(t catalog.EventType, im *catalog.Image, file string) catalog.Event {
	f := map[string]string{
		"DC_IDENTIFIER": im.ID, "DC_TITLE": im.Title, "HV_VERSION": im.Version, "HV_URI": im.URI,
		"HV_SIZE": strconv.FormatInt(im.Size, 10), "SL_CHECKSUM_SHA512": im.SHA512, "HV_FORMAT": im.Format,
		"DC_DESCRIPTION": im.Attrs["dc:description"], "HV_HYPERVISOR": im.Attrs["hv:hypervisor"],
		"SL_ARCH": im.Attrs["sl:arch"], "SL_COMMENTS": im.Attrs["sl:comments"], "SL_OS": im.Attrs["sl:os"],
		"SL_OSVERSION": im.Attrs["sl:osversion"], "AD_MPURI": im.Attrs["ad:mpuri"], "VO": im.Attrs["ad:vo"],
		"IL_DC_IDENTIFIER": im.Attrs["il:dc:identifier"], "FILENAME": file,
	}
	for k, v := range f {
		if v == "" {
			delete(f, k)
		}
	}
	return catalog.Event{Type: t, SubscriptionID: im.SubscriptionID, ImageID: im.ID, Fields: f}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
