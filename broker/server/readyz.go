package server

import (
	"context"
	"log/slog"

	"github.com/trustbroker/trustbroker/adapters/saml"
	"github.com/trustbroker/trustbroker/broker"
	"github.com/trustbroker/trustbroker/broker/health"
	"github.com/trustbroker/trustbroker/broker/store"
)

// readinessChecker is a provider with /readyz checks of its own (the
// eIDAS node's metadata).
type readinessChecker interface {
	ReadinessChecks() []health.Check
}

// newReadiness collects the checks GET /readyz runs: the database, the
// metadata of the metadata_url SAML SPs, and the providers' own. Only the
// database, this replica's own dependency, fails readiness; the others
// concern one party each and are partial (broker/health).
func newReadiness(st store.Store, idp *saml.IdP, provs []broker.Provider, logger *slog.Logger) *health.Readiness {
	r := &health.Readiness{Timeout: health.DefaultTimeout, Logger: logger}
	r.Add(health.Check{Name: "database", Run: func(ctx context.Context) error {
		if err := st.Ping(ctx); err != nil {
			return health.Failed("unavailable", err)
		}
		return nil
	}})
	r.Add(idp.ReadinessChecks()...)
	for _, p := range provs {
		if c, ok := p.Provider.(readinessChecker); ok {
			r.Add(c.ReadinessChecks()...)
		}
	}
	return r
}
