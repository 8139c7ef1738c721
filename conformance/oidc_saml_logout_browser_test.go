package conformance_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"

	"github.com/trustbroker/trustbroker/adapters/oidc"
	"github.com/trustbroker/trustbroker/conformance/browsertest"
	"github.com/trustbroker/trustbroker/conformance/dbtest"
	"github.com/trustbroker/trustbroker/conformance/harness"
)

// TestBrowserOIDCLogoutSingleLogout: on SQLite and PostgreSQL, in headless
// Chromium logged in at the SAML SP and at the OIDC client, the citizen
// logs out at the client (end_session_endpoint with id_token_hint,
// post_logout_redirect_uri, state and ui_locales), in German and then in
// English. The browser itself carries the SAML single logout: the SP gets
// one signed LogoutRequest naming the session as its assertion did, and
// its LogoutResponse brings the browser back to the front-channel logout
// page in the requested language, which loads the client's frame with iss
// and sid and then continues to the post_logout_redirect_uri with state.
// Afterwards the client's next authorization request asks for a login.
// Screenshots of the front-channel page (held while the frame loads) and
// of the login page asked for afterwards.
func TestBrowserOIDCLogoutSingleLogout(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		// The broker first: cleanups run in reverse, so Chromium is gone
		// before the broker shuts down. Otherwise the graceful shutdown
		// waits about 5 s for Chromium's preconnected, never used
		// sockets (net/http counts a new connection idle only after 5 s).
		b, sp, rp := startOIDCLogoutSLO(t, dsn, harness.Options{Hostname: "localhost"})
		ctx := browsertest.New(t)
		do := func(t *testing.T, what string, actions ...chromedp.Action[chromedp.Void]) {
			t.Helper()
			browsertest.Do(t, ctx, 20*time.Second, what, actions...)
		}
		href := func(t *testing.T) *url.URL {
			t.Helper()
			u, err := url.Parse(browsertest.Location(t, ctx))
			if err != nil {
				t.Fatal(err)
			}
			return u
		}
		for _, lang := range []string{"de", "en"} {
			t.Run(lang, func(t *testing.T) {
				n0, a, r, raw, sid := browserLoginSAMLAndOIDC(t, ctx, b, sp, rp, "fcslo")

				// The client holds its front-channel page until released,
				// so the logout page stays for the checks and the
				// screenshot.
				release := holdFrontchannel(t, rp)
				state := "bye " + lang + "&x"
				q := url.Values{"id_token_hint": {raw}, "post_logout_redirect_uri": {rp.url + "/bye?app=o"},
					"state": {state}, "ui_locales": {lang}}
				do(t, "log out at the client", navigateNoWait(b.URL+oidc.PathLogout+"?"+q.Encode()),
					chromedp.WaitVisible(`html[lang="`+lang+`"] a#continue`))
				if u := href(t); u.Host != strings.TrimPrefix(b.URL, "http://") || u.Path != oidc.PathFrontchannelLogout || u.Query().Get("lang") != lang {
					t.Errorf("front-channel page at %s%s (lang %q)", u.Host, u.Path, u.Query().Get("lang"))
				}
				browsertest.Screenshot(t, ctx, "frontchannel-"+lang)
				if h := text(t, ctx, "h1"); h != map[string]string{"de": "Sie werden abgemeldet", "en": "Logging you out"}[lang] {
					t.Errorf("front-channel page heading %q", h)
				}
				if s := text(t, ctx, "ul.frontchannel-services"); s != map[string]string{"de": "Bürgerportal", "en": "Citizen portal"}[lang] {
					t.Errorf("front-channel page lists %q", s)
				}
				rp.wantFrame(t, b.URL, sid)
				// By now the browser has been to the SP and back: the one
				// LogoutRequest, sent after the session had ended.
				sp.only(t, b, n0, a, "SSO session ended")
				if ss, err := b.Server.Store.Sessions().ListByAccount(context.Background(), accountID(t, b)); err != nil || len(ss) != 0 {
					t.Errorf("sessions after the logout: %v %v", ss, err)
				}

				release()
				do(t, "continue to the client", chromedp.WaitVisible(`#rp-bye`))
				if got, want := href(t).String(), rp.url+"/bye?app=o&state="+url.QueryEscape(state); got != want {
					t.Errorf("ended at %s, want %s", got, want)
				}
				rp.mu.Lock()
				if len(rp.logouts) != 1 {
					t.Errorf("%d front-channel requests at the client", len(rp.logouts))
				}
				rp.mu.Unlock()

				// The SSO session is gone: the client's next
				// authorization request gets the login page.
				do(t, "authorize again", chromedp.Navigate(r.conf.AuthCodeURL(randomString(),
					oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("ui_locales", lang))),
					chromedp.WaitVisible(`html[lang="`+lang+`"] button[value="eid-fake"]`))
				if u := href(t); !strings.HasPrefix(u.Path, "/login/") {
					t.Errorf("authorization after the logout at %s, not at the login page", u)
				}
				browsertest.Screenshot(t, ctx, "login-again-"+lang)
			})
		}
	})
}

// navigateNoWait navigates the tab without waiting for the load event
// (chromedp.Navigate waits for it): a front-channel logout page loads
// only when its frames have, and the test holds the client's frame.
func navigateNoWait(u string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		res, err := cdp.Call(ctx, t, page.Navigate, page.NavigateParams{URL: u})
		if err == nil && res.ErrorText != "" {
			err = errors.New(res.ErrorText)
		}
		return err
	})
}
