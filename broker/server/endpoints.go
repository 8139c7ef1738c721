package server

import (
	"context"
	"net/http"

	"github.com/trustbroker/trustbroker/broker"
	"github.com/trustbroker/trustbroker/providers"
)

// endpointHost lends providers' own endpoints the logins waiting at them
// and the broker's pages (providers.EndpointHost).
type endpointHost struct{ accountHost }

var _ providers.EndpointHost = endpointHost{}

func (h endpointHost) Pending(ctx context.Context, providerID, txID string) (providers.Request, []byte, error) {
	return h.b.Pending(ctx, providerID, txID)
}

// mountProviderEndpoints mounts the endpoints of providers that have them
// (providers.EndpointProvider) under /providers/{provider id}/.
func mountProviderEndpoints(mux *http.ServeMux, provs []broker.Provider, host endpointHost) {
	for _, p := range provs {
		ep, ok := p.Provider.(providers.EndpointProvider)
		if !ok {
			continue
		}
		mux.Handle("/providers/"+ep.ID()+"/", ep.Endpoints(host))
	}
}
