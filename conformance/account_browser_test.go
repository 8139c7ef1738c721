package conformance_test

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/trustbroker/trustbroker/conformance/browsertest"
	"github.com/trustbroker/trustbroker/conformance/dbtest"
	"github.com/trustbroker/trustbroker/conformance/harness"
)

// walkAccount drives headless Chromium through the consent page, the
// dashboard, a withdrawal, the deletion confirmation (also with its error)
// and the goodbye page, in German and English, calling at on each page.
// Every transition waits for an element of the next page only.
func walkAccount(t *testing.T, ctx context.Context, at func(name string)) {
	t.Helper()
	b, _ := startWith(t, dbtest.SQLite(t), harness.Options{Hostname: "localhost", Consent: "ask"})
	base := b.URL
	do := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	do("login to the consent page",
		chromedp.Navigate(base+"/demo"),
		chromedp.WaitVisible(`form[action="/demo/login"] button`),
		chromedp.Click(`form[action="/demo/login"] button`),
		chromedp.WaitVisible(`button[value="eid-fake"]`),
		chromedp.Click(`button[value="eid-fake"]`),
		chromedp.WaitVisible(`html[lang="de"] form.consent`),
	)
	at("consent-de")
	consentPath, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.pathname`))
	if err != nil {
		t.Fatal(err)
	}
	do("consent page in English", chromedp.Navigate(base+consentPath+"?lang=en"), chromedp.WaitVisible(`html[lang="en"] form.consent`))
	at("consent-en")
	do("approve", chromedp.Click(`button[value="approve"]`), chromedp.WaitNotPresent(`form.consent`), chromedp.WaitVisible(`table.claims`))

	for _, lang := range []string{"de", "en"} {
		do("dashboard "+lang, chromedp.Navigate(base+"/account?lang="+lang), chromedp.WaitVisible(`html[lang="`+lang+`"] a.delete-link`))
		at("account-" + lang)
	}
	do("deletion page from the dashboard", chromedp.Click(`a.delete-link`), chromedp.WaitVisible(`html[lang="en"] form.delete-account`))
	if page := text(t, ctx, "main"); !strings.Contains(page, "Delete your account") || !strings.Contains(page, "Demo") {
		t.Errorf("English deletion page:\n%s", page)
	}
	at("delete-en")
	do("deletion page in German", chromedp.Navigate(base+"/account/delete?lang=de"), chromedp.WaitVisible(`html[lang="de"] form.delete-account`))
	if page := text(t, ctx, "main"); !strings.Contains(page, "Konto löschen") || !strings.Contains(page, "Demo") {
		t.Errorf("German deletion page:\n%s", page)
	}
	at("delete-de")
	// Cancel goes back to the dashboard; withdraw there (the notice).
	do("cancel", chromedp.Click(`form.delete-account a.secondary`), chromedp.WaitNotPresent(`form.delete-account`), chromedp.WaitVisible(`a.delete-link`))
	do("withdraw", chromedp.Navigate(base+"/account?lang=en"), chromedp.WaitVisible(`a.delete-link`),
		chromedp.Click(`form[action^="/account/withdraw"] button`), chromedp.WaitVisible(`p.notice`))
	at("account-withdrawn-en")
	// Submitted without the tick (the browser's own check switched off):
	// the page says what is missing.
	do("unconfirmed deletion", chromedp.Navigate(base+"/account/delete?lang=de"), chromedp.WaitVisible(`form.delete-account`),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("confirm").required = false`),
		chromedp.Click(`button.danger`), chromedp.WaitVisible(`#delete-error`))
	at("delete-error-de")
	do("confirmed deletion", chromedp.Click(`label[for="confirm"]`), chromedp.Click(`button.danger`),
		chromedp.WaitNotPresent(`form.delete-account`), chromedp.WaitVisible(`p.lead[role="status"]`))
	if page := text(t, ctx, "main"); !strings.Contains(page, "Ihr Konto wurde gelöscht") {
		t.Errorf("German goodbye page:\n%s", page)
	}
	at("deleted-de")
	do("goodbye page in English", chromedp.Navigate(base+"/account/deleted?lang=en"), chromedp.WaitVisible(`html[lang="en"] p.lead[role="status"]`))
	at("deleted-en")
	do("dashboard after deletion", chromedp.Navigate(base+"/account?lang=en"), chromedp.WaitVisible(`html[lang="en"] main`))
	if page := text(t, ctx, "main"); !strings.Contains(page, "Please log in") {
		t.Errorf("dashboard after deletion:\n%s", page)
	}
}

// TestBrowserAccountDeletion deletes the account in headless Chromium and
// takes screenshots of every page on the way.
func TestBrowserAccountDeletion(t *testing.T) {
	ctx := browsertest.New(t)
	walkAccount(t, ctx, func(name string) { browsertest.Screenshot(t, ctx, name) })
}

// TestBrowserAccessibility runs axe-core on the consent page and every
// account page: no violation of impact serious or critical.
func TestBrowserAccessibility(t *testing.T) {
	axe := browsertest.NewAxe(t)
	ctx := browsertest.New(t)
	walkAccount(t, ctx, func(name string) { axe.Check(t, ctx, name) })
}
