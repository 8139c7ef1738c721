package conformance_test

import (
	"bytes"
	"context"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/broker/loa"
	"github.com/trustbroker/trustbroker/broker/server"
	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/conformance/dbtest"
	"github.com/trustbroker/trustbroker/conformance/harness"
	"github.com/trustbroker/trustbroker/providers"
	"github.com/trustbroker/trustbroker/providers/eid/eidsim"
)

// eidYAML: the demo relying party accepts only the eID, through the
// built-in simulator (a real eid provider against a simulated eID-Server).
const eidYAML = `
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
      place_verification_community_id: "027605"
relying_parties:
  - id: demo
    name: {de: Demo-Dienst, en: Demo service}
    protocol: oidc
    accepted_credentials: [eid]
    min_loa: high
    claims:
      - {name: given_name, required: true, purpose: {en: greeting}}
      - {name: family_name, required: true, purpose: {en: greeting}}
      - {name: birthdate, purpose: {en: age}}
      - {name: address, purpose: {en: letters}}
      - {name: age_over_18, purpose: {en: age check}}
      - {name: place_verified, purpose: {en: local offer}}
    oidc:
      redirect_uris: ["{{issuer}}/demo/callback"]
      client_secret: test-secret-0123456789-0123456789-0123
`

var (
	eidStartRE = regexp.MustCompile(`id="eid-start" href="([^"]+)"`)
)

// eidActivation chooses the eID on the method page and returns the
// activation page and its link to the eID client.
func eidActivation(t *testing.T, b *harness.Broker, br *harness.Browser) (*harness.Page, string) {
	t.Helper()
	act := choose(t, br, beginLogin(t, b, br), "eid-sim")
	m := eidStartRE.FindStringSubmatch(act.Body)
	if act.Status != http.StatusOK || m == nil {
		t.Fatalf("activation page %d %s:\n%s", act.Status, act.URL, act.Body)
	}
	return act, html.UnescapeString(m[1])
}

// eidCard runs the eID client page with a specimen card and returns the
// page the browser ends on.
func eidCard(t *testing.T, br *harness.Browser, clientLink, card, pin string) *harness.Page {
	t.Helper()
	client := br.Get(clientLink)
	if client.Status != http.StatusOK || !strings.Contains(client.Body, `name="card"`) {
		t.Fatalf("eID client page %d %s:\n%s", client.Status, client.URL, client.Body)
	}
	return br.Post(client.Action(t), url.Values{"card": {card}, "pin": {pin}, "action": {"identify"}, "release": {"DateOfBirth", "PlaceOfResidence", "AgeVerification", "PlaceVerification", "DocumentType", "IssuingState", "DateOfExpiry"}})
}

func simulator(t *testing.T, b *harness.Broker) *eidsim.Simulator {
	t.Helper()
	sim, err := eidsim.SimulatorOf(b.Server.Provider("eid-sim"))
	if err != nil {
		t.Fatal(err)
	}
	return sim
}

// TestEIDLogin: demo relying party → broker → eID simulator (TC token,
// eID client page, getResult polling over mTLS with WS-Security) → the
// relying party receives the card's claims at level high.
func TestEIDLogin(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		b := harness.Start(t, eidYAML, dsn, harness.Options{})
		br := harness.NewBrowser(t)
		act, link := eidActivation(t, b, br)
		tx := strings.Split(strings.TrimPrefix(act.URL.Path, "/providers/eid-sim/activate/"), "/")[0]
		for _, want := range []string{"Simulator", "Geburtsdatum", "Pseudonym", "Bestätigung des Mindestalters", "/assets/eid-activate.js"} {
			if !strings.Contains(act.Body, want) {
				t.Errorf("activation page lacks %q", want)
			}
		}
		csp := act.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "connect-src 'self' http://127.0.0.1:") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("activation page CSP: %s", csp)
		}
		u, _ := url.Parse(link)
		tcURL := u.Query().Get("tcTokenURL")
		if !strings.HasPrefix(tcURL, b.URL+"/providers/eid-sim/tctoken/") {
			t.Fatalf("tcTokenURL %q", tcURL)
		}
		got := claims(t, eidCard(t, br, link, "erika", eidsim.PIN))
		want := map[string]string{
			"given_name": "ERIKA", "family_name": "MUSTERMANN", "birthdate": "1964-08-12",
			"acr": "http://eidas.europa.eu/LoA/high", "amr": "sc pin mfa", "age_over_18": "true", "place_verified": "true",
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("claim %s = %q, want %q (all: %v)", k, got[k], v, got)
			}
		}
		// The demo relying party asks for scope profile only: the address
		// (scope address) stays with the broker.
		if _, ok := got["address"]; ok {
			t.Errorf("address released without its scope: %q", got["address"])
		}
		// The TC token was handed out once: a second fetch is refused.
		if p := harness.NewBrowser(t).Get(tcURL); p.Status != http.StatusNotFound && p.Status != http.StatusGone {
			t.Errorf("second TC token fetch: %d", p.Status)
		}
		acts := strings.Join(auditActions(t, b.Server.Store, tx), ",")
		for _, a := range []string{"eid.tctoken:success", "login.provider:success", "login.complete:success"} {
			if !strings.Contains(acts, a) {
				t.Errorf("audit trail %s lacks %s", acts, a)
			}
		}
		// The same card in a fresh browser finds the same account: the
		// RestrictedID is the stable subject.
		br2 := harness.NewBrowser(t)
		_, link2 := eidActivation(t, b, br2)
		again := claims(t, eidCard(t, br2, link2, "erika", eidsim.PIN))
		if again["sub"] != got["sub"] {
			t.Errorf("second login subject %q, first %q", again["sub"], got["sub"])
		}
	})
}

// TestEIDTCTokenOnce: the TC token is handed out once per login, and a
// wrong secret finds nothing.
func TestEIDTCTokenOnce(t *testing.T) {
	b := harness.Start(t, eidYAML, dbtest.SQLite(t), harness.Options{})
	br := harness.NewBrowser(t)
	_, link := eidActivation(t, b, br)
	u, _ := url.Parse(link)
	tcURL := u.Query().Get("tcTokenURL")
	other := harness.NewBrowser(t)
	if p := other.Get(tcURL[:len(tcURL)-4] + "AAAA"); p.Status != http.StatusNotFound {
		t.Errorf("wrong secret: %d", p.Status)
	}
	first := other.Get(tcURL)
	if first.Status != http.StatusOK || first.Header.Get("Content-Type") != "text/xml;charset=utf-8" ||
		!strings.Contains(first.Body, "<TCTokenType>") || !strings.Contains(first.Body, "urn:ietf:rfc:4279") {
		t.Fatalf("TC token %d %s:\n%s", first.Status, first.Header.Get("Content-Type"), first.Body)
	}
	if p := other.Get(tcURL); p.Status != http.StatusGone {
		t.Errorf("second fetch: %d", p.Status)
	}
	// The eID client page cannot get the token any more either.
	if p := br.Get(link); p.Status != http.StatusBadGateway {
		t.Errorf("client page after the token was taken: %d", p.Status)
	}
}

// TestEIDRefreshFromOtherBrowser: the RefreshAddress is the broker's
// callback, bound to the browser that started the login: a browser that
// got hold of the activation link cannot complete the login.
func TestEIDRefreshFromOtherBrowser(t *testing.T) {
	b := harness.Start(t, eidYAML, dbtest.SQLite(t), harness.Options{})
	victim := harness.NewBrowser(t)
	_, link := eidActivation(t, b, victim)
	attacker := harness.NewBrowser(t)
	end := eidCard(t, attacker, link, "erika", eidsim.PIN)
	if end.Status != http.StatusForbidden || !strings.Contains(end.URL.Path, "/callback") {
		t.Fatalf("foreign browser at the RefreshAddress: %d %s", end.Status, end.URL)
	}
	if strings.Contains(end.Body, "ERIKA") {
		t.Error("identity data shown to the foreign browser")
	}
}

// TestEIDCardOutcomes: each specimen card ends as it should, with a clear
// message on the method page for the refused ones.
func TestEIDCardOutcomes(t *testing.T) {
	b := harness.Start(t, eidYAML, dbtest.SQLite(t), harness.Options{})
	for _, tc := range []struct {
		card    string
		claims  map[string]string
		absent  []string
		message string
	}{
		{card: "minor", claims: map[string]string{"given_name": "JONAS", "age_over_18": "false"}},
		{card: "partial", claims: map[string]string{"given_name": "ANSGAR", "birthdate": "1955", "age_over_18": "true", "place_verified": "false"}},
		{card: "permit", claims: map[string]string{"given_name": "ANA", "family_name": "MUSTERFRAU"}},
		{card: "abroad", claims: map[string]string{"given_name": "LUKAS", "place_verified": "false"}},
		{card: "expired", message: "nicht gültig"},
		{card: "blocked", message: "gesperrt"},
		{card: "cancel", message: "abgebrochen"},
	} {
		t.Run(tc.card, func(t *testing.T) {
			br := harness.NewBrowser(t)
			_, link := eidActivation(t, b, br)
			end := eidCard(t, br, link, tc.card, eidsim.PIN)
			if tc.message != "" {
				if end.Status != http.StatusUnprocessableEntity || !strings.Contains(end.Body, tc.message) || !strings.Contains(end.Body, `value="eid-sim"`) {
					t.Fatalf("want the method page with %q, got %d %s:\n%s", tc.message, end.Status, end.URL, end.Body)
				}
				return
			}
			got := claims(t, end)
			for k, v := range tc.claims {
				if got[k] != v {
					t.Errorf("%s = %q, want %q (%v)", k, got[k], v, got)
				}
			}
			for _, k := range tc.absent {
				if _, ok := got[k]; ok {
					t.Errorf("%s present: %q", k, got[k])
				}
			}
		})
	}
}

// TestEIDWrongPIN: a wrong PIN stays on the eID client page.
func TestEIDWrongPIN(t *testing.T) {
	b := harness.Start(t, eidYAML, dbtest.SQLite(t), harness.Options{})
	br := harness.NewBrowser(t)
	_, link := eidActivation(t, b, br)
	p := eidCard(t, br, link, "erika", "000000")
	if p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, "PIN ist falsch") || !strings.Contains(p.Body, `role="alert"`) {
		t.Fatalf("wrong PIN: %d\n%s", p.Status, p.Body)
	}
	got := claims(t, br.Post(p.Action(t), url.Values{"card": {"erika"}, "pin": {eidsim.PIN}, "action": {"identify"}}))
	if got["given_name"] != "ERIKA" {
		t.Errorf("after retry: %v", got)
	}
}

// TestEIDUntrustedAnswers: answers of the eID-Server that are unsigned,
// wrongly signed or replayed end the login with a message, never with an
// identity.
func TestEIDUntrustedAnswers(t *testing.T) {
	logs := &syncBuffer{}
	b := harness.Start(t, eidYAML, dbtest.SQLite(t), harness.Options{Log: logs})
	sim := simulator(t, b)
	var (
		mu    sync.Mutex
		saved []byte
	)
	for _, tc := range []struct {
		name    string
		filter  func(action string, answer []byte) []byte
		reason  string // in the log
		message string // on the page
	}{
		{"unsigned", func(action string, a []byte) []byte {
			if !strings.HasSuffix(action, "getResult") {
				return a
			}
			return regexp.MustCompile(`(?s)<soapenv:Header>.*</soapenv:Header>`).ReplaceAll(a, []byte("<soapenv:Header></soapenv:Header>"))
		}, "not signed", "Ausweis-Server"},
		{"tampered", func(action string, a []byte) []byte {
			if !strings.HasSuffix(action, "getResult") {
				return a
			}
			return bytes.Replace(a, []byte("ERIKA"), []byte("EVIL!"), 1)
		}, "signature does not verify", "Ausweis-Server"},
		{"replayed getResult", func(action string, a []byte) []byte {
			if !strings.HasSuffix(action, "getResult") {
				return a
			}
			mu.Lock()
			defer mu.Unlock()
			if saved == nil {
				saved = a // the first noResultYet answer …
				return a
			}
			return saved // … sent again for the next call
		}, "seen before", "bereits abgeholt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim.SetFilter(tc.filter)
			defer sim.SetFilter(nil)
			br := harness.NewBrowser(t)
			act, link := eidActivation(t, b, br)
			tx := strings.Split(strings.TrimPrefix(act.URL.Path, "/providers/eid-sim/activate/"), "/")[0]
			end := eidCard(t, br, link, "erika", eidsim.PIN)
			if end.Status != http.StatusUnprocessableEntity || strings.Contains(end.Body, "EVIL") || !strings.Contains(end.Body, `value="eid-sim"`) {
				t.Fatalf("%d %s:\n%s", end.Status, end.URL, end.Body)
			}
			if !strings.Contains(end.Body, tc.message) {
				t.Errorf("no message %q for the user:\n%s", tc.message, end.Body)
			}
			if !strings.Contains(logs.String(), tc.reason) {
				t.Errorf("log lacks the reason %q", tc.reason)
			}
			evs, err := b.Server.Store.Audit().List(context.Background(), store.AuditFilter{Target: tx, Limit: 50})
			if err != nil {
				t.Fatal(err)
			}
			failed := false
			for _, e := range evs {
				if e.Action == "login.provider" && e.Outcome == store.OutcomeFailure {
					failed = true
				}
			}
			if !failed {
				t.Error("no failed login.provider audit event")
			}
		})
	}
}

// TestEIDServicePSK: with psk: eservice the broker makes the TLS-2 PSK,
// and the login works the same.
func TestEIDServicePSK(t *testing.T) {
	yml := strings.Replace(eidYAML, "      pending_polls: 1\n", "      pending_polls: 1\n      psk: eservice\n", 1)
	b := harness.Start(t, yml, dbtest.SQLite(t), harness.Options{})
	br := harness.NewBrowser(t)
	_, link := eidActivation(t, b, br)
	if got := claims(t, eidCard(t, br, link, "erika", eidsim.PIN)); got["given_name"] != "ERIKA" {
		t.Errorf("claims: %v", got)
	}
}

// TestEIDNoResult: when the eID-Server keeps answering noResultYet, the
// bounded polling ends with a message.
func TestEIDNoResult(t *testing.T) {
	yml := strings.Replace(eidYAML, "      pending_polls: 1\n", "      pending_polls: 20\n      max_polls: 3\n", 1)
	b := harness.Start(t, yml, dbtest.SQLite(t), harness.Options{})
	br := harness.NewBrowser(t)
	_, link := eidActivation(t, b, br)
	end := eidCard(t, br, link, "erika", eidsim.PIN)
	if end.Status != http.StatusUnprocessableEntity || !strings.Contains(end.Body, "nicht rechtzeitig") {
		t.Fatalf("%d:\n%s", end.Status, end.Body)
	}
}

// TestEIDCallbackWithoutResult: the RefreshAddress reached without a
// ResultMajor (the user typed it) ends with a message; the user can start
// over.
func TestEIDCallbackWithoutResult(t *testing.T) {
	b := harness.Start(t, eidYAML, dbtest.SQLite(t), harness.Options{})
	br := harness.NewBrowser(t)
	act, _ := eidActivation(t, b, br)
	tx := strings.Split(strings.TrimPrefix(act.URL.Path, "/providers/eid-sim/activate/"), "/")[0]
	p := br.Get(b.URL + "/login/" + tx + "/callback")
	if p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, "kein Ergebnis") {
		t.Fatalf("%d:\n%s", p.Status, p.Body)
	}
	// The user starts over: a new login, a new eID session.
	_, link := eidActivation(t, b, br)
	if got := claims(t, eidCard(t, br, link, "erika", eidsim.PIN)); got["given_name"] != "ERIKA" {
		t.Errorf("after a retry: %v", got)
	}
}

// TestEIDRenewedCardNotMergedSilently: a renewed card has a new
// RestrictedID. Although name and date of birth match the account of the
// old card, the broker does not merge silently: the new pseudonym logs in
// to an account of its own (linking both is the account owner's explicit
// step, see docs/eid.md).
func TestEIDRenewedCardNotMergedSilently(t *testing.T) {
	b := harness.Start(t, eidYAML, dbtest.SQLite(t), harness.Options{})
	first := harness.NewBrowser(t)
	_, link := eidActivation(t, b, first)
	old := claims(t, eidCard(t, first, link, "erika", eidsim.PIN))
	second := harness.NewBrowser(t)
	_, link = eidActivation(t, b, second)
	renewed := claims(t, eidCard(t, second, link, "erika-renewed", eidsim.PIN))
	if old["given_name"] != renewed["given_name"] || old["birthdate"] != renewed["birthdate"] {
		t.Fatalf("specimen data differ: %v / %v", old, renewed)
	}
	if old["sub"] == renewed["sub"] {
		t.Error("the renewed card was merged into the old card's account without the user's consent")
	}
}

// TestEIDAddRenewedCard: signed in with the old card, the owner adds the
// renewed card at /account/eid-sim/; afterwards the new card logs in to
// the same account. A new card of another person is refused, the flow is
// bound to the session that started it.
func TestEIDAddRenewedCard(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		b := harness.Start(t, eidYAML, dsn, harness.Options{})
		br := harness.NewBrowser(t)
		_, link := eidActivation(t, b, br)
		old := claims(t, eidCard(t, br, link, "erika", eidsim.PIN))

		// The dashboard leads to the card page.
		if dash := br.Get(b.URL + "/account"); !strings.Contains(dash.Body, `href="/account/eid-sim/"`) {
			t.Errorf("the dashboard does not link the ID card page:\n%s", dash.Body)
		}
		acct := br.Get(b.URL + "/account/eid-sim/")
		if acct.Status != http.StatusOK || strings.Count(acct.Body, "<code>") != 1 || !strings.Contains(acct.Body, "diese Anmeldung") {
			t.Fatalf("account page %d:\n%s", acct.Status, acct.Body)
		}
		// Without the form token nothing starts.
		if p := br.Post(b.URL+"/account/eid-sim/add", url.Values{"csrf": {"x"}}); p.Status != http.StatusUnprocessableEntity {
			t.Errorf("add without CSRF: %d", p.Status)
		}
		addCard := func(br *harness.Browser, page *harness.Page, card string) *harness.Page {
			t.Helper()
			act := br.Post(b.URL+"/account/eid-sim/add", url.Values{"csrf": {page.CSRF(t)}})
			m := eidStartRE.FindStringSubmatch(act.Body)
			if act.Status != http.StatusOK || m == nil {
				t.Fatalf("activation for a new card %d:\n%s", act.Status, act.Body)
			}
			return eidCard(t, br, html.UnescapeString(m[1]), card, eidsim.PIN)
		}
		// Another person's card is not added.
		if p := addCard(br, acct, "minor"); p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, "anderen Person") {
			t.Errorf("another person's card: %d\n%s", p.Status, p.Body)
		}
		done := addCard(br, acct, "erika-renewed")
		if done.Status != http.StatusOK || !strings.Contains(done.Body, "ist mit Ihrem Konto verknüpft") || strings.Count(done.Body, "<code>") != 2 {
			t.Fatalf("after adding: %d\n%s", done.Status, done.Body)
		}
		other := harness.NewBrowser(t)
		_, link = eidActivation(t, b, other)
		if renewed := claims(t, eidCard(t, other, link, "erika-renewed", eidsim.PIN)); renewed["sub"] != old["sub"] {
			t.Errorf("the renewed card logs in to another account: %q, want %q", renewed["sub"], old["sub"])
		}
		// A flow started in one session cannot be completed in another.
		act := br.Post(b.URL+"/account/eid-sim/add", url.Values{"csrf": {br.Get(b.URL + "/account/eid-sim/").CSRF(t)}})
		m := eidStartRE.FindStringSubmatch(act.Body)
		if m == nil {
			t.Fatalf("activation: %s", act.Body)
		}
		end := eidCard(t, other, html.UnescapeString(m[1]), "erika", eidsim.PIN)
		if !strings.Contains(end.Body, "in einem anderen Browser") {
			t.Errorf("foreign session at the RefreshAddress: %d\n%s", end.Status, end.Body)
		}
	})
}

// TestEIDAddCardMovesLoneAccount: the renewed card logged in first and got
// an account of its own (nothing merged); its owner, signed in with the old
// card, adds it: the pseudonym moves over, explicitly.
func TestEIDAddCardMovesLoneAccount(t *testing.T) {
	b := harness.Start(t, eidYAML, dbtest.SQLite(t), harness.Options{})
	first := harness.NewBrowser(t)
	_, link := eidActivation(t, b, first)
	lone := claims(t, eidCard(t, first, link, "erika-renewed", eidsim.PIN))
	br := harness.NewBrowser(t)
	_, link = eidActivation(t, b, br)
	old := claims(t, eidCard(t, br, link, "erika", eidsim.PIN))
	if lone["sub"] == old["sub"] {
		t.Fatal("merged silently")
	}
	acct := br.Get(b.URL + "/account/eid-sim/")
	act := br.Post(b.URL+"/account/eid-sim/add", url.Values{"csrf": {acct.CSRF(t)}})
	m := eidStartRE.FindStringSubmatch(act.Body)
	if m == nil {
		t.Fatalf("activation: %s", act.Body)
	}
	done := eidCard(t, br, html.UnescapeString(m[1]), "erika-renewed", eidsim.PIN)
	if !strings.Contains(done.Body, "bisher ein eigenes Konto") {
		t.Fatalf("%d\n%s", done.Status, done.Body)
	}
	again := harness.NewBrowser(t)
	_, link = eidActivation(t, b, again)
	if got := claims(t, eidCard(t, again, link, "erika-renewed", eidsim.PIN)); got["sub"] != old["sub"] {
		t.Errorf("after the move: %q, want %q", got["sub"], old["sub"])
	}
}

// TestDemoOffersEIDSimulator: the demo configuration offers the eID
// simulator, labelled as one, and it builds for the demo's issuer.
func TestDemoOffersEIDSimulator(t *testing.T) {
	cfg, err := config.Demo()
	if err != nil {
		t.Fatal(err)
	}
	var only []config.Provider
	for _, p := range cfg.Providers {
		if p.ID == "eid-sim" {
			only = append(only, p)
			if p.Type != eidsim.Type || p.Name["de"] != "Online-Ausweis (Simulator)" || p.Name["en"] != "Online ID card (simulator)" {
				t.Errorf("demo eID provider: %s %v", p.Type, p.Name)
			}
		}
	}
	if len(only) != 1 {
		t.Fatal("the demo configuration has no eid-sim provider")
	}
	cfg.Providers = only
	provs, err := server.BuildProviders(cfg, harness.Registry(), providers.Deps{Issuer: cfg.Server.Issuer})
	if err != nil {
		t.Fatal(err)
	}
	defer server.CloseProviders(provs)
	if provs[0].Kind() != providers.KindEID || provs[0].MaxLoA() != loa.High {
		t.Errorf("demo eID provider: %s %s", provs[0].Kind(), provs[0].MaxLoA())
	}
}

// TestEIDPSKSealedInTransaction: the login transaction keeps the TLS-2
// PSK only sealed under the activation secret, which it does not keep:
// the stored state does not hold the key the TC token hands out.
func TestEIDPSKSealedInTransaction(t *testing.T) {
	for _, mode := range []string{"server", "eservice"} {
		t.Run(mode, func(t *testing.T) {
			yml := strings.Replace(eidYAML, "      pending_polls: 1\n", "      pending_polls: 1\n      psk: "+mode+"\n", 1)
			b := harness.Start(t, yml, dbtest.SQLite(t), harness.Options{})
			br := harness.NewBrowser(t)
			act, link := eidActivation(t, b, br)
			tx := strings.Split(strings.TrimPrefix(act.URL.Path, "/providers/eid-sim/activate/"), "/")[0]
			u, _ := url.Parse(link)
			tok := harness.NewBrowser(t).Get(u.Query().Get("tcTokenURL"))
			m := regexp.MustCompile(`<PSK>([0-9A-Fa-f]+)</PSK>`).FindStringSubmatch(tok.Body)
			if tok.Status != http.StatusOK || m == nil {
				t.Fatalf("TC token %d:\n%s", tok.Status, tok.Body)
			}
			got, err := b.Server.Store.Transactions().Get(t.Context(), tx)
			if err != nil {
				t.Fatal(err)
			}
			// The transaction keeps the provider's bytes as a JSON string
			// (base64); older rows kept the object itself.
			raw := []byte(got.ProviderState)
			var inner []byte
			if json.Unmarshal(got.ProviderState, &inner) == nil {
				raw = inner
			}
			state := strings.ToLower(string(raw))
			if strings.Contains(state, strings.ToLower(m[1])) || !strings.Contains(state, `"psk_sealed"`) {
				t.Fatalf("provider state holds the PSK in clear or no sealed PSK: %s", got.ProviderState)
			}
		})
	}
}
