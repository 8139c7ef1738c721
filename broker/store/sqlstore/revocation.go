package sqlstore

import (
	"context"
	"errors"

	"github.com/trustbroker/trustbroker/broker/store"
)

// Revocations implements store.Store.
func (s *Store) Revocations() store.RevocationCache { return &revocationRepo{s} }

type revocationRepo struct{ s *Store }

var _ store.RevocationCache = (*revocationRepo)(nil)

// maxRevocationData bounds one cached answer (a large CRL).
const maxRevocationData = 16 << 20

// Put implements store.RevocationCache as one upsert. A zero FetchedAt is
// set to now.
func (r *revocationRepo) Put(ctx context.Context, e *store.RevocationEntry) error {
	if e.Key == "" || len(e.Data) == 0 {
		return wrap(errors.New("key and data are required"), "put revocation entry")
	}
	if len(e.Data) > maxRevocationData {
		return wrap(errors.New("data too large"), "put revocation entry")
	}
	if err := requireExpiry(e.ExpiresAt); err != nil {
		return wrap(err, "put revocation entry")
	}
	e.FetchedAt = r.s.defaultTime(e.FetchedAt)
	_, err := r.s.exec(ctx,
		"INSERT INTO revocation_cache (cache_key, data, fetched_at, expires_at) VALUES (?, ?, ?, ?)"+
			" ON CONFLICT (cache_key) DO UPDATE SET data = excluded.data, fetched_at = excluded.fetched_at,"+
			" expires_at = excluded.expires_at",
		e.Key, e.Data, micros(e.FetchedAt), micros(e.ExpiresAt))
	return wrap(err, "put revocation entry %q", e.Key)
}

// Get implements store.RevocationCache.
func (r *revocationRepo) Get(ctx context.Context, key string) (*store.RevocationEntry, error) {
	scan := func(row rowScanner, _ ...any) (*store.RevocationEntry, error) {
		var e store.RevocationEntry
		if err := row.Scan(&e.Key, &e.Data, timeCol{&e.FetchedAt}, timeCol{&e.ExpiresAt}); err != nil {
			return nil, err
		}
		return &e, nil
	}
	e, err := getOne(ctx, r.s, scan,
		"SELECT cache_key, data, fetched_at, expires_at FROM revocation_cache WHERE cache_key = ? AND expires_at > ?",
		key, r.s.nowMicros())
	return e, wrap(err, "get revocation entry %q", key)
}
