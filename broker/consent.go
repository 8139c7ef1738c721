package broker

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/consent"
	"github.com/trustbroker/trustbroker/providers"
)

// pendingConsent is a flow between policy and answer: kept in the
// transaction (state consent) while the consent page is shown.
type pendingConsent struct {
	Identity     providers.Identity `json:"identity"`
	AccountID    string             `json:"account_id"`
	SSOSessionID string             `json:"sso_session_id,omitempty"`
	PolicyRule   string             `json:"policy_rule"`
	// Set when the page is shown: what it asks for, what is released on
	// another legal basis, what the last consent granted.
	Offer    []string `json:"offer,omitempty"`
	Info     []string `json:"info,omitempty"`
	Previous []string `json:"previous,omitempty"`
}

func ssoID(s *store.Session) string {
	if s == nil {
		return ""
	}
	return s.ID
}

// consent asks the consent step what may leave. When it must ask, the
// flow is parked in the transaction and the browser goes to the consent
// page; otherwise the flow completes.
func (b *Broker) consent(w http.ResponseWriter, r *http.Request, fc *flowCtx, p pendingConsent) {
	rp := b.o.RelyingParties[fc.tx.RPID]
	var req []consent.Requested
	for _, c := range rp.Claims {
		if !slices.Contains(fc.params.Attributes, c.Name) {
			continue
		}
		_, has := p.Identity.Attributes[c.Name]
		req = append(req, consent.Requested{Name: c.Name, Purpose: c.Purpose.Get(fc.lang), Required: c.Required, Available: has})
	}
	var ev consent.Evaluation
	var err error
	if a, ok := b.o.Consent.(consent.Asker); ok {
		ev, err = a.EvaluateLogin(r.Context(), consent.Login{AccountID: p.AccountID, RPID: rp.ID, Requested: req, Force: fc.params.has("consent")})
	} else {
		ev, err = b.o.Consent.Evaluate(r.Context(), p.AccountID, rp.ID, req)
	}
	if err != nil {
		b.internalError(w, r, fc.lang, "consent evaluation", err)
		return
	}
	if !ev.Ask {
		b.audit(r.Context(), p.AccountID, "login.consent", fc.tx.ID, store.OutcomeSuccess, ev.Mechanism, map[string]any{"granted": ev.Granted})
		b.complete(w, r, fc, p, ev.Granted, ev.ConsentID)
		return
	}
	if _, ok := b.o.Consent.(consent.Asker); !ok || fc.params.has("none") {
		// prompt=none forbids any page (OIDC Core §3.1.2.6).
		b.fail(w, r, fc, "consent_required", "consent is needed and no page may be shown")
		return
	}
	p.Offer, p.Info, p.Previous = ev.Offer, ev.Info, ev.Previous
	raw, _ := json.Marshal(p)
	tx, err := b.o.Store.Transactions().Update(r.Context(), fc.tx.ID, func(t *store.Transaction) error {
		if t.State == store.TxStateDone || t.State == store.TxStateFailed {
			return store.ErrConflict
		}
		t.State, t.Result, t.AccountID = store.TxStateConsent, raw, p.AccountID
		return nil
	})
	if err != nil {
		b.internalError(w, r, fc.lang, "park for consent", err)
		return
	}
	fc.tx = tx
	b.audit(r.Context(), p.AccountID, "login.consent", fc.tx.ID, "asked", ev.Mechanism, map[string]any{"offer": ev.Offer})
	next := loginPath(fc.tx.ID) + "/consent"
	if fc.resumeByNavigation {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"next": next})
		return
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// complete binds the session, records the disclosure and hands the result
// with exactly the granted attributes to the adapter.
func (b *Broker) complete(w http.ResponseWriter, r *http.Request, fc *flowCtx, p pendingConsent, granted []string, consentID string) {
	ctx := r.Context()
	rp := b.o.RelyingParties[fc.tx.RPID]
	var sso *store.Session
	if p.SSOSessionID != "" {
		s, err := b.o.Store.Sessions().Get(ctx, p.SSOSessionID)
		if err != nil {
			b.internalError(w, r, fc.lang, "reload session", err)
			return
		}
		sso = s
	}
	id := &p.Identity
	sessionID, ok := b.bindSession(w, r, fc, p.AccountID, id, sso)
	if !ok {
		return
	}
	res := &Result{
		Identity: *id, AccountID: p.AccountID, SessionID: sessionID, Subject: b.Subject(rp, p.AccountID),
		Claims: map[string]any{}, Granted: granted, AuthTime: id.AuthTime, ACR: id.LoA.URI(), AMR: id.AMR,
		PolicyTag: p.PolicyRule, SSO: sso != nil,
	}
	for _, name := range granted {
		res.Claims[name] = id.Attributes[name]
	}
	// The disclosure log is written here, where the released set is
	// decided, for every front door alike: the adapter receives exactly
	// res.Claims and releases nothing else.
	if d, ok := b.o.Consent.(consent.Discloser); ok {
		err := d.Disclose(ctx, &store.Disclosure{
			AccountID: p.AccountID, RPID: rp.ID, Attributes: granted, Protocol: fc.tx.Protocol, ConsentID: consentID,
		})
		if err != nil {
			b.internalError(w, r, fc.lang, "disclosure log", err)
			return
		}
	}
	b.audit(ctx, p.AccountID, "login.complete", fc.tx.ID, store.OutcomeSuccess, "rp "+rp.ID,
		map[string]any{"granted": granted, "sso": sso != nil, "loa": id.LoA.String()})
	b.end(w, r, fc, store.TxStateDone, res)
}

// loadConsent loads a transaction waiting on the consent page.
func (b *Broker) loadConsent(w http.ResponseWriter, r *http.Request) (*flowCtx, *pendingConsent, bool) {
	fc, ok := b.load(w, r)
	if !ok {
		return nil, nil, false
	}
	if fc.tx.State != store.TxStateConsent {
		b.errorPage(w, r, http.StatusConflict, fc.lang, "error.tx_unknown")
		return nil, nil, false
	}
	var p pendingConsent
	if err := json.Unmarshal(fc.tx.Result, &p); err != nil {
		b.internalError(w, r, fc.lang, "decode pending consent", err)
		return nil, nil, false
	}
	return fc, &p, true
}

type consentItem struct {
	Name, Label, Value, Purpose string
	Required, Checked           bool
	Basis                       string
}

type consentPage struct {
	RPName     string
	Items      []consentItem // consent-based: asked for
	Info       []consentItem // released on another legal basis
	CSRF       string
	Action     string
	Validity   string
	Remembered bool
}

// handleConsentPage shows the consent page: the service, each attribute
// with the value that would leave and its purpose; required ones marked,
// optional ones with a checkbox (not preselected unless the last consent
// granted them).
func (b *Broker) handleConsentPage(w http.ResponseWriter, r *http.Request) {
	fc, p, ok := b.loadConsent(w, r)
	if !ok {
		return
	}
	b.o.UI.Render(w, r, http.StatusOK, "consent", fc.lang, b.consentView(fc, p))
}

func (b *Broker) consentView(fc *flowCtx, p *pendingConsent) consentPage {
	rp := b.o.RelyingParties[fc.tx.RPID]
	page := consentPage{RPName: rp.Name.Get(fc.lang), CSRF: b.o.CSRF.Token(fc.csrfBinding()), Action: loginPath(fc.tx.ID) + "/consent"}
	for _, c := range rp.Claims {
		item := consentItem{
			Name: c.Name, Label: b.claimLabel(fc.lang, c.Name), Value: attributeValue(p.Identity.Attributes[c.Name]),
			Purpose: c.Purpose.Get(fc.lang), Required: c.Required, Basis: c.Basis(),
			Checked: c.Required || slices.Contains(p.Previous, c.Name),
		}
		switch {
		case slices.Contains(p.Offer, c.Name):
			page.Items = append(page.Items, item)
		case slices.Contains(p.Info, c.Name):
			page.Info = append(page.Info, item)
		}
	}
	return page
}

// claimLabel is the catalogue's name for a claim, or the claim name.
func (b *Broker) claimLabel(lang, name string) string {
	key := "claim." + name
	if s := b.text(lang, key); s != "" && s != key {
		return s
	}
	return name
}

// attributeValue renders an attribute value for the page.
func attributeValue(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			parts = append(parts, attributeValue(e))
		}
		return strings.Join(parts, ", ")
	case map[string]any:
		raw, _ := json.Marshal(x)
		return string(raw)
	default:
		return fmt.Sprint(x)
	}
}

// handleConsentAnswer records the decision: approve with the required
// attributes and the optional ones ticked, or decline (access_denied).
func (b *Broker) handleConsentAnswer(w http.ResponseWriter, r *http.Request) {
	fc, p, ok := b.loadConsent(w, r)
	if !ok || !b.parseForm(w, r, fc) {
		return
	}
	asker, ok := b.o.Consent.(consent.Asker)
	if !ok {
		b.errorPage(w, r, http.StatusConflict, fc.lang, "error.tx_unknown")
		return
	}
	if r.PostForm.Get("decision") != "approve" {
		b.audit(r.Context(), p.AccountID, "consent.decline", fc.tx.RPID, store.OutcomeDenied, "declined on the consent page", map[string]any{"offer": p.Offer})
		b.fail(w, r, fc, "access_denied", "the user declined consent")
		return
	}
	rp := b.o.RelyingParties[fc.tx.RPID]
	chosen := r.PostForm["attr"]
	var granted []string
	for _, name := range p.Offer {
		if required(rp, name) || slices.Contains(chosen, name) {
			granted = append(granted, name)
		}
	}
	c, err := asker.Grant(r.Context(), consent.Grant{
		AccountID: p.AccountID, RPID: rp.ID, Offered: p.Offer, Granted: granted, Lang: fc.lang, Method: consent.MethodLoginPage,
	})
	if err != nil {
		b.internalError(w, r, fc.lang, "record consent", err)
		return
	}
	all := append(slices.Clone(p.Info), c.Attributes...)
	b.audit(r.Context(), p.AccountID, "login.consent", fc.tx.ID, store.OutcomeSuccess, "granted", map[string]any{"granted": all, "consent": c.ID})
	b.complete(w, r, fc, *p, all, c.ID)
}

func required(rp *config.RelyingParty, name string) bool {
	for _, c := range rp.Claims {
		if c.Name == name {
			return c.Required
		}
	}
	return false
}
