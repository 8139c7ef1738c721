package sqlstore

import (
	"context"

	"github.com/trustbroker/trustbroker/broker/store"
)

type oauthRepo struct{ s *Store }

var _ store.OAuth = (*oauthRepo)(nil)

const tokenCols = "kind, signature, request_id, client_id, subject, active, requested_at, expires_at, data"

func scanToken(r rowScanner, _ ...any) (*store.OAuthToken, error) {
	var t store.OAuthToken
	err := r.Scan(&t.Kind, &t.Signature, &t.RequestID, &t.ClientID, &t.Subject, &t.Active,
		timeCol{&t.RequestedAt}, timeCol{&t.ExpiresAt}, jsonCol{&t.Data})
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// CreateToken implements store.OAuth. A zero RequestedAt is set to now;
// ExpiresAt is required.
func (r *oauthRepo) CreateToken(ctx context.Context, t *store.OAuthToken) error {
	args, err := r.s.tokenArgs(t)
	if err != nil {
		return err
	}
	return wrap(insert(ctx, r.s, insertTokenSQL, args...), "create %s", t.Kind)
}

// GetToken implements store.OAuth.
func (r *oauthRepo) GetToken(ctx context.Context, kind, signature string) (*store.OAuthToken, error) {
	t, err := getOne(ctx, r.s, scanToken,
		"SELECT "+tokenCols+" FROM oauth_tokens WHERE kind = ? AND signature = ? AND expires_at > ?",
		kind, signature, r.s.nowMicros())
	return t, wrap(err, "get %s", kind)
}

// DeleteToken implements store.OAuth, expired tokens included.
func (r *oauthRepo) DeleteToken(ctx context.Context, kind, signature string) error {
	err := execOne(ctx, r.s, "DELETE FROM oauth_tokens WHERE kind = ? AND signature = ?", kind, signature)
	return wrap(err, "delete %s", kind)
}

// DeactivateToken implements store.OAuth; an expired token is not found.
func (r *oauthRepo) DeactivateToken(ctx context.Context, kind, signature string) error {
	err := execOne(ctx, r.s, deactivateTokenSQL, kind, signature, r.s.nowMicros())
	return wrap(err, "deactivate %s", kind)
}

// RevokeByRequestID implements store.OAuth and counts the tokens it turned
// inactive.
func (r *oauthRepo) RevokeByRequestID(ctx context.Context, kind, requestID string) (int64, error) {
	n, err := execAffected(ctx, r.s, revokeGrantSQL, kind, requestID)
	return n, wrap(err, "revoke %s of request", kind)
}

// RevokeBySubject implements store.OAuth and counts the tokens it turned
// inactive.
func (r *oauthRepo) RevokeBySubject(ctx context.Context, kind, clientID, subject string) (int64, error) {
	n, err := execAffected(ctx, r.s,
		"UPDATE oauth_tokens SET active = ? WHERE kind = ? AND client_id = ? AND subject = ? AND active = ?",
		false, kind, clientID, subject, true)
	return n, wrap(err, "revoke %s of client and subject", kind)
}
