package gate

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustbroker/trustbroker/broker"
	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/broker/loa"
	"github.com/trustbroker/trustbroker/broker/session"
	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/broker/ui"
	"github.com/trustbroker/trustbroker/consent"
	"github.com/trustbroker/trustbroker/policy"
	"github.com/trustbroker/trustbroker/policy/location"
	"github.com/trustbroker/trustbroker/providers"
)

type fakeBroker struct {
	session *store.Session
	started []broker.StartRequest
	rps     map[string]*config.RelyingParty
}

func (f *fakeBroker) StartLogin(w http.ResponseWriter, r *http.Request, sr broker.StartRequest) error {
	f.started = append(f.started, sr)
	http.Redirect(w, r, "/login/tx", http.StatusSeeOther)
	return nil
}

func (f *fakeBroker) CurrentSession(*http.Request) (*store.Session, error) {
	if f.session == nil {
		return nil, session.ErrNoSession
	}
	return f.session, nil
}

func (f *fakeBroker) RelyingParty(id string) (*config.RelyingParty, bool) {
	rp, ok := f.rps[id]
	return rp, ok
}

func (f *fakeBroker) Subject(rp *config.RelyingParty, accountID string) string {
	return "pairwise-" + accountID
}

// fakePolicy answers with a fixed decision and records the requests.
type fakePolicy struct {
	mu   sync.Mutex
	dec  policy.Decision
	reqs []policy.Request
}

func (f *fakePolicy) Decide(_ context.Context, r policy.Request) (policy.Decision, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, r)
	return f.dec, nil
}

func (f *fakePolicy) Roles(policy.Subject) []string { return []string{"physician", "staff"} }

type fakeAudit struct{ evs []store.AuditEvent }

func (f *fakeAudit) Append(_ context.Context, ev *store.AuditEvent) error {
	f.evs = append(f.evs, *ev)
	return nil
}
func (f *fakeAudit) List(context.Context, store.AuditFilter) ([]store.AuditEvent, error) {
	return f.evs, nil
}

// onlyGivenName grants given_name only.
type onlyGivenName struct{}

func (onlyGivenName) Evaluate(context.Context, string, string, []consent.Requested) (consent.Evaluation, error) {
	return consent.Evaluation{Granted: []string{"given_name"}}, nil
}

type fakeTokens struct{}

func (fakeTokens) VerifyAccessToken(_ context.Context, tok string) (*Token, error) {
	if tok != "good" {
		return nil, errors.New("unknown token")
	}
	return &Token{AccountID: "acc-t", LoA: loa.Substantial, Kind: "webauthn", AMR: []string{"hwk"}}, nil
}

type fixture struct {
	g     *Gate
	b     *fakeBroker
	p     *fakePolicy
	audit *fakeAudit
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	u, err := ui.New(nil, false, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	id, _ := json.Marshal(providers.Identity{Attributes: map[string]any{"given_name": "Erika\r\nX-Evil: 1", "family_name": "Mustermann"}})
	fb := &fakeBroker{
		session: &store.Session{AccountID: "acc-1", LoA: loa.URIHigh, CredentialKind: "smartcard", AMR: []string{"sc"}, Identity: id},
		rps: map[string]*config.RelyingParty{"records": {ID: "records", Protocol: "gate", Claims: []config.Claim{
			{Name: "given_name"}, {Name: "family_name"}}}},
	}
	loc, err := location.New([]location.Zone{{Name: "office", Trust: "trusted", CIDRs: []string{"192.0.2.0/24", "2001:db8::/32"}}}, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	fp := &fakePolicy{dec: policy.Decision{Effect: policy.Allow, Rule: "r"}}
	fa := &fakeAudit{}
	g, err := New(Options{
		Broker: fb, Policy: fp, Consent: onlyGivenName{}, Audit: fa, UI: u, Locator: loc, Tokens: fakeTokens{},
		Config: config.Gate{Proxies: []string{"127.0.0.1", "10.0.0.0/8"}, Audit: "all", Services: []config.GateService{{
			ID: "records", Hosts: []string{"records.example"},
			Headers:    config.GateHeaders{Subject: "X-User", Name: "X-Name", Roles: "X-Roles", LoA: "X-LoA"},
			Attributes: map[string]string{"given_name": "X-Given", "family_name": "X-Family"},
		}}},
		Issuer: "https://broker.example", Now: func() time.Time { return time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{g: g, b: fb, p: fp, audit: fa}
}

func (f *fixture) do(path, peer string, h map[string]string) *httptest.ResponseRecorder {
	mux := http.NewServeMux()
	f.g.Routes(mux)
	r := httptest.NewRequest(http.MethodGet, path, nil)
	r.RemoteAddr = peer
	for k, v := range h {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, r)
	return w
}

var nginxHeaders = map[string]string{
	"X-Original-Method": "GET", "X-Original-URI": "/patients/17?x=1", "X-Forwarded-Host": "records.example",
	"X-Forwarded-For": "192.0.2.7", "X-Forwarded-Proto": "https",
}

func with(h map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range h {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func TestAllowSetsIdentityHeaders(t *testing.T) {
	f := newFixture(t)
	w := f.do("/gate/auth", "127.0.0.1:5555", nginxHeaders)
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	h := w.Header()
	if h.Get("X-User") != "pairwise-acc-1" || h.Get("X-Roles") != "physician,staff" || h.Get("X-LoA") != "high" {
		t.Errorf("headers: %v", h)
	}
	if h.Get("X-Given") != "ErikaX-Evil: 1" || h.Get("X-Family") != "" || h.Get("X-Name") != "ErikaX-Evil: 1" {
		t.Errorf("consented attributes only, without control characters: %v", h)
	}
	req := f.p.reqs[0]
	if req.Resource != "records" || req.Path != "/patients/17" || req.Action != "GET" || req.Context.ClientIP != "192.0.2.7" ||
		req.Context.Zone != "office" || req.Context.LoA != loa.High || !req.Context.HardwareToken || req.Subject.AccountID != "acc-1" ||
		req.Subject.Attributes["family_name"] != "Mustermann" {
		t.Errorf("policy request: %+v", req)
	}
	if len(f.audit.evs) != 1 || f.audit.evs[0].Action != "gate.decide" || f.audit.evs[0].Outcome != "allow" {
		t.Errorf("audit: %+v", f.audit.evs)
	}
}

func TestOriginalRequest(t *testing.T) {
	for _, tc := range []struct {
		name     string
		h        map[string]string
		path, ip string
	}{
		{"dot segments", with(nginxHeaders, "X-Original-URI", "/public/../admin/x"), "/admin/x", "192.0.2.7"},
		{"encoded dot segments", with(nginxHeaders, "X-Original-URI", "/public/%2e%2e/admin"), "/admin", "192.0.2.7"},
		{"trailing slash kept", with(nginxHeaders, "X-Original-URI", "/dir/"), "/dir/", "192.0.2.7"},
		{"XFF: rightmost that is not a proxy", with(nginxHeaders, "X-Forwarded-For", "198.51.100.1, 192.0.2.9, 10.1.1.1"), "/patients/17", "192.0.2.9"},
		{"XFF: a forged first hop does not count", with(nginxHeaders, "X-Forwarded-For", "192.0.2.50, 203.0.113.4"), "/patients/17", "203.0.113.4"},
		{"IPv4-mapped IPv6 client", with(nginxHeaders, "X-Forwarded-For", "::ffff:192.0.2.7"), "/patients/17", "::ffff:192.0.2.7"},
		{"X-Real-IP", with(nginxHeaders, "X-Forwarded-For", "", "X-Real-IP", "2001:db8::5"), "/patients/17", "2001:db8::5"},
		{"garbage XFF falls back to the peer", with(nginxHeaders, "X-Forwarded-For", "nonsense"), "/patients/17", "127.0.0.1"},
		{"Traefik headers", map[string]string{"X-Forwarded-Method": "POST", "X-Forwarded-Uri": "/p", "X-Forwarded-Host": "records.example",
			"X-Forwarded-For": "192.0.2.8"}, "/p", "192.0.2.8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			if w := f.do("/gate/auth", "127.0.0.1:1", tc.h); w.Code != http.StatusOK {
				t.Fatalf("status %d", w.Code)
			}
			if r := f.p.reqs[0]; r.Path != tc.path || r.Context.ClientIP != tc.ip {
				t.Errorf("path %q ip %q, want %q %q", r.Path, r.Context.ClientIP, tc.path, tc.ip)
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	f := newFixture(t)
	if w := f.do("/gate/auth", "192.0.2.7:1", nginxHeaders); w.Code != http.StatusForbidden || len(f.p.reqs) != 0 {
		t.Errorf("not a proxy: %d", w.Code)
	}
	if w := f.do("/gate/auth", "127.0.0.1:1", with(nginxHeaders, "X-Original-URI", "")); w.Code != http.StatusBadRequest {
		t.Errorf("no URI: %d", w.Code)
	}
	if w := f.do("/gate/auth", "127.0.0.1:1", with(nginxHeaders, "X-Original-URI", "http://x/")); w.Code != http.StatusBadRequest {
		t.Errorf("absolute URI: %d", w.Code)
	}
	if w := f.do("/gate/auth", "127.0.0.1:1", with(nginxHeaders, "X-Forwarded-Host", "other.example")); w.Code != http.StatusForbidden {
		t.Errorf("unknown host: %d", w.Code)
	}
}

func TestNoSessionAndStepUp(t *testing.T) {
	f := newFixture(t)
	f.b.session = nil
	w := f.do("/gate/auth", "127.0.0.1:1", nginxHeaders)
	loc, _ := url.Parse(w.Header().Get("Location"))
	if w.Code != http.StatusUnauthorized || loc.Host != "broker.example" || loc.Path != "/gate/login" ||
		loc.Query().Get("rd") != "https://records.example/patients/17?x=1" {
		t.Errorf("nginx, no session: %d %q", w.Code, w.Header().Get("Location"))
	}
	if w := f.do("/gate/traefik", "127.0.0.1:1", nginxHeaders); w.Code != http.StatusFound {
		t.Errorf("traefik, no session: %d", w.Code)
	}
	f = newFixture(t)
	f.p.dec = policy.Decision{Effect: policy.StepUp, Rule: "r", RequiredLoA: loa.High, RequiredKinds: []string{"smartcard"}, Public: policy.ReasonLoA}
	w = f.do("/gate/auth", "127.0.0.1:1", nginxHeaders)
	loc, _ = url.Parse(w.Header().Get("Location"))
	if w.Code != http.StatusUnauthorized || loc.Query().Get("loa") != "high" || loc.Query().Get("kinds") != "smartcard" {
		t.Errorf("step-up: %d %q", w.Code, w.Header().Get("Location"))
	}
}

func TestDeny(t *testing.T) {
	f := newFixture(t)
	f.p.dec = policy.Decision{Effect: policy.Deny, Rule: "r", Public: policy.ReasonHours}
	w := f.do("/gate/auth", "127.0.0.1:1", nginxHeaders)
	if w.Code != http.StatusForbidden || w.Header().Get("X-Gate-Reason") != "hours" || w.Header().Get("X-User") != "" {
		t.Errorf("nginx deny: %d %v", w.Code, w.Header())
	}
	w = f.do("/gate/traefik", "127.0.0.1:1", with(nginxHeaders, "Accept-Language", "en"))
	if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "outside the permitted hours") {
		t.Errorf("traefik deny page: %d %s", w.Code, w.Body)
	}
	w = f.do("/gate/denied?reason=network", "192.0.2.7:1", map[string]string{"Accept-Language": "de"})
	if !strings.Contains(w.Body.String(), "aus diesem Netzwerk nicht erlaubt") {
		t.Errorf("deny page: %s", w.Body)
	}
}

func TestBearerToken(t *testing.T) {
	f := newFixture(t)
	f.b.session = nil
	if w := f.do("/gate/auth", "127.0.0.1:1", with(nginxHeaders, "Authorization", "Bearer good")); w.Code != http.StatusOK ||
		w.Header().Get("X-User") != "pairwise-acc-t" || w.Header().Get("X-LoA") != "substantial" {
		t.Errorf("valid token: %d %v", w.Code, w.Header())
	}
	if w := f.do("/gate/auth", "127.0.0.1:1", with(nginxHeaders, "Authorization", "Bearer bad")); w.Code != http.StatusUnauthorized {
		t.Errorf("invalid token: %d", w.Code)
	}
	f.p.dec = policy.Decision{Effect: policy.StepUp, RequiredLoA: loa.High, Public: policy.ReasonLoA}
	if w := f.do("/gate/auth", "127.0.0.1:1", with(nginxHeaders, "Authorization", "Bearer good")); w.Code != http.StatusForbidden ||
		!strings.Contains(w.Header().Get("WWW-Authenticate"), "insufficient_user_authentication") {
		t.Errorf("token below the level: %d %v", w.Code, w.Header())
	}
}

func TestLoginAndResume(t *testing.T) {
	f := newFixture(t)
	w := f.do("/gate/login?loa=high&kinds=smartcard&rd="+url.QueryEscape("https://records.example/a?b=c"), "192.0.2.7:1", nil)
	if w.Code != http.StatusSeeOther || len(f.b.started) != 1 || f.b.started[0].RPID != "records" ||
		f.b.started[0].RequestedLoA != loa.High || f.b.started[0].Protocol != Protocol ||
		strings.Join(f.b.started[0].Kinds, " ") != "smartcard" || strings.Join(f.b.started[0].Prompt, " ") != "login" {
		t.Fatalf("login: %d %+v", w.Code, f.b.started)
	}
	for _, rd := range []string{"https://evil.example/", "javascript:alert(1)", "//records.example/", "https://user@records.example/"} {
		if w := f.do("/gate/login?rd="+url.QueryEscape(rd), "192.0.2.7:1", nil); w.Code != http.StatusBadRequest {
			t.Errorf("rd %q: %d", rd, w.Code)
		}
	}
	tx := &store.Transaction{Request: f.b.started[0].Request}
	rec := httptest.NewRecorder()
	f.g.Resume(rec, httptest.NewRequest(http.MethodGet, "/login/tx", nil), tx, &broker.Result{}, nil)
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "https://records.example/a?b=c" {
		t.Errorf("resume: %d %q", rec.Code, rec.Header().Get("Location"))
	}
	rec = httptest.NewRecorder()
	f.g.Resume(rec, httptest.NewRequest(http.MethodGet, "/login/tx?lang=en", nil), tx, nil,
		&broker.FlowError{Code: "access_denied", Description: "x", Reason: policy.ReasonNetwork})
	if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "not permitted from this network") {
		t.Errorf("resume after deny: %d %s", rec.Code, rec.Body)
	}
}

func FuzzReadOriginal(f *testing.F) {
	for _, s := range []string{"/a/../b", "/%2e%2e/", "/a?b#c", "", "x", "//host/p", "/\x00"} {
		f.Add(s, "192.0.2.1, 10.0.0.1")
	}
	g := &Gate{}
	f.Fuzz(func(t *testing.T, uri, xff string) {
		r := httptest.NewRequest(http.MethodGet, "/gate/auth", nil)
		r.Header.Set("X-Original-Method", "GET")
		r.Header["X-Original-URI"] = []string{uri}
		r.Header["X-Forwarded-For"] = []string{xff}
		r.Header.Set("X-Forwarded-Host", "h")
		o, err := g.readOriginal(r)
		if err == nil && (!strings.HasPrefix(o.path, "/") || strings.Contains(o.path, "/../") || strings.HasSuffix(o.path, "/..")) {
			t.Fatalf("path %q from %q", o.path, uri)
		}
	})
}
