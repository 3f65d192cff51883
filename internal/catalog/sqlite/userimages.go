package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/vmtrust/vmtrust/internal/catalog"
	"github.com/vmtrust/vmtrust/internal/fileid"
	"github.com/vmtrust/vmtrust/internal/sqlitedb"
)

const userImageColumns = `sha512, size, format, path, name, owner, registered_by, registered_at, file, verified_at, inspection`

func scanUserImage(row interface{ Scan(...any) error }) (catalog.UserImage, error) {
	var u catalog.UserImage
	var file sql.NullString
	var insp string
	err := row.Scan(&u.SHA512, &u.Size, &u.Format, &u.Path, &u.Name, &u.Owner, &u.RegisteredBy, sqlitedb.ScanTime(&u.RegisteredAt),
		&file, sqlitedb.ScanTime(&u.VerifiedAt), &insp)
	if err != nil {
		return u, err
	}
	if u.File, err = decFileID(file); err != nil {
		return u, err
	}
	if err := json.Unmarshal([]byte(insp), &u.Inspection); err != nil {
		return u, fmt.Errorf("stored inspection: %w", err)
	}
	return u, nil
}

// AddUserImage implements catalog.UserImageStore.
func (s *Store) AddUserImage(ctx context.Context, u catalog.UserImage) error {
	if err := u.Validate(); err != nil {
		return err
	}
	u.RegisteredAt = catalog.OrNow(u.RegisteredAt)
	u.Inspection.At = u.Inspection.At.UTC()
	insp, err := json.Marshal(u.Inspection)
	if err != nil {
		return fmt.Errorf("user image %.16s: %w", u.SHA512, err)
	}
	verified := sqlitedb.EncodeTime(u.VerifiedAt)
	if u.File.Valid() && u.VerifiedAt.IsZero() {
		verified = sqlitedb.EncodeTime(u.RegisteredAt)
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO user_images (`+userImageColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		u.SHA512, u.Size, u.Format, u.Path, u.Name, u.Owner, u.RegisteredBy, sqlitedb.EncodeTime(u.RegisteredAt),
		encFileID(u.File), verified, string(insp))
	switch {
	case sqlitedb.IsUniqueViolation(err):
		return fmt.Errorf("user image %.16s: %w", u.SHA512, catalog.ErrExists)
	case err != nil:
		return fmt.Errorf("user image %.16s: %w", u.SHA512, err)
	}
	return nil
}

// UserImage implements catalog.UserImageStore.
func (s *Store) UserImage(ctx context.Context, sha512 string) (catalog.UserImage, error) {
	u, err := scanUserImage(s.r.QueryRowContext(ctx, `SELECT `+userImageColumns+` FROM user_images WHERE sha512 = ?`, sha512))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return u, fmt.Errorf("user image %.16s: %w", sha512, catalog.ErrNotFound)
	case err != nil:
		return u, fmt.Errorf("user image %.16s: %w", sha512, err)
	}
	return u, nil
}

// UserImages implements catalog.UserImageStore.
func (s *Store) UserImages(ctx context.Context) ([]catalog.UserImage, error) {
	return queryAll(ctx, s.r, "user images", scanUserImage, `SELECT `+userImageColumns+` FROM user_images ORDER BY registered_at, sha512`)
}

// RemoveUserImage implements catalog.UserImageStore.
func (s *Store) RemoveUserImage(ctx context.Context, sha512 string) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		return deleteOne(ctx, tx, fmt.Sprintf("user image %.16s", sha512), `DELETE FROM user_images WHERE sha512 = ?`, sha512)
	})
}

// RecordUserVerified implements catalog.UserImageStore.
func (s *Store) RecordUserVerified(ctx context.Context, sha512, path string, file fileid.ID, t time.Time) error {
	subject := fmt.Sprintf("user image %.16s", sha512)
	if !file.Valid() || path == "" {
		return fmt.Errorf("%s: verification without a file identity or path: %w", subject, catalog.ErrInvalid)
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE user_images SET file = ?, verified_at = ? WHERE sha512 = ? AND path = ?`,
			encFileID(file), sqlitedb.EncodeTime(catalog.OrNow(t)), sha512, path)
		if err != nil {
			return fmt.Errorf("%s: %w", subject, err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return fmt.Errorf("%s: not registered at %s: %w", subject, path, catalog.ErrConflict)
		}
		return nil
	})
}
