package eid

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/broker/web"
	"github.com/trustbroker/trustbroker/providers"
)

// Card renewal gives a new RestrictedID: the pseudonym is specific to the
// card as well as to the sector. An account therefore holds several eID
// pseudonyms, and the signed-in owner adds the new card at
// /account/{id}/. A first login with an unknown pseudonym never joins
// another account silently: when its name and date of birth match one
// (Identity.MatchKey), the broker offers linking after a login with
// another credential of that account (broker/link.go), otherwise it gets
// an account of its own. Adding the card here, signed in with another
// credential of the account, is the other explicit step; a pseudonym
// that so far has an account of its own (and nothing else) moves over,
// one that belongs to an account with other credentials is refused.

var _ providers.AccountProvider = (*Provider)(nil)

// linkState binds an add-a-card flow to the account and the SSO session.
type linkState struct {
	AccountID   string `json:"account_id"`
	SessionHash string `json:"session_hash"`
}

// linkTTL bounds an add-a-card flow.
const linkTTL = 15 * time.Minute

func (p *Provider) accountPath() string { return "/account/" + p.id + "/" }

type accountCard struct {
	Ref, Linked, LastUsed string
	Current               bool
}

type accountPage struct {
	Base, CSRF, Notice, Error string
	Cards                     []accountCard
}

// AccountHandler serves the account owner's eID page: the linked cards and
// adding a new one.
func (p *Provider) AccountHandler(host providers.AccountHost) http.Handler {
	mux := http.NewServeMux()
	base := "/account/" + p.id
	mux.HandleFunc("GET "+base, func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, base+"/", http.StatusSeeOther) })
	mux.HandleFunc("GET "+base+"/{$}", func(w http.ResponseWriter, r *http.Request) { p.accountPage(w, r, host, "", "") })
	mux.HandleFunc("POST "+base+"/add", func(w http.ResponseWriter, r *http.Request) { p.addCard(w, r, host) })
	mux.HandleFunc("GET "+base+"/linked/{tx}", func(w http.ResponseWriter, r *http.Request) { p.linked(w, r, host) })
	return mux
}

// session returns the signed-in session, or shows the error page.
func (p *Provider) session(w http.ResponseWriter, r *http.Request, host providers.AccountHost) (*store.Session, bool) {
	web.NoStore(w)
	s, err := host.Session(r)
	if err != nil {
		lang := host.Lang(r)
		host.Render(w, r, http.StatusUnauthorized, "error", lang, struct{ Message, RequestID string }{
			host.Text(lang, "eid.account.login_first"), web.RequestID(r.Context())})
		return nil, false
	}
	return s, true
}

func (p *Provider) accountPage(w http.ResponseWriter, r *http.Request, host providers.AccountHost, notice, errText string) {
	s, ok := p.session(w, r, host)
	if !ok {
		return
	}
	lang := host.Lang(r)
	page := accountPage{Base: p.accountPath(), CSRF: host.CSRFToken(s), Notice: notice, Error: errText}
	if p.st != nil {
		ids, err := p.st.Accounts().Identities(r.Context(), s.AccountID)
		if err != nil {
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		for _, id := range ids {
			if id.ProviderID != p.id {
				continue
			}
			page.Cards = append(page.Cards, accountCard{
				Ref: shortRef(id.Subject), Linked: id.LinkedAt.Format("2006-01-02"), LastUsed: id.LastUsedAt.Format("2006-01-02"),
				Current: s.ProviderID == p.id && sessionSubject(s) == id.Subject,
			})
		}
	}
	status := http.StatusOK
	if errText != "" {
		status = http.StatusUnprocessableEntity
	}
	host.Render(w, r, status, "eid_account", lang, page)
}

// shortRef shows a pseudonym's start only: enough to tell cards apart.
func shortRef(sub string) string {
	if len(sub) > 12 {
		return sub[:12] + "…"
	}
	return sub
}

func sessionSubject(s *store.Session) string {
	var id providers.Identity
	_ = json.Unmarshal(s.Identity, &id)
	return id.Subject
}

func hashSession(id string) string {
	sum := sha256.Sum256([]byte("eid-link|" + id))
	return hex.EncodeToString(sum[:])
}

// addCard starts an eID session for the new card and sends the browser to
// the activation page.
func (p *Provider) addCard(w http.ResponseWriter, r *http.Request, host providers.AccountHost) {
	s, ok := p.session(w, r, host)
	if !ok {
		return
	}
	lang := host.Lang(r)
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if r.ParseForm() != nil || !host.CSRFValid(s, r.PostForm.Get("csrf")) {
		host.Audit(r.Context(), s.AccountID, "account.eid_add", p.id, store.OutcomeDenied, "bad csrf token", nil)
		p.accountPage(w, r, host, "", host.Text(lang, "error.csrf"))
		return
	}
	if p.st == nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	txID := randomToken()[:22]
	// The name and date of birth are read to compare them with the
	// signed-in identity; the pseudonym is what gets linked.
	target, raw, err := p.Begin(r.Context(), providers.Request{
		TransactionID: txID, Lang: lang,
		Attributes: []string{"given_name", "family_name", "birthdate"},
	})
	if err != nil {
		msg := host.Text(lang, "eid.account.failed")
		if pe, ok := providers.PublicError(err); ok {
			msg += " " + pe.Public
		}
		host.Audit(r.Context(), s.AccountID, "account.eid_add", p.id, store.OutcomeFailure, err.Error(), nil)
		p.accountPage(w, r, host, "", msg)
		return
	}
	var st state
	_ = json.Unmarshal(raw, &st)
	st.Link = &linkState{AccountID: s.AccountID, SessionHash: hashSession(s.ID)}
	raw, _ = json.Marshal(st)
	stateJSON, _ := json.Marshal(raw) // the broker's encoding of provider state
	params, _ := json.Marshal(map[string]string{"lang": lang, "binding_hash": "eid-link"})
	now := p.now()
	// A transaction of its own carries the flow to the TC token endpoint
	// (EndpointHost.Pending); no login cookie exists for it, so the
	// broker's login pages refuse it.
	err = p.st.Transactions().Create(r.Context(), &store.Transaction{
		ID: txID, Protocol: "eid-link", State: store.TxStateProvider, CreatedAt: now, ExpiresAt: now.Add(linkTTL),
		Params: params, ProviderID: p.id, ProviderState: stateJSON, AccountID: s.AccountID,
	})
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	host.Audit(r.Context(), s.AccountID, "account.eid_add", txID, store.OutcomeSuccess, "started", nil)
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// linked is the RefreshAddress of an add-a-card flow: bound to the
// account and the SSO session that started it.
func (p *Provider) linked(w http.ResponseWriter, r *http.Request, host providers.AccountHost) {
	s, ok := p.session(w, r, host)
	if !ok {
		return
	}
	ctx, lang, txID := r.Context(), host.Lang(r), r.PathValue("tx")
	tx, err := p.st.Transactions().Get(ctx, txID)
	var st state
	if err == nil {
		var raw []byte
		_ = json.Unmarshal(tx.ProviderState, &raw)
		err = json.Unmarshal(raw, &st)
	}
	if err != nil || tx.Protocol != "eid-link" || tx.ProviderID != p.id || st.Link == nil {
		p.accountPage(w, r, host, "", host.Text(lang, "error.tx_unknown"))
		return
	}
	if st.Link.AccountID != s.AccountID || st.Link.SessionHash != hashSession(s.ID) {
		host.Audit(ctx, s.AccountID, "account.eid_add", txID, store.OutcomeDenied, "flow of another session", nil)
		p.accountPage(w, r, host, "", host.Text(lang, "error.tx_foreign"))
		return
	}
	if err := p.st.Transactions().Delete(ctx, txID); err != nil {
		p.accountPage(w, r, host, "", host.Text(lang, "error.tx_unknown"))
		return
	}
	id, err := p.collect(ctx, lang, &st, r.URL.Query())
	if err != nil {
		msg := host.Text(lang, "eid.account.failed")
		if pe, ok := providers.PublicError(err); ok {
			msg += " " + pe.Public
		}
		host.Audit(ctx, s.AccountID, "account.eid_add", txID, store.OutcomeFailure, err.Error(), nil)
		p.accountPage(w, r, host, "", msg)
		return
	}
	if reason := p.samePerson(s, id); reason != "" {
		host.Audit(ctx, s.AccountID, "account.eid_add", txID, store.OutcomeDenied, reason, nil)
		p.accountPage(w, r, host, "", host.Text(lang, "eid.account.other_person"))
		return
	}
	outcome, err := p.link(ctx, s.AccountID, id.Subject)
	switch {
	case errors.Is(err, errOtherAccount):
		host.Audit(ctx, s.AccountID, "account.eid_add", txID, store.OutcomeDenied, "pseudonym belongs to an account with other credentials", nil)
		p.accountPage(w, r, host, "", host.Text(lang, "eid.account.other_account"))
		return
	case err != nil:
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	host.Audit(ctx, s.AccountID, "account.eid_add", txID, store.OutcomeSuccess, outcome, map[string]string{"provider": p.id})
	p.accountPage(w, r, host, host.Text(lang, "eid.account."+outcome), "")
}

// samePerson compares the card's verified name and date of birth with the
// signed-in identity where that carries them; "" when nothing contradicts.
func (p *Provider) samePerson(s *store.Session, card *providers.Identity) string {
	var cur providers.Identity
	if json.Unmarshal(s.Identity, &cur) != nil {
		return ""
	}
	for _, k := range []string{"given_name", "family_name", "birthdate"} {
		a, _ := cur.Attributes[k].(string)
		b, _ := card.Attributes[k].(string)
		if a != "" && b != "" && !strings.EqualFold(a, b) {
			return k + " differs from the signed-in identity"
		}
	}
	return ""
}

var errOtherAccount = errors.New("eid: the pseudonym belongs to another account")

// link adds the pseudonym to the account: "linked", "already" when it is
// there, "moved" when it had an account of its own with nothing else.
func (p *Provider) link(ctx context.Context, accountID, subject string) (string, error) {
	outcome := "linked"
	err := p.st.InTx(ctx, func(tx store.Store) error {
		other, err := tx.Accounts().FindByIdentity(ctx, p.id, subject)
		switch {
		case err == nil && other.ID == accountID:
			outcome = "already"
			return nil
		case err == nil:
			ids, err := tx.Accounts().Identities(ctx, other.ID)
			if err != nil {
				return err
			}
			if len(ids) != 1 || !slices.ContainsFunc(ids, func(li store.LinkedIdentity) bool { return li.Subject == subject }) {
				return errOtherAccount
			}
			if err := tx.Accounts().Unlink(ctx, p.id, subject); err != nil {
				return err
			}
			outcome = "moved"
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		now := p.now()
		return tx.Accounts().Link(ctx, store.LinkedIdentity{
			AccountID: accountID, ProviderID: p.id, Subject: subject, Kind: providers.KindEID, LinkedAt: now, LastUsedAt: now,
		})
	})
	return outcome, err
}

// linkedURL is where the add-a-card flow's eID client returns.
func (p *Provider) linkedURL(tx string) string {
	return p.issuer + p.accountPath() + "linked/" + url.PathEscape(tx)
}
