package catalogtest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vmtrust/vmtrust/internal/catalog"
)

func (o opener) testEvents(t *testing.T) {
	s := o.store(t)
	ctx := t.Context()

	in := []catalog.Event{
		{Type: catalog.EventProcessPrefix, Time: t1},
		{Type: catalog.EventAvailablePostfix, Time: t2, SubscriptionID: 7, ImageID: "img-1", Fields: map[string]string{
			"DC_IDENTIFIER": "img-1", "DC_DESCRIPTION": "two\nlines", "FILENAME": "/cache/img-1", "HV_SIZE": "1024",
			"SL_COMMENTS": "ünïcode, 'quotes' and $VARS",
		}},
		{Type: catalog.EventListRejected, Time: farFuture, SubscriptionID: 7, Fields: map[string]string{"EMPTY": ""}},
	}
	seqs, err := s.AppendEvents(ctx, in...)
	check(t, "AppendEvents", err, nil)
	if len(seqs) != len(in) {
		t.Fatalf("AppendEvents returned %d seqs, want %d", len(seqs), len(in))
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Fatalf("AppendEvents seqs = %v, want strictly increasing", seqs)
		}
	}
	want := append([]catalog.Event(nil), in...)
	for i := range want {
		want[i].Seq = seqs[i]
	}

	t.Run("RoundTrip", func(t *testing.T) {
		got, err := s.Events(ctx, 0, 10)
		check(t, "Events", err, nil)
		same(t, "Events", got, want)
	})
	t.Run("Paging", func(t *testing.T) {
		var got []catalog.Event
		for after := int64(0); ; {
			page, err := s.Events(ctx, after, 1)
			check(t, "Events", err, nil)
			if len(page) == 0 {
				break
			}
			if len(page) > 1 {
				t.Fatalf("Events(%d, 1) = %d events", after, len(page))
			}
			got = append(got, page...)
			after = page[0].Seq
		}
		same(t, "Events page by page", got, want)
	})
	t.Run("AfterLast", func(t *testing.T) {
		got, err := s.Events(ctx, seqs[2], 10)
		check(t, "Events(after last)", err, nil)
		if len(got) != 0 {
			t.Errorf("Events(after last) = %d events, want none", len(got))
		}
	})
	t.Run("MoreAfterMore", func(t *testing.T) {
		more, err := s.AppendEvents(ctx, event(catalog.EventProcessPostfix))
		check(t, "AppendEvents", err, nil)
		if more[0] <= seqs[2] {
			t.Errorf("AppendEvents later = seq %d, want above %d", more[0], seqs[2])
		}
	})
	t.Run("ZeroTimeIsNow", func(t *testing.T) {
		before := time.Now().Add(-time.Second)
		seq, err := s.AppendEvents(ctx, catalog.Event{Type: catalog.EventExpirePrefix})
		check(t, "AppendEvents", err, nil)
		got, err := s.Events(ctx, seq[0]-1, 1)
		check(t, "Events", err, nil)
		if len(got) != 1 || got[0].Time.Before(before) || got[0].Time.After(time.Now().Add(time.Second)) {
			t.Errorf("Events = %+v, want one event timed about now", got)
		}
	})
	t.Run("NoEvents", func(t *testing.T) {
		got, err := s.AppendEvents(ctx)
		check(t, "AppendEvents()", err, nil)
		if len(got) != 0 {
			t.Errorf("AppendEvents() = %v, want no seqs", got)
		}
	})

	for _, tc := range []struct {
		name string
		ev   catalog.Event
	}{
		{"EmptyType", catalog.Event{}},
		{"UnknownType", catalog.Event{Type: "processprefix"}},
		{"LowerCaseFieldName", event(catalog.EventProcessPrefix, "dc_identifier", "x")},
		{"FieldNameWithPrefixChars", event(catalog.EventProcessPrefix, "A=B", "x")},
		{"EmptyFieldName", event(catalog.EventProcessPrefix, "", "x")},
		{"NULInValue", event(catalog.EventProcessPrefix, "X", "a\x00")},
		{"ValueNotUTF8", event(catalog.EventProcessPrefix, "X", "\xff")},
		{"ValueTooLong", event(catalog.EventProcessPrefix, "X", strings.Repeat("x", catalog.MaxTextLen+1))},
		{"NegativeSubscription", catalog.Event{Type: catalog.EventProcessPrefix, SubscriptionID: -1}},
	} {
		t.Run("Append"+tc.name, func(t *testing.T) {
			before := snapshot(t, s)
			_, err := s.AppendEvents(ctx, event(catalog.EventProcessPrefix), tc.ev)
			check(t, "AppendEvents", err, catalog.ErrInvalid)
			same(t, "store after a failed AppendEvents", snapshot(t, s), before)
		})
	}
	t.Run("BadLimit", func(t *testing.T) {
		_, err := s.Events(ctx, 0, 0)
		check(t, "Events(limit 0)", err, catalog.ErrInvalid)
	})
	t.Run("LimitCapped", func(t *testing.T) {
		got, err := s.Events(ctx, 0, catalog.MaxPage+1)
		check(t, "Events(limit MaxPage+1)", err, nil)
		if len(got) > catalog.MaxPage {
			t.Errorf("Events returned %d, more than MaxPage", len(got))
		}
	})
}

func (o opener) testHooks(t *testing.T) {
	s := o.store(t)
	ctx := t.Context()
	old, err := s.AppendEvents(ctx, event(catalog.EventProcessPrefix), event(catalog.EventProcessPostfix))
	check(t, "AppendEvents", err, nil)

	check(t, "AddHook(openstack)", s.AddHook(ctx, catalog.Hook{Name: "openstack", Added: t1}), nil)
	check(t, "AddHook(notify)", s.AddHook(ctx, catalog.Hook{Name: "notify", Added: t2}), nil)

	t.Run("List", func(t *testing.T) {
		got, err := s.Hooks(ctx)
		check(t, "Hooks", err, nil)
		same(t, "Hooks", got, []catalog.Hook{
			{Name: "notify", Added: t2, After: old[1]},
			{Name: "openstack", Added: t1, After: old[1]},
		})
	})
	t.Run("OnlyLaterEvents", func(t *testing.T) {
		got, err := s.Pending(ctx, "openstack", t3, 10)
		check(t, "Pending", err, nil)
		if len(got) != 0 {
			t.Fatalf("Pending right after AddHook = %d events, want none (older events predate the hook)", len(got))
		}
		seq, err := s.AppendEvents(ctx, event(catalog.EventListAccepted))
		check(t, "AppendEvents", err, nil)
		got, err = s.Pending(ctx, "openstack", t3, 10)
		check(t, "Pending", err, nil)
		if len(got) != 1 || got[0].Seq != seq[0] || got[0].Hook != "openstack" {
			t.Fatalf("Pending = %+v, want event %d for openstack", got, seq[0])
		}
		check(t, "MarkDelivered(old event)", s.MarkDelivered(ctx, "openstack", old[0], t3), nil)
		check(t, "MarkFailed(old event)", s.MarkFailed(ctx, "openstack", old[0], errors.New("x"), t3), catalog.ErrConflict)
	})
	for _, tc := range []struct {
		name string
		h    catalog.Hook
		want error
	}{
		{"Duplicate", catalog.Hook{Name: "openstack"}, catalog.ErrExists},
		{"EmptyName", catalog.Hook{}, catalog.ErrInvalid},
		{"NameWithSlash", catalog.Hook{Name: "../../bin/sh"}, catalog.ErrInvalid},
		{"NameWithSpace", catalog.Hook{Name: "a b"}, catalog.ErrInvalid},
	} {
		t.Run("Add"+tc.name, func(t *testing.T) {
			check(t, "AddHook", s.AddHook(ctx, tc.h), tc.want)
		})
	}
	t.Run("Remove", func(t *testing.T) {
		check(t, "MarkFailed", s.MarkFailed(ctx, "notify", old[1]+1, errors.New("exit status 1"), t3), nil)
		check(t, "RemoveHook", s.RemoveHook(ctx, "notify"), nil)
		check(t, "RemoveHook again", s.RemoveHook(ctx, "notify"), catalog.ErrNotFound)
		_, err := s.Pending(ctx, "notify", t3, 10)
		check(t, "Pending(removed hook)", err, catalog.ErrNotFound)
		// Re-adding starts afresh: no old bookkeeping, no old events.
		check(t, "AddHook(notify)", s.AddHook(ctx, catalog.Hook{Name: "notify", Added: t3}), nil)
		got, err := s.Pending(ctx, "notify", t3, 10)
		check(t, "Pending", err, nil)
		if len(got) != 0 {
			t.Errorf("Pending after re-adding = %+v, want none", got)
		}
	})
}

func (o opener) testDelivery(t *testing.T) {
	ctx := t.Context()
	setup := func(t *testing.T, n int) (catalog.Store, []int64) {
		s := o.store(t)
		check(t, "AddHook", s.AddHook(ctx, catalog.Hook{Name: "h", Added: t0}), nil)
		check(t, "AddHook", s.AddHook(ctx, catalog.Hook{Name: "other", Added: t0}), nil)
		var evs []catalog.Event
		for i := 0; i < n; i++ {
			evs = append(evs, event(catalog.EventAvailablePostfix, "N", strings.Repeat("x", i)))
		}
		seqs, err := s.AppendEvents(ctx, evs...)
		check(t, "AppendEvents", err, nil)
		return s, seqs
	}
	pending := func(t *testing.T, s catalog.Store, hook string, now time.Time, limit int) []int64 {
		t.Helper()
		ds, err := s.Pending(ctx, hook, now, limit)
		check(t, "Pending", err, nil)
		var seqs []int64
		for _, d := range ds {
			seqs = append(seqs, d.Seq)
		}
		return seqs
	}

	t.Run("InOrderWithLimit", func(t *testing.T) {
		s, seqs := setup(t, 4)
		same(t, "Pending(limit 10)", pending(t, s, "h", t1, 10), seqs)
		same(t, "Pending(limit 2)", pending(t, s, "h", t1, 2), seqs[:2])
		check(t, "MarkDelivered", s.MarkDelivered(ctx, "h", seqs[0], t1), nil)
		check(t, "MarkDelivered again", s.MarkDelivered(ctx, "h", seqs[0], t2), nil)
		same(t, "Pending after one delivery", pending(t, s, "h", t1, 10), seqs[1:])
		same(t, "Pending of another hook", pending(t, s, "other", t1, 10), seqs)
	})
	t.Run("DeliveryCarriesTheEvent", func(t *testing.T) {
		s, _ := setup(t, 2)
		ds, err := s.Pending(ctx, "h", t1, 10)
		check(t, "Pending", err, nil)
		evs, err := s.Events(ctx, 0, 10)
		check(t, "Events", err, nil)
		if len(ds) != 2 {
			t.Fatalf("Pending = %d, want 2", len(ds))
		}
		for i, d := range ds {
			want := catalog.Delivery{Hook: "h", Event: evs[i]}
			same(t, "Pending[i]", d, want)
		}
	})
	t.Run("RetryBookkeeping", func(t *testing.T) {
		s, seqs := setup(t, 3)
		check(t, "MarkFailed", s.MarkFailed(ctx, "h", seqs[0], errors.New("hook exited 1"), t2), nil)
		// The failed head holds back the whole queue until it is due.
		if got := pending(t, s, "h", t1, 10); len(got) != 0 {
			t.Fatalf("Pending before the retry is due = %v, want none (in-order delivery)", got)
		}
		same(t, "Pending of another hook", pending(t, s, "other", t1, 10), seqs)
		ds, err := s.Pending(ctx, "h", t2, 10)
		check(t, "Pending when due", err, nil)
		if len(ds) != 3 || ds[0].Attempts != 1 || ds[0].LastError != "hook exited 1" || !ds[0].NextAttempt.Equal(t2) ||
			ds[1].Attempts != 0 || ds[1].LastError != "" || !ds[1].NextAttempt.IsZero() {
			t.Fatalf("Pending when due = %+v, want 3 with the first's failure recorded", ds)
		}
		check(t, "MarkFailed again", s.MarkFailed(ctx, "h", seqs[0], errors.New("killed after 10s"), t3), nil)
		ds, err = s.Pending(ctx, "h", t3, 1)
		check(t, "Pending", err, nil)
		if len(ds) != 1 || ds[0].Attempts != 2 || ds[0].LastError != "killed after 10s" || !ds[0].NextAttempt.Equal(t3) {
			t.Fatalf("Pending after two failures = %+v, want attempts 2", ds)
		}
		check(t, "MarkDelivered", s.MarkDelivered(ctx, "h", seqs[0], t3), nil)
		same(t, "Pending after delivery", pending(t, s, "h", t3, 10), seqs[1:])
		check(t, "MarkFailed after delivery", s.MarkFailed(ctx, "h", seqs[0], errors.New("late"), t3), catalog.ErrConflict)
		// A failure with a zero next attempt is due at once.
		check(t, "MarkFailed(zero next)", s.MarkFailed(ctx, "h", seqs[1], errors.New("x"), time.Time{}), nil)
		same(t, "Pending after a failure due now", pending(t, s, "h", t3, 10), seqs[1:])
	})
	t.Run("LaterFailureDoesNotBlockEarlier", func(t *testing.T) {
		s, seqs := setup(t, 3)
		check(t, "MarkFailed", s.MarkFailed(ctx, "h", seqs[1], errors.New("x"), t3), nil)
		same(t, "Pending", pending(t, s, "h", t1, 10), seqs[:1])
	})
	// Hook.After: every event up to it is delivered.
	after := func(t *testing.T, s catalog.Store, hook string) int64 {
		t.Helper()
		hs, err := s.Hooks(ctx)
		check(t, "Hooks", err, nil)
		for _, h := range hs {
			if h.Name == hook {
				return h.After
			}
		}
		t.Fatalf("Hooks() lacks %s", hook)
		return 0
	}
	t.Run("OutOfOrderDelivery", func(t *testing.T) {
		s, seqs := setup(t, 4)
		check(t, "MarkDelivered(second)", s.MarkDelivered(ctx, "h", seqs[1], t1), nil)
		same(t, "Pending", pending(t, s, "h", t1, 10), []int64{seqs[0], seqs[2], seqs[3]})
		if got := after(t, s, "h"); got >= seqs[0] {
			t.Errorf("Hook.After = %d with event %d undelivered, want below it", got, seqs[0])
		}
		check(t, "MarkDelivered(first)", s.MarkDelivered(ctx, "h", seqs[0], t1), nil)
		same(t, "Pending", pending(t, s, "h", t1, 10), seqs[2:])
		if got := after(t, s, "h"); got < seqs[1] || got >= seqs[2] {
			t.Errorf("Hook.After = %d after delivering %d and %d, want in [%d, %d)", got, seqs[0], seqs[1], seqs[1], seqs[2])
		}
		check(t, "MarkDelivered(fourth)", s.MarkDelivered(ctx, "h", seqs[3], t1), nil)
		check(t, "MarkDelivered(third)", s.MarkDelivered(ctx, "h", seqs[2], t1), nil)
		if got := pending(t, s, "h", t1, 10); len(got) != 0 {
			t.Errorf("Pending after all delivered = %v, want none", got)
		}
		if got := after(t, s, "h"); got != seqs[3] {
			t.Errorf("Hook.After = %d after delivering all, want %d", got, seqs[3])
		}
		if got := after(t, s, "other"); got >= seqs[0] {
			t.Errorf("Hook.After of another hook = %d, want below %d", got, seqs[0])
		}
		more, err := s.AppendEvents(ctx, event(catalog.EventProcessPrefix))
		check(t, "AppendEvents", err, nil)
		same(t, "Pending after a new event", pending(t, s, "h", t1, 10), more)
		check(t, "MarkFailed(delivered)", s.MarkFailed(ctx, "h", seqs[2], errors.New("x"), t3), catalog.ErrConflict)
	})
	t.Run("LongErrorTruncated", func(t *testing.T) {
		s, seqs := setup(t, 1)
		check(t, "MarkFailed", s.MarkFailed(ctx, "h", seqs[0], errors.New(strings.Repeat("e", 3*catalog.MaxErrorLen)), t1), nil)
		ds, err := s.Pending(ctx, "h", t1, 1)
		check(t, "Pending", err, nil)
		if len(ds) != 1 || len(ds[0].LastError) != catalog.MaxErrorLen {
			t.Errorf("Pending LastError length = %d, want %d", len(ds[0].LastError), catalog.MaxErrorLen)
		}
	})

	s, seqs := setup(t, 1)
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"PendingUnknownHook", func() error { _, err := s.Pending(ctx, "nope", t1, 10); return err }(), catalog.ErrNotFound},
		{"PendingZeroLimit", func() error { _, err := s.Pending(ctx, "h", t1, 0); return err }(), catalog.ErrInvalid},
		{"MarkDeliveredUnknownHook", s.MarkDelivered(ctx, "nope", seqs[0], t1), catalog.ErrNotFound},
		{"MarkDeliveredUnknownEvent", s.MarkDelivered(ctx, "h", seqs[0]+100, t1), catalog.ErrNotFound},
		{"MarkFailedUnknownHook", s.MarkFailed(ctx, "nope", seqs[0], errors.New("x"), t1), catalog.ErrNotFound},
		{"MarkFailedUnknownEvent", s.MarkFailed(ctx, "h", seqs[0]+100, errors.New("x"), t1), catalog.ErrNotFound},
		{"MarkFailedNilError", s.MarkFailed(ctx, "h", seqs[0], nil, t1), catalog.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) { check(t, tc.name, tc.err, tc.want) })
	}
}
