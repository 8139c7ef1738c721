package sqlstore

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// sqliteDefaults are the connection settings every SQLite connection gets
// unless the DSN sets the same pragma (or _txlock) itself:
//
//   - busy_timeout(10000): a writer waits up to 10 s for the write lock
//     instead of failing with SQLITE_BUSY;
//   - journal_mode(WAL): readers do not block the writer and vice versa;
//   - foreign_keys(1): ON DELETE CASCADE and reference checks work;
//   - synchronous(NORMAL): in WAL mode a commit survives a crash of the
//     process; only a power loss or OS crash may lose the last commits.
//     Set _pragma=synchronous(FULL) in the DSN to survive those too;
//   - temp_store(MEMORY): statement and savepoint journals (the group
//     commit gives each writer a SAVEPOINT) and temporary tables stay in
//     memory instead of temporary files, which cost a write syscall per
//     page touched; they hold at most the pages one batch changes;
//   - wal_autocheckpoint(0): no commit checkpoints the WAL; the store's
//     checkpointer does, in the background (checkpointer);
//   - _txlock=immediate: write transactions take the write lock at BEGIN,
//     so two transactions never deadlock upgrading a read lock.
var sqliteDefaults = []struct{ key, value string }{
	{"_pragma", "busy_timeout(10000)"},
	{"_pragma", "journal_mode(WAL)"},
	{"_pragma", "foreign_keys(1)"},
	{"_pragma", "synchronous(NORMAL)"},
	{"_pragma", "temp_store(MEMORY)"},
	{"_pragma", "wal_autocheckpoint(0)"},
	{"_txlock", "immediate"},
}

// dsnInfo is a parsed database DSN.
type dsnInfo struct {
	dialect string // DialectSQLite or DialectPostgres
	// driverDSN is what the database/sql driver receives.
	driverDSN string
	// checkpointer: SQLite's automatic checkpoints are off and the store
	// runs its own (the DSN did not set wal_autocheckpoint).
	checkpointer bool
}

var schemeRE = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]*):`)

// parseDSN chooses the backend from a DSN:
//
//   - postgres://… or postgresql://… selects PostgreSQL; the DSN goes to pgx
//     unchanged (its query parameters may set run-time parameters such as
//     search_path);
//   - sqlite:PATH, sqlite://PATH, file:PATH, file://PATH or a bare PATH
//     selects SQLite. PATH is a file system path (sqlite:///var/x.db is
//     /var/x.db, sqlite://data/x.db is data/x.db); a query string after ?
//     is passed to modernc.org/sqlite, e.g. ?_pragma=synchronous(FULL).
//
// In-memory SQLite databases are refused: every pooled connection would see
// a database of its own.
func parseDSN(dsn string) (dsnInfo, error) {
	if strings.TrimSpace(dsn) == "" {
		return dsnInfo{}, errors.New("database dsn: empty")
	}
	if strings.ContainsRune(dsn, 0) {
		return dsnInfo{}, errors.New("database dsn: contains a NUL byte")
	}
	m := schemeRE.FindStringSubmatch(dsn)
	if m == nil || len(m[1]) == 1 { // no scheme, or a Windows drive letter
		return parseSQLite(dsn)
	}
	scheme := strings.ToLower(m[1])
	rest := dsn[len(m[0]):]
	switch scheme {
	case "postgres", "postgresql":
		return parsePostgres(dsn)
	case "sqlite", "file":
		return parseSQLite(strings.TrimPrefix(rest, "//"))
	default:
		return dsnInfo{}, fmt.Errorf("database dsn: unsupported scheme %q", scheme)
	}
}

func parsePostgres(dsn string) (dsnInfo, error) {
	if _, err := pgx.ParseConfig(dsn); err != nil {
		// pgx's message never holds the password.
		return dsnInfo{}, fmt.Errorf("database dsn: postgres: %w", err)
	}
	return dsnInfo{dialect: DialectPostgres, driverDSN: dsn}, nil
}

// parseSQLite parses PATH[?QUERY] and builds the modernc.org/sqlite DSN.
func parseSQLite(s string) (dsnInfo, error) {
	path, rawQuery, _ := strings.Cut(s, "?")
	if path == "" {
		return dsnInfo{}, errors.New("database dsn: sqlite: empty path")
	}
	if strings.HasPrefix(path, ":memory:") || strings.HasPrefix(path, "file::memory:") {
		return dsnInfo{}, errors.New("database dsn: sqlite: in-memory databases are not supported (each pooled connection would see its own); use a file")
	}
	if strings.Contains(path, "=") && strings.Contains(path, " ") {
		return dsnInfo{}, errors.New("database dsn: looks like a key=value PostgreSQL DSN; use the postgres:// URL form")
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return dsnInfo{}, fmt.Errorf("database dsn: sqlite: query: %w", err)
	}
	if q.Get("mode") == "memory" || q.Get("vfs") == "memdb" {
		return dsnInfo{}, errors.New("database dsn: sqlite: in-memory databases are not supported; use a file")
	}
	ownCheckpoints := !slices.ContainsFunc(q["_pragma"], func(p string) bool { return pragmaName(p) == "wal_autocheckpoint" })
	addSQLiteDefaults(q)
	return dsnInfo{
		dialect:      DialectSQLite,
		driverDSN:    "file:" + escapeSQLitePath(filepath.Clean(path)) + "?" + q.Encode(),
		checkpointer: ownCheckpoints,
	}, nil
}

// addSQLiteDefaults adds each of sqliteDefaults that q does not set itself.
// A _pragma counts as set when q names the same pragma: modernc runs the
// _pragma list sorted, so two values of one pragma would not apply in the
// order given.
func addSQLiteDefaults(q url.Values) {
	set := map[string]bool{}
	for _, p := range q["_pragma"] {
		set[pragmaName(p)] = true
	}
	for _, d := range sqliteDefaults {
		switch {
		case d.key == "_pragma" && set[pragmaName(d.value)]:
		case d.key != "_pragma" && q.Has(d.key):
		default:
			q.Add(d.key, d.value)
		}
	}
}

// pragmaName returns the name of a _pragma value: "synchronous" for
// "synchronous(FULL)" or "synchronous = FULL".
func pragmaName(p string) string {
	name, _, _ := strings.Cut(p, "(")
	name, _, _ = strings.Cut(name, "=")
	return strings.ToLower(strings.TrimSpace(name))
}

// escapeSQLitePath escapes what SQLite's URI parser would otherwise take as
// syntax: % (escapes), ? (query) and # (fragment).
func escapeSQLitePath(p string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(p)
}
