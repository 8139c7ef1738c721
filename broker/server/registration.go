package server

import (
	"encoding/json"
	"time"

	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/broker/store"
)

// registration is the stored form of a configured relying party; secrets
// are left out (the OIDC adapter keeps only their hashes).
func registration(rp *config.RelyingParty, now time.Time) *store.RelyingParty {
	c := *rp
	if c.OIDC != nil {
		o := *c.OIDC
		o.ClientSecret, o.ClientSecretFile = "", ""
		c.OIDC = &o
	}
	raw, _ := json.Marshal(c)
	return &store.RelyingParty{
		ID: rp.ID, Protocol: rp.Protocol, Name: rp.Name.Get("en"), Source: "config",
		Config: raw, CreatedAt: now, UpdatedAt: now,
	}
}
