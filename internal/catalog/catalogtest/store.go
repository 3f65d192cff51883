package catalogtest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/vmtrust/vmtrust/internal/catalog"
)

// testConcurrentWriters accepts lists for two subscriptions from two
// goroutines while a third reads.
func (o opener) testConcurrentWriters(t *testing.T) {
	const versions = 15
	s := o.store(t)
	ctx := t.Context()
	check(t, "AddEndorser", s.AddEndorser(ctx, endorser("desy")), nil)
	var subs [2]int64
	for i := range subs {
		var err error
		subs[i], err = s.AddSubscription(ctx, subscription(fmt.Sprintf("https://lists.example.org/%d.list", i), "desy"))
		check(t, "AddSubscription", err, nil)
	}

	errs := make(chan error, 3)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w, sub := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- writer(ctx, s, w, sub, versions)
		}()
	}
	var rg sync.WaitGroup
	rg.Add(1)
	go func() {
		defer rg.Done()
		for {
			select {
			case <-stop:
				errs <- nil
				return
			default:
			}
			if _, err := s.Images(ctx, catalog.ImageFilter{}); err != nil {
				errs <- fmt.Errorf("reader: Images: %w", err)
				return
			}
			if _, err := s.Events(ctx, 0, catalog.MaxPage); err != nil {
				errs <- fmt.Errorf("reader: Events: %w", err)
				return
			}
		}
	}()
	wg.Wait()
	close(stop)
	rg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}

	for w, sub := range subs {
		got, err := s.Subscription(ctx, sub)
		check(t, "Subscription", err, nil)
		if want := strconv.Itoa(versions); got.Version != want {
			t.Errorf("subscription %d: Version = %q, want %q", w, got.Version, want)
		}
		lvs, err := s.ListVersions(ctx, sub)
		check(t, "ListVersions", err, nil)
		if len(lvs) != versions {
			t.Errorf("subscription %d: %d list versions, want %d", w, len(lvs), versions)
		}
		for i, lv := range lvs {
			if lv.Version != strconv.Itoa(i+1) {
				t.Errorf("subscription %d: ListVersions[%d] = %q, want %d (acceptance order)", w, i, lv.Version, i+1)
			}
		}
	}
	evs, err := s.Events(ctx, 0, catalog.MaxPage)
	check(t, "Events", err, nil)
	if want := 2 * 3 * versions; len(evs) != want {
		t.Fatalf("Events = %d, want %d", len(evs), want)
	}
	// Seqs strictly increase, and each writer's events appear in the order
	// it appended them.
	next := map[int64]int{}
	for i, ev := range evs {
		if i > 0 && ev.Seq <= evs[i-1].Seq {
			t.Fatalf("Events[%d].Seq = %d after %d, want strictly increasing", i, ev.Seq, evs[i-1].Seq)
		}
		n := next[ev.SubscriptionID]
		if want := strconv.Itoa(n); ev.Fields["N"] != want {
			t.Fatalf("event %d of subscription %d has N=%s, want %s", ev.Seq, ev.SubscriptionID, ev.Fields["N"], want)
		}
		next[ev.SubscriptionID] = n + 1
	}
}

// writer accepts versions 1..n for sub, caching an image after each, and
// numbers its events N=0, 1, 2, ...
func writer(ctx context.Context, s catalog.Store, w int, sub int64, n int) error {
	seq := 0
	ev := func(typ catalog.EventType) catalog.Event {
		e := event(typ, "N", strconv.Itoa(seq))
		e.SubscriptionID = sub
		seq++
		return e
	}
	for v := 1; v <= n; v++ {
		version := strconv.Itoa(v)
		content := fmt.Sprintf("w%d-v%d", w, v)
		ims := []catalog.Image{image("fixed", "fixed"), image("img-"+version, content), image("img-next", content)}
		if err := s.AcceptList(ctx, sub, list(version, content), ims, []catalog.Event{ev(catalog.EventListAccepted)}); err != nil {
			return fmt.Errorf("writer %d: AcceptList(%s): %w", w, version, err)
		}
		c := catalog.StateChange{SubscriptionID: sub, ImageID: "img-" + version, State: catalog.ImageCached,
			Path: "/cache/" + content, SHA512: catalog.SHA512Hex([]byte(content)), From: []catalog.ImageState{catalog.ImageAvailable}}
		if err := s.SetImageState(ctx, c, ev(catalog.EventAvailablePostfix)); err != nil {
			return fmt.Errorf("writer %d: SetImageState(%s): %w", w, version, err)
		}
		if _, err := s.AppendEvents(ctx, ev(catalog.EventProcessPostfix)); err != nil {
			return fmt.Errorf("writer %d: AppendEvents: %w", w, err)
		}
	}
	return nil
}

func (o opener) testCanceledContext(t *testing.T) {
	f := o.fixture(t)
	f.accept(t, list("1", "a"), image("img", "x"))
	check(t, "AddHook", f.s.AddHook(t.Context(), catalog.Hook{Name: "h"}), nil)
	seqs, err := f.s.AppendEvents(t.Context(), event(catalog.EventProcessPrefix))
	check(t, "AppendEvents", err, nil)
	before := snapshot(t, f.s)
	ctx := canceled(t)
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"AddEndorser", func() error { return f.s.AddEndorser(ctx, endorser("cern")) }},
		{"AddSubscription", func() error {
			_, err := f.s.AddSubscription(ctx, subscription("https://x.example.org/l", "desy"))
			return err
		}},
		{"RecordAttempt", func() error { return f.s.RecordAttempt(ctx, f.sub, t3, nil) }},
		{"AcceptList", func() error {
			return f.s.AcceptList(ctx, f.sub, list("2", "b"), []catalog.Image{image("img", "y")}, []catalog.Event{event(catalog.EventListAccepted)})
		}},
		{"SetImageState", func() error {
			return f.s.SetImageState(ctx, catalog.StateChange{SubscriptionID: f.sub, ImageID: "img", State: catalog.ImageExpired})
		}},
		{"AppendEvents", func() error { _, err := f.s.AppendEvents(ctx, event(catalog.EventProcessPrefix)); return err }},
		{"MarkDelivered", func() error { return f.s.MarkDelivered(ctx, "h", seqs[0], t3) }},
		{"Subscriptions", func() error { _, err := f.s.Subscriptions(ctx); return err }},
		{"Pending", func() error { _, err := f.s.Pending(ctx, "h", t3, 10); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, context.Canceled) {
				t.Fatalf("%s(canceled context) = %v, want an error wrapping context.Canceled", tc.name, err)
			}
		})
	}
	same(t, "store after calls with a canceled context", snapshot(t, f.s), before)
}

// testReopen closes a populated store and opens it again.
func (o opener) testReopen(t *testing.T) {
	ctx := t.Context()
	f := o.fixture(t)
	f.accept(t, list("1.9", "a"), image("img-1", "1"), image("img-2", "2"))
	lv := list("1.10", "b")
	lv.Expires = farFuture
	check(t, "AcceptList", f.s.AcceptList(ctx, f.sub, lv, []catalog.Image{image("img-1", "1"), image("img-3", "3")},
		[]catalog.Event{event(catalog.EventListAccepted, "HV_VERSION", "1.10")}), nil)
	check(t, "SetImageState", f.s.SetImageState(ctx, catalog.StateChange{SubscriptionID: f.sub, ImageID: "img-1",
		State: catalog.ImageCached, Path: "/cache/1", SHA512: catalog.SHA512Hex([]byte("1")), At: t3}), nil)
	check(t, "RecordAttempt", f.s.RecordAttempt(ctx, f.sub, t3, errors.New("last try failed")), nil)
	check(t, "AddHook", f.s.AddHook(ctx, catalog.Hook{Name: "h", Added: t0}), nil)
	seqs, err := f.s.AppendEvents(ctx, event(catalog.EventProcessPrefix), event(catalog.EventProcessPostfix))
	check(t, "AppendEvents", err, nil)
	check(t, "MarkFailed", f.s.MarkFailed(ctx, "h", seqs[0], errors.New("exit 2"), t2), nil)
	removed, err := f.s.AddSubscription(ctx, subscription("https://lists.example.org/removed.list", "desy"))
	check(t, "AddSubscription", err, nil)
	check(t, "RemoveSubscription", f.s.RemoveSubscription(ctx, removed), nil)
	before := snapshot(t, f.s)
	check(t, "Close", f.s.Close(), nil)

	s := o.store(t)
	same(t, "store after reopen", snapshot(t, s), before)

	check(t, "AcceptList(lower version after reopen)", s.AcceptList(ctx, f.sub, list("1.9", "c"), nil, nil), catalog.ErrConflict)
	check(t, "AcceptList(same version after reopen)", s.AcceptList(ctx, f.sub, list("1.10", "b"), nil, nil), nil)
	more, err := s.AppendEvents(ctx, event(catalog.EventExpirePrefix))
	check(t, "AppendEvents", err, nil)
	if more[0] <= seqs[1] {
		t.Errorf("AppendEvents after reopen = seq %d, want above %d", more[0], seqs[1])
	}
	id, err := s.AddSubscription(ctx, subscription("https://lists.example.org/new.list", "desy"))
	check(t, "AddSubscription", err, nil)
	if id <= removed {
		t.Errorf("AddSubscription after reopen = ID %d, want above the removed %d", id, removed)
	}
	ds, err := s.Pending(ctx, "h", t2, 10)
	check(t, "Pending", err, nil)
	if len(ds) != 3 || ds[0].Attempts != 1 || ds[0].LastError != "exit 2" {
		t.Errorf("Pending after reopen = %+v, want the failed head with its attempt and two more", ds)
	}
}
