// Package builtin is the registry of the provider types this binary ships:
// configuration `type` name → factory. It is the only package that imports
// every provider; providers join it as their packages land.
package builtin

import (
	"github.com/trustbroker/trustbroker/providers"
	"github.com/trustbroker/trustbroker/providers/eid"
	"github.com/trustbroker/trustbroker/providers/eid/eidsim"
	"github.com/trustbroker/trustbroker/providers/eidas"
	"github.com/trustbroker/trustbroker/providers/eidas/eidassim"
	"github.com/trustbroker/trustbroker/providers/smartcard"
	"github.com/trustbroker/trustbroker/providers/webauthn"
)

// Registry returns a fresh registry of the built-in provider types.
func Registry() providers.Registry {
	return providers.Registry{
		webauthn.Type:  webauthn.Factory,
		smartcard.Type: smartcard.Factory,
		eid.Type:       eid.Factory,
		eidsim.Type:    eidsim.Factory,
		eidas.Type:     eidas.Factory,
		eidassim.Type:  eidassim.Factory,
	}
}
