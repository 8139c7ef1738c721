package sqlstore

import (
	"context"
	"time"

	"github.com/trustbroker/trustbroker/broker/store"
)

type consentRepo struct{ s *Store }

var _ store.Consents = (*consentRepo)(nil)

const consentCols = "id, account_id, rp_id, attributes, purpose, granted_at, expires_at, withdrawn_at, offered, purpose_version, method, lang"

// consentInForce is the condition for a consent in force at the time
// bound to its one placeholder.
const consentInForce = "withdrawn_at = 0 AND (expires_at = 0 OR expires_at > ?)"

func scanConsent(r rowScanner, _ ...any) (*store.Consent, error) {
	var c store.Consent
	err := r.Scan(&c.ID, &c.AccountID, &c.RPID, stringsCol{&c.Attributes}, &c.Purpose,
		timeCol{&c.GrantedAt}, timeCol{&c.ExpiresAt}, timeCol{&c.WithdrawnAt},
		stringsCol{&c.Offered}, &c.PurposeVersion, &c.Method, &c.Lang)
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// Create implements store.Consents. A zero GrantedAt is set to now; the
// account must exist.
func (r *consentRepo) Create(ctx context.Context, c *store.Consent) error {
	c.GrantedAt = r.s.defaultTime(c.GrantedAt)
	err := insert(ctx, r.s,
		"INSERT INTO consents ("+consentCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		c.ID, c.AccountID, c.RPID, stringsArg(c.Attributes), c.Purpose,
		micros(c.GrantedAt), micros(c.ExpiresAt), micros(c.WithdrawnAt),
		stringsArg(c.Offered), c.PurposeVersion, c.Method, c.Lang)
	return wrap(err, "create consent %q", c.ID)
}

// Active implements store.Consents: the newest consent that is neither
// withdrawn nor expired at now.
func (r *consentRepo) Active(ctx context.Context, accountID, rpID string, now time.Time) (*store.Consent, error) {
	c, err := getOne(ctx, r.s, scanConsent,
		"SELECT "+consentCols+" FROM consents WHERE account_id = ? AND rp_id = ? AND "+consentInForce+
			" ORDER BY granted_at DESC, id DESC LIMIT 1",
		accountID, rpID, micros(now))
	return c, wrap(err, "active consent of account %q for %q", accountID, rpID)
}

// Get implements store.Consents, withdrawn and expired consents included.
func (r *consentRepo) Get(ctx context.Context, id string) (*store.Consent, error) {
	c, err := getOne(ctx, r.s, scanConsent, "SELECT "+consentCols+" FROM consents WHERE id = ?", id)
	return c, wrap(err, "get consent %q", id)
}

// ListByAccount implements store.Consents: every record of the account,
// withdrawn and expired ones included, oldest first.
func (r *consentRepo) ListByAccount(ctx context.Context, accountID string) ([]store.Consent, error) {
	cs, err := getAll(ctx, r.s, scanConsent,
		"SELECT "+consentCols+" FROM consents WHERE account_id = ? ORDER BY granted_at, id", accountID)
	return cs, wrap(err, "list consents of account %q", accountID)
}

// Withdraw implements store.Consents. A zero at means now; a consent that
// is withdrawn already or has expired by then is not in force, hence not
// found.
func (r *consentRepo) Withdraw(ctx context.Context, id string, at time.Time) error {
	at = r.s.defaultTime(at)
	err := execOne(ctx, r.s,
		"UPDATE consents SET withdrawn_at = ? WHERE id = ? AND "+consentInForce,
		micros(at), id, micros(at))
	return wrap(err, "withdraw consent %q", id)
}
