package consent_test

import (
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/broker/store/sqlstore"
	"github.com/trustbroker/trustbroker/conformance/dbtest"
	"github.com/trustbroker/trustbroker/consent"
)

func registration() *config.RelyingParty {
	return &config.RelyingParty{ID: "amt", Name: config.Text{"de": "Amt"}, Claims: []config.Claim{
		{Name: "given_name", Required: true, Purpose: config.Text{"de": "Anrede", "en": "greeting"}},
		{Name: "family_name", LegalBasis: config.BasisLegalObligation, Purpose: config.Text{"de": "Akte"}},
		{Name: "email", Purpose: config.Text{"de": "Bestätigung", "en": "receipts"}},
	}}
}

type revoker struct{ calls []string }

func (r *revoker) RevokeGrants(_ context.Context, accountID string, rp *config.RelyingParty) error {
	r.calls = append(r.calls, accountID+"/"+rp.ID)
	return nil
}

func requested(names ...string) []consent.Requested {
	var out []consent.Requested
	for _, n := range names {
		out = append(out, consent.Requested{Name: n, Available: true})
	}
	return out
}

func TestManager(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		ctx := t.Context()
		now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
		st, err := sqlstore.Open(ctx, dsn, sqlstore.Options{Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if _, err := st.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		if err := st.Accounts().Create(ctx, &store.Account{ID: "acc"}); err != nil {
			t.Fatal(err)
		}
		rp := registration()
		rv := &revoker{}
		m := &consent.Manager{Store: st, RelyingParties: map[string]*config.RelyingParty{"amt": rp}, Validity: time.Hour,
			Now: func() time.Time { return now }, Rand: rand.Reader, Revokers: []consent.Revoker{rv}}
		login := consent.Login{AccountID: "acc", RPID: "amt", Requested: requested("given_name", "family_name", "email")}

		ev, err := m.EvaluateLogin(ctx, login)
		if err != nil || !ev.Ask || !slices.Equal(ev.Offer, []string{"given_name", "email"}) || !slices.Equal(ev.Granted, []string{"family_name"}) {
			t.Fatalf("first evaluation %+v %v", ev, err)
		}
		if _, err := m.Grant(ctx, consent.Grant{AccountID: "acc", RPID: "amt", Offered: ev.Offer, Granted: []string{"email"}}); err == nil {
			t.Error("a grant without the required attribute was recorded")
		}
		if _, err := m.Grant(ctx, consent.Grant{AccountID: "acc", RPID: "amt", Offered: ev.Offer, Granted: []string{"given_name", "birthdate"}}); err == nil {
			t.Error("a grant of an attribute not offered was recorded")
		}
		c, err := m.Grant(ctx, consent.Grant{AccountID: "acc", RPID: "amt", Offered: ev.Offer, Granted: []string{"given_name"}, Lang: "de", Method: consent.MethodLoginPage})
		if err != nil || !c.ExpiresAt.Equal(now.Add(time.Hour)) {
			t.Fatalf("grant %+v %v", c, err)
		}

		ev, _ = m.EvaluateLogin(ctx, login)
		if ev.Ask || ev.ConsentID != c.ID || !slices.Equal(ev.Granted, []string{"family_name", "given_name"}) {
			t.Errorf("remembered %+v", ev)
		}
		if ev, _ := m.EvaluateLogin(ctx, consent.Login{AccountID: "acc", RPID: "amt", Requested: login.Requested, Force: true}); !ev.Ask ||
			!slices.Equal(ev.Previous, []string{"given_name"}) {
			t.Errorf("forced %+v", ev)
		}

		// A changed purpose asks again.
		rp.Claims[2].Purpose = config.Text{"de": "Bestätigung und Werbung", "en": "receipts and ads"}
		if ev, _ := m.EvaluateLogin(ctx, login); !ev.Ask {
			t.Error("a changed purpose did not ask again")
		}
		rp.Claims[2].Purpose = config.Text{"de": "Bestätigung", "en": "receipts"}
		// A new consent-based attribute asks again.
		rp.Claims = append(rp.Claims, config.Claim{Name: "birthdate", Purpose: config.Text{"de": "Alter"}})
		if ev, _ := m.EvaluateLogin(ctx, consent.Login{AccountID: "acc", RPID: "amt", Requested: requested("given_name", "birthdate")}); !ev.Ask {
			t.Error("a new attribute did not ask again")
		}
		rp.Claims = rp.Claims[:3]

		// Expiry.
		now = now.Add(2 * time.Hour)
		if ev, _ := m.EvaluateLogin(ctx, login); !ev.Ask {
			t.Error("an expired consent still counts")
		}
		now = now.Add(-2 * time.Hour)

		if err := m.Withdraw(ctx, "acc", "amt"); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(rv.calls, []string{"acc/amt"}) {
			t.Errorf("revokers %v", rv.calls)
		}
		if err := m.Withdraw(ctx, "acc", "amt"); !errors.Is(err, consent.ErrNoConsent) {
			t.Errorf("second withdrawal: %v", err)
		}
		if ev, _ := m.EvaluateLogin(ctx, login); !ev.Ask {
			t.Error("a withdrawn consent still counts")
		}
		if got, _ := st.Consents().Get(ctx, c.ID); got == nil || got.WithdrawnAt.IsZero() {
			t.Errorf("withdrawn record %+v", got)
		}
	})
}
