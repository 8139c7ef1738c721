package conformance_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	crewsaml "github.com/crewjam/saml"
	"golang.org/x/oauth2"

	"github.com/trustbroker/trustbroker/adapters/oidc"
	"github.com/trustbroker/trustbroker/adapters/saml"
	"github.com/trustbroker/trustbroker/conformance/dbtest"
	"github.com/trustbroker/trustbroker/conformance/harness"
)

// rpLogoutSLOYAML: a SAML SP with a SingleLogoutService ({{sp_md}}) and
// an OIDC client with a front-channel logout URI that requires iss and
// sid and a post_logout_redirect_uri ({{rp}} is its origin).
const rpLogoutSLOYAML = `
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
  - id: fcslo
    name: {de: Bürgerportal, en: Citizen portal}
    protocol: oidc
    accepted_credentials: [eid]
    claims: [{name: given_name, purpose: {en: greeting}}]
    oidc:
      redirect_uris: ["{{rp}}/cb"]
      post_logout_redirect_uris: ["{{rp}}/bye?app=o"]
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

// startOIDCLogoutSLO starts the broker with the SP and the front-channel
// client of rpLogoutSLOYAML; the SP learns the broker's metadata, and its
// accountThere reports, for these tests, whether the account has an SSO
// session in the store (the SP's /slo records it with each
// LogoutRequest).
func startOIDCLogoutSLO(t *testing.T, dsn string, o harness.Options) (*harness.Broker, *delSP, *fcRP) {
	t.Helper()
	sp := newDelSP(t)
	rp := newFCRP(t, true)
	yaml := strings.NewReplacer("{{rp}}", rp.url, "{{sp_md}}", writeSPMetadata(t, sp.sp, nil)).Replace(rpLogoutSLOYAML)
	b := harness.Start(t, yaml, dsn, o)
	trustIdP(t, b, sp.sp)
	st := b.Server.Store
	sp.accountThere = func() bool {
		acc, err := st.Accounts().FindByIdentity(context.Background(), "eid-fake", "restricted-id-0001")
		if err != nil {
			return false
		}
		ss, err := st.Sessions().ListByAccount(context.Background(), acc.ID)
		return err != nil || len(ss) > 0
	}
	return b, sp, rp
}

// TestOIDCLogoutSingleLogout: a browser logged in at a SAML SP and at an
// OIDC client logs out at the client (end_session_endpoint with
// id_token_hint). The SSO session ends before the browser leaves the
// broker; the SP gets a signed LogoutRequest naming the session as its
// assertion did; after its LogoutResponse the browser sees the
// front-channel logout page in the language of the logout request, which
// frames the client's URI with iss and sid and continues to the
// post_logout_redirect_uri with state (or, without one, to the logged-out
// page). When the SP never answers, the session is over all the same.
func TestOIDCLogoutSingleLogout(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		b, sp, rp := startOIDCLogoutSLO(t, dsn, harness.Options{})
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
		// login logs br in at the SP and then, by single sign-on, at the
		// client; it returns the SP's assertion, the client's ID token
		// and sid.
		login := func(t *testing.T, br *harness.Browser) (*crewsaml.Assertion, string, string) {
			t.Helper()
			req := sp.request(t)
			a, err := acsParse(t, sp.sp, send(t, b, br, sp.sp, crewsaml.HTTPRedirectBinding, req), req.ID)
			if err != nil {
				t.Fatalf("SAML login: %v", samlErr(err))
			}
			raw, sid := fcLogin(t, b, br, "fcslo", rp.url+"/cb")
			return a, raw, sid
		}
		logouts := func(n0 int) ([]delLogout, []error) {
			sp.mu.Lock()
			defer sp.mu.Unlock()
			return slices.Clone(sp.logouts[n0:]), slices.Clone(sp.errs)
		}
		count := func() int {
			sp.mu.Lock()
			defer sp.mu.Unlock()
			return len(sp.logouts)
		}
		// wantLoggedOut: neither the SP nor the client gets single sign-on.
		wantLoggedOut := func(t *testing.T, br *harness.Browser) {
			t.Helper()
			req := sp.request(t)
			u, _ := url.Parse(redirectURL(t, sp.sp, req))
			if p := br.Get(b.URL + saml.PathSSO + "?" + u.RawQuery); !strings.HasPrefix(p.URL.Path, "/login/") || samlResponseRE.MatchString(p.Body) {
				t.Errorf("single sign-on at the SP after the logout: %d %s", p.Status, p.URL)
			}
			r := newRP(t, b, "fcslo", portalSecret, "openid")
			r.conf.RedirectURL = rp.url + "/cb"
			if p := br.Get(r.conf.AuthCodeURL(randomString(), oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))); !strings.HasPrefix(p.URL.Path, "/login/") {
				t.Errorf("single sign-on at the client after the logout: %d %s → %s", p.Status, p.URL, p.Header.Get("Location"))
			}
		}

		t.Run("SP answers", func(t *testing.T) {
			br := newBrowser(t)
			a, raw, sid := login(t, br)
			n0 := count()
			q := url.Values{"id_token_hint": {raw}, "post_logout_redirect_uri": {rp.url + "/bye?app=o"},
				"state": {"bye state&x"}, "ui_locales": {"en"}}
			page := br.Get(b.URL + oidc.PathLogout + "?" + q.Encode())
			if page.Status != http.StatusOK || page.URL.Path != oidc.PathFrontchannelLogout || page.URL.Query().Get("lang") != "en" {
				t.Fatalf("logout ended at %d %s\n%s", page.Status, page.URL, page.Body)
			}
			sp.only(t, b, n0, a, "SSO session ended")

			frames, next := fcPage(t, page.Body)
			wantFrame := rp.url + "/fc?iss=" + url.QueryEscape(b.URL) + "&sid=" + url.QueryEscape(sid)
			if !slices.Equal(frames, []string{wantFrame}) {
				t.Errorf("frames %q, want %q", frames, wantFrame)
			}
			wantNext := rp.url + "/bye?app=o&state=bye+state%26x"
			if next != wantNext || page.Header.Get("Refresh") != "2;url="+wantNext {
				t.Errorf("continue %q, Refresh %q, want %q", next, page.Header.Get("Refresh"), wantNext)
			}
			if !strings.Contains(page.Body, `lang="en"`) || !strings.Contains(page.Body, "Logging you out") {
				t.Errorf("not the English front-channel page:\n%s", page.Body)
			}
			if bye := br.Get(next); bye.Status != http.StatusOK || !strings.Contains(bye.Body, `id="rp-bye"`) {
				t.Errorf("post-logout page %d %s", bye.Status, bye.URL)
			}
			wantLoggedOut(t, br)
		})

		t.Run("without post_logout_redirect_uri", func(t *testing.T) {
			br := newBrowser(t)
			_, raw, _ := login(t, br)
			n0 := count()
			page := br.Get(b.URL + oidc.PathLogout + "?" + url.Values{"id_token_hint": {raw}, "ui_locales": {"en"}}.Encode())
			if page.Status != http.StatusOK || page.URL.Path != oidc.PathFrontchannelLogout {
				t.Fatalf("logout ended at %d %s\n%s", page.Status, page.URL, page.Body)
			}
			if los, errs := logouts(n0); len(los) != 1 || len(errs) > 0 {
				t.Fatalf("SP: %d LogoutRequests, errors %v", len(los), errs)
			}
			_, next := fcPage(t, page.Body)
			if next != oidc.PathLogoutDone+"?lang=en" {
				t.Errorf("continue %q", next)
			}
			done := br.Get(b.URL + next)
			if done.Status != http.StatusOK || !strings.Contains(done.Body, `lang="en"`) || !strings.Contains(done.Body, "You are logged out of Trustbroker") {
				t.Errorf("logged-out page %d:\n%s", done.Status, done.Body)
			}
			wantLoggedOut(t, br)
		})

		t.Run("SP never answers", func(t *testing.T) {
			br := newBrowser(t)
			_, raw, _ := login(t, br)
			sp.mu.Lock()
			sp.silent = true
			n0 := len(sp.logouts)
			sp.mu.Unlock()
			defer func() {
				sp.mu.Lock()
				sp.silent = false
				sp.mu.Unlock()
			}()
			q := url.Values{"id_token_hint": {raw}, "post_logout_redirect_uri": {rp.url + "/bye?app=o"}, "state": {"s"}}
			page := br.Get(b.URL + oidc.PathLogout + "?" + q.Encode())
			if page.Status != http.StatusServiceUnavailable || page.URL.Path != "/slo" {
				t.Fatalf("logout ended at %d %s\n%s", page.Status, page.URL, page.Body)
			}
			if los, _ := logouts(n0); len(los) != 1 || los[0].accountThere || los[0].query.Get("Signature") == "" {
				t.Errorf("LogoutRequests at the silent SP: %+v", los)
			}
			// The browser never comes back through the logout: the
			// session is over, and the broker asks for a new login.
			wantLoggedOut(t, br)
		})
	})
}
