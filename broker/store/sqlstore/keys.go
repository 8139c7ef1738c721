package sqlstore

import (
	"context"

	"github.com/trustbroker/trustbroker/broker/store"
)

type keyRepo struct{ s *Store }

var _ store.Keys = (*keyRepo)(nil)

const keyCols = "id, alg, state, public_jwk, private_encrypted, created_at, activated_at, retired_at, verify_until"

func scanKey(r rowScanner, extra ...any) (*store.SigningKey, error) {
	var k store.SigningKey
	dest := []any{&k.ID, &k.Alg, &k.State, jsonCol{&k.PublicJWK}, &k.PrivateEncrypted,
		timeCol{&k.CreatedAt}, timeCol{&k.ActivatedAt}, timeCol{&k.RetiredAt}, timeCol{&k.VerifyUntil}}
	if err := r.Scan(append(dest, extra...)...); err != nil {
		return nil, err
	}
	return &k, nil
}

// Create implements store.Keys. A zero CreatedAt is set to now.
func (r *keyRepo) Create(ctx context.Context, k *store.SigningKey) error {
	jwk, err := jsonArg("public_jwk", k.PublicJWK)
	if err != nil {
		return wrap(err, "create key %q", k.ID)
	}
	k.CreatedAt = r.s.defaultTime(k.CreatedAt)
	err = insert(ctx, r.s,
		"INSERT INTO signing_keys ("+keyCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
		k.ID, k.Alg, k.State, jwk, k.PrivateEncrypted,
		micros(k.CreatedAt), micros(k.ActivatedAt), micros(k.RetiredAt), micros(k.VerifyUntil))
	return wrap(err, "create key %q", k.ID)
}

// Get implements store.Keys.
func (r *keyRepo) Get(ctx context.Context, id string) (*store.SigningKey, error) {
	k, err := getOne(ctx, r.s, scanKey, "SELECT "+keyCols+" FROM signing_keys WHERE id = ?", id)
	return k, wrap(err, "get key %q", id)
}

// List implements store.Keys, oldest first.
func (r *keyRepo) List(ctx context.Context) ([]store.SigningKey, error) {
	ks, err := getAll(ctx, r.s, scanKey, "SELECT "+keyCols+" FROM signing_keys ORDER BY created_at, id")
	return ks, wrap(err, "list keys")
}

// Update implements store.Keys. The ID cannot change.
func (r *keyRepo) Update(ctx context.Context, id string, fn func(*store.SigningKey) error) (*store.SigningKey, error) {
	k, err := update(ctx, r.s, updateSpec[store.SigningKey]{
		load: func(ctx context.Context, tx *Store) (*store.SigningKey, int64, error) {
			return loadVersioned(ctx, tx, scanKey, "SELECT "+keyCols+", version FROM signing_keys WHERE id = ?", id)
		},
		save: func(ctx context.Context, tx *Store, k *store.SigningKey, version int64) (int64, error) {
			k.ID = id
			jwk, err := jsonArg("public_jwk", k.PublicJWK)
			if err != nil {
				return 0, err
			}
			return execAffected(ctx, tx,
				"UPDATE signing_keys SET alg = ?, state = ?, public_jwk = ?, private_encrypted = ?, created_at = ?, activated_at = ?, retired_at = ?, verify_until = ?, version = version + 1 WHERE id = ? AND version = ?",
				k.Alg, k.State, jwk, k.PrivateEncrypted, micros(k.CreatedAt), micros(k.ActivatedAt),
				micros(k.RetiredAt), micros(k.VerifyUntil), id, version)
		},
	}, fn)
	return k, wrap(err, "update key %q", id)
}

// Delete implements store.Keys.
func (r *keyRepo) Delete(ctx context.Context, id string) error {
	return wrap(execOne(ctx, r.s, "DELETE FROM signing_keys WHERE id = ?", id), "delete key %q", id)
}
