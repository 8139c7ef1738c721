package server

import (
	"net/http"
	"slices"
	"time"

	"github.com/trustbroker/trustbroker/broker"
	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/consent"
	"github.com/trustbroker/trustbroker/providers"
)

// newConsent builds the consent manager (always: the dashboard reads
// through it) and the consent step the flow and the gate use: the manager
// with consent.mode ask, PassThrough with consent.mode passthrough.
func newConsent(cfg *config.Config, st store.Store, rps map[string]*config.RelyingParty, o Options) (*consent.Manager, consent.Step) {
	cm := &consent.Manager{Store: st, RelyingParties: rps, Validity: cfg.Consent.Validity, Now: o.Now, Rand: o.Rand}
	if cfg.Consent.Mode == config.ConsentPassThrough {
		return cm, consent.PassThrough{}
	}
	return cm, cm
}

// mountDashboard mounts the citizen dashboard at /account, linking the
// credential pages of providers that have one (security keys, eID cards).
// Consent receipts (Kantara Consent Receipt v1.1) are signed with the
// broker's keys, ES256 when configured. An account deletion ends with
// singleLogout (accountDeletionLogout).
func mountDashboard(mux *http.ServeMux, provs []broker.Provider, cm *consent.Manager, host accountHost, tz *time.Location, cfg *config.Config, signer consent.ReceiptSigner,
	singleLogout func(http.ResponseWriter, *http.Request, *store.Session, string)) {
	d := &consent.Dashboard{Manager: cm, Host: host, TimeZone: tz, SingleLogout: singleLogout}
	d.Receipts = &consent.Receipts{Manager: cm, Signer: signer, Alg: consent.ReceiptAlg(cfg), Issuer: cfg.Server.Issuer}
	for _, p := range provs {
		if _, ok := p.Provider.(providers.AccountProvider); ok &&
			!slices.ContainsFunc(d.CredentialPages, func(c consent.CredentialPage) bool { return c.Kind == p.Kind() }) {
			// One link per kind: the catalogue names the kind, not the
			// provider.
			d.CredentialPages = append(d.CredentialPages, consent.CredentialPage{Kind: p.Kind(), Path: "/account/" + p.ID() + "/"})
		}
	}
	d.Routes(mux)
}
