package oidc

import (
	"encoding/base64"
	"encoding/json"
	"html"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/broker/ui"
	"github.com/trustbroker/trustbroker/broker/web"
	"github.com/trustbroker/trustbroker/conformance/dbtest"
)

// TestFrontchannelLogoutURL: iss and sid are appended only for clients
// that require them, encoded, and the registered query stays as it is
// (Front-Channel Logout 1.0 §2).
func TestFrontchannelLogoutURL(t *testing.T) {
	const iss = "https://op.example/tenant a"
	for _, tc := range []struct {
		uri, sid string
		required bool
		want     string
	}{
		{"https://rp.example/fc", "s1", false, "https://rp.example/fc"},
		{"https://rp.example/fc?keep=1&b=%2F", "s1", false, "https://rp.example/fc?keep=1&b=%2F"},
		{"https://rp.example/fc", "s1", true, "https://rp.example/fc?iss=https%3A%2F%2Fop.example%2Ftenant+a&sid=s1"},
		{"https://rp.example/fc?keep=1&b=%2F", "a+b/c=", true, "https://rp.example/fc?keep=1&b=%2F&iss=https%3A%2F%2Fop.example%2Ftenant+a&sid=a%2Bb%2Fc%3D"},
		{"https://rp.example/fc?", "s1", true, "https://rp.example/fc?iss=https%3A%2F%2Fop.example%2Ftenant+a&sid=s1"},
		{"https://rp.example/fc?x=1&", "s1", true, "https://rp.example/fc?x=1&iss=https%3A%2F%2Fop.example%2Ftenant+a&sid=s1"},
		{"http://127.0.0.1:9/fc", "s&x=1", true, "http://127.0.0.1:9/fc?iss=https%3A%2F%2Fop.example%2Ftenant+a&sid=s%26x%3D1"},
	} {
		got, err := FrontchannelLogoutURL(tc.uri, iss, tc.sid, tc.required)
		if err != nil || got != tc.want {
			t.Errorf("%s (required %v): %q, %v; want %q", tc.uri, tc.required, got, err, tc.want)
			continue
		}
		if tc.required {
			q, _ := url.Parse(got)
			if q.Query().Get("iss") != iss || q.Query().Get("sid") != tc.sid {
				t.Errorf("%s: iss/sid do not decode back: %v", got, q.Query())
			}
		}
	}
	for _, bad := range []struct{ uri, iss, sid string }{
		{"/relative", iss, "s"}, {"https://rp.example/fc#frag", iss, "s"}, {"https:///nohost", iss, "s"},
		{"::", iss, "s"}, {"https://rp.example/fc", "", "s"}, {"https://rp.example/fc", iss, ""},
	} {
		if got, err := FrontchannelLogoutURL(bad.uri, bad.iss, bad.sid, true); err == nil {
			t.Errorf("%q iss %q sid %q: accepted as %q", bad.uri, bad.iss, bad.sid, got)
		}
	}
}

// frontchannelFixture: a provider with two front-channel clients (one
// with session_required), one without, and the page renderer.
func frontchannelFixture(t *testing.T) *Provider {
	t.Helper()
	rc := func(id, fc string, required bool) *config.RelyingParty {
		return &config.RelyingParty{ID: id, Protocol: "oidc", Name: config.Text{"de": "Dienst " + id, "en": "Service " + id},
			OIDC: &config.OIDC{RedirectURIs: []string{"https://" + id + ".example/cb"}, ClientSecret: benchSecret,
				TokenEndpointAuthMethod: "client_secret_basic", FrontchannelLogoutURI: fc, FrontchannelLogoutSessionRequired: required}}
	}
	f := newTokenFixture(t, dbtest.SQLite(t),
		rc("a", "https://a.example/fc?x=1", true), rc("b", "https://b.example:8443/fc", false), rc("c", "", false))
	u, err := ui.New(nil, false, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	f.p.o.UI = u
	return f.p
}

var iframeSrc = regexp.MustCompile(`<iframe class="frontchannel" src="([^"]*)"`)

func TestFrontchannelPage(t *testing.T) {
	p := frontchannelFixture(t)
	s := &store.Session{ID: "session-key-1", RelyingParties: []string{"c", "a", "b", "a", "gone"}}
	targets := p.frontchannelTargets(s)
	if len(targets) != 2 || targets[0] != (frontchannelTarget{"a", sid("a", s.ID)}) || targets[1].Client != "b" {
		t.Fatalf("targets %+v", targets)
	}
	rec := httptest.NewRecorder()
	if !p.renderFrontchannel(rec, httptest.NewRequest("GET", "/oauth2/logout", nil), "en", targets, "https://a.example/bye?state=s%26") {
		t.Fatal("no page")
	}
	want := web.ContentSecurityPolicy + "; frame-src https://a.example https://b.example:8443"
	if got := rec.Header().Get("Content-Security-Policy"); got != want {
		t.Errorf("CSP %q\nwant %q", got, want)
	}
	if got := rec.Header().Get("Refresh"); got != "2;url=https://a.example/bye?state=s%26" {
		t.Errorf("Refresh %q", got)
	}
	if rec.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("cacheable: %v", rec.Header())
	}
	body := rec.Body.String()
	var srcs []string
	for _, m := range iframeSrc.FindAllStringSubmatch(body, -1) {
		srcs = append(srcs, html.UnescapeString(m[1]))
	}
	wantSrcs := []string{"https://a.example/fc?x=1&iss=https%3A%2F%2Fop.example&sid=" + sid("a", s.ID), "https://b.example:8443/fc"}
	if !slices.Equal(srcs, wantSrcs) {
		t.Errorf("frames %q\nwant %q", srcs, wantSrcs)
	}
	if !strings.Contains(body, `href="https://a.example/bye?state=s%26"`) || !strings.Contains(body, ">Continue</a>") ||
		!strings.Contains(body, "Service a") || strings.Contains(body, "Service c") {
		t.Errorf("page:\n%s", body)
	}
	// Nothing to frame: nothing written.
	rec = httptest.NewRecorder()
	if p.renderFrontchannel(rec, httptest.NewRequest("GET", "/", nil), "de", p.frontchannelTargets(&store.Session{ID: "x", RelyingParties: []string{"c"}}), "") ||
		rec.Body.Len() != 0 || rec.Header().Get("Content-Security-Policy") != "" {
		t.Errorf("a page without frames: %d %q", rec.Code, rec.Body)
	}
}

func TestFrontchannelTicket(t *testing.T) {
	p := frontchannelFixture(t)
	now := time.Now()
	p.o.Now = func() time.Time { return now }
	s := &store.Session{ID: "session-key-2", RelyingParties: []string{"a", "b"}}
	if got := p.FrontchannelReturn(&store.Session{ID: "x", RelyingParties: []string{"c"}}, "/"); got != "/" {
		t.Errorf("no front-channel client: %q", got)
	}
	for _, bad := range []string{"https://evil.example/", "//evil.example/", `/\evil.example`} {
		if got := p.FrontchannelReturn(s, bad); got != bad {
			t.Errorf("non-local return %q sealed: %q", bad, got)
		}
	}
	ret := p.FrontchannelReturn(s, "/")
	u, err := url.Parse(ret)
	if err != nil || u.Path != PathFrontchannelLogout {
		t.Fatalf("return %q", ret)
	}
	tk := u.Query().Get("t")
	got, err := p.openTicket(tk)
	if err != nil || got.Return != "/" || len(got.Targets) != 2 || got.Targets[1].SID != sid("b", s.ID) {
		t.Fatalf("ticket %+v, %v", got, err)
	}
	payload, mac, _ := strings.Cut(tk, ".")
	forged, _ := json.Marshal(frontchannelTicket{Exp: now.Add(time.Hour).Unix(), Targets: []frontchannelTarget{{"a", "x"}}, Return: "/"})
	for name, bad := range map[string]string{
		"empty": "", "no dot": payload, "bad mac encoding": payload + ".!!", "other mac": payload + "." + mac[:len(mac)-2] + "AA",
		"forged payload": base64.RawURLEncoding.EncodeToString(forged) + "." + mac,
		"too long":       strings.Repeat("A", 9<<10) + "." + mac,
	} {
		if _, err := p.openTicket(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// A ticket of another key is refused.
	q := frontchannelFixture(t)
	q.o.HMACKey = []byte(strings.Repeat("z", 32))
	if _, err := q.openTicket(tk); err == nil {
		t.Error("ticket of another key accepted")
	}
	// Expired.
	now = now.Add(frontchannelTicketLifetime + time.Second)
	if _, err := p.openTicket(tk); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired ticket: %v", err)
	}
	// The handler: a bad ticket ends at the home page, a good one shows
	// the page that continues to the sealed return URL.
	rec := httptest.NewRecorder()
	p.handleFrontchannel(rec, httptest.NewRequest("GET", ret, nil))
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/" || rec.Header().Get("Content-Security-Policy") != "" {
		t.Errorf("expired ticket: %d %v", rec.Code, rec.Header())
	}
	now = time.Now()
	rec = httptest.NewRecorder()
	p.handleFrontchannel(rec, httptest.NewRequest("GET", p.FrontchannelReturn(s, "/"), nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Refresh") != "2;url=/" || len(iframeSrc.FindAllString(rec.Body.String(), -1)) != 2 {
		t.Errorf("good ticket: %d %v\n%s", rec.Code, rec.Header(), rec.Body)
	}
}

func TestDiscoveryFrontchannel(t *testing.T) {
	p := frontchannelFixture(t)
	var d map[string]any
	if err := json.Unmarshal(p.discovery, &d); err != nil {
		t.Fatal(err)
	}
	if d["frontchannel_logout_supported"] != true || d["frontchannel_logout_session_supported"] != true {
		t.Errorf("discovery: frontchannel_logout_supported %v, frontchannel_logout_session_supported %v",
			d["frontchannel_logout_supported"], d["frontchannel_logout_session_supported"])
	}
}

// FuzzOpenTicket: a ticket comes from the browser; no input panics, and
// only a sealed one opens.
func FuzzOpenTicket(f *testing.F) {
	p := &Provider{o: Options{HMACKey: []byte(strings.Repeat("k", 32)), Now: time.Now}}
	p.clients = map[string]*Client{}
	f.Add("")
	f.Add("e30.AAAA")
	f.Add("eyJlIjo5OTk5OTk5OTk5LCJyIjoiLyJ9.x")
	f.Fuzz(func(t *testing.T, s string) {
		if tk, err := p.openTicket(s); err == nil {
			t.Fatalf("unsealed input opened: %q → %+v", s, tk)
		}
	})
}

// TestAfterSAMLLogout: an RP-initiated logout through the SAML SPs ends
// at the front-channel page in the logout's language, sealed with the
// post_logout_redirect_uri, its client and state; the page continues there
// while the URI is still registered for that client, and refuses the
// ticket once it is not. Without a front-channel client the SAML logout
// ends at the next step itself; without a post_logout_redirect_uri at the
// logged-out page, which needs no session.
func TestAfterSAMLLogout(t *testing.T) {
	p := frontchannelFixture(t)
	a := p.clients["a"]
	a.RP.OIDC.PostLogoutRedirectURIs = []string{"https://a.example/bye?app=1"}
	s := &store.Session{ID: "session-key-3", RelyingParties: []string{"a", "b"}}
	lr := &logoutRequest{client: a, redirect: "https://a.example/bye?app=1", state: "s&t"}
	const wantNext = "https://a.example/bye?app=1&state=s%26t"

	ret := p.afterSAMLLogout(s, lr, "en")
	u, err := url.Parse(ret)
	if err != nil || u.Path != PathFrontchannelLogout || u.Query().Get("lang") != "en" {
		t.Fatalf("return %q", ret)
	}
	tk, err := p.openTicket(u.Query().Get("t"))
	if err != nil || tk.Client != "a" || tk.next() != wantNext || len(tk.Targets) != 2 {
		t.Fatalf("ticket %+v, %v", tk, err)
	}
	rec := httptest.NewRecorder()
	p.handleFrontchannel(rec, httptest.NewRequest("GET", ret, nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Refresh") != "2;url="+wantNext || !strings.Contains(rec.Body.String(), `lang="en"`) {
		t.Errorf("page: %d %v\n%s", rec.Code, rec.Header(), rec.Body)
	}
	// A sealed ticket whose return URL is not (or no longer) registered
	// for its client is refused.
	for name, bad := range map[string]frontchannelTicket{
		"other URL":    {Targets: tk.Targets, Return: "https://evil.example/", Client: "a"},
		"other client": {Targets: tk.Targets, Return: lr.redirect, Client: "b"},
		"gone client":  {Targets: tk.Targets, Return: lr.redirect, Client: "gone"},
	} {
		sealed, err := p.sealTicket(bad)
		if err != nil {
			t.Fatal(err)
		}
		su, _ := url.Parse(sealed)
		if _, err := p.openTicket(su.Query().Get("t")); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	a.RP.OIDC.PostLogoutRedirectURIs = nil
	if _, err := p.openTicket(u.Query().Get("t")); err == nil {
		t.Error("ticket accepted after the URI was unregistered")
	}

	// No front-channel client: the next step itself.
	plain := &store.Session{ID: "session-key-4", RelyingParties: []string{"c"}}
	if got := p.afterSAMLLogout(plain, lr, "en"); got != wantNext {
		t.Errorf("without front-channel clients: %q", got)
	}
	if got := p.afterSAMLLogout(plain, &logoutRequest{}, "de"); got != PathLogoutDone+"?lang=de" {
		t.Errorf("without anything: %q", got)
	}
	// No post_logout_redirect_uri: the page continues to the logged-out
	// page in the logout's language.
	ret = p.afterSAMLLogout(s, &logoutRequest{client: a}, "de")
	u, _ = url.Parse(ret)
	if tk, err := p.openTicket(u.Query().Get("t")); err != nil || tk.next() != PathLogoutDone+"?lang=de" || u.Query().Get("lang") != "de" {
		t.Errorf("without post_logout_redirect_uri: %q %+v %v", ret, tk, err)
	}
	rec = httptest.NewRecorder()
	p.handleLogoutDone(rec, httptest.NewRequest("GET", PathLogoutDone+"?lang=en", nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Cache-Control") != "no-store" || !strings.Contains(rec.Body.String(), "You are logged out of Trustbroker") {
		t.Errorf("logged-out page: %d %v\n%s", rec.Code, rec.Header(), rec.Body)
	}
}
