package sqlstore

import (
	"context"
	"database/sql"
	"strings"
	"sync"
	"sync/atomic"
)

// maxCachedStmts bounds the statement cache. The queries of this package
// are constant strings or a few built from fixed parts, so the bound is
// never reached in practice; beyond it queries run unprepared.
const maxCachedStmts = 256

// stmtCache keeps one prepared *sql.Stmt per query text. modernc.org/sqlite
// compiles every statement it is handed anew (about a tenth of the CPU of a
// token write); database/sql prepares a cached statement once per pooled
// connection and reuses it. PostgreSQL does not use it: pgx keeps its own
// per-connection statement cache. Only SELECT, INSERT, UPDATE and DELETE
// are cached (no DDL, no multi-statement scripts).
type stmtCache struct {
	m       sync.Map // query string -> *sql.Stmt
	pending sync.Map // query string -> struct{}, prepared in the background
	n       atomic.Int32
}

// prepared returns the cached statement for q, bound to the transaction
// when s is one, or nil when q runs unprepared this time (no cache, not a
// cacheable statement, a full cache, a failed preparation: the caller's own
// call then reports the error).
//
// Inside a transaction a missing statement is prepared in the background:
// preparing needs a pooled connection, and waiting for one while holding a
// transaction's could deadlock a pool whose connections all are in
// transactions.
func (s *Store) prepared(ctx context.Context, q string) *sql.Stmt {
	c := s.stmts
	if c == nil {
		return nil
	}
	v, ok := c.m.Load(q)
	if !ok {
		if !cacheable(q) || c.n.Load() >= maxCachedStmts {
			return nil
		}
		if s.tx != nil {
			if _, busy := c.pending.LoadOrStore(q, struct{}{}); !busy {
				go func() {
					c.prepare(context.Background(), s.db, q)
					c.pending.Delete(q)
				}()
			}
			return nil
		}
		v = c.prepare(ctx, s.db, q)
		if v == nil {
			return nil
		}
	}
	st := v.(*sql.Stmt)
	if s.tx != nil {
		// The transaction reuses the statement when it was prepared on
		// the transaction's connection before (else prepares it there
		// once); the transaction's handle closes with the transaction.
		return s.tx.StmtContext(ctx, st)
	}
	return st
}

// cacheable admits data statements only.
func cacheable(q string) bool {
	if len(q) < 7 {
		return false
	}
	switch strings.ToUpper(q[:7]) {
	case "SELECT ", "INSERT ", "UPDATE ", "DELETE ":
		return true
	}
	return false
}

// prepare prepares q once and caches it; nil when it cannot be prepared.
func (c *stmtCache) prepare(ctx context.Context, db *sql.DB, q string) any {
	st, err := db.PrepareContext(context.WithoutCancel(ctx), q)
	if err != nil {
		return nil
	}
	if v, loaded := c.m.LoadOrStore(q, st); loaded {
		_ = st.Close()
		return v
	}
	c.n.Add(1)
	return st
}

// close closes every cached statement.
func (c *stmtCache) close() {
	if c == nil {
		return
	}
	c.m.Range(func(k, v any) bool {
		_ = v.(*sql.Stmt).Close()
		c.m.Delete(k)
		return true
	})
}
