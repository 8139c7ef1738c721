package storetest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/trustbroker/trustbroker/broker/store"
)

func testKeys(t *testing.T, open Opener) {
	t.Run("Lifecycle", func(t *testing.T) {
		e := setup(t, open)
		keys := e.st.Keys()
		k1 := &store.SigningKey{ID: "kid-1", Alg: "ES256", State: store.KeyActive,
			PublicJWK:        json.RawMessage(`{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}`),
			PrivateEncrypted: []byte{0x00, 0x01, 0xfe, 0xff, 'k'}, ActivatedAt: e.now()}
		must(t, keys.Create(e.ctx, k1))
		equal(t, "defaulted CreatedAt", k1.CreatedAt, e.now())
		got, err := keys.Get(e.ctx, "kid-1")
		must(t, err)
		equal(t, "Get", got, k1)
		wantErr(t, keys.Create(e.ctx, &store.SigningKey{ID: "kid-1"}), store.ErrConflict)

		e.clock.Advance(time.Hour)
		k2 := &store.SigningKey{ID: "kid-2", Alg: "RS256", State: store.KeyNext, PrivateEncrypted: []byte("sealed")}
		must(t, keys.Create(e.ctx, k2))
		list, err := keys.List(e.ctx)
		must(t, err)
		equal(t, "List (oldest first)", list, []store.SigningKey{*k1, *k2})

		got, err = keys.Update(e.ctx, "kid-1", func(k *store.SigningKey) error {
			k.State = store.KeyRetired
			k.RetiredAt = e.now()
			k.VerifyUntil = e.now().Add(24 * time.Hour)
			k.ID = "kid-hijacked"
			return nil
		})
		must(t, err)
		want := *k1
		want.State, want.RetiredAt, want.VerifyUntil = store.KeyRetired, e.now(), e.now().Add(24*time.Hour)
		equal(t, "Update result", *got, want)
		stored, err := keys.Get(e.ctx, "kid-1")
		must(t, err)
		equal(t, "stored after Update", *stored, want)
		_, err = keys.Update(e.ctx, "kid-1", func(*store.SigningKey) error { return errBoom })
		wantErr(t, err, errBoom)
		_, err = keys.Update(e.ctx, "kid-missing", func(*store.SigningKey) error { return nil })
		wantErr(t, err, store.ErrNotFound)

		must(t, keys.Delete(e.ctx, "kid-1"))
		_, err = keys.Get(e.ctx, "kid-1")
		wantErr(t, err, store.ErrNotFound)
		wantErr(t, keys.Delete(e.ctx, "kid-1"), store.ErrNotFound)
	})
}
