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

// startSelfRegistration starts a broker (self-registration allowed or
// not for the demo relying party) and a browser with a virtual ctap2
// authenticator (resident keys, user verification), and opens the
// WebAuthn ceremony page of a login.
func startSelfRegistration(t *testing.T, dsn string, allow bool) (context.Context, *harness.Broker, cdpwebauthn.AuthenticatorID) {
	t.Helper()
	cfg := webauthnYAML
	if allow {
		cfg = strings.Replace(cfg, "    min_loa: low\n", "    min_loa: low\n    self_registration: true\n", 1)
	}
	b := harness.Start(t, cfg, dsn, harness.Options{Hostname: "localhost"})
	ctx := browsertest.New(t)
	if _, err := chromedp.Call(ctx, cdpwebauthn.Enable, cdpwebauthn.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	a, err := chromedp.Call(ctx, cdpwebauthn.AddVirtualAuthenticator, cdpwebauthn.AddVirtualAuthenticatorParams{
		Options: &cdpwebauthn.VirtualAuthenticatorOptions{
			Protocol: cdpwebauthn.AuthenticatorProtocolCtap2, Transport: cdpwebauthn.AuthenticatorTransportInternal,
			HasResidentKey: true, HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	openCeremony(t, ctx, b.URL)
	return ctx, b, a.AuthenticatorID
}

func openCeremony(t *testing.T, ctx context.Context, base string) {
	t.Helper()
	err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/demo"),
		chromedp.Click(`form[action="/demo/login"] button`),
		chromedp.WaitVisible(`button.method[value="webauthn"]`),
		chromedp.Click(`button.method[value="webauthn"]`),
		chromedp.WaitVisible(`#webauthn-passkey`),
	)
	if err != nil {
		t.Fatal(err)
	}
}

// conditionalState waits until the page's background passkey request has
// settled into its state ("pending" while navigator.credentials.get with
// mediation "conditional" runs) and returns it; "unavailable" when the
// browser offers no conditional mediation.
func conditionalState(t *testing.T, ctx context.Context) string {
	t.Helper()
	avail, err := chromedp.Run(ctx, chromedp.Evaluate[bool](
		`PublicKeyCredential.isConditionalMediationAvailable ? PublicKeyCredential.isConditionalMediationAvailable() : false`,
		chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if !avail {
		return "unavailable"
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := chromedp.Do(wctx, chromedp.WaitReady(`#ceremony[data-conditional="pending"]`)); err != nil {
		t.Fatalf("conditional request not started: %v", err)
	}
	return "pending"
}

// TestBrowserWebAuthnSelfRegistration: on SQLite and PostgreSQL, a user
// without an account creates one with a passkey on the ceremony page
// (the login completes at level low, amr hwk), then logs in with the
// passkey button in a fresh session (which aborts the page's background
// conditional request), and in a third by conditional mediation alone.
func TestBrowserWebAuthnSelfRegistration(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		ctx, b, auth := startSelfRegistration(t, dsn, true)
		cond := conditionalState(t, ctx)
		t.Logf("conditional mediation in headless Chromium: %s", cond)
		if err := chromedp.Do(ctx,
			chromedp.WaitVisible(`#webauthn-register-form`),
			chromedp.SendKeys(`#webauthn-register-username`, "max"),
		); err != nil {
			t.Fatal(err)
		}
		browsertest.Screenshot(t, ctx, "self-register-de")
		if err := chromedp.Do(ctx, chromedp.Click(`#webauthn-register-form button[type="submit"]`)); err != nil {
			t.Fatal(err)
		}
		browsertest.Do(t, ctx, 15*time.Second, "self-registration", chromedp.WaitVisible(`table.claims`))
		result := text(t, ctx, "table.claims")
		for _, want := range []string{"http://eidas.europa.eu/LoA/low", "hwk", "pin"} {
			if !strings.Contains(result, want) {
				t.Errorf("self-registration result lacks %q:\n%s", want, result)
			}
		}
		st := b.Server.Store
		bg := context.Background()
		regs, err := st.Audit().List(bg, store.AuditFilter{Action: "webauthn.self_register", Limit: 10})
		if err != nil || len(regs) != 1 || regs[0].Outcome != store.OutcomeSuccess {
			t.Fatalf("self-registration audit: %+v, %v", regs, err)
		}
		creds, err := st.WebAuthn().ListByAccount(bg, regs[0].Actor)
		if err != nil || len(creds) != 1 || creds[0].UserName != "max" || !creds[0].Discoverable {
			t.Fatalf("credentials of the new account: %+v, %v", creds, err)
		}

		// A fresh session logs in with the new passkey by the button, which
		// aborts the background request first. The virtual authenticator
		// answers a conditional request at once when it simulates user
		// presence; it does so only once the button was pressed.
		if _, err := chromedp.Call(ctx, network.ClearBrowserCookies, cdp.Empty{}); err != nil {
			t.Fatal(err)
		}
		if _, err := chromedp.Call(ctx, cdpwebauthn.SetAutomaticPresenceSimulation, cdpwebauthn.SetAutomaticPresenceSimulationParams{AuthenticatorID: auth, Enabled: false}); err != nil {
			t.Fatal(err)
		}
		openCeremony(t, ctx, b.URL)
		conditionalState(t, ctx)
		if err := chromedp.Do(ctx, chromedp.Click(`#webauthn-passkey`)); err != nil {
			t.Fatal(err)
		}
		if _, err := chromedp.Call(ctx, cdpwebauthn.SetAutomaticPresenceSimulation, cdpwebauthn.SetAutomaticPresenceSimulationParams{AuthenticatorID: auth, Enabled: true}); err != nil {
			t.Fatal(err)
		}
		browsertest.Do(t, ctx, 15*time.Second, "passkey login", chromedp.WaitVisible(`table.claims`))
		if r := text(t, ctx, "table.claims"); !strings.Contains(r, "http://eidas.europa.eu/LoA/low") {
			t.Errorf("passkey login result:\n%s", r)
		}

		// A third fresh session logs in by conditional mediation alone: the
		// background request answers, no button pressed.
		if _, err := chromedp.Call(ctx, network.ClearBrowserCookies, cdp.Empty{}); err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(ctx,
			chromedp.Navigate(b.URL+"/demo"),
			chromedp.Click(`form[action="/demo/login"] button`),
			chromedp.WaitVisible(`button.method[value="webauthn"]`),
			chromedp.Click(`button.method[value="webauthn"]`),
		); err != nil {
			t.Fatal(err)
		}
		browsertest.Do(t, ctx, 15*time.Second, "conditional login", chromedp.WaitVisible(`table.claims`))
		if r := text(t, ctx, "table.claims"); !strings.Contains(r, "http://eidas.europa.eu/LoA/low") {
			t.Errorf("conditional login result:\n%s", r)
		}
		evs, err := st.Audit().List(bg, store.AuditFilter{Action: "session.create", Limit: 10})
		if err != nil || len(evs) != 3 || evs[0].Actor != regs[0].Actor || evs[2].Actor != regs[0].Actor {
			t.Errorf("sessions: %+v, %v; want both on account %s", evs, err, regs[0].Actor)
		}
	})
}

// TestBrowserWebAuthnSelfRegistrationRefused: where the relying party
// does not allow self-registration the page offers none, and an options
// request for one is refused with the method page.
func TestBrowserWebAuthnSelfRegistrationRefused(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		ctx, b, _ := startSelfRegistration(t, dsn, false)
		conditionalState(t, ctx)
		got, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(function () {
  var root = document.getElementById("ceremony");
  if (document.getElementById("webauthn-register-form") || root.dataset.register) { return "offered"; }
  return fetch(root.dataset.options, {method: "POST", credentials: "same-origin",
    headers: {"Content-Type": "application/json", "X-CSRF-Token": root.dataset.csrf},
    body: JSON.stringify({register: true, username: "max"})
  }).then(function (r) { return r.text().then(function (t) { return r.status + " " + t; }); });
})()`, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(got, "422 ") || !strings.Contains(got, "kein neues Konto") {
			t.Fatalf("self-registration where not allowed: %.400s", got)
		}
		st := b.Server.Store
		if regs, err := st.Audit().List(context.Background(), store.AuditFilter{Action: "webauthn.self_register", Limit: 10}); err != nil || len(regs) != 0 {
			t.Errorf("self-registration audit: %+v, %v", regs, err)
		}
		if n, err := st.Audit().List(context.Background(), store.AuditFilter{Action: "session.create", Limit: 10}); err != nil || len(n) != 0 {
			t.Errorf("sessions: %+v, %v", n, err)
		}
	})
}
