package sqlstore

import (
	"context"
	"time"

	"github.com/trustbroker/trustbroker/broker/store"
)

// gcTables are the tables whose rows expire. Signing keys are not among
// them (broker/keys owns their lifecycle); consents and audit events are
// records and stay.
var gcTables = []string{"login_transactions", "sessions", "oauth_tokens", "replay_values", "revocation_cache"}

// gcBatch bounds the rows one DELETE removes, so that a large backlog
// never holds the write lock for long.
const gcBatch = 1000

// GC implements store.Store: it deletes the transactions, sessions, OAuth
// tokens and replay values that expired at or before now, in batches, and
// counts them per table.
func (s *Store) GC(ctx context.Context, now time.Time) (store.GCResult, error) {
	res := store.GCResult{}
	for _, table := range gcTables {
		n, err := s.gcTable(ctx, table, micros(now))
		res[table] = n
		if err != nil {
			return res, wrap(err, "gc %s", table)
		}
	}
	if total := res.Total(); total > 0 {
		s.log.DebugContext(ctx, "sqlstore: gc", "removed", total, "tables", map[string]int64(res))
	}
	return res, nil
}

// gcTable deletes the expired rows of table batch by batch.
func (s *Store) gcTable(ctx context.Context, table string, now int64) (int64, error) {
	key := s.d.rowKey()
	q := "DELETE FROM " + table + " WHERE " + key + " IN (SELECT " + key + " FROM " + table +
		" WHERE expires_at <= ? LIMIT ?)"
	var total int64
	for {
		n, err := execAffected(ctx, s, q, now, gcBatch)
		total += n
		if err != nil || n < gcBatch {
			return total, err
		}
	}
}
