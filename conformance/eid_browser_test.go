package conformance_test

import (
	"os"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/trustbroker/trustbroker/conformance/browsertest"
	"github.com/trustbroker/trustbroker/conformance/dbtest"
	"github.com/trustbroker/trustbroker/conformance/harness"
	"github.com/trustbroker/trustbroker/providers/eid/eidsim"
)

// TestBrowserEID drives the German eID login in headless Chromium: demo
// relying party → method page → activation page (which probes the eID
// client with ?Status) → the simulator's eID client page (specimen card,
// PIN) → RefreshAddress → consent → the relying party shows the claims and
// acr http://eidas.europa.eu/LoA/high. Both pages are checked with axe and
// photographed in German and English.
func TestBrowserEID(t *testing.T) {
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
	b := harness.Start(t, eidYAML, dbtest.SQLite(t), harness.Options{Hostname: "localhost", Consent: "ask"})
	err := chromedp.Do(ctx,
		chromedp.Navigate(b.URL+"/demo"),
		chromedp.WaitVisible(`form[action="/demo/login"] button`),
		chromedp.Click(`form[action="/demo/login"] button`),
		chromedp.WaitVisible(`button[value="eid-sim"]`),
		chromedp.Click(`button[value="eid-sim"]`),
		chromedp.WaitVisible(`#eid-start`),
		chromedp.WaitVisible(`#eid-status[class]`),
	)
	if err != nil {
		t.Fatal(err)
	}
	// The ?Status probe reached the simulated client.
	if cls, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("eid-status").className`)); cls != "eid-found" {
		t.Errorf("the ?Status probe did not find the client: %q", cls)
	}
	page := text(t, ctx, "main")
	for _, want := range []string{"Mit dem Online-Ausweis anmelden", "Simulator", "Geburtsdatum", "Bestätigung des Mindestalters", "auf diesem Gerät ist bereit"} {
		if !strings.Contains(page, want) {
			t.Errorf("activation page lacks %q:\n%s", want, page)
		}
	}
	check("activation-de")
	activation, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href`))
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(activation+"?lang=en"), chromedp.WaitVisible(`html[lang="en"] #eid-start`)); err != nil {
		t.Fatal(err)
	}
	if page := text(t, ctx, "main"); !strings.Contains(page, "Log in with your online ID") || !strings.Contains(page, "Date of birth") {
		t.Errorf("English activation page:\n%s", page)
	}
	check("activation-en")

	// The eID client stands in: its page shows the requested data, in
	// the browser's language (German) and in English.
	if err := chromedp.Do(ctx, chromedp.Click(`#eid-start`), chromedp.WaitVisible(`html[lang="de"] input[name="pin"]`)); err != nil {
		t.Fatal(err)
	}
	page = text(t, ctx, "main")
	for _, want := range []string{"Angefragte Daten", "Geburtsdatum", "Altersbestätigung (mindestens 18 Jahre)", "Erika Mustermann", "Anmeldung beim Demo-Dienst", "123456"} {
		if !strings.Contains(page, want) {
			t.Errorf("eID client page lacks %q:\n%s", want, page)
		}
	}
	check("client-de")
	client, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.origin + location.pathname`))
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(client+"?lang=en"), chromedp.WaitVisible(`html[lang="en"] input[name="pin"]`)); err != nil {
		t.Fatal(err)
	}
	if page := text(t, ctx, "main"); !strings.Contains(page, "Requested data") || !strings.Contains(page, "Specimen card") {
		t.Errorf("English eID client page:\n%s", page)
	}
	check("client-en")
	err = chromedp.Do(ctx,
		chromedp.Click(`#card-erika`),
		chromedp.SendKeys(`#pin`, eidsim.PIN),
		chromedp.Click(`button[value="identify"]`),
		chromedp.WaitVisible(`form.consent`),
	)
	if err != nil {
		t.Fatal(err)
	}
	if page := text(t, ctx, "main"); !strings.Contains(page, "ERIKA") || !strings.Contains(page, "MUSTERMANN") {
		t.Errorf("consent page:\n%s", page)
	}
	check("consent-de")
	if err := chromedp.Do(ctx, chromedp.Click(`button[value="approve"]`), chromedp.WaitNotPresent(`form.consent`), chromedp.WaitVisible(`table.claims`)); err != nil {
		t.Fatal(err)
	}
	result := text(t, ctx, "table.claims")
	for _, want := range []string{"http://eidas.europa.eu/LoA/high", "ERIKA", "MUSTERMANN", "sc pin mfa"} {
		if !strings.Contains(result, want) {
			t.Errorf("result lacks %q:\n%s", want, result)
		}
	}
	check("result")

	// The account's eID page lists the card and offers to add a renewed one.
	if err := chromedp.Do(ctx, chromedp.Navigate(b.URL+"/account/eid-sim/"), chromedp.WaitVisible(`table.eid-cards`)); err != nil {
		t.Fatal(err)
	}
	if page := text(t, ctx, "main"); !strings.Contains(page, "Neuen Ausweis hinzufügen") || !strings.Contains(page, "diese Anmeldung") {
		t.Errorf("account eID page:\n%s", page)
	}
	check("account-de")
}
