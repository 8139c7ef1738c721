package server

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	crewsaml "github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/trustbroker/trustbroker/broker/config"
)

// readyzBroker is a broker on SQLite with one SAML SP registered by
// metadata_url, served from a loopback server (status 200 with the signed
// metadata, valid for 48h from now, or the given status), and a clock the
// test moves.
type readyzBroker struct {
	s   *Server
	srv *httptest.Server
	mu  sync.Mutex
	now time.Time
}

func startReadyz(t *testing.T, status int) *readyzBroker {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sp"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	acs, _ := url.Parse("https://sp.example/acs")
	entity, _ := url.Parse("https://sp.example/saml")
	sp := &crewsaml.ServiceProvider{EntityID: entity.String(), AcsURL: *acs, MetadataURL: *entity, Key: key, Certificate: cert,
		SignatureMethod: dsig.RSASHA256SignatureMethod}
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
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(status)
		if status == http.StatusOK {
			_, _ = w.Write(signed)
		}
	}))
	t.Cleanup(srv.Close)
	certFile := filepath.Join(t.TempDir(), "sp.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(`
relying_parties:
  - id: remote
    name: {en: Remote}
    protocol: saml
    accepted_credentials: [eid]
    saml:
      entity_id: https://sp.example/saml
      metadata_url: `+srv.URL+`/md
      metadata_cert_file: `+certFile+`
`), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database.DSN = "sqlite:" + filepath.Join(t.TempDir(), "tb.db")
	cfg.Keys.MasterKey = base64.StdEncoding.EncodeToString(make([]byte, 32))
	cfg.Keys.RSABits = 2048
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	b := &readyzBroker{srv: srv, now: time.Now()}
	b.s, err = New(t.Context(), cfg, Options{Now: func() time.Time { b.mu.Lock(); defer b.mu.Unlock(); return b.now }})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *readyzBroker) add(d time.Duration) { b.mu.Lock(); b.now = b.now.Add(d); b.mu.Unlock() }

// get asks the public listener's handler.
func (b *readyzBroker) get(t *testing.T, target string) (int, string) {
	t.Helper()
	return b.serve(t, b.s.Handler, target)
}

// manage asks the management listener's handler.
func (b *readyzBroker) manage(t *testing.T, target string) (int, string) {
	t.Helper()
	return b.serve(t, b.s.Management, target)
}

func (b *readyzBroker) serve(t *testing.T, h http.Handler, target string) (int, string) {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, target, nil))
	body, _ := io.ReadAll(w.Body)
	if strings.Contains(string(body), b.srv.URL) {
		t.Errorf("%s shows the metadata URL:\n%s", target, body)
	}
	return w.Code, string(body)
}

// publicReadyz asks the public /readyz, plain and with ?verbose, and
// wants the terse answer both times: code and "ok" or "failed", no check
// named.
func (b *readyzBroker) publicReadyz(t *testing.T, code int) {
	t.Helper()
	want := "ok\n"
	if code != http.StatusOK {
		want = "failed\n"
	}
	for _, target := range []string{"/readyz", "/readyz?verbose"} {
		if c, body := b.get(t, target); c != code || body != want {
			t.Errorf("public %s: %d %q, want %d %q", target, c, body, code, want)
		}
	}
}

// TestReadyz: /readyz is 200 "ok" with the database answering and the
// SP's metadata loaded; still 200 once the metadata is past its
// validUntil (the metadata check is partial: ?verbose shows the SP
// unavailable); 503 naming only the database once that is gone, while
// /healthz stays 200. The check names and states are answered on the
// management listener only; the public /readyz says "ok" or "failed",
// with ?verbose too.
func TestReadyz(t *testing.T) {
	b := startReadyz(t, http.StatusOK)
	closed := false
	t.Cleanup(func() {
		if !closed {
			b.s.Close()
		}
	})
	b.publicReadyz(t, http.StatusOK)
	if code, body := b.manage(t, "/readyz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("ready: %d %q", code, body)
	}
	if code, body := b.manage(t, "/readyz?verbose"); code != http.StatusOK ||
		body != "[+]database ok\n[+]saml-metadata/remote ok\nreadyz check passed\n" {
		t.Errorf("ready, verbose: %d %q", code, body)
	}

	b.add(49 * time.Hour) // crewjam's metadata is valid for 48h
	b.publicReadyz(t, http.StatusOK)
	if code, body := b.manage(t, "/readyz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("metadata expired: %d %q", code, body)
	}
	if code, body := b.manage(t, "/readyz?verbose"); code != http.StatusOK ||
		!strings.HasPrefix(body, "[+]database ok\n[+]saml-metadata/remote unavailable: metadata expired at ") ||
		!strings.HasSuffix(body, "\nreadyz check passed\n") {
		t.Errorf("metadata expired, verbose: %d\n%s", code, body)
	}

	closed = true
	b.s.Close()
	b.publicReadyz(t, http.StatusServiceUnavailable)
	if code, body := b.manage(t, "/readyz"); code != http.StatusServiceUnavailable || body != "not ready: database\n" {
		t.Errorf("database closed: %d %q", code, body)
	}
	if code, body := b.manage(t, "/readyz?verbose"); code != http.StatusServiceUnavailable ||
		!strings.HasPrefix(body, "[-]database failed: unavailable\n[+]saml-metadata/remote unavailable: metadata expired at ") ||
		!strings.HasSuffix(body, "\nreadyz check failed\n") {
		t.Errorf("database closed, verbose: %d\n%s", code, body)
	}
	for name, h := range map[string]http.Handler{"public": b.s.Handler, "management": b.s.Management} {
		if code, body := b.serve(t, h, "/healthz"); code != http.StatusOK || body != "ok\n" {
			t.Errorf("%s healthz: %d %q", name, code, body)
		}
	}
}

// TestReadyzMetadataNeverLoaded: an SP whose metadata could not be
// fetched at start does not keep the broker from being ready; ?verbose
// on the management listener shows it unavailable.
func TestReadyzMetadataNeverLoaded(t *testing.T) {
	b := startReadyz(t, http.StatusNotFound)
	t.Cleanup(func() { b.s.Close() })
	b.publicReadyz(t, http.StatusOK)
	if code, body := b.manage(t, "/readyz?verbose"); code != http.StatusOK ||
		body != "[+]database ok\n[+]saml-metadata/remote unavailable: metadata never loaded\nreadyz check passed\n" {
		t.Errorf("never loaded, verbose: %d %q", code, body)
	}
}
