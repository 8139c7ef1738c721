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

// webauthnScenario is a broker with the webauthnYAML configuration (the
// webauthn provider's config replaced by cfg) and one virtual
// authenticator in a browser.
type webauthnScenario struct {
	t   *testing.T
	ctx context.Context
	b   *harness.Broker
	id  cdpwebauthn.AuthenticatorID
}

func newWebAuthnScenario(t *testing.T, cfg string, opts cdpwebauthn.VirtualAuthenticatorOptions) *webauthnScenario {
	t.Helper()
	const def = `config: {user_verification: required, resident_key: required, registration_min_loa: substantial}`
	if !strings.Contains(webauthnYAML, def) {
		t.Fatal("webauthnYAML changed; update newWebAuthnScenario")
	}
	b := harness.Start(t, strings.Replace(webauthnYAML, def, "config: "+cfg, 1), dbtest.SQLite(t), harness.Options{Hostname: "localhost"})
	ctx := browsertest.New(t)
	if _, err := chromedp.Call(ctx, cdpwebauthn.Enable, cdpwebauthn.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	opts.AutomaticPresenceSimulation = true
	a, err := chromedp.Call(ctx, cdpwebauthn.AddVirtualAuthenticator, cdpwebauthn.AddVirtualAuthenticatorParams{Options: &opts})
	if err != nil {
		t.Fatal(err)
	}
	return &webauthnScenario{t: t, ctx: ctx, b: b, id: a.AuthenticatorID}
}

// eidLogin logs in with the fake eID card: an SSO session at level high.
func (s *webauthnScenario) eidLogin() {
	s.t.Helper()
	if err := chromedp.Do(s.ctx,
		chromedp.Navigate(s.b.URL+"/demo"),
		chromedp.Click(`form[action="/demo/login"] button`),
		chromedp.WaitVisible(`button.method[value="eid-fake"]`),
		chromedp.Click(`button.method[value="eid-fake"]`),
		chromedp.WaitVisible(`table.claims`),
	); err != nil {
		s.t.Fatal(err)
	}
}

// register registers a key on /account/webauthn (the user name only on
// the first registration).
func (s *webauthnScenario) register(userName, name string) string {
	s.t.Helper()
	acts := []chromedp.Action[chromedp.Void]{chromedp.Navigate(s.b.URL + "/account/webauthn"), chromedp.WaitVisible(`#webauthn-register`)}
	if userName != "" {
		acts = append(acts, chromedp.SendKeys(`#webauthn-username`, userName))
	}
	acts = append(acts, chromedp.SendKeys(`#webauthn-name`, name),
		chromedp.Click(`#webauthn-register button[type="submit"]`),
		// The page after registration is the only one with the notice.
		chromedp.WaitVisible(`table.webauthn-credentials tbody tr th`))
	if err := chromedp.Do(s.ctx, acts...); err != nil {
		st, _ := chromedp.Run(s.ctx, chromedp.Evaluate[string](`location.href + " | " + document.body.innerText`))
		s.t.Fatalf("register: %v\n%s", err, st)
	}
	page := text(s.t, s.ctx, "main")
	if !strings.Contains(page, "Der Schlüssel wurde registriert.") || !strings.Contains(page, name) {
		s.t.Fatalf("account page after registration:\n%s", page)
	}
	return page
}

// startLogin opens the WebAuthn ceremony page in a fresh browser session.
func (s *webauthnScenario) startLogin() {
	s.t.Helper()
	if _, err := chromedp.Call(s.ctx, network.ClearBrowserCookies, cdp.Empty{}); err != nil {
		s.t.Fatal(err)
	}
	if err := chromedp.Do(s.ctx,
		chromedp.Navigate(s.b.URL+"/demo"),
		chromedp.Click(`form[action="/demo/login"] button`),
		chromedp.WaitVisible(`button.method[value="webauthn"]`),
		chromedp.Click(`button.method[value="webauthn"]`),
		chromedp.WaitVisible(`#webauthn-passkey`),
	); err != nil {
		s.t.Fatal(err)
	}
}

// page is the URL and text of the current page.
func (s *webauthnScenario) page() string {
	st, _ := chromedp.Run(s.ctx, chromedp.Evaluate[string](`location.href + " | " + document.body.innerText`))
	return st
}

// waitText polls until the text of sel contains want (the ceremony
// script writes its status, or the broker's answer replaces the page).
func (s *webauthnScenario) waitText(sel, want string) {
	s.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		got, err := chromedp.Run(s.ctx, chromedp.Evaluate[string](`(document.querySelector(`+"`"+sel+"`"+`)||{}).innerText||""`))
		if err == nil && strings.Contains(got, want) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("no %q in %s:\n%s", want, sel, s.page())
}

// sessions counts the SSO sessions the broker created.
func (s *webauthnScenario) sessions() int {
	s.t.Helper()
	evs, err := s.b.Server.Store.Audit().List(context.Background(), store.AuditFilter{Action: "session.create", Limit: 20})
	if err != nil {
		s.t.Fatal(err)
	}
	return len(evs)
}

// TestBrowserWebAuthnU2FUserName: a u2f security key (no resident key,
// no user verification) is registered and then used by user name, with
// allowCredentials (a non-discoverable credential).
func TestBrowserWebAuthnU2FUserName(t *testing.T) {
	s := newWebAuthnScenario(t, `{user_verification: discouraged, resident_key: discouraged, registration_min_loa: substantial}`,
		cdpwebauthn.VirtualAuthenticatorOptions{Protocol: cdpwebauthn.AuthenticatorProtocolU2f, Transport: cdpwebauthn.AuthenticatorTransportUsb})
	s.eidLogin()
	page := s.register("max", "U2F-Schlüssel")
	if !strings.Contains(page, "Sicherheitsschlüssel") {
		t.Errorf("the u2f credential is not listed as a security key:\n%s", page)
	}
	creds, err := chromedp.Call(s.ctx, cdpwebauthn.GetCredentials, cdpwebauthn.GetCredentialsParams{AuthenticatorID: s.id})
	if err != nil || len(creds.Credentials) != 1 || creds.Credentials[0].IsResidentCredential {
		t.Fatalf("virtual u2f authenticator credentials: %+v, %v", creds, err)
	}
	s.startLogin()
	if err := chromedp.Do(s.ctx,
		chromedp.SendKeys(`#webauthn-login-username`, "max"),
		chromedp.Click(`#webauthn-username-form button[type="submit"]`),
	); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(s.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(wctx, chromedp.WaitVisible(`table.claims`), chromedp.WaitNotPresent(`#webauthn-username-form`)); err != nil {
		t.Fatalf("login by user name: %v\n%s", err, s.page())
	}
	result := text(t, s.ctx, "table.claims")
	browsertest.Screenshot(t, s.ctx, "u2f-result-de")
	if !strings.Contains(result, "http://eidas.europa.eu/LoA/low") || !strings.Contains(result, "hwk") || strings.Contains(result, "pin") {
		t.Errorf("u2f login result (low, hwk, no pin expected):\n%s", result)
	}
	if n := s.sessions(); n != 2 {
		t.Errorf("%d sessions; want the eID one and the u2f one", n)
	}
}

// TestBrowserWebAuthnUserVerificationFails: where user verification is
// required, an authenticator whose user verification fails is refused —
// by the browser (isUserVerified false: no assertion at all) and by the
// broker (the UV flag of the answer forced to zero).
func TestBrowserWebAuthnUserVerificationFails(t *testing.T) {
	s := newWebAuthnScenario(t, `{user_verification: required, resident_key: required, registration_min_loa: substantial}`,
		cdpwebauthn.VirtualAuthenticatorOptions{Protocol: cdpwebauthn.AuthenticatorProtocolCtap2, Transport: cdpwebauthn.AuthenticatorTransportUsb,
			HasResidentKey: true, HasUserVerification: true, IsUserVerified: true})
	s.eidLogin()
	s.register("erika", "Schlüssel")

	// 1. User verification fails on the authenticator.
	if _, err := chromedp.Call(s.ctx, cdpwebauthn.SetUserVerified, cdpwebauthn.SetUserVerifiedParams{AuthenticatorID: s.id, IsUserVerified: false}); err != nil {
		t.Fatal(err)
	}
	s.startLogin()
	if err := chromedp.Do(s.ctx, chromedp.Click(`#webauthn-passkey`)); err != nil {
		t.Fatal(err)
	}
	s.waitText(`#ceremony-status`, "abgebrochen")

	// 2. The authenticator answers, but without the UV flag: the broker
	// refuses the assertion.
	if _, err := chromedp.Call(s.ctx, cdpwebauthn.SetUserVerified, cdpwebauthn.SetUserVerifiedParams{AuthenticatorID: s.id, IsUserVerified: true}); err != nil {
		t.Fatal(err)
	}
	bad := true
	if _, err := chromedp.Call(s.ctx, cdpwebauthn.SetResponseOverrideBits, cdpwebauthn.SetResponseOverrideBitsParams{AuthenticatorID: s.id, IsBadUV: &bad}); err != nil {
		t.Fatal(err)
	}
	s.startLogin()
	if err := chromedp.Do(s.ctx, chromedp.Click(`#webauthn-passkey`)); err != nil {
		t.Fatal(err)
	}
	s.waitText(`body`, "Der Sicherheitsschlüssel konnte nicht geprüft werden.")
	browsertest.Screenshot(t, s.ctx, "uv-refused-de")
	if present, _ := chromedp.Run(s.ctx, chromedp.Evaluate[bool](`!!document.querySelector("table.claims")`)); present {
		t.Fatal("login without user verification reached the service")
	}
	if n := s.sessions(); n != 1 {
		t.Errorf("%d sessions; want only the eID one", n)
	}
}

// TestBrowserWebAuthnCounterBackwards: the credential is put back into
// the authenticator with a lower signature counter (as a clone would
// have); the next login is refused, the credential is blocked, an audit
// event raised, and the account page shows it as blocked.
func TestBrowserWebAuthnCounterBackwards(t *testing.T) {
	s := newWebAuthnScenario(t, `{user_verification: required, resident_key: required, registration_min_loa: substantial}`,
		cdpwebauthn.VirtualAuthenticatorOptions{Protocol: cdpwebauthn.AuthenticatorProtocolCtap2, Transport: cdpwebauthn.AuthenticatorTransportUsb,
			HasResidentKey: true, HasUserVerification: true, IsUserVerified: true})
	s.eidLogin()
	s.register("erika", "Schlüssel")
	// One good login moves the stored counter forward.
	s.startLogin()
	wctx, cancel := context.WithTimeout(s.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(wctx, chromedp.Click(`#webauthn-passkey`), chromedp.WaitVisible(`table.claims`), chromedp.WaitNotPresent(`#webauthn-passkey`)); err != nil {
		t.Fatalf("first passkey login: %v\n%s", err, s.page())
	}
	creds, err := chromedp.Call(s.ctx, cdpwebauthn.GetCredentials, cdpwebauthn.GetCredentialsParams{AuthenticatorID: s.id})
	if err != nil || len(creds.Credentials) != 1 {
		t.Fatalf("credentials: %+v, %v", creds, err)
	}
	c := creds.Credentials[0]
	if c.SignCount < 1 {
		t.Fatalf("virtual authenticator counter %v; want it counting", c.SignCount)
	}
	if _, err := chromedp.Call(s.ctx, cdpwebauthn.RemoveCredential, cdpwebauthn.RemoveCredentialParams{AuthenticatorID: s.id, CredentialID: c.CredentialID}); err != nil {
		t.Fatal(err)
	}
	// cdproto always sends generateCmtgKeyOnNextOperation, which this
	// Chromium refuses for ctap2 authenticators: the command by hand.
	type credential struct {
		CredentialID         []byte  `json:"credentialId"`
		IsResidentCredential bool    `json:"isResidentCredential"`
		RpID                 string  `json:"rpId"`
		PrivateKey           []byte  `json:"privateKey"`
		UserHandle           []byte  `json:"userHandle"`
		SignCount            float64 `json:"signCount"`
	}
	type addParams struct {
		AuthenticatorID cdpwebauthn.AuthenticatorID `json:"authenticatorId"`
		Credential      credential                  `json:"credential"`
	}
	add := cdp.Command[addParams, cdp.Empty]{Method: cdpwebauthn.CommandAddCredential}
	if _, err := chromedp.Call(s.ctx, add, addParams{AuthenticatorID: s.id, Credential: credential{
		CredentialID: c.CredentialID, IsResidentCredential: c.IsResidentCredential, RpID: c.RpID,
		PrivateKey: c.PrivateKey, UserHandle: c.UserHandle, SignCount: 0,
	}}); err != nil {
		t.Fatal(err)
	}
	s.startLogin()
	if err := chromedp.Do(s.ctx, chromedp.Click(`#webauthn-passkey`)); err != nil {
		t.Fatal(err)
	}
	s.waitText(`body`, "gesperrt, weil er kopiert worden sein könnte")
	browsertest.Screenshot(t, s.ctx, "cloned-refused-de")
	if n := s.sessions(); n != 2 {
		t.Errorf("%d sessions; want the eID one and the first passkey one", n)
	}
	evs, err := s.b.Server.Store.Audit().List(context.Background(), store.AuditFilter{Action: "webauthn.cloned", Limit: 5})
	if err != nil || len(evs) != 1 || evs[0].Outcome != store.OutcomeDenied {
		t.Errorf("webauthn.cloned audit events: %+v, %v", evs, err)
	}
	// The owner sees the credential blocked on the account page.
	s.eidLogin()
	if err := chromedp.Do(s.ctx, chromedp.Navigate(s.b.URL+"/account/webauthn"), chromedp.WaitVisible(`table.webauthn-credentials strong.cloned`)); err != nil {
		t.Fatalf("account page: %v\n%s", err, s.page())
	}
	if row := text(t, s.ctx, "table.webauthn-credentials"); !strings.Contains(row, "gesperrt: möglicherweise kopiert") {
		t.Errorf("account page does not show the credential blocked:\n%s", row)
	}
	browsertest.Screenshot(t, s.ctx, "account-cloned-de")
}
