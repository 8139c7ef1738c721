package conformance_test

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/conformance/browsertest"
	"github.com/trustbroker/trustbroker/conformance/dbtest"
	"github.com/trustbroker/trustbroker/conformance/harness"
	"github.com/trustbroker/trustbroker/providers/eid/eidsim"
)

// linkOfferYAML: the eID simulator plus two security keys (fakes), one to
// become a second credential of Erika's account, one of another person.
const linkOfferYAML = `
demo: true
providers:
  - id: eid-sim
    type: eid-simulator
    name: {de: Online-Ausweis (Simulator), en: Online ID card (simulator)}
    config:
      poll_interval: 10ms
      pending_polls: 1
      rsa_bits: 2048
      transaction_info: "Anmeldung beim Demo-Dienst"
  - id: key-erika
    type: fake-redirect
    name: {de: Sicherheitsschlüssel Erika, en: Erika's security key}
    config: {kind: webauthn, subject: key-erika, loa: substantial, amr: [hwk, user], attributes: {given_name: Erika}}
  - id: key-other
    type: fake-redirect
    name: {de: Sicherheitsschlüssel Max, en: Max's security key}
    config: {kind: webauthn, subject: key-max, loa: substantial, amr: [hwk, user], attributes: {given_name: Max}}
relying_parties:
  - id: demo
    name: {de: Demo-Dienst, en: Demo service}
    protocol: oidc
    accepted_credentials: [eid, webauthn]
    min_loa: substantial
    claims:
      - {name: given_name, required: true, purpose: {en: greeting}}
      - {name: family_name, purpose: {en: greeting}}
      - {name: birthdate, purpose: {en: age}}
    oidc:
      redirect_uris: ["{{issuer}}/demo/callback"]
      client_secret: test-secret-0123456789-0123456789-0123
`

// linkOfferEnv: Erika's old card and her security key in account A, Max's
// key in account B.
type linkOfferEnv struct {
	b          *harness.Broker
	subA, subB string
	accountA   string
}

func startLinkOffer(t *testing.T, dsn string, o harness.Options) *linkOfferEnv {
	t.Helper()
	b := harness.Start(t, linkOfferYAML, dsn, o)
	env := &linkOfferEnv{b: b}
	br := harness.NewBrowser(t)
	_, link := eidActivation(t, b, br)
	env.subA = claims(t, eidCard(t, br, link, "erika", eidsim.PIN))["sub"]
	ctx := context.Background()
	a, err := b.Server.Store.Accounts().FindByIdentity(ctx, "eid-sim", strings.ToLower(eidsim.CardByKey("erika").RestrictedID()))
	if err != nil {
		t.Fatal(err)
	}
	env.accountA = a.ID
	// Erika registered a security key too (the WebAuthn page would do
	// this; the fake key has no registration of its own).
	if err := b.Server.Store.Accounts().Link(ctx, store.LinkedIdentity{AccountID: a.ID, ProviderID: "key-erika", Subject: "key-erika", Kind: "webauthn"}); err != nil {
		t.Fatal(err)
	}
	maxBr := harness.NewBrowser(t)
	env.subB = claims(t, choose(t, maxBr, beginLogin(t, b, maxBr), "key-other"))["sub"]
	return env
}

// renewedLogin logs in with the renewed card in a fresh browser and
// returns the browser and the page it ends on.
func (env *linkOfferEnv) renewedLogin(t *testing.T) (*harness.Browser, *harness.Page) {
	t.Helper()
	br := harness.NewBrowser(t)
	_, link := eidActivation(t, env.b, br)
	return br, eidCard(t, br, link, "erika-renewed", eidsim.PIN)
}

func isLinkOffer(p *harness.Page) bool {
	return p.Status == http.StatusOK && strings.Contains(p.Body, "Bestehendes Konto gefunden") &&
		strings.Contains(p.Body, "demselben bestätigten Namen und Geburtsdatum")
}

// renewedLinked reports whether the renewed card's pseudonym is linked, and
// to which account.
func (env *linkOfferEnv) renewedLinked(t *testing.T) string {
	t.Helper()
	a, err := env.b.Server.Store.Accounts().FindByIdentity(context.Background(), "eid-sim", strings.ToLower(eidsim.CardByKey("erika-renewed").RestrictedID()))
	if err != nil {
		return ""
	}
	return a.ID
}

// TestEIDLinkOfferLinks: a renewed card (new pseudonym, same verified name
// and date of birth) is not merged silently; the user is offered linking,
// logs in with the security key of the existing account, and the relying
// party receives account A's subject with the card's claims. The card is
// linked: its next login lands in account A at once.
func TestEIDLinkOfferLinks(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		env := startLinkOffer(t, dsn, harness.Options{})
		b := env.b
		br, offer := env.renewedLogin(t)
		if !isLinkOffer(offer) {
			t.Fatalf("no link offer (%d %s):\n%s", offer.Status, offer.URL, offer.Body)
		}
		// Nothing about the existing account shows, not even how one signs in to it.
		if strings.Contains(offer.Body, "Sicherheitsschlüssel") || strings.Contains(offer.Body, "key-erika") {
			t.Errorf("the offer reveals the existing account's credentials:\n%s", offer.Body)
		}
		// A reload shows the offer again; nothing is linked yet.
		if again := br.Get(offer.URL.String()); !isLinkOffer(again) || env.renewedLinked(t) != "" {
			t.Fatalf("reload: %d linked=%q\n%s", again.Status, env.renewedLinked(t), again.Body)
		}
		// Without the form token the choice is refused.
		for _, tok := range []string{"", "forged"} {
			if p := br.Post(offer.Action(t), url.Values{"csrf": {tok}, "choice": {"link"}}); p.Status != http.StatusForbidden {
				t.Errorf("choice with csrf %q: %d", tok, p.Status)
			}
		}
		if p := br.Post(offer.Action(t), url.Values{"csrf": {offer.CSRF(t)}, "choice": {"merge"}}); p.Status != http.StatusBadRequest {
			t.Errorf("unknown choice: %d", p.Status)
		}

		methods := br.Post(offer.Action(t), url.Values{"csrf": {offer.CSRF(t)}, "choice": {"link"}})
		if methods.Status != http.StatusOK || !strings.Contains(methods.Body, `value="key-erika"`) ||
			strings.Contains(methods.Body, `value="key-other"`) || strings.Contains(methods.Body, `value="eid-sim"`) ||
			!strings.Contains(methods.Body, "Verfahren Ihres bestehenden Kontos") {
			t.Fatalf("method choice for the second login (%d):\n%s", methods.Status, methods.Body)
		}
		// A provider of no matching account cannot be chosen.
		if p := choose(t, br, methods, "key-other"); p.Status != http.StatusBadRequest {
			t.Errorf("key-other chosen for the second login: %d", p.Status)
		}
		got := claims(t, choose(t, br, methods, "key-erika"))
		if got["sub"] != env.subA {
			t.Errorf("after linking the RP got sub %q, want account A's %q", got["sub"], env.subA)
		}
		if got["given_name"] != "ERIKA" || got["birthdate"] != "1964-08-12" {
			t.Errorf("the RP did not get the card's claims: %v", got)
		}
		if acct := env.renewedLinked(t); acct != env.accountA {
			t.Errorf("renewed card linked to %q, want %q", acct, env.accountA)
		}
		// The next login with the renewed card alone lands in account A.
		if _, p := env.renewedLogin(t); claims(t, p)["sub"] != env.subA {
			t.Errorf("renewed card after linking: %v", claims(t, p))
		}
		evs, err := b.Server.Store.Audit().List(context.Background(), store.AuditFilter{Action: "login.link", Limit: 10})
		if err != nil || len(evs) != 1 || evs[0].Outcome != store.OutcomeSuccess || evs[0].Actor != env.accountA {
			t.Errorf("audit of the link: %+v %v", evs, err)
		}
		offers, _ := b.Server.Store.Audit().List(context.Background(), store.AuditFilter{Action: "login.link_offer", Limit: 10})
		var reasons []string
		for _, e := range offers {
			reasons = append(reasons, e.Reason)
		}
		if s := strings.Join(reasons, ","); !strings.Contains(s, "offered") || !strings.Contains(s, "link chosen") {
			t.Errorf("audit of the offer: %v", reasons)
		}
	})
}

// TestEIDLinkOfferRefusedAndNew: a second login that belongs to another
// account links nothing and says so; choosing a new account then gives the
// card an account of its own.
func TestEIDLinkOfferRefusedAndNew(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		env := startLinkOffer(t, dsn, harness.Options{})
		ctx := context.Background()
		br, offer := env.renewedLogin(t)
		if !isLinkOffer(offer) {
			t.Fatalf("no link offer (%d):\n%s", offer.Status, offer.Body)
		}
		methods := br.Post(offer.Action(t), url.Values{"csrf": {offer.CSRF(t)}, "choice": {"link"}})
		// Meanwhile the key moved to Max's account: the second login
		// identifies an account that is not the matching one.
		accts := env.b.Server.Store.Accounts()
		other, err := accts.FindByIdentity(ctx, "key-other", "key-max")
		if err != nil {
			t.Fatal(err)
		}
		if err := accts.Unlink(ctx, "key-erika", "key-erika"); err != nil {
			t.Fatal(err)
		}
		if err := accts.Link(ctx, store.LinkedIdentity{AccountID: other.ID, ProviderID: "key-erika", Subject: "key-erika", Kind: "webauthn"}); err != nil {
			t.Fatal(err)
		}
		refused := choose(t, br, methods, "key-erika")
		if refused.Status != http.StatusUnprocessableEntity || !strings.Contains(refused.Body, "Es wurde nichts verknüpft") || !isLinkOfferBody(refused) {
			t.Fatalf("second login of another account (%d):\n%s", refused.Status, refused.Body)
		}
		if acct := env.renewedLinked(t); acct != "" {
			t.Fatalf("the renewed card was linked to %q", acct)
		}
		evs, _ := env.b.Server.Store.Audit().List(ctx, store.AuditFilter{Action: "login.link", Limit: 10})
		if len(evs) != 1 || evs[0].Outcome != store.OutcomeDenied {
			t.Errorf("audit of the refusal: %+v", evs)
		}

		got := claims(t, br.Post(refused.Action(t), url.Values{"csrf": {refused.CSRF(t)}, "choice": {"new"}}))
		if got["sub"] == "" || got["sub"] == env.subA || got["sub"] == env.subB {
			t.Errorf("new account: sub %q (A %q, B %q)", got["sub"], env.subA, env.subB)
		}
		acct := env.renewedLinked(t)
		if acct == "" || acct == env.accountA || acct == other.ID {
			t.Errorf("renewed card in account %q", acct)
		}
		// Known now: its next login goes straight to its own account.
		if _, p := env.renewedLogin(t); claims(t, p)["sub"] != got["sub"] {
			t.Errorf("second login of the new account: %v", claims(t, p))
		}
	})
}

func isLinkOfferBody(p *harness.Page) bool {
	return strings.Contains(p.Body, "Bestehendes Konto gefunden") && strings.Contains(p.Body, `name="choice" value="new"`)
}

// TestEIDLinkOfferOnlyOnMatch: no offer when the stored match key differs
// (another person with the same name but another date of birth has another
// key, see providers/eid TestMatchKey), nor when the matching account has
// no other credential to log in with.
func TestEIDLinkOfferOnlyOnMatch(t *testing.T) {
	env := startLinkOffer(t, dbtest.SQLite(t), harness.Options{})
	ctx := context.Background()
	accts := env.b.Server.Store.Accounts()
	erika := strings.ToLower(eidsim.CardByKey("erika").RestrictedID())
	ids, err := accts.Identities(ctx, env.accountA)
	if err != nil || len(ids) != 2 || ids[0].MatchKey == "" || strings.Contains(ids[0].MatchKey, "ERIKA") || strings.Contains(strings.ToLower(ids[0].MatchKey), "erika") {
		t.Fatalf("stored identities: %+v %v", ids, err)
	}
	stored := ids[0].MatchKey
	if err := accts.SetMatchKey(ctx, "eid-sim", erika, "another-person"); err != nil {
		t.Fatal(err)
	}
	_, p := env.renewedLogin(t)
	if isLinkOfferBody(p) {
		t.Fatal("offer although the match keys differ")
	}
	newSub := claims(t, p)["sub"]
	if newSub == env.subA {
		t.Fatal("merged silently")
	}
	// The old card's next login refreshes its match key.
	br := harness.NewBrowser(t)
	_, link := eidActivation(t, env.b, br)
	if s := claims(t, eidCard(t, br, link, "erika", eidsim.PIN))["sub"]; s != env.subA {
		t.Fatalf("old card: %q", s)
	}
	if ids, _ := accts.Identities(ctx, env.accountA); ids[0].MatchKey != stored {
		t.Errorf("match key not refreshed: %q, want %q", ids[0].MatchKey, stored)
	}
}

// TestEIDLinkOfferNeedsAnotherCredential: when the matching account has
// only eID cards, there is nothing to link with here: the renewed card gets
// an account of its own (as before), and the audit trail says why.
func TestEIDLinkOfferNeedsAnotherCredential(t *testing.T) {
	b := harness.Start(t, linkOfferYAML, dbtest.SQLite(t), harness.Options{})
	br := harness.NewBrowser(t)
	_, link := eidActivation(t, b, br)
	old := claims(t, eidCard(t, br, link, "erika", eidsim.PIN))
	br = harness.NewBrowser(t)
	_, link = eidActivation(t, b, br)
	p := eidCard(t, br, link, "erika-renewed", eidsim.PIN)
	if isLinkOfferBody(p) || claims(t, p)["sub"] == old["sub"] {
		t.Fatalf("renewed card without another credential (%d):\n%s", p.Status, p.Body)
	}
	evs, _ := b.Server.Store.Audit().List(context.Background(), store.AuditFilter{Action: "login.link_offer", Limit: 10})
	if len(evs) != 1 || evs[0].Outcome != store.OutcomeFailure {
		t.Errorf("audit: %+v", evs)
	}
}

// TestBrowserEIDLinkOffer: the offer and the restricted method choice in
// headless Chromium (screenshots, axe where configured), through to the
// relying party with account A's subject.
func TestBrowserEIDLinkOffer(t *testing.T) {
	ctx := browsertest.New(t)
	var axe *browsertest.Axe
	if os.Getenv(browsertest.AxeEnv) != "" {
		axe = browsertest.NewAxe(t)
	}
	check := func(name string) {
		browsertest.Screenshot(t, ctx, name)
		if axe != nil {
			axe.Check(t, ctx, name)
		}
	}
	env := startLinkOffer(t, dbtest.SQLite(t), harness.Options{Hostname: "localhost"})
	err := chromedp.Do(ctx,
		chromedp.Navigate(env.b.URL+"/demo"),
		chromedp.WaitVisible(`form[action="/demo/login"] button`),
		chromedp.Click(`form[action="/demo/login"] button`),
		chromedp.WaitVisible(`button[value="eid-sim"]`),
		chromedp.Click(`button[value="eid-sim"]`),
		chromedp.WaitVisible(`#eid-start`),
		chromedp.Click(`#eid-start`),
		chromedp.WaitVisible(`input[name="pin"]`),
		chromedp.Click(`#card-erika-renewed`),
		chromedp.SendKeys(`#pin`, eidsim.PIN),
		chromedp.Click(`button[value="identify"]`),
		chromedp.WaitVisible(`form.link-offer`),
	)
	if err != nil {
		t.Fatal(err)
	}
	if page := text(t, ctx, "main"); !strings.Contains(page, "demselben bestätigten Namen und Geburtsdatum") || strings.Contains(page, "Sicherheitsschlüssel") {
		t.Errorf("offer page:\n%s", page)
	}
	check("link-offer-de")
	err = chromedp.Do(ctx,
		chromedp.Click(`button[value="link"]`),
		chromedp.WaitVisible(`button[value="key-erika"]`),
	)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("button[name=provider]").length`)); n != 1 {
		t.Errorf("second login offers %d methods, want 1", n)
	}
	check("link-methods-de")
	if err := chromedp.Do(ctx, chromedp.Click(`button[value="key-erika"]`), chromedp.WaitVisible(`table.claims`)); err != nil {
		t.Fatal(err)
	}
	if result := text(t, ctx, "table.claims"); !strings.Contains(result, env.subA) || !strings.Contains(result, "ERIKA") {
		t.Errorf("result after linking (want sub %s):\n%s", env.subA, result)
	}
}
