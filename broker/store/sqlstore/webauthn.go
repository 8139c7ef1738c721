package sqlstore

import (
	"context"
	"errors"
	"time"

	"github.com/trustbroker/trustbroker/broker/store"
)

// WebAuthn implements store.Store.
func (s *Store) WebAuthn() store.WebAuthnCredentials { return &webauthnRepo{s} }

type webauthnRepo struct{ s *Store }

var _ store.WebAuthnCredentials = (*webauthnRepo)(nil)

const webauthnCols = "id, account_id, provider_id, user_handle, user_name, public_key, sign_count, aaguid, " +
	"backup_eligible, backup_state, user_verified, transports, attestation_format, attestation_type, " +
	"attested, discoverable, name, cloned, created_at, last_used_at"

func scanWebAuthn(r rowScanner, extra ...any) (*store.WebAuthnCredential, error) {
	var c store.WebAuthnCredential
	var count int64
	dest := []any{&c.ID, &c.AccountID, &c.ProviderID, &c.UserHandle, &c.UserName, &c.PublicKey, &count, &c.AAGUID,
		&c.BackupEligible, &c.BackupState, &c.UserVerified, stringsCol{&c.Transports}, &c.AttestationFormat,
		&c.AttestationType, &c.Attested, &c.Discoverable, &c.Name, &c.Cloned,
		timeCol{&c.CreatedAt}, timeCol{&c.LastUsedAt}}
	if err := r.Scan(append(dest, extra...)...); err != nil {
		return nil, err
	}
	c.SignCount = uint32(count)
	if len(c.AAGUID) == 0 {
		c.AAGUID = nil
	}
	return &c, nil
}

// Create implements store.WebAuthnCredentials. A zero CreatedAt is set to
// now.
func (r *webauthnRepo) Create(ctx context.Context, c *store.WebAuthnCredential) error {
	if len(c.ID) == 0 || len(c.PublicKey) == 0 || len(c.UserHandle) == 0 {
		return wrap(errors.New("id, public key and user handle are required"), "create webauthn credential")
	}
	c.CreatedAt = r.s.defaultTime(c.CreatedAt)
	var aaguid any
	if len(c.AAGUID) > 0 {
		aaguid = c.AAGUID
	}
	err := insert(ctx, r.s,
		"INSERT INTO webauthn_credentials ("+webauthnCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		c.ID, c.AccountID, c.ProviderID, c.UserHandle, c.UserName, c.PublicKey, int64(c.SignCount), aaguid,
		c.BackupEligible, c.BackupState, c.UserVerified, stringsArg(c.Transports), c.AttestationFormat,
		c.AttestationType, c.Attested, c.Discoverable, c.Name, c.Cloned, micros(c.CreatedAt), micros(c.LastUsedAt))
	return wrap(err, "create webauthn credential of account %q", c.AccountID)
}

// Get implements store.WebAuthnCredentials.
func (r *webauthnRepo) Get(ctx context.Context, id []byte) (*store.WebAuthnCredential, error) {
	c, err := getOne(ctx, r.s, scanWebAuthn, "SELECT "+webauthnCols+" FROM webauthn_credentials WHERE id = ?", id)
	return c, wrap(err, "get webauthn credential")
}

// ListByAccount implements store.WebAuthnCredentials.
func (r *webauthnRepo) ListByAccount(ctx context.Context, accountID string) ([]store.WebAuthnCredential, error) {
	cs, err := getAll(ctx, r.s, scanWebAuthn,
		"SELECT "+webauthnCols+" FROM webauthn_credentials WHERE account_id = ? ORDER BY created_at, id", accountID)
	return cs, wrap(err, "list webauthn credentials of account %q", accountID)
}

// ListByUserName implements store.WebAuthnCredentials.
func (r *webauthnRepo) ListByUserName(ctx context.Context, providerID, userName string) ([]store.WebAuthnCredential, error) {
	cs, err := getAll(ctx, r.s, scanWebAuthn,
		"SELECT "+webauthnCols+" FROM webauthn_credentials WHERE provider_id = ? AND user_name = ? ORDER BY created_at, id",
		providerID, userName)
	return cs, wrap(err, "list webauthn credentials by user name")
}

// UseCounter implements store.WebAuthnCredentials: one UPDATE guarded by
// the old counter value, so the database decides which of two racing
// assertions wins.
func (r *webauthnRepo) UseCounter(ctx context.Context, id []byte, oldCount, newCount uint32, backupState bool, at time.Time) error {
	n, err := execAffected(ctx, r.s,
		"UPDATE webauthn_credentials SET sign_count = ?, backup_state = ?, last_used_at = ? WHERE id = ? AND sign_count = ? AND cloned = ?",
		int64(newCount), backupState, micros(at), id, int64(oldCount), false)
	if err == nil && n == 0 {
		if _, gerr := r.Get(ctx, id); gerr != nil {
			return gerr
		}
		err = store.ErrConflict
	}
	return wrap(err, "use webauthn credential")
}

// MarkCloned implements store.WebAuthnCredentials.
func (r *webauthnRepo) MarkCloned(ctx context.Context, id []byte) error {
	err := execOne(ctx, r.s, "UPDATE webauthn_credentials SET cloned = ? WHERE id = ?", true, id)
	return wrap(err, "mark webauthn credential cloned")
}

// Rename implements store.WebAuthnCredentials.
func (r *webauthnRepo) Rename(ctx context.Context, id []byte, name string) error {
	err := execOne(ctx, r.s, "UPDATE webauthn_credentials SET name = ? WHERE id = ?", name, id)
	return wrap(err, "rename webauthn credential")
}

// Delete implements store.WebAuthnCredentials.
func (r *webauthnRepo) Delete(ctx context.Context, id []byte) error {
	return wrap(execOne(ctx, r.s, "DELETE FROM webauthn_credentials WHERE id = ?", id), "delete webauthn credential")
}
