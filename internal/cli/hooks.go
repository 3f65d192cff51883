package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/vmtrust/vmtrust/internal/catalog"
	"github.com/vmtrust/vmtrust/internal/hooks"
)

// EventsFile is the JSON-lines journal of every event, in the state dir.
const EventsFile = "events.jsonl"

// journalHook is the catalog's delivery queue for the journal.
const journalHook = "vmtrust.events-jsonl"

// registerHooks makes sure every configured hook, and the journal, has a
// delivery queue before any event is appended: a hook receives only the
// events appended after it was registered.
func registerHooks(ctx context.Context, s *site) error {
	if err := hooks.EnsureHooks(ctx, s.store, s.cfg.Hooks); err != nil {
		return err
	}
	if err := s.store.AddHook(ctx, catalog.Hook{Name: journalHook}); err != nil && !errors.Is(err, catalog.ErrExists) {
		return err
	}
	return nil
}

// journalLine is one event in events.jsonl.
type journalLine struct {
	Seq            int64             `json:"seq"`
	Time           time.Time         `json:"time"`
	Type           string            `json:"type"`
	SubscriptionID int64             `json:"subscription_id,omitempty"`
	ImageID        string            `json:"image_id,omitempty"`
	Fields         map[string]string `json:"fields,omitempty"`
}

// deliverHooks appends new events to the journal, then runs the configured
// hooks (vmcatcher's VMCATCHER_EVENT_* environment). A failed or timed-out
// hook keeps its event, retried with backoff by a later run; it is reported
// as a partial failure.
func deliverHooks(ctx context.Context, g *Globals, s *site) error {
	if err := writeJournal(ctx, g, s); err != nil {
		return fmt.Errorf("event journal: %w", err)
	}
	if len(s.cfg.Hooks) == 0 {
		return nil
	}
	sum, err := hooks.New(s.store, s.cfg.Hooks, hooks.Options{Log: g.Log}).Deliver(ctx)
	if err != nil {
		return err
	}
	failed := 0
	for _, h := range sum {
		if h.Failure != nil || h.Err != nil {
			failed++
			g.Log.Warn("hook failed; its event is kept and retried later", "hook", h.Hook, "event.seq", h.Failed, "error", errors.Join(h.Failure, h.Err))
		}
	}
	if failed > 0 {
		return fmt.Errorf("%w: %d hook(s) failed; their events will be retried", ErrPartial, failed)
	}
	return nil
}

func writeJournal(ctx context.Context, g *Globals, s *site) error {
	f, err := os.OpenFile(filepath.Join(g.State, EventsFile), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	for {
		ds, err := s.store.Pending(ctx, journalHook, time.Now(), catalog.MaxPage)
		if err != nil || len(ds) == 0 {
			return err
		}
		var buf []byte
		for _, d := range ds {
			line, err := json.Marshal(journalLine{Seq: d.Seq, Time: d.Time, Type: string(d.Type), SubscriptionID: d.SubscriptionID, ImageID: d.ImageID, Fields: d.Fields})
			if err != nil {
				return err
			}
			buf = append(append(buf, line...), '\n')
		}
		// Durable first, then marked: a crash in between writes a line
		// twice (same seq), never loses one.
		if _, err := f.Write(buf); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
		now := time.Now()
		for _, d := range ds {
			if err := s.store.MarkDelivered(ctx, journalHook, d.Seq, now); err != nil {
				return err
			}
		}
	}
}
