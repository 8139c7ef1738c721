// Package harness starts a real broker for end-to-end tests: composed by
// broker/server from YAML, on a loopback listener, on the database a test
// names, with the fake providers of providertest available.
package harness

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/broker/server"
	"github.com/trustbroker/trustbroker/conformance/providertest"
	"github.com/trustbroker/trustbroker/providers"
	"github.com/trustbroker/trustbroker/providers/builtin"
)

// Broker is a running broker.
type Broker struct {
	URL    string
	Server *server.Server
	Config *config.Config
}

// Options tune Start.
type Options struct {
	// Now is the broker's clock (time.Now when nil).
	Now func() time.Time
	// Log receives the broker's log (discarded when nil).
	Log io.Writer
	// Hostname in the issuer URL: 127.0.0.1 when empty; browser tests
	// use localhost, the only name Chromium resolves in tests.
	Hostname string
	// Consent is consent.mode: tests about consent set "ask" (the
	// production default, the consent page); every other test runs with
	// "passthrough" so that its login goes straight to the relying party.
	Consent string
}

// Start parses yamlText over the defaults, points it at dsn and a loopback
// listener, and serves until the test ends.
func Start(t testing.TB, yamlText, dsn string, o Options) *Broker {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := o.Hostname
	if host == "" {
		host = "127.0.0.1"
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	base := "http://" + net.JoinHostPort(host, port)
	// {{issuer}} in the YAML stands for the broker's URL, which is known
	// only now (redirect URIs of in-process relying parties).
	cfg, err := config.Parse([]byte(strings.ReplaceAll(yamlText, "{{issuer}}", base)), "test.yaml")
	if err != nil {
		t.Fatalf("test configuration: %v", err)
	}
	var mk [32]byte
	_, _ = rand.Read(mk[:])
	cfg.Server.Issuer, cfg.Server.Listen = base, ln.Addr().String()
	cfg.Database.DSN = dsn
	cfg.Keys.MasterKey = base64.StdEncoding.EncodeToString(mk[:])
	cfg.Keys.RSABits = 2048
	cfg.Consent.Mode = o.Consent
	if cfg.Consent.Mode == "" {
		cfg.Consent.Mode = config.ConsentPassThrough
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test configuration: %v", err)
	}
	logger := slog.New(slog.DiscardHandler)
	if o.Log != nil {
		logger = slog.New(slog.NewTextHandler(o.Log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg, server.Options{Registry: Registry(), Logger: logger, Now: o.Now})
	if err != nil {
		cancel()
		t.Fatalf("start broker: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("broker stopped with: %v", err)
		}
		srv.Close()
	})
	return &Broker{URL: base, Server: srv, Config: cfg}
}

// Registry is the built-in registry plus the fakes.
func Registry() providers.Registry {
	reg := builtin.Registry()
	for k, f := range providertest.Registry() {
		reg[k] = f
	}
	return reg
}

// Browser is an HTTP client with a cookie jar that follows redirects.
type Browser struct {
	*http.Client
	t testing.TB
}

// NewBrowser returns a fresh browser.
func NewBrowser(t testing.TB) *Browser {
	jar, _ := cookiejar.New(nil)
	return &Browser{Client: &http.Client{Jar: jar, Timeout: 20 * time.Second}, t: t}
}

// StopAt makes the browser stop following redirects at URLs that start
// with prefix (a relying party's redirect URI, which nothing serves in
// tests); the Page then carries the redirect response and its Location.
func (b *Browser) StopAt(prefix string) *Browser {
	b.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), prefix) {
			return http.ErrUseLastResponse
		}
		if len(via) >= 10 {
			return http.ErrUseLastResponse
		}
		return nil
	}
	return b
}

// Location is the parsed Location header of a redirect response.
func (p *Page) Location(t testing.TB) *url.URL {
	t.Helper()
	loc := p.Header.Get("Location")
	if loc == "" {
		t.Fatalf("no redirect from %s (%d):\n%s", p.URL, p.Status, p.Body)
	}
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// Page is a fetched page.
type Page struct {
	Status int
	URL    *url.URL
	Body   string
	Header http.Header
}

func (b *Browser) do(req *http.Request) *Page {
	b.t.Helper()
	resp, err := b.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return &Page{Status: resp.StatusCode, URL: resp.Request.URL, Body: string(body), Header: resp.Header}
}

// Get fetches a URL.
func (b *Browser) Get(u string) *Page {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return b.do(req)
}

// Post submits a form.
func (b *Browser) Post(u string, form url.Values) *Page {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// PostJSON posts a JSON body with headers.
func (b *Browser) PostJSON(u, body string, header map[string]string) *Page {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return b.do(req)
}

var (
	csrfRE   = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	actionRE = regexp.MustCompile(`<form method="post" action="([^"]+)"`)
)

// CSRF returns the first form token on the page.
func (p *Page) CSRF(t testing.TB) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(p.Body)
	if m == nil {
		t.Fatalf("no csrf token on %s:\n%s", p.URL, p.Body)
	}
	return m[1]
}

// Action returns the first form action on the page, resolved.
func (p *Page) Action(t testing.TB) string {
	t.Helper()
	m := actionRE.FindStringSubmatch(p.Body)
	if m == nil {
		t.Fatalf("no form on %s:\n%s", p.URL, p.Body)
	}
	ref, _ := url.Parse(m[1])
	return p.URL.ResolveReference(ref).String()
}
