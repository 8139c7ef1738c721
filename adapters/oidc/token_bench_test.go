package oidc

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/broker/keys"
	"github.com/trustbroker/trustbroker/broker/store/sqlstore"
	"github.com/trustbroker/trustbroker/conformance/dbtest"
)

const benchSecret = "bench-secret-0123456789-0123456789-0123"

// tokenFixture is a Provider over a SQLite (or given) store with service
// clients, for the token endpoint's benchmarks and table tests.
type tokenFixture struct {
	p *Provider
}

func newTokenFixture(tb testing.TB, dsn string, extra ...*config.RelyingParty) *tokenFixture {
	tb.Helper()
	st, err := sqlstore.Open(tb.Context(), dsn, sqlstore.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(tb.Context()); err != nil {
		tb.Fatal(err)
	}
	mk, err := keys.NewMasterKey(nil)
	if err != nil {
		tb.Fatal(err)
	}
	km := keys.NewManager(st.Keys(), mk, keys.Options{RSABits: keys.MinRSABits})
	if err := km.Ensure(tb.Context(), keys.RS256, keys.ES256); err != nil {
		tb.Fatal(err)
	}
	if err := km.Reload(tb.Context()); err != nil {
		tb.Fatal(err)
	}
	clients := []*config.RelyingParty{
		{ID: "svc", Protocol: "oidc", OIDC: &config.OIDC{RedirectURIs: []string{"https://svc.example/x"},
			ClientSecret: benchSecret, TokenEndpointAuthMethod: "client_secret_basic", GrantTypes: []string{"client_credentials"}, Scopes: []string{"api", "other", "read&write<all>"}}},
		{ID: "svcjwt", Protocol: "oidc", OIDC: &config.OIDC{RedirectURIs: []string{"https://svc.example/x"},
			ClientSecret: benchSecret, TokenEndpointAuthMethod: "client_secret_basic", GrantTypes: []string{"client_credentials"}, Scopes: []string{"api", "other", "read&write<all>"}, AccessTokenFormat: "jwt"}},
		{ID: "rs", Protocol: "oidc", OIDC: &config.OIDC{RedirectURIs: []string{"https://rs.example/x"},
			ClientSecret: benchSecret, TokenEndpointAuthMethod: "client_secret_basic", GrantTypes: []string{"client_credentials"}, Introspection: true}},
	}
	clients = append(clients, extra...)
	p, err := New(Options{Issuer: "https://op.example", Store: st, Keys: km, Clients: clients,
		HMACKey: []byte(strings.Repeat("k", 32)), DPoPNonceKey: []byte(strings.Repeat("n", 32)),
		Now: time.Now, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatal(err)
	}
	return &tokenFixture{p: p}
}

// post sends a form to h with client_secret_basic credentials (none when
// id is empty).
func post(h http.HandlerFunc, path, id, secret string, form url.Values) *httptest.ResponseRecorder {
	r := httptest.NewRequest("POST", path, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		r.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	w := httptest.NewRecorder()
	h(w, r)
	return w
}

func (f *tokenFixture) token(tb testing.TB, id string) string {
	tb.Helper()
	w := post(f.p.handleToken, PathToken, id, benchSecret, url.Values{"grant_type": {"client_credentials"}, "scope": {"api"}})
	if w.Code != 200 {
		tb.Fatalf("token: %d %s", w.Code, w.Body)
	}
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		tb.Fatal(err)
	}
	return out.AccessToken
}

func benchmarkClientCredentials(b *testing.B, id string) {
	f := newTokenFixture(b, dbtest.SQLite(b))
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"api"}}
	b.ReportAllocs()
	for b.Loop() {
		if w := post(f.p.handleToken, PathToken, id, benchSecret, form); w.Code != 200 {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
}

// BenchmarkClientCredentialsJWT: an ES256 JWT access token (not stored).
func BenchmarkClientCredentialsJWT(b *testing.B) { benchmarkClientCredentials(b, "svcjwt") }

// BenchmarkClientCredentialsOpaque: an opaque access token (one insert).
func BenchmarkClientCredentialsOpaque(b *testing.B) { benchmarkClientCredentials(b, "svc") }

func benchmarkIntrospect(b *testing.B, id string) {
	f := newTokenFixture(b, dbtest.SQLite(b))
	form := url.Values{"token": {f.token(b, id)}}
	b.ReportAllocs()
	for b.Loop() {
		w := post(f.p.handleIntrospect, PathIntrospect, "rs", benchSecret, form)
		if w.Code != 200 || !strings.Contains(w.Body.String(), `"active":true`) {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
}

// BenchmarkIntrospectOpaque: introspection of a stored token.
func BenchmarkIntrospectOpaque(b *testing.B) { benchmarkIntrospect(b, "svc") }

// BenchmarkIntrospectJWT: introspection of a self-contained service token.
func BenchmarkIntrospectJWT(b *testing.B) { benchmarkIntrospect(b, "svcjwt") }

// TestServiceTokens: a JWT service token from the token endpoint carries
// the cached header of the active ES256 key and verifies; introspection
// of an opaque token decodes the stored request and session in one pass
// and answers every RFC 7662 field.
func TestServiceTokens(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		f := newTokenFixture(t, dsn)
		for range 2 { // the second token uses the cached header
			raw := f.token(t, "svcjwt")
			tok, err := f.p.signer.Decode(t.Context(), raw)
			if err != nil {
				t.Fatal(err)
			}
			sg, _ := f.p.o.Keys.Signer(keys.ES256)
			if tok.Header["kid"] != sg.KID || tok.Header["typ"] != "at+jwt" || tok.Header["alg"] != "ES256" {
				t.Fatalf("header %v", tok.Header)
			}
			if c := tok.Claims; c["sub"] != "svcjwt" || c["client_id"] != "svcjwt" || c["scope"] != "api" || c["iss"] != "https://op.example" {
				t.Fatalf("claims %v", c)
			}
		}
		opaque := f.token(t, "svc")
		w := post(f.p.handleIntrospect, PathIntrospect, "rs", benchSecret, url.Values{"token": {opaque}})
		var got map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || w.Code != 200 {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		for k, v := range map[string]any{"active": true, "client_id": "svc", "sub": "svc", "scope": "api",
			"token_type": "Bearer", "iss": "https://op.example"} {
			if got[k] != v {
				t.Errorf("%s = %v, want %v (%s)", k, got[k], v, w.Body)
			}
		}
		exp, _ := got["exp"].(float64)
		if d := time.Until(time.Unix(int64(exp), 0)); d < DefaultAccessTokenLifetime-time.Minute || d > DefaultAccessTokenLifetime {
			t.Errorf("exp in %v", d)
		}
		w = post(f.p.handleIntrospect, PathIntrospect, "rs", benchSecret, url.Values{"token": {opaque + "x"}})
		if w.Code != 200 || !strings.Contains(w.Body.String(), `"active":false`) {
			t.Errorf("forged token: %d %s", w.Code, w.Body)
		}
		w = post(f.p.handleIntrospect, PathIntrospect, "rs", "wrong-secret-0123456789-0123456789", url.Values{"token": {opaque}})
		if w.Code != 401 {
			t.Errorf("wrong secret: %d %s", w.Code, w.Body)
		}
	})
}
