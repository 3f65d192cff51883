package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/vmtrust/vmtrust/internal/catalog"
	"github.com/vmtrust/vmtrust/internal/sqlitedb"
)

// appendEvents appends events inside tx. A zero SubscriptionID becomes
// defSub and an empty ImageID defImage.
func appendEvents(ctx context.Context, tx *sql.Tx, events []catalog.Event, defSub int64, defImage string) ([]int64, error) {
	seqs := make([]int64, 0, len(events))
	for _, ev := range events {
		if ev.SubscriptionID == 0 {
			ev.SubscriptionID = defSub
		}
		if ev.ImageID == "" {
			ev.ImageID = defImage
		}
		if err := ev.Validate(); err != nil {
			return nil, err
		}
		fields, err := encMap(ev.Fields)
		if err != nil {
			return nil, fmt.Errorf("event %s: %w", ev.Type, err)
		}
		var seq int64
		if err := tx.QueryRowContext(ctx, `INSERT INTO events (time, type, subscription_id, image_id, fields)
			VALUES (?, ?, ?, ?, ?) RETURNING seq`,
			sqlitedb.EncodeTime(catalog.OrNow(ev.Time)), string(ev.Type), ev.SubscriptionID, ev.ImageID, fields).Scan(&seq); err != nil {
			return nil, fmt.Errorf("event %s: %w", ev.Type, err)
		}
		seqs = append(seqs, seq)
	}
	return seqs, nil
}

// AppendEvents implements catalog.EventStore.
func (s *Store) AppendEvents(ctx context.Context, events ...catalog.Event) ([]int64, error) {
	var seqs []int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		seqs, err = appendEvents(ctx, tx, events, 0, "")
		return err
	})
	if err != nil {
		return nil, err
	}
	return seqs, nil
}

const eventColumns = `e.seq, e.time, e.type, e.subscription_id, e.image_id, e.fields`

func eventDest(ev *catalog.Event, fields *string) []any {
	return []any{&ev.Seq, sqlitedb.ScanTime(&ev.Time), &ev.Type, &ev.SubscriptionID, &ev.ImageID, fields}
}

func scanEvent(row interface{ Scan(...any) error }) (catalog.Event, error) {
	var ev catalog.Event
	var fields string
	if err := row.Scan(eventDest(&ev, &fields)...); err != nil {
		return ev, err
	}
	var err error
	ev.Fields, err = decMap(fields)
	return ev, err
}

func checkLimit(limit int) (int, error) {
	if limit <= 0 {
		return 0, fmt.Errorf("limit %d is not positive: %w", limit, catalog.ErrInvalid)
	}
	return min(limit, catalog.MaxPage), nil
}

// Events implements catalog.EventStore.
func (s *Store) Events(ctx context.Context, after int64, limit int) ([]catalog.Event, error) {
	limit, err := checkLimit(limit)
	if err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	return queryAll(ctx, s.r, "events", scanEvent, `SELECT `+eventColumns+` FROM events e WHERE e.seq > ? ORDER BY e.seq LIMIT ?`, after, limit)
}

// AddHook implements catalog.EventStore.
func (s *Store) AddHook(ctx context.Context, h catalog.Hook) error {
	if err := h.Validate(); err != nil {
		return err
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO hooks (name, added, after_seq)
			VALUES (?, ?, (SELECT coalesce(max(seq), 0) FROM events))`, h.Name, sqlitedb.EncodeTime(catalog.OrNow(h.Added)))
		switch {
		case sqlitedb.IsUniqueViolation(err):
			return fmt.Errorf("hook %q: %w", h.Name, catalog.ErrExists)
		case err != nil:
			return fmt.Errorf("hook %q: %w", h.Name, err)
		}
		return nil
	})
}

func scanHook(row interface{ Scan(...any) error }) (catalog.Hook, error) {
	var h catalog.Hook
	err := row.Scan(&h.Name, sqlitedb.ScanTime(&h.Added), &h.After)
	return h, err
}

// Hooks implements catalog.EventStore.
func (s *Store) Hooks(ctx context.Context) ([]catalog.Hook, error) {
	return queryAll(ctx, s.r, "hooks", scanHook, `SELECT name, added, after_seq FROM hooks ORDER BY name`)
}

// RemoveHook implements catalog.EventStore.
func (s *Store) RemoveHook(ctx context.Context, name string) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		return deleteOne(ctx, tx, fmt.Sprintf("hook %q", name), `DELETE FROM hooks WHERE name = ?`, name)
	})
}

// hookAfter returns the hook's after_seq, or ErrNotFound.
func hookAfter(ctx context.Context, q querier, hook string) (int64, error) {
	var after int64
	err := q.QueryRowContext(ctx, `SELECT after_seq FROM hooks WHERE name = ?`, hook).Scan(&after)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, fmt.Errorf("hook %q: %w", hook, catalog.ErrNotFound)
	case err != nil:
		return 0, fmt.Errorf("hook %q: %w", hook, err)
	}
	return after, nil
}

// Pending implements catalog.EventStore.
func (s *Store) Pending(ctx context.Context, hook string, now time.Time, limit int) ([]catalog.Delivery, error) {
	limit, err := checkLimit(limit)
	if err != nil {
		return nil, fmt.Errorf("hook %q: %w", hook, err)
	}
	if _, err := hookAfter(ctx, s.r, hook); err != nil {
		return nil, err
	}
	now = catalog.OrNow(now)
	rows, err := s.r.QueryContext(ctx, `SELECT `+eventColumns+`, coalesce(d.attempts, 0), coalesce(d.last_error, ''), d.next_attempt
		FROM events e LEFT JOIN deliveries d ON d.hook = ?1 AND d.seq = e.seq
		WHERE e.seq > (SELECT after_seq FROM hooks WHERE name = ?1) AND d.delivered_at IS NULL
		ORDER BY e.seq LIMIT ?2`, hook, limit)
	if err != nil {
		return nil, fmt.Errorf("hook %q: %w", hook, err)
	}
	defer rows.Close()
	var out []catalog.Delivery
	for rows.Next() {
		d := catalog.Delivery{Hook: hook}
		var fields string
		dest := append(eventDest(&d.Event, &fields), &d.Attempts, &d.LastError, sqlitedb.ScanTime(&d.NextAttempt))
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("hook %q: %w", hook, err)
		}
		if d.NextAttempt.After(now) {
			break // in-order delivery: a held-back event blocks the rest
		}
		if d.Fields, err = decMap(fields); err != nil {
			return nil, fmt.Errorf("hook %q: event %d: %w", hook, d.Seq, err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("hook %q: %w", hook, err)
	}
	return out, nil
}

// deliveryState loads what MarkDelivered and MarkFailed need.
func deliveryState(ctx context.Context, tx *sql.Tx, hook string, seq int64) (after int64, delivered bool, err error) {
	after, err = hookAfter(ctx, tx, hook)
	if err != nil {
		return 0, false, err
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM events WHERE seq = ?`, seq).Scan(&n); err != nil {
		return 0, false, fmt.Errorf("hook %q: event %d: %w", hook, seq, err)
	}
	if n == 0 {
		return 0, false, fmt.Errorf("hook %q: event %d: %w", hook, seq, catalog.ErrNotFound)
	}
	if seq <= after {
		return after, true, nil
	}
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM deliveries WHERE hook = ? AND seq = ? AND delivered_at IS NOT NULL`,
		hook, seq).Scan(&n); err != nil {
		return 0, false, fmt.Errorf("hook %q: event %d: %w", hook, seq, err)
	}
	return after, n > 0, nil
}

// MarkDelivered implements catalog.EventStore.
func (s *Store) MarkDelivered(ctx context.Context, hook string, seq int64, t time.Time) error {
	subject := fmt.Sprintf("hook %q: event %d", hook, seq)
	return s.inTx(ctx, func(tx *sql.Tx) error {
		after, delivered, err := deliveryState(ctx, tx, hook, seq)
		if err != nil || delivered {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO deliveries (hook, seq, delivered_at) VALUES (?, ?, ?)
			ON CONFLICT (hook, seq) DO UPDATE SET delivered_at = excluded.delivered_at, next_attempt = NULL`,
			hook, seq, sqlitedb.EncodeTime(catalog.OrNow(t))); err != nil {
			return fmt.Errorf("%s: %w", subject, err)
		}
		// Move after_seq over the delivered prefix, so Pending never scans
		// delivered history.
		if _, err := tx.ExecContext(ctx, `UPDATE hooks SET after_seq = coalesce(
				(SELECT min(e.seq) - 1 FROM events e LEFT JOIN deliveries d ON d.hook = ?1 AND d.seq = e.seq
				 WHERE e.seq > ?2 AND d.delivered_at IS NULL),
				(SELECT max(seq) FROM events))
			WHERE name = ?1 AND after_seq = ?2`, hook, after); err != nil {
			return fmt.Errorf("%s: %w", subject, err)
		}
		return nil
	})
}

// MarkFailed implements catalog.EventStore.
func (s *Store) MarkFailed(ctx context.Context, hook string, seq int64, failure error, next time.Time) error {
	subject := fmt.Sprintf("hook %q: event %d", hook, seq)
	if failure == nil {
		return fmt.Errorf("%s: MarkFailed without an error: %w", subject, catalog.ErrInvalid)
	}
	if y := next.UTC().Year(); !next.IsZero() && (y < 1 || y > 9999) {
		return fmt.Errorf("%s: next attempt %v is out of range: %w", subject, next, catalog.ErrInvalid)
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		_, delivered, err := deliveryState(ctx, tx, hook, seq)
		if err != nil {
			return err
		}
		if delivered {
			return fmt.Errorf("%s: delivered already (or older than the hook): %w", subject, catalog.ErrConflict)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO deliveries (hook, seq, attempts, last_error, next_attempt) VALUES (?, ?, 1, ?, ?)
			ON CONFLICT (hook, seq) DO UPDATE SET attempts = attempts + 1,
				last_error = excluded.last_error, next_attempt = excluded.next_attempt`,
			hook, seq, catalog.TruncateError(failure), sqlitedb.EncodeTime(next)); err != nil {
			return fmt.Errorf("%s: %w", subject, err)
		}
		return nil
	})
}
