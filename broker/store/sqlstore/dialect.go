package sqlstore

import (
	"errors"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	// Registers the "pgx" database/sql driver.
	_ "github.com/jackc/pgx/v5/stdlib"
)

// Dialect names, as reported by (*Store).Dialect.
const (
	DialectSQLite   = "sqlite"
	DialectPostgres = "postgres"
)

// dialect holds everything that differs between SQLite and PostgreSQL at
// run time. Queries are written once with ? placeholders; the schema
// differences live in the per-dialect migration folders.
type dialect struct {
	name   string // DialectSQLite or DialectPostgres
	driver string // database/sql driver name

	// rebound caches the $n form of each query (PostgreSQL only).
	rebound sync.Map // string -> string
}

func newDialect(name string) *dialect {
	d := &dialect{name: name, driver: "sqlite"}
	if name == DialectPostgres {
		d.driver = "pgx"
	}
	return d
}

func (d *dialect) postgres() bool { return d.name == DialectPostgres }

// rebind turns the ? placeholders of q into $1, $2... for PostgreSQL. Each
// distinct query string is rewritten once and then served from the cache.
func (d *dialect) rebind(q string) string {
	if !d.postgres() {
		return q
	}
	if v, ok := d.rebound.Load(q); ok {
		return v.(string)
	}
	out := rebindDollar(q)
	d.rebound.Store(q, out)
	return out
}

// rebindDollar replaces every ? outside quoted text with $n.
func rebindDollar(q string) string {
	var b strings.Builder
	b.Grow(len(q) + 8)
	n := 0
	var quote byte // the open quote character, 0 outside quotes
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// forUpdate is appended to a SELECT that reads a row a write transaction is
// about to change. PostgreSQL locks the row; SQLite needs nothing because
// every write transaction begins IMMEDIATE and so holds the database's
// write lock before it reads.
func (d *dialect) forUpdate() string {
	if d.postgres() {
		return " FOR UPDATE"
	}
	return ""
}

// rowKey is the physical row address used by batched deletes.
func (d *dialect) rowKey() string {
	if d.postgres() {
		return "ctid"
	}
	return "rowid"
}

// migrationLock is the statement that serializes migrations between
// processes, run first in each migration transaction; empty when beginning
// the transaction suffices (SQLite: BEGIN IMMEDIATE). On PostgreSQL the
// advisory lock is keyed by the current schema, so that separate schemas
// migrate independently.
func (d *dialect) migrationLock() string {
	if d.postgres() {
		// 1953658227 is "trus" in ASCII: the lock class of this program.
		return "SELECT pg_advisory_xact_lock(1953658227, hashtext(current_schema()))"
	}
	return ""
}

// tableExistsQuery counts the tables named ? in the schema this connection
// writes to.
func (d *dialect) tableExistsQuery() string {
	if d.postgres() {
		return "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = current_schema() AND tablename = ?"
	}
	return "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?"
}

// isUniqueViolation reports whether err is a primary-key or unique
// constraint violation.
func (d *dialect) isUniqueViolation(err error) bool {
	if code, ok := sqliteCode(err); ok {
		return code == sqlite3.SQLITE_CONSTRAINT_UNIQUE || code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return pgCode(err) == "23505" // unique_violation
}

// isForeignKeyViolation reports whether err is a foreign-key violation.
func (d *dialect) isForeignKeyViolation(err error) bool {
	if code, ok := sqliteCode(err); ok {
		return code == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
	}
	return pgCode(err) == "23503" // foreign_key_violation
}

func sqliteCode(err error) (int, bool) {
	var e *sqlite.Error
	if errors.As(err, &e) {
		return e.Code(), true
	}
	return 0, false
}

func pgCode(err error) string {
	var e *pgconn.PgError
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}
