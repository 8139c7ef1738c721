package conformance_test

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/beevik/etree"
	"github.com/chromedp/chromedp"
	crewsaml "github.com/crewjam/saml"

	"github.com/trustbroker/trustbroker/adapters/saml"
	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/conformance/browsertest"
	"github.com/trustbroker/trustbroker/conformance/dbtest"
	"github.com/trustbroker/trustbroker/conformance/harness"
)

const (
	initEntityID = "https://portal.example/saml"
	initACS      = "http://localhost/portal/acs"
)

// idpInitYAML adds an SP that allows IdP-initiated login (two ACS URLs,
// the first the default) to samlYAML, whose samlsp does not.
const idpInitYAML = samlYAML + `
  - id: portal
    name: {de: Portal, en: Portal}
    protocol: saml
    accepted_credentials: [eid]
    claims:
      - {name: given_name, required: true, purpose: {en: greeting}}
    saml:
      entity_id: ` + initEntityID + `
      acs_urls: [` + initACS + `, http://localhost/portal/acs2]
      idp_initiated: true
`

var formActionRE = regexp.MustCompile(`<form method="post" action="([^"]+)" id="SAMLResponseForm"`)

func idpInitURL(b *harness.Broker, q url.Values) string {
	return b.URL + saml.PathIDPInitiated + "?" + q.Encode()
}

// TestSAMLIdPInitiated: an SP registered with idp_initiated gets an
// unsolicited signed Response (no InResponseTo) at its default ACS from
// its metadata, through the login flow; RelayState only when relative or
// on the SP's origin; an SP without idp_initiated and an unknown SP are
// refused on the broker's page, audited, with no login and no Response.
func TestSAMLIdPInitiated(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		c := &clock{t: nowUTC()}
		b := harness.Start(t, idpInitYAML, dsn, harness.Options{Now: c.now})
		portal := newSAMLSP(t, b, initACS)
		portal.EntityID = initEntityID
		portal.AllowIDPInitiated = true

		t.Run("allowed SP gets an unsolicited assertion", func(t *testing.T) {
			br := harness.NewBrowser(t)
			page := br.Get(idpInitURL(b, url.Values{"sp": {initEntityID}, "RelayState": {"/start?tab=1"}}))
			if !strings.HasPrefix(page.URL.Path, "/login/") {
				t.Fatalf("no login: %d %s", page.Status, page.URL)
			}
			page = samlLogin(t, br, page)
			m := formActionRE.FindStringSubmatch(page.Body)
			if m == nil || html.UnescapeString(m[1]) != initACS {
				t.Fatalf("Response not posted to the default ACS %s: %v\n%s", initACS, m, page.Body)
			}
			if !strings.Contains(page.Body, `name="RelayState" value="/start?tab=1"`) {
				t.Errorf("RelayState not passed through:\n%s", page.Body)
			}
			doc := etree.NewDocument()
			if err := doc.ReadFromBytes(decodeResponse(t, page)); err != nil {
				t.Fatal(err)
			}
			if el := doc.FindElement("//[@InResponseTo]"); el != nil {
				t.Errorf("unsolicited Response carries InResponseTo on %s", el.Tag)
			}
			if !responseSigned(t, page) {
				t.Error("response not signed")
			}
			// An SP that does not accept unsolicited Responses refuses it:
			// the check below can fail.
			strict := *portal
			strict.AllowIDPInitiated = false
			if _, err := acsParse(t, &strict, page, "id-never-sent"); err == nil {
				t.Error("an SP without AllowIDPInitiated accepted the Response")
			}
			a, err := acsParse(t, portal, page, "")
			if err != nil {
				t.Fatalf("SP refused the response: %v", samlErr(err))
			}
			if a.Signature == nil {
				t.Error("assertion not signed")
			}
			if a.Subject == nil || a.Subject.NameID == nil || a.Subject.NameID.Format != string(crewsaml.PersistentNameIDFormat) || a.Subject.NameID.Value == "" {
				t.Errorf("NameID: %+v", a.Subject)
			}
			if got := attrs(a); got["given_name"] != "Erika" || len(got) != 1 {
				t.Errorf("attributes %v: want given_name only", got)
			}
			if len(a.AuthnStatements) != 1 || a.AuthnStatements[0].SessionIndex == "" {
				t.Errorf("AuthnStatement: %+v", a.AuthnStatements)
			}

			// Within the SSO session it is answered at once, and the same
			// pairwise subject; RelayState on the SP's origin passes.
			again := br.Get(idpInitURL(b, url.Values{"sp": {initEntityID}, "RelayState": {"http://localhost/portal/home"}}))
			if !strings.Contains(again.Body, `name="RelayState" value="http://localhost/portal/home"`) {
				t.Errorf("RelayState on the SP's origin not passed:\n%s", again.Body)
			}
			a2, err := acsParse(t, portal, again, "")
			if err != nil {
				t.Fatalf("SSO answer: %v", samlErr(err))
			}
			if a2.Subject.NameID.Value != a.Subject.NameID.Value {
				t.Error("persistent NameID changed")
			}
		})

		t.Run("the ACS never comes from the request", func(t *testing.T) {
			br := harness.NewBrowser(t)
			q := url.Values{"sp": {initEntityID}, "AssertionConsumerServiceURL": {"http://localhost/evil/acs"},
				"acs": {"http://localhost/portal/acs2"}, "AssertionConsumerServiceIndex": {"1"}, "Destination": {"http://localhost/evil/acs"}}
			page := samlLogin(t, br, br.Get(idpInitURL(b, q)))
			m := formActionRE.FindStringSubmatch(page.Body)
			if m == nil || html.UnescapeString(m[1]) != initACS {
				t.Fatalf("Response posted to %v, want %s", m, initACS)
			}
			if strings.Contains(decodeResponseString(t, page), "evil") {
				t.Error("the request's ACS entered the Response")
			}
		})

		refused := func(t *testing.T, q url.Values, status int) {
			t.Helper()
			br := harness.NewBrowser(t)
			page := br.Get(idpInitURL(b, q))
			if page.Status != status || strings.HasPrefix(page.URL.Path, "/login/") || samlResponseRE.MatchString(page.Body) ||
				!strings.Contains(page.Body, "cannot be opened from here") && !strings.Contains(page.Body, "nicht von hier aus") {
				t.Errorf("%v: %d %s\n%s", q, page.Status, page.URL, page.Body)
			}
		}
		t.Run("refusals", func(t *testing.T) {
			refused(t, url.Values{"sp": {spEntityID}}, http.StatusForbidden)                      // registered, idp_initiated off
			refused(t, url.Values{"sp": {"https://unknown.example/saml"}}, http.StatusBadRequest) // unknown
			refused(t, url.Values{}, http.StatusBadRequest)                                       // no SP
			refused(t, url.Values{"sp": {initEntityID, spEntityID}}, http.StatusBadRequest)       // repeated
			for _, relay := range []string{"https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)",
				"http://localhost:1/portal", "/" + strings.Repeat("x", 80)} {
				refused(t, url.Values{"sp": {initEntityID}, "RelayState": {relay}}, http.StatusBadRequest)
			}
			evs, err := b.Server.Store.Audit().List(context.Background(), store.AuditFilter{Action: "saml.idp_initiated"})
			if err != nil {
				t.Fatal(err)
			}
			denied := map[string]int{}
			for _, ev := range evs {
				if ev.Outcome == store.OutcomeDenied {
					denied[ev.Target]++
				}
			}
			if denied[spEntityID] != 1 || denied["https://unknown.example/saml"] != 1 || denied[initEntityID] < 7 {
				t.Errorf("audited refusals: %v", denied)
			}
		})
	})
}

// TestSAMLIdPInitiatedDeclined: consent declined in an IdP-initiated
// login is shown on the broker's page; the SP, which asked for nothing,
// gets no Response.
func TestSAMLIdPInitiatedDeclined(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		c := &clock{t: nowUTC()}
		b := harness.Start(t, idpInitYAML, dsn, harness.Options{Now: c.now, Consent: "ask"})
		br := harness.NewBrowser(t)
		page := samlLogin(t, br, br.Get(idpInitURL(b, url.Values{"sp": {initEntityID}})))
		if !isConsentPage(page) {
			t.Fatalf("no consent page: %d %s", page.Status, page.URL)
		}
		page = answer(t, br, page, "decline")
		if page.Status != http.StatusForbidden || samlResponseRE.MatchString(page.Body) || strings.Contains(page.Body, initACS) ||
			!strings.Contains(page.Body, "not allowed") && !strings.Contains(page.Body, "nicht erlaubt") {
			t.Errorf("declined: %d %s\n%s", page.Status, page.URL, page.Body)
		}
	})
}

// TestSAMLIdPInitiatedRefusalPage: the refusal in headless Chromium
// (German browser): the broker's error page with the message, no serious
// axe-core violation; a screenshot is kept.
func TestSAMLIdPInitiatedRefusalPage(t *testing.T) {
	b := harness.Start(t, idpInitYAML, dbtest.SQLite(t), harness.Options{Hostname: "localhost"})
	ctx := browsertest.New(t)
	axe := browsertest.NewAxe(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(idpInitURL(b, url.Values{"sp": {spEntityID}})), chromedp.WaitVisible("main")); err != nil {
		t.Fatal(err)
	}
	if got := text(t, ctx, "main"); !strings.Contains(got, "Dieser Dienst kann nicht von hier aus geöffnet werden") {
		t.Errorf("refusal page:\n%s", got)
	}
	axe.Check(t, ctx, "idp-initiated refused")
	browsertest.Screenshot(t, ctx, "refused")
}

func decodeResponseString(t *testing.T, page *harness.Page) string {
	t.Helper()
	return string(decodeResponse(t, page))
}
