package conformance_test

import (
	"os"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/trustbroker/trustbroker/conformance/browsertest"
	"github.com/trustbroker/trustbroker/conformance/dbtest"
	"github.com/trustbroker/trustbroker/conformance/harness"
)

// TestBrowserEIDAS drives the EU eID login in headless Chromium for
// persons of two member states: demo relying party → method page → the
// auto-posting AuthnRequest page → the simulated eIDAS node's page (person
// and behaviour) → the node's auto-posting answer → the ACS relay → consent
// → the relying party shows the claims and acr
// http://eidas.europa.eu/LoA/high. The node's page is checked with axe and
// photographed in German and English.
func TestBrowserEIDAS(t *testing.T) {
	b := harness.Start(t, eidasYAML, dbtest.SQLite(t), harness.Options{Hostname: "localhost", Consent: "ask"})
	for _, c := range []struct{ person, given, family string }{
		{"at-max", "Max", "Mustermann"},
		{"es-carmen", "Carmen", "Española Española"},
	} {
		t.Run(c.person, func(t *testing.T) {
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
			err := chromedp.Do(ctx,
				chromedp.Navigate(b.URL+"/demo"),
				chromedp.WaitVisible(`form[action="/demo/login"] button`),
				chromedp.Click(`form[action="/demo/login"] button`),
				chromedp.WaitVisible(`button[value="eu-sim"]`),
				chromedp.Click(`button[value="eu-sim"]`),
				// form_post.js carries the AuthnRequest to the node.
				chromedp.WaitVisible(`html[lang="de"] #sim-login`),
			)
			if err != nil {
				t.Fatal(err)
			}
			page := text(t, ctx, "main")
			for _, want := range []string{"Anmeldung im Heimatland", "http://eidas.europa.eu/LoA/high", "PersonIdentifier", "Max Mustermann – Österreich", "Niedrigeres Vertrauensniveau"} {
				if !strings.Contains(page, want) {
					t.Errorf("node page lacks %q:\n%s", want, page)
				}
			}
			check("node-de")
			pick, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.origin + location.pathname`))
			if err != nil {
				t.Fatal(err)
			}
			if err := chromedp.Do(ctx, chromedp.Navigate(pick+"?lang=en"), chromedp.WaitVisible(`html[lang="en"] #sim-login`)); err != nil {
				t.Fatal(err)
			}
			if page := text(t, ctx, "main"); !strings.Contains(page, "log in in your home country") || !strings.Contains(page, "Specimen person") {
				t.Errorf("English node page:\n%s", page)
			}
			check("node-en")
			err = chromedp.Do(ctx,
				chromedp.Click(`#person-`+c.person),
				chromedp.Click(`#behaviour-normal`),
				chromedp.Click(`#sim-login`),
				chromedp.WaitVisible(`form.consent`),
			)
			if err != nil {
				t.Fatal(err)
			}
			if page := text(t, ctx, "main"); !strings.Contains(page, c.given) || !strings.Contains(page, c.family) {
				t.Errorf("consent page:\n%s", page)
			}
			check("consent")
			if err := chromedp.Do(ctx, chromedp.Click(`button[value="approve"]`), chromedp.WaitNotPresent(`form.consent`), chromedp.WaitVisible(`table.claims`)); err != nil {
				t.Fatal(err)
			}
			result := text(t, ctx, "table.claims")
			for _, want := range []string{"http://eidas.europa.eu/LoA/high", c.given, c.family, "mfa"} {
				if !strings.Contains(result, want) {
					t.Errorf("result lacks %q:\n%s", want, result)
				}
			}
			check("result")
		})
	}
}
