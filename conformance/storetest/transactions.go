package storetest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/trustbroker/trustbroker/broker/store"
)

// loginTx returns a new login transaction, valid for ten minutes.
func (e *env) loginTx(id string) *store.Transaction {
	return &store.Transaction{
		ID: id, Protocol: "oidc", RPID: "rp-1", State: store.TxStateMethod,
		ExpiresAt: e.now().Add(10 * time.Minute),
		Request:   json.RawMessage(`{"client_id":"rp-1","scope":"openid profile","nonce":"n-0S6_WzA2Mj"}`),
		Params:    json.RawMessage(`{"acr":"http://eidas.europa.eu/LoA/substantial","max_age":300}`),
	}
}

func testTransactions(t *testing.T, open Opener) {
	t.Run("CreateGetDelete", func(t *testing.T) {
		e := setup(t, open)
		txs := e.st.Transactions()
		tx := e.loginTx("tx-1")
		must(t, txs.Create(e.ctx, tx))
		equal(t, "Version after Create", tx.Version, int64(1))
		equal(t, "defaulted CreatedAt", tx.CreatedAt, e.now())
		got, err := txs.Get(e.ctx, "tx-1")
		must(t, err)
		equal(t, "Get", got, tx)

		wantErr(t, txs.Create(e.ctx, e.loginTx("tx-1")), store.ErrConflict)
		noExpiry := e.loginTx("tx-2")
		noExpiry.ExpiresAt = time.Time{}
		wantSomeErr(t, txs.Create(e.ctx, noExpiry), "Create without ExpiresAt")
		badJSON := e.loginTx("tx-3")
		badJSON.Params = json.RawMessage(`{"acr":`)
		wantSomeErr(t, txs.Create(e.ctx, badJSON), "Create with malformed JSON")

		must(t, txs.Delete(e.ctx, "tx-1"))
		_, err = txs.Get(e.ctx, "tx-1")
		wantErr(t, err, store.ErrNotFound)
		wantErr(t, txs.Delete(e.ctx, "tx-1"), store.ErrNotFound)
	})

	t.Run("Update", func(t *testing.T) {
		e := setup(t, open)
		txs := e.st.Transactions()
		tx := e.loginTx("tx-1")
		must(t, txs.Create(e.ctx, tx))
		got, err := txs.Update(e.ctx, "tx-1", func(t *store.Transaction) error {
			t.State = store.TxStateProvider
			t.ProviderID = "eid"
			t.ProviderState = json.RawMessage(`{"session":"abc"}`)
			t.Version = 99 // the store owns the version
			t.ID = "tx-hijacked"
			return nil
		})
		must(t, err)
		want := *tx
		want.State, want.ProviderID, want.ProviderState, want.Version = store.TxStateProvider, "eid", json.RawMessage(`{"session":"abc"}`), 2
		equal(t, "Update result", *got, want)
		stored, err := txs.Get(e.ctx, "tx-1")
		must(t, err)
		equal(t, "stored after Update", *stored, want)

		_, err = txs.Update(e.ctx, "tx-1", func(t *store.Transaction) error {
			t.State = store.TxStateFailed
			return errBoom
		})
		wantErr(t, err, errBoom)
		stored, err = txs.Get(e.ctx, "tx-1")
		must(t, err)
		equal(t, "stored after failed Update", *stored, want)
		_, err = txs.Update(e.ctx, "tx-1", func(t *store.Transaction) error {
			t.Result = json.RawMessage(`{"broken"`)
			return nil
		})
		wantSomeErr(t, err, "Update to malformed JSON")
		_, err = txs.Update(e.ctx, "tx-missing", func(*store.Transaction) error { return nil })
		wantErr(t, err, store.ErrNotFound)
	})

	t.Run("Expiry", func(t *testing.T) {
		e := setup(t, open)
		txs := e.st.Transactions()
		must(t, txs.Create(e.ctx, e.loginTx("tx-1")))
		e.clock.Advance(10*time.Minute - time.Microsecond)
		_, err := txs.Get(e.ctx, "tx-1")
		must(t, err)
		e.clock.Advance(time.Microsecond)
		_, err = txs.Get(e.ctx, "tx-1")
		wantErr(t, err, store.ErrNotFound)
		_, err = txs.Update(e.ctx, "tx-1", func(*store.Transaction) error { return nil })
		wantErr(t, err, store.ErrNotFound)
	})

	t.Run("ConcurrentUpdate", func(t *testing.T) {
		e := setup(t, open)
		txs := e.st.Transactions()
		must(t, txs.Create(e.ctx, e.loginTx("tx-1")))
		errs := parallel(writers, func(int) error {
			for range updatesPerWriter {
				_, err := txs.Update(e.ctx, "tx-1", func(t *store.Transaction) error {
					t.State = store.TxStateConsent
					return nil
				})
				if err != nil {
					return err
				}
			}
			return nil
		})
		for _, err := range errs {
			must(t, err)
		}
		got, err := txs.Get(e.ctx, "tx-1")
		must(t, err)
		equal(t, "Version", got.Version, int64(1+writers*updatesPerWriter))
	})
}
