package server

import (
	"net/http"
	"net/url"

	"github.com/trustbroker/trustbroker/adapters/saml"
	"github.com/trustbroker/trustbroker/broker"
	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/broker/keys"
	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/broker/ui"
)

// newSAMLIdP builds the SAML Identity Provider for the configured service
// providers (relying parties with protocol saml); a SAML logout reaches the
// OIDC relying parties of the session through onLogout.
// The SessionIndex key is derived from the master key, so every replica
// reads the SessionIndexes the others issued.
func newSAMLIdP(cfg *config.Config, b *broker.Broker, st store.Store, km *keys.Manager, u *ui.UI, mk keys.MasterKey, o Options, onLogout func(*store.Session)) (*saml.IdP, error) {
	var rps []*config.RelyingParty
	for i := range cfg.RelyingParties {
		rps = append(rps, &cfg.RelyingParties[i])
	}
	sessionKey, err := mk.Derive("saml-session-index")
	if err != nil {
		return nil, err
	}
	return saml.New(saml.Options{
		Issuer: cfg.Server.Issuer, Broker: b, Store: st, Keys: km, UI: u, RelyingParties: rps,
		Now: o.Now, Logger: o.Logger, OnLogout: onLogout, SessionKey: sessionKey,
	})
}

// mountSAMLLogout serves the dashboard's "log out everywhere" button: an
// IdP-initiated single logout of the browser's session (every SAML SP of
// the session through the browser, the OIDC relying parties over the back
// channel), then the front-channel logout page of the OIDC relying parties
// that registered one (frontchannel) and the home page. CSRF-checked like
// the dashboard's forms.
func mountSAMLLogout(mux *http.ServeMux, idp *saml.IdP, host accountHost, frontchannel func(*store.Session, string) string) {
	mux.HandleFunc("POST /account/logout", func(w http.ResponseWriter, r *http.Request) {
		s, err := host.Session(r)
		if err != nil {
			http.Redirect(w, r, "/account", http.StatusSeeOther)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
		lang := host.Lang(r)
		if r.ParseForm() != nil || !host.CSRFValid(s, r.PostForm.Get("csrf")) {
			host.Audit(r.Context(), s.AccountID, "session.logout", s.ID[:12], store.OutcomeDenied, "bad csrf token", nil)
			host.Render(w, r, http.StatusForbidden, "error", lang, struct{ Message, RequestID string }{host.Text(lang, "error.csrf"), ""})
			return
		}
		host.Audit(r.Context(), s.AccountID, "session.logout", s.ID[:12], store.OutcomeSuccess, "dashboard: everywhere", nil)
		ret := "/"
		if l := chosenLang(r); l != "" {
			ret += "?lang=" + l
		}
		idp.Logout(w, r, frontchannelInLang(r, frontchannel(s, ret), ret))
	})
}

// chosenLang is the language the dashboard's form was posted in (its
// action carries ?lang), "" when none was chosen.
func chosenLang(r *http.Request) string {
	if l := r.URL.Query().Get("lang"); l == "de" || l == "en" {
		return l
	}
	return ""
}

// frontchannelInLang keeps the language the dashboard was used in on the
// front-channel logout page: next is that page's URL, or returnURL itself
// when no relying party has a front-channel logout URI.
func frontchannelInLang(r *http.Request, next, returnURL string) string {
	l := chosenLang(r)
	if next == returnURL || l == "" {
		return next
	}
	u, err := url.Parse(next)
	if err != nil {
		return next
	}
	q := u.Query()
	q.Set("lang", l)
	u.RawQuery = q.Encode()
	return u.String()
}

// accountDeletionLogout ends the dashboard's account deletion like "log
// out everywhere" (mountSAMLLogout): the SAML SPs of the session get
// LogoutRequests through the browser, then the OIDC relying parties with a
// front-channel logout URI their page (frontchannel), then returnURL, the
// goodbye page. The account and its sessions are erased already, so both
// are built from s, the session as read before; the OIDC back channel was
// the erasure's (consent withdrawal). The front-channel page keeps the
// language the deletion was asked in.
func accountDeletionLogout(idp *saml.IdP, frontchannel func(*store.Session, string) string) func(http.ResponseWriter, *http.Request, *store.Session, string) {
	return func(w http.ResponseWriter, r *http.Request, s *store.Session, returnURL string) {
		idp.LogoutEnded(w, r, s, frontchannelInLang(r, frontchannel(s, returnURL), returnURL))
	}
}

// samlLogout hands an RP-initiated logout at the OpenID Provider to the
// SAML IdP (oidc.Options.SAMLLogout): the session has ended and its OIDC
// clients have been told over the back channel, and the SAML SPs of the
// session get LogoutRequests through the browser, built from s as
// LogoutEnded does for an account deletion. The provider is built before
// the IdP, so idp is set once both exist, before the server serves.
type samlLogout struct{ idp *saml.IdP }

func (h *samlLogout) logout(w http.ResponseWriter, r *http.Request, s *store.Session, returnURL string) bool {
	if h.idp == nil || !h.idp.HasParticipants(s) {
		return false
	}
	h.idp.LogoutEnded(w, r, s, returnURL)
	return true
}
