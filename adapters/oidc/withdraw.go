package oidc

import (
	"context"
	"errors"
	"slices"

	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/broker/store"
)

// RevokeGrants ends what the client holds for the account when the
// account's consent for it is withdrawn: every access and refresh token
// issued to the client for the subject it sees is deactivated (rows stay
// for reuse detection), the client is taken off the account's SSO
// sessions, and a back-channel logout token (Back-Channel Logout 1.0 §2.5)
// goes to the client for each of those sessions where it registered a
// back-channel logout URI. It implements consent.Revoker.
//
// Tokens are matched by client and subject: the other clients of the
// client's sector see the same pairwise subject (OIDC Core §8.1) and keep
// their tokens and sessions.
func (p *Provider) RevokeGrants(ctx context.Context, accountID string, rp *config.RelyingParty) error {
	c, ok := p.clients[rp.ID]
	if !ok {
		return nil // not an OIDC client
	}
	sub := p.o.Broker.Subject(c.RP, accountID)
	var errs []error
	for _, kind := range []string{store.TokenAccess, store.TokenRefresh} {
		if _, err := p.o.Store.OAuth().RevokeBySubject(ctx, kind, c.GetID(), sub); err != nil {
			errs = append(errs, err)
		}
	}
	sessions, err := p.o.Store.Sessions().ListByAccount(ctx, accountID)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, s := range sessions {
		if !slices.Contains(s.RelyingParties, c.GetID()) {
			continue
		}
		if _, err := p.o.Store.Sessions().Update(ctx, s.ID, func(cur *store.Session) error {
			cur.RelyingParties = slices.DeleteFunc(cur.RelyingParties, func(id string) bool { return id == c.GetID() })
			return nil
		}); err != nil && !errors.Is(err, store.ErrNotFound) {
			errs = append(errs, err)
		}
		one := s
		one.RelyingParties = []string{c.GetID()}
		p.backchannelLogout(&one)
	}
	return errors.Join(errs...)
}
