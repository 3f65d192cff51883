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

// AddEndorser implements catalog.EndorserStore.
func (s *Store) AddEndorser(ctx context.Context, e catalog.Endorser) error {
	if err := e.Validate(); err != nil {
		return err
	}
	e.Added = catalog.OrNow(e.Added)
	_, err := s.w.ExecContext(ctx, `INSERT INTO endorsers (name, dn, ca, added, site) VALUES (?, ?, ?, ?, ?)`,
		e.Name, e.DN, e.CA, sqlitedb.EncodeTime(e.Added), e.Site)
	switch {
	case sqlitedb.IsUniqueViolation(err):
		return fmt.Errorf("endorser %q: %w", e.Name, catalog.ErrExists)
	case err != nil:
		return fmt.Errorf("endorser %q: %w", e.Name, err)
	}
	return nil
}

const endorserColumns = `name, dn, ca, added, site`

func scanEndorser(row interface{ Scan(...any) error }) (catalog.Endorser, error) {
	var e catalog.Endorser
	err := row.Scan(&e.Name, &e.DN, &e.CA, sqlitedb.ScanTime(&e.Added), &e.Site)
	return e, err
}

// Endorser implements catalog.EndorserStore.
func (s *Store) Endorser(ctx context.Context, name string) (catalog.Endorser, error) {
	e, err := scanEndorser(s.r.QueryRowContext(ctx, `SELECT `+endorserColumns+` FROM endorsers WHERE name = ?`, name))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return catalog.Endorser{}, fmt.Errorf("endorser %q: %w", name, catalog.ErrNotFound)
	case err != nil:
		return catalog.Endorser{}, fmt.Errorf("endorser %q: %w", name, err)
	}
	return e, nil
}

// Endorsers implements catalog.EndorserStore.
func (s *Store) Endorsers(ctx context.Context) ([]catalog.Endorser, error) {
	return queryAll(ctx, s.r, "endorsers", scanEndorser, `SELECT `+endorserColumns+` FROM endorsers ORDER BY name`)
}

// RemoveEndorser implements catalog.EndorserStore.
func (s *Store) RemoveEndorser(ctx context.Context, name string) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		var users int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM subscriptions WHERE endorser = ?`, name).Scan(&users); err != nil {
			return fmt.Errorf("endorser %q: %w", name, err)
		}
		if users > 0 {
			return fmt.Errorf("endorser %q: named by %d subscriptions: %w", name, users, catalog.ErrInUse)
		}
		return deleteOne(ctx, tx, fmt.Sprintf("endorser %q", name), `DELETE FROM endorsers WHERE name = ?`, name)
	})
}

// AddSubscription implements catalog.SubscriptionStore.
func (s *Store) AddSubscription(ctx context.Context, sub catalog.Subscription) (int64, error) {
	if err := sub.Validate(); err != nil {
		return 0, err
	}
	subject := fmt.Sprintf("subscription %q", sub.URL)
	var id int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := endorserExists(ctx, tx, sub.Endorser); err != nil {
			return fmt.Errorf("%s: %w", subject, err)
		}
		err := tx.QueryRowContext(ctx, `INSERT INTO subscriptions (url, endorser, new_images, ca_bundle, created, identifier)
			VALUES (?, ?, ?, ?, ?, ?) RETURNING id`,
			sub.URL, sub.Endorser, string(sub.NewImages), sub.CABundle, sqlitedb.EncodeTime(catalog.OrNow(sub.Created)), sub.Identifier).Scan(&id)
		switch {
		case sqlitedb.IsUniqueViolation(err):
			return fmt.Errorf("%s: %w", subject, catalog.ErrExists)
		case err != nil:
			return fmt.Errorf("%s: %w", subject, err)
		}
		return nil
	})
	return id, err
}

func endorserExists(ctx context.Context, tx *sql.Tx, name string) error {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM endorsers WHERE name = ?`, name).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("endorser %q: %w", name, catalog.ErrNotFound)
	}
	return nil
}

const subscriptionColumns = `id, url, endorser, new_images, ca_bundle, created, identifier,
	last_attempt, last_success, last_error, version, list_sha512`

func scanSubscription(row interface{ Scan(...any) error }) (catalog.Subscription, error) {
	var s catalog.Subscription
	err := row.Scan(&s.ID, &s.URL, &s.Endorser, &s.NewImages, &s.CABundle, sqlitedb.ScanTime(&s.Created), &s.Identifier,
		sqlitedb.ScanTime(&s.LastAttempt), sqlitedb.ScanTime(&s.LastSuccess), &s.LastError, &s.Version, &s.ListSHA512)
	return s, err
}

// Subscription implements catalog.SubscriptionStore.
func (s *Store) Subscription(ctx context.Context, id int64) (catalog.Subscription, error) {
	return getSubscription(ctx, s.r, fmt.Sprintf("subscription %d", id), `id = ?`, id)
}

// SubscriptionByURL implements catalog.SubscriptionStore.
func (s *Store) SubscriptionByURL(ctx context.Context, url string) (catalog.Subscription, error) {
	return getSubscription(ctx, s.r, fmt.Sprintf("subscription %q", url), `url = ?`, url)
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func getSubscription(ctx context.Context, q querier, subject, where string, arg any) (catalog.Subscription, error) {
	sub, err := scanSubscription(q.QueryRowContext(ctx, `SELECT `+subscriptionColumns+` FROM subscriptions WHERE `+where, arg))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return catalog.Subscription{}, fmt.Errorf("%s: %w", subject, catalog.ErrNotFound)
	case err != nil:
		return catalog.Subscription{}, fmt.Errorf("%s: %w", subject, err)
	}
	return sub, nil
}

// Subscriptions implements catalog.SubscriptionStore.
func (s *Store) Subscriptions(ctx context.Context) ([]catalog.Subscription, error) {
	return queryAll(ctx, s.r, "subscriptions", scanSubscription, `SELECT `+subscriptionColumns+` FROM subscriptions ORDER BY id`)
}

// UpdateSubscription implements catalog.SubscriptionStore.
func (s *Store) UpdateSubscription(ctx context.Context, id int64, u catalog.SubscriptionUpdate) error {
	subject := fmt.Sprintf("subscription %d", id)
	if err := u.Validate(); err != nil {
		return fmt.Errorf("%s: %w", subject, err)
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if err := endorserExists(ctx, tx, u.Endorser); err != nil {
			return fmt.Errorf("%s: %w", subject, err)
		}
		return updateOne(ctx, tx, subject, `UPDATE subscriptions SET endorser = ?, new_images = ?, ca_bundle = ? WHERE id = ?`,
			u.Endorser, string(u.NewImages), u.CABundle, id)
	})
}

// RemoveSubscription implements catalog.SubscriptionStore.
func (s *Store) RemoveSubscription(ctx context.Context, id int64) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		// Images first: they reference list_versions.
		if _, err := tx.ExecContext(ctx, `DELETE FROM images WHERE subscription_id = ?`, id); err != nil {
			return fmt.Errorf("subscription %d: %w", id, err)
		}
		return deleteOne(ctx, tx, fmt.Sprintf("subscription %d", id), `DELETE FROM subscriptions WHERE id = ?`, id)
	})
}

// RecordAttempt implements catalog.SubscriptionStore.
func (s *Store) RecordAttempt(ctx context.Context, id int64, t time.Time, attemptErr error) error {
	subject := fmt.Sprintf("subscription %d", id)
	if t.IsZero() {
		return fmt.Errorf("%s: attempt time is not set: %w", subject, catalog.ErrInvalid)
	}
	if y := t.UTC().Year(); y < 1 || y > 9999 {
		return fmt.Errorf("%s: attempt time %v is out of range: %w", subject, t, catalog.ErrInvalid)
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if attemptErr == nil {
			return updateOne(ctx, tx, subject, `UPDATE subscriptions SET last_attempt = ?, last_success = ?, last_error = '' WHERE id = ?`,
				sqlitedb.EncodeTime(t), sqlitedb.EncodeTime(t), id)
		}
		return updateOne(ctx, tx, subject, `UPDATE subscriptions SET last_attempt = ?, last_error = ? WHERE id = ?`,
			sqlitedb.EncodeTime(t), catalog.TruncateError(attemptErr), id)
	})
}

// updateOne runs an UPDATE or DELETE that must change exactly one row;
// none is ErrNotFound.
func updateOne(ctx context.Context, tx *sql.Tx, subject, query string, args ...any) error {
	res, err := tx.ExecContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", subject, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", subject, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", subject, catalog.ErrNotFound)
	}
	return nil
}

func deleteOne(ctx context.Context, tx *sql.Tx, subject, query string, args ...any) error {
	err := updateOne(ctx, tx, subject, query, args...)
	if isForeignKeyViolation(err) {
		return fmt.Errorf("%s: still referenced: %w", subject, catalog.ErrInUse)
	}
	return err
}

// queryAll runs query and scans every row.
func queryAll[T any](ctx context.Context, q querier, subject string, scan func(interface{ Scan(...any) error }) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", subject, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", subject, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", subject, err)
	}
	return out, nil
}
