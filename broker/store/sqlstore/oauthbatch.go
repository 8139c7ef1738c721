package sqlstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/trustbroker/trustbroker/broker/store"
)

var _ store.OAuthBatch = (*Store)(nil)

// The statements of an OAuth write, shared by the single calls (oauth.go)
// and the batch.
const (
	insertTokenSQL = "INSERT INTO oauth_tokens (" + tokenCols + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
	// deactivateTokenSQL is the compare-and-swap: the row must be active
	// and unexpired.
	deactivateTokenSQL = "UPDATE oauth_tokens SET active = FALSE WHERE kind = ? AND signature = ? AND active = TRUE AND expires_at > ?"
	// revokeGrantSQL has active = TRUE as a literal, so the partial index
	// of migration 0009 applies.
	revokeGrantSQL = "UPDATE oauth_tokens SET active = FALSE WHERE kind = ? AND request_id = ? AND active = TRUE"
	// pgSwapSQL is deactivateTokenSQL as a statement that fails when it
	// changes no row (division by zero, SQLSTATE 22012), so that a
	// pipelined batch stops there and its implicit transaction rolls
	// back.
	pgSwapSQL = "WITH swapped AS (" + deactivateTokenSQL + " RETURNING 1) SELECT 1 / count(*) FROM swapped"
)

// WriteOAuth implements store.OAuthBatch. On SQLite the writes run in one
// grouped transaction (one turn of the write queue); on PostgreSQL they
// go to the server as one pipeline in an implicit transaction: one round
// trip instead of one per statement plus BEGIN and COMMIT, which halves
// the broker's CPU per refresh rotation (BenchmarkRefreshRotation). Inside
// a transaction they run on it, one by one.
func (s *Store) WriteOAuth(ctx context.Context, ws []store.OAuthWrite) error {
	if s.tx == nil && s.d.postgres() {
		return s.writeOAuthPipelined(ctx, ws)
	}
	if s.tx != nil {
		return applyOAuth(ctx, s.OAuth(), ws)
	}
	tx, end, err := s.Begin(ctx)
	if err != nil {
		return err
	}
	err = applyOAuth(ctx, tx.OAuth(), ws)
	return errors.Join(err, end(err == nil))
}

// applyOAuth runs ws one by one on o; the first error ends it.
func applyOAuth(ctx context.Context, o store.OAuth, ws []store.OAuthWrite) error {
	for i, w := range ws {
		if err := w.Apply(ctx, o); err != nil {
			return &store.OAuthBatchError{Index: i, Err: err}
		}
	}
	return nil
}

// writeOAuthPipelined sends ws to PostgreSQL as one batch (pgx: one
// round trip, one implicit transaction that any failing statement rolls
// back).
func (s *Store) writeOAuthPipelined(ctx context.Context, ws []store.OAuthWrite) error {
	now := s.nowMicros()
	b := &pgx.Batch{}
	for i, w := range ws {
		switch {
		case w.Deactivate != nil:
			b.Queue(s.d.rebind(pgSwapSQL), w.Deactivate.Kind, w.Deactivate.Signature, now)
		case w.Revoke != nil:
			b.Queue(s.d.rebind(revokeGrantSQL), w.Revoke.Kind, w.Revoke.RequestID)
		case w.Create != nil:
			args, err := s.tokenArgs(w.Create)
			if err != nil {
				return &store.OAuthBatchError{Index: i, Err: err}
			}
			b.Queue(s.d.rebind(insertTokenSQL), args...)
		default:
			return &store.OAuthBatchError{Index: i, Err: errors.New("sqlstore: empty OAuth write")}
		}
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return wrap(err, "OAuth batch")
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		pc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("sqlstore: OAuth batch: driver connection %T is not pgx's", dc)
		}
		br := pc.Conn().SendBatch(ctx, b)
		for i, w := range ws {
			if _, err := br.Exec(); err != nil {
				_ = br.Close()
				switch {
				case w.Deactivate != nil && pgCode(err) == "22012":
					err = wrap(store.ErrNotFound, "deactivate %s", w.Deactivate.Kind)
				case w.Create != nil:
					err = wrap(s.mapWriteErr(err), "create %s", w.Create.Kind)
				default:
					err = wrap(err, "OAuth batch")
				}
				return &store.OAuthBatchError{Index: i, Err: err}
			}
		}
		return wrap(br.Close(), "OAuth batch")
	})
}

// tokenArgs checks a new token row and returns its insert's arguments; a
// zero RequestedAt becomes now.
func (s *Store) tokenArgs(t *store.OAuthToken) ([]any, error) {
	if err := requireExpiry(t.ExpiresAt); err != nil {
		return nil, wrap(err, "create %s", t.Kind)
	}
	// Data is stored as given (store.OAuthToken): no second parse of the
	// request just encoded, on the path of every token issued.
	var data any
	if len(t.Data) > 0 {
		data = string(t.Data)
	}
	t.RequestedAt = s.defaultTime(t.RequestedAt)
	return []any{t.Kind, t.Signature, t.RequestID, t.ClientID, t.Subject, t.Active,
		micros(t.RequestedAt), micros(t.ExpiresAt), data}, nil
}
