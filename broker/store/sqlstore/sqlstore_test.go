package sqlstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/conformance/dbtest"
	"github.com/trustbroker/trustbroker/conformance/storetest"
)

// backend is a database the tests run against.
type backend struct {
	name string
	// newDSN returns the DSN of a fresh, empty database area for one test
	// and removes it when the test ends.
	newDSN func(tb testing.TB) string
}

// testBackends are conformance/dbtest's: SQLite always, PostgreSQL when
// TRUSTBROKER_TEST_POSTGRES is set.
var testBackends = []backend{
	{name: DialectSQLite, newDSN: dbtest.SQLite},
	{name: DialectPostgres, newDSN: dbtest.Postgres},
}

// require skips the test when the backend is not configured.
func (b backend) require(tb testing.TB) {
	tb.Helper()
	if b.name == DialectPostgres && os.Getenv(dbtest.PostgresEnv) == "" {
		tb.Skipf("PostgreSQL tests skipped: set %s to a DSN, e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable", dbtest.PostgresEnv)
	}
}

// openStore opens dsn with the clock now (time.Now when nil), migrates,
// and closes the store when the test ends.
func openStore(tb testing.TB, dsn string, now func() time.Time) *Store {
	tb.Helper()
	st, err := Open(context.Background(), dsn, Options{Now: now})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return st
}

// forEachBackend runs fn as a subtest per configured backend.
func forEachBackend(t *testing.T, fn func(t *testing.T, b backend)) {
	for _, b := range testBackends {
		t.Run(b.name, func(t *testing.T) {
			b.require(t)
			fn(t, b)
		})
	}
}

func TestConformance(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		storetest.Run(t, func(t *testing.T, now func() time.Time) store.Store {
			return openStore(t, b.newDSN(t), now)
		})
	})
}

func TestMigrate(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		latest, err := latestVersion(b.name)
		if err != nil || latest < 1 {
			t.Fatalf("latestVersion = %d, %v", latest, err)
		}

		t.Run("Twice", func(t *testing.T) {
			st, err := Open(ctx, b.newDSN(t), Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			wantVersion(t, st, 0)
			if n, err := st.Migrate(ctx); err != nil || n != int(latest) {
				t.Fatalf("first Migrate = %d, %v; want %d, nil", n, err, latest)
			}
			wantVersion(t, st, latest)
			if n, err := st.Migrate(ctx); err != nil || n != 0 {
				t.Fatalf("second Migrate = %d, %v; want 0, nil", n, err)
			}
			wantVersion(t, st, latest)
		})

		t.Run("NewerSchemaRefused", func(t *testing.T) {
			dsn := b.newDSN(t)
			st := openStore(t, dsn, nil)
			if _, err := st.exec(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
				latest+1, "from_the_future", 0); err != nil {
				t.Fatal(err)
			}
			if _, err := st.Migrate(ctx); !errors.Is(err, ErrSchemaTooNew) {
				t.Fatalf("Migrate on a newer schema: %v, want ErrSchemaTooNew", err)
			}
			st2, err := Open(ctx, dsn, Options{})
			if !errors.Is(err, ErrSchemaTooNew) {
				if st2 != nil {
					st2.Close()
				}
				t.Fatalf("Open on a newer schema: %v, want ErrSchemaTooNew", err)
			}
		})

		t.Run("Concurrent", func(t *testing.T) {
			dsn := b.newDSN(t)
			const n = 4
			stores := make([]*Store, n)
			for i := range stores {
				st, err := Open(ctx, dsn, Options{})
				if err != nil {
					t.Fatal(err)
				}
				defer st.Close()
				stores[i] = st
			}
			applied := make([]int, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i, st := range stores {
				wg.Go(func() { applied[i], errs[i] = st.Migrate(ctx) })
			}
			wg.Wait()
			total := 0
			for i := range n {
				if errs[i] != nil {
					t.Errorf("Migrate %d: %v", i, errs[i])
				}
				total += applied[i]
			}
			if total != int(latest) {
				t.Errorf("migrations applied over all callers: %d, want %d", total, latest)
			}
			wantVersion(t, stores[0], latest)
		})
	})
}

func wantVersion(t *testing.T, st *Store, want int64) {
	t.Helper()
	v, err := st.SchemaVersion(t.Context())
	if err != nil || v != want {
		t.Fatalf("SchemaVersion = %d, %v; want %d", v, err, want)
	}
}

func TestAuditAppendOnly(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		st := openStore(t, b.newDSN(t), nil)
		if err := st.Audit().Append(ctx, &store.AuditEvent{Actor: "system", Action: "test"}); err != nil {
			t.Fatal(err)
		}
		stmts := []string{"UPDATE audit_events SET actor = 'forged'", "DELETE FROM audit_events"}
		if b.name == DialectPostgres {
			stmts = append(stmts, "TRUNCATE audit_events")
		}
		for _, q := range stmts {
			_, err := st.exec(ctx, q)
			if err == nil || !strings.Contains(err.Error(), "append-only") {
				t.Errorf("%s: got %v, want the append-only error", q, err)
			}
		}
		evs, err := st.Audit().List(ctx, store.AuditFilter{})
		if err != nil || len(evs) != 1 || evs[0].Actor != "system" {
			t.Fatalf("audit after forbidden changes: %+v, %v", evs, err)
		}
	})
}

func TestSQLitePragmas(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	pragma := func(st *Store, name string) string {
		t.Helper()
		var v string
		if err := st.db.QueryRowContext(ctx, "PRAGMA "+name).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	st := openStore(t, "sqlite:"+filepath.Join(dir, "default.db"), nil)
	for name, want := range map[string]string{
		"journal_mode": "wal", "synchronous": "1", "foreign_keys": "1", "busy_timeout": "10000",
		"temp_store": "2", "wal_autocheckpoint": "0",
	} {
		if got := pragma(st, name); got != want {
			t.Errorf("PRAGMA %s = %s, want %s", name, got, want)
		}
	}
	full := openStore(t, "file:"+filepath.Join(dir, "full.db")+"?_pragma=synchronous(FULL)", nil)
	if got := pragma(full, "synchronous"); got != "2" {
		t.Errorf("PRAGMA synchronous with synchronous(FULL) in the DSN = %s, want 2", got)
	}
}

func TestOpenUnreachablePostgres(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	st, err := Open(ctx, "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=5", Options{})
	if err == nil {
		st.Close()
		t.Fatal("Open of an unreachable server succeeded")
	}
}

func TestRebind(t *testing.T) {
	for in, want := range map[string]string{
		"SELECT 1":                            "SELECT 1",
		"a = ? AND b = ?":                     "a = $1 AND b = $2",
		"x = '?' AND y = ? AND \"c?\" = ?":    "x = '?' AND y = $1 AND \"c?\" = $2",
		"v IN (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)": "v IN ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
	} {
		if got := rebindDollar(in); got != want {
			t.Errorf("rebindDollar(%q) = %q, want %q", in, got, want)
		}
	}
	d := newDialect(DialectPostgres)
	if d.rebind("a = ?") != "a = $1" || d.rebind("a = ?") != "a = $1" {
		t.Error("cached rebind differs")
	}
	if got := newDialect(DialectSQLite).rebind("a = ?"); got != "a = ?" {
		t.Errorf("SQLite rebind = %q", got)
	}
}
