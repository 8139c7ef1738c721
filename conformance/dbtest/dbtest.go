// Package dbtest gives store-backed tests their databases: a fresh SQLite
// file always, and a fresh PostgreSQL schema when TRUSTBROKER_TEST_POSTGRES
// holds a DSN. When the variable is set and the server cannot be used, the
// test fails: CI sets it to make PostgreSQL mandatory.
package dbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // PostgreSQL driver "pgx"
)

// PostgresEnv names the variable holding the PostgreSQL test DSN.
const PostgresEnv = "TRUSTBROKER_TEST_POSTGRES"

// Backend is a database kind tests run against.
type Backend struct {
	Name string // "sqlite" or "postgres"
	// DSN returns the DSN of a fresh, empty database area for one test,
	// removed when the test ends; it skips the test when the backend is
	// not configured.
	DSN func(tb testing.TB) string
}

// Backends lists SQLite and PostgreSQL.
func Backends() []Backend {
	return []Backend{{Name: "sqlite", DSN: SQLite}, {Name: "postgres", DSN: Postgres}}
}

// ForEach runs fn as one subtest per backend.
func ForEach(t *testing.T, fn func(t *testing.T, dsn string)) {
	for _, b := range Backends() {
		t.Run(b.Name, func(t *testing.T) { fn(t, b.DSN(t)) })
	}
}

// SQLite names a database file in the test's temporary directory.
func SQLite(tb testing.TB) string {
	return "sqlite:" + filepath.Join(tb.TempDir(), "trustbroker.db")
}

// Postgres creates a schema of its own for the test and returns the DSN
// with search_path set to it; the schema is dropped when the test ends, so
// tests run in parallel and repeatedly.
func Postgres(tb testing.TB) string {
	tb.Helper()
	base := os.Getenv(PostgresEnv)
	if base == "" {
		tb.Skipf("PostgreSQL tests skipped: set %s to a DSN, e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable", PostgresEnv)
	}
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("%s: %v", PostgresEnv, err)
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		tb.Fatalf("%s: %v", PostgresEnv, err)
	}
	admin.SetMaxOpenConns(1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	schema := "tbtest_" + strings.ToLower(rand.Text())
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		admin.Close()
		tb.Fatalf("PostgreSQL from %s unusable: %v", PostgresEnv, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			tb.Errorf("drop test schema: %v", err)
		}
		admin.Close()
	})
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
