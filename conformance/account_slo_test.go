package conformance_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	gooidc "github.com/coreos/go-oidc/v3/oidc"
	crewsaml "github.com/crewjam/saml"
	"golang.org/x/oauth2"

	"github.com/trustbroker/trustbroker/adapters/oidc"
	"github.com/trustbroker/trustbroker/adapters/saml"
	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/conformance/browsertest"
	"github.com/trustbroker/trustbroker/conformance/dbtest"
	"github.com/trustbroker/trustbroker/conformance/harness"
)

// deletionSLOYAML: a SAML SP with a SingleLogoutService ({{sp_md}}) and
// an OIDC client with a front-channel logout URI that requires iss and
// sid ({{rp}} is its origin).
const deletionSLOYAML = `
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
  - id: fcdel
    name: {de: Bürgerportal, en: Citizen portal}
    protocol: oidc
    accepted_credentials: [eid]
    claims: [{name: given_name, purpose: {en: greeting}}]
    oidc:
      redirect_uris: ["{{rp}}/cb"]
      client_secret: ` + portalSecret + `
      frontchannel_logout_uri: "{{rp}}/fc"
      frontchannel_logout_session_required: true
  - id: spdel
    name: {de: Fachverfahren, en: Case system}
    protocol: saml
    accepted_credentials: [eid]
    claims:
      - {name: given_name, required: true, purpose: {en: greeting}}
    saml:
      entity_id: https://del.example/saml
      metadata_file: {{sp_md}}
`

// delLogout is a LogoutRequest the SP received: validated (signature
// included), its query, and whether the account was still in the store
// when it arrived.
type delLogout struct {
	req          *crewsaml.LogoutRequest
	query        url.Values
	accountThere bool
}

// delSP is a SAML SP on loopback (named localhost): /acs takes the
// Response (the browser test posts it there), /slo answers a LogoutRequest
// with a LogoutResponse over HTTP-Redirect, or with HTTP 503 when silent
// (an SP that never answers).
type delSP struct {
	sp   *crewsaml.ServiceProvider
	base string

	mu     sync.Mutex
	silent bool
	// accountThere reports whether the logged-in account is in the store.
	accountThere func() bool
	reqIDs       []string
	assertions   []*crewsaml.Assertion
	logouts      []delLogout
	errs         []error
}

// only returns the one LogoutRequest the SP received since n0 and checks
// it: no SP error, signed with RSA-SHA256 over HTTP-Redirect, from the
// broker to the SP's /slo, naming the assertion's NameID and
// SessionIndex, sent after the session (what names it) was gone from the
// store.
func (s *delSP) only(t *testing.T, b *harness.Broker, n0 int, a *crewsaml.Assertion, gone string) delLogout {
	t.Helper()
	s.mu.Lock()
	logouts, errs := slices.Clone(s.logouts[n0:]), slices.Clone(s.errs)
	s.mu.Unlock()
	if len(errs) > 0 {
		t.Fatalf("SP errors: %v", errs)
	}
	if len(logouts) != 1 {
		t.Fatalf("%d LogoutRequests at the SP", len(logouts))
	}
	lo := logouts[0]
	if lo.accountThere {
		t.Errorf("the LogoutRequest reached the SP before the %s", gone)
	}
	if lo.query.Get("Signature") == "" || lo.query.Get("SigAlg") != "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" {
		t.Errorf("LogoutRequest not signed with RSA-SHA256: %v", lo.query)
	}
	if lo.req.Issuer == nil || lo.req.Issuer.Value != b.URL+saml.PathMetadata || lo.req.Destination != s.base+"/slo" {
		t.Errorf("LogoutRequest issuer %+v destination %q", lo.req.Issuer, lo.req.Destination)
	}
	if lo.req.NameID == nil || lo.req.NameID.Value != a.Subject.NameID.Value || lo.req.NameID.Format != a.Subject.NameID.Format ||
		lo.req.SessionIndex == nil || lo.req.SessionIndex.Value != a.AuthnStatements[0].SessionIndex {
		t.Errorf("LogoutRequest names %+v / %+v, the assertion %+v / %s", lo.req.NameID, lo.req.SessionIndex,
			a.Subject.NameID, a.AuthnStatements[0].SessionIndex)
	}
	return lo
}

// loggedIn returns, after a login at the SP, how many LogoutRequests it
// has received so far and the assertion it got last; an SP error fails
// the test.
func (s *delSP) loggedIn(t *testing.T) (n0 int, a *crewsaml.Assertion) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.errs) > 0 {
		t.Fatalf("SP errors: %v", s.errs)
	}
	if len(s.assertions) == 0 {
		t.Fatal("no assertion at the SP")
	}
	return len(s.logouts), s.assertions[len(s.assertions)-1]
}

func newDelSP(t *testing.T) *delSP {
	t.Helper()
	s := &delSP{}
	srv := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(srv.Close)
	s.base = strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	s.sp = signingSP(t, "https://del.example/saml", s.base+"/acs")
	slo, _ := url.Parse(s.base + "/slo")
	s.sp.SloURL = *slo
	s.sp.LogoutBindings = []string{crewsaml.HTTPRedirectBinding}
	return s
}

func (s *delSP) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	switch r.URL.Path {
	case "/acs":
		if err := r.ParseForm(); err != nil {
			s.errs = append(s.errs, err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		a, err := s.sp.ParseResponse(r, s.reqIDs)
		if err != nil {
			s.errs = append(s.errs, samlErr(err))
			http.Error(w, "bad response", http.StatusBadRequest)
			return
		}
		s.assertions = append(s.assertions, a)
		_, _ = w.Write([]byte(`<!doctype html><title>sp</title><p id="sp-in">signed in at the SP`))
	case "/slo":
		there := s.accountThere != nil && s.accountThere()
		if s.silent {
			s.logouts = append(s.logouts, delLogout{query: r.URL.Query(), accountThere: there})
			http.Error(w, "SP down", http.StatusServiceUnavailable)
			return
		}
		req, err := s.sp.ValidateLogoutRequest(r)
		if err != nil {
			s.errs = append(s.errs, err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.logouts = append(s.logouts, delLogout{req: req, query: r.URL.Query(), accountThere: there})
		u, err := s.sp.MakeRedirectLogoutResponse(req.ID, r.URL.Query().Get("RelayState"))
		if err != nil {
			s.errs = append(s.errs, err)
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		http.Redirect(w, r, u.String(), http.StatusFound)
	default:
		http.NotFound(w, r)
	}
}

// request is a new AuthnRequest of the SP (HTTP-Redirect), remembered as
// outstanding for /acs.
func (s *delSP) request(t *testing.T) *crewsaml.AuthnRequest {
	t.Helper()
	req := newRequest(t, s.sp, crewsaml.HTTPRedirectBinding, nil)
	s.mu.Lock()
	s.reqIDs = append(s.reqIDs, req.ID)
	s.mu.Unlock()
	return req
}

// startDeletionSLO starts the broker with the SP and the front-channel
// relying party; the SP learns the broker's metadata and how to see the
// logged-in account in the store.
func startDeletionSLO(t *testing.T, dsn string, o harness.Options) (*harness.Broker, *delSP, *fcRP) {
	t.Helper()
	sp := newDelSP(t)
	rp := newFCRP(t, true)
	yaml := strings.NewReplacer("{{rp}}", rp.url, "{{sp_md}}", writeSPMetadata(t, sp.sp, nil)).Replace(deletionSLOYAML)
	b := harness.Start(t, yaml, dsn, o)
	trustIdP(t, b, sp.sp)
	st := b.Server.Store
	sp.accountThere = func() bool {
		_, err := st.Accounts().FindByIdentity(context.Background(), "eid-fake", "restricted-id-0001")
		return err == nil
	}
	return b, sp, rp
}

// accountID is the account the fake eID card is linked to.
func accountID(t *testing.T, b *harness.Broker) string {
	t.Helper()
	acc, err := b.Server.Store.Accounts().FindByIdentity(context.Background(), "eid-fake", "restricted-id-0001")
	if err != nil {
		t.Fatalf("account of the eID card: %v", err)
	}
	return acc.ID
}

// wantErased checks that the account and its sessions are gone.
func wantErased(t *testing.T, b *harness.Broker, accountID string) {
	t.Helper()
	st := b.Server.Store
	if _, err := st.Accounts().Get(context.Background(), accountID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("account after the deletion: %v", err)
	}
	if ss, err := st.Sessions().ListByAccount(context.Background(), accountID); err != nil || len(ss) != 0 {
		t.Errorf("sessions after the deletion: %v %v", ss, err)
	}
}

// TestAccountDeletionSingleLogout: a browser logged in at a SAML SP and at
// an OIDC client with a front-channel logout URI deletes its account. The
// account is erased before the browser leaves the broker; the SP gets a
// signed LogoutRequest naming the session as its assertion did; the
// browser comes back to the front-channel logout page, which frames the
// client's URI with iss and sid and continues to the goodbye page in the
// chosen language. When the SP never answers, the browser stays there and
// the account is gone all the same.
func TestAccountDeletionSingleLogout(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		b, sp, rp := startDeletionSLO(t, dsn, harness.Options{})
		// login logs br in at the SP and at the client; it returns the
		// SP's assertion and the client's sid.
		login := func(t *testing.T, br *harness.Browser) (*crewsaml.Assertion, string) {
			t.Helper()
			req := sp.request(t)
			a, err := acsParse(t, sp.sp, send(t, b, br, sp.sp, crewsaml.HTTPRedirectBinding, req), req.ID)
			if err != nil {
				t.Fatalf("SAML login: %v", samlErr(err))
			}
			_, sid := fcLogin(t, b, br, "fcdel", rp.url+"/cb")
			return a, sid
		}
		newBrowser := func(t *testing.T) *harness.Browser {
			br := harness.NewBrowser(t)
			br.CheckRedirect = func(req *http.Request, via []*http.Request) error {
				if strings.HasPrefix(req.URL.String(), rp.url+"/") || len(via) >= 10 {
					return http.ErrUseLastResponse
				}
				return nil
			}
			return br
		}
		deleteAccount := func(t *testing.T, br *harness.Browser, lang string) *harness.Page {
			t.Helper()
			confirm := br.Get(b.URL + "/account/delete?lang=" + lang)
			if confirm.Status != http.StatusOK {
				t.Fatalf("confirmation page: %d", confirm.Status)
			}
			return br.Post(b.URL+"/account/delete?lang="+lang, url.Values{"csrf": {confirm.CSRF(t)}, "confirm": {"yes"}})
		}

		t.Run("SP answers", func(t *testing.T) {
			br := newBrowser(t)
			a, sid := login(t, br)
			acc := accountID(t, b)
			sp.mu.Lock()
			n0 := len(sp.logouts)
			sp.mu.Unlock()

			page := deleteAccount(t, br, "en")
			if page.Status != http.StatusOK || page.URL.Path != oidc.PathFrontchannelLogout || page.URL.Query().Get("lang") != "en" {
				t.Fatalf("deletion ended at %d %s\n%s", page.Status, page.URL, page.Body)
			}
			sp.only(t, b, n0, a, "account was erased")

			frames, next := fcPage(t, page.Body)
			wantFrame := rp.url + "/fc?iss=" + url.QueryEscape(b.URL) + "&sid=" + url.QueryEscape(sid)
			if !slices.Equal(frames, []string{wantFrame}) {
				t.Errorf("frames %q, want %q", frames, wantFrame)
			}
			if next != "/account/deleted?lang=en" || page.Header.Get("Refresh") != "2;url=/account/deleted?lang=en" {
				t.Errorf("continue %q, Refresh %q", next, page.Header.Get("Refresh"))
			}
			if !strings.Contains(page.Body, `lang="en"`) || !strings.Contains(page.Body, "Logging you out") {
				t.Errorf("not the English front-channel page:\n%s", page.Body)
			}
			bye := br.Get(b.URL + next)
			if bye.Status != http.StatusOK || !strings.Contains(bye.Body, `lang="en"`) || !strings.Contains(bye.Body, "Your account has been deleted") {
				t.Errorf("goodbye page %d:\n%s", bye.Status, bye.Body)
			}
			wantErased(t, b, acc)
			if p := br.Get(b.URL + "/account"); p.Status != http.StatusUnauthorized {
				t.Errorf("dashboard after the deletion: %d", p.Status)
			}
		})

		t.Run("SP never answers", func(t *testing.T) {
			br := newBrowser(t)
			_, _ = login(t, br)
			acc := accountID(t, b)
			sp.mu.Lock()
			sp.silent = true
			n0 := len(sp.logouts)
			sp.mu.Unlock()
			defer func() {
				sp.mu.Lock()
				sp.silent = false
				sp.mu.Unlock()
			}()

			page := deleteAccount(t, br, "de")
			if page.Status != http.StatusServiceUnavailable || page.URL.Path != "/slo" {
				t.Fatalf("deletion ended at %d %s\n%s", page.Status, page.URL, page.Body)
			}
			sp.mu.Lock()
			logouts := sp.logouts[n0:]
			sp.mu.Unlock()
			if len(logouts) != 1 || logouts[0].accountThere || logouts[0].query.Get("Signature") == "" {
				t.Errorf("LogoutRequests at the silent SP: %+v", logouts)
			}
			// The browser never comes back through the logout: the
			// account is gone, the session too, and nothing revives them.
			wantErased(t, b, acc)
			if p := br.Get(b.URL + "/account?lang=de"); p.Status != http.StatusUnauthorized {
				t.Errorf("dashboard after the deletion: %d", p.Status)
			}
			if p := br.Post(b.URL+"/account/delete?lang=de", url.Values{"confirm": {"yes"}}); p.Status != http.StatusUnauthorized {
				t.Errorf("deleting again: %d", p.Status)
			}
			req := sp.request(t)
			u, _ := url.Parse(redirectURL(t, sp.sp, req))
			if p := br.Get(b.URL + saml.PathSSO + "?" + u.RawQuery); !strings.HasPrefix(p.URL.Path, "/login/") || samlResponseRE.MatchString(p.Body) {
				t.Errorf("single sign-on at the SP after the deletion: %d %s", p.Status, p.URL)
			}
			if _, err := b.Server.Store.Accounts().FindByIdentity(context.Background(), "eid-fake", "restricted-id-0001"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("the eID card is linked again: %v", err)
			}
			// The goodbye page needs no session.
			if bye := br.Get(b.URL + "/account/deleted?lang=de"); bye.Status != http.StatusOK || !strings.Contains(bye.Body, "Ihr Konto wurde gelöscht") {
				t.Errorf("goodbye page %d:\n%s", bye.Status, bye.Body)
			}
		})
	})
}

// browserLoginSAMLAndOIDC logs the browser in at the SAML SP, through the
// login page, then by single sign-on at the OIDC client clientID (its
// redirect URI at rp). It returns what delSP.loggedIn returns after the
// SAML login, the client, and its ID token and sid.
func browserLoginSAMLAndOIDC(t *testing.T, ctx context.Context, b *harness.Broker, sp *delSP, rp *fcRP, clientID string) (n0 int, a *crewsaml.Assertion, r *rp, idToken, sid string) {
	t.Helper()
	browsertest.Do(t, ctx, 20*time.Second, "SAML login", chromedp.Navigate(redirectURL(t, sp.sp, sp.request(t))),
		chromedp.WaitVisible(`button[value="eid-fake"]`), chromedp.Click(`button[value="eid-fake"]`),
		chromedp.WaitVisible(`#sp-in`))
	n0, a = sp.loggedIn(t)
	r = newRP(t, b, clientID, portalSecret, gooidc.ScopeOpenID, "profile")
	r.conf.RedirectURL = rp.url + "/cb"
	verifier := oauth2.GenerateVerifier()
	browsertest.Do(t, ctx, 20*time.Second, "OIDC login", chromedp.Navigate(r.conf.AuthCodeURL(randomString(), oauth2.S256ChallengeOption(verifier))),
		chromedp.WaitVisible(`#rp-cb`))
	u, err := url.Parse(browsertest.Location(t, ctx))
	if err != nil {
		t.Fatal(err)
	}
	idToken, sid = fcExchange(t, r, u.Query().Get("code"), verifier)
	return n0, a, r, idToken, sid
}

// TestBrowserAccountDeletionSingleLogout: in headless Chromium, logged in
// at the SAML SP and the OIDC client, the citizen deletes the account in
// German and then (a new account) in English: the SP gets its signed
// LogoutRequest, the client's front-channel frame loads with iss and sid,
// and the browser ends on the goodbye page in that language. Screenshots
// of the front-channel page (held while the frame loads) and the goodbye
// page.
func TestBrowserAccountDeletionSingleLogout(t *testing.T) {
	b, sp, rp := startDeletionSLO(t, dbtest.SQLite(t), harness.Options{Hostname: "localhost"})
	ctx := browsertest.New(t)
	do := func(t *testing.T, what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		browsertest.Do(t, ctx, 20*time.Second, what, actions...)
	}
	href := func(t *testing.T) string { return browsertest.Location(t, ctx) }
	for _, lang := range []string{"de", "en"} {
		t.Run(lang, func(t *testing.T) {
			n0, a, _, _, sid := browserLoginSAMLAndOIDC(t, ctx, b, sp, rp, "fcdel")
			acc := accountID(t, b)

			// The client holds its front-channel page until released, so
			// the logout page stays for the screenshot.
			release := holdFrontchannel(t, rp)
			do(t, "delete the account", chromedp.Navigate(b.URL+"/account/delete?lang="+lang),
				chromedp.WaitVisible(`html[lang="`+lang+`"] form.delete-account`),
				chromedp.Click(`label[for="confirm"]`), chromedp.Click(`button.danger`),
				chromedp.WaitVisible(`html[lang="`+lang+`"] a#continue`))
			browsertest.Screenshot(t, ctx, "frontchannel-"+lang)
			if h := text(t, ctx, "h1"); h != map[string]string{"de": "Sie werden abgemeldet", "en": "Logging you out"}[lang] {
				t.Errorf("front-channel page heading %q", h)
			}
			rp.wantFrame(t, b.URL, sid)
			sp.only(t, b, n0, a, "account was erased")
			wantErased(t, b, acc)

			release()
			do(t, "continue to the goodbye page", chromedp.WaitNotPresent(`a#continue`),
				chromedp.WaitVisible(`html[lang="`+lang+`"] p.lead[role="status"]`))
			if h, want := href(t), b.URL+"/account/deleted?lang="+lang; h != want {
				t.Errorf("ended at %s, want %s", h, want)
			}
			browsertest.Screenshot(t, ctx, "deleted-"+lang)
			if h := text(t, ctx, "h1"); h != map[string]string{"de": "Ihr Konto wurde gelöscht", "en": "Your account has been deleted"}[lang] {
				t.Errorf("goodbye page heading %q", h)
			}
		})
	}
}
