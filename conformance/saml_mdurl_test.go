package conformance_test

import (
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	crewsaml "github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/trustbroker/trustbroker/conformance/dbtest"
	"github.com/trustbroker/trustbroker/conformance/harness"
)

const mdURLYAML = `
providers:
  - id: eid-fake
    type: fake-redirect
    name: {de: Test-Ausweis, en: Test ID card}
    config:
      kind: eid
      subject: restricted-id-0001
      loa: high
      amr: [sc, pin, mfa]
      attributes: {given_name: Erika, email: erika@example.org}
relying_parties:
  - id: remote
    name: {de: Entfernt, en: Remote}
    protocol: saml
    accepted_credentials: [eid]
    claims:
      - {name: given_name, required: true, purpose: {en: greeting}}
    saml:
      entity_id: https://remote.example/saml
      metadata_url: {{md_url}}
      metadata_cert_file: {{md_cert}}
      metadata_refresh: 200ms
  - id: local
    name: {de: Lokal, en: Local}
    protocol: saml
    accepted_credentials: [eid]
    claims:
      - {name: given_name, required: true, purpose: {en: greeting}}
    saml:
      entity_id: {{local_entity}}
      acs_urls: [{{local_acs}}]
`

// TestSAMLMetadataURL: an SP registered by metadata_url is fetched and
// verified at start, logs in; when its metadata server fails, the broker
// keeps the last good copy (logins still work), reports the failures in
// /metrics and stays ready, with the SP degraded in /readyz?verbose (both
// on the management listener). Past the copy's validUntil the SP cannot
// log in (usable gauge 0, unavailable in /readyz?verbose), but the broker
// stays ready and another relying party still logs in: one party's
// metadata must not take every replica out of the load balancer. Once the
// server answers again the SP is back.
func TestSAMLMetadataURL(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		sp := signingSP(t, "https://remote.example/saml", "http://localhost/remote/acs")
		el, err := sp.SignedMetadata()
		if err != nil {
			t.Fatal(err)
		}
		doc := etree.NewDocument()
		doc.SetRoot(el)
		signed, err := doc.WriteToBytes()
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		status := http.StatusOK
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			mu.Lock()
			defer mu.Unlock()
			w.WriteHeader(status)
			if status == http.StatusOK {
				_, _ = w.Write(signed)
			}
		}))
		t.Cleanup(srv.Close)
		certFile := filepath.Join(t.TempDir(), "sp.pem")
		if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: sp.Certificate.Raw}), 0o600); err != nil {
			t.Fatal(err)
		}
		yaml := strings.NewReplacer("{{md_url}}", strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)+"/md",
			"{{md_cert}}", certFile, "{{local_entity}}", spEntityID, "{{local_acs}}", spACS).Replace(mdURLYAML)
		c := &clock{t: nowUTC()}
		b := harness.Start(t, yaml, dsn, harness.Options{Now: c.now})
		trustIdP(t, b, sp)
		local := newSAMLSP(t, b, spACS)
		usable := func() float64 { return metric(t, b, `trustbroker_saml_metadata_usable{rp="remote"}`) }

		login := func() {
			t.Helper()
			req := newRequest(t, sp, crewsaml.HTTPRedirectBinding, nil)
			a, err := acsParse(t, sp, send(t, b, harness.NewBrowser(t), sp, crewsaml.HTTPRedirectBinding, req), req.ID)
			if err != nil {
				t.Fatalf("login: %v", samlErr(err))
			}
			if attrs(a)["given_name"] != "Erika" {
				t.Errorf("attributes %v", attrs(a))
			}
		}
		login()
		if metric(t, b, `trustbroker_saml_metadata_last_success_timestamp_seconds{rp="remote"}`) <= 0 {
			t.Error("no last-success metric")
		}
		if v := usable(); v != 1 {
			t.Errorf("usable gauge %v with the metadata loaded", v)
		}

		mu.Lock()
		status = http.StatusInternalServerError
		mu.Unlock()
		before := metric(t, b, `trustbroker_saml_metadata_refresh_failures_total{rp="remote"}`)
		deadline := time.Now().Add(15 * time.Second)
		for metric(t, b, `trustbroker_saml_metadata_refresh_failures_total{rp="remote"}`) <= before {
			if time.Now().After(deadline) {
				t.Fatal("failed refreshes are not reported in /metrics")
			}
			time.Sleep(100 * time.Millisecond)
		}
		login() // the last good copy
		if v := metric(t, b, `trustbroker_saml_metadata_refresh_failing{rp="remote"}`); v != 1 {
			t.Errorf("refresh_failing gauge %v while failing", v)
		}
		if code, body := readyz(t, b, ""); code != http.StatusOK || body != "ok\n" {
			t.Errorf("refresh failing, copy valid: %d %q", code, body)
		}
		if code, body := readyzVerbose(t, b); code != http.StatusOK ||
			!strings.Contains(body, "[+]database ok\n[+]saml-metadata/remote degraded: refresh failing since ") {
			t.Errorf("refresh failing, copy valid, verbose: %d\n%s", code, body)
		}
		if v := usable(); v != 1 {
			t.Errorf("usable gauge %v while failing with a valid copy", v)
		}

		c.add(49 * time.Hour) // crewjam's metadata is valid for 48h
		// The public listener names no check, ?verbose or not.
		for _, q := range []string{"", "?verbose"} {
			if code, body := readyz(t, b, q); code != http.StatusOK || body != "ok\n" {
				t.Errorf("metadata expired, public /readyz%s: %d %q", q, code, body)
			}
		}
		if code, body := readyzVerbose(t, b); code != http.StatusOK ||
			!strings.HasPrefix(body, "[+]database ok\n[+]saml-metadata/remote unavailable: metadata expired at ") ||
			!strings.HasSuffix(body, "\nreadyz check passed\n") {
			t.Errorf("metadata expired, verbose: %d\n%s", code, body)
		}
		if v := usable(); v != 0 {
			t.Errorf("usable gauge %v with the metadata expired", v)
		}
		// The refresh loop drops the expired copy at its next failure (two
		// failures after the clock moved: one may have read the old time).
		failures := metric(t, b, `trustbroker_saml_metadata_refresh_failures_total{rp="remote"}`)
		deadline = time.Now().Add(15 * time.Second)
		for metric(t, b, `trustbroker_saml_metadata_refresh_failures_total{rp="remote"}`) < failures+2 {
			if time.Now().After(deadline) {
				t.Fatal("no refresh after the clock moved past validUntil")
			}
			time.Sleep(100 * time.Millisecond)
		}
		req := newRequest(t, sp, crewsaml.HTTPRedirectBinding, nil)
		wantRefusedPage(t, send(t, b, harness.NewBrowser(t), sp, crewsaml.HTTPRedirectBinding, req))
		// Another relying party is served meanwhile. (Its request carries
		// the broker's time; its Response is not parsed by crewjam, whose
		// clock is not the broker's.)
		req = newRequest(t, local, crewsaml.HTTPRedirectBinding, func(r *crewsaml.AuthnRequest) { r.IssueInstant = c.now() })
		page := send(t, b, harness.NewBrowser(t), local, crewsaml.HTTPRedirectBinding, req)
		if page.Status != http.StatusOK || !samlResponseRE.MatchString(page.Body) {
			t.Fatalf("the other relying party got no Response: %d %s\n%s", page.Status, page.URL, page.Body)
		}
		if top, second := samlStatus(t, page); top != crewsaml.StatusSuccess {
			t.Errorf("the other relying party: status %s %s", top, second)
		}

		sp.Clock = dsig.NewFakeClockAt(c.now()) // a copy valid for 48h from the broker's now
		el, err = sp.SignedMetadata()
		if err != nil {
			t.Fatal(err)
		}
		doc.SetRoot(el)
		mu.Lock()
		if signed, err = doc.WriteToBytes(); err != nil {
			t.Fatal(err)
		}
		status = http.StatusOK
		mu.Unlock()
		deadline = time.Now().Add(15 * time.Second)
		for {
			code, body := readyzVerbose(t, b)
			if code == http.StatusOK && strings.Contains(body, "[+]saml-metadata/remote ok\n") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("not ready again after the metadata server recovered: %d\n%s", code, body)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if v := metric(t, b, `trustbroker_saml_metadata_refresh_failing{rp="remote"}`); v != 0 {
			t.Errorf("refresh_failing gauge %v after recovery", v)
		}
		if v := usable(); v != 1 {
			t.Errorf("usable gauge %v after recovery", v)
		}
	})
}

// readyz reads the public /readyz with query, which load balancers ask.
func readyz(t *testing.T, b *harness.Broker, query string) (int, string) {
	t.Helper()
	resp, err := http.Get(b.URL + "/readyz" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// readyzVerbose reads /readyz?verbose from the management listener's
// handler (the public one does not name the checks).
func readyzVerbose(t *testing.T, b *harness.Broker) (int, string) {
	t.Helper()
	w := httptest.NewRecorder()
	b.Server.Management.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/readyz?verbose", nil))
	return w.Code, w.Body.String()
}

// metric reads one sample from the management listener's /metrics (0
// when absent).
func metric(t *testing.T, b *harness.Broker, name string) float64 {
	t.Helper()
	w := httptest.NewRecorder()
	b.Server.Management.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if w.Code != http.StatusOK {
		t.Fatalf("/metrics: %d", w.Code)
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindSubmatch(w.Body.Bytes())
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}
