package conformance_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/trustbroker/trustbroker/conformance/dbtest"
	"github.com/trustbroker/trustbroker/conformance/harness"
	"github.com/trustbroker/trustbroker/providers/smartcard/testpki"
)

const cardBoundYAML = `
server:
  card_login:
    listen: "{{card_listen}}"
    url: "https://{{card_listen}}"
    cert_file: "{{dir}}/server.pem"
    key_file: "{{dir}}/server.key"
providers:
  - id: employee-card
    type: smartcard
    name: {de: Dienstausweis, en: Employee card}
    config:
      family: employee
      trust_anchors: ["{{dir}}/root.pem"]
      intermediates: ["{{dir}}/inter.pem"]
      subject_attribute: 2.16.840.1.113730.3.1.3
      revocation: {mode: soft} # this PKI has no responder
relying_parties:
  - id: bound
    name: {en: Card-bound app}
    protocol: oidc
    accepted_credentials: [smartcard]
    claims: [{name: given_name, purpose: {en: greeting}}]
    oidc:
      redirect_uris: [` + rpRedirect + `]
      client_secret: ` + shopSecret + `
      access_token_format: jwt
      tls_client_certificate_bound_access_tokens: true
  - id: plain
    name: {en: Plain app}
    protocol: oidc
    accepted_credentials: [smartcard]
    claims: [{name: given_name, purpose: {en: greeting}}]
    oidc:
      redirect_uris: [` + rpRedirect + `]
      client_secret: ` + shopSecret + `
      access_token_format: jwt
  - id: rs
    name: {en: Resource server}
    protocol: oidc
    accepted_credentials: [smartcard]
    oidc:
      redirect_uris: [https://rs.example/unused]
      client_secret: ` + rsSecret + `
      grant_types: [client_credentials]
      introspection: true
`

// cardClient is a TLS client presenting a card (nil: none).
func cardClient(t *testing.T, key *testpki.Key, chain ...[]byte) *http.Transport {
	t.Helper()
	tc := &tls.Config{InsecureSkipVerify: true} // the test listener's self-signed server certificate
	if key != nil {
		tc.Certificates = []tls.Certificate{testpki.TLSCertificate(key, chain...)}
	}
	return &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true}
}

// cardTokens logs in at client with the card over the card-login listener
// and exchanges the code.
func cardTokens(t *testing.T, b *harness.Broker, client string, tr http.RoundTripper) *oauth2.Token {
	t.Helper()
	r := newRP(t, b, client, shopSecret, gooidc.ScopeOpenID, "profile")
	br := harness.NewBrowser(t).StopAt(rpRedirect)
	br.Transport = tr
	verifier := oauth2.GenerateVerifier()
	page := br.Get(r.conf.AuthCodeURL(randomString(), oauth2.S256ChallengeOption(verifier), gooidc.Nonce(randomString())))
	page = choose(t, br, page, "employee-card")
	loc := page.Location(t)
	if loc.Query().Get("code") == "" {
		t.Fatalf("authorization response %s", loc)
	}
	tok, err := r.conf.Exchange(r.ctx, loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("code exchange: %v", err)
	}
	return tok
}

// userinfoAt calls userinfo at base with a bearer token over tr.
func userinfoAt(t *testing.T, tr http.RoundTripper, base, token string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/oauth2/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header.Get("WWW-Authenticate")
}

// TestCardBoundAccessTokens: a client registered with
// tls_client_certificate_bound_access_tokens gets access tokens bound to
// the card of a login over the card-login TLS listener (RFC 8705
// cnf.x5t#S256, in the JWT and in introspection); userinfo answers only
// on a connection presenting the same certificate. A client without the
// registration gets plain bearer tokens from the same card.
func TestCardBoundAccessTokens(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		now := time.Now()
		root := testpki.NewRoot("Card Root", testpki.P256, now)
		inter := root.NewIntermediate("Card Issuing CA", testpki.P256, now)
		b := startCardBroker(t, cardBoundYAML, dsn, t.TempDir(), root, inter, nil, harness.Options{})
		cardURL := b.Server.Config.Server.CardLogin.URL

		key := testpki.NewKey(testpki.P256)
		leaf := inter.Issue(testpki.Employee("Max", "Muster", "Beispiel AG", "max@example.org", "E-4711", now), key)
		sum := sha256.Sum256(leaf)
		x5t := base64.RawURLEncoding.EncodeToString(sum[:])
		card := cardClient(t, key, leaf, inter.DER)

		tok := cardTokens(t, b, "bound", card)
		payload, err := gooidc.NewRemoteKeySet(context.Background(), b.URL+"/jwks.json").VerifySignature(context.Background(), tok.AccessToken)
		if err != nil {
			t.Fatalf("JWT access token: %v", err)
		}
		var claims struct {
			Cnf map[string]string `json:"cnf"`
		}
		_ = json.Unmarshal(payload, &claims)
		if claims.Cnf["x5t#S256"] != x5t {
			t.Fatalf("JWT access token cnf %v, want x5t#S256 %s", claims.Cnf, x5t)
		}
		in := introspect(t, b, tok.AccessToken)
		if cnf, _ := in["cnf"].(map[string]any); in["active"] != true || cnf["x5t#S256"] != x5t || in["token_type"] != "Bearer" {
			t.Fatalf("introspection %v", in)
		}

		// The card holder's client on the card-login listener: answered.
		status, body, _ := userinfoAt(t, card, cardURL, tok.AccessToken)
		if status != http.StatusOK || !strings.Contains(body, `"given_name":"Max"`) {
			t.Fatalf("userinfo with the card: %d %s", status, body)
		}
		// Without the certificate, with another card from the same CA,
		// or on the main listener: 401 invalid_token.
		otherKey := testpki.NewKey(testpki.P256)
		other := inter.Issue(testpki.Employee("Max", "Muster", "Beispiel AG", "max@example.org", "E-4711", now), otherKey)
		for name, tc := range map[string]struct {
			tr   http.RoundTripper
			base string
		}{
			"no certificate": {cardClient(t, nil), cardURL},
			"another card":   {cardClient(t, otherKey, other, inter.DER), cardURL},
			"main listener":  {http.DefaultTransport, b.URL},
		} {
			status, body, wa := userinfoAt(t, tc.tr, tc.base, tok.AccessToken)
			if status != http.StatusUnauthorized || !strings.Contains(wa, `error="invalid_token"`) {
				t.Errorf("%s: %d %q %s", name, status, wa, body)
			}
		}

		// The same card at a client without the registration: unbound.
		plain := cardTokens(t, b, "plain", card)
		payload, err = gooidc.NewRemoteKeySet(context.Background(), b.URL+"/jwks.json").VerifySignature(context.Background(), plain.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(payload), "cnf") {
			t.Errorf("unbound client's token has cnf: %s", payload)
		}
		if status, body, _ := userinfoAt(t, http.DefaultTransport, b.URL, plain.AccessToken); status != http.StatusOK {
			t.Errorf("plain bearer token at userinfo: %d %s", status, body)
		}
	})
}
