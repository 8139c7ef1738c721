package conformance_test

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/trustbroker/trustbroker/conformance/browsertest"
	"github.com/trustbroker/trustbroker/conformance/dbtest"
	"github.com/trustbroker/trustbroker/conformance/harness"
)

// TestBrowserLogin drives the demo relying party through the method page in
// headless Chromium, choosing the method with the keyboard only.
func TestBrowserLogin(t *testing.T) {
	b, _ := startWith(t, dbtest.SQLite(t), harness.Options{Hostname: "localhost"})
	ctx := browsertest.New(t)
	base := b.URL
	err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/demo"),
		chromedp.WaitVisible(`form[action="/demo/login"] button`),
		chromedp.Click(`form[action="/demo/login"] button`),
		chromedp.WaitVisible(`button.method`),
	)
	if err != nil {
		t.Fatal(err)
	}
	methodText := text(t, ctx, `main`)
	browsertest.Screenshot(t, ctx, "method-de")
	for _, want := range []string{"Anmeldeverfahren wählen", "Test-Ausweis", "Demo-Dienst", "substanziell"} {
		if !strings.Contains(methodText, want) {
			t.Errorf("method page lacks %q:\n%s", want, methodText)
		}
	}
	// Keyboard only: Tab from the top until the first method has focus.
	activeValue := ""
	for i := 0; i < 8 && activeValue != "eid-fake"; i++ {
		if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Tab)); err != nil {
			t.Fatal(err)
		}
		if activeValue, err = chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement.value || ""`)); err != nil {
			t.Fatal(err)
		}
	}
	if activeValue != "eid-fake" {
		t.Fatalf("the first method is not reachable with the Tab key")
	}
	if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Enter), chromedp.WaitVisible(`table.claims`)); err != nil {
		t.Fatal(err)
	}
	result := text(t, ctx, `table.claims`)
	browsertest.Screenshot(t, ctx, "result-de")
	if !strings.Contains(result, "Erika") || !strings.Contains(result, "http://eidas.europa.eu/LoA/high") {
		t.Errorf("result page:\n%s", result)
	}
	// The English page through the language switch.
	err = chromedp.Do(ctx,
		chromedp.Navigate(base+"/demo"),
		chromedp.Click(`a.lang`),
		chromedp.WaitVisible(`html[lang="en"] h1`),
	)
	if err != nil {
		t.Fatal(err)
	}
	if heading := text(t, ctx, `h1`); heading != "Demo service" {
		t.Errorf("English heading %q", heading)
	}
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(sel))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}
