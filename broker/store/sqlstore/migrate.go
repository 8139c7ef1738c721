package sqlstore

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

//go:embed migrations
var migrationFS embed.FS

// migration is one versioned schema change, read from
// migrations/<dialect>/NNNN_name.sql.
type migration struct {
	version int64
	name    string
	sql     string
}

// migrations returns the dialect's migrations in order. Versions must run
// 1, 2, 3… without gaps.
func migrations(dialect string) ([]migration, error) {
	dir := path.Join("migrations", dialect)
	entries, err := fs.ReadDir(migrationFS, dir)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: read migrations: %w", err)
	}
	var out []migration
	for _, e := range entries {
		m, err := readMigration(dir, e.Name())
		if err != nil {
			return nil, err
		}
		if want := int64(len(out) + 1); m.version != want {
			return nil, fmt.Errorf("sqlstore: migration %s/%s: want version %d", dialect, e.Name(), want)
		}
		out = append(out, m)
	}
	return out, nil
}

func readMigration(dir, file string) (migration, error) {
	num, name, ok := strings.Cut(strings.TrimSuffix(file, ".sql"), "_")
	v, err := strconv.ParseInt(num, 10, 64)
	if !ok || err != nil || !strings.HasSuffix(file, ".sql") {
		return migration{}, fmt.Errorf("sqlstore: migration %s/%s: name is not NNNN_name.sql", dir, file)
	}
	b, err := migrationFS.ReadFile(path.Join(dir, file))
	if err != nil {
		return migration{}, fmt.Errorf("sqlstore: read migration %s: %w", file, err)
	}
	return migration{version: v, name: name, sql: string(b)}, nil
}

// latestVersion is the newest schema version this binary knows.
func latestVersion(dialect string) (int64, error) {
	ms, err := migrations(dialect)
	if err != nil {
		return 0, err
	}
	return int64(len(ms)), nil
}

// checkSchemaVersion refuses a database newer than this binary.
func checkSchemaVersion(dialect string, v int64) error {
	latest, err := latestVersion(dialect)
	if err != nil {
		return err
	}
	if v > latest {
		return fmt.Errorf("%w: database is at version %d, this binary knows up to %d; upgrade trustbroker",
			ErrSchemaTooNew, v, latest)
	}
	return nil
}

const createSchemaMigrations = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    BIGINT NOT NULL PRIMARY KEY,
    name       TEXT   NOT NULL,
    applied_at BIGINT NOT NULL
)`

// Migrate applies the pending migrations in order, each in a transaction
// of its own, and returns how many it applied. Several processes may
// migrate at once: on PostgreSQL each step holds an advisory lock, on
// SQLite the write lock. A database newer than this binary is refused with
// ErrSchemaTooNew.
func (s *Store) Migrate(ctx context.Context) (applied int, err error) {
	if s.tx != nil {
		return 0, fmt.Errorf("sqlstore: Migrate called inside a transaction")
	}
	ms, err := migrations(s.d.name)
	if err != nil {
		return 0, err
	}
	for {
		m, err := s.migrateStep(ctx, ms)
		if err != nil {
			return applied, err
		}
		if m == nil {
			return applied, nil
		}
		applied++
		s.log.InfoContext(ctx, "sqlstore: applied migration", "dialect", s.d.name, "version", m.version, "name", m.name)
	}
}

// migrateStep applies the next pending migration, if any, and returns it.
func (s *Store) migrateStep(ctx context.Context, ms []migration) (*migration, error) {
	var done *migration
	err := s.inTx(ctx, func(tx *Store) error {
		if lock := tx.d.migrationLock(); lock != "" {
			if _, err := tx.exec(ctx, lock); err != nil {
				return fmt.Errorf("sqlstore: lock migrations: %w", err)
			}
		}
		if _, err := tx.exec(ctx, createSchemaMigrations); err != nil {
			return fmt.Errorf("sqlstore: create schema_migrations: %w", err)
		}
		v, err := tx.SchemaVersion(ctx)
		if err != nil {
			return err
		}
		if err := checkSchemaVersion(tx.d.name, v); err != nil {
			return err
		}
		if v == int64(len(ms)) {
			return nil
		}
		m := ms[v] // versions are 1-based and gapless
		if err := tx.apply(ctx, m); err != nil {
			return err
		}
		done = &m
		return nil
	})
	return done, err
}

// apply runs one migration and records it.
func (s *Store) apply(ctx context.Context, m migration) error {
	if _, err := s.conn().ExecContext(ctx, m.sql); err != nil {
		return fmt.Errorf("sqlstore: migration %04d_%s: %w", m.version, m.name, err)
	}
	_, err := s.exec(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
		m.version, m.name, s.nowMicros())
	if err != nil {
		return fmt.Errorf("sqlstore: record migration %04d_%s: %w", m.version, m.name, err)
	}
	return nil
}

// SchemaVersion returns the newest migration applied to the database, 0
// for an empty one.
func (s *Store) SchemaVersion(ctx context.Context) (int64, error) {
	var n int64
	if err := s.queryRow(ctx, s.d.tableExistsQuery(), "schema_migrations").Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlstore: schema version: %w", err)
	}
	if n == 0 {
		return 0, nil
	}
	var v int64
	if err := s.queryRow(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&v); err != nil {
		return 0, fmt.Errorf("sqlstore: schema version: %w", err)
	}
	return v, nil
}
