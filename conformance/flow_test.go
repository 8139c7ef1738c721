package conformance_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/conformance/dbtest"
	"github.com/trustbroker/trustbroker/conformance/harness"
)

const flowYAML = `
demo: true
providers:
  - id: eid-fake
    type: fake-redirect
    name: {de: Test-Ausweis, en: Test ID card}
    config:
      kind: eid
      subject: restricted-id-0001
      loa: high
      amr: [sc, pin, mfa]
      attributes: {given_name: Erika, family_name: Mustermann, birthdate: "1964-08-12"}
  - id: key-fake
    type: fake-ceremony
    name: {de: Test-Schlüssel, en: Test key}
    config: {kind: webauthn, subject: cred-1, loa: substantial, amr: [hwk, user]}
  - id: weak-fake
    type: fake-redirect
    name: {en: Weak}
    config: {kind: eid, subject: w, loa: low}
  - id: broken-fake
    type: fake-redirect
    name: {en: Broken}
    config: {kind: eid, subject: b, loa: high, fail: "Karte gesperrt"}
relying_parties:
  - id: demo
    name: {de: Demo-Dienst, en: Demo service}
    protocol: oidc
    accepted_credentials: [eid, webauthn]
    min_loa: substantial
    claims:
      - {name: given_name, required: true, purpose: {en: greeting}}
      - {name: family_name, purpose: {en: greeting}}
    oidc:
      redirect_uris: ["{{issuer}}/demo/callback"]
      client_secret: test-secret-0123456789-0123456789-0123
`

// clock is a test clock the broker reads.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func start(t *testing.T, dsn string) (*harness.Broker, *clock) {
	return startWith(t, dsn, harness.Options{})
}

func startWith(t *testing.T, dsn string, o harness.Options) (*harness.Broker, *clock) {
	c := &clock{t: time.Now()}
	o.Now = c.now
	return harness.Start(t, flowYAML, dsn, o), c
}

// beginLogin opens the demo RP and presses its login button; it returns the
// method page.
func beginLogin(t *testing.T, b *harness.Broker, br *harness.Browser) *harness.Page {
	t.Helper()
	home := br.Get(b.URL + "/demo")
	if home.Status != 200 {
		t.Fatalf("/demo: %d", home.Status)
	}
	return br.Post(b.URL+"/demo/login", url.Values{"csrf": {home.CSRF(t)}})
}

var claimRE = regexp.MustCompile(`<th scope="row"><code>([^<]+)</code></th><td>([^<]*)</td>`)

// claims reads the demo RP's result table.
func claims(t *testing.T, p *harness.Page) map[string]string {
	t.Helper()
	if p.Status != 200 || !strings.Contains(p.Body, "claims") {
		t.Fatalf("no result page (%d %s):\n%s", p.Status, p.URL, p.Body)
	}
	out := map[string]string{}
	for _, m := range claimRE.FindAllStringSubmatch(p.Body, -1) {
		out[m[1]] = m[2]
	}
	return out
}

func choose(t *testing.T, br *harness.Browser, method *harness.Page, provider string) *harness.Page {
	t.Helper()
	return br.Post(method.Action(t), url.Values{"csrf": {method.CSRF(t)}, "provider": {provider}})
}

func auditActions(t *testing.T, st store.Store, target string) []string {
	t.Helper()
	evs, err := st.Audit().List(context.Background(), store.AuditFilter{Target: target, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		out = append(out, e.Action+":"+e.Outcome)
	}
	return out
}

func txID(p *harness.Page) string { return strings.TrimPrefix(p.URL.Path, "/login/") }

func TestLoginFlow(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		b, _ := start(t, dsn)
		br := harness.NewBrowser(t)
		method := beginLogin(t, b, br)
		if method.Status != 200 || !strings.HasPrefix(method.URL.Path, "/login/") {
			t.Fatalf("method page: %d %s", method.Status, method.URL)
		}
		for _, want := range []string{`value="eid-fake"`, `value="key-fake"`, `value="broken-fake"`, "Demo-Dienst"} {
			if !strings.Contains(method.Body, want) {
				t.Errorf("method page lacks %s", want)
			}
		}
		if strings.Contains(method.Body, `value="weak-fake"`) {
			t.Error("a provider below the RP's level of assurance is offered")
		}
		h := method.Header
		if !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") || h.Get("Cache-Control") != "no-store" ||
			h.Get("Referrer-Policy") != "no-referrer" || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("security headers missing: %v", h)
		}
		tx := txID(method)
		got := claims(t, choose(t, br, method, "eid-fake"))
		if got["given_name"] != "Erika" || got["family_name"] != "Mustermann" || got["acr"] != "http://eidas.europa.eu/LoA/high" ||
			got["amr"] != "sc pin mfa" || got["sub"] == "" || got["auth_time"] == "" {
			t.Errorf("claims: %v", got)
		}
		if _, ok := got["birthdate"]; ok {
			t.Error("an attribute the RP did not register left the broker")
		}
		want := []string{"login.start:success", "login.method:success", "login.provider:success",
			"login.policy:allow", "login.consent:success", "login.complete:success"}
		if acts := auditActions(t, b.Server.Store, tx); strings.Join(acts, ",") != strings.Join(want, ",") {
			t.Errorf("audit trail %v, want %v", acts, want)
		}
		// The transaction answered once: it is gone.
		if again := br.Get(b.URL + "/login/" + tx); again.Status != http.StatusNotFound {
			t.Errorf("finished transaction still reachable: %d", again.Status)
		}
		// Single sign-on: the next login answers from the session, with the
		// time of the first authentication.
		sso := claims(t, beginLogin(t, b, br))
		if sso["auth_time"] != got["auth_time"] || sso["sub"] != got["sub"] || sso["given_name"] != "Erika" {
			t.Errorf("SSO claims: %v (first %v)", sso, got)
		}
		// The same identity from another browser logs in afresh and finds
		// the same account, so the RP sees the same subject.
		br2 := harness.NewBrowser(t)
		other := claims(t, choose(t, br2, beginLogin(t, b, br2), "eid-fake"))
		if other["sub"] != got["sub"] {
			t.Errorf("second browser: %v, first %v", other, got)
		}
	})
}

func TestCeremonyFlow(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		b, _ := start(t, dsn)
		br := harness.NewBrowser(t)
		method := beginLogin(t, b, br)
		page := choose(t, br, method, "key-fake")
		if page.Status != 200 || !strings.Contains(page.Body, `data-kind="webauthn"`) {
			t.Fatalf("ceremony page: %d\n%s", page.Status, page.Body)
		}
		tx := txID(method)
		token := regexp.MustCompile(`data-csrf="([^"]+)"`).FindStringSubmatch(page.Body)[1]
		base := b.URL + "/login/" + tx + "/ceremony/"
		if p := br.PostJSON(base+"options", "{}", nil); p.Status != http.StatusForbidden {
			t.Errorf("options without CSRF header: %d", p.Status)
		}
		opts := br.PostJSON(base+"options", "{}", map[string]string{"X-CSRF-Token": token})
		var o struct{ Challenge string }
		if err := json.Unmarshal([]byte(opts.Body), &o); err != nil || o.Challenge == "" {
			t.Fatalf("options: %d %s", opts.Status, opts.Body)
		}
		bad := br.PostJSON(base+"finish", `{"challenge":"forged"}`, map[string]string{"X-CSRF-Token": token})
		if bad.Status != http.StatusUnprocessableEntity || !strings.Contains(bad.Body, "challenge mismatch") {
			t.Errorf("forged response: %d", bad.Status)
		}
		opts = br.PostJSON(base+"options", "{}", map[string]string{"X-CSRF-Token": token})
		_ = json.Unmarshal([]byte(opts.Body), &o)
		body, _ := json.Marshal(map[string]string{"challenge": o.Challenge})
		fin := br.PostJSON(base+"finish", string(body), map[string]string{"X-CSRF-Token": token})
		var next struct{ Next string }
		if err := json.Unmarshal([]byte(fin.Body), &next); err != nil || next.Next != "/login/"+tx {
			t.Fatalf("finish answer %d %s: the page must navigate to the login page", fin.Status, fin.Body)
		}
		got := claims(t, br.Get(b.URL+next.Next))
		if got["acr"] != "http://eidas.europa.eu/LoA/substantial" || got["amr"] != "hwk user" {
			t.Errorf("claims: %v", got)
		}
		if _, ok := got["given_name"]; ok {
			t.Error("claims appeared that the identity does not carry")
		}
		if replay := br.PostJSON(base+"finish", string(body), map[string]string{"X-CSRF-Token": token}); replay.Status != http.StatusNotFound {
			t.Errorf("replayed finish: %d", replay.Status)
		}
	})
}

func TestFlowRefusals(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		b, clk := start(t, dsn)
		br := harness.NewBrowser(t)
		method := beginLogin(t, b, br)
		tx := txID(method)

		t.Run("another browser", func(t *testing.T) {
			p := harness.NewBrowser(t).Get(method.URL.String())
			if p.Status != http.StatusForbidden || !strings.Contains(p.Body, "anderen Browser") {
				t.Errorf("foreign browser: %d", p.Status)
			}
		})
		t.Run("bad csrf", func(t *testing.T) {
			p := br.Post(method.Action(t), url.Values{"csrf": {"forged"}, "provider": {"eid-fake"}})
			if p.Status != http.StatusForbidden {
				t.Errorf("forged token: %d", p.Status)
			}
			if acts := auditActions(t, b.Server.Store, tx); !strings.Contains(strings.Join(acts, ","), "login.csrf:denied") {
				t.Errorf("no audit of the refusal: %v", acts)
			}
		})
		t.Run("cross-origin post", func(t *testing.T) {
			req, _ := http.NewRequest("POST", method.Action(t), strings.NewReader(url.Values{"csrf": {method.CSRF(t)}, "provider": {"eid-fake"}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Sec-Fetch-Site", "cross-site")
			req.Header.Set("Origin", "https://evil.example")
			resp, err := br.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("cross-origin form post: %d", resp.StatusCode)
			}
		})
		t.Run("unknown transaction", func(t *testing.T) {
			if p := br.Get(b.URL + "/login/doesnotexist"); p.Status != http.StatusNotFound {
				t.Errorf("unknown: %d", p.Status)
			}
		})
		t.Run("method not offered", func(t *testing.T) {
			if p := choose(t, br, method, "weak-fake"); p.Status != http.StatusBadRequest {
				t.Errorf("weak provider chosen: %d", p.Status)
			}
		})
		t.Run("provider failure", func(t *testing.T) {
			p := choose(t, br, method, "broken-fake")
			if p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, "Karte gesperrt") || !strings.Contains(p.Body, `value="eid-fake"`) {
				t.Errorf("provider failure page: %d", p.Status)
			}
		})
		t.Run("cancel", func(t *testing.T) {
			m := beginLogin(t, b, br)
			p := br.Post(m.URL.String()+"/cancel", url.Values{"csrf": {m.CSRF(t)}})
			if p.Status != 200 || !strings.Contains(p.Body, "access_denied") {
				t.Errorf("cancel: %d %s", p.Status, p.Body)
			}
		})
		t.Run("expired", func(t *testing.T) {
			m := beginLogin(t, b, harness.NewBrowser(t))
			clk.add(b.Config.Session.LoginTimeout + time.Second)
			if p := br.Get(m.URL.String()); p.Status != http.StatusNotFound {
				t.Errorf("expired transaction: %d", p.Status)
			}
		})
	})
}
