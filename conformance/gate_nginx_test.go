package conformance_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/conformance/dbtest"
	"github.com/trustbroker/trustbroker/conformance/harness"
)

// NginxEnv names the variable holding the nginx binary for the reverse
// proxy tests; unset skips them, set but unusable fails them.
const NginxEnv = "TRUSTBROKER_TEST_NGINX"

// gateYAML protects the service "records" behind nginx: physicians (by the
// profession OID on their card) from the office network (127.0.0.2) during
// business hours; 127.0.0.3 is the open internet. {{nginx}} is the
// proxy's host:port.
const gateYAML = `
session: {lifetime: 168h, idle_timeout: 168h}
providers:
  - id: hba
    type: fake-redirect
    name: {de: Heilberufsausweis, en: Health professional card}
    config:
      kind: smartcard
      subject: hba-0001
      loa: high
      amr: [sc, pin]
      attributes: {given_name: Erika, family_name: Mustermann, profession_oid: "1.2.276.0.76.4.30"}
  - id: eid
    type: fake-redirect
    name: {de: Online-Ausweis, en: eID card}
    config: {kind: eid, subject: eid-0001, loa: high, amr: [pin], attributes: {given_name: Max}}
relying_parties:
  - id: records
    name: {de: Patientenakte, en: Patient records}
    protocol: gate
    accepted_credentials: [smartcard, eid]
    min_loa: high
    claims:
      - {name: given_name, purpose: {en: greeting}}
      - {name: family_name, purpose: {en: greeting}}
policy:
  engine: casbin
  time_zone: Europe/Berlin
  networks:
    - {name: office, trust: trusted, cidrs: [127.0.0.2/32]}
  roles:
    - {attribute: profession_oid, values: ["1.2.276.0.76.4.30"], role: physician}
  rules:
    # The admin area needs the card, whoever asks: an eID session is
    # stepped up.
    - id: records-admin
      priority: 50
      subjects: ["*"]
      objects: [records/admin/*]
      actions: [GET]
      zones: [office]
      credentials: [smartcard, hardware]
      effect: allow
    # Anyone from the office may log in (what they may then read is the
    # business of the rules above and below).
    - id: records-login
      priority: 200
      subjects: ["*"]
      objects: [records]
      actions: [login]
      zones: [office]
      effect: allow
    - id: records-office-hours
      subjects: [role:physician]
      objects: [records]
      actions: [login, GET, HEAD]
      zones: [office]
      hours: Mon-Fri 07:00-19:00 Europe/Berlin
      min_loa: high
      credentials: [smartcard]
      effect: allow
gate:
  proxies: [127.0.0.1]
  services:
    - id: records
      hosts: ["{{nginx}}"]
      headers: {subject: X-Auth-Subject, name: X-Auth-Name, roles: X-Auth-Roles, loa: X-Auth-LoA}
`

const nginxConf = `
daemon off;
worker_processes 1;
pid {{dir}}/nginx.pid;
error_log {{dir}}/error.log info;
events { worker_connections 512; }
http {
  access_log {{dir}}/access.log;
  client_body_temp_path {{dir}}/body;
  proxy_temp_path {{dir}}/proxy;
  server {
    listen {{nginx}};
    location = /_gate {
      internal;
      proxy_pass {{broker}}/gate/auth;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Forwarded-Host $http_host;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-For $remote_addr;
    }
    location @login {
      return 302 $auth_location;
    }
    location / {
      auth_request /_gate;
      auth_request_set $auth_location $upstream_http_location;
      auth_request_set $auth_subject $upstream_http_x_auth_subject;
      auth_request_set $auth_name $upstream_http_x_auth_name;
      auth_request_set $auth_roles $upstream_http_x_auth_roles;
      auth_request_set $auth_loa $upstream_http_x_auth_loa;
      error_page 401 = @login;
      # The service trusts these headers: nginx always sets them from the
      # gate's answer, never from the client.
      proxy_set_header X-Auth-Subject $auth_subject;
      proxy_set_header X-Auth-Name $auth_name;
      proxy_set_header X-Auth-Roles $auth_roles;
      proxy_set_header X-Auth-LoA $auth_loa;
      proxy_pass {{upstream}};
    }
  }
}
`

// nginxBinary returns the nginx to test with, or skips.
func nginxBinary(t testing.TB) string {
	t.Helper()
	bin := os.Getenv(NginxEnv)
	if bin == "" {
		t.Skipf("nginx tests skipped: set %s to an nginx binary, e.g. /usr/sbin/nginx (apt-get install nginx-light)", NginxEnv)
	}
	if out, err := exec.Command(bin, "-v").CombinedOutput(); err != nil {
		t.Fatalf("%s=%s is unusable: %v\n%s", NginxEnv, bin, err, out)
	}
	return bin
}

// freePort reserves a loopback port for a child process: listen, note,
// close. Another process may take it in between; on loopback in a test
// run that is rare, and the child then fails loudly.
func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// startNginx runs nginx in the foreground with conf in its own temporary
// directory, waits until it accepts connections, and stops it when the
// test ends.
func startNginx(t testing.TB, bin, listen, conf string) {
	t.Helper()
	dir := t.TempDir()
	conf = strings.ReplaceAll(conf, "{{dir}}", dir)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, "-p", dir, "-c", path, "-e", filepath.Join(dir, "error.log"))
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", listen, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		select {
		case err := <-done:
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx exited: %v\n%s\n%s", err, out.String(), log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx does not listen on %s", listen)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// echoUpstream is the protected service: it answers with the identity
// headers it received.
func echoUpstream(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{
			"path": r.URL.Path, "subject": r.Header.Get("X-Auth-Subject"), "name": r.Header.Get("X-Auth-Name"),
			"roles": r.Header.Get("X-Auth-Roles"), "loa": r.Header.Get("X-Auth-LoA"),
		})
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// sourceClient is a cookie-keeping client whose connections come from the
// loopback address src (127.0.0.2, 127.0.0.3: different network zones).
// It follows redirects.
func sourceClient(src string) *http.Client {
	jar, _ := cookiejar.New(nil)
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	return &http.Client{Jar: jar, Timeout: 20 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
}

type gateEnv struct {
	b     *harness.Broker
	clock *clock
	nginx string // http://host:port
}

// startGate starts the broker, an upstream and nginx in front of it.
func startGate(t *testing.T, dsn string) *gateEnv {
	bin := nginxBinary(t)
	listen := freePort(t)
	c := &clock{t: berlinTime(t, "2026-03-02 10:00")} // a Monday
	b := harness.Start(t, strings.ReplaceAll(gateYAML, "{{nginx}}", listen), dsn, harness.Options{Now: c.now})
	conf := strings.NewReplacer("{{nginx}}", listen, "{{broker}}", b.URL, "{{upstream}}", echoUpstream(t)).Replace(nginxConf)
	startNginx(t, bin, listen, conf)
	return &gateEnv{b: b, clock: c, nginx: "http://" + listen}
}

func berlinTime(t testing.TB, s string) time.Time {
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	tm, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

type fetched struct {
	status int
	url    *url.URL
	body   string
	header http.Header
}

func fetch(t *testing.T, c *http.Client, method, u string, form url.Values) fetched {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, u, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return fetched{status: resp.StatusCode, url: resp.Request.URL, body: string(b), header: resp.Header}
}

// atService reports whether a response came from the protected service.
func atService(r fetched) bool {
	return r.status == http.StatusOK && strings.HasPrefix(r.body, `{"loa"`)
}

// loginThroughGate follows the login the gate sends a browser to from a
// protected URL, chooses the card, and returns the page at the end.
func loginThroughGate(t *testing.T, c *http.Client, protected string) fetched {
	t.Helper()
	return loginWith(t, c, protected, "hba")
}

// loginWith is loginThroughGate with another provider.
func loginWith(t *testing.T, c *http.Client, protected, provider string) fetched {
	t.Helper()
	method := fetch(t, c, http.MethodGet, protected, nil)
	if method.status != http.StatusOK || !strings.HasPrefix(method.url.Path, "/login/") {
		t.Fatalf("want the method page, got %d %s:\n%s", method.status, method.url, method.body)
	}
	return chooseMethod(t, c, method, provider)
}

func chooseMethod(t *testing.T, c *http.Client, method fetched, provider string) fetched {
	t.Helper()
	p := &harness.Page{Status: method.status, URL: method.url, Body: method.body}
	return fetch(t, c, http.MethodPost, p.Action(t), url.Values{"csrf": {p.CSRF(t)}, "provider": {provider}})
}

// TestGateStepUpBehindNginx: an eID session reads the records but the
// admin area needs the card; nginx sends the browser to a login that
// offers the card only, and then lets it through.
func TestGateStepUpBehindNginx(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		env := startGate(t, dsn)
		office := sourceClient("127.0.0.2")
		// The eID login is allowed (records-login); reading patient records
		// is not (they are for physicians), the admin area needs the card.
		res := loginWith(t, office, env.nginx+"/patients/1", "eid")
		if res.status != http.StatusForbidden {
			t.Fatalf("eID session on patient records: %d %s", res.status, res.url)
		}
		admin := env.nginx + "/admin/settings"
		method := fetch(t, office, http.MethodGet, admin, nil)
		if method.status != http.StatusOK || !strings.HasPrefix(method.url.Path, "/login/") ||
			strings.Contains(method.body, `value="eid"`) || !strings.Contains(method.body, `value="hba"`) {
			t.Fatalf("step-up: want the method page with the card only, got %d %s\n%s", method.status, method.url, method.body)
		}
		done := chooseMethod(t, office, method, "hba")
		if !atService(done) || done.url.String() != admin {
			t.Fatalf("after the card: %d %s\n%s", done.status, done.url, done.body)
		}
	})
}

func TestGateBehindNginx(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		env := startGate(t, dsn)
		office, internet := sourceClient("127.0.0.2"), sourceClient("127.0.0.3")
		protected := env.nginx + "/patients/17?view=full"

		// Without a session nginx sends the browser to the login, which
		// returns to the protected URL: the service sees the identity.
		res := loginThroughGate(t, office, protected)
		if res.status != http.StatusOK || res.url.String() != protected {
			t.Fatalf("after login: %d %s\n%s", res.status, res.url, res.body)
		}
		var seen map[string]string
		if err := json.Unmarshal([]byte(res.body), &seen); err != nil {
			t.Fatalf("upstream answer %q: %v", res.body, err)
		}
		if seen["path"] != "/patients/17" || seen["subject"] == "" || seen["roles"] != "physician" || seen["loa"] != "high" ||
			seen["name"] != "Erika Mustermann" {
			t.Errorf("identity headers at the service: %v", seen)
		}

		// With the session: straight through, every request decided anew.
		if r := fetch(t, office, http.MethodGet, env.nginx+"/patients/18", nil); !atService(r) {
			t.Fatalf("with a session: %d %s %s", r.status, r.url, r.body)
		}
		// Outside the permitted hours: 403 without a new login.
		env.clock.set(berlinTime(t, "2026-03-02 19:00"))
		if r := fetch(t, office, http.MethodGet, env.nginx+"/patients/18", nil); r.status != http.StatusForbidden {
			t.Fatalf("at 19:00: %d, want 403", r.status)
		}
		env.clock.set(berlinTime(t, "2026-03-07 10:00")) // Saturday
		if r := fetch(t, office, http.MethodGet, env.nginx+"/patients/18", nil); r.status != http.StatusForbidden {
			t.Fatalf("on Saturday: %d, want 403", r.status)
		}
		env.clock.set(berlinTime(t, "2026-03-02 18:59"))
		if r := fetch(t, office, http.MethodGet, env.nginx+"/patients/18", nil); !atService(r) {
			t.Fatalf("at 18:59: %d %s, want the service", r.status, r.url)
		}
		// An action the rule does not grant.
		if r := fetch(t, office, http.MethodDelete, env.nginx+"/patients/18", nil); r.status != http.StatusForbidden {
			t.Fatalf("DELETE: %d, want 403", r.status)
		}

		// The same session from another network: denied.
		brokerURL, _ := url.Parse(env.b.URL)
		internet.Jar.SetCookies(brokerURL, office.Jar.Cookies(brokerURL))
		if r := fetch(t, internet, http.MethodGet, env.nginx+"/patients/18", nil); r.status != http.StatusForbidden {
			t.Fatalf("session from the internet zone: %d, want 403", r.status)
		}
		// No session from the internet: sent to the login.
		fresh := sourceClient("127.0.0.3")
		fresh.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		r := fetch(t, fresh, http.MethodGet, protected, nil)
		loc, _ := url.Parse(r.header.Get("Location"))
		if r.status != http.StatusFound || loc == nil || loc.Path != "/gate/login" || loc.Query().Get("rd") != protected {
			t.Fatalf("no session: %d Location %q", r.status, r.header.Get("Location"))
		}
		// And the login from the internet is refused by the policy, with
		// the safe reason on the page.
		internetLogin := sourceClient("127.0.0.3")
		denied := loginThroughGate(t, internetLogin, protected)
		if denied.status != http.StatusForbidden || !strings.Contains(denied.body, "Netzwerk") {
			t.Fatalf("login from the internet: %d\n%s", denied.status, denied.body)
		}

		// Only the configured proxy may ask the gate.
		direct := fetch(t, office, http.MethodGet, env.b.URL+"/gate/auth", nil)
		if direct.status != http.StatusForbidden {
			t.Errorf("gate asked directly by a client: %d", direct.status)
		}

		// Every decision is audited with its rule and context.
		evs, err := env.b.Server.Store.Audit().List(context.Background(), store.AuditFilter{Action: "gate.decide", Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		var outcomes []string
		for _, ev := range evs {
			outcomes = append(outcomes, ev.Outcome)
			var d map[string]any
			_ = json.Unmarshal(ev.Details, &d)
			if d["rule"] == nil || d["client_ip"] == nil || d["zone"] == nil {
				t.Errorf("audit event without decision context: %s", ev.Details)
			}
		}
		if got := strings.Join(outcomes, " "); got != "allow allow deny deny allow deny deny" {
			t.Errorf("audited gate outcomes %q", got)
		}
	})
}

// BenchmarkGateThroughNginx measures proxied requests per second through
// nginx with an auth_request to the gate for each: a valid session, a
// fresh policy decision (cached after the first), and the upstream; with
// every decision audited (audit=all, a database write per request) and
// with denials only (audit=deny). Eight client connections, keep-alive.
func BenchmarkGateThroughNginx(b *testing.B) {
	for _, audit := range []string{"deny", "all"} {
		b.Run("audit="+audit, func(b *testing.B) { benchGate(b, audit) })
	}
}

func benchGate(b *testing.B, audit string) {
	bin := nginxBinary(b)
	listen := freePort(b)
	c := &clock{t: berlinTime(b, "2026-03-02 10:00")}
	yaml := strings.ReplaceAll(gateYAML, "{{nginx}}", listen) + "  audit: " + audit + "\n"
	br := harness.Start(b, yaml, dbtest.SQLite(b), harness.Options{Now: c.now})
	conf := strings.NewReplacer("{{nginx}}", listen, "{{broker}}", br.URL, "{{upstream}}", echoUpstream(b)).Replace(nginxConf)
	startNginx(b, bin, listen, conf)
	client := sourceClient("127.0.0.2")
	client.Transport.(*http.Transport).DisableKeepAlives = false
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = 8
	loginForBench(b, client, "http://"+listen+"/bench")
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed error
	b.ResetTimer()
	start := time.Now()
	workers := 8
	per := (b.N + workers - 1) / workers
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				resp, err := client.Get("http://" + listen + "/bench")
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					mu.Lock()
					failed = err
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	if failed != nil {
		b.Fatal(failed)
	}
	b.ReportMetric(float64(per*workers)/time.Since(start).Seconds(), "requests/s")
}

func loginForBench(b *testing.B, c *http.Client, protected string) {
	resp, err := c.Get(protected)
	if err != nil {
		b.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	p := &harness.Page{Status: resp.StatusCode, URL: resp.Request.URL, Body: string(body)}
	resp, err = c.PostForm(p.Action(b), url.Values{"csrf": {p.CSRF(b)}, "provider": {"hba"}})
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("login for the benchmark: %d", resp.StatusCode)
	}
}
