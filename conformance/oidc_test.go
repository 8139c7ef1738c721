package conformance_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/trustbroker/trustbroker/conformance/dbtest"
	"github.com/trustbroker/trustbroker/conformance/harness"
)

const (
	rpRedirect   = "http://localhost/rp/callback"
	shopSecret   = "shop-secret-0123456789-0123456789-0123"
	svcSecret    = "svc-secret-0123456789-0123456789-01234"
	rsSecret     = "rs-secret-0123456789-0123456789-012345"
	legacySecret = "legacy-secret-0123456789-0123456789-01"
	portalSecret = "portal-secret-0123456789-0123456789-01"
)

const oidcYAML = `
providers:
  - id: eid-fake
    type: fake-redirect
    name: {de: Test-Ausweis, en: Test ID card}
    config:
      kind: eid
      subject: restricted-id-0001
      loa: high
      amr: [sc, pin, mfa]
      attributes: {given_name: Erika, family_name: Mustermann, birthdate: "1964-08-12", email: erika@example.org}
      trust_framework: de_aml
relying_parties:
  - id: shop
    name: {de: Laden, en: Shop}
    protocol: oidc
    accepted_credentials: [eid]
    min_loa: substantial
    claims:
      - {name: given_name, required: true, purpose: {en: greeting}}
      - {name: family_name, purpose: {en: greeting}}
      - {name: email, purpose: {en: receipts}}
    oidc:
      redirect_uris: [` + rpRedirect + `]
      client_secret: ` + shopSecret + `
  - id: pushy
    name: {en: Pushy}
    protocol: oidc
    accepted_credentials: [eid]
    oidc:
      redirect_uris: [` + rpRedirect + `]
      client_secret: ` + shopSecret + `
      require_par: true
  - id: portal
    name: {de: Portal, en: Portal}
    protocol: oidc
    accepted_credentials: [eid]
    claims: [{name: given_name, purpose: {en: greeting}}]
    oidc:
      redirect_uris: [` + rpRedirect + `]
      post_logout_redirect_uris: [http://localhost/rp/logged-out]
      client_secret: ` + portalSecret + `
      backchannel_logout_uri: BACKCHANNEL_URI
  - id: spa
    name: {en: Single-page app}
    protocol: oidc
    accepted_credentials: [eid]
    claims: [{name: given_name, purpose: {en: greeting}}]
    oidc:
      public: true
      redirect_uris: [` + rpRedirect + `]
      id_token_signed_response_alg: ES256
  - id: mobile
    name: {en: Mobile app}
    protocol: oidc
    accepted_credentials: [eid]
    claims: [{name: given_name, purpose: {en: greeting}}]
    oidc:
      public: true
      require_dpop: true
      redirect_uris: [` + rpRedirect + `]
  - id: keyclient
    name: {en: Key client}
    protocol: oidc
    accepted_credentials: [eid]
    oidc:
      redirect_uris: [https://keyclient.example/unused]
      jwks_file: JWKS_FILE
      grant_types: [client_credentials]
      scopes: [orders.read]
  - id: legacy
    name: {en: Legacy}
    protocol: oidc
    accepted_credentials: [eid]
    oidc:
      redirect_uris: [` + rpRedirect + `]
      client_secret: ` + legacySecret + `
      token_endpoint_auth_method: client_secret_post
      require_pkce: false
  - id: svc
    name: {en: Service}
    protocol: oidc
    accepted_credentials: [eid]
    oidc:
      redirect_uris: [https://svc.example/unused]
      client_secret: ` + svcSecret + `
      grant_types: [client_credentials]
      scopes: [orders.read]
  - id: svcjwt
    name: {en: Service with JWT access tokens}
    protocol: oidc
    accepted_credentials: [eid]
    oidc:
      redirect_uris: [https://svcjwt.example/unused]
      client_secret: ` + svcSecret + `
      grant_types: [client_credentials]
      scopes: [orders.read]
      access_token_format: jwt
  - id: rs
    name: {en: Resource server}
    protocol: oidc
    accepted_credentials: [eid]
    oidc:
      redirect_uris: [https://rs.example/unused]
      client_secret: ` + rsSecret + `
      grant_types: [client_credentials]
      introspection: true
`

// rp is a relying party built from the certified client libraries:
// go-oidc for discovery and ID-token verification, x/oauth2 for the code
// exchange.
type rp struct {
	t        *testing.T
	ctx      context.Context
	broker   *harness.Broker
	provider *gooidc.Provider
	conf     oauth2.Config
}

func newRP(t *testing.T, b *harness.Broker, clientID, secret string, scopes ...string) *rp {
	t.Helper()
	ctx := context.Background()
	p, err := gooidc.NewProvider(ctx, b.URL)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	if len(scopes) == 0 {
		scopes = []string{gooidc.ScopeOpenID, "profile", "email", "offline_access"}
	}
	ep := p.Endpoint()
	// No auto-detection: x/oauth2 would retry a failed request with the
	// other style and report that attempt's error instead.
	ep.AuthStyle = oauth2.AuthStyleInHeader
	return &rp{t: t, ctx: ctx, broker: b, provider: p, conf: oauth2.Config{
		ClientID: clientID, ClientSecret: secret, Endpoint: ep, RedirectURL: rpRedirect, Scopes: scopes,
	}}
}

func randomString() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// authorize runs the browser through the login and returns the redirect to
// the relying party.
func (r *rp) authorize(br *harness.Browser, opts ...oauth2.AuthCodeOption) *url.URL {
	r.t.Helper()
	page := br.Get(r.conf.AuthCodeURL(randomString(), opts...))
	if strings.HasPrefix(page.URL.Path, "/login/") && page.Status == 200 {
		page = choose(r.t, br, page, "eid-fake")
	}
	return page.Location(r.t)
}

// login is a complete code flow with PKCE and nonce: it returns the
// tokens and the verified ID token.
func (r *rp) login(br *harness.Browser) (*oauth2.Token, *gooidc.IDToken, string) {
	r.t.Helper()
	verifier, nonce, state := oauth2.GenerateVerifier(), randomString(), randomString()
	page := br.Get(r.conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), gooidc.Nonce(nonce)))
	if strings.HasPrefix(page.URL.Path, "/login/") && page.Status == 200 {
		page = choose(r.t, br, page, "eid-fake")
	}
	loc := page.Location(r.t)
	q := loc.Query()
	if q.Get("error") != "" || q.Get("state") != state || q.Get("iss") != r.broker.URL {
		r.t.Fatalf("authorization response %s", loc)
	}
	tok, err := r.conf.Exchange(r.ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		r.t.Fatalf("code exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := r.provider.Verifier(&gooidc.Config{ClientID: r.conf.ClientID, SupportedSigningAlgs: []string{"RS256", "ES256"}}).Verify(r.ctx, raw)
	if err != nil {
		r.t.Fatalf("ID token: %v", err)
	}
	if idt.Nonce != nonce {
		r.t.Fatalf("nonce %q, want %q", idt.Nonce, nonce)
	}
	return tok, idt, raw
}

// postForm posts to a broker endpoint with optional basic auth and returns
// status and decoded JSON.
func postForm(t *testing.T, u string, form url.Values, user, pass string) (int, map[string]any) {
	t.Helper()
	status, out, _ := postWith(t, u, form, user, pass, nil)
	return status, out
}

// postWith posts a form with optional basic auth and extra headers and
// returns status, decoded JSON and the response headers.
func postWith(t *testing.T, u string, form url.Values, user, pass string, header map[string]string) (int, map[string]any, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	out := map[string]any{}
	_ = json.Unmarshal(body, &out)
	return resp.StatusCode, out, resp.Header
}

func introspect(t *testing.T, b *harness.Broker, token string) map[string]any {
	t.Helper()
	status, out := postForm(t, b.URL+"/oauth2/introspect", url.Values{"token": {token}}, "rs", rsSecret)
	if status != 200 {
		t.Fatalf("introspection: %d %v", status, out)
	}
	return out
}

func userinfoStatus(t *testing.T, b *harness.Broker, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.URL+"/oauth2/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func startOIDC(t *testing.T, dsn string) (*harness.Broker, *clock) {
	return startOIDCWith(t, dsn, "https://portal.example/backchannel")
}

func startOIDCWith(t *testing.T, dsn, backchannel string) (*harness.Broker, *clock) {
	b, c, _ := startOIDCKeys(t, dsn, backchannel)
	return b, c
}

// startOIDCKeys also returns the private key of the private_key_jwt client.
func startOIDCKeys(t *testing.T, dsn, backchannel string) (*harness.Broker, *clock, *ecdsa.PrivateKey) {
	return startOIDCExtra(t, dsn, backchannel, "")
}

// startOIDCExtra appends extra top-level YAML to the configuration.
func startOIDCExtra(t *testing.T, dsn, backchannel, extra string) (*harness.Broker, *clock, *ecdsa.PrivateKey) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	set, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	jwks := filepath.Join(t.TempDir(), "client-jwks.json")
	if err := os.WriteFile(jwks, set, 0o600); err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Now()}
	yaml := strings.NewReplacer("BACKCHANNEL_URI", backchannel, "JWKS_FILE", jwks).Replace(oidcYAML) + extra
	return harness.Start(t, yaml, dsn, harness.Options{Now: c.now}), c, key
}

func TestOIDCCodeFlow(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		b, _ := startOIDC(t, dsn)
		shop := newRP(t, b, "shop", shopSecret)
		br := harness.NewBrowser(t).StopAt(rpRedirect)
		tok, idt, raw := shop.login(br)

		var claims struct {
			GivenName, FamilyName, Email string
			Birthdate                    *string  `json:"birthdate"`
			ACR                          string   `json:"acr"`
			AMR                          []string `json:"amr"`
			SID                          string   `json:"sid"`
			AuthTime                     int64    `json:"auth_time"`
		}
		if err := idt.Claims(&claims); err != nil {
			t.Fatal(err)
		}
		if claims.ACR != "http://eidas.europa.eu/LoA/high" || strings.Join(claims.AMR, " ") != "sc pin mfa" || claims.SID == "" || claims.AuthTime == 0 {
			t.Errorf("ID token claims: %+v", claims)
		}
		if claims.Birthdate != nil {
			t.Error("a claim the client did not register left the broker")
		}
		if alg := jwsHeader(t, raw)["alg"]; alg != "RS256" {
			t.Errorf("ID token alg %v: clients without id_token_signed_response_alg get RS256", alg)
		}
		ui, err := shop.provider.UserInfo(shop.ctx, oauth2.StaticTokenSource(tok))
		if err != nil {
			t.Fatalf("userinfo: %v", err)
		}
		var uc map[string]any
		_ = ui.Claims(&uc)
		if ui.Subject != idt.Subject || uc["given_name"] != "Erika" || uc["email"] != "erika@example.org" {
			t.Errorf("userinfo %v (sub %s vs %s)", uc, ui.Subject, idt.Subject)
		}
		if in := introspect(t, b, tok.AccessToken); in["active"] != true || in["client_id"] != "shop" || in["sub"] != idt.Subject {
			t.Errorf("introspection of a live token: %v", in)
		}

		// Refresh rotation: a new refresh token each time; the old one
		// used again revokes the whole family.
		old := tok.RefreshToken
		fresh, err := shop.conf.TokenSource(shop.ctx, &oauth2.Token{RefreshToken: old, Expiry: time.Now().Add(-time.Hour)}).Token()
		if err != nil || fresh.RefreshToken == "" || fresh.RefreshToken == old {
			t.Fatalf("refresh: %v %+v", err, fresh)
		}
		status, out := postForm(t, b.URL+"/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {old}}, "shop", shopSecret)
		if status != 400 || out["error"] != "invalid_grant" {
			t.Errorf("reused refresh token: %d %v", status, out)
		}
		status, out = postForm(t, b.URL+"/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {fresh.RefreshToken}}, "shop", shopSecret)
		if status != 400 || out["error"] != "invalid_grant" {
			t.Errorf("refresh token of a revoked family still works: %d %v", status, out)
		}
		if in := introspect(t, b, fresh.AccessToken); in["active"] != false {
			t.Errorf("access token of a revoked family is active: %v", in)
		}

		// A second login in the same browser answers from the SSO session.
		_, idt2, _ := shop.login(br)
		if idt2.Subject != idt.Subject {
			t.Error("SSO login gave another subject")
		}

		// Revocation (RFC 7009).
		tok3, _, _ := shop.login(br)
		if status, _ := postForm(t, b.URL+"/oauth2/revoke", url.Values{"token": {tok3.AccessToken}}, "shop", shopSecret); status != 200 {
			t.Errorf("revoke: %d", status)
		}
		if s := userinfoStatus(t, b, tok3.AccessToken); s != http.StatusUnauthorized {
			t.Errorf("userinfo with a revoked token: %d", s)
		}
	})
}

func jwsHeader(t *testing.T, raw string) map[string]any {
	t.Helper()
	h, err := base64.RawURLEncoding.DecodeString(strings.SplitN(raw, ".", 2)[0])
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	_ = json.Unmarshal(h, &out)
	return out
}

func TestOIDCPublicClientAndPairwise(t *testing.T) {
	b, _ := startOIDC(t, dbtest.SQLite(t))
	br := harness.NewBrowser(t).StopAt(rpRedirect)
	spa := newRP(t, b, "spa", "", gooidc.ScopeOpenID, "profile")
	_, idt, raw := spa.login(br)
	if alg := jwsHeader(t, raw)["alg"]; alg != "ES256" {
		t.Errorf("ES256 opt-in ignored: %v", alg)
	}
	shop := newRP(t, b, "shop", shopSecret)
	_, idtShop, _ := shop.login(br)
	// Both redirect to localhost: one sector, one pairwise subject (OIDC
	// Core §8.1; other sectors: TestOIDCPairwiseSectors).
	if idt.Subject != idtShop.Subject {
		t.Error("two clients of one sector see different pairwise subjects")
	}
	// A public client without PKCE is refused.
	loc := spa.authorize(harness.NewBrowser(t).StopAt(rpRedirect))
	if loc.Query().Get("error") != "invalid_request" {
		t.Errorf("public client without PKCE: %s", loc)
	}
}

func TestOIDCClientCredentials(t *testing.T) {
	b, _ := startOIDC(t, dbtest.SQLite(t))
	status, out := postForm(t, b.URL+"/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"orders.read"}}, "svc", svcSecret)
	if status != 200 || out["access_token"] == nil || out["refresh_token"] != nil {
		t.Fatalf("client_credentials: %d %v", status, out)
	}
	at := out["access_token"].(string)
	if in := introspect(t, b, at); in["active"] != true || in["client_id"] != "svc" || in["scope"] != "orders.read" {
		t.Errorf("introspection: %v", in)
	}
	if s := userinfoStatus(t, b, at); s != http.StatusForbidden {
		t.Errorf("userinfo with a client_credentials token: %d", s)
	}
	// Introspection only for registered resource servers.
	if status, _ := postForm(t, b.URL+"/oauth2/introspect", url.Values{"token": {at}}, "svc", svcSecret); status != http.StatusUnauthorized {
		t.Errorf("introspection by a non-resource-server: %d", status)
	}
	for _, tc := range []struct {
		name, user, pass, scope, code string
		status                        int
	}{
		{"wrong secret", "svc", "wrong-secret-0123456789-0123456789-01", "orders.read", "invalid_client", 401},
		{"unknown client", "nobody", svcSecret, "orders.read", "invalid_client", 401},
		{"scope not allowed", "svc", svcSecret, "orders.write", "invalid_scope", 400},
		{"openid on client_credentials", "svc", svcSecret, "openid", "invalid_scope", 400},
	} {
		status, out := postForm(t, b.URL+"/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {tc.scope}}, tc.user, tc.pass)
		if status != tc.status || out["error"] != tc.code {
			t.Errorf("%s: %d %v, want %d %s", tc.name, status, out, tc.status, tc.code)
		}
	}
}

func TestOIDCRefusals(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		b, clk := startOIDC(t, dsn)
		shop := newRP(t, b, "shop", shopSecret)

		t.Run("redirect_uri mismatch shows a page, no redirect", func(t *testing.T) {
			for _, bad := range []string{"http://localhost/rp/callback/", "http://localhost/RP/callback", "http://localhost/rp/callback?x=1",
				"https://evil.example/cb", "http://localhost/rp/../rp/callback", "http://127.0.0.1/rp/callback"} {
				conf := shop.conf
				conf.RedirectURL = bad
				p := harness.NewBrowser(t).StopAt("http://never/").Get(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
				if p.Status != http.StatusBadRequest || p.Header.Get("Location") != "" || !strings.Contains(p.Body, "invalid_request") {
					t.Errorf("%s: %d %q", bad, p.Status, p.Header.Get("Location"))
				}
			}
		})
		t.Run("unknown client shows a page", func(t *testing.T) {
			conf := shop.conf
			conf.ClientID = "nobody"
			p := harness.NewBrowser(t).StopAt(rpRedirect).Get(conf.AuthCodeURL("s"))
			if p.Status != http.StatusUnauthorized || p.Header.Get("Location") != "" || !strings.Contains(p.Body, "invalid_client") {
				t.Errorf("unknown client: %d %q", p.Status, p.Header.Get("Location"))
			}
		})
		t.Run("missing PKCE", func(t *testing.T) {
			loc := shop.authorize(harness.NewBrowser(t).StopAt(rpRedirect))
			if loc.Query().Get("error") != "invalid_request" {
				t.Errorf("no PKCE: %s", loc)
			}
		})
		t.Run("plain PKCE", func(t *testing.T) {
			loc := shop.authorize(harness.NewBrowser(t).StopAt(rpRedirect),
				oauth2.SetAuthURLParam("code_challenge", strings.Repeat("a", 43)), oauth2.SetAuthURLParam("code_challenge_method", "plain"))
			if loc.Query().Get("error") != "invalid_request" {
				t.Errorf("plain PKCE: %s", loc)
			}
		})
		t.Run("invalid scope", func(t *testing.T) {
			conf := shop.conf
			conf.Scopes = []string{"openid", "admin"}
			p := harness.NewBrowser(t).StopAt(rpRedirect).Get(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
			if loc := p.Location(t); loc.Query().Get("error") != "invalid_scope" {
				t.Errorf("invalid scope: %s", loc)
			}
		})
		t.Run("prompt=none without session", func(t *testing.T) {
			loc := shop.authorize(harness.NewBrowser(t).StopAt(rpRedirect), oauth2.S256ChallengeOption(oauth2.GenerateVerifier()),
				oauth2.SetAuthURLParam("prompt", "none"))
			if loc.Query().Get("error") != "login_required" {
				t.Errorf("prompt=none: %s", loc)
			}
		})
		t.Run("wrong code_verifier", func(t *testing.T) {
			code := codeFor(t, shop, oauth2.GenerateVerifier())
			_, err := shop.conf.Exchange(shop.ctx, code, oauth2.VerifierOption(oauth2.GenerateVerifier()))
			wantOAuthError(t, err, "invalid_grant")
		})
		t.Run("verifier without challenge (PKCE downgrade)", func(t *testing.T) {
			legacy := newRP(t, b, "legacy", legacySecret)
			legacy.conf.Endpoint.AuthStyle = oauth2.AuthStyleInParams
			loc := legacy.authorize(harness.NewBrowser(t).StopAt(rpRedirect))
			_, err := legacy.conf.Exchange(legacy.ctx, loc.Query().Get("code"), oauth2.VerifierOption(oauth2.GenerateVerifier()))
			wantOAuthError(t, err, "invalid_grant")
		})
		t.Run("code reuse revokes its tokens", func(t *testing.T) {
			v := oauth2.GenerateVerifier()
			code := codeFor(t, shop, v)
			tok, err := shop.conf.Exchange(shop.ctx, code, oauth2.VerifierOption(v))
			if err != nil {
				t.Fatal(err)
			}
			_, err = shop.conf.Exchange(shop.ctx, code, oauth2.VerifierOption(v))
			wantOAuthError(t, err, "invalid_grant")
			if s := userinfoStatus(t, b, tok.AccessToken); s != http.StatusUnauthorized {
				t.Errorf("access token of a reused code still works: %d", s)
			}
			if in := introspect(t, b, tok.RefreshToken); in["active"] != false {
				t.Errorf("refresh token of a reused code still active: %v", in)
			}
		})
		t.Run("code of another client", func(t *testing.T) {
			v := oauth2.GenerateVerifier()
			code := codeFor(t, shop, v)
			legacy := newRP(t, b, "legacy", legacySecret)
			legacy.conf.Endpoint.AuthStyle = oauth2.AuthStyleInParams
			_, err := legacy.conf.Exchange(legacy.ctx, code, oauth2.VerifierOption(v))
			wantOAuthError(t, err, "invalid_grant")
		})
		t.Run("tampered id_token_hint", func(t *testing.T) {
			br := harness.NewBrowser(t).StopAt(rpRedirect)
			_, _, raw := shop.login(br)
			parts := strings.Split(raw, ".")
			payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
			forged := strings.Replace(string(payload), `"sub":"`, `"sub":"x`, 1)
			hint := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(forged)) + "." + parts[2]
			loc := shop.authorize(br, oauth2.S256ChallengeOption(oauth2.GenerateVerifier()),
				oauth2.SetAuthURLParam("prompt", "none"), oauth2.SetAuthURLParam("id_token_hint", hint))
			if e := loc.Query().Get("error"); e != "invalid_request" && e != "login_required" {
				t.Errorf("tampered id_token_hint: %s", loc)
			}
		})
		// Last: it moves the store's clock past the code's lifetime.
		t.Run("expired code", func(t *testing.T) {
			v := oauth2.GenerateVerifier()
			code := codeFor(t, shop, v)
			clk.add(2 * time.Minute)
			_, err := shop.conf.Exchange(shop.ctx, code, oauth2.VerifierOption(v))
			wantOAuthError(t, err, "invalid_grant")
		})
	})
}

// codeFor runs a login and returns the authorization code.
func codeFor(t *testing.T, r *rp, verifier string) string {
	t.Helper()
	loc := r.authorize(harness.NewBrowser(t).StopAt(rpRedirect), oauth2.S256ChallengeOption(verifier))
	code := loc.Query().Get("code")
	if code == "" {
		t.Fatalf("no code: %s", loc)
	}
	return code
}

func wantOAuthError(t *testing.T, err error, code string) {
	t.Helper()
	var re *oauth2.RetrieveError
	if err == nil || !strings.Contains(err.Error(), code) {
		t.Errorf("error %v, want %s", err, code)
		return
	}
	_ = re
}

func TestOIDCFormPostAndPAR(t *testing.T) {
	dbtest.ForEach(t, testFormPostAndPAR)
}

func testFormPostAndPAR(t *testing.T, dsn string) {
	b, _ := startOIDC(t, dsn)
	shop := newRP(t, b, "shop", shopSecret)
	br := harness.NewBrowser(t).StopAt(rpRedirect)
	v := oauth2.GenerateVerifier()
	page := br.Get(shop.conf.AuthCodeURL("state-form-post", oauth2.S256ChallengeOption(v), oauth2.SetAuthURLParam("response_mode", "form_post")))
	page = choose(t, br, page, "eid-fake")
	if page.Status != 200 || !strings.Contains(page.Body, `action="`+rpRedirect+`"`) || !strings.Contains(page.Body, `/assets/form_post.js`) {
		t.Fatalf("form_post page: %d\n%s", page.Status, page.Body)
	}
	code := regexp.MustCompile(`name="code" value="([^"]+)"`).FindStringSubmatch(page.Body)
	if code == nil || !strings.Contains(page.Body, `name="state" value="state-form-post"`) {
		t.Fatalf("form_post fields missing:\n%s", page.Body)
	}
	if _, err := shop.conf.Exchange(shop.ctx, code[1], oauth2.VerifierOption(v)); err != nil {
		t.Errorf("exchange of a form_post code: %v", err)
	}

	// Pushed authorization request (RFC 9126).
	v = oauth2.GenerateVerifier()
	authURL, _ := url.Parse(shop.conf.AuthCodeURL("state-pushed-request", oauth2.S256ChallengeOption(v)))
	status, out := postForm(t, b.URL+"/oauth2/par", authURL.Query(), "shop", shopSecret)
	requestURI, _ := out["request_uri"].(string)
	if status != 201 || !strings.HasPrefix(requestURI, "urn:ietf:params:oauth:request_uri:") {
		t.Fatalf("PAR: %d %v", status, out)
	}
	q := url.Values{"client_id": {"shop"}, "request_uri": {requestURI}}
	page = br.Get(b.URL + "/oauth2/auth?" + q.Encode())
	loc := page.Location(t)
	if loc.Query().Get("state") != "state-pushed-request" || loc.Query().Get("code") == "" {
		t.Fatalf("PAR authorization: %s", loc)
	}
	if _, err := shop.conf.Exchange(shop.ctx, loc.Query().Get("code"), oauth2.VerifierOption(v)); err != nil {
		t.Errorf("exchange after PAR: %v", err)
	}
	again := harness.NewBrowser(t).StopAt(rpRedirect).Get(b.URL + "/oauth2/auth?" + q.Encode())
	if again.Status < 400 && again.Header.Get("Location") != "" && !strings.Contains(again.Header.Get("Location"), "error=") {
		t.Errorf("a request_uri worked twice: %d %s", again.Status, again.Header.Get("Location"))
	}

	// A client that must push its requests is refused a plain one.
	pushy := newRP(t, b, "pushy", shopSecret)
	loc = pushy.authorize(harness.NewBrowser(t).StopAt(rpRedirect), oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
	if loc.Query().Get("error") != "invalid_request" {
		t.Errorf("require_par client without PAR: %s", loc)
	}
	authURL, _ = url.Parse(pushy.conf.AuthCodeURL("state-pushy-0123456", oauth2.S256ChallengeOption(v)))
	status, out = postForm(t, b.URL+"/oauth2/par", authURL.Query(), "pushy", shopSecret)
	if status != 201 {
		t.Fatalf("PAR for require_par client: %d %v", status, out)
	}
	page = br.Get(b.URL + "/oauth2/auth?" + url.Values{"client_id": {"pushy"}, "request_uri": {out["request_uri"].(string)}}.Encode())
	if loc := page.Location(t); loc.Query().Get("code") == "" {
		t.Errorf("require_par client with PAR: %s", loc)
	}
}

func TestOIDCDiscovery(t *testing.T) {
	b, _ := startOIDC(t, dbtest.SQLite(t))
	resp, err := http.Get(b.URL + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	if d["issuer"] != b.URL || d["jwks_uri"] != b.URL+"/jwks.json" || d["claims_parameter_supported"] != true ||
		d["authorization_response_iss_parameter_supported"] != true {
		t.Errorf("discovery: %v", d)
	}
	for _, k := range []string{"response_types_supported", "grant_types_supported", "code_challenge_methods_supported", "acr_values_supported", "trust_frameworks_supported"} {
		if d[k] == nil {
			t.Errorf("discovery lacks %s", k)
		}
	}
	if rt, _ := json.Marshal(d["response_types_supported"]); string(rt) != `["code"]` {
		t.Errorf("response types %s: only code", rt)
	}
	if gt, _ := json.Marshal(d["grant_types_supported"]); strings.Contains(string(gt), "password") || strings.Contains(string(gt), "implicit") {
		t.Errorf("grant types %s", gt)
	}
}

func TestOIDCLogout(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		bcURL, tokens := backchannelReceiver(t)
		b, _ := startOIDCWith(t, dsn, bcURL)
		portal := newRP(t, b, "portal", portalSecret, gooidc.ScopeOpenID, "profile")
		br := harness.NewBrowser(t).StopAt("http://localhost/rp/")
		_, idt, raw := portal.login(br)
		var idc struct {
			SID string `json:"sid"`
		}
		_ = idt.Claims(&idc)

		logout := func(q url.Values) *harness.Page { return br.Get(b.URL + "/oauth2/logout?" + q.Encode()) }
		t.Run("unregistered post_logout_redirect_uri", func(t *testing.T) {
			p := logout(url.Values{"id_token_hint": {raw}, "post_logout_redirect_uri": {"https://evil.example/"}})
			if p.Status != http.StatusBadRequest || p.Header.Get("Location") != "" {
				t.Errorf("%d %q", p.Status, p.Header.Get("Location"))
			}
		})
		t.Run("tampered id_token_hint", func(t *testing.T) {
			p := logout(url.Values{"id_token_hint": {raw[:len(raw)-4] + "AAAA"}, "post_logout_redirect_uri": {"http://localhost/rp/logged-out"}})
			if p.Status != http.StatusBadRequest || p.Header.Get("Location") != "" {
				t.Errorf("%d %q", p.Status, p.Header.Get("Location"))
			}
		})
		t.Run("no hint asks first", func(t *testing.T) {
			p := logout(url.Values{"client_id": {"portal"}})
			if p.Status != http.StatusOK || !strings.Contains(p.Body, `name="confirm"`) {
				t.Fatalf("no confirmation page: %d", p.Status)
			}
			if forged := br.Post(b.URL+"/oauth2/logout", url.Values{"confirm": {"yes"}, "csrf": {"forged"}}); forged.Status != http.StatusBadRequest {
				t.Errorf("confirmation without a valid token: %d", forged.Status)
			}
			select {
			case tok := <-tokens:
				t.Fatalf("logged out without confirmation: %s", tok)
			default:
			}
		})
		t.Run("RP-initiated with back-channel delivery", func(t *testing.T) {
			p := logout(url.Values{"id_token_hint": {raw}, "post_logout_redirect_uri": {"http://localhost/rp/logged-out"}, "state": {"bye-state"}})
			loc := p.Location(t)
			if loc.Path != "/rp/logged-out" || loc.Query().Get("state") != "bye-state" {
				t.Fatalf("post-logout redirect %s", loc)
			}
			var lt string
			select {
			case lt = <-tokens:
			case <-time.After(15 * time.Second):
				t.Fatal("no back-channel logout token arrived")
			}
			v := portal.provider.Verifier(&gooidc.Config{ClientID: "portal", SupportedSigningAlgs: []string{"RS256"}})
			tok, err := v.Verify(context.Background(), lt)
			if err != nil {
				t.Fatalf("logout token: %v", err)
			}
			var c struct {
				SID    string         `json:"sid"`
				Events map[string]any `json:"events"`
				Nonce  *string        `json:"nonce"`
			}
			_ = tok.Claims(&c)
			if c.SID != idc.SID || tok.Subject != idt.Subject || c.Nonce != nil || c.Events["http://schemas.openid.net/event/backchannel-logout"] == nil {
				t.Errorf("logout token claims %+v sub %s", c, tok.Subject)
			}
			if typ := jwsHeader(t, lt)["typ"]; typ != "logout+jwt" {
				t.Errorf("logout token typ %v", typ)
			}
			// The SSO session is gone: a silent login fails.
			loc = portal.authorize(br, oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("prompt", "none"))
			if loc.Query().Get("error") != "login_required" {
				t.Errorf("session survived logout: %s", loc)
			}
		})
	})
}

// clientAssertion is a private_key_jwt assertion (RFC 7523 §3).
func clientAssertion(t *testing.T, key *ecdsa.PrivateKey, aud string, exp time.Time, jti string) string {
	t.Helper()
	sg, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(map[string]any{"iss": "keyclient", "sub": "keyclient", "aud": aud, "jti": jti,
		"iat": time.Now().Unix(), "exp": exp.Unix()})
	jws, err := sg.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := jws.CompactSerialize()
	return out
}

func TestOIDCPrivateKeyJWT(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		b, _, key := startOIDCKeys(t, dsn, "https://portal.example/backchannel")
		tokenURL := b.URL + "/oauth2/token"
		request := func(assertion string) (int, map[string]any) {
			return postForm(t, tokenURL, url.Values{"grant_type": {"client_credentials"}, "scope": {"orders.read"}, "client_id": {"keyclient"},
				"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}}, "", "")
		}
		good := clientAssertion(t, key, tokenURL, time.Now().Add(time.Minute), randomString())
		if status, out := request(good); status != 200 || out["access_token"] == nil {
			t.Fatalf("private_key_jwt: %d %v", status, out)
		}
		if status, out := request(good); status != 401 || out["error"] != "invalid_client" {
			t.Errorf("replayed client assertion (fosite CVE-2020-15222): %d %v", status, out)
		}
		other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		for name, a := range map[string]string{
			"wrong audience": clientAssertion(t, key, b.URL+"/oauth2/other", time.Now().Add(time.Minute), randomString()),
			"expired":        clientAssertion(t, key, tokenURL, time.Now().Add(-time.Minute), randomString()),
			"foreign key":    clientAssertion(t, other, tokenURL, time.Now().Add(time.Minute), randomString()),
		} {
			if status, out := request(a); status != 401 || out["error"] != "invalid_client" {
				t.Errorf("%s: %d %v", name, status, out)
			}
		}
	})
}

// TestOIDCJWTAccessTokens: RFC 9068 access tokens for clients that ask for
// them, verifiable with the JWKS, and still revocable and introspectable
// (client_credentials ones are not stored: revocation records their jti).
func TestOIDCJWTAccessTokens(t *testing.T) {
	b, _ := startOIDC(t, dbtest.SQLite(t))
	status, out := postForm(t, b.URL+"/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"orders.read"}}, "svcjwt", svcSecret)
	if status != 200 {
		t.Fatalf("client_credentials: %d %v", status, out)
	}
	at := out["access_token"].(string)
	hdr := jwsHeader(t, at)
	if hdr["typ"] != "at+jwt" || hdr["alg"] != "ES256" {
		t.Errorf("JWT access token header %v", hdr)
	}
	ks := gooidc.NewRemoteKeySet(context.Background(), b.URL+"/jwks.json")
	payload, err := ks.VerifySignature(context.Background(), at)
	if err != nil {
		t.Fatalf("JWT access token does not verify with the JWKS: %v", err)
	}
	var c map[string]any
	_ = json.Unmarshal(payload, &c)
	if c["iss"] != b.URL || c["client_id"] != "svcjwt" || c["sub"] != "svcjwt" || c["scope"] != "orders.read" || c["jti"] == nil || c["exp"] == nil {
		t.Errorf("JWT access token claims %v", c)
	}
	if in := introspect(t, b, at); in["active"] != true || in["client_id"] != "svcjwt" {
		t.Errorf("introspection: %v", in)
	}
	// Only the client it was issued to may revoke it (RFC 7009 §2.1).
	if status, _ := postForm(t, b.URL+"/oauth2/revoke", url.Values{"token": {at}}, "svc", svcSecret); status != 200 {
		t.Errorf("revoke by another client: %d", status)
	}
	if in := introspect(t, b, at); in["active"] != true {
		t.Errorf("another client revoked the token: %v", in)
	}
	if status, _ := postForm(t, b.URL+"/oauth2/revoke", url.Values{"token": {at}}, "svcjwt", svcSecret); status != 200 {
		t.Errorf("revoke: %d", status)
	}
	if in := introspect(t, b, at); in["active"] != false {
		t.Errorf("revoked JWT access token still active: %v", in)
	}
	// A tampered token is not active.
	parts := strings.Split(at, ".")
	forged := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
	if in := introspect(t, b, forged); in["active"] != false {
		t.Errorf("forged JWT access token active: %v", in)
	}
}

// TestOIDCVerifiedClaims: an identity from an eID card reaches a client
// that asks for verified_claims in OIDC4IDA form, with only consented
// claims inside.
func TestOIDCVerifiedClaims(t *testing.T) {
	b, _ := startOIDC(t, dbtest.SQLite(t))
	shop := newRP(t, b, "shop", shopSecret, gooidc.ScopeOpenID, "profile")
	br := harness.NewBrowser(t).StopAt(rpRedirect)
	v := oauth2.GenerateVerifier()
	loc := shop.authorize(br, oauth2.S256ChallengeOption(v),
		oauth2.SetAuthURLParam("claims", `{"userinfo":{"verified_claims":{"verification":{"trust_framework":null},"claims":{"given_name":null}}}}`))
	tok, err := shop.conf.Exchange(shop.ctx, loc.Query().Get("code"), oauth2.VerifierOption(v))
	if err != nil {
		t.Fatal(err)
	}
	info, err := shop.provider.UserInfo(shop.ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		VerifiedClaims struct {
			Verification struct {
				TrustFramework string            `json:"trust_framework"`
				Evidence       []json.RawMessage `json:"evidence"`
			} `json:"verification"`
			Claims map[string]any `json:"claims"`
		} `json:"verified_claims"`
	}
	if err := info.Claims(&c); err != nil {
		t.Fatal(err)
	}
	vc := c.VerifiedClaims
	if vc.Verification.TrustFramework != "de_aml" || len(vc.Verification.Evidence) != 1 || vc.Claims["given_name"] != "Erika" {
		t.Errorf("verified_claims %+v", vc)
	}
	if _, ok := vc.Claims["email"]; ok {
		t.Error("a claim outside the requested scopes is inside verified_claims")
	}
	// Without the claims request there is no verified_claims.
	_, idt, _ := shop.login(br)
	var plain map[string]any
	_ = idt.Claims(&plain)
	if _, ok := plain["verified_claims"]; ok {
		t.Error("verified_claims without a request")
	}
}

// TestOIDCCORS: browser-based public clients may call the token endpoint
// from their origin; other origins get no CORS headers.
func TestOIDCCORS(t *testing.T) {
	b, _ := startOIDC(t, dbtest.SQLite(t))
	for _, tc := range []struct {
		origin string
		allow  bool
	}{{"http://localhost", true}, {"https://evil.example", false}} {
		req, _ := http.NewRequest(http.MethodOptions, b.URL+"/oauth2/token", nil)
		req.Header.Set("Origin", tc.origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "dpop, content-type")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		got := resp.Header.Get("Access-Control-Allow-Origin")
		if (got == tc.origin) != tc.allow || resp.StatusCode != http.StatusNoContent {
			t.Errorf("preflight from %s: %d allow-origin %q", tc.origin, resp.StatusCode, got)
		}
		if tc.allow && !strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "DPoP") {
			t.Errorf("DPoP header not allowed: %v", resp.Header)
		}
	}
}

// backchannelReceiver is a relying party's back-channel logout endpoint on
// loopback: it returns the URL to register (named localhost, as redirect
// URIs must be https or loopback http) and the logout tokens it receives.
func backchannelReceiver(t *testing.T) (string, <-chan string) {
	t.Helper()
	tokens := make(chan string, 4)
	bc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		tokens <- r.PostForm.Get("logout_token")
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(bc.Close)
	return strings.Replace(bc.URL, "127.0.0.1", "localhost", 1) + "/bc", tokens
}
