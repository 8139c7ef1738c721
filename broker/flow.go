package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/trustbroker/trustbroker/broker/clientcert"
	"github.com/trustbroker/trustbroker/broker/loa"
	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/broker/ui"
	"github.com/trustbroker/trustbroker/broker/web"
	"github.com/trustbroker/trustbroker/policy"
	"github.com/trustbroker/trustbroker/providers"
)

// maxFormBytes caps form and JSON bodies of the login pages.
const maxFormBytes = 64 << 10

// flowCtx is one request's view of its transaction.
type flowCtx struct {
	tx      *store.Transaction
	params  LoginParams
	binding string // the browser-binding cookie value
	lang    string
	// resumeByNavigation: the request came from a page script (a
	// ceremony), so the adapter is resumed by the browser's next
	// navigation to the login page rather than inside this response (a
	// script cannot follow a redirect to a relying party on another
	// origin).
	resumeByNavigation bool
	// matchHash is the keyed hash of the fresh identity's match key.
	matchHash string
}

// load finds the transaction of the request and checks that this browser
// started it. On failure it has written the error page.
func (b *Broker) load(w http.ResponseWriter, r *http.Request) (*flowCtx, bool) {
	web.NoStore(w)
	id := r.PathValue("tx")
	lang := ui.Lang(r)
	tx, err := b.o.Store.Transactions().Get(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		b.errorPage(w, r, http.StatusNotFound, lang, "error.tx_unknown")
		return nil, false
	}
	if err != nil {
		b.internalError(w, r, lang, "load transaction", err)
		return nil, false
	}
	var p LoginParams
	if err := json.Unmarshal(tx.Params, &p); err != nil {
		b.internalError(w, r, lang, "decode transaction", err)
		return nil, false
	}
	lang = ui.Lang(r, p.Lang)
	binding := b.o.Cookies.Get(r, "tb_login", loginPath(id))
	if binding == "" || hashString(binding) != p.BindingHash {
		b.errorPage(w, r, http.StatusForbidden, lang, "error.tx_foreign")
		return nil, false
	}
	return &flowCtx{tx: tx, params: p, binding: binding, lang: lang}, true
}

// csrfBinding ties form tokens to the transaction and the browser.
func (fc *flowCtx) csrfBinding() string { return fc.tx.ID + "|" + fc.binding }

func (b *Broker) checkCSRF(w http.ResponseWriter, r *http.Request, fc *flowCtx, token string) bool {
	if b.o.CSRF.Valid(fc.csrfBinding(), token) {
		return true
	}
	b.audit(r.Context(), "browser", "login.csrf", fc.tx.ID, store.OutcomeDenied, "bad csrf token", nil)
	b.errorPage(w, r, http.StatusForbidden, fc.lang, "error.csrf")
	return false
}

// parseForm reads a bounded form body and checks its CSRF token.
func (b *Broker) parseForm(w http.ResponseWriter, r *http.Request, fc *flowCtx) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		b.errorPage(w, r, http.StatusBadRequest, fc.lang, "error.csrf")
		return false
	}
	return b.checkCSRF(w, r, fc, r.PostForm.Get("csrf"))
}

func (b *Broker) active(fc *flowCtx) bool {
	return fc.tx.State == store.TxStateMethod || fc.tx.State == store.TxStateProvider
}

// handleLogin: single sign-on when a session fits, else the method choice.
func (b *Broker) handleLogin(w http.ResponseWriter, r *http.Request) {
	fc, ok := b.load(w, r)
	if !ok {
		return
	}
	if fc.tx.State == store.TxStateDone || fc.tx.State == store.TxStateFailed {
		b.handleResume(w, r, fc)
		return
	}
	if fc.tx.State == store.TxStateConsent {
		http.Redirect(w, r, loginPath(fc.tx.ID)+"/consent", http.StatusSeeOther)
		return
	}
	if fc.tx.State == store.TxStateLink {
		b.renderLinkOffer(w, r, fc)
		return
	}
	if fc.params.Link == nil && !fc.params.has("login") && !fc.params.has("select_account") {
		if s, id := b.ssoIdentity(r, fc.params); s != nil {
			b.finish(w, r, fc, id, s)
			return
		}
	}
	if fc.params.has("none") {
		b.fail(w, r, fc, "login_required", "no session satisfies the request and prompt=none")
		return
	}
	b.renderMethods(w, r, fc, http.StatusOK, "")
}

// ssoIdentity returns the session and its identity when they satisfy the
// request: level of assurance, accepted kind and max_age.
func (b *Broker) ssoIdentity(r *http.Request, p LoginParams) (*store.Session, *providers.Identity) {
	s, err := b.o.Sessions.Current(r.Context(), r)
	if err != nil {
		return nil, nil
	}
	var id providers.Identity
	if json.Unmarshal(s.Identity, &id) != nil || !id.LoA.Satisfies(p.MinLoA) || !slices.Contains(p.Kinds, id.Kind) {
		return nil, nil
	}
	if p.MaxAge != nil && b.o.Now().Sub(s.AuthTime) > time.Duration(*p.MaxAge)*time.Second {
		return nil, nil
	}
	return s, &id
}

type methodView struct {
	ID, Name, Kind string
}

type methodPage struct {
	RPName       string
	Methods      []methodView
	CSRF         string
	Action       string
	CancelAction string
	MinLoA       string
	Error        string
	// Notice explains a restricted choice (the second login of a link).
	Notice string
}

// methods lists the configured providers that fit the request, in
// configuration order. For the second login of an accepted link offer they
// are the providers linked to the matching accounts: that login only
// identifies the account, the relying party gets the pending identity.
func (b *Broker) methods(p LoginParams) []Provider {
	var out []Provider
	for _, prov := range b.o.Providers {
		if p.Link != nil {
			if p.Link.Accepted && slices.Contains(p.Link.Providers, prov.ID()) {
				out = append(out, prov)
			}
			continue
		}
		if slices.Contains(p.Kinds, prov.Kind()) && prov.MaxLoA().Satisfies(p.MinLoA) {
			out = append(out, prov)
		}
	}
	return out
}

func (b *Broker) renderMethods(w http.ResponseWriter, r *http.Request, fc *flowCtx, status int, errText string) {
	rp := b.o.RelyingParties[fc.tx.RPID]
	page := methodPage{
		RPName: rp.Name.Get(fc.lang), CSRF: b.o.CSRF.Token(fc.csrfBinding()),
		Action: loginPath(fc.tx.ID), CancelAction: loginPath(fc.tx.ID) + "/cancel",
		MinLoA: fc.params.MinLoA.String(), Error: errText,
	}
	if fc.params.Link != nil {
		page.Notice = b.text(fc.lang, "link_offer.choose")
	}
	for _, p := range b.methods(fc.params) {
		page.Methods = append(page.Methods, methodView{ID: p.ID(), Name: p.Name.Get(fc.lang), Kind: p.Kind()})
	}
	b.o.UI.Render(w, r, status, "method", fc.lang, page)
}

// handleChoose starts the chosen provider.
func (b *Broker) handleChoose(w http.ResponseWriter, r *http.Request) {
	fc, ok := b.load(w, r)
	if !ok || !b.parseForm(w, r, fc) {
		return
	}
	if !b.active(fc) {
		b.errorPage(w, r, http.StatusConflict, fc.lang, "error.tx_unknown")
		return
	}
	prov, ok := b.providers[r.PostForm.Get("provider")]
	if !ok || !slices.ContainsFunc(b.methods(fc.params), func(p Provider) bool { return p.ID() == prov.ID() }) {
		b.audit(r.Context(), "browser", "login.method", fc.tx.ID, store.OutcomeDenied, "method not offered", nil)
		b.errorPage(w, r, http.StatusBadRequest, fc.lang, "error.method")
		return
	}
	b.audit(r.Context(), "browser", "login.method", fc.tx.ID, store.OutcomeSuccess, prov.ID(), nil)
	switch p := prov.Provider.(type) {
	case providers.RedirectProvider:
		target, state, err := p.Begin(r.Context(), b.providerRequest(r, fc))
		if err != nil {
			b.providerFailed(w, r, fc, prov, err)
			return
		}
		if !b.setProvider(w, r, fc, prov.ID(), state) {
			return
		}
		http.Redirect(w, r, target, http.StatusSeeOther)
	case providers.CeremonyProvider:
		if !b.setProvider(w, r, fc, prov.ID(), nil) {
			return
		}
		b.o.UI.Render(w, r, http.StatusOK, "ceremony", fc.lang, ceremonyPage{
			Kind: p.Kind(), Name: prov.Name.Get(fc.lang), CSRF: b.o.CSRF.Token(fc.csrfBinding()),
			OptionsURL: loginPath(fc.tx.ID) + "/ceremony/options", FinishURL: loginPath(fc.tx.ID) + "/ceremony/finish",
			SelfRegistration: b.selfRegistration(fc),
		})
	case providers.CertificateProvider:
		if !b.setProvider(w, r, fc, prov.ID(), nil) {
			return
		}
		// The card-login listener (same host, its own port) asks for the
		// client certificate; the transaction cookie reaches it there.
		http.Redirect(w, r, b.o.CardLoginURL+loginPath(fc.tx.ID)+"/certificate", http.StatusSeeOther)
	default:
		b.internalError(w, r, fc.lang, "provider without a capability", errors.New(prov.ID()))
	}
}

type ceremonyPage struct {
	Kind, Name, CSRF, OptionsURL, FinishURL string
	// SelfRegistration offers to create an account on the page.
	SelfRegistration bool
}

// setProvider records the chosen provider and its state.
func (b *Broker) setProvider(w http.ResponseWriter, r *http.Request, fc *flowCtx, providerID string, state []byte) bool {
	tx, err := b.o.Store.Transactions().Update(r.Context(), fc.tx.ID, func(t *store.Transaction) error {
		if t.State != store.TxStateMethod && t.State != store.TxStateProvider {
			return store.ErrConflict
		}
		t.State, t.ProviderID = store.TxStateProvider, providerID
		t.ProviderState = encodeState(state)
		return nil
	})
	if err != nil {
		b.internalError(w, r, fc.lang, "update transaction", err)
		return false
	}
	fc.tx = tx
	return true
}

// encodeState keeps provider state as a JSON string (base64 of the bytes).
func encodeState(state []byte) json.RawMessage {
	if state == nil {
		return nil
	}
	b, _ := json.Marshal(state)
	return b
}

func decodeState(raw json.RawMessage) []byte {
	var s []byte
	if len(raw) > 0 {
		_ = json.Unmarshal(raw, &s)
	}
	return s
}

func (b *Broker) providerRequest(r *http.Request, fc *flowCtx) providers.Request {
	req := b.pendingRequest(fc)
	req.ClientIP = web.ClientIP(r.Context())
	return req
}

func (b *Broker) pendingRequest(fc *flowCtx) providers.Request {
	return providers.Request{
		TransactionID: fc.tx.ID, RPID: fc.tx.RPID, Attributes: fc.params.Attributes,
		MinLoA: fc.params.MinLoA, Lang: fc.lang,
		CallbackURL:      b.o.Issuer + loginPath(fc.tx.ID) + "/callback",
		SelfRegistration: b.selfRegistration(fc),
	}
}

// Pending serves providers.EndpointHost: the request and state of login
// txID while it waits at provider providerID. It does not check the
// browser (the caller is an outside party); ClientIP is empty, and Lang
// is empty unless the relying party asked for a language (ui_locales).
func (b *Broker) Pending(ctx context.Context, providerID, txID string) (providers.Request, []byte, error) {
	tx, err := b.o.Store.Transactions().Get(ctx, txID)
	if err != nil {
		return providers.Request{}, nil, err
	}
	if tx.State != store.TxStateProvider || tx.ProviderID != providerID {
		return providers.Request{}, nil, store.ErrNotFound
	}
	var p LoginParams
	if err := json.Unmarshal(tx.Params, &p); err != nil {
		return providers.Request{}, nil, fmt.Errorf("decode transaction: %w", err)
	}
	fc := &flowCtx{tx: tx, params: p, lang: ui.FromLocales(p.Lang)}
	return b.pendingRequest(fc), decodeState(tx.ProviderState), nil
}

// selfRegistration: the relying party allows new accounts from a
// credential alone, and the login needs no more than low.
func (b *Broker) selfRegistration(fc *flowCtx) bool {
	rp := b.o.RelyingParties[fc.tx.RPID]
	return rp != nil && rp.SelfRegistration && loa.Low.Satisfies(fc.params.MinLoA) && fc.params.Link == nil
}

// loadChosen loads the transaction of the request and its chosen provider,
// which must have the capability C; on failure it has written the page.
func loadChosen[C providers.Provider](b *Broker, w http.ResponseWriter, r *http.Request) (*flowCtx, Provider, C, bool) {
	var none C
	fc, ok := b.load(w, r)
	if !ok {
		return nil, Provider{}, none, false
	}
	prov, ok := b.providers[fc.tx.ProviderID]
	if fc.tx.State != store.TxStateProvider || !ok {
		b.errorPage(w, r, http.StatusConflict, fc.lang, "error.tx_unknown")
		return nil, Provider{}, none, false
	}
	c, ok := prov.Provider.(C)
	if !ok {
		b.errorPage(w, r, http.StatusBadRequest, fc.lang, "error.method")
		return nil, Provider{}, none, false
	}
	return fc, prov, c, true
}

// handleCallback completes a redirect-based provider.
func (b *Broker) handleCallback(w http.ResponseWriter, r *http.Request) {
	fc, prov, rp, ok := loadChosen[providers.RedirectProvider](b, w, r)
	if !ok {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	id, err := rp.Complete(r.Context(), b.providerRequest(r, fc), decodeState(fc.tx.ProviderState), r)
	if err != nil {
		b.providerFailed(w, r, fc, prov, err)
		return
	}
	b.identified(w, r, fc, prov, id)
}

// ceremonyProvider loads a ceremony transaction and checks the CSRF header
// the page's script sends.
func (b *Broker) ceremonyProvider(w http.ResponseWriter, r *http.Request) (*flowCtx, Provider, providers.CeremonyProvider, bool) {
	fc, prov, cp, ok := loadChosen[providers.CeremonyProvider](b, w, r)
	if !ok || !b.checkCSRF(w, r, fc, r.Header.Get("X-CSRF-Token")) {
		return nil, Provider{}, nil, false
	}
	return fc, prov, cp, true
}

func (b *Broker) handleCeremonyOptions(w http.ResponseWriter, r *http.Request) {
	fc, prov, cp, ok := b.ceremonyProvider(w, r)
	if !ok {
		return
	}
	req := b.providerRequest(r, fc)
	if body, err := readBody(w, r); err == nil && len(body) > 0 && json.Valid(body) {
		req.Input = body
	}
	opts, state, err := cp.Options(r.Context(), req)
	if err != nil {
		b.providerFailed(w, r, fc, prov, err)
		return
	}
	if !b.setProvider(w, r, fc, prov.ID(), state) {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(opts)
}

func (b *Broker) handleCeremonyFinish(w http.ResponseWriter, r *http.Request) {
	fc, prov, cp, ok := b.ceremonyProvider(w, r)
	if !ok {
		return
	}
	body, err := readBody(w, r)
	if err != nil || !json.Valid(body) {
		b.errorPage(w, r, http.StatusBadRequest, fc.lang, "error.provider")
		return
	}
	fc.resumeByNavigation = true
	id, err := cp.Finish(r.Context(), b.providerRequest(r, fc), decodeState(fc.tx.ProviderState), body)
	if err != nil {
		b.providerFailed(w, r, fc, prov, err)
		return
	}
	b.identified(w, r, fc, prov, id)
}

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	return io.ReadAll(http.MaxBytesReader(w, r.Body, maxFormBytes))
}

// handleCertificate hands the client certificate (from the card-login TLS
// listener, or a trusted proxy's header) to the provider, which validates it.
func (b *Broker) handleCertificate(w http.ResponseWriter, r *http.Request) {
	fc, prov, cp, ok := loadChosen[providers.CertificateProvider](b, w, r)
	if !ok {
		return
	}
	peer, err := b.o.ClientCert.FromRequest(r)
	if err != nil {
		b.providerFailed(w, r, fc, prov, &providers.Error{Code: "certificate_header", Public: "The card certificate could not be read.", Err: err})
		return
	}
	if len(peer) == 0 {
		b.providerFailed(w, r, fc, prov, &providers.Error{Code: "no_certificate", Public: "No card certificate was presented."})
		return
	}
	id, err := cp.Authenticate(r.Context(), b.providerRequest(r, fc), peer)
	if err != nil {
		b.providerFailed(w, r, fc, prov, err)
		return
	}
	if id != nil {
		// Over the broker's own TLS listener the card's key is proved on
		// this connection: tokens may be bound to it (RFC 8705).
		id.CertThumbprint = clientcert.TLSThumbprint(r)
	}
	b.identified(w, r, fc, prov, id)
}

// handleCancel: the user leaves the login; the RP hears access_denied.
func (b *Broker) handleCancel(w http.ResponseWriter, r *http.Request) {
	fc, ok := b.load(w, r)
	if !ok || !b.parseForm(w, r, fc) {
		return
	}
	if !b.active(fc) {
		b.errorPage(w, r, http.StatusConflict, fc.lang, "error.tx_unknown")
		return
	}
	b.fail(w, r, fc, "access_denied", "the user cancelled the login")
}

// providerFailed shows the method page again with the provider's public
// message; the private part goes to the log and the audit trail.
func (b *Broker) providerFailed(w http.ResponseWriter, r *http.Request, fc *flowCtx, prov Provider, err error) {
	reason, public := "provider error", ""
	if pe, ok := providers.PublicError(err); ok {
		reason, public = pe.Code, pe.Public
	}
	b.o.Logger.WarnContext(r.Context(), "provider failed", "provider", prov.ID(), "tx", fc.tx.ID,
		"request_id", web.RequestID(r.Context()), "err", err)
	b.audit(r.Context(), "browser", "login.provider", fc.tx.ID, store.OutcomeFailure, reason, map[string]string{"provider": prov.ID()})
	msg := b.text(fc.lang, "error.provider")
	if public != "" {
		msg += " " + public
	}
	b.renderMethods(w, r, fc, http.StatusUnprocessableEntity, msg)
}

// identified is the common path after a provider proved an identity.
func (b *Broker) identified(w http.ResponseWriter, r *http.Request, fc *flowCtx, prov Provider, id *providers.Identity) {
	if id == nil || id.Subject == "" {
		b.providerFailed(w, r, fc, prov, errors.New("provider returned no subject"))
		return
	}
	id.ProviderID, id.Kind = prov.ID(), prov.Kind()
	if id.AuthTime.IsZero() {
		id.AuthTime = b.o.Now()
	}
	b.audit(r.Context(), "browser", "login.provider", fc.tx.ID, store.OutcomeSuccess, prov.ID(),
		map[string]any{"loa": id.LoA.String(), "amr": id.AMR})
	if fc.params.Link != nil {
		b.completeLink(w, r, fc, id)
		return
	}
	fc.matchHash = b.matchHash(id)
	b.finish(w, r, fc, id, nil)
}

// finish links the account, asks the policy and the consent step, and
// hands the result to the adapter. sso is the session that answered, or
// nil after a fresh login.
func (b *Broker) finish(w http.ResponseWriter, r *http.Request, fc *flowCtx, id *providers.Identity, sso *store.Session) {
	ctx := r.Context()
	if !id.LoA.Satisfies(fc.params.MinLoA) {
		b.fail(w, r, fc, "access_denied", "level of assurance "+id.LoA.String()+" below "+fc.params.MinLoA.String())
		return
	}
	accountID := ""
	if sso != nil {
		accountID = sso.AccountID
	} else {
		offered, err := b.offerLink(w, r, fc, id)
		if err != nil {
			b.internalError(w, r, fc.lang, "link offer", err)
			return
		}
		if offered {
			return
		}
		if accountID, err = b.linkAccount(ctx, id, fc.matchHash); err != nil {
			b.internalError(w, r, fc.lang, "link account", err)
			return
		}
	}
	b.decide(w, r, fc, id, accountID, sso)
}

// decide asks the policy and the consent step for the account's login.
func (b *Broker) decide(w http.ResponseWriter, r *http.Request, fc *flowCtx, id *providers.Identity, accountID string, sso *store.Session) {
	ctx := r.Context()
	rp := b.o.RelyingParties[fc.tx.RPID]
	pc := b.PolicyContext(r, id.LoA, id.Kind, id.AMR)
	dec, err := b.o.Policy.Decide(ctx, policy.Request{
		Subject:  policy.Subject{AccountID: accountID, Attributes: id.Attributes},
		Resource: rp.ID, Action: policy.ActionLogin, Context: pc,
	})
	if err != nil {
		b.internalError(w, r, fc.lang, "policy decision", err)
		return
	}
	b.audit(ctx, accountID, "login.policy", fc.tx.ID, string(dec.Effect), dec.Rule+": "+dec.Reason, policy.AuditDetails(dec, pc))
	switch dec.Effect {
	case policy.Allow:
	case policy.StepUp:
		b.stepUp(w, r, fc, id, dec)
		return
	default:
		b.policyDenied(w, r, fc, dec)
		return
	}
	// The consent step (broker/consent.go) completes the flow, at once or
	// after the consent page.
	b.consent(w, r, fc, pendingConsent{Identity: *id, AccountID: accountID, SSOSessionID: ssoID(sso), PolicyRule: dec.Rule})
}

// stepUp raises the required level (and narrows the credential kinds to
// those the policy names) and returns to the method choice. When the
// identity already meets both, no new login can help: the login is denied.
func (b *Broker) stepUp(w http.ResponseWriter, r *http.Request, fc *flowCtx, id *providers.Identity, dec policy.Decision) {
	kinds := fc.params.Kinds
	if len(dec.RequiredKinds) > 0 {
		kinds = slices.DeleteFunc(slices.Clone(kinds), func(k string) bool { return !slices.Contains(dec.RequiredKinds, k) })
	}
	if id.LoA.Satisfies(dec.RequiredLoA) && slices.Contains(kinds, id.Kind) || len(kinds) == 0 {
		b.policyDenied(w, r, fc, dec)
		return
	}
	fc.params.MinLoA = max(fc.params.MinLoA, dec.RequiredLoA)
	fc.params.Kinds = kinds
	params, _ := json.Marshal(fc.params)
	_, err := b.o.Store.Transactions().Update(r.Context(), fc.tx.ID, func(t *store.Transaction) error {
		t.Params, t.State, t.ProviderID, t.ProviderState = params, store.TxStateMethod, "", nil
		return nil
	})
	if err != nil {
		b.internalError(w, r, fc.lang, "step-up", err)
		return
	}
	http.Redirect(w, r, loginPath(fc.tx.ID), http.StatusSeeOther)
}

// linkAccount finds the account of an identity, creating it on first login,
// and keeps its match key hash (matchHash, may be empty) up to date.
// Two first logins racing both end on the same account.
func (b *Broker) linkAccount(ctx context.Context, id *providers.Identity, matchHash string) (string, error) {
	for attempt := 0; attempt < 2; attempt++ {
		var accountID string
		err := b.o.Store.InTx(ctx, func(tx store.Store) error {
			a, err := tx.Accounts().FindByIdentity(ctx, id.ProviderID, id.Subject)
			if err == nil {
				accountID = a.ID
				if matchHash != "" {
					// Identities linked before match keys existed, or
					// whose data changed, get the current hash.
					if err := tx.Accounts().SetMatchKey(ctx, id.ProviderID, id.Subject, matchHash); err != nil {
						return err
					}
				}
				return tx.Accounts().TouchIdentity(ctx, id.ProviderID, id.Subject, b.o.Now())
			}
			if !errors.Is(err, store.ErrNotFound) {
				return err
			}
			newID, err := b.random(16)
			if err != nil {
				return err
			}
			now := b.o.Now()
			if err := tx.Accounts().Create(ctx, &store.Account{ID: newID, CreatedAt: now, UpdatedAt: now, DisplayName: displayName(id)}); err != nil {
				return err
			}
			accountID = newID
			return tx.Accounts().Link(ctx, store.LinkedIdentity{
				AccountID: newID, ProviderID: id.ProviderID, Subject: id.Subject, Kind: id.Kind, LinkedAt: now, LastUsedAt: now,
				MatchKey: matchHash,
			})
		})
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		return accountID, err
	}
	return "", errors.New("broker: account link kept conflicting")
}

func displayName(id *providers.Identity) string {
	g, _ := id.Attributes["given_name"].(string)
	f, _ := id.Attributes["family_name"].(string)
	if g != "" && f != "" {
		return g + " " + f
	}
	return g + f
}

// bindSession creates the SSO session after a fresh login, or records the RP
// in the session that answered.
func (b *Broker) bindSession(w http.ResponseWriter, r *http.Request, fc *flowCtx, accountID string, id *providers.Identity, sso *store.Session) (string, bool) {
	ctx := r.Context()
	if sso != nil {
		_, err := b.o.Store.Sessions().Update(ctx, sso.ID, func(s *store.Session) error {
			if !slices.Contains(s.RelyingParties, fc.tx.RPID) {
				s.RelyingParties = append(s.RelyingParties, fc.tx.RPID)
			}
			return nil
		})
		if err != nil {
			b.internalError(w, r, fc.lang, "update session", err)
			return "", false
		}
		b.audit(ctx, accountID, "session.sso", fc.tx.ID, store.OutcomeSuccess, "rp "+fc.tx.RPID, nil)
		return sso.ID, true
	}
	raw, _ := json.Marshal(id)
	s := &store.Session{
		AccountID: accountID, AuthTime: id.AuthTime, LoA: id.LoA.URI(), AMR: id.AMR,
		ProviderID: id.ProviderID, CredentialKind: id.Kind, RelyingParties: []string{fc.tx.RPID}, Identity: raw,
	}
	if err := b.o.Sessions.Create(ctx, w, s); err != nil {
		b.internalError(w, r, fc.lang, "create session", err)
		return "", false
	}
	b.audit(ctx, accountID, "session.create", s.ID[:12], store.OutcomeSuccess, "", nil)
	return s.ID, true
}

// fail ends the flow without an identity.
func (b *Broker) fail(w http.ResponseWriter, r *http.Request, fc *flowCtx, code, description string) {
	b.audit(r.Context(), "browser", "login.fail", fc.tx.ID, store.OutcomeFailure, code+": "+description, nil)
	b.end(w, r, fc, store.TxStateFailed, &FlowError{Code: code, Description: description})
}

// policyDenied ends the flow with access_denied and the policy's safe
// reason: in English for the relying party (error_description is ASCII,
// RFC 6749 §4.1.2.1), as a code for adapters that show a page. The rule
// stays in the audit trail.
func (b *Broker) policyDenied(w http.ResponseWriter, r *http.Request, fc *flowCtx, dec policy.Decision) {
	desc := policy.PublicReason(dec.Public, "en")
	b.audit(r.Context(), "browser", "login.fail", fc.tx.ID, store.OutcomeFailure, "access_denied: "+desc, nil)
	b.end(w, r, fc, store.TxStateFailed, &FlowError{Code: "access_denied", Description: desc, Reason: dec.Public})
}

// end stores the outcome and resumes the adapter once: the transaction is
// deleted first, so a second request for it finds nothing.
func (b *Broker) end(w http.ResponseWriter, r *http.Request, fc *flowCtx, state string, outcome any) {
	raw, _ := json.Marshal(outcome)
	tx, err := b.o.Store.Transactions().Update(r.Context(), fc.tx.ID, func(t *store.Transaction) error {
		if t.State == store.TxStateDone || t.State == store.TxStateFailed {
			return store.ErrConflict
		}
		t.State, t.Result = state, raw
		return nil
	})
	if errors.Is(err, store.ErrConflict) {
		b.errorPage(w, r, http.StatusConflict, fc.lang, "error.tx_unknown")
		return
	}
	if err != nil {
		b.internalError(w, r, fc.lang, "end transaction", err)
		return
	}
	fc.tx = tx
	if fc.resumeByNavigation {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"next": loginPath(fc.tx.ID)})
		return
	}
	b.handleResume(w, r, fc)
}

// handleResume hands a finished transaction to its adapter, exactly once.
func (b *Broker) handleResume(w http.ResponseWriter, r *http.Request, fc *flowCtx) {
	a, ok := b.adapters[fc.tx.Protocol]
	if !ok {
		b.internalError(w, r, fc.lang, "resume", errors.New("no adapter for "+fc.tx.Protocol))
		return
	}
	if err := b.o.Store.Transactions().Delete(r.Context(), fc.tx.ID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			b.errorPage(w, r, http.StatusConflict, fc.lang, "error.tx_unknown")
			return
		}
		b.internalError(w, r, fc.lang, "delete transaction", err)
		return
	}
	b.o.Cookies.Clear(w, "tb_login", loginPath(fc.tx.ID))
	if fc.tx.State == store.TxStateDone {
		var res Result
		if err := json.Unmarshal(fc.tx.Result, &res); err != nil {
			b.internalError(w, r, fc.lang, "decode result", err)
			return
		}
		a.Resume(w, r, fc.tx, &res, nil)
		return
	}
	var fe FlowError
	if err := json.Unmarshal(fc.tx.Result, &fe); err != nil {
		b.internalError(w, r, fc.lang, "decode failure", err)
		return
	}
	a.Resume(w, r, fc.tx, nil, &fe)
}

type errorData struct {
	Message   string
	RequestID string
}

func (b *Broker) text(lang, key string) string {
	return b.o.UI.Text(lang, key)
}

// errorPage renders the error page with a catalogue message.
func (b *Broker) errorPage(w http.ResponseWriter, r *http.Request, status int, lang, key string) {
	web.NoStore(w)
	b.o.UI.Render(w, r, status, "error", lang, errorData{Message: b.text(lang, key), RequestID: web.RequestID(r.Context())})
}

// internalError logs the cause and shows a generic page.
func (b *Broker) internalError(w http.ResponseWriter, r *http.Request, lang, what string, err error) {
	b.o.Logger.ErrorContext(r.Context(), "login flow: "+what, "err", err, "request_id", web.RequestID(r.Context()))
	b.errorPage(w, r, http.StatusInternalServerError, lang, "error.internal")
}
