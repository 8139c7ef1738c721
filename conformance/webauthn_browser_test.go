package conformance_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	cdpwebauthn "github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/conformance/browsertest"
	"github.com/trustbroker/trustbroker/conformance/dbtest"
	"github.com/trustbroker/trustbroker/conformance/harness"
)

const webauthnYAML = `
demo: true
providers:
  - id: eid-fake
    type: fake-redirect
    name: {de: Test-Ausweis, en: Test ID card}
    config:
      kind: eid
      subject: restricted-id-0001
      loa: high
      amr: [sc, pin, mfa]
      attributes: {given_name: Erika, family_name: Mustermann}
  - id: webauthn
    type: webauthn
    name: {de: Sicherheitsschlüssel, en: Security key}
    config: {user_verification: required, resident_key: required, registration_min_loa: substantial}
relying_parties:
  - id: demo
    name: {de: Demo-Dienst, en: Demo service}
    protocol: oidc
    accepted_credentials: [eid, webauthn]
    min_loa: low
    claims:
      - {name: given_name, purpose: {en: greeting}}
    oidc:
      redirect_uris: ["{{issuer}}/demo/callback"]
      client_secret: test-secret-0123456789-0123456789-0123
`

// TestBrowserWebAuthnPasskey: after an eID login, register a passkey on a
// virtual ctap2 authenticator (resident key, user verification) on
// /account/webauthn, then log in with it as a passkey in a fresh session.
func TestBrowserWebAuthnPasskey(t *testing.T) {
	b := harness.Start(t, webauthnYAML, dbtest.SQLite(t), harness.Options{Hostname: "localhost"})
	ctx := browsertest.New(t)
	base := b.URL

	if _, err := chromedp.Call(ctx, cdpwebauthn.Enable, cdpwebauthn.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	auth, err := chromedp.Call(ctx, cdpwebauthn.AddVirtualAuthenticator, cdpwebauthn.AddVirtualAuthenticatorParams{
		Options: &cdpwebauthn.VirtualAuthenticatorOptions{
			Protocol: cdpwebauthn.AuthenticatorProtocolCtap2, Transport: cdpwebauthn.AuthenticatorTransportInternal,
			HasResidentKey: true, HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true,
		},
	})
	if err != nil {
		t.Fatal(err)
	}

	// 1. Log in with the (fake) eID card: an SSO session at level high.
	err = chromedp.Do(ctx,
		chromedp.Navigate(base+"/demo"),
		chromedp.Click(`form[action="/demo/login"] button`),
		chromedp.WaitVisible(`button.method[value="eid-fake"]`),
		chromedp.Click(`button.method[value="eid-fake"]`),
		chromedp.WaitVisible(`table.claims`),
	)
	if err != nil {
		t.Fatal(err)
	}

	// 2. Register a passkey on the account page.
	err = chromedp.Do(ctx,
		chromedp.Navigate(base+"/account/webauthn"),
		chromedp.WaitVisible(`#webauthn-register`),
		chromedp.SendKeys(`#webauthn-username`, "erika"),
		chromedp.SendKeys(`#webauthn-name`, "Virtueller Schlüssel"),
	)
	if err != nil {
		t.Fatal(err)
	}
	browsertest.Screenshot(t, ctx, "account-empty-de")
	if err := chromedp.Do(ctx, chromedp.Click(`#webauthn-register button[type="submit"]`),
		chromedp.WaitVisible(`table.webauthn-credentials tbody tr th`)); err != nil {
		t.Fatal(err)
	}
	page := text(t, ctx, "main")
	if !strings.Contains(page, "Der Schlüssel wurde registriert.") || !strings.Contains(page, "Virtueller Schlüssel") ||
		!strings.Contains(page, "Passkey") {
		t.Fatalf("account page after registration:\n%s", page)
	}
	browsertest.Screenshot(t, ctx, "account-de")
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/account/webauthn?lang=en"),
		chromedp.WaitVisible(`html[lang="en"] table.webauthn-credentials`)); err != nil {
		t.Fatal(err)
	}
	if en := text(t, ctx, "main"); !strings.Contains(en, "Security keys and passkeys") || !strings.Contains(en, "Remove") {
		t.Errorf("English account page:\n%s", en)
	}
	browsertest.Screenshot(t, ctx, "account-en")
	creds, err := chromedp.Call(ctx, cdpwebauthn.GetCredentials, cdpwebauthn.GetCredentialsParams{AuthenticatorID: auth.AuthenticatorID})
	if err != nil || len(creds.Credentials) != 1 || !creds.Credentials[0].IsResidentCredential {
		t.Fatalf("virtual authenticator credentials: %+v, %v", creds, err)
	}

	// 3. A fresh browser session logs in with the passkey alone, by the
	// button. The page's background conditional request would answer at
	// once while the authenticator simulates user presence, so presence
	// is simulated only after the button aborted it.
	if _, err := chromedp.Call(ctx, network.ClearBrowserCookies, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	presence := func(on bool) {
		t.Helper()
		if _, err := chromedp.Call(ctx, cdpwebauthn.SetAutomaticPresenceSimulation,
			cdpwebauthn.SetAutomaticPresenceSimulationParams{AuthenticatorID: auth.AuthenticatorID, Enabled: on}); err != nil {
			t.Fatal(err)
		}
	}
	presence(false)
	err = chromedp.Do(ctx,
		chromedp.Navigate(base+"/demo"),
		chromedp.Click(`form[action="/demo/login"] button`),
		chromedp.WaitVisible(`button.method[value="webauthn"]`),
		chromedp.Click(`button.method[value="webauthn"]`),
		chromedp.WaitVisible(`#webauthn-passkey`),
	)
	if err != nil {
		t.Fatal(err)
	}
	conditionalState(t, ctx)
	if err := chromedp.Do(ctx, chromedp.Click(`#webauthn-passkey`)); err != nil {
		t.Fatal(err)
	}
	presence(true)
	browsertest.Do(t, ctx, 15*time.Second, "passkey login", chromedp.WaitVisible(`table.claims`))
	result := text(t, ctx, "table.claims")
	browsertest.Screenshot(t, ctx, "passkey-result-de")
	for _, want := range []string{"http://eidas.europa.eu/LoA/low", "hwk", "pin"} {
		if !strings.Contains(result, want) {
			t.Errorf("passkey result lacks %q:\n%s", want, result)
		}
	}
	// The passkey reached the account the eID login created.
	st := b.Server.Store
	accounts := map[string]bool{}
	evs, err := st.Audit().List(context.Background(), store.AuditFilter{Action: "session.create", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		accounts[ev.Actor] = true
	}
	if len(evs) != 2 || len(accounts) != 1 {
		t.Errorf("sessions created for accounts %v (%d events); want both logins on one account", accounts, len(evs))
	}
	regs, err := st.Audit().List(context.Background(), store.AuditFilter{Action: "webauthn.register", Limit: 10})
	if err != nil || len(regs) != 1 || regs[0].Outcome != store.OutcomeSuccess {
		t.Errorf("registration audit: %+v, %v", regs, err)
	}
}
