package storetest

import (
	"strconv"
	"testing"
	"time"

	"github.com/trustbroker/trustbroker/broker/store"
)

func testAccounts(t *testing.T, open Opener) {
	t.Run("CreateGet", func(t *testing.T) {
		e := setup(t, open)
		accts := e.st.Accounts()
		a := &store.Account{ID: "acc-1", DisplayName: "Erika Mustermann"}
		must(t, accts.Create(e.ctx, a))
		equal(t, "defaulted CreatedAt", a.CreatedAt, e.now())
		equal(t, "defaulted UpdatedAt", a.UpdatedAt, e.now())
		got, err := accts.Get(e.ctx, "acc-1")
		must(t, err)
		equal(t, "Get", got, a)

		wantErr(t, accts.Create(e.ctx, &store.Account{ID: "acc-1"}), store.ErrConflict)
		_, err = accts.Get(e.ctx, "acc-missing")
		wantErr(t, err, store.ErrNotFound)
	})

	t.Run("TimePrecision", func(t *testing.T) {
		e := setup(t, open)
		berlin := time.FixedZone("CET", 3600)
		in := start.Add(789 * time.Nanosecond).In(berlin)
		a := &store.Account{ID: "acc-1", CreatedAt: in, UpdatedAt: in, Disabled: true}
		must(t, e.st.Accounts().Create(e.ctx, a))
		got, err := e.st.Accounts().Get(e.ctx, "acc-1")
		must(t, err)
		equal(t, "CreatedAt (UTC, microseconds)", got.CreatedAt, start)
		equal(t, "Disabled", got.Disabled, true)
	})

	t.Run("Update", func(t *testing.T) {
		e := setup(t, open)
		accts := e.st.Accounts()
		created := e.account("acc-1")
		e.clock.Advance(time.Minute)
		got, err := accts.Update(e.ctx, "acc-1", func(a *store.Account) error {
			equal(t, "updater input", *a, *created)
			a.DisplayName = "Erika M."
			a.Disabled = true
			a.ID = "acc-hijacked" // the key cannot change
			return nil
		})
		must(t, err)
		want := *created
		want.DisplayName, want.Disabled, want.UpdatedAt = "Erika M.", true, e.now()
		equal(t, "Update result", *got, want)
		stored, err := accts.Get(e.ctx, "acc-1")
		must(t, err)
		equal(t, "stored after Update", *stored, want)
		_, err = accts.Get(e.ctx, "acc-hijacked")
		wantErr(t, err, store.ErrNotFound)

		_, err = accts.Update(e.ctx, "acc-1", func(a *store.Account) error {
			a.DisplayName = "lost"
			return errBoom
		})
		wantErr(t, err, errBoom)
		stored, err = accts.Get(e.ctx, "acc-1")
		must(t, err)
		equal(t, "stored after failed Update", *stored, want)

		called := false
		_, err = accts.Update(e.ctx, "acc-missing", func(*store.Account) error { called = true; return nil })
		wantErr(t, err, store.ErrNotFound)
		equal(t, "updater called for a missing account", called, false)
	})

	t.Run("ConcurrentUpdate", func(t *testing.T) {
		e := setup(t, open)
		accts := e.st.Accounts()
		must(t, accts.Create(e.ctx, &store.Account{ID: "acc-1", DisplayName: "0"}))
		errs := parallel(writers, func(int) error {
			for range updatesPerWriter {
				_, err := accts.Update(e.ctx, "acc-1", func(a *store.Account) error {
					n, err := strconv.Atoi(a.DisplayName)
					a.DisplayName = strconv.Itoa(n + 1)
					return err
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
		got, err := accts.Get(e.ctx, "acc-1")
		must(t, err)
		equal(t, "counter", got.DisplayName, strconv.Itoa(writers*updatesPerWriter))
	})

	t.Run("Identities", func(t *testing.T) {
		e := setup(t, open)
		accts := e.st.Accounts()
		a1, a2 := e.account("acc-1"), e.account("acc-2")
		eid := store.LinkedIdentity{AccountID: a1.ID, ProviderID: "eid", Subject: "sub-1", Kind: "eid"}
		must(t, accts.Link(e.ctx, eid))
		eid.LinkedAt = e.now() // defaulted
		e.clock.Advance(time.Second)
		key := store.LinkedIdentity{AccountID: a1.ID, ProviderID: "webauthn", Subject: "cred-1", Kind: "webauthn", LinkedAt: e.now()}
		must(t, accts.Link(e.ctx, key))

		wantErr(t, accts.Link(e.ctx, store.LinkedIdentity{AccountID: a2.ID, ProviderID: "eid", Subject: "sub-1"}), store.ErrConflict)
		wantErr(t, accts.Link(e.ctx, store.LinkedIdentity{AccountID: "acc-missing", ProviderID: "eid", Subject: "sub-2"}), store.ErrNotFound)

		ids, err := accts.Identities(e.ctx, a1.ID)
		must(t, err)
		equal(t, "Identities", ids, []store.LinkedIdentity{eid, key})
		ids, err = accts.Identities(e.ctx, a2.ID)
		must(t, err)
		equal(t, "Identities of an account without any", len(ids), 0)

		got, err := accts.FindByIdentity(e.ctx, "eid", "sub-1")
		must(t, err)
		equal(t, "FindByIdentity", got, a1)
		_, err = accts.FindByIdentity(e.ctx, "eid", "sub-unknown")
		wantErr(t, err, store.ErrNotFound)

		used := e.now().Add(time.Hour)
		must(t, accts.TouchIdentity(e.ctx, "webauthn", "cred-1", used))
		ids, err = accts.Identities(e.ctx, a1.ID)
		must(t, err)
		equal(t, "LastUsedAt after TouchIdentity", ids[1].LastUsedAt, used)
		wantErr(t, accts.TouchIdentity(e.ctx, "webauthn", "cred-unknown", used), store.ErrNotFound)

		must(t, accts.Unlink(e.ctx, "eid", "sub-1"))
		_, err = accts.FindByIdentity(e.ctx, "eid", "sub-1")
		wantErr(t, err, store.ErrNotFound)
		wantErr(t, accts.Unlink(e.ctx, "eid", "sub-1"), store.ErrNotFound)
		// Unlinked, the identity may go to another account.
		must(t, accts.Link(e.ctx, store.LinkedIdentity{AccountID: a2.ID, ProviderID: "eid", Subject: "sub-1"}))
	})

	t.Run("MatchKeys", func(t *testing.T) {
		e := setup(t, open)
		accts := e.st.Accounts()
		a1, a2, a3 := e.account("acc-1"), e.account("acc-2"), e.account("acc-3")
		// Two providers of one kind (a server and its simulator) match;
		// another kind with the same hash does not; nor does another hash.
		old := store.LinkedIdentity{AccountID: a1.ID, ProviderID: "eid", Subject: "card-1", Kind: "eid", LinkedAt: e.now(), MatchKey: "h-erika"}
		must(t, accts.Link(e.ctx, old))
		e.clock.Advance(time.Second)
		sim := store.LinkedIdentity{AccountID: a2.ID, ProviderID: "eid-sim", Subject: "card-2", Kind: "eid", LinkedAt: e.now(), MatchKey: "h-erika"}
		must(t, accts.Link(e.ctx, sim))
		must(t, accts.Link(e.ctx, store.LinkedIdentity{AccountID: a3.ID, ProviderID: "eidas", Subject: "p-1", Kind: "eidas", LinkedAt: e.now(), MatchKey: "h-erika"}))
		must(t, accts.Link(e.ctx, store.LinkedIdentity{AccountID: a3.ID, ProviderID: "eid", Subject: "card-3", Kind: "eid", LinkedAt: e.now(), MatchKey: "h-jonas"}))
		noKey := store.LinkedIdentity{AccountID: a3.ID, ProviderID: "eid", Subject: "card-4", Kind: "eid", LinkedAt: e.now()}
		must(t, accts.Link(e.ctx, noKey))

		got, err := accts.FindByMatchKey(e.ctx, "eid", "h-erika")
		must(t, err)
		equal(t, "FindByMatchKey", got, []store.LinkedIdentity{old, sim})
		got, err = accts.FindByMatchKey(e.ctx, "eid", "h-unknown")
		must(t, err)
		equal(t, "FindByMatchKey of an unknown hash", len(got), 0)
		got, err = accts.FindByMatchKey(e.ctx, "eid", "")
		must(t, err)
		equal(t, "FindByMatchKey of an empty hash (identities without one)", len(got), 0)

		// An identity linked before match keys existed gets one on login.
		must(t, accts.SetMatchKey(e.ctx, "eid", "card-4", "h-erika"))
		got, err = accts.FindByMatchKey(e.ctx, "eid", "h-erika")
		must(t, err)
		noKey.MatchKey = "h-erika"
		// Same LinkedAt: ordered by provider id, then subject.
		equal(t, "FindByMatchKey after SetMatchKey", got, []store.LinkedIdentity{old, noKey, sim})
		must(t, accts.SetMatchKey(e.ctx, "eid", "card-1", ""))
		got, err = accts.FindByMatchKey(e.ctx, "eid", "h-erika")
		must(t, err)
		equal(t, "FindByMatchKey after clearing", got, []store.LinkedIdentity{noKey, sim})
		ids, err := accts.Identities(e.ctx, a1.ID)
		must(t, err)
		equal(t, "cleared match key reads as empty", ids[0].MatchKey, "")
		wantErr(t, accts.SetMatchKey(e.ctx, "eid", "card-unknown", "h"), store.ErrNotFound)
	})

	t.Run("DeleteCascades", func(t *testing.T) {
		e := setup(t, open)
		accts := e.st.Accounts()
		for _, id := range []string{"acc-1", "acc-2"} {
			e.account(id)
			must(t, accts.Link(e.ctx, store.LinkedIdentity{AccountID: id, ProviderID: "eid", Subject: "sub-" + id}))
			e.session("sess-"+id, id)
			e.consent("cons-"+id, id, "rp-1")
		}

		must(t, accts.Delete(e.ctx, "acc-1"))
		_, err := accts.Get(e.ctx, "acc-1")
		wantErr(t, err, store.ErrNotFound)
		_, err = accts.FindByIdentity(e.ctx, "eid", "sub-acc-1")
		wantErr(t, err, store.ErrNotFound)
		_, err = e.st.Sessions().Get(e.ctx, "sess-acc-1")
		wantErr(t, err, store.ErrNotFound)
		_, err = e.st.Consents().Get(e.ctx, "cons-acc-1")
		wantErr(t, err, store.ErrNotFound)
		ids, err := accts.Identities(e.ctx, "acc-1")
		must(t, err)
		equal(t, "identities left", len(ids), 0)
		wantErr(t, accts.Delete(e.ctx, "acc-1"), store.ErrNotFound)

		// The other account keeps everything.
		_, err = accts.FindByIdentity(e.ctx, "eid", "sub-acc-2")
		must(t, err)
		_, err = e.st.Sessions().Get(e.ctx, "sess-acc-2")
		must(t, err)
		_, err = e.st.Consents().Get(e.ctx, "cons-acc-2")
		must(t, err)
	})
}
