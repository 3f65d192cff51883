package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vmtrust/vmtrust/internal/catalog"
	"github.com/vmtrust/vmtrust/internal/fileid"
	"github.com/vmtrust/vmtrust/internal/sqlitedb"
)

// AcceptList implements catalog.ListStore.
func (s *Store) AcceptList(ctx context.Context, subID int64, lv catalog.ListVersion, images []catalog.Image, events []catalog.Event) error {
	subject := fmt.Sprintf("subscription %d", subID)
	if err := lv.Validate(); err != nil {
		return fmt.Errorf("%s: %w", subject, err)
	}
	lv.SubscriptionID = subID
	lv.SHA512 = catalog.SHA512Hex(lv.Raw)
	lv.AcceptedAt = catalog.OrNow(lv.AcceptedAt)

	return s.inTx(ctx, func(tx *sql.Tx) error {
		sub, err := getSubscription(ctx, tx, subject, `id = ?`, subID)
		if err != nil {
			return err
		}
		if sub.Identifier != "" && sub.Identifier != lv.Identifier {
			return fmt.Errorf("%s: list identifier %q is not the subscription's %q: %w", subject, lv.Identifier, sub.Identifier, catalog.ErrConflict)
		}
		unchanged, err := catalog.CheckVersion(sub.Version, sub.ListSHA512, lv.Version, lv.SHA512)
		if err != nil {
			return fmt.Errorf("%s: %w", subject, err)
		}
		if unchanged {
			return nil
		}

		_, err = tx.ExecContext(ctx, `INSERT INTO list_versions
			(subscription_id, version, identifier, sha512, raw, created, expires, signer, signer_ca, accepted_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			subID, lv.Version, lv.Identifier, lv.SHA512, lv.Raw, sqlitedb.EncodeTime(lv.Created), sqlitedb.EncodeTime(lv.Expires),
			lv.Signer, lv.SignerCA, sqlitedb.EncodeTime(lv.AcceptedAt))
		switch {
		case sqlitedb.IsUniqueViolation(err):
			return fmt.Errorf("%s: list version %q is stored already: %w", subject, lv.Version, catalog.ErrConflict)
		case err != nil:
			return fmt.Errorf("%s: list version %q: %w", subject, lv.Version, err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE subscriptions SET version = ?, list_sha512 = ?, identifier = ? WHERE id = ?`,
			lv.Version, lv.SHA512, lv.Identifier, subID); err != nil {
			return fmt.Errorf("%s: %w", subject, err)
		}

		seen := make(map[string]bool, len(images))
		for _, im := range images {
			if im.SubscriptionID != 0 && im.SubscriptionID != subID {
				return fmt.Errorf("%s: image %q belongs to subscription %d: %w", subject, im.ID, im.SubscriptionID, catalog.ErrInvalid)
			}
			if err := im.Validate(); err != nil {
				return fmt.Errorf("%s: %w", subject, err)
			}
			if seen[im.ID] {
				return fmt.Errorf("%s: image %q appears twice in list version %q: %w", subject, im.ID, lv.Version, catalog.ErrInvalid)
			}
			seen[im.ID] = true
			im.SubscriptionID, im.ListVersion, im.UpdatedAt = subID, lv.Version, lv.AcceptedAt
			if err := upsertImage(ctx, tx, im); err != nil {
				return fmt.Errorf("%s: image %q: %w", subject, im.ID, err)
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE images SET state = ?, updated_at = ?, file = NULL, verified_at = NULL
			WHERE subscription_id = ? AND list_version != ? AND state != ?`,
			string(catalog.ImageRevoked), sqlitedb.EncodeTime(lv.AcceptedAt), subID, lv.Version, string(catalog.ImageRevoked)); err != nil {
			return fmt.Errorf("%s: revoking images: %w", subject, err)
		}
		_, err = appendEvents(ctx, tx, events, subID, "")
		if err != nil {
			return fmt.Errorf("%s: %w", subject, err)
		}
		return nil
	})
}

// upsertImage stores im, applying the merge rule of AcceptList to an
// existing row.
func upsertImage(ctx context.Context, tx *sql.Tx, im catalog.Image) error {
	var old struct {
		sha512, state, path string
		size                int64
	}
	err := tx.QueryRowContext(ctx, `SELECT sha512, size, state, path FROM images WHERE subscription_id = ? AND id = ?`,
		im.SubscriptionID, im.ID).Scan(&old.sha512, &old.size, &old.state, &old.path)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return err
	default:
		st := catalog.ImageState(old.state)
		sameContent := old.sha512 == im.SHA512 && old.size == im.Size
		if sameContent && im.State == catalog.ImageAvailable && (st == catalog.ImageDownloading || st == catalog.ImageCached) {
			im.State, im.Path = st, old.path
		}
	}
	attrs, err := encMap(im.Attrs)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO images
		(subscription_id, id, list_version, title, version, size, sha512, uri, format, expires, state, path, attrs, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (subscription_id, id) DO UPDATE SET
			list_version = excluded.list_version, title = excluded.title, version = excluded.version,
			size = excluded.size, sha512 = excluded.sha512, uri = excluded.uri, format = excluded.format,
			expires = excluded.expires, state = excluded.state, path = excluded.path,
			attrs = excluded.attrs, updated_at = excluded.updated_at,
			file = CASE WHEN excluded.path = images.path AND excluded.state = images.state THEN images.file END,
			verified_at = CASE WHEN excluded.path = images.path AND excluded.state = images.state THEN images.verified_at END`,
		im.SubscriptionID, im.ID, im.ListVersion, im.Title, im.Version, im.Size, im.SHA512, im.URI, im.Format,
		sqlitedb.EncodeTime(im.Expires), string(im.State), im.Path, attrs, sqlitedb.EncodeTime(im.UpdatedAt))
	return err
}

const listVersionColumns = `subscription_id, version, identifier, sha512, created, expires, signer, signer_ca, accepted_at`

func scanListVersion(row interface{ Scan(...any) error }, raw *[]byte) (catalog.ListVersion, error) {
	var lv catalog.ListVersion
	dest := []any{&lv.SubscriptionID, &lv.Version, &lv.Identifier, &lv.SHA512, sqlitedb.ScanTime(&lv.Created), sqlitedb.ScanTime(&lv.Expires),
		&lv.Signer, &lv.SignerCA, sqlitedb.ScanTime(&lv.AcceptedAt)}
	if raw != nil {
		dest = append(dest, raw)
	}
	err := row.Scan(dest...)
	return lv, err
}

// ListVersion implements catalog.ListStore.
func (s *Store) ListVersion(ctx context.Context, subID int64, version string) (catalog.ListVersion, error) {
	var raw []byte
	lv, err := scanListVersion(s.r.QueryRowContext(ctx, `SELECT `+listVersionColumns+`, raw FROM list_versions
		WHERE subscription_id = ? AND version = ?`, subID, version), &raw)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return catalog.ListVersion{}, fmt.Errorf("subscription %d: list version %q: %w", subID, version, catalog.ErrNotFound)
	case err != nil:
		return catalog.ListVersion{}, fmt.Errorf("subscription %d: list version %q: %w", subID, version, err)
	}
	lv.Raw = raw
	return lv, nil
}

// ListVersions implements catalog.ListStore.
func (s *Store) ListVersions(ctx context.Context, subID int64) ([]catalog.ListVersion, error) {
	scan := func(row interface{ Scan(...any) error }) (catalog.ListVersion, error) {
		return scanListVersion(row, nil)
	}
	return queryAll(ctx, s.r, fmt.Sprintf("subscription %d: list versions", subID), scan,
		`SELECT `+listVersionColumns+` FROM list_versions WHERE subscription_id = ? ORDER BY rowid`, subID)
}

const imageColumns = `subscription_id, id, list_version, title, version, size, sha512, uri, format, expires, state, path, attrs, updated_at, file, verified_at`

func scanImage(row interface{ Scan(...any) error }) (catalog.Image, error) {
	var im catalog.Image
	var attrs string
	var file sql.NullString
	err := row.Scan(&im.SubscriptionID, &im.ID, &im.ListVersion, &im.Title, &im.Version, &im.Size, &im.SHA512, &im.URI,
		&im.Format, sqlitedb.ScanTime(&im.Expires), &im.State, &im.Path, &attrs, sqlitedb.ScanTime(&im.UpdatedAt),
		&file, sqlitedb.ScanTime(&im.VerifiedAt))
	if err != nil {
		return im, err
	}
	if im.File, err = decFileID(file); err != nil {
		return im, err
	}
	im.Attrs, err = decMap(attrs)
	return im, err
}

// Image implements catalog.ImageStore.
func (s *Store) Image(ctx context.Context, subID int64, id string) (catalog.Image, error) {
	im, err := scanImage(s.r.QueryRowContext(ctx, `SELECT `+imageColumns+` FROM images WHERE subscription_id = ? AND id = ?`, subID, id))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return catalog.Image{}, fmt.Errorf("image %q of subscription %d: %w", id, subID, catalog.ErrNotFound)
	case err != nil:
		return catalog.Image{}, fmt.Errorf("image %q of subscription %d: %w", id, subID, err)
	}
	return im, nil
}

// Images implements catalog.ImageStore.
func (s *Store) Images(ctx context.Context, f catalog.ImageFilter) ([]catalog.Image, error) {
	var where []string
	var args []any
	if f.SubscriptionID != 0 {
		where, args = append(where, "subscription_id = ?"), append(args, f.SubscriptionID)
	}
	if f.ID != "" {
		where, args = append(where, "id = ?"), append(args, f.ID)
	}
	if len(f.States) > 0 {
		where = append(where, "state IN (?"+strings.Repeat(", ?", len(f.States)-1)+")")
		for _, st := range f.States {
			args = append(args, string(st))
		}
	}
	q := `SELECT ` + imageColumns + ` FROM images`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	return queryAll(ctx, s.r, "images", scanImage, q+` ORDER BY subscription_id, id`, args...)
}

// SetImageState implements catalog.ImageStore.
func (s *Store) SetImageState(ctx context.Context, c catalog.StateChange, events ...catalog.Event) error {
	if err := c.Validate(); err != nil {
		return err
	}
	subject := fmt.Sprintf("image %q of subscription %d", c.ImageID, c.SubscriptionID)
	return s.inTx(ctx, func(tx *sql.Tx) error {
		var sha, state string
		err := tx.QueryRowContext(ctx, `SELECT sha512, state FROM images WHERE subscription_id = ? AND id = ?`,
			c.SubscriptionID, c.ImageID).Scan(&sha, &state)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("%s: %w", subject, catalog.ErrNotFound)
		case err != nil:
			return fmt.Errorf("%s: %w", subject, err)
		}
		if c.SHA512 != "" && c.SHA512 != sha {
			return fmt.Errorf("%s: content changed (SHA-512 %.16s..., want %.16s...): %w", subject, sha, c.SHA512, catalog.ErrConflict)
		}
		if len(c.From) > 0 && !slices.Contains(c.From, catalog.ImageState(state)) {
			return fmt.Errorf("%s: state is %s, not one of %v: %w", subject, state, c.From, catalog.ErrConflict)
		}
		at := catalog.OrNow(c.At)
		file, verified := encFileID(c.File), sqlitedb.EncodeTime(time.Time{})
		if c.State != catalog.ImageCached {
			file = nil
		} else if file != nil {
			verified = sqlitedb.EncodeTime(at)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE images SET state = ?, path = ?, updated_at = ?, file = ?, verified_at = ? WHERE subscription_id = ? AND id = ?`,
			string(c.State), c.Path, sqlitedb.EncodeTime(at), file, verified, c.SubscriptionID, c.ImageID); err != nil {
			return fmt.Errorf("%s: %w", subject, err)
		}
		if _, err := appendEvents(ctx, tx, events, c.SubscriptionID, c.ImageID); err != nil {
			return fmt.Errorf("%s: %w", subject, err)
		}
		return nil
	})
}

// encMap stores a string map as a JSON object; nil and empty maps as "{}".
func encMap(m map[string]string) (string, error) {
	if len(m) == 0 {
		return "{}", nil
	}
	b, err := json.Marshal(m)
	return string(b), err
}

// decMap reads what encMap stored; "{}" becomes nil.
func decMap(s string) (map[string]string, error) {
	var m map[string]string
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, fmt.Errorf("stored map: %w", err)
	}
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}

// RecordVerified implements catalog.ImageStore.
func (s *Store) RecordVerified(ctx context.Context, subID int64, id, sha512, path string, file fileid.ID, t time.Time) error {
	subject := fmt.Sprintf("image %q of subscription %d", id, subID)
	if !file.Valid() || !catalog.ValidSHA512(sha512) || path == "" {
		return fmt.Errorf("%s: verification without a file identity, digest or path: %w", subject, catalog.ErrInvalid)
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE images SET file = ?, verified_at = ?
			WHERE subscription_id = ? AND id = ? AND sha512 = ? AND path = ? AND state = 'cached'`,
			encFileID(file), sqlitedb.EncodeTime(catalog.OrNow(t)), subID, id, sha512, path)
		if err != nil {
			return fmt.Errorf("%s: %w", subject, err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return fmt.Errorf("%s: not cached at %s with that digest: %w", subject, path, catalog.ErrConflict)
		}
		return nil
	})
}

// encFileID is the stored form of a file identity: JSON, NULL for none.
func encFileID(id fileid.ID) any {
	if !id.Valid() {
		return nil
	}
	b, err := json.Marshal(id)
	if err != nil {
		return nil
	}
	return string(b)
}

func decFileID(s sql.NullString) (fileid.ID, error) {
	var id fileid.ID
	if !s.Valid {
		return id, nil
	}
	if err := json.Unmarshal([]byte(s.String), &id); err != nil {
		return fileid.ID{}, fmt.Errorf("stored file identity: %w", err)
	}
	return id, nil
}
