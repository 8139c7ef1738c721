package sqlstore

import (
	"context"

	"github.com/trustbroker/trustbroker/broker/store"
)

type relyingPartyRepo struct{ s *Store }

var _ store.RelyingParties = (*relyingPartyRepo)(nil)

const relyingPartyCols = "id, protocol, name, source, config, created_at, updated_at"

func scanRelyingParty(r rowScanner, _ ...any) (*store.RelyingParty, error) {
	var rp store.RelyingParty
	err := r.Scan(&rp.ID, &rp.Protocol, &rp.Name, &rp.Source, jsonCol{&rp.Config},
		timeCol{&rp.CreatedAt}, timeCol{&rp.UpdatedAt})
	if err != nil {
		return nil, err
	}
	return &rp, nil
}

// Put implements store.RelyingParties. UpdatedAt is set to now; a new
// registration's CreatedAt is set to now when zero, a replaced one keeps
// its stored CreatedAt. Both are written back to rp.
func (r *relyingPartyRepo) Put(ctx context.Context, rp *store.RelyingParty) error {
	cfg, err := jsonArg("config", rp.Config)
	if err != nil {
		return wrap(err, "put relying party %q", rp.ID)
	}
	rp.UpdatedAt = roundTime(r.s.now())
	rp.CreatedAt = r.s.defaultTime(rp.CreatedAt)
	err = r.s.writeRow(ctx, []any{timeCol{&rp.CreatedAt}},
		"INSERT INTO relying_parties ("+relyingPartyCols+") VALUES (?, ?, ?, ?, ?, ?, ?)"+
			" ON CONFLICT (id) DO UPDATE SET protocol = excluded.protocol, name = excluded.name, source = excluded.source,"+
			" config = excluded.config, updated_at = excluded.updated_at RETURNING created_at",
		rp.ID, rp.Protocol, rp.Name, rp.Source, cfg, micros(rp.CreatedAt), micros(rp.UpdatedAt))
	return wrap(err, "put relying party %q", rp.ID)
}

// Get implements store.RelyingParties.
func (r *relyingPartyRepo) Get(ctx context.Context, id string) (*store.RelyingParty, error) {
	rp, err := getOne(ctx, r.s, scanRelyingParty, "SELECT "+relyingPartyCols+" FROM relying_parties WHERE id = ?", id)
	return rp, wrap(err, "get relying party %q", id)
}

// List implements store.RelyingParties, ordered by ID in the database's
// collation (byte order on SQLite, the database default on PostgreSQL).
func (r *relyingPartyRepo) List(ctx context.Context) ([]store.RelyingParty, error) {
	rps, err := getAll(ctx, r.s, scanRelyingParty, "SELECT "+relyingPartyCols+" FROM relying_parties ORDER BY id")
	return rps, wrap(err, "list relying parties")
}

// Delete implements store.RelyingParties.
func (r *relyingPartyRepo) Delete(ctx context.Context, id string) error {
	return wrap(execOne(ctx, r.s, "DELETE FROM relying_parties WHERE id = ?", id), "delete relying party %q", id)
}
