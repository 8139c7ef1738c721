// Package demo is the demo relying party at /demo: a page with a login
// button that logs in through the broker's own OpenID Provider like any
// relying party would — authorization code flow with PKCE, state and
// nonce, the ID token verified with go-oidc against the broker's JWKS —
// and shows what it received. It runs only in demo mode.
package demo

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/trustbroker/trustbroker/broker/ui"
	"github.com/trustbroker/trustbroker/broker/web"
)

// Options configure the demo relying party.
type Options struct {
	// Issuer is the broker's issuer URL, which the demo calls over HTTP.
	Issuer       string
	ClientID     string
	ClientSecret string
	UI           *ui.UI
	CSRF         *web.CSRF
	Cookies      web.Cookies
	// CookieKey authenticates the demo's login-state cookie.
	CookieKey []byte
	Rand      io.Reader
	Now       func() time.Time
	// HTTPClient calls the broker (defaults to a client with a timeout).
	HTTPClient *http.Client
}

// RP is the demo relying party.
type RP struct {
	o Options

	mu       sync.Mutex
	provider *gooidc.Provider // discovered on first use
}

// New returns the demo relying party.
func New(o Options) *RP {
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	return &RP{o: o}
}

// RedirectPath is the demo's registered redirect URI path.
const RedirectPath = "/demo/callback"

// Routes adds /demo to mux.
func (d *RP) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /demo", d.home)
	mux.HandleFunc("POST /demo/login", d.login)
	mux.HandleFunc("GET "+RedirectPath, d.callback)
}

// discover returns the broker's metadata, fetched once it is reachable.
func (d *RP) discover(ctx context.Context) (*gooidc.Provider, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.provider != nil {
		return d.provider, nil
	}
	p, err := gooidc.NewProvider(gooidc.ClientContext(ctx, d.o.HTTPClient), d.o.Issuer)
	if err != nil {
		return nil, err
	}
	d.provider = p
	return p, nil
}

func (d *RP) oauth2Config(p *gooidc.Provider) *oauth2.Config {
	ep := p.Endpoint()
	ep.AuthStyle = oauth2.AuthStyleInHeader
	return &oauth2.Config{
		ClientID: d.o.ClientID, ClientSecret: d.o.ClientSecret, Endpoint: ep,
		RedirectURL: d.o.Issuer + RedirectPath,
		Scopes:      []string{gooidc.ScopeOpenID, "profile"},
	}
}

// browser returns the per-browser value the demo's CSRF token binds to.
func (d *RP) browser(w http.ResponseWriter, r *http.Request) (string, error) {
	if v := d.o.Cookies.Get(r, "tb_demo", "/"); v != "" {
		return v, nil
	}
	v, err := d.random()
	if err != nil {
		return "", err
	}
	d.o.Cookies.Set(w, "tb_demo", "/", v, 0)
	return v, nil
}

func (d *RP) random() (string, error) {
	var b [24]byte
	if _, err := io.ReadFull(d.o.Rand, b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

func (d *RP) home(w http.ResponseWriter, r *http.Request) {
	web.NoStore(w)
	v, err := d.browser(w, r)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	d.o.UI.Render(w, r, http.StatusOK, "demo_home", ui.Lang(r), struct{ CSRF string }{d.o.CSRF.Token("demo|" + v)})
}

// loginState is what the demo remembers between login and callback, in an
// HMAC-protected cookie.
type loginState struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Lang     string `json:"l"`
}

func (d *RP) sealState(ls loginState) string {
	b, _ := json.Marshal(ls)
	m := hmac.New(sha256.New, d.o.CookieKey)
	m.Write(b)
	return base64.RawURLEncoding.EncodeToString(b) + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (d *RP) openState(v string) (loginState, error) {
	var ls loginState
	body, mac, ok := strings.Cut(v, ".")
	b, err1 := base64.RawURLEncoding.DecodeString(body)
	sum, err2 := base64.RawURLEncoding.DecodeString(mac)
	if !ok || err1 != nil || err2 != nil {
		return ls, errors.New("malformed login state")
	}
	m := hmac.New(sha256.New, d.o.CookieKey)
	m.Write(b)
	if !hmac.Equal(sum, m.Sum(nil)) {
		return ls, errors.New("login state was tampered with")
	}
	return ls, json.Unmarshal(b, &ls)
}

func (d *RP) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	v := d.o.Cookies.Get(r, "tb_demo", "/")
	if err := r.ParseForm(); err != nil || !d.o.CSRF.Valid("demo|"+v, r.PostForm.Get("csrf")) {
		http.Error(w, "invalid form token: reload the demo page", http.StatusForbidden)
		return
	}
	p, err := d.discover(r.Context())
	if err != nil {
		d.fail(w, r, "discovery: "+err.Error())
		return
	}
	state, err1 := d.random()
	nonce, err2 := d.random()
	if err1 != nil || err2 != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	ls := loginState{State: state, Nonce: nonce, Verifier: oauth2.GenerateVerifier(), Lang: ui.Lang(r)}
	d.o.Cookies.Set(w, "tb_demo_login", RedirectPath, d.sealState(ls), 10*time.Minute)
	u := d.oauth2Config(p).AuthCodeURL(state, oauth2.S256ChallengeOption(ls.Verifier), gooidc.Nonce(nonce),
		oauth2.SetAuthURLParam("ui_locales", ls.Lang), oauth2.SetAuthURLParam("claims", `{"userinfo":{"verified_claims":null}}`))
	http.Redirect(w, r, u, http.StatusSeeOther)
}

type claimRow struct{ Name, Value string }

type resultPage struct {
	Claims []claimRow
	Error  string
}

func (d *RP) fail(w http.ResponseWriter, r *http.Request, msg string) {
	d.o.UI.Render(w, r, http.StatusOK, "demo_result", ui.Lang(r), resultPage{Error: msg})
}

// callback completes the code flow and shows what arrived.
func (d *RP) callback(w http.ResponseWriter, r *http.Request) {
	web.NoStore(w)
	ctx := gooidc.ClientContext(r.Context(), d.o.HTTPClient)
	ls, err := d.openState(d.o.Cookies.Get(r, "tb_demo_login", RedirectPath))
	d.o.Cookies.Clear(w, "tb_demo_login", RedirectPath)
	q := r.URL.Query()
	switch {
	case err != nil:
		d.fail(w, r, "no login in progress in this browser")
		return
	case q.Get("error") != "":
		d.fail(w, r, q.Get("error")+": "+q.Get("error_description"))
		return
	case q.Get("state") != ls.State:
		d.fail(w, r, "state mismatch")
		return
	case q.Get("iss") != d.o.Issuer:
		d.fail(w, r, "issuer mismatch (RFC 9207)")
		return
	}
	p, err := d.discover(ctx)
	if err != nil {
		d.fail(w, r, "discovery: "+err.Error())
		return
	}
	conf := d.oauth2Config(p)
	tok, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(ls.Verifier))
	if err != nil {
		d.fail(w, r, "code exchange: "+err.Error())
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := p.Verifier(&gooidc.Config{ClientID: d.o.ClientID, SupportedSigningAlgs: []string{"RS256", "ES256"}, Now: d.o.Now}).Verify(ctx, raw)
	if err != nil || idt.Nonce != ls.Nonce {
		d.fail(w, r, fmt.Sprintf("ID token rejected: %v", err))
		return
	}
	info, err := p.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		d.fail(w, r, "userinfo: "+err.Error())
		return
	}
	d.o.UI.Render(w, r, http.StatusOK, "demo_result", ui.Lang(r), resultPage{Claims: rows(idt, info)})
}

// rows lists the ID token's authentication claims, then the userinfo claims.
func rows(idt *gooidc.IDToken, info *gooidc.UserInfo) []claimRow {
	var id map[string]any
	_ = idt.Claims(&id)
	out := []claimRow{{"sub", idt.Subject}}
	for _, k := range []string{"acr", "amr", "auth_time"} {
		if v, ok := id[k]; ok {
			out = append(out, claimRow{k, render(k, v)})
		}
	}
	var ui map[string]any
	_ = info.Claims(&ui)
	names := make([]string, 0, len(ui))
	for n := range ui {
		if n != "sub" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		out = append(out, claimRow{n, render(n, ui[n])})
	}
	return out
}

func render(name string, v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		if name == "auth_time" {
			return time.Unix(int64(x), 0).UTC().Format(time.RFC3339)
		}
	case []any:
		parts := make([]string, len(x))
		for i, p := range x {
			parts[i] = fmt.Sprint(p)
		}
		return strings.Join(parts, " ")
	}
	b, _ := json.Marshal(v)
	return string(b)
}
