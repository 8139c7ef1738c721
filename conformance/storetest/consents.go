package storetest

import (
	"testing"
	"time"

	"github.com/trustbroker/trustbroker/broker/store"
)

func testConsents(t *testing.T, open Opener) {
	t.Run("CreateGetList", func(t *testing.T) {
		e := setup(t, open)
		cs := e.st.Consents()
		e.account("acc-1")
		c1 := e.consent("cons-1", "acc-1", "rp-1")
		equal(t, "defaulted GrantedAt", c1.GrantedAt, e.now())
		got, err := cs.Get(e.ctx, "cons-1")
		must(t, err)
		equal(t, "Get", got, c1)
		e.clock.Advance(time.Second)
		c2 := e.consent("cons-2", "acc-1", "rp-2")

		wantErr(t, cs.Create(e.ctx, &store.Consent{ID: "cons-1", AccountID: "acc-1", RPID: "rp-1"}), store.ErrConflict)
		wantErr(t, cs.Create(e.ctx, &store.Consent{ID: "cons-3", AccountID: "acc-missing", RPID: "rp-1"}), store.ErrNotFound)
		_, err = cs.Get(e.ctx, "cons-missing")
		wantErr(t, err, store.ErrNotFound)

		must(t, cs.Withdraw(e.ctx, "cons-1", e.now()))
		c1.WithdrawnAt = e.now()
		list, err := cs.ListByAccount(e.ctx, "acc-1")
		must(t, err)
		equal(t, "ListByAccount (withdrawn kept, oldest first)", list, []store.Consent{*c1, *c2})
	})

	t.Run("ActiveWithdraw", func(t *testing.T) {
		e := setup(t, open)
		cs := e.st.Consents()
		e.account("acc-1")
		older := e.consent("cons-old", "acc-1", "rp-1")
		e.clock.Advance(time.Minute)
		newer := &store.Consent{ID: "cons-new", AccountID: "acc-1", RPID: "rp-1", Attributes: []string{"email"},
			ExpiresAt: e.now().Add(time.Hour)}
		must(t, cs.Create(e.ctx, newer))
		e.consent("cons-other-rp", "acc-1", "rp-2")

		got, err := cs.Active(e.ctx, "acc-1", "rp-1", e.now())
		must(t, err)
		equal(t, "Active (newest)", got, newer)
		got, err = cs.Active(e.ctx, "acc-1", "rp-1", newer.ExpiresAt)
		must(t, err)
		equal(t, "Active once the newest has expired", got, older)

		must(t, cs.Withdraw(e.ctx, "cons-new", e.now()))
		wantErr(t, cs.Withdraw(e.ctx, "cons-new", e.now()), store.ErrNotFound)
		got, err = cs.Active(e.ctx, "acc-1", "rp-1", e.now())
		must(t, err)
		equal(t, "Active after withdrawing the newest", got, older)
		stored, err := cs.Get(e.ctx, "cons-new")
		must(t, err)
		equal(t, "WithdrawnAt", stored.WithdrawnAt, e.now())

		must(t, cs.Withdraw(e.ctx, "cons-old", e.now()))
		_, err = cs.Active(e.ctx, "acc-1", "rp-1", e.now())
		wantErr(t, err, store.ErrNotFound)
		_, err = cs.Active(e.ctx, "acc-1", "rp-unknown", e.now())
		wantErr(t, err, store.ErrNotFound)
		wantErr(t, cs.Withdraw(e.ctx, "cons-missing", e.now()), store.ErrNotFound)
	})

	t.Run("WithdrawExpired", func(t *testing.T) {
		e := setup(t, open)
		cs := e.st.Consents()
		e.account("acc-1")
		c := &store.Consent{ID: "cons-1", AccountID: "acc-1", RPID: "rp-1", ExpiresAt: e.now().Add(time.Hour)}
		must(t, cs.Create(e.ctx, c))
		wantErr(t, cs.Withdraw(e.ctx, "cons-1", c.ExpiresAt), store.ErrNotFound)
	})
}
