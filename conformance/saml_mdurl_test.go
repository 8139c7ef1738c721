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
`

// TestSAMLMetadataURL: an SP registered by metadata_url is fetched and
// verified at start, logs in; when its metadata server fails, the broker
// keeps the last good copy (logins still work) and reports the failures
// in /metrics.
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
			"{{md_cert}}", certFile).Replace(mdURLYAML)
		c := &clock{t: nowUTC()}
		b := harness.Start(t, yaml, dsn, harness.Options{Now: c.now})
		trustIdP(t, b, sp)

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
	})
}

// metric reads one sample from the broker's /metrics (0 when absent).
func metric(t *testing.T, b *harness.Broker, name string) float64 {
	t.Helper()
	resp, err := http.Get(b.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindSubmatch(body)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}
