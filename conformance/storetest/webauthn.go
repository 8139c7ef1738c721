package storetest

import (
	"bytes"
	"testing"
	"time"

	"github.com/trustbroker/trustbroker/broker/store"
)

func (e *env) webauthnCredential(id, accountID string) *store.WebAuthnCredential {
	e.t.Helper()
	c := &store.WebAuthnCredential{
		ID: []byte(id), AccountID: accountID, ProviderID: "webauthn", UserHandle: []byte("handle-" + accountID),
		UserName: "erika", PublicKey: []byte{0xa5, 0x01, 0x02, 0x03, 0x26}, SignCount: 5,
		AAGUID: bytes.Repeat([]byte{0x11}, 16), BackupEligible: true, BackupState: false, UserVerified: true,
		Transports: []string{"usb", "nfc"}, AttestationFormat: "packed", AttestationType: "basic_full",
		Attested: true, Discoverable: true, Name: "YubiKey " + id,
	}
	must(e.t, e.st.WebAuthn().Create(e.ctx, c))
	return c
}

func testWebAuthn(t *testing.T, open Opener) {
	t.Run("Lifecycle", func(t *testing.T) {
		e := setup(t, open)
		wa := e.st.WebAuthn()
		e.account("acc-w1")
		e.account("acc-w2")
		c1 := e.webauthnCredential("cred-1", "acc-w1")
		equal(t, "defaulted CreatedAt", c1.CreatedAt, e.now())
		got, err := wa.Get(e.ctx, []byte("cred-1"))
		must(t, err)
		equal(t, "Get", got, c1)
		// A credential id is registered once, whatever the account.
		wantErr(t, wa.Create(e.ctx, &store.WebAuthnCredential{ID: []byte("cred-1"), AccountID: "acc-w2",
			ProviderID: "webauthn", UserHandle: []byte("h"), PublicKey: []byte{1}}), store.ErrConflict)
		wantErr(t, wa.Create(e.ctx, &store.WebAuthnCredential{ID: []byte("cred-x"), AccountID: "acc-missing",
			ProviderID: "webauthn", UserHandle: []byte("h"), PublicKey: []byte{1}}), store.ErrNotFound)
		wantSomeErr(t, wa.Create(e.ctx, &store.WebAuthnCredential{ID: []byte("cred-y"), AccountID: "acc-w1"}), "Create without a key")

		e.clock.Advance(time.Minute)
		c2 := &store.WebAuthnCredential{ID: []byte{0x00, 0xff, 0x10}, AccountID: "acc-w1", ProviderID: "webauthn",
			UserHandle: []byte("handle-acc-w1"), PublicKey: []byte{9}, AttestationFormat: "none"}
		must(t, wa.Create(e.ctx, c2))
		e.webauthnCredential("cred-3", "acc-w2")
		list, err := wa.ListByAccount(e.ctx, "acc-w1")
		must(t, err)
		equal(t, "ListByAccount (oldest first)", list, []store.WebAuthnCredential{*c1, *c2})
		byName, err := wa.ListByUserName(e.ctx, "webauthn", "erika")
		must(t, err)
		if len(byName) != 2 || string(byName[0].ID) != "cred-1" || string(byName[1].ID) != "cred-3" {
			t.Fatalf("ListByUserName = %+v", byName)
		}
		none, err := wa.ListByUserName(e.ctx, "other-provider", "erika")
		must(t, err)
		equal(t, "ListByUserName at another provider", len(none), 0)

		must(t, wa.Rename(e.ctx, []byte("cred-1"), "Schlüssel im Büro"))
		wantErr(t, wa.Rename(e.ctx, []byte("missing"), "x"), store.ErrNotFound)
		must(t, wa.Delete(e.ctx, c2.ID))
		wantErr(t, wa.Delete(e.ctx, c2.ID), store.ErrNotFound)
		_, err = wa.Get(e.ctx, c2.ID)
		wantErr(t, err, store.ErrNotFound)

		// Credentials go with their account.
		must(t, e.st.Accounts().Delete(e.ctx, "acc-w2"))
		_, err = wa.Get(e.ctx, []byte("cred-3"))
		wantErr(t, err, store.ErrNotFound)
	})
	t.Run("Counter", func(t *testing.T) {
		e := setup(t, open)
		wa := e.st.WebAuthn()
		e.account("acc-c")
		c := e.webauthnCredential("cred-c", "acc-c")
		e.clock.Advance(time.Hour)
		must(t, wa.UseCounter(e.ctx, c.ID, 5, 6, true, e.now()))
		got, err := wa.Get(e.ctx, c.ID)
		must(t, err)
		if got.SignCount != 6 || !got.BackupState || !got.LastUsedAt.Equal(e.now()) {
			t.Fatalf("after UseCounter: %+v", got)
		}
		// A stale old value loses.
		wantErr(t, wa.UseCounter(e.ctx, c.ID, 5, 7, true, e.now()), store.ErrConflict)
		wantErr(t, wa.UseCounter(e.ctx, []byte("missing"), 0, 1, false, e.now()), store.ErrNotFound)
		// The largest value a counter can take survives the round trip.
		must(t, wa.UseCounter(e.ctx, c.ID, 6, 1<<32-1, true, e.now()))
		got, err = wa.Get(e.ctx, c.ID)
		must(t, err)
		equal(t, "max counter", got.SignCount, uint32(1<<32-1))
		// A cloned credential is never used again.
		must(t, wa.MarkCloned(e.ctx, c.ID))
		got, err = wa.Get(e.ctx, c.ID)
		must(t, err)
		equal(t, "cloned", got.Cloned, true)
		wantErr(t, wa.UseCounter(e.ctx, c.ID, 1<<32-1, 1<<32-1, true, e.now()), store.ErrConflict)
		wantErr(t, wa.MarkCloned(e.ctx, []byte("missing")), store.ErrNotFound)
	})
	t.Run("CounterRace", func(t *testing.T) {
		e := setup(t, open)
		e.account("acc-r")
		c := e.webauthnCredential("cred-r", "acc-r")
		// Every writer presents the same assertion (counter 5 → 6): exactly
		// one may win.
		errs := parallel(writers, func(int) error {
			return e.st.WebAuthn().UseCounter(e.ctx, c.ID, 5, 6, false, e.now())
		})
		wins := 0
		for _, err := range errs {
			switch {
			case err == nil:
				wins++
			default:
				wantErr(t, err, store.ErrConflict)
			}
		}
		equal(t, "winners", wins, 1)
	})
	t.Run("InTxRollback", func(t *testing.T) {
		e := setup(t, open)
		e.account("acc-t")
		err := e.st.InTx(e.ctx, func(tx store.Store) error {
			must(t, tx.WebAuthn().Create(e.ctx, &store.WebAuthnCredential{ID: []byte("cred-t"), AccountID: "acc-t",
				ProviderID: "webauthn", UserHandle: []byte("h"), PublicKey: []byte{1}}))
			return errBoom
		})
		wantErr(t, err, errBoom)
		_, err = e.st.WebAuthn().Get(e.ctx, []byte("cred-t"))
		wantErr(t, err, store.ErrNotFound)
	})
}
