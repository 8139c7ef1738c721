package server

import (
	"github.com/trustbroker/trustbroker/adapters/saml"
	"github.com/trustbroker/trustbroker/broker"
	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/broker/keys"
	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/broker/ui"
)

// newSAMLIdP builds the SAML Identity Provider for the configured service
// providers (relying parties with protocol saml).
func newSAMLIdP(cfg *config.Config, b *broker.Broker, st store.Store, km *keys.Manager, u *ui.UI, o Options) (*saml.IdP, error) {
	var rps []*config.RelyingParty
	for i := range cfg.RelyingParties {
		rps = append(rps, &cfg.RelyingParties[i])
	}
	return saml.New(saml.Options{
		Issuer: cfg.Server.Issuer, Broker: b, Store: st, Keys: km, UI: u, RelyingParties: rps,
		Now: o.Now, Logger: o.Logger,
	})
}
