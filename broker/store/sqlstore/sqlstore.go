// Package sqlstore implements broker/store over database/sql for SQLite
// (modernc.org/sqlite, pure Go, the embedded default) and PostgreSQL
// (pgx). Every query is written once; what differs between the two lives in
// the dialect type and in the per-dialect migration folders.
//
// # Data representation
//
// Times are BIGINT microseconds since the Unix epoch, UTC; 0 is the zero
// time ("not set"). Values come back in UTC with microsecond precision. JSON
// values and string lists are TEXT holding JSON; an empty list comes back as
// nil, an empty JSON value as nil.
//
// # Concurrency
//
// Every Update runs its read-modify-write in one write transaction that
// locks the row before reading it: PostgreSQL with SELECT … FOR UPDATE,
// SQLite by beginning every write transaction IMMEDIATE (the database's
// write lock). Concurrent updaters therefore queue instead of failing; the
// version column is still bumped and checked, and a mismatch (which the
// lock rules out) is reported as store.ErrConflict. Waiting for SQLite's
// write lock is the busy_timeout's job (10 s).
//
// InTx runs at PostgreSQL's default isolation, READ COMMITTED; on SQLite
// a transaction holds the database's write lock from its first statement
// to its end, so InTx callbacks should be short and must not call the
// outer (non-transaction) Store, which would wait for that very lock.
//
// On SQLite the writes of this process (Exec outside a transaction, InTx,
// Begin) queue in Go for their turn instead of sleeping in SQLite's busy
// handler, and writers that queued up behind each other share one commit,
// each in a SAVEPOINT of its own (groupCommit): a writer's rollback undoes
// only its work, and no writer returns before the commit that holds its
// work, so durability is unchanged. Reads do not queue. Prepared
// statements are cached per query text (SQLite only; pgx caches its own).
//
// # Conventions beyond store's
//
//   - Create methods fill defaults into the value passed: CreatedAt (or
//     GrantedAt, Time, RequestedAt) from Options.Now when zero, Version 1
//     for transactions, Seq for audit events.
//   - Sessions, transactions, OAuth tokens and replay values need an
//     ExpiresAt; the zero time is refused.
//   - Delete, Unlink, TouchIdentity and DeleteToken report store.ErrNotFound
//     when nothing matched.
//   - Rows that name an account (identities, sessions, consents) must name
//     an existing one: a dangling reference is store.ErrNotFound.
//   - Errors never carry session ids, token signatures, transaction ids or
//     replay values, since callers log them.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/trustbroker/trustbroker/broker/store"
)

// Options tunes a Store. The zero value is usable.
type Options struct {
	// Now is the clock for expiry checks and default timestamps;
	// time.Now when nil.
	Now func() time.Time
	// Logger receives migration and GC notes; discarded when nil.
	Logger *slog.Logger
	// MaxOpenConns bounds the connection pool; 10 when zero or negative.
	MaxOpenConns int
}

const defaultMaxOpenConns = 10

// ErrSchemaTooNew reports a database migrated by a newer binary than this
// one: the store refuses to work with it.
var ErrSchemaTooNew = errors.New("sqlstore: database schema is newer than this binary")

// Store is the SQL store. The Store returned by Open is safe for concurrent
// use; the Store handed to an InTx callback is bound to that transaction
// and valid only until the callback returns.
type Store struct {
	db  *sql.DB
	tx  *sql.Tx // nil outside a transaction
	d   *dialect
	now func() time.Time
	log *slog.Logger
	// stmts caches prepared statements (SQLite only; see prepared).
	stmts *stmtCache
	// writers queues and groups this process's SQLite writes (see
	// groupCommit); nil for PostgreSQL.
	writers *groupCommit
	// checkpoints runs the WAL checkpoints (SQLite, unless the DSN sets
	// wal_autocheckpoint); nil otherwise.
	checkpoints *checkpointer
	// grouped: tx is a group's (statements run without cancellation,
	// which would roll back the whole group).
	grouped bool
}

var _ store.Store = (*Store)(nil)

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Open connects to the database named by dsn and checks that its schema is
// not newer than this binary knows. It does not migrate: call Migrate.
//
// The DSN chooses the backend:
//
//   - postgres://… or postgresql://…: PostgreSQL through pgx. Query
//     parameters pgx does not know become run-time parameters, e.g.
//     search_path=trustbroker.
//   - sqlite:PATH, sqlite://PATH, file:PATH or a bare PATH: SQLite, in the
//     file PATH (sqlite:///var/lib/tb.db is /var/lib/tb.db). A query string
//     goes to modernc.org/sqlite. Connections get WAL, busy_timeout(10000),
//     foreign_keys(1), synchronous(NORMAL) (durable across a process crash,
//     not an OS crash or power loss), wal_autocheckpoint(0) (the store
//     checkpoints in the background, see checkpointer) and
//     _txlock=immediate; a _pragma of the same name in the DSN replaces
//     the default, e.g.
//     sqlite:/var/lib/tb.db?_pragma=synchronous(FULL). In-memory databases
//     are refused, since each pooled connection would see its own.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	info, err := parseDSN(dsn)
	if err != nil {
		return nil, err
	}
	d := newDialect(info.dialect)
	db, err := sql.Open(d.driver, info.driverDSN)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: open %s: %w", d.name, err)
	}
	n := opts.MaxOpenConns
	if n <= 0 {
		n = defaultMaxOpenConns
	}
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)

	s := &Store{db: db, d: d, now: opts.Now, log: opts.Logger}
	if !d.postgres() {
		s.stmts = &stmtCache{}
		// One connection for the writers when the pool has more.
		s.writers = newGroupCommit(db, n > 1)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if err := s.checkOpen(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if info.checkpointer {
		s.checkpoints = startCheckpointer(db, s.writers, s.log)
	}
	return s, nil
}

// checkOpen pings the database and refuses a schema newer than ours.
func (s *Store) checkOpen(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlstore: connect to %s: %w", s.d.name, err)
	}
	v, err := s.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	return checkSchemaVersion(s.d.name, v)
}

// Accounts implements store.Store.
func (s *Store) Accounts() store.Accounts { return &accountRepo{s} }

// Sessions implements store.Store.
func (s *Store) Sessions() store.Sessions { return &sessionRepo{s} }

// Transactions implements store.Store.
func (s *Store) Transactions() store.Transactions { return &transactionRepo{s} }

// RelyingParties implements store.Store.
func (s *Store) RelyingParties() store.RelyingParties { return &relyingPartyRepo{s} }

// Consents implements store.Store.
func (s *Store) Consents() store.Consents { return &consentRepo{s} }

// Audit implements store.Store.
func (s *Store) Audit() store.Audit { return &auditRepo{s} }

// Keys implements store.Store.
func (s *Store) Keys() store.Keys { return &keyRepo{s} }

// OAuth implements store.Store.
func (s *Store) OAuth() store.OAuth { return &oauthRepo{s} }

// Replay implements store.Store.
func (s *Store) Replay() store.Replay { return &replayRepo{s} }

// Dialect implements store.Store: "sqlite" or "postgres".
func (s *Store) Dialect() string { return s.d.name }

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlstore: ping: %w", err)
	}
	return nil
}

// Close implements store.Store. It closes the connection pool; calling it
// on the Store of an InTx callback is an error.
func (s *Store) Close() error {
	if s.tx != nil {
		return errors.New("sqlstore: Close called inside a transaction")
	}
	s.stmts.close()
	if s.checkpoints != nil {
		s.checkpoints.close()
	}
	if s.writers != nil {
		s.writers.close()
	}
	return s.db.Close()
}

// InTx implements store.Store. On a Store already bound to a transaction
// fn joins it: its error or panic then aborts the outer transaction too,
// unless the outer callback handles the error.
func (s *Store) InTx(ctx context.Context, fn func(tx store.Store) error) error {
	return s.inTx(ctx, func(tx *Store) error { return fn(tx) })
}

// inTx runs fn in a transaction, joining the running one if any. The
// transaction is rolled back when fn returns an error or panics; a panic
// continues after the rollback.
func (s *Store) inTx(ctx context.Context, fn func(tx *Store) error) error {
	if s.tx != nil {
		return fn(s)
	}
	if s.writers != nil {
		view, end, err := s.beginGrouped(ctx)
		if err != nil {
			return err
		}
		done := false
		defer func() {
			if !done {
				_ = end(false) // fn panicked
			}
		}()
		err = fn(view)
		done = true
		if err != nil {
			_ = end(false)
			return err
		}
		return end(true)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlstore: begin transaction: %w", err)
	}
	done := false
	defer func() {
		if !done {
			if err := tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
				s.log.WarnContext(ctx, "sqlstore: rollback failed", "err", err)
			}
		}
	}()
	view := *s
	view.tx = tx
	if err := fn(&view); err != nil {
		return err
	}
	done = true
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlstore: commit: %w", err)
	}
	return nil
}

// beginGrouped joins the SQLite write group (see groupCommit).
func (s *Store) beginGrouped(ctx context.Context) (*Store, func(commit bool) error, error) {
	tx, end, err := s.writers.join(ctx)
	if err != nil {
		return nil, nil, err
	}
	view := *s
	view.tx, view.grouped = tx, true
	return &view, end, nil
}

// Begin starts a transaction for callers whose transaction boundaries are
// calls of their own rather than a callback (fosite's
// storage.Transactional). It returns the Store bound to the transaction and
// end, which commits (true) or rolls back (false); end must be called
// exactly once. In between the rules of InTx apply: keep it short (no
// signing), and on SQLite do not use the outer Store. Begin must not be
// called on the Store of a transaction.
func (s *Store) Begin(ctx context.Context) (tx store.Store, end func(commit bool) error, err error) {
	if s.tx != nil {
		return nil, nil, errors.New("sqlstore: Begin called inside a transaction")
	}
	if s.writers != nil {
		return s.beginGrouped(ctx)
	}
	t, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("sqlstore: begin transaction: %w", err)
	}
	view := *s
	view.tx = t
	return &view, func(commit bool) error {
		if commit {
			if err := t.Commit(); err != nil {
				return fmt.Errorf("sqlstore: commit: %w", err)
			}
			return nil
		}
		if err := t.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
			return fmt.Errorf("sqlstore: rollback: %w", err)
		}
		return nil
	}, nil
}

func (s *Store) conn() querier {
	if s.tx != nil {
		return s.tx
	}
	return s.db
}

func (s *Store) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if s.tx == nil && s.writers != nil {
		view, end, err := s.beginGrouped(ctx)
		if err != nil {
			return nil, err
		}
		res, err := view.exec(ctx, q, args...)
		if eerr := end(err == nil); err == nil {
			err = eerr
		}
		return res, err
	}
	if s.grouped {
		ctx = context.WithoutCancel(ctx)
	}
	if st := s.prepared(ctx, q); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return s.conn().ExecContext(ctx, s.d.rebind(q), args...)
}

func (s *Store) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if s.grouped {
		ctx = context.WithoutCancel(ctx)
	}
	if st := s.prepared(ctx, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return s.conn().QueryContext(ctx, s.d.rebind(q), args...)
}

func (s *Store) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	if s.grouped {
		ctx = context.WithoutCancel(ctx)
	}
	if st := s.prepared(ctx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return s.conn().QueryRowContext(ctx, s.d.rebind(q), args...)
}

// writeRow runs a write that returns a row (INSERT … RETURNING) and scans
// it into dest. On SQLite outside a transaction it goes through the write
// queue like exec: run as a plain query it would wait for the write lock
// in SQLite's busy handler instead, sleeping while the queue's groups
// hold the lock, on a pooled connection a checkpoint may need.
func (s *Store) writeRow(ctx context.Context, dest []any, q string, args ...any) error {
	if s.tx == nil && s.writers != nil {
		view, end, err := s.beginGrouped(ctx)
		if err != nil {
			return err
		}
		err = view.queryRow(ctx, q, args...).Scan(dest...)
		if eerr := end(err == nil); err == nil {
			err = eerr
		}
		return err
	}
	return s.queryRow(ctx, q, args...).Scan(dest...)
}

// nowMicros is the current time as stored.
func (s *Store) nowMicros() int64 { return micros(s.now()) }

// defaultTime returns t, or the current time rounded as stored when t is
// zero.
func (s *Store) defaultTime(t time.Time) time.Time {
	if t.IsZero() {
		return roundTime(s.now())
	}
	return t
}
