package server

import (
	"github.com/trustbroker/trustbroker/adapters/oidc"
	"github.com/trustbroker/trustbroker/broker"
	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/broker/keys"
	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/broker/ui"
	"github.com/trustbroker/trustbroker/broker/web"
)

// newOpenIDProvider builds the OpenID Provider for the configured clients;
// slo takes an RP-initiated logout on to the SAML service providers.
func newOpenIDProvider(cfg *config.Config, b *broker.Broker, st store.Store, km *keys.Manager, u *ui.UI, csrf *web.CSRF, mk keys.MasterKey, o Options, slo *samlLogout) (*oidc.Provider, error) {
	hmacKey, err := mk.Derive("oauth2-hmac")
	if err != nil {
		return nil, err
	}
	nonceKey, err := mk.Derive("dpop-nonce")
	if err != nil {
		return nil, err
	}
	var clients []*config.RelyingParty
	for i := range cfg.RelyingParties {
		clients = append(clients, &cfg.RelyingParties[i])
	}
	return oidc.New(oidc.Options{
		Issuer: cfg.Server.Issuer, Broker: b, Store: st, Keys: km, UI: u, CSRF: csrf, Clients: clients,
		HMACKey: hmacKey, DPoPNonceKey: nonceKey, DPoPRequireNonce: cfg.OIDC.DPoPRequireNonce, Now: o.Now, Logger: o.Logger,
		SAMLLogout: slo.logout,
	})
}
