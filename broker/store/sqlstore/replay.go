package sqlstore

import (
	"context"
	"time"

	"github.com/trustbroker/trustbroker/broker/store"
)

type replayRepo struct{ s *Store }

var _ store.Replay = (*replayRepo)(nil)

// Use implements store.Replay in one statement: the insert takes a new
// value, replaces an expired one, and changes nothing when the value is
// still live. Both databases run the upsert atomically (PostgreSQL locks
// the conflicting row and rechecks the condition), so of two concurrent
// uses exactly one changes a row.
func (r *replayRepo) Use(ctx context.Context, namespace, value string, expiresAt time.Time) error {
	if err := requireExpiry(expiresAt); err != nil {
		return wrap(err, "use one-time value in %q", namespace)
	}
	n, err := execAffected(ctx, r.s,
		"INSERT INTO replay_values (namespace, value, expires_at) VALUES (?, ?, ?)"+
			" ON CONFLICT (namespace, value) DO UPDATE SET expires_at = excluded.expires_at"+
			" WHERE replay_values.expires_at <= ?",
		namespace, value, micros(expiresAt), r.s.nowMicros())
	if err == nil && n == 0 {
		err = store.ErrConflict
	}
	return wrap(err, "use one-time value in %q", namespace)
}
