package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/vmtrust/vmtrust/internal/ledger"
)

// The Tamper methods change the database directly, bypassing every check
// and the Update lock, as an attacker with write access would. Only the
// tampering tests (ledgertest) call them. A missing row is an error
// wrapping ledger.ErrNotFound.

// TamperSetBody replaces the body of entry idx.
func (s *Store) TamperSetBody(ctx context.Context, idx int64, body []byte) error {
	return s.tamper(ctx, fmt.Sprintf("set body of entry %d", idx), 1,
		"UPDATE entries SET body = $2 WHERE idx = $1", idx, nonNil(body))
}

// TamperDelete deletes entry idx.
func (s *Store) TamperDelete(ctx context.Context, idx int64) error {
	return s.tamper(ctx, fmt.Sprintf("delete entry %d", idx), 1, "DELETE FROM entries WHERE idx = $1", idx)
}

// TamperSwap swaps the bodies of entries i and j.
func (s *Store) TamperSwap(ctx context.Context, i, j int64) error {
	want := int64(2)
	if i == j {
		want = 1
	}
	return s.tamper(ctx, fmt.Sprintf("swap entries %d and %d", i, j), want,
		`UPDATE entries e SET body = o.body FROM entries o
		WHERE (e.idx = $1 AND o.idx = $2) OR (e.idx = $2 AND o.idx = $1)`, i, j)
}

// TamperSetTile replaces the data of the stored tile k.
func (s *Store) TamperSetTile(ctx context.Context, k ledger.TileKey, data []byte) error {
	return s.tamper(ctx, fmt.Sprintf("set %v", k), 1, "UPDATE tiles SET data = $3 WHERE level = $1 AND n = $2", k.L, k.N, nonNil(data))
}

// TamperSetCheckpointRoot replaces the root column of checkpoint size
// (its signed note unchanged).
func (s *Store) TamperSetCheckpointRoot(ctx context.Context, size int64, root tlog.Hash) error {
	return s.tamper(ctx, fmt.Sprintf("set root of checkpoint %d", size), 1, "UPDATE checkpoints SET root = $2 WHERE size = $1", size, root[:])
}

// TamperSetRunOwner replaces the owner in every run row of vm.
func (s *Store) TamperSetRunOwner(ctx context.Context, vm, owner string) error {
	return s.with(ctx, func(c *pgx.Conn) error {
		tag, err := c.Exec(ctx, "UPDATE runs SET owner = $2 WHERE vm = $1", vm, owner)
		if err != nil {
			return fmt.Errorf("ledger postgres: tamper: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("ledger postgres: tamper: runs of %s: %w", vm, ledger.ErrNotFound)
		}
		return nil
	})
}

// TamperInsert moves every entry with index ≥ idx up by one and puts body
// at idx, in the batch of the entry it displaced.
func (s *Store) TamperInsert(ctx context.Context, idx int64, body []byte) error {
	subj := fmt.Sprintf("ledger postgres: tamper: insert entry %d", idx)
	return s.with(ctx, func(c *pgx.Conn) error {
		err := pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
			var batch int64
			if err := tx.QueryRow(ctx, "SELECT batch FROM entries WHERE idx = $1", idx).Scan(&batch); err != nil {
				if errors.Is(err, pgx.ErrNoRows) {
					return ledger.ErrNotFound
				}
				return err
			}
			// The primary key is checked row by row: move the tail to
			// negative indexes first, then to its place, so no two rows
			// ever share an index.
			if _, err := tx.Exec(ctx, "UPDATE entries SET idx = -idx - 2 WHERE idx >= $1", idx); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "UPDATE entries SET idx = -idx - 1 WHERE idx < 0"); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO entries (idx, batch, body) VALUES ($1, $2, $3)", idx, batch, nonNil(body))
			return err
		})
		if err != nil {
			return fmt.Errorf("%s: %w", subj, err)
		}
		return nil
	})
}

// tamper runs one statement that must change want rows.
func (s *Store) tamper(ctx context.Context, what string, want int64, stmt string, args ...any) error {
	return s.with(ctx, func(c *pgx.Conn) error {
		tag, err := c.Exec(ctx, stmt, args...)
		if err != nil {
			return fmt.Errorf("ledger postgres: tamper: %s: %w", what, err)
		}
		if tag.RowsAffected() != want {
			return fmt.Errorf("ledger postgres: tamper: %s: %w", what, ledger.ErrNotFound)
		}
		return nil
	})
}

// TamperDeleteLeaseEnd deletes the end of the lease begun at entry start.
func (s *Store) TamperDeleteLeaseEnd(ctx context.Context, start int64) error {
	return s.tamper(ctx, fmt.Sprintf("delete the end of lease %d", start), 1, "DELETE FROM lease_ends WHERE start_idx = $1", start)
}

// TamperSetLeaseVM replaces the VM of the lease begun at entry start.
func (s *Store) TamperSetLeaseVM(ctx context.Context, start int64, vm string) error {
	return s.tamper(ctx, fmt.Sprintf("set the vm of lease %d", start), 1, "UPDATE leases SET vm = $2 WHERE start_idx = $1", start, vm)
}

// TamperAddTimeline adds a timeline row putting entry idx under vm.
func (s *Store) TamperAddTimeline(ctx context.Context, vm string, idx int64) error {
	return s.tamper(ctx, fmt.Sprintf("add timeline row %s %d", vm, idx), 1,
		"INSERT INTO vm_timeline (vm, first_idx, idxs) VALUES ($1, $2, $3)", vm, idx, []int64{idx})
}

// TamperReopenRun makes the run begun at entry start open again.
func (s *Store) TamperReopenRun(ctx context.Context, start int64) error {
	return s.tamper(ctx, fmt.Sprintf("reopen run %d", start), 1, "UPDATE runs SET to_ts = NULL, end_idx = -1 WHERE start_idx = $1", start)
}

// TamperDeleteRun deletes the run begun at entry start.
func (s *Store) TamperDeleteRun(ctx context.Context, start int64) error {
	return s.tamper(ctx, fmt.Sprintf("delete run %d", start), 1, "DELETE FROM runs WHERE start_idx = $1", start)
}

// TamperSetIndexed sets how far the indexes say they reached.
func (s *Store) TamperSetIndexed(ctx context.Context, n int64) error {
	return s.tamper(ctx, fmt.Sprintf("set indexed %d", n), 1, "UPDATE index_state SET indexed = $1 WHERE id = 1", n)
}
