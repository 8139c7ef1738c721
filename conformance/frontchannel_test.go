package conformance_test

import (
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/trustbroker/trustbroker/broker/web"
	"github.com/trustbroker/trustbroker/conformance/browsertest"
	"github.com/trustbroker/trustbroker/conformance/dbtest"
	"github.com/trustbroker/trustbroker/conformance/harness"
)

// frontchannelYAML: two clients with front-channel logout URIs on two
// origins (A keeps a query of its own), both requiring iss and sid, and a
// third client without one. RP_A and RP_B are the clients' origins.
const frontchannelYAML = `
providers:
  - id: eid-fake
    type: fake-redirect
    name: {de: Test-Ausweis, en: Test ID card}
    config:
      kind: eid
      subject: restricted-id-0001
      loa: high
      amr: [sc, pin, mfa]
      attributes: {given_name: Erika, family_name: Mustermann}
relying_parties:
  - id: fca
    name: {de: Bürgerportal, en: Citizen portal}
    protocol: oidc
    accepted_credentials: [eid]
    claims: [{name: given_name, purpose: {en: greeting}}]
    oidc:
      redirect_uris: ["RP_A/cb"]
      post_logout_redirect_uris: ["RP_A/bye?app=a"]
      client_secret: ` + portalSecret + `
      frontchannel_logout_uri: "RP_A/fc?tenant=t%201"
      frontchannel_logout_session_required: true
  - id: fcb
    name: {de: Steuerdienst, en: Tax service}
    protocol: oidc
    accepted_credentials: [eid]
    claims: [{name: given_name, purpose: {en: greeting}}]
    oidc:
      redirect_uris: ["RP_B/cb"]
      client_secret: ` + portalSecret + `
      frontchannel_logout_uri: "RP_B/logout"
      frontchannel_logout_session_required: true
  - id: plain
    name: {en: Plain}
    protocol: oidc
    accepted_credentials: [eid]
    claims: [{name: given_name, purpose: {en: greeting}}]
    oidc:
      redirect_uris: ["RP_A/cb"]
      client_secret: ` + portalSecret + `
`

// fcRP is a relying party on loopback: /cb takes the code, /fc and
// /logout are its front-channel logout URIs (they record each request),
// /bye its post-logout page. release, when set, holds the front-channel
// requests until it is closed.
type fcRP struct {
	srv *httptest.Server
	// url is the server's base URL (named localhost for Chromium).
	url     string
	mu      sync.Mutex
	logouts []url.Values
	hits    chan url.Values
	release chan struct{}
}

// holdFrontchannel makes the relying parties hold their front-channel
// logout pages until release is called (at the latest when the test
// ends), so that the broker's logout page stays for checks and
// screenshots; what they recorded before is forgotten.
func holdFrontchannel(t *testing.T, rps ...*fcRP) (release func()) {
	ch := make(chan struct{})
	for _, rp := range rps {
		rp.mu.Lock()
		rp.release, rp.logouts = ch, nil
		rp.mu.Unlock()
	}
	var once sync.Once
	release = func() { once.Do(func() { close(ch) }) }
	t.Cleanup(func() {
		release()
		for _, rp := range rps {
			rp.mu.Lock()
			if rp.release == ch {
				rp.release = nil
			}
			rp.mu.Unlock()
		}
	})
	return release
}

// wantFrame waits until the browser loads the relying party's
// front-channel logout URI and checks the iss and sid it carries.
func (rp *fcRP) wantFrame(t *testing.T, iss, sid string) {
	t.Helper()
	select {
	case q := <-rp.hits:
		if q.Get("iss") != iss || q.Get("sid") != sid {
			t.Errorf("front-channel frame got %v, want iss %s sid %s", q, iss, sid)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the client's front-channel logout URI was not loaded")
	}
}

func newFCRP(t *testing.T, localhost bool) *fcRP {
	t.Helper()
	rp := &fcRP{hits: make(chan url.Values, 8)}
	rp.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		switch r.URL.Path {
		case "/fc", "/logout":
			rp.mu.Lock()
			rp.logouts = append(rp.logouts, r.URL.Query())
			release := rp.release
			rp.mu.Unlock()
			rp.hits <- r.URL.Query()
			if release != nil {
				select {
				case <-release:
				case <-r.Context().Done():
				}
			}
			_, _ = w.Write([]byte("<!doctype html><title>rp logout</title><p>logged out"))
		case "/cb":
			_, _ = w.Write([]byte(`<!doctype html><title>rp</title><p id="rp-cb">signed in`))
		case "/bye":
			_, _ = w.Write([]byte(`<!doctype html><title>bye</title><p id="rp-bye">goodbye`))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(rp.srv.Close)
	rp.url = rp.srv.URL
	if localhost {
		rp.url = strings.Replace(rp.srv.URL, "127.0.0.1", "localhost", 1)
	}
	return rp
}

func startFrontchannel(t *testing.T, dsn string, o harness.Options) (*harness.Broker, *fcRP, *fcRP) {
	t.Helper()
	a, b := newFCRP(t, o.Hostname == "localhost"), newFCRP(t, o.Hostname == "localhost")
	yaml := strings.NewReplacer("RP_A", a.url, "RP_B", b.url).Replace(frontchannelYAML)
	return harness.Start(t, yaml, dsn, o), a, b
}

// fcBrowser follows redirects within the broker only (the relying
// parties' pages are checked, not fetched).
func fcBrowser(t *testing.T, b *harness.Broker) *harness.Browser {
	br := harness.NewBrowser(t)
	br.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if !strings.HasPrefix(req.URL.String(), b.URL+"/") || len(via) >= 10 {
			return http.ErrUseLastResponse
		}
		return nil
	}
	return br
}

// fcLogin is a code flow of clientID through br with PKCE; it returns the
// raw ID token and its sid.
func fcLogin(t *testing.T, b *harness.Broker, br *harness.Browser, clientID, redirect string) (raw, sid string) {
	t.Helper()
	r := newRP(t, b, clientID, portalSecret, gooidc.ScopeOpenID, "profile")
	r.conf.RedirectURL = redirect
	verifier, nonce := oauth2.GenerateVerifier(), randomString()
	page := br.Get(r.conf.AuthCodeURL(randomString(), oauth2.S256ChallengeOption(verifier), gooidc.Nonce(nonce)))
	if strings.HasPrefix(page.URL.Path, "/login/") && page.Status == 200 {
		page = choose(t, br, page, "eid-fake")
	}
	code := page.Location(t).Query().Get("code")
	return fcExchange(t, r, code, verifier)
}

func fcExchange(t *testing.T, r *rp, code, verifier string) (raw, sid string) {
	t.Helper()
	tok, err := r.conf.Exchange(r.ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("%s: exchange: %v", r.conf.ClientID, err)
	}
	raw, _ = tok.Extra("id_token").(string)
	idt, err := r.provider.Verifier(&gooidc.Config{ClientID: r.conf.ClientID}).Verify(r.ctx, raw)
	if err != nil {
		t.Fatalf("%s: ID token: %v", r.conf.ClientID, err)
	}
	var c struct {
		SID string `json:"sid"`
	}
	_ = idt.Claims(&c)
	if c.SID == "" {
		t.Fatalf("%s: ID token without sid", r.conf.ClientID)
	}
	return raw, c.SID
}

var (
	fcIframeRE   = regexp.MustCompile(`<iframe class="frontchannel" src="([^"]*)"`)
	fcContinueRE = regexp.MustCompile(`<a id="continue" class="button" href="([^"]*)"`)
)

// fcPage is what a front-channel logout page shows: its frames and its
// continue link, as the browser reads them.
func fcPage(t *testing.T, body string) (frames []string, next string) {
	t.Helper()
	for _, m := range fcIframeRE.FindAllStringSubmatch(body, -1) {
		frames = append(frames, html.UnescapeString(m[1]))
	}
	if m := fcContinueRE.FindStringSubmatch(body); m != nil {
		next = html.UnescapeString(m[1])
	}
	return frames, next
}

// fcCSP is the CSP the page must send for the two relying parties.
func fcCSP(a, b *fcRP) string {
	origins := []string{a.url, b.url}
	slices.Sort(origins)
	return web.ContentSecurityPolicy + "; frame-src " + strings.Join(origins, " ")
}

// TestOIDCFrontchannelLogout: two clients hold one session; the
// RP-initiated logout at the end_session_endpoint shows a page that frames
// exactly their front-channel logout URIs with iss and sid (OIDC
// Front-Channel Logout 1.0 §2, §4), allows framing exactly their origins,
// and continues to the post_logout_redirect_uri with state. The
// dashboard's "log out everywhere" ends at the same kind of page.
func TestOIDCFrontchannelLogout(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		b, rpA, rpB := startFrontchannel(t, dsn, harness.Options{})
		wantFrames := func(sidA, sidB string) []string {
			iss := url.QueryEscape(b.URL)
			return []string{
				rpA.url + "/fc?tenant=t%201&iss=" + iss + "&sid=" + url.QueryEscape(sidA),
				rpB.url + "/logout?iss=" + iss + "&sid=" + url.QueryEscape(sidB),
			}
		}

		t.Run("RP-initiated", func(t *testing.T) {
			br := fcBrowser(t, b)
			rawA, sidA := fcLogin(t, b, br, "fca", rpA.url+"/cb")
			_, sidB := fcLogin(t, b, br, "fcb", rpB.url+"/cb")
			_, _ = fcLogin(t, b, br, "plain", rpA.url+"/cb")
			if sidA == sidB {
				t.Errorf("the two clients share a sid %q", sidA)
			}
			q := url.Values{"id_token_hint": {rawA}, "post_logout_redirect_uri": {rpA.url + "/bye?app=a"}, "state": {"bye state&x"}}
			page := br.Get(b.URL + "/oauth2/logout?" + q.Encode())
			if page.Status != http.StatusOK || page.URL.Path != "/oauth2/logout" {
				t.Fatalf("logout page: %d %s\n%s", page.Status, page.URL, page.Body)
			}
			frames, next := fcPage(t, page.Body)
			if want := wantFrames(sidA, sidB); !slices.Equal(frames, want) {
				t.Errorf("frames\n%q\nwant\n%q", frames, want)
			}
			wantNext := rpA.url + "/bye?app=a&state=bye+state%26x"
			if next != wantNext {
				t.Errorf("continue link %q, want %q", next, wantNext)
			}
			if got := page.Header.Get("Refresh"); got != "2;url="+wantNext {
				t.Errorf("Refresh %q", got)
			}
			if got, want := page.Header.Get("Content-Security-Policy"), fcCSP(rpA, rpB); got != want {
				t.Errorf("CSP %q\nwant %q", got, want)
			}
			if page.Header.Get("X-Frame-Options") != "DENY" || !strings.Contains(page.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
				t.Errorf("the logout page may be framed: %v", page.Header)
			}
			if strings.Contains(page.Body, "<script>") || !strings.Contains(page.Body, `lang="de"`) {
				t.Errorf("inline script or not German:\n%s", page.Body)
			}
			// The session is over: another logout frames nothing.
			again := br.Get(b.URL + "/oauth2/logout?" + q.Encode())
			if again.Status != http.StatusOK || strings.Contains(again.Body, "<iframe") {
				t.Errorf("second logout: %d\n%s", again.Status, again.Body)
			}
		})

		t.Run("without post_logout_redirect_uri", func(t *testing.T) {
			br := fcBrowser(t, b)
			rawA, sidA := fcLogin(t, b, br, "fca", rpA.url+"/cb")
			_, sidB := fcLogin(t, b, br, "fcb", rpB.url+"/cb")
			page := br.Get(b.URL + "/oauth2/logout?" + url.Values{"id_token_hint": {rawA}, "ui_locales": {"en"}}.Encode())
			frames, next := fcPage(t, page.Body)
			if page.Status != http.StatusOK || next != "" || page.Header.Get("Refresh") != "" || !slices.Equal(frames, wantFrames(sidA, sidB)) {
				t.Errorf("%d next %q frames %q refresh %q", page.Status, next, frames, page.Header.Get("Refresh"))
			}
			if !strings.Contains(page.Body, "You are logged out of Trustbroker") {
				t.Errorf("not the English logged-out page:\n%s", page.Body)
			}
		})

		t.Run("dashboard log out everywhere", func(t *testing.T) {
			br := fcBrowser(t, b)
			_, sidA := fcLogin(t, b, br, "fca", rpA.url+"/cb")
			_, sidB := fcLogin(t, b, br, "fcb", rpB.url+"/cb")
			account := br.Get(b.URL + "/account?lang=en")
			// The form keeps the language the dashboard is shown in, and
			// so do the front-channel page and the home page after it.
			if !strings.Contains(account.Body, `action="/account/logout?lang=en"`) {
				t.Fatalf("no logout button in English: %d", account.Status)
			}
			page := br.Post(b.URL+"/account/logout?lang=en", url.Values{"csrf": {account.CSRF(t)}})
			if page.Status != http.StatusOK || page.URL.Path != "/oauth2/logout/frontchannel" || page.URL.Query().Get("lang") != "en" {
				t.Fatalf("dashboard logout ended at %d %s\n%s", page.Status, page.URL, page.Body)
			}
			if !strings.Contains(page.Body, `lang="en"`) {
				t.Errorf("front-channel page not in English:\n%s", page.Body)
			}
			frames, next := fcPage(t, page.Body)
			if !slices.Equal(frames, wantFrames(sidA, sidB)) || next != "/?lang=en" || page.Header.Get("Content-Security-Policy") != fcCSP(rpA, rpB) {
				t.Errorf("frames %q next %q CSP %q", frames, next, page.Header.Get("Content-Security-Policy"))
			}
			// A tampered ticket shows nothing and goes home.
			tk := page.URL.Query().Get("t")
			bad := br.Get(b.URL + "/oauth2/logout/frontchannel?t=" + url.QueryEscape(tk[:len(tk)-3]+"AAA"))
			if bad.URL.Path != "/" || strings.Contains(bad.Body, "<iframe") {
				t.Errorf("tampered ticket: %d %s", bad.Status, bad.URL)
			}
			if p := br.Get(b.URL + "/account"); strings.Contains(p.Body, `action="/account/logout`) {
				t.Errorf("still logged in at the dashboard")
			}
		})
	})
}

// TestOIDCFrontchannelLogoutBrowser: in headless Chromium, the logout page
// loads the relying parties' front-channel logout URIs (they receive GET
// requests with iss and sid), and the browser ends at the
// post_logout_redirect_uri with state; in German and in English.
func TestOIDCFrontchannelLogoutBrowser(t *testing.T) {
	b, rpA, rpB := startFrontchannel(t, dbtest.SQLite(t), harness.Options{Hostname: "localhost"})
	ctx := browsertest.New(t)
	do := func(t *testing.T, what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		browsertest.Do(t, ctx, 20*time.Second, what, actions...)
	}
	href := func(t *testing.T) string { return browsertest.Location(t, ctx) }
	// login runs clientID's code flow in Chromium and exchanges the code.
	login := func(t *testing.T, clientID string, rp *fcRP) string {
		t.Helper()
		r := newRP(t, b, clientID, portalSecret, gooidc.ScopeOpenID, "profile")
		r.conf.RedirectURL = rp.url + "/cb"
		verifier := oauth2.GenerateVerifier()
		do(t, "authorize "+clientID, chromedp.Navigate(r.conf.AuthCodeURL(randomString(), oauth2.S256ChallengeOption(verifier))))
		if strings.Contains(href(t), "/login/") {
			do(t, "choose the ID card", chromedp.WaitVisible(`button[value="eid-fake"]`), chromedp.Click(`button[value="eid-fake"]`))
		}
		do(t, "back at "+clientID, chromedp.WaitVisible(`#rp-cb`))
		u, _ := url.Parse(href(t))
		_, sid := fcExchange(t, r, u.Query().Get("code"), verifier)
		return sid
	}
	for _, lang := range []string{"de", "en"} {
		t.Run(lang, func(t *testing.T) {
			sidA := login(t, "fca", rpA)
			sidB := login(t, "fcb", rpB)
			// The relying parties hold their logout pages (the page
			// continues only after its frames have loaded, or after its
			// script's timeout), so the screenshot shows the page.
			release := holdFrontchannel(t, rpA, rpB)
			// In English without JavaScript: the Refresh header alone
			// continues, and only once the frames have loaded.
			noScript := lang == "en"
			if _, err := chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: noScript}); err != nil {
				t.Fatal(err)
			}
			q := url.Values{"client_id": {"fca"}, "post_logout_redirect_uri": {rpA.url + "/bye?app=a"}, "state": {"st-" + lang}, "ui_locales": {lang}}
			do(t, "confirm the logout", chromedp.Navigate(b.URL+"/oauth2/logout?"+q.Encode()),
				chromedp.WaitVisible(`button[name="confirm"]`), chromedp.Click(`button[name="confirm"]`),
				chromedp.WaitVisible(`html[lang="`+lang+`"] a#continue`))
			browsertest.Screenshot(t, ctx, "frontchannel-"+lang)
			heading := text(t, ctx, "h1")
			if wantHeading := map[string]string{"de": "Sie werden abgemeldet", "en": "Logging you out"}[lang]; heading != wantHeading {
				t.Errorf("heading %q, want %q", heading, wantHeading)
			}
			if got := text(t, ctx, "a#continue"); got != map[string]string{"de": "Weiter", "en": "Continue"}[lang] {
				t.Errorf("continue link %q", got)
			}
			got := map[string]url.Values{}
			for range 2 {
				select {
				case v := <-rpA.hits:
					got["a"] = v
				case v := <-rpB.hits:
					got["b"] = v
				case <-time.After(20 * time.Second):
					t.Fatalf("front-channel logout requests: %v", got)
				}
			}
			if noScript {
				time.Sleep(3 * time.Second)
				if h := href(t); !strings.HasPrefix(h, b.URL+"/oauth2/logout") {
					t.Errorf("left the logout page at %s before its frames loaded", h)
				}
				release()
			}
			// With JavaScript the frames hang until the page has left:
			// its script continues after 5 s.
			if a := got["a"]; a.Get("iss") != b.URL || a.Get("sid") != sidA || a.Get("tenant") != "t 1" {
				t.Errorf("RP A got %v, want iss %s sid %s", a, b.URL, sidA)
			}
			if bq := got["b"]; bq.Get("iss") != b.URL || bq.Get("sid") != sidB {
				t.Errorf("RP B got %v, want iss %s sid %s", bq, b.URL, sidB)
			}
			do(t, "continue to the relying party", chromedp.WaitVisible(`#rp-bye`))
			want := rpA.url + "/bye?app=a&state=st-" + lang
			if h := href(t); h != want {
				t.Errorf("ended at %s, want %s", h, want)
			}
			for _, rp := range []*fcRP{rpA, rpB} {
				rp.mu.Lock()
				if len(rp.logouts) != 1 {
					t.Errorf("%s: %d front-channel requests", rp.url, len(rp.logouts))
				}
				rp.release = nil
				rp.mu.Unlock()
			}
		})
	}
}
