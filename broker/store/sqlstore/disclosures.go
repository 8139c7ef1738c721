package sqlstore

import (
	"context"

	"github.com/trustbroker/trustbroker/broker/store"
)

type disclosureRepo struct{ s *Store }

var _ store.Disclosures = (*disclosureRepo)(nil)

// Disclosures implements store.Store.
func (s *Store) Disclosures() store.Disclosures { return &disclosureRepo{s} }

// Disclosure list limits.
const (
	defaultDisclosureLimit = 100
	maxDisclosureLimit     = 1000
)

const disclosureCols = "occurred_at, account_id, rp_id, attributes, protocol, consent_id"

func scanDisclosure(r rowScanner, _ ...any) (*store.Disclosure, error) {
	var d store.Disclosure
	err := r.Scan(&d.Seq, timeCol{&d.Time}, &d.AccountID, &d.RPID, stringsCol{&d.Attributes}, &d.Protocol, &d.ConsentID)
	if err != nil {
		return nil, err
	}
	return &d, nil
}

// Append implements store.Disclosures. A zero Time is set to now; Seq is
// assigned by the database and written back. The account must exist.
func (r *disclosureRepo) Append(ctx context.Context, d *store.Disclosure) error {
	d.Time = r.s.defaultTime(d.Time)
	err := r.s.writeRow(ctx, []any{&d.Seq},
		"INSERT INTO disclosures ("+disclosureCols+") VALUES (?, ?, ?, ?, ?, ?) RETURNING seq",
		micros(d.Time), d.AccountID, d.RPID, stringsArg(d.Attributes), d.Protocol, d.ConsentID)
	return wrap(r.s.mapWriteErr(err), "append disclosure to %q", d.RPID)
}

// ListByAccount implements store.Disclosures: newest first.
func (r *disclosureRepo) ListByAccount(ctx context.Context, accountID string, limit int) ([]store.Disclosure, error) {
	if limit <= 0 {
		limit = defaultDisclosureLimit
	}
	limit = min(limit, maxDisclosureLimit)
	ds, err := getAll(ctx, r.s, scanDisclosure,
		"SELECT seq, "+disclosureCols+" FROM disclosures WHERE account_id = ? ORDER BY seq DESC LIMIT ?",
		accountID, limit)
	return ds, wrap(err, "list disclosures of account %q", accountID)
}
