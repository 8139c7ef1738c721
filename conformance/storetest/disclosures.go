package storetest

import (
	"testing"
	"time"

	"github.com/trustbroker/trustbroker/broker/store"
)

// testConsentRecords: the full consent record (offered attributes,
// purpose version, how it was given) round-trips.
func testConsentRecords(t *testing.T, open Opener) {
	e := setup(t, open)
	cs := e.st.Consents()
	e.account("acc-1")
	c := &store.Consent{
		ID: "cons-full", AccountID: "acc-1", RPID: "rp-1", Attributes: []string{"given_name"},
		Offered: []string{"given_name", "email"}, Purpose: "Antrag", PurposeVersion: "v1-abc",
		Method: "login-page", Lang: "de", ExpiresAt: e.now().Add(time.Hour),
	}
	must(t, cs.Create(e.ctx, c))
	got, err := cs.Get(e.ctx, "cons-full")
	must(t, err)
	equal(t, "Get (full record)", got, c)
	active, err := cs.Active(e.ctx, "acc-1", "rp-1", e.now())
	must(t, err)
	equal(t, "Active (full record)", active, c)
}

func testDisclosures(t *testing.T, open Opener) {
	t.Run("AppendList", func(t *testing.T) {
		e := setup(t, open)
		ds := e.st.Disclosures()
		e.account("acc-1")
		e.account("acc-2")
		d1 := &store.Disclosure{AccountID: "acc-1", RPID: "rp-1", Attributes: []string{"given_name"}, Protocol: "oidc", ConsentID: "cons-1"}
		must(t, ds.Append(e.ctx, d1))
		equal(t, "defaulted Time", d1.Time, e.now())
		e.clock.Advance(time.Second)
		d2 := &store.Disclosure{AccountID: "acc-1", RPID: "rp-2", Protocol: "saml"}
		must(t, ds.Append(e.ctx, d2))
		must(t, ds.Append(e.ctx, &store.Disclosure{AccountID: "acc-2", RPID: "rp-1", Protocol: "oidc"}))
		if d2.Seq <= d1.Seq {
			t.Errorf("Seq not increasing: %d then %d", d1.Seq, d2.Seq)
		}
		list, err := ds.ListByAccount(e.ctx, "acc-1", 0)
		must(t, err)
		equal(t, "ListByAccount (newest first, own only)", list, []store.Disclosure{*d2, *d1})
		list, err = ds.ListByAccount(e.ctx, "acc-1", 1)
		must(t, err)
		equal(t, "ListByAccount limit", list, []store.Disclosure{*d2})
		list, err = ds.ListByAccount(e.ctx, "acc-none", 0)
		must(t, err)
		equal(t, "ListByAccount of another account", len(list), 0)
		wantErr(t, ds.Append(e.ctx, &store.Disclosure{AccountID: "acc-missing", RPID: "rp-1"}), store.ErrNotFound)
	})
	t.Run("GoWithAccount", func(t *testing.T) {
		e := setup(t, open)
		e.account("acc-1")
		must(t, e.st.Disclosures().Append(e.ctx, &store.Disclosure{AccountID: "acc-1", RPID: "rp-1"}))
		must(t, e.st.Accounts().Delete(e.ctx, "acc-1"))
		list, err := e.st.Disclosures().ListByAccount(e.ctx, "acc-1", 0)
		must(t, err)
		equal(t, "disclosures after account deletion", len(list), 0)
	})
}

func testRevokeBySubject(t *testing.T, open Opener) {
	e := setup(t, open)
	oauth := e.st.OAuth()
	mk := func(kind, sig, client, subject string) {
		tok := e.token(kind, sig, "req-"+sig)
		tok.ClientID, tok.Subject = client, subject
		must(t, oauth.CreateToken(e.ctx, tok))
	}
	mk(store.TokenAccess, "a1", "rp-1", "sub-1")
	mk(store.TokenAccess, "a2", "rp-1", "sub-1")
	mk(store.TokenRefresh, "r1", "rp-1", "sub-1")
	mk(store.TokenAccess, "a3", "rp-2", "sub-1") // another client
	mk(store.TokenAccess, "a4", "rp-1", "sub-2") // another subject
	must(t, oauth.DeactivateToken(e.ctx, store.TokenAccess, "a2"))

	n, err := oauth.RevokeBySubject(e.ctx, store.TokenAccess, "rp-1", "sub-1")
	must(t, err)
	equal(t, "access tokens revoked (already inactive not counted)", n, int64(1))
	n, err = oauth.RevokeBySubject(e.ctx, store.TokenRefresh, "rp-1", "sub-1")
	must(t, err)
	equal(t, "refresh tokens revoked", n, int64(1))
	for _, c := range []struct {
		kind, sig string
		active    bool
	}{
		{store.TokenAccess, "a1", false}, {store.TokenRefresh, "r1", false},
		{store.TokenAccess, "a3", true}, {store.TokenAccess, "a4", true},
	} {
		got, err := oauth.GetToken(e.ctx, c.kind, c.sig)
		must(t, err)
		equal(t, c.kind+" "+c.sig+" active", got.Active, c.active)
	}
	n, err = oauth.RevokeBySubject(e.ctx, store.TokenAccess, "rp-1", "sub-1")
	must(t, err)
	equal(t, "second revocation", n, int64(0))
}
