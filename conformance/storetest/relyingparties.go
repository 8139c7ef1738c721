package storetest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/trustbroker/trustbroker/broker/store"
)

func testRelyingParties(t *testing.T, open Opener) {
	t.Run("PutGetListDelete", func(t *testing.T) {
		e := setup(t, open)
		rps := e.st.RelyingParties()
		rp := &store.RelyingParty{ID: "rp-b", Protocol: "oidc", Name: "Bürgerportal", Source: "config",
			Config: json.RawMessage(`{"redirect_uris":["https://rp.example/cb"]}`)}
		must(t, rps.Put(e.ctx, rp))
		equal(t, "CreatedAt after Put", rp.CreatedAt, e.now())
		equal(t, "UpdatedAt after Put", rp.UpdatedAt, e.now())
		got, err := rps.Get(e.ctx, "rp-b")
		must(t, err)
		equal(t, "Get", got, rp)

		created := e.now()
		e.clock.Advance(time.Hour)
		replaced := &store.RelyingParty{ID: "rp-b", Protocol: "oidc", Name: "Bürgerportal 2", Source: "admin"}
		must(t, rps.Put(e.ctx, replaced))
		equal(t, "CreatedAt kept by a replacing Put", replaced.CreatedAt, created)
		equal(t, "UpdatedAt after replacing Put", replaced.UpdatedAt, e.now())
		got, err = rps.Get(e.ctx, "rp-b")
		must(t, err)
		equal(t, "Get after replace", got, replaced)

		other := &store.RelyingParty{ID: "rp-a", Protocol: "saml", Name: "Fachverfahren"}
		must(t, rps.Put(e.ctx, other))
		list, err := rps.List(e.ctx)
		must(t, err)
		equal(t, "List (by ID)", list, []store.RelyingParty{*other, *replaced})

		wantSomeErr(t, rps.Put(e.ctx, &store.RelyingParty{ID: "rp-c", Config: json.RawMessage("{")}), "Put with malformed JSON")
		must(t, rps.Delete(e.ctx, "rp-b"))
		_, err = rps.Get(e.ctx, "rp-b")
		wantErr(t, err, store.ErrNotFound)
		wantErr(t, rps.Delete(e.ctx, "rp-b"), store.ErrNotFound)
	})
}
