package conformance_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/trustbroker/trustbroker/conformance/dbtest"
	"github.com/trustbroker/trustbroker/conformance/harness"
)

// dpopKey is a client's DPoP key pair.
type dpopKey struct {
	priv *ecdsa.PrivateKey
	jkt  string
}

func newDPoPKey(t *testing.T) *dpopKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tp, err := (&jose.JSONWebKey{Key: &k.PublicKey}).Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return &dpopKey{priv: k, jkt: base64.RawURLEncoding.EncodeToString(tp)}
}

// proof builds a DPoP proof (RFC 9449 §4.2) for method and URL, with ath
// when an access token is given.
func (k *dpopKey) proof(t *testing.T, method, u, accessToken string) string {
	t.Helper()
	return k.proofNonce(t, method, u, accessToken, "")
}

// proofNonce is proof with a server-provided nonce (RFC 9449 §8).
func (k *dpopKey) proofNonce(t *testing.T, method, u, accessToken, nonce string) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("dpop+jwt").WithHeader("jwk", jose.JSONWebKey{Key: &k.priv.PublicKey})
	sg, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k.priv}, opts)
	if err != nil {
		t.Fatal(err)
	}
	claims := map[string]any{"jti": randomString(), "htm": method, "htu": u, "iat": time.Now().Unix()}
	if accessToken != "" {
		sum := sha256.Sum256([]byte(accessToken))
		claims["ath"] = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	if nonce != "" {
		claims["nonce"] = nonce
	}
	payload, _ := json.Marshal(claims)
	jws, err := sg.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := jws.CompactSerialize()
	return s
}

// tokenRequest posts to the token endpoint with an optional DPoP proof.
func tokenRequest(t *testing.T, b *harness.Broker, form url.Values, proof string) (int, map[string]any, http.Header) {
	t.Helper()
	var hdr map[string]string
	if proof != "" {
		hdr = map[string]string{"DPoP": proof}
	}
	return postWith(t, b.URL+"/oauth2/token", form, "", "", hdr)
}

// resource calls userinfo with a scheme, token and optional proof.
func resource(t *testing.T, b *harness.Broker, scheme, token, proof string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.URL+"/oauth2/userinfo", nil)
	req.Header.Set("Authorization", scheme+" "+token)
	if proof != "" {
		req.Header.Set("DPoP", proof)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
}

func TestOIDCDPoP(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		b, _ := startOIDC(t, dsn)
		mobile := newRP(t, b, "mobile", "", "openid", "profile", "offline_access")
		key := newDPoPKey(t)
		tokenURL := b.URL + "/oauth2/token"

		code := func(opts ...oauth2.AuthCodeOption) (string, string) {
			v := oauth2.GenerateVerifier()
			loc := mobile.authorize(harness.NewBrowser(t).StopAt(rpRedirect), append(opts, oauth2.S256ChallengeOption(v))...)
			if loc.Query().Get("code") == "" {
				t.Fatalf("no code: %s", loc)
			}
			return loc.Query().Get("code"), v
		}
		exchange := func(c, v, proof string) (int, map[string]any, http.Header) {
			return tokenRequest(t, b, url.Values{"grant_type": {"authorization_code"}, "code": {c}, "code_verifier": {v},
				"client_id": {"mobile"}, "redirect_uri": {rpRedirect}}, proof)
		}

		t.Run("proof required", func(t *testing.T) {
			c, v := code()
			status, out, _ := exchange(c, v, "")
			if status != 400 || out["error"] != "invalid_dpop_proof" {
				t.Errorf("no proof: %d %v", status, out)
			}
		})
		t.Run("proof for the wrong URL or method", func(t *testing.T) {
			for _, p := range []string{key.proof(t, "POST", b.URL+"/oauth2/other", ""), key.proof(t, "GET", tokenURL, "")} {
				c, v := code()
				if status, out, _ := exchange(c, v, p); status != 400 || out["error"] != "invalid_dpop_proof" {
					t.Errorf("wrong htu/htm: %d %v", status, out)
				}
			}
		})
		t.Run("replayed proof", func(t *testing.T) {
			p := key.proof(t, "POST", tokenURL, "")
			c, v := code()
			if status, out, _ := exchange(c, v, p); status != 200 {
				t.Fatalf("first use: %d %v", status, out)
			}
			c, v = code()
			if status, out, _ := exchange(c, v, p); status != 400 || out["error"] != "invalid_dpop_proof" {
				t.Errorf("replayed proof: %d %v", status, out)
			}
		})
		t.Run("dpop_jkt binds the code", func(t *testing.T) {
			c, v := code(oauth2.SetAuthURLParam("dpop_jkt", key.jkt))
			other := newDPoPKey(t)
			if status, out, _ := exchange(c, v, other.proof(t, "POST", tokenURL, "")); status != 400 || out["error"] != "invalid_dpop_proof" {
				t.Errorf("code bound to another key: %d %v", status, out)
			}
		})
		t.Run("bound flow", func(t *testing.T) {
			c, v := code(oauth2.SetAuthURLParam("dpop_jkt", key.jkt))
			status, out, hdr := exchange(c, v, key.proof(t, "POST", tokenURL, ""))
			if status != 200 || out["token_type"] != "DPoP" || hdr.Get("DPoP-Nonce") == "" {
				t.Fatalf("bound exchange: %d %v", status, out)
			}
			at, rt := out["access_token"].(string), out["refresh_token"].(string)
			if s, _ := resource(t, b, "DPoP", at, key.proof(t, "GET", b.URL+"/oauth2/userinfo", at)); s != 200 {
				t.Errorf("userinfo with proof: %d", s)
			}
			if s, www := resource(t, b, "Bearer", at, ""); s != 401 || !strings.Contains(www, "invalid_token") {
				t.Errorf("bound token used as bearer: %d %q", s, www)
			}
			if s, _ := resource(t, b, "DPoP", at, key.proof(t, "GET", b.URL+"/oauth2/userinfo", "another-token")); s != 401 {
				t.Errorf("proof with a wrong ath: %d", s)
			}
			if s, _ := resource(t, b, "DPoP", at, newDPoPKey(t).proof(t, "GET", b.URL+"/oauth2/userinfo", at)); s != 401 {
				t.Errorf("proof by another key: %d", s)
			}
			if in := introspect(t, b, at); in["token_type"] != "DPoP" || in["cnf"] == nil || in["cnf"].(map[string]any)["jkt"] != key.jkt {
				t.Errorf("introspection of a bound token: %v", in)
			}
			// A public client's refresh token is bound to its key.
			refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"mobile"}}
			if status, out, _ := tokenRequest(t, b, refresh, newDPoPKey(t).proof(t, "POST", tokenURL, "")); status != 400 || out["error"] != "invalid_dpop_proof" {
				t.Errorf("refresh with another key: %d %v", status, out)
			}
		})
		t.Run("bound refresh", func(t *testing.T) {
			c, v := code()
			_, out, _ := exchange(c, v, key.proof(t, "POST", tokenURL, ""))
			refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {out["refresh_token"].(string)}, "client_id": {"mobile"}}
			status, out, _ := tokenRequest(t, b, refresh, key.proof(t, "POST", tokenURL, ""))
			if status != 200 || out["token_type"] != "DPoP" {
				t.Errorf("refresh with the same key: %d %v", status, out)
			}
		})
	})
}

// TestOIDCDPoPNonce: with dpop_require_nonce, a proof without a server
// nonce is answered use_dpop_nonce with a fresh nonce, which the retry
// carries (RFC 9449 §8); a forged nonce is refused the same way.
func TestOIDCDPoPNonce(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		b, _, _ := startOIDCExtra(t, dsn, "https://portal.example/backchannel", "\noidc:\n  dpop_require_nonce: true\n")
		mobile := newRP(t, b, "mobile", "", "openid", "profile")
		key := newDPoPKey(t)
		tokenURL := b.URL + "/oauth2/token"
		v := oauth2.GenerateVerifier()
		loc := mobile.authorize(harness.NewBrowser(t).StopAt(rpRedirect), oauth2.S256ChallengeOption(v))
		form := url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")}, "code_verifier": {v},
			"client_id": {"mobile"}, "redirect_uri": {rpRedirect}}
		status, out, hdr := tokenRequest(t, b, form, key.proof(t, "POST", tokenURL, ""))
		nonce := hdr.Get("DPoP-Nonce")
		if status != 400 || out["error"] != "use_dpop_nonce" || nonce == "" {
			t.Fatalf("proof without nonce: %d %v nonce %q", status, out, nonce)
		}
		if status, out, _ := tokenRequest(t, b, form, key.proofNonce(t, "POST", tokenURL, "", "forged-nonce")); status != 400 || out["error"] != "use_dpop_nonce" {
			t.Errorf("forged nonce: %d %v", status, out)
		}
		status, out, _ = tokenRequest(t, b, form, key.proofNonce(t, "POST", tokenURL, "", nonce))
		if status != 200 || out["token_type"] != "DPoP" {
			t.Errorf("retry with the server nonce: %d %v", status, out)
		}
	})
}
