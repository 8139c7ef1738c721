package conformance_test

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/trustbroker/trustbroker/conformance/browsertest"
	"github.com/trustbroker/trustbroker/conformance/dbtest"
	"github.com/trustbroker/trustbroker/conformance/harness"
)

// TestBrowserConsent drives the demo relying party through the consent page
// in headless Chromium (German and English), leaves the optional
// attribute out, checks the result, then shows the dashboard in both
// languages and withdraws the consent there.
func TestBrowserConsent(t *testing.T) {
	b, _ := startWith(t, dbtest.SQLite(t), harness.Options{Hostname: "localhost", Consent: "ask"})
	ctx := browsertest.New(t)
	base := b.URL
	err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/demo"),
		chromedp.WaitVisible(`form[action="/demo/login"] button`),
		chromedp.Click(`form[action="/demo/login"] button`),
		chromedp.WaitVisible(`button[value="eid-fake"]`),
		chromedp.Click(`button[value="eid-fake"]`),
		chromedp.WaitVisible(`form.consent`),
	)
	if err != nil {
		t.Fatal(err)
	}
	page := text(t, ctx, "main")
	for _, want := range []string{"Daten weitergeben", "Demo-Dienst", "Erika", "Mustermann", "erforderlich", "freiwillig"} {
		if !strings.Contains(page, want) {
			t.Errorf("German consent page lacks %q:\n%s", want, page)
		}
	}
	browsertest.Screenshot(t, ctx, "consent-de")
	consentURL, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.pathname`))
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(base+consentURL+"?lang=en"), chromedp.WaitVisible(`html[lang="en"] form.consent`)); err != nil {
		t.Fatal(err)
	}
	if page := text(t, ctx, "main"); !strings.Contains(page, "Share your data") || !strings.Contains(page, "optional") {
		t.Errorf("English consent page:\n%s", page)
	}
	browsertest.Screenshot(t, ctx, "consent-en")
	// The optional family_name stays unticked (nothing is preselected).
	checked, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector('input[name=attr][value=family_name]').checked`))
	if err != nil || checked {
		t.Fatalf("optional attribute preselected: %v %v", checked, err)
	}
	// The consent page has a table.claims too: wait until it is gone.
	if err := chromedp.Do(ctx, chromedp.Click(`button[value="approve"]`), chromedp.WaitNotPresent(`form.consent`), chromedp.WaitVisible(`table.claims`)); err != nil {
		t.Fatal(err)
	}
	result := text(t, ctx, `table.claims`)
	if !strings.Contains(result, "Erika") || strings.Contains(result, "Mustermann") {
		t.Errorf("result page (family_name must be absent):\n%s", result)
	}

	for _, lang := range []string{"de", "en"} {
		if err := chromedp.Do(ctx, chromedp.Navigate(base+"/account?lang="+lang), chromedp.WaitVisible(`html[lang="`+lang+`"] h1`)); err != nil {
			t.Fatal(err)
		}
		page := text(t, ctx, "main")
		if !strings.Contains(page, "Demo") || !strings.Contains(page, "OIDC") {
			t.Errorf("%s dashboard:\n%s", lang, page)
		}
		browsertest.Screenshot(t, ctx, "account-"+lang)
	}
	if err := chromedp.Do(ctx, chromedp.Click(`form[action^="/account/withdraw"] button`), chromedp.WaitVisible(`p.notice`)); err != nil {
		t.Fatal(err)
	}
	if page := text(t, ctx, "main"); !strings.Contains(page, "has been withdrawn") || !strings.Contains(page, "no active consents") {
		t.Errorf("after withdrawal:\n%s", page)
	}
	browsertest.Screenshot(t, ctx, "account-withdrawn-en")
}
