package sqlstore

import (
	"context"

	"github.com/trustbroker/trustbroker/broker/store"
)

type sessionRepo struct{ s *Store }

var _ store.Sessions = (*sessionRepo)(nil)

const sessionCols = "id, account_id, created_at, expires_at, last_seen_at, auth_time, loa, amr, provider_id, credential_kind, relying_parties, identity"

func scanSession(r rowScanner, extra ...any) (*store.Session, error) {
	var s store.Session
	dest := []any{&s.ID, &s.AccountID, timeCol{&s.CreatedAt}, timeCol{&s.ExpiresAt}, timeCol{&s.LastSeenAt},
		timeCol{&s.AuthTime}, &s.LoA, stringsCol{&s.AMR}, &s.ProviderID, &s.CredentialKind, stringsCol{&s.RelyingParties},
		jsonCol{&s.Identity}}
	if err := r.Scan(append(dest, extra...)...); err != nil {
		return nil, err
	}
	return &s, nil
}

// Create implements store.Sessions. A zero CreatedAt is set to now;
// ExpiresAt is required and the account must exist.
func (r *sessionRepo) Create(ctx context.Context, s *store.Session) error {
	if err := requireExpiry(s.ExpiresAt); err != nil {
		return wrap(err, "create session")
	}
	identity, err := jsonArg("identity", s.Identity)
	if err != nil {
		return wrap(err, "create session")
	}
	s.CreatedAt = r.s.defaultTime(s.CreatedAt)
	err = insert(ctx, r.s,
		"INSERT INTO sessions ("+sessionCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		s.ID, s.AccountID, micros(s.CreatedAt), micros(s.ExpiresAt), micros(s.LastSeenAt), micros(s.AuthTime),
		s.LoA, stringsArg(s.AMR), s.ProviderID, s.CredentialKind, stringsArg(s.RelyingParties), identity)
	return wrap(err, "create session")
}

// Get implements store.Sessions; an expired session is not found.
func (r *sessionRepo) Get(ctx context.Context, id string) (*store.Session, error) {
	s, err := getOne(ctx, r.s, scanSession,
		"SELECT "+sessionCols+" FROM sessions WHERE id = ? AND expires_at > ?", id, r.s.nowMicros())
	return s, wrap(err, "get session")
}

// Update implements store.Sessions; an expired session is not found. The
// ID cannot change.
func (r *sessionRepo) Update(ctx context.Context, id string, fn func(*store.Session) error) (*store.Session, error) {
	s, err := update(ctx, r.s, updateSpec[store.Session]{
		load: func(ctx context.Context, tx *Store) (*store.Session, int64, error) {
			return loadVersioned(ctx, tx, scanSession,
				"SELECT "+sessionCols+", version FROM sessions WHERE id = ? AND expires_at > ?", id, tx.nowMicros())
		},
		save: func(ctx context.Context, tx *Store, s *store.Session, version int64) (int64, error) {
			s.ID = id
			identity, err := jsonArg("identity", s.Identity)
			if err != nil {
				return 0, err
			}
			return execAffected(ctx, tx,
				"UPDATE sessions SET account_id = ?, created_at = ?, expires_at = ?, last_seen_at = ?, auth_time = ?, loa = ?, amr = ?, provider_id = ?, credential_kind = ?, relying_parties = ?, identity = ?, version = version + 1 WHERE id = ? AND version = ?",
				s.AccountID, micros(s.CreatedAt), micros(s.ExpiresAt), micros(s.LastSeenAt), micros(s.AuthTime), s.LoA,
				stringsArg(s.AMR), s.ProviderID, s.CredentialKind, stringsArg(s.RelyingParties), identity, id, version)
		},
	}, fn)
	return s, wrap(r.s.mapWriteErr(err), "update session")
}

// Delete implements store.Sessions.
func (r *sessionRepo) Delete(ctx context.Context, id string) error {
	return wrap(execOne(ctx, r.s, "DELETE FROM sessions WHERE id = ?", id), "delete session")
}

// ListByAccount implements store.Sessions: the account's unexpired
// sessions, oldest first.
func (r *sessionRepo) ListByAccount(ctx context.Context, accountID string) ([]store.Session, error) {
	ss, err := getAll(ctx, r.s, scanSession,
		"SELECT "+sessionCols+" FROM sessions WHERE account_id = ? AND expires_at > ? ORDER BY created_at, id",
		accountID, r.s.nowMicros())
	return ss, wrap(err, "list sessions of account %q", accountID)
}

// DeleteByAccount implements store.Sessions, expired sessions included.
func (r *sessionRepo) DeleteByAccount(ctx context.Context, accountID string) (int64, error) {
	n, err := execAffected(ctx, r.s, "DELETE FROM sessions WHERE account_id = ?", accountID)
	return n, wrap(err, "delete sessions of account %q", accountID)
}
