package conformance_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/conformance/dbtest"
	"github.com/trustbroker/trustbroker/conformance/harness"
)

const consentSecret = "consent-secret-0123456789-0123456789-0"

// consentYAML: a service with one required and two optional consent-based
// claims and one claim on a contractual basis.
const consentYAML = `
providers:
  - id: eid-fake
    type: fake-redirect
    name: {de: Test-Ausweis, en: Test ID card}
    config:
      kind: eid
      subject: restricted-id-0001
      loa: high
      amr: [sc, pin, mfa]
      attributes: {given_name: Erika, family_name: Mustermann, birthdate: "1964-08-12", email: erika@example.org}
relying_parties:
  - id: amt
    name: {de: Bürgeramt, en: Citizens' office}
    protocol: oidc
    accepted_credentials: [eid]
    claims:
      - {name: given_name, required: true, purpose: {de: Anrede, en: greeting}}
      - {name: family_name, legal_basis: contract, purpose: {de: Antrag, en: application}}
      - {name: email, purpose: {de: Eingangsbestätigung, en: receipts}}
      - {name: birthdate, purpose: {de: Altersprüfung, en: age check}}
    oidc:
      redirect_uris: [` + rpRedirect + `]
      client_secret: ` + consentSecret + `
      backchannel_logout_uri: BACKCHANNEL_URI
`

func startConsent(t *testing.T, dsn, yaml, backchannel string) *harness.Broker {
	c := &clock{t: time.Now()}
	return harness.Start(t, strings.ReplaceAll(yaml, "BACKCHANNEL_URI", backchannel), dsn, harness.Options{Now: c.now, Consent: "ask"})
}

// consentLogin runs the login up to the consent page and returns it, or the
// redirect to the RP when no page was shown.
func consentLogin(t *testing.T, r *rp, br *harness.Browser, opts ...oauth2.AuthCodeOption) *harness.Page {
	t.Helper()
	opts = append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(oauth2.GenerateVerifier())}, opts...)
	page := br.Get(r.conf.AuthCodeURL(randomString(), opts...))
	if strings.HasPrefix(page.URL.Path, "/login/") && page.Status == 200 && !strings.HasSuffix(page.URL.Path, "/consent") {
		page = choose(t, br, page, "eid-fake")
	}
	return page
}

func isConsentPage(p *harness.Page) bool {
	return p.Status == 200 && strings.HasSuffix(p.URL.Path, "/consent")
}

// answer posts the consent page with the optional attributes ticked.
func answer(t *testing.T, br *harness.Browser, page *harness.Page, decision string, optional ...string) *harness.Page {
	t.Helper()
	form := url.Values{"csrf": {page.CSRF(t)}, "decision": {decision}, "attr": optional}
	return br.Post(page.Action(t), form)
}

// exchange redeems the code of an authorization response.
func exchange(t *testing.T, r *rp, loc *url.URL, verifier string) (*oauth2.Token, map[string]any) {
	t.Helper()
	if e := loc.Query().Get("error"); e != "" {
		t.Fatalf("authorization error %s", loc)
	}
	tok, err := r.conf.Exchange(r.ctx, loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("code exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := r.provider.Verifier(&gooidc.Config{ClientID: r.conf.ClientID}).Verify(r.ctx, raw)
	if err != nil {
		t.Fatalf("ID token: %v", err)
	}
	claims := map[string]any{}
	_ = idt.Claims(&claims)
	return tok, claims
}

func TestConsentEndToEnd(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		bcURL, logouts := backchannelReceiver(t)
		b := startConsent(t, dsn, consentYAML, bcURL)
		amt := newRP(t, b, "amt", consentSecret, gooidc.ScopeOpenID, "profile", "email", "offline_access")
		br := harness.NewBrowser(t).StopAt(rpRedirect)

		verifier := oauth2.GenerateVerifier()
		page := consentLogin(t, amt, br, oauth2.S256ChallengeOption(verifier))
		if !isConsentPage(page) {
			t.Fatalf("no consent page: %d %s\n%s", page.Status, page.URL, page.Body)
		}
		for _, want := range []string{"Erika", "erika@example.org", "1964-08-12", "Mustermann", "Eingangsbestätigung", "erforderlich", `name="attr" value="email"`} {
			if !strings.Contains(page.Body, want) {
				t.Errorf("consent page lacks %q", want)
			}
		}
		if strings.Contains(page.Body, `name="attr" value="family_name"`) {
			t.Error("a contractual attribute is offered for consent")
		}

		t.Run("bad csrf refused", func(t *testing.T) {
			p := br.Post(page.Action(t), url.Values{"csrf": {"forged"}, "decision": {"approve"}})
			if p.Status != http.StatusForbidden {
				t.Errorf("forged csrf: %d", p.Status)
			}
		})

		// Approve with email, leave birthdate out.
		resp := answer(t, br, page, "approve", "email")
		tok, claims := exchange(t, amt, resp.Location(t), verifier)
		if claims["given_name"] != "Erika" || claims["email"] != "erika@example.org" || claims["family_name"] != "Mustermann" {
			t.Errorf("ID token claims %v", claims)
		}
		if _, ok := claims["birthdate"]; ok {
			t.Errorf("ID token carries the left-out birthdate: %v", claims)
		}
		ui, err := amt.provider.UserInfo(amt.ctx, oauth2.StaticTokenSource(tok))
		if err != nil {
			t.Fatalf("userinfo: %v", err)
		}
		uic := map[string]any{}
		_ = ui.Claims(&uic)
		if _, ok := uic["birthdate"]; ok || uic["email"] != "erika@example.org" {
			t.Errorf("userinfo %v", uic)
		}

		st := b.Server.Store
		ctx := context.Background()
		t.Run("remembered", func(t *testing.T) {
			v := oauth2.GenerateVerifier()
			p := consentLogin(t, amt, br, oauth2.S256ChallengeOption(v))
			if isConsentPage(p) {
				t.Fatal("asked again within the validity")
			}
			_, c := exchange(t, amt, p.Location(t), v)
			if _, ok := c["birthdate"]; ok || c["email"] != "erika@example.org" {
				t.Errorf("remembered release %v", c)
			}
		})
		t.Run("prompt=consent asks again", func(t *testing.T) {
			p := consentLogin(t, amt, br, oauth2.SetAuthURLParam("prompt", "consent"))
			if !isConsentPage(p) {
				t.Fatalf("prompt=consent did not ask: %d %s", p.Status, p.URL)
			}
			if !strings.Contains(p.Body, `value="email" checked`) || strings.Contains(p.Body, `value="birthdate" checked`) {
				t.Error("the page does not preselect the previous decision")
			}
			loc := answer(t, br, p, "decline").Location(t)
			if loc.Query().Get("error") != "access_denied" {
				t.Errorf("decline: %s", loc)
			}
		})

		// The disclosure log and the consent record.
		evs, err := st.Audit().List(ctx, store.AuditFilter{Action: "consent.grant"})
		if err != nil || len(evs) != 1 {
			t.Fatalf("consent.grant events %v %v", evs, err)
		}
		accountID := evs[0].Actor
		c, err := st.Consents().Active(ctx, accountID, "amt", time.Now())
		if err != nil || strings.Join(c.Attributes, ",") != "email,given_name" || strings.Join(c.Offered, ",") != "birthdate,email,given_name" ||
			c.Method != "login-page" || c.PurposeVersion == "" || c.ExpiresAt.IsZero() {
			t.Fatalf("consent record %+v %v", c, err)
		}
		ds, err := st.Disclosures().ListByAccount(ctx, accountID, 0)
		if err != nil || len(ds) != 2 || ds[0].Protocol != "oidc" || ds[0].ConsentID != c.ID ||
			strings.Join(slices.Sorted(slices.Values(ds[0].Attributes)), ",") != "email,family_name,given_name" {
			t.Fatalf("disclosures %+v %v", ds, err)
		}

		// The dashboard shows it; withdrawal revokes the refresh token and
		// sends back-channel logout.
		dash := br.Get(b.URL + "/account?lang=en")
		if dash.Status != 200 || !strings.Contains(dash.Body, "Citizens&#39; office") || !strings.Contains(dash.Body, "E-mail address") {
			t.Fatalf("dashboard %d:\n%s", dash.Status, dash.Body)
		}
		ex := br.Get(b.URL + "/account/export.json")
		var export struct {
			Consents    []map[string]any `json:"consents"`
			Disclosures []map[string]any `json:"disclosures"`
		}
		if ex.Status != 200 || json.Unmarshal([]byte(ex.Body), &export) != nil || len(export.Consents) != 1 || len(export.Disclosures) != 2 {
			t.Fatalf("export %d %s", ex.Status, ex.Body)
		}
		if p := br.Post(b.URL+"/account/withdraw", url.Values{"csrf": {"forged"}, "rp": {"amt"}}); p.Status != http.StatusForbidden {
			t.Errorf("withdraw with forged csrf: %d", p.Status)
		}
		after := br.Post(b.URL+"/account/withdraw?lang=en", url.Values{"csrf": {dash.CSRF(t)}, "rp": {"amt"}})
		if after.Status != 200 || !strings.Contains(after.Body, "has been withdrawn") || !strings.Contains(after.Body, "no active consents") {
			t.Fatalf("after withdrawal %d:\n%s", after.Status, after.Body)
		}
		if _, err := amt.conf.TokenSource(amt.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err == nil {
			t.Error("the refresh token still works after withdrawal")
		}
		if code := userinfoStatus(t, b, tok.AccessToken); code != http.StatusUnauthorized {
			t.Errorf("userinfo after withdrawal: %d", code)
		}
		select {
		case lt := <-logouts:
			lv, err := amt.provider.Verifier(&gooidc.Config{ClientID: "amt"}).Verify(ctx, lt)
			if err != nil || lv.Subject != subjectOf(t, amt, tok) {
				t.Errorf("logout token %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("no back-channel logout after withdrawal")
		}
		recs, _ := st.Consents().ListByAccount(ctx, accountID)
		if len(recs) != 1 || recs[0].WithdrawnAt.IsZero() {
			t.Errorf("withdrawn record not kept: %+v", recs)
		}
		// The next login asks again.
		if p := consentLogin(t, amt, br); !isConsentPage(p) {
			t.Errorf("no consent page after withdrawal: %d %s", p.Status, p.URL)
		}
	})
}

func subjectOf(t *testing.T, r *rp, tok *oauth2.Token) string {
	t.Helper()
	raw, _ := tok.Extra("id_token").(string)
	idt, err := r.provider.Verifier(&gooidc.Config{ClientID: r.conf.ClientID}).Verify(r.ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	return idt.Subject
}
