// Package browsertest starts headless Chromium for end-to-end tests through
// chromedp. TRUSTBROKER_TEST_CHROMIUM names the binary; unset, browser tests
// skip with a message; set but unusable, they fail (CI sets it).
package browsertest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ChromiumEnv names the variable holding the Chromium binary.
const ChromiumEnv = "TRUSTBROKER_TEST_CHROMIUM"

// ScreenshotEnv, when set, names a directory screenshots are copied to.
const ScreenshotEnv = "TRUSTBROKER_SCREENSHOTS"

// New returns a browser tab context that lives until the test ends.
//
// Start the broker first, then call New: cleanups run in reverse order,
// so Chromium is gone when the broker shuts down. The other way round the
// broker's graceful shutdown waits 5 s for Chromium's preconnected
// sockets that never carried a request (net/http counts a new connection
// idle only after 5 s).
func New(t *testing.T) context.Context {
	t.Helper()
	bin := os.Getenv(ChromiumEnv)
	if bin == "" {
		t.Skipf("browser tests skipped: set %s to the Chromium binary, e.g. /usr/bin/chromium", ChromiumEnv)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s=%s: %v", ChromiumEnv, bin, err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND , EXCLUDE localhost"),
		chromedp.Flag("lang", "de-DE"),
		chromedp.Flag("accept-lang", "de-DE,de"),
		chromedp.WindowSize(1000, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() {
		cancelTimeout()
		cancelTab()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium %s: %v", bin, err)
	}
	return ctx
}

// Screenshot writes a full-page PNG to the test's temp dir (and to
// $TRUSTBROKER_SCREENSHOTS when set) and returns its path.
func Screenshot(t *testing.T, ctx context.Context, name string) string {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	file := strings.ReplaceAll(t.Name(), "/", "_") + "_" + name + ".png"
	p := filepath.Join(t.TempDir(), file)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	if dir := os.Getenv(ScreenshotEnv); dir != "" {
		if err := os.WriteFile(filepath.Join(dir, file), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// Do runs actions in the tab within timeout; when they fail, the test
// fails naming what was done, the error, and where the browser is: its
// URL and the text of the page (what a screenshot would show).
func Do(t *testing.T, ctx context.Context, timeout time.Duration, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		st, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + " | " + document.body.innerText`))
		t.Fatalf("%s: %v (at %s)", what, err, st)
	}
}

// Location returns the URL the tab shows.
func Location(t *testing.T, ctx context.Context) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href`))
	if err != nil {
		t.Fatal(err)
	}
	return s
}
