package sqlstore

import (
	"net/url"
	"strings"
	"testing"
)

func TestParseDSN(t *testing.T) {
	for _, tc := range []struct {
		dsn     string
		dialect string
		prefix  string // of the driver DSN
	}{
		{"postgres://u@db:5432/tb?sslmode=disable", DialectPostgres, "postgres://u@db:5432/tb?sslmode=disable"},
		{"postgresql://u@db/tb", DialectPostgres, "postgresql://u@db/tb"},
		{"sqlite:/var/lib/tb/tb.db", DialectSQLite, "file:/var/lib/tb/tb.db?"},
		{"sqlite:///var/lib/tb/tb.db", DialectSQLite, "file:/var/lib/tb/tb.db?"},
		{"sqlite://data/tb.db", DialectSQLite, "file:data/tb.db?"},
		{"SQLite:tb.db", DialectSQLite, "file:tb.db?"},
		{"file:tb.db", DialectSQLite, "file:tb.db?"},
		{"file:///tmp/tb.db", DialectSQLite, "file:/tmp/tb.db?"},
		{"tb.db", DialectSQLite, "file:tb.db?"},
		{"./data/tb.db", DialectSQLite, "file:data/tb.db?"},
		{"/tmp/odd#name%.db", DialectSQLite, "file:/tmp/odd%23name%25.db?"},
	} {
		got, err := parseDSN(tc.dsn)
		if err != nil {
			t.Errorf("parseDSN(%q): %v", tc.dsn, err)
			continue
		}
		if got.dialect != tc.dialect || !strings.HasPrefix(got.driverDSN, tc.prefix) {
			t.Errorf("parseDSN(%q) = %+v, want dialect %s and driver DSN starting %q", tc.dsn, got, tc.dialect, tc.prefix)
		}
	}
}

func TestParseDSNSQLiteParams(t *testing.T) {
	got, err := parseDSN("sqlite:tb.db?_pragma=synchronous(FULL)&_txlock=exclusive&cache=private")
	if err != nil {
		t.Fatal(err)
	}
	_, raw, _ := strings.Cut(got.driverDSN, "?")
	q, err := url.ParseQuery(raw)
	if err != nil {
		t.Fatal(err)
	}
	if q.Get("_txlock") != "exclusive" || q.Get("cache") != "private" {
		t.Errorf("DSN parameters not kept: %v", q)
	}
	var sync []string
	for _, p := range q["_pragma"] {
		if pragmaName(p) == "synchronous" {
			sync = append(sync, p)
		}
	}
	if len(sync) != 1 || sync[0] != "synchronous(FULL)" {
		t.Errorf("synchronous pragmas = %q, want only the DSN's", sync)
	}
	for _, want := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "foreign_keys(1)"} {
		if !strings.Contains(raw, url.QueryEscape(want)) {
			t.Errorf("default %s missing from %s", want, raw)
		}
	}
}

func TestParseDSNErrors(t *testing.T) {
	for _, tc := range []struct{ dsn, want string }{
		{"", "database dsn: empty"},
		{"   ", "database dsn: empty"},
		{"mysql://u@db/tb", `database dsn: unsupported scheme "mysql"`},
		{"redis:x", `database dsn: unsupported scheme "redis"`},
		{"sqlite:", "empty path"},
		{"sqlite://", "empty path"},
		{"file:?_pragma=x", "empty path"},
		{"sqlite::memory:", "in-memory"},
		{":memory:", "in-memory"},
		{"file:x.db?mode=memory", "in-memory"},
		{"sqlite:x.db?a=%zz", "database dsn: sqlite: query"},
		{"postgres://u@[::1/tb", "database dsn: postgres"},
		{"postgres://u@db/tb?sslmode=bogus", "database dsn: postgres"},
		{"host=db user=u dbname=tb", "key=value PostgreSQL DSN"},
		{"x.db\x00", "NUL"},
	} {
		_, err := parseDSN(tc.dsn)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseDSN(%q) = %v, want an error containing %q", tc.dsn, err, tc.want)
		}
	}
}

func TestParseDSNHidesPassword(t *testing.T) {
	_, err := parseDSN("postgres://u:s3cret@[::1/tb")
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("error %v: want an error without the password", err)
	}
}

func FuzzParseDSN(f *testing.F) {
	for _, s := range []string{
		"", "postgres://u:p@db:5432/tb?sslmode=disable", "postgresql://", "sqlite:tb.db?_pragma=synchronous(FULL)",
		"sqlite:///abs/tb.db", "file:tb.db?mode=memory", "tb.db", "C:\\tb.db", "mysql://x", "sqlite::memory:",
		"sqlite:x?%zz", "host=db dbname=tb", "file:%00", "sqlite:a?b#c",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, dsn string) {
		got, err := parseDSN(dsn)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "database dsn: ") {
				t.Fatalf("parseDSN(%q): error %q lacks the prefix", dsn, err)
			}
			return
		}
		switch got.dialect {
		case DialectPostgres:
			if got.driverDSN != dsn {
				t.Fatalf("parseDSN(%q): PostgreSQL DSN rewritten to %q", dsn, got.driverDSN)
			}
		case DialectSQLite:
			path, query, ok := strings.Cut(strings.TrimPrefix(got.driverDSN, "file:"), "?")
			if !ok || path == "" || strings.ContainsAny(path, "?#") || !strings.Contains(query, "_txlock=") {
				t.Fatalf("parseDSN(%q): bad SQLite DSN %q", dsn, got.driverDSN)
			}
		default:
			t.Fatalf("parseDSN(%q): dialect %q", dsn, got.dialect)
		}
	})
}
