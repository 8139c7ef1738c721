package sqlstore

import (
	"context"
	"time"

	"github.com/trustbroker/trustbroker/broker/store"
)

type accountRepo struct{ s *Store }

var _ store.Accounts = (*accountRepo)(nil)

const accountCols = "id, display_name, disabled, created_at, updated_at"

// accountColsA is accountCols qualified with the alias "a", for joins.
var accountColsA = prefixCols("a", accountCols)

func scanAccount(r rowScanner, extra ...any) (*store.Account, error) {
	var a store.Account
	dest := []any{&a.ID, &a.DisplayName, &a.Disabled, timeCol{&a.CreatedAt}, timeCol{&a.UpdatedAt}}
	if err := r.Scan(append(dest, extra...)...); err != nil {
		return nil, err
	}
	return &a, nil
}

// Create implements store.Accounts. A zero CreatedAt is set to now and a
// zero UpdatedAt to CreatedAt.
func (r *accountRepo) Create(ctx context.Context, a *store.Account) error {
	a.CreatedAt = r.s.defaultTime(a.CreatedAt)
	if a.UpdatedAt.IsZero() {
		a.UpdatedAt = a.CreatedAt
	}
	err := insert(ctx, r.s,
		"INSERT INTO accounts ("+accountCols+") VALUES (?, ?, ?, ?, ?)",
		a.ID, a.DisplayName, a.Disabled, micros(a.CreatedAt), micros(a.UpdatedAt))
	return wrap(err, "create account %q", a.ID)
}

// Get implements store.Accounts.
func (r *accountRepo) Get(ctx context.Context, id string) (*store.Account, error) {
	a, err := getOne(ctx, r.s, scanAccount, "SELECT "+accountCols+" FROM accounts WHERE id = ?", id)
	return a, wrap(err, "get account %q", id)
}

// Update implements store.Accounts. The ID cannot change; UpdatedAt is set
// to now.
func (r *accountRepo) Update(ctx context.Context, id string, fn func(*store.Account) error) (*store.Account, error) {
	a, err := update(ctx, r.s, updateSpec[store.Account]{
		load: func(ctx context.Context, tx *Store) (*store.Account, int64, error) {
			return loadVersioned(ctx, tx, scanAccount, "SELECT "+accountCols+", version FROM accounts WHERE id = ?", id)
		},
		save: func(ctx context.Context, tx *Store, a *store.Account, version int64) (int64, error) {
			a.ID = id
			a.UpdatedAt = roundTime(tx.now())
			return execAffected(ctx, tx,
				"UPDATE accounts SET display_name = ?, disabled = ?, created_at = ?, updated_at = ?, version = version + 1 WHERE id = ? AND version = ?",
				a.DisplayName, a.Disabled, micros(a.CreatedAt), micros(a.UpdatedAt), id, version)
		},
	}, fn)
	return a, wrap(err, "update account %q", id)
}

// Delete implements store.Accounts: identities, sessions and consents go
// with the account (ON DELETE CASCADE).
func (r *accountRepo) Delete(ctx context.Context, id string) error {
	err := execOne(ctx, r.s, "DELETE FROM accounts WHERE id = ?", id)
	return wrap(err, "delete account %q", id)
}

const identityCols = "account_id, provider_id, subject, kind, linked_at, last_used_at, match_key"

// identitySelect reads identityCols with a NULL match key as "".
const identitySelect = "account_id, provider_id, subject, kind, linked_at, last_used_at, COALESCE(match_key, '')"

func scanIdentity(r rowScanner, extra ...any) (*store.LinkedIdentity, error) {
	var li store.LinkedIdentity
	dest := []any{&li.AccountID, &li.ProviderID, &li.Subject, &li.Kind, timeCol{&li.LinkedAt}, timeCol{&li.LastUsedAt}, &li.MatchKey}
	if err := r.Scan(append(dest, extra...)...); err != nil {
		return nil, err
	}
	return &li, nil
}

// Link implements store.Accounts. A zero LinkedAt is set to now.
func (r *accountRepo) Link(ctx context.Context, li store.LinkedIdentity) error {
	li.LinkedAt = r.s.defaultTime(li.LinkedAt)
	err := insert(ctx, r.s,
		"INSERT INTO linked_identities ("+identityCols+") VALUES (?, ?, ?, ?, ?, ?, ?)",
		li.AccountID, li.ProviderID, li.Subject, li.Kind, micros(li.LinkedAt), micros(li.LastUsedAt), nullString(li.MatchKey))
	return wrap(err, "link identity at %q to account %q", li.ProviderID, li.AccountID)
}

// Unlink implements store.Accounts.
func (r *accountRepo) Unlink(ctx context.Context, providerID, subject string) error {
	err := execOne(ctx, r.s, "DELETE FROM linked_identities WHERE provider_id = ? AND subject = ?", providerID, subject)
	return wrap(err, "unlink identity at %q", providerID)
}

// FindByIdentity implements store.Accounts.
func (r *accountRepo) FindByIdentity(ctx context.Context, providerID, subject string) (*store.Account, error) {
	a, err := getOne(ctx, r.s, scanAccount,
		"SELECT "+accountColsA+" FROM accounts a JOIN linked_identities li ON li.account_id = a.id WHERE li.provider_id = ? AND li.subject = ?",
		providerID, subject)
	return a, wrap(err, "find account by identity at %q", providerID)
}

// Identities implements store.Accounts, oldest link first.
func (r *accountRepo) Identities(ctx context.Context, accountID string) ([]store.LinkedIdentity, error) {
	ids, err := getAll(ctx, r.s, scanIdentity,
		"SELECT "+identitySelect+" FROM linked_identities WHERE account_id = ? ORDER BY linked_at, provider_id, subject",
		accountID)
	return ids, wrap(err, "list identities of account %q", accountID)
}

// TouchIdentity implements store.Accounts.
func (r *accountRepo) TouchIdentity(ctx context.Context, providerID, subject string, at time.Time) error {
	err := execOne(ctx, r.s,
		"UPDATE linked_identities SET last_used_at = ? WHERE provider_id = ? AND subject = ?",
		micros(at), providerID, subject)
	return wrap(err, "touch identity at %q", providerID)
}

// SetMatchKey implements store.Accounts.
func (r *accountRepo) SetMatchKey(ctx context.Context, providerID, subject, matchKey string) error {
	err := execOne(ctx, r.s,
		"UPDATE linked_identities SET match_key = ? WHERE provider_id = ? AND subject = ?",
		nullString(matchKey), providerID, subject)
	return wrap(err, "set match key of identity at %q", providerID)
}

// FindByMatchKey implements store.Accounts.
func (r *accountRepo) FindByMatchKey(ctx context.Context, kind, matchKey string) ([]store.LinkedIdentity, error) {
	if matchKey == "" {
		return nil, nil
	}
	ids, err := getAll(ctx, r.s, scanIdentity,
		"SELECT "+identitySelect+" FROM linked_identities WHERE kind = ? AND match_key = ? ORDER BY linked_at, provider_id, subject",
		kind, matchKey)
	return ids, wrap(err, "find identities of kind %q by match key", kind)
}

// nullString stores "" as NULL.
func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}
