package sqlstore

import (
	"context"

	"github.com/trustbroker/trustbroker/broker/store"
)

type transactionRepo struct{ s *Store }

var _ store.Transactions = (*transactionRepo)(nil)

const transactionCols = "id, protocol, rp_id, state, created_at, expires_at, request, params, provider_id, provider_state, result, account_id, session_id, version"

// transactionJSON names the JSON columns in the order transactionArgs
// passes them.
var transactionJSON = []string{"request", "params", "provider_state", "result"}

func scanTransaction(r rowScanner, _ ...any) (*store.Transaction, error) {
	var t store.Transaction
	err := r.Scan(&t.ID, &t.Protocol, &t.RPID, &t.State, timeCol{&t.CreatedAt}, timeCol{&t.ExpiresAt},
		jsonCol{&t.Request}, jsonCol{&t.Params}, &t.ProviderID, jsonCol{&t.ProviderState}, jsonCol{&t.Result},
		&t.AccountID, &t.SessionID, &t.Version)
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// transactionJSONArgs returns the JSON column arguments of t.
func transactionJSONArgs(t *store.Transaction) ([]any, error) {
	return jsonArgs(transactionJSON, t.Request, t.Params, t.ProviderState, t.Result)
}

// Create implements store.Transactions. A zero CreatedAt is set to now and
// Version to 1; ExpiresAt is required.
func (r *transactionRepo) Create(ctx context.Context, t *store.Transaction) error {
	if err := requireExpiry(t.ExpiresAt); err != nil {
		return wrap(err, "create transaction")
	}
	js, err := transactionJSONArgs(t)
	if err != nil {
		return wrap(err, "create transaction")
	}
	t.CreatedAt = r.s.defaultTime(t.CreatedAt)
	t.Version = 1
	err = insert(ctx, r.s,
		"INSERT INTO login_transactions ("+transactionCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		t.ID, t.Protocol, t.RPID, t.State, micros(t.CreatedAt), micros(t.ExpiresAt),
		js[0], js[1], t.ProviderID, js[2], js[3], t.AccountID, t.SessionID, t.Version)
	return wrap(err, "create transaction")
}

// Get implements store.Transactions; an expired transaction is not found.
func (r *transactionRepo) Get(ctx context.Context, id string) (*store.Transaction, error) {
	t, err := getOne(ctx, r.s, scanTransaction,
		"SELECT "+transactionCols+" FROM login_transactions WHERE id = ? AND expires_at > ?", id, r.s.nowMicros())
	return t, wrap(err, "get transaction")
}

// Update implements store.Transactions; an expired transaction is not
// found. The ID cannot change and Version increases by one.
func (r *transactionRepo) Update(ctx context.Context, id string, fn func(*store.Transaction) error) (*store.Transaction, error) {
	t, err := update(ctx, r.s, updateSpec[store.Transaction]{
		load: func(ctx context.Context, tx *Store) (*store.Transaction, int64, error) {
			t, err := getOne(ctx, tx, scanTransaction,
				"SELECT "+transactionCols+" FROM login_transactions WHERE id = ? AND expires_at > ?"+tx.d.forUpdate(),
				id, tx.nowMicros())
			if err != nil {
				return nil, 0, err
			}
			return t, t.Version, nil
		},
		save: func(ctx context.Context, tx *Store, t *store.Transaction, version int64) (int64, error) {
			t.ID = id
			t.Version = version + 1
			js, err := transactionJSONArgs(t)
			if err != nil {
				return 0, err
			}
			return execAffected(ctx, tx,
				"UPDATE login_transactions SET protocol = ?, rp_id = ?, state = ?, created_at = ?, expires_at = ?, request = ?, params = ?, provider_id = ?, provider_state = ?, result = ?, account_id = ?, session_id = ?, version = ? WHERE id = ? AND version = ?",
				t.Protocol, t.RPID, t.State, micros(t.CreatedAt), micros(t.ExpiresAt), js[0], js[1],
				t.ProviderID, js[2], js[3], t.AccountID, t.SessionID, t.Version, id, version)
		},
	}, fn)
	return t, wrap(err, "update transaction")
}

// Delete implements store.Transactions.
func (r *transactionRepo) Delete(ctx context.Context, id string) error {
	return wrap(execOne(ctx, r.s, "DELETE FROM login_transactions WHERE id = ?", id), "delete transaction")
}
