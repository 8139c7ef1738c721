package oidc

import (
	"encoding/base64"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/conformance/dbtest"
)

// ccExtraClients: clients the fast path must leave to fosite.
func ccExtraClients() []*config.RelyingParty {
	return []*config.RelyingParty{
		{ID: "post", Protocol: "oidc", OIDC: &config.OIDC{RedirectURIs: []string{"https://post.example/x"},
			ClientSecret: benchSecret, TokenEndpointAuthMethod: "client_secret_post", GrantTypes: []string{"client_credentials"}, Scopes: []string{"api"}}},
		{ID: "dpop", Protocol: "oidc", OIDC: &config.OIDC{RedirectURIs: []string{"https://dpop.example/x"},
			ClientSecret: benchSecret, TokenEndpointAuthMethod: "client_secret_basic", GrantTypes: []string{"client_credentials"}, Scopes: []string{"api"}, RequireDPoP: true}},
		{ID: "web", Protocol: "oidc", OIDC: &config.OIDC{RedirectURIs: []string{"https://web.example/cb"},
			ClientSecret: benchSecret, TokenEndpointAuthMethod: "client_secret_basic"}},
	}
}

func jsonBody(t *testing.T, w *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatalf("%v: %s", err, w.Body)
	}
	return m
}

func jwtParts(t *testing.T, tok string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %s", tok)
	}
	for i, out := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatal(err)
		}
	}
	return header, claims
}

// sameExceptTime compares two maps whose time values (exp, iat, nbf,
// expires_in) may differ by a second and whose jti differ.
func sameExceptTime(t *testing.T, what string, a, b map[string]any) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%s: keys differ:\n%v\n%v", what, a, b)
	}
	for k, va := range a {
		vb, ok := b[k]
		switch {
		case !ok:
			t.Fatalf("%s: %q missing in %v", what, k, b)
		case k == "jti":
		case k == "exp" || k == "iat" || k == "nbf" || k == "expires_in":
			fa, fb := va.(float64), vb.(float64)
			if fa-fb > 1 || fb-fa > 1 {
				t.Fatalf("%s: %s %v against %v", what, k, va, vb)
			}
		case !reflect.DeepEqual(va, vb):
			t.Fatalf("%s: %s %v against %v", what, k, va, vb)
		}
	}
}

// TestClientCredentialsFastPathLikeFosite: for the requests the fast path
// takes, its responses, tokens and what introspection says of them are
// those of fosite's pipeline.
func TestClientCredentialsFastPathLikeFosite(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		f := newTokenFixture(t, dsn, ccExtraClients()...)
		for _, id := range []string{"svc", "svcjwt"} {
			for _, scope := range []string{"api", "api other", "", "other api api", "api read&write<all>"} {
				form := url.Values{"grant_type": {"client_credentials"}}
				if scope != "" {
					form.Set("scope", scope)
				}
				// The fast path takes it.
				r := httptest.NewRequest("POST", PathToken, strings.NewReader(form.Encode()))
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				r.SetBasicAuth(id, benchSecret)
				if err := r.ParseForm(); err != nil {
					t.Fatal(err)
				}
				if w := httptest.NewRecorder(); !f.p.clientCredentials(t.Context(), w, r, nil) || w.Code != 200 {
					t.Fatalf("%s %q: the fast path declined or failed: %d %s", id, scope, w.Code, w.Body)
				}

				f.p.noFastPath = false
				fast := post(f.p.handleToken, PathToken, id, benchSecret, form)
				f.p.noFastPath = true
				slow := post(f.p.handleToken, PathToken, id, benchSecret, form)
				f.p.noFastPath = false
				what := id + " scope " + scope
				if fast.Code != 200 || slow.Code != 200 {
					t.Fatalf("%s: %d %s / %d %s", what, fast.Code, fast.Body, slow.Code, slow.Body)
				}
				if !reflect.DeepEqual(fast.Header(), slow.Header()) {
					t.Fatalf("%s: header\n%v\n%v", what, fast.Header(), slow.Header())
				}
				fb, sb := jsonBody(t, fast), jsonBody(t, slow)
				fat, sat := fb["access_token"].(string), sb["access_token"].(string)
				delete(fb, "access_token")
				delete(sb, "access_token")
				sameExceptTime(t, what+": response", fb, sb)
				if id == "svcjwt" {
					fh, fc := jwtParts(t, fat)
					shd, sc := jwtParts(t, sat)
					sameExceptTime(t, what+": JWT header", fh, shd)
					sameExceptTime(t, what+": JWT claims", fc, sc)
				}
				intro := func(tok string) map[string]any {
					w := post(f.p.handleIntrospect, PathIntrospect, "rs", benchSecret, url.Values{"token": {tok}})
					if w.Code != 200 {
						t.Fatalf("introspection: %d %s", w.Code, w.Body)
					}
					return jsonBody(t, w)
				}
				fi, si := intro(fat), intro(sat)
				if fi["active"] != true {
					t.Fatalf("%s: fast token not active: %v", what, fi)
				}
				sameExceptTime(t, what+": introspection", fi, si)
			}
		}
	})
}

// TestClientCredentialsFastPathDeclines: whatever is not the plain case
// is left to fosite, untouched, and the answer is fosite's.
func TestClientCredentialsFastPathDeclines(t *testing.T) {
	f := newTokenFixture(t, dbtest.SQLite(t), ccExtraClients()...)
	cc := func(kv ...string) url.Values {
		v := url.Values{"grant_type": {"client_credentials"}, "scope": {"api"}}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Add(kv[i], kv[i+1])
		}
		return v
	}
	for _, tc := range []struct {
		name, method, id, secret string
		form                     url.Values
		rawAuth                  string
	}{
		{name: "wrong secret", id: "svc", secret: "wrong-secret-0123456789-0123456789-01", form: cc()},
		{name: "unknown client", id: "nobody", secret: benchSecret, form: cc()},
		{name: "client_secret_post client", id: "post", secret: benchSecret, form: cc()},
		{name: "client without the grant", id: "web", secret: benchSecret, form: cc()},
		{name: "DPoP required", id: "dpop", secret: benchSecret, form: cc()},
		{name: "scope not registered", id: "svc", secret: benchSecret, form: url.Values{"grant_type": {"client_credentials"}, "scope": {"admin"}}},
		{name: "openid", id: "svc", secret: benchSecret, form: url.Values{"grant_type": {"client_credentials"}, "scope": {"api openid"}}},
		{name: "offline_access", id: "svc", secret: benchSecret, form: url.Values{"grant_type": {"client_credentials"}, "scope": {"offline_access"}}},
		{name: "audience", id: "svc", secret: benchSecret, form: cc("audience", "https://api.example")},
		{name: "resource", id: "svc", secret: benchSecret, form: cc("resource", "https://api.example")},
		{name: "client_id in the body", id: "svc", secret: benchSecret, form: cc("client_id", "svc")},
		{name: "two grant types", id: "svc", secret: benchSecret, form: cc("grant_type", "client_credentials")},
		{name: "another grant", id: "svc", secret: benchSecret, form: url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}},
		{name: "no client authentication", form: cc()},
		{name: "secret in the body", form: cc("client_id", "post", "client_secret", benchSecret)},
		{name: "empty secret", id: "svc", secret: "", form: cc()},
		{name: "undecodable client id", rawAuth: "Basic " + base64.StdEncoding.EncodeToString([]byte("svc%zz:"+benchSecret)), form: cc()},
		{name: "GET", method: "GET", id: "svc", secret: benchSecret, form: cc()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = "POST"
			}
			r := httptest.NewRequest(method, PathToken+"?"+map[bool]string{true: tc.form.Encode()}[method == "GET"], strings.NewReader(tc.form.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			switch {
			case tc.rawAuth != "":
				r.Header.Set("Authorization", tc.rawAuth)
			case tc.id != "":
				r.SetBasicAuth(tc.id, tc.secret)
			}
			if err := r.ParseForm(); err != nil {
				t.Fatal(err)
			}
			w := httptest.NewRecorder()
			if f.p.clientCredentials(t.Context(), w, r, nil) {
				t.Fatalf("the fast path took it: %d %s", w.Code, w.Body)
			}
			if w.Body.Len() != 0 || len(w.Header()) != 0 {
				t.Fatalf("the fast path wrote: %v %s", w.Header(), w.Body)
			}
		})
	}
}
