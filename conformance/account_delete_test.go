package conformance_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/conformance/dbtest"
	"github.com/trustbroker/trustbroker/conformance/harness"
)

// TestAccountDeletion: deleting the account from the dashboard (GDPR Art.
// 17) withdraws the consent (refresh token dead, userinfo 401, back-channel
// logout sent), ends the session, erases the account's rows, writes an
// audit event without personal data, and a new login makes a new account
// with a new pairwise subject.
func TestAccountDeletion(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		bcURL, logouts := backchannelReceiver(t)
		b := startConsent(t, dsn, consentYAML, bcURL)
		amt := newRP(t, b, "amt", consentSecret, gooidc.ScopeOpenID, "profile", "email", "offline_access")
		br := harness.NewBrowser(t).StopAt(rpRedirect)
		ctx := context.Background()
		st := b.Server.Store

		verifier := oauth2.GenerateVerifier()
		page := consentLogin(t, amt, br, oauth2.S256ChallengeOption(verifier))
		if !isConsentPage(page) {
			t.Fatalf("no consent page: %d %s", page.Status, page.URL)
		}
		tok, _ := exchange(t, amt, answer(t, br, page, "approve", "email").Location(t), verifier)
		oldSub := subjectOf(t, amt, tok)
		evs, err := st.Audit().List(ctx, store.AuditFilter{Action: "consent.grant"})
		if err != nil || len(evs) != 1 {
			t.Fatalf("consent.grant events %v %v", evs, err)
		}
		accountID := evs[0].Actor

		confirm := br.Get(b.URL + "/account/delete?lang=en")
		for _, want := range []string{"Delete your account", "Citizens&#39; office", `name="confirm"`, `<label for="confirm">`, "cannot be restored"} {
			if confirm.Status != 200 || !strings.Contains(confirm.Body, want) {
				t.Fatalf("confirmation page %d lacks %q:\n%s", confirm.Status, want, confirm.Body)
			}
		}
		if de := br.Get(b.URL + "/account/delete?lang=de"); !strings.Contains(de.Body, "Konto endgültig löschen") {
			t.Errorf("German confirmation page:\n%s", de.Body)
		}
		action := b.URL + "/account/delete?lang=en"
		if p := br.Post(action, url.Values{"csrf": {"forged"}, "confirm": {"yes"}}); p.Status != http.StatusForbidden {
			t.Errorf("forged csrf: %d", p.Status)
		}
		if p := br.Post(action, url.Values{"csrf": {confirm.CSRF(t)}}); p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "tick the box") {
			t.Errorf("unconfirmed: %d\n%s", p.Status, p.Body)
		}
		if _, err := st.Accounts().Get(ctx, accountID); err != nil {
			t.Fatalf("account gone before confirmation: %v", err)
		}

		bye := br.Post(action, url.Values{"csrf": {confirm.CSRF(t)}, "confirm": {"yes"}})
		if bye.Status != 200 || bye.URL.Path != "/account/deleted" || !strings.Contains(bye.Body, "has been deleted") {
			t.Fatalf("goodbye page %d %s:\n%s", bye.Status, bye.URL, bye.Body)
		}
		if p := br.Get(b.URL + "/account"); p.Status != http.StatusUnauthorized {
			t.Errorf("dashboard after deletion: %d (session cookie not cleared?)", p.Status)
		}
		if _, err := amt.conf.TokenSource(amt.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err == nil {
			t.Error("the refresh token still works after deletion")
		}
		if code := userinfoStatus(t, b, tok.AccessToken); code != http.StatusUnauthorized {
			t.Errorf("userinfo after deletion: %d", code)
		}
		select {
		case lt := <-logouts:
			lv, err := amt.provider.Verifier(&gooidc.Config{ClientID: "amt"}).Verify(ctx, lt)
			if err != nil || lv.Subject != oldSub {
				t.Errorf("logout token %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("no back-channel logout after deletion")
		}

		if _, err := st.Accounts().Get(ctx, accountID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("account after deletion: %v", err)
		}
		if ids, err := st.Accounts().Identities(ctx, accountID); err != nil || len(ids) != 0 {
			t.Errorf("identities after deletion: %v %v", ids, err)
		}
		if cs, err := st.Consents().ListByAccount(ctx, accountID); err != nil || len(cs) != 0 {
			t.Errorf("consents after deletion: %v %v", cs, err)
		}
		if ds, err := st.Disclosures().ListByAccount(ctx, accountID, 0); err != nil || len(ds) != 0 {
			t.Errorf("disclosures after deletion: %v %v", ds, err)
		}
		if ss, err := st.Sessions().ListByAccount(ctx, accountID); err != nil || len(ss) != 0 {
			t.Errorf("sessions after deletion: %v %v", ss, err)
		}
		del, err := st.Audit().List(ctx, store.AuditFilter{Action: "account.delete", Actor: accountID})
		if err != nil || len(del) != 2 { // the refused (csrf) attempt and the deletion
			t.Fatalf("account.delete events %+v %v", del, err)
		}
		ev := del[len(del)-1]
		if ev.Outcome != store.OutcomeSuccess || ev.Target != accountID {
			t.Errorf("audit event %+v", ev)
		}
		raw, _ := json.Marshal(ev)
		for _, personal := range []string{"Erika", "Mustermann", "erika@example.org", "1964", "restricted-id"} {
			if strings.Contains(string(raw), personal) {
				t.Errorf("the deletion's audit event carries personal data %q: %s", personal, raw)
			}
		}

		// A new login makes a new account: asked again, a new subject.
		v2 := oauth2.GenerateVerifier()
		p := consentLogin(t, amt, br, oauth2.S256ChallengeOption(v2))
		if !isConsentPage(p) {
			t.Fatalf("no consent page for the new account: %d %s", p.Status, p.URL)
		}
		tok2, _ := exchange(t, amt, answer(t, br, p, "approve").Location(t), v2)
		if sub := subjectOf(t, amt, tok2); sub == oldSub {
			t.Error("the new account has the deleted account's subject")
		}
		evs, _ = st.Audit().List(ctx, store.AuditFilter{Action: "consent.grant"})
		if len(evs) != 2 || evs[1].Actor == accountID {
			t.Errorf("new account: %+v", evs)
		}
	})
}
