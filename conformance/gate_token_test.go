package conformance_test

import (
	"net/http"
	"testing"

	"github.com/trustbroker/trustbroker/conformance/dbtest"
	"github.com/trustbroker/trustbroker/conformance/harness"
)

const appSecret = "app-secret-0123456789-0123456789-012345"

const gateTokenYAML = `
providers:
  - id: eid-fake
    type: fake-redirect
    name: {en: Card}
    config: {kind: smartcard, subject: card-1, loa: high, amr: [sc, pin], attributes: {given_name: Erika}}
relying_parties:
  - id: records
    name: {en: Records}
    protocol: gate
    accepted_credentials: [smartcard]
    min_loa: high
    claims: [{name: given_name, purpose: {en: greeting}}]
  - id: app
    name: {en: App}
    protocol: oidc
    accepted_credentials: [smartcard]
    claims: [{name: given_name, purpose: {en: greeting}}]
    oidc:
      redirect_uris: [` + rpRedirect + `]
      client_secret: ` + appSecret + `
policy:
  engine: casbin
  rules:
    - {id: app-login, subjects: ["*"], objects: [app], actions: [login], effect: allow}
    - {id: records-read, subjects: ["*"], objects: [records], actions: [GET], min_loa: high, effect: allow}
gate:
  proxies: [127.0.0.1]
  services:
    - id: records
      hosts: [records.test]
      headers: {subject: X-Auth-Subject, loa: X-Auth-LoA}
`

// TestGateBearerToken: an access token of the OpenID Provider opens a
// service behind the gate, with a policy decision on every request.
func TestGateBearerToken(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		b := harness.Start(t, gateTokenYAML, dsn, harness.Options{})
		app := newRP(t, b, "app", appSecret, "openid", "profile")
		tok, _, _ := app.login(harness.NewBrowser(t).StopAt(rpRedirect))
		ask := func(authorization string) *http.Response {
			req, _ := http.NewRequest(http.MethodGet, b.URL+"/gate/auth", nil)
			req.Header.Set("X-Original-Method", "GET")
			req.Header.Set("X-Original-URI", "/patients/42")
			req.Header.Set("X-Forwarded-Host", "records.test")
			if authorization != "" {
				req.Header.Set("Authorization", authorization)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp
		}
		if resp := ask("Bearer " + tok.AccessToken); resp.StatusCode/100 != 2 || resp.Header.Get("X-Auth-Subject") == "" ||
			resp.Header.Get("X-Auth-LoA") == "" {
			t.Errorf("valid bearer token: %d %v", resp.StatusCode, resp.Header)
		}
		if resp := ask("Bearer not-a-token"); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("invalid bearer token: %d", resp.StatusCode)
		}
		if status, _ := postForm(t, b.URL+"/oauth2/revoke", map[string][]string{"token": {tok.AccessToken}}, "app", appSecret); status != 200 {
			t.Fatalf("revoke: %d", status)
		}
		if resp := ask("Bearer " + tok.AccessToken); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("revoked bearer token: %d", resp.StatusCode)
		}
	})
}
