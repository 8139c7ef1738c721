package consent

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/trustbroker/trustbroker/broker/store"
)

// Erasure says what deleting an account did.
type Erasure struct {
	// Withdrawn counts the relying parties whose consent was withdrawn.
	Withdrawn int
	// SessionsEnded counts the SSO sessions ended.
	SessionsEnded int64
}

// Erase deletes the account (GDPR Art. 17). First every consent in force
// is withdrawn (Withdraw: the records are marked, each Revoker revokes the
// relying party's tokens and sends back-channel logout); relying parties
// that received data on another legal basis, without a consent record,
// are told through the Revokers as well. Only when that succeeded are the
// account's SSO sessions ended and the account deleted with its
// identities, consents, disclosures and credentials (store cascade), in
// one transaction with the audit event "account.delete". The audit event
// carries the account id and counts, nothing else about the person.
func (m *Manager) Erase(ctx context.Context, accountID string) (Erasure, error) {
	var res Erasure
	if _, err := m.Store.Accounts().Get(ctx, accountID); err != nil {
		return res, err
	}
	ids := make([]string, 0, len(m.RelyingParties))
	for id := range m.RelyingParties {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var errs []error
	for _, id := range ids {
		err := m.Withdraw(ctx, accountID, id)
		switch {
		case err == nil:
			res.Withdrawn++
		case errors.Is(err, ErrNoConsent):
			for _, r := range m.Revokers {
				if err := r.RevokeGrants(ctx, accountID, m.RelyingParties[id]); err != nil {
					errs = append(errs, err)
				}
			}
		default:
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return res, fmt.Errorf("consent: erase: revoke before deletion: %w", err)
	}
	err := m.Store.InTx(ctx, func(tx store.Store) error {
		n, err := tx.Sessions().DeleteByAccount(ctx, accountID)
		if err != nil {
			return err
		}
		res.SessionsEnded = n
		if err := tx.Accounts().Delete(ctx, accountID); err != nil {
			return err
		}
		return m.auditIn(ctx, tx, accountID, "account.delete", accountID, store.OutcomeSuccess, "gdpr art. 17",
			map[string]any{"consents_withdrawn": res.Withdrawn, "sessions_ended": n})
	})
	if err != nil {
		return res, fmt.Errorf("consent: erase: %w", err)
	}
	return res, nil
}
