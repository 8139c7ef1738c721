package broker

// The link offer (issue 9, "Identity"): a renewed eID card has a new
// RestrictedID, so its first login finds no account. When the provider
// gives a match key (providers.Identity.MatchKey: for the eID the verified
// names and date of birth) and identities of the same credential kind with
// the same keyed hash belong to other accounts, the broker never merges
// silently: before creating an account it shows the link offer. The user
// either logs in with another credential of the existing account (the
// method choice then offers only the providers linked to the matching
// accounts, this one excluded), after which the pending identity is linked
// to that account and the login continues with the pending identity; or
// continues with a new account. No offer is shown for prompt=none, nor
// when the matching accounts have no other credential usable here.
//
// Only a keyed hash of the match key is stored (linked_identities.match_key):
// HMAC-SHA256 under a key derived from the pairwise key, over the kind and
// the match key. Identities linked before match keys existed get their
// hash on their next login.

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"

	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/providers"
)

// PendingLink is the identity of a login that waits at the link offer,
// kept in the transaction's params (server side).
type PendingLink struct {
	Identity providers.Identity `json:"identity"`
	// MatchHash is the keyed hash of Identity's match key.
	MatchHash string `json:"match_hash"`
	// Accounts whose identities matched; the second login must end in one.
	Accounts []string `json:"accounts"`
	// Providers the second login may use: those linked to Accounts.
	Providers []string `json:"providers"`
	// Accepted: the user chose to log in with another credential.
	Accepted bool `json:"accepted,omitempty"`
	// Refused: the last second login did not belong to a matching account.
	Refused bool `json:"refused,omitempty"`
}

// matchKeyLabel separates the match-hash key from other uses of the
// pairwise key.
const matchKeyLabel = "trustbroker identity match key v1"

// matchHash is the keyed hash of id's match key, "" when it has none.
func (b *Broker) matchHash(id *providers.Identity) string {
	if id.MatchKey == "" {
		return ""
	}
	k := hmac.New(sha256.New, b.o.PairwiseKey)
	k.Write([]byte(matchKeyLabel))
	m := hmac.New(sha256.New, k.Sum(nil))
	m.Write([]byte(id.Kind))
	m.Write([]byte{0})
	m.Write([]byte(id.MatchKey))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// offerLink shows the link offer when the fresh identity is unknown and its
// match hash matches identities of other accounts that have a credential
// the user can log in with here. It reports whether it answered.
func (b *Broker) offerLink(w http.ResponseWriter, r *http.Request, fc *flowCtx, id *providers.Identity) (bool, error) {
	if fc.matchHash == "" || fc.params.has("none") {
		return false, nil
	}
	ctx := r.Context()
	accts := b.o.Store.Accounts()
	if _, err := accts.FindByIdentity(ctx, id.ProviderID, id.Subject); err == nil || !errors.Is(err, store.ErrNotFound) {
		return false, err // known identity (or a store failure)
	}
	matches, err := accts.FindByMatchKey(ctx, id.Kind, fc.matchHash)
	if err != nil || len(matches) == 0 {
		return false, err
	}
	var accounts []string
	linked := map[string]bool{}
	for _, m := range matches {
		if slices.Contains(accounts, m.AccountID) {
			continue
		}
		accounts = append(accounts, m.AccountID)
		ids, err := accts.Identities(ctx, m.AccountID)
		if err != nil {
			return false, err
		}
		for _, li := range ids {
			linked[li.ProviderID] = true
		}
	}
	var provs []string
	for _, p := range b.o.Providers { // configuration order
		if linked[p.ID()] && p.ID() != id.ProviderID {
			provs = append(provs, p.ID())
		}
	}
	if len(provs) == 0 {
		b.audit(ctx, "browser", "login.link_offer", fc.tx.ID, store.OutcomeFailure, "matching account has no other credential", map[string]any{"provider": id.ProviderID})
		return false, nil
	}
	fc.params.Link = &PendingLink{Identity: *id, MatchHash: fc.matchHash, Accounts: accounts, Providers: provs}
	if err := b.saveLink(ctx, fc, store.TxStateLink); err != nil {
		return false, err
	}
	b.audit(ctx, "browser", "login.link_offer", fc.tx.ID, store.OutcomeSuccess, "offered",
		map[string]any{"provider": id.ProviderID, "accounts": len(accounts)})
	b.toLoginPage(w, r, fc)
	return true, nil
}

// saveLink stores the params (with or without a pending link) and state.
func (b *Broker) saveLink(ctx context.Context, fc *flowCtx, state string) error {
	params, err := json.Marshal(fc.params)
	if err != nil {
		return err
	}
	tx, err := b.o.Store.Transactions().Update(ctx, fc.tx.ID, func(t *store.Transaction) error {
		if t.State == store.TxStateDone || t.State == store.TxStateFailed || t.State == store.TxStateConsent {
			return store.ErrConflict
		}
		t.Params, t.State, t.ProviderID, t.ProviderState = params, state, "", nil
		return nil
	})
	if err != nil {
		return err
	}
	fc.tx = tx
	return nil
}

// toLoginPage sends the browser to the login page, which shows what the
// transaction's state asks for.
func (b *Broker) toLoginPage(w http.ResponseWriter, r *http.Request, fc *flowCtx) {
	if fc.resumeByNavigation {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"next": loginPath(fc.tx.ID)})
		return
	}
	http.Redirect(w, r, loginPath(fc.tx.ID), http.StatusSeeOther)
}

type linkOfferPage struct {
	RPName, Provider, CSRF, Action, Error string
}

func (b *Broker) renderLinkOffer(w http.ResponseWriter, r *http.Request, fc *flowCtx) {
	pl := fc.params.Link
	if pl == nil {
		b.errorPage(w, r, http.StatusConflict, fc.lang, "error.tx_unknown")
		return
	}
	page := linkOfferPage{
		RPName: b.o.RelyingParties[fc.tx.RPID].Name.Get(fc.lang), CSRF: b.o.CSRF.Token(fc.csrfBinding()),
		Action: loginPath(fc.tx.ID) + "/link",
	}
	if p, ok := b.providers[pl.Identity.ProviderID]; ok {
		page.Provider = p.Name.Get(fc.lang)
	}
	status := http.StatusOK
	if pl.Refused {
		page.Error = b.text(fc.lang, "link_offer.refused")
		status = http.StatusUnprocessableEntity
	}
	b.o.UI.Render(w, r, status, "link_offer", fc.lang, page)
}

// handleLinkAnswer takes the user's choice on the link offer.
func (b *Broker) handleLinkAnswer(w http.ResponseWriter, r *http.Request) {
	fc, ok := b.load(w, r)
	if !ok || !b.parseForm(w, r, fc) {
		return
	}
	pl := fc.params.Link
	if fc.tx.State != store.TxStateLink || pl == nil {
		b.errorPage(w, r, http.StatusConflict, fc.lang, "error.tx_unknown")
		return
	}
	ctx := r.Context()
	switch r.PostForm.Get("choice") {
	case "link":
		pl.Accepted, pl.Refused = true, false
		if err := b.saveLink(ctx, fc, store.TxStateMethod); err != nil {
			b.internalError(w, r, fc.lang, "link offer", err)
			return
		}
		b.audit(ctx, "browser", "login.link_offer", fc.tx.ID, store.OutcomeSuccess, "link chosen", map[string]any{"provider": pl.Identity.ProviderID})
		http.Redirect(w, r, loginPath(fc.tx.ID), http.StatusSeeOther)
	case "new":
		fc.params.Link = nil
		if err := b.saveLink(ctx, fc, store.TxStateProvider); err != nil {
			b.internalError(w, r, fc.lang, "link offer", err)
			return
		}
		b.audit(ctx, "browser", "login.link_offer", fc.tx.ID, store.OutcomeSuccess, "new account chosen", map[string]any{"provider": pl.Identity.ProviderID})
		id := pl.Identity
		accountID, err := b.linkAccount(ctx, &id, pl.MatchHash)
		if err != nil {
			b.internalError(w, r, fc.lang, "link account", err)
			return
		}
		b.decide(w, r, fc, &id, accountID, nil)
	default:
		b.errorPage(w, r, http.StatusBadRequest, fc.lang, "error.method")
	}
}

// errLinkRefused: the second login does not belong to a matching account.
var errLinkRefused = errors.New("broker: second credential belongs to no matching account")

// completeLink ends the second login of an accepted link offer: when the
// credential belongs to one of the matching accounts, the pending identity
// is linked to it and the login continues with the pending identity;
// otherwise nothing is linked and the offer is shown again with the reason.
func (b *Broker) completeLink(w http.ResponseWriter, r *http.Request, fc *flowCtx, second *providers.Identity) {
	ctx := r.Context()
	pl := fc.params.Link
	var accountID string
	err := b.o.Store.InTx(ctx, func(tx store.Store) error {
		a, err := tx.Accounts().FindByIdentity(ctx, second.ProviderID, second.Subject)
		if errors.Is(err, store.ErrNotFound) {
			return errLinkRefused
		}
		if err != nil {
			return err
		}
		if !slices.Contains(pl.Accounts, a.ID) {
			return errLinkRefused
		}
		now := b.o.Now()
		if err := tx.Accounts().TouchIdentity(ctx, second.ProviderID, second.Subject, now); err != nil {
			return err
		}
		accountID = a.ID
		return tx.Accounts().Link(ctx, store.LinkedIdentity{
			AccountID: a.ID, ProviderID: pl.Identity.ProviderID, Subject: pl.Identity.Subject, Kind: pl.Identity.Kind,
			LinkedAt: now, LastUsedAt: now, MatchKey: pl.MatchHash,
		})
	})
	details := map[string]any{"provider": pl.Identity.ProviderID, "via": second.ProviderID}
	if errors.Is(err, errLinkRefused) || errors.Is(err, store.ErrConflict) {
		reason := "second credential belongs to no matching account"
		if errors.Is(err, store.ErrConflict) {
			reason = "the pending identity was linked meanwhile"
		}
		b.audit(ctx, "browser", "login.link", fc.tx.ID, store.OutcomeDenied, reason, details)
		pl.Accepted, pl.Refused = false, true
		if err := b.saveLink(ctx, fc, store.TxStateLink); err != nil {
			b.internalError(w, r, fc.lang, "link refused", err)
			return
		}
		b.toLoginPage(w, r, fc)
		return
	}
	if err != nil {
		b.internalError(w, r, fc.lang, "link identity", err)
		return
	}
	b.audit(ctx, accountID, "login.link", fc.tx.ID, store.OutcomeSuccess, "linked", details)
	id := pl.Identity
	fc.params.Link = nil
	if err := b.saveLink(ctx, fc, store.TxStateProvider); err != nil {
		b.internalError(w, r, fc.lang, "link identity", err)
		return
	}
	b.decide(w, r, fc, &id, accountID, nil)
}
