package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/trustbroker/trustbroker/broker/store"
)

// rowScanner is what *sql.Row and *sql.Rows have in common.
type rowScanner interface {
	Scan(dest ...any) error
}

// scanFunc reads one row into a new T; extra destinations (such as the
// version column) follow the entity's own columns.
type scanFunc[T any] func(r rowScanner, extra ...any) (*T, error)

// getOne runs a single-row query; no row is store.ErrNotFound.
func getOne[T any](ctx context.Context, s *Store, scan scanFunc[T], q string, args ...any) (*T, error) {
	v, err := scan(s.queryRow(ctx, q, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	return v, err
}

// getAll runs a query and scans every row.
func getAll[T any](ctx context.Context, s *Store, scan scanFunc[T], q string, args ...any) ([]T, error) {
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *v)
	}
	return out, rows.Err()
}

// execAffected runs a statement and returns the number of rows it changed.
func execAffected(ctx context.Context, s *Store, q string, args ...any) (int64, error) {
	res, err := s.exec(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// execOne runs a statement that must change a row; none is
// store.ErrNotFound.
func execOne(ctx context.Context, s *Store, q string, args ...any) error {
	n, err := execAffected(ctx, s, q, args...)
	if err != nil {
		return err
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

// insert runs an INSERT, mapping a taken key to store.ErrConflict and a
// dangling account reference to store.ErrNotFound.
func insert(ctx context.Context, s *Store, q string, args ...any) error {
	_, err := s.exec(ctx, q, args...)
	return s.mapWriteErr(err)
}

// mapWriteErr maps constraint violations to the store's sentinel errors,
// keeping the driver error in the chain.
func (s *Store) mapWriteErr(err error) error {
	switch {
	case err == nil:
		return nil
	case s.d.isUniqueViolation(err):
		return fmt.Errorf("%w (%w)", store.ErrConflict, err)
	case s.d.isForeignKeyViolation(err):
		return fmt.Errorf("referenced account: %w (%w)", store.ErrNotFound, err)
	default:
		return err
	}
}

// updateSpec describes the read-modify-write of one updatable row.
type updateSpec[T any] struct {
	// load reads the row, locked for update, and its version.
	load func(ctx context.Context, tx *Store) (*T, int64, error)
	// save writes v where the version still is version, bumping it, and
	// returns the number of rows changed.
	save func(ctx context.Context, tx *Store, v *T, version int64) (int64, error)
}

// loadVersioned reads one row for update: q selects the entity's columns
// followed by its version; the row is locked where the dialect needs it.
func loadVersioned[T any](ctx context.Context, tx *Store, scan scanFunc[T], q string, args ...any) (*T, int64, error) {
	var version int64
	withVersion := func(r rowScanner, _ ...any) (*T, error) { return scan(r, &version) }
	v, err := getOne(ctx, tx, withVersion, q+tx.d.forUpdate(), args...)
	return v, version, err
}

// update applies fn to the current row inside a write transaction (joining
// the caller's). The row is locked before it is read, so concurrent
// updaters queue; a version mismatch nonetheless is store.ErrConflict.
func update[T any](ctx context.Context, s *Store, spec updateSpec[T], fn func(*T) error) (*T, error) {
	var out *T
	err := s.inTx(ctx, func(tx *Store) error {
		v, version, err := spec.load(ctx, tx)
		if err != nil {
			return err
		}
		if err := fn(v); err != nil {
			return err
		}
		n, err := spec.save(ctx, tx, v, version)
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrConflict
		}
		out = v
		return nil
	})
	return out, err
}

// requireExpiry refuses a zero expiry for rows that must expire.
func requireExpiry(t time.Time) error {
	if t.IsZero() {
		return errors.New("expires_at is required")
	}
	return nil
}

// prefixCols qualifies each name of a comma-separated column list with
// the table alias.
func prefixCols(alias, cols string) string {
	parts := strings.Split(cols, ", ")
	for i, p := range parts {
		parts[i] = alias + "." + p
	}
	return strings.Join(parts, ", ")
}

// wrap prefixes err with "sqlstore: " and the operation described by
// format and args, keeping nil nil.
func wrap(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("sqlstore: "+format+": %w", append(args, err)...)
}
