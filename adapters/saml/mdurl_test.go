package saml

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"encoding/xml"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	crewsaml "github.com/crewjam/saml"
	"github.com/prometheus/client_golang/prometheus"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/broker/health"
)

const remoteEntity = "https://remote.example/saml"

// mdSigner signs SP metadata like a federation operator would.
type mdSigner struct {
	key  *rsa.PrivateKey
	cert *x509.Certificate
}

func newMDSigner(t testing.TB, keyFile string) *mdSigner {
	t.Helper()
	key := testKey(t, keyFile)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "metadata signer"},
		NotBefore: time.Unix(0, 0), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &mdSigner{key: key, cert: cert}
}

func (s *mdSigner) certFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "md-signer.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// metadata is signed SP metadata with one ACS, validUntil and
// cacheDuration as given (zero: left out).
func (s *mdSigner) metadata(t testing.TB, acs string, validUntil time.Time, cache time.Duration) []byte {
	t.Helper()
	md := &crewsaml.EntityDescriptor{EntityID: remoteEntity, ID: "_md", ValidUntil: validUntil, CacheDuration: cache,
		SPSSODescriptors: []crewsaml.SPSSODescriptor{{
			SSODescriptor: crewsaml.SSODescriptor{RoleDescriptor: crewsaml.RoleDescriptor{
				ProtocolSupportEnumeration: "urn:oasis:names:tc:SAML:2.0:protocol"}},
			AssertionConsumerServices: []crewsaml.IndexedEndpoint{{Binding: crewsaml.HTTPPostBinding, Location: acs, Index: 0}},
		}}}
	raw, err := xml.Marshal(md)
	if err != nil {
		t.Fatal(err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		t.Fatal(err)
	}
	ctx := dsig.NewDefaultSigningContext(dsig.TLSCertKeyStore(tls.Certificate{Certificate: [][]byte{s.cert.Raw}, PrivateKey: s.key}))
	if err := ctx.SetSignatureMethod(dsig.RSASHA256SignatureMethod); err != nil {
		t.Fatal(err)
	}
	signed, err := ctx.SignEnveloped(doc.Root())
	if err != nil {
		t.Fatal(err)
	}
	doc.SetRoot(signed)
	out, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// mdServer serves whatever body/status it is set to, on loopback.
type mdServer struct {
	mu     sync.Mutex
	status int
	body   []byte
	hits   int
	*httptest.Server
}

func newMDServer(t *testing.T) *mdServer {
	s := &mdServer{status: http.StatusOK}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.hits++
		w.WriteHeader(s.status)
		_, _ = w.Write(s.body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *mdServer) set(status int, body []byte) {
	s.mu.Lock()
	s.status, s.body = status, body
	s.mu.Unlock()
}

func acsOf(md *crewsaml.EntityDescriptor) string {
	if md == nil {
		return ""
	}
	return md.SPSSODescriptors[0].AssertionConsumerServices[0].Location
}

// TestMetadataURL: fetched and signature-checked at start; refreshed as
// cacheDuration and validUntil ask; a failed refresh (server error, bad
// signature, other entity, DOCTYPE) keeps the last good copy and is
// reported; past its validUntil the copy is no longer used.
func TestMetadataURL(t *testing.T) {
	signer := newMDSigner(t, "sp-key.pem")
	other := newMDSigner(t, "idp-key.pem")
	srv := newMDServer(t)
	now := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	srv.set(http.StatusOK, signer.metadata(t, "https://remote.example/acs1", now.Add(2*time.Hour), 5*time.Minute))

	p, err := New(Options{SessionKey: testSessionKey, Now: clock, RelyingParties: []*config.RelyingParty{{ID: "remote", Protocol: Protocol, SAML: &config.SAML{
		EntityID: remoteEntity, MetadataURL: srv.URL + "/md", MetadataCertFile: signer.certFile(t), MetadataRefresh: time.Hour,
		NameIDFormats: []string{config.NameIDPersistent}, RequireSignedRequests: true}}}})
	if err != nil {
		t.Fatal(err)
	}
	sp := p.sps[remoteEntity]
	md, err := p.GetServiceProvider(nil, remoteEntity)
	if err != nil || acsOf(md) != "https://remote.example/acs1" {
		t.Fatalf("first fetch: %v %v", acsOf(md), err)
	}
	if s := md.SPSSODescriptors[0].AuthnRequestsSigned; s == nil || !*s {
		t.Error("require_signed_requests not applied to fetched metadata")
	}
	next := func() time.Duration {
		sp.remote.mu.Lock()
		defer sp.remote.mu.Unlock()
		return sp.remote.next.Sub(now)
	}
	if next() != 5*time.Minute {
		t.Errorf("cacheDuration 5m, refresh 1h: next fetch in %v", next())
	}
	srv.set(http.StatusOK, signer.metadata(t, "https://remote.example/acs1", now.Add(2*time.Minute), 5*time.Minute))
	p.refresh(context.Background(), sp)
	if next() != 2*time.Minute {
		t.Errorf("validUntil in 2m: next fetch in %v", next())
	}

	good := signer.metadata(t, "https://remote.example/acs1", now.Add(2*time.Hour), 0)
	srv.set(http.StatusOK, good)
	p.refresh(context.Background(), sp)
	if next() != time.Hour {
		t.Errorf("neither: next fetch in %v", next())
	}
	failuresBefore := sp.remote.failures
	for name, bad := range map[string]struct {
		status int
		body   []byte
	}{
		"server error":    {http.StatusInternalServerError, good},
		"unsigned":        {http.StatusOK, bytes.Replace(good, []byte("<ds:Signature"), []byte("<ds:Nope"), 1)},
		"tampered":        {http.StatusOK, bytes.Replace(good, []byte("acs1"), []byte("evil"), 1)},
		"foreign signer":  {http.StatusOK, other.metadata(t, "https://remote.example/evil", now.Add(time.Hour), 0)},
		"other entity id": {http.StatusOK, bytes.Replace(signer.metadata(t, "https://remote.example/evil", now.Add(time.Hour), 0), []byte(remoteEntity), []byte("https://x.example/saml"), 1)},
		"doctype":         {http.StatusOK, append([]byte(`<!DOCTYPE x [<!ENTITY a "b">]>`), good...)},
		"expired":         {http.StatusOK, signer.metadata(t, "https://remote.example/evil", now.Add(-time.Minute), 0)},
		"too large":       {http.StatusOK, append(good, bytes.Repeat([]byte(" "), maxMetadataBytes)...)},
	} {
		srv.set(bad.status, bad.body)
		p.refresh(context.Background(), sp)
		md, err := p.GetServiceProvider(nil, remoteEntity)
		if err != nil || acsOf(md) != "https://remote.example/acs1" {
			t.Errorf("%s: the last good copy must stay: %q %v", name, acsOf(md), err)
		}
		if next() != time.Minute {
			t.Errorf("%s: retry in %v, want 1m", name, next())
		}
	}
	st := p.MetadataStatus()
	if len(st) != 1 || !st[0].Have || st[0].Failures != failuresBefore+8 || st[0].LastError == "" || !st[0].LastOK.Equal(now) {
		t.Errorf("status: %+v", st)
	}

	// A new signed copy is taken at once.
	srv.set(http.StatusOK, signer.metadata(t, "https://remote.example/acs2", now.Add(time.Hour), 0))
	p.refresh(context.Background(), sp)
	if md, _ := p.GetServiceProvider(nil, remoteEntity); acsOf(md) != "https://remote.example/acs2" {
		t.Errorf("new copy not used: %q", acsOf(md))
	}
	// Past validUntil with failing refreshes: the SP has no metadata.
	srv.set(http.StatusInternalServerError, nil)
	now = now.Add(2 * time.Hour)
	p.refresh(context.Background(), sp)
	if md, err := p.GetServiceProvider(nil, remoteEntity); err == nil {
		t.Errorf("expired copy still used: %q", acsOf(md))
	}
	if st := p.MetadataStatus(); st[0].Have || !strings.Contains(st[0].LastError, "500") {
		t.Errorf("status after expiry: %+v", st)
	}
}

// TestMetadataURLWatch: the refresh loop fetches again by itself and stops
// with its context.
func TestMetadataURLWatch(t *testing.T) {
	signer := newMDSigner(t, "sp-key.pem")
	srv := newMDServer(t)
	srv.set(http.StatusOK, signer.metadata(t, "https://remote.example/acs1", time.Time{}, 100*time.Millisecond))
	p, err := New(Options{SessionKey: testSessionKey, RelyingParties: []*config.RelyingParty{{ID: "remote", Protocol: Protocol, SAML: &config.SAML{
		EntityID: remoteEntity, MetadataURL: srv.URL, MetadataCertFile: signer.certFile(t), MetadataRefresh: time.Hour,
		NameIDFormats: []string{config.NameIDPersistent}}}}})
	if err != nil {
		t.Fatal(err)
	}
	srv.set(http.StatusOK, signer.metadata(t, "https://remote.example/acs2", time.Time{}, time.Hour))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Watch(ctx); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if md, _ := p.GetServiceProvider(nil, remoteEntity); acsOf(md) == "https://remote.example/acs2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the refresh loop did not fetch within the cacheDuration")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not stop")
	}
}

// TestMetadataURLFirstFetchFails: an SP whose metadata cannot be fetched
// at start is unknown (requests get the error page), not a start failure.
func TestMetadataURLFirstFetchFails(t *testing.T) {
	signer := newMDSigner(t, "sp-key.pem")
	srv := newMDServer(t)
	srv.set(http.StatusNotFound, nil)
	p, err := New(Options{SessionKey: testSessionKey, RelyingParties: []*config.RelyingParty{{ID: "remote", Protocol: Protocol, SAML: &config.SAML{
		EntityID: remoteEntity, MetadataURL: srv.URL, MetadataCertFile: signer.certFile(t),
		NameIDFormats: []string{config.NameIDPersistent}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.GetServiceProvider(nil, remoteEntity); err == nil {
		t.Error("an SP without metadata is known")
	}
	if st := p.MetadataStatus(); len(st) != 1 || st[0].Have || st[0].Failures != 1 {
		t.Errorf("status: %+v", st)
	}
}

// FuzzVerifyMetadata: fetched metadata never panics the verification, and
// nothing but the signer's own document (its ACS) is accepted.
func FuzzVerifyMetadata(f *testing.F) {
	signer := newMDSigner(f, "sp-key.pem")
	good := signer.metadata(f, "https://remote.example/acs1", time.Time{}, 0)
	certs := []*x509.Certificate{signer.cert}
	if _, err := verifyMetadata(good, certs, remoteEntity); err != nil {
		f.Fatalf("signed seed refused: %v", err)
	}
	f.Add(good)
	f.Add([]byte(`<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://remote.example/saml"/>`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		md, err := verifyMetadata(raw, certs, remoteEntity)
		if err != nil {
			return
		}
		if acsOf(md) != "https://remote.example/acs1" {
			t.Fatalf("accepted metadata the signer did not sign: %q", raw)
		}
	})
}

// usableGauge is trustbroker_saml_metadata_usable{rp} (-1 when unset).
func usableGauge(t *testing.T, rp string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(metadataUsable)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "rp" && l.GetValue() == rp {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return -1
}

// TestMetadataURLReadiness: the IdP's checks are partial: while the SP's
// metadata was never loaded or is past its validUntil, /readyz stays 200
// and ?verbose shows the relying party unavailable, and the gauge
// trustbroker_saml_metadata_usable is 0; a failing refresh with a valid
// copy in use is shown as degraded, usable 1; the URL never shows.
func TestMetadataURLReadiness(t *testing.T) {
	signer := newMDSigner(t, "sp-key.pem")
	srv := newMDServer(t)
	srv.set(http.StatusNotFound, nil)
	now := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	p, err := New(Options{SessionKey: testSessionKey, Now: clock, RelyingParties: []*config.RelyingParty{{ID: "remote", Protocol: Protocol, SAML: &config.SAML{
		EntityID: remoteEntity, MetadataURL: srv.URL + "/md", MetadataCertFile: signer.certFile(t), MetadataRefresh: time.Hour,
		NameIDFormats: []string{config.NameIDPersistent}}}}})
	if err != nil {
		t.Fatal(err)
	}
	sp := p.sps[remoteEntity]
	ready := &health.Readiness{}
	ready.Add(p.ReadinessChecks()...)
	readyz := func(target string) (int, string) {
		w := httptest.NewRecorder()
		ready.ServeHTTP(w, httptest.NewRequest(http.MethodGet, target, nil))
		if strings.Contains(w.Body.String(), srv.URL) {
			t.Errorf("the answer shows the metadata URL:\n%s", w.Body)
		}
		return w.Code, w.Body.String()
	}

	if v := usableGauge(t, "remote"); v != 0 {
		t.Errorf("never loaded: usable %v", v)
	}
	if code, body := readyz("/readyz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("never loaded: %d %q", code, body)
	}
	if code, body := readyz("/readyz?verbose"); code != http.StatusOK ||
		body != "[+]saml-metadata/remote unavailable: metadata never loaded\nreadyz check passed\n" {
		t.Errorf("never loaded, verbose: %d %q", code, body)
	}

	srv.set(http.StatusOK, signer.metadata(t, "https://remote.example/acs1", now.Add(2*time.Hour), 0))
	p.refresh(context.Background(), sp)
	if v := usableGauge(t, "remote"); v != 1 {
		t.Errorf("loaded: usable %v", v)
	}
	if code, body := readyz("/readyz?verbose"); code != http.StatusOK || body != "[+]saml-metadata/remote ok\nreadyz check passed\n" {
		t.Errorf("loaded: %d %q", code, body)
	}

	srv.set(http.StatusInternalServerError, nil)
	now = now.Add(time.Hour)
	p.refresh(context.Background(), sp)
	now = now.Add(time.Minute)
	p.refresh(context.Background(), sp)
	if code, body := readyz("/readyz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("refresh failing, copy valid: %d %q", code, body)
	}
	want := "[+]saml-metadata/remote degraded: refresh failing since 2026-11-27T10:00:00Z; using the copy of 2026-11-27T09:00:00Z\n"
	if code, body := readyz("/readyz?verbose"); code != http.StatusOK || !strings.Contains(body, want) {
		t.Errorf("refresh failing, copy valid, verbose: %d\n%s", code, body)
	}
	if v := usableGauge(t, "remote"); v != 1 {
		t.Errorf("refresh failing, copy valid: usable %v", v)
	}

	// Past validUntil: expired, whether or not a refresh has run since;
	// the check sets the gauge before the next refresh does.
	now = now.Add(time.Hour)
	if code, body := readyz("/readyz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("expired: %d %q", code, body)
	}
	if v := usableGauge(t, "remote"); v != 0 {
		t.Errorf("expired, before a refresh: usable %v", v)
	}
	want = "[+]saml-metadata/remote unavailable: metadata expired at 2026-11-27T11:00:00Z\nreadyz check passed\n"
	setUsable("remote", true) // a failing refresh past validUntil sets it too
	p.refresh(context.Background(), sp)
	if v := usableGauge(t, "remote"); v != 0 {
		t.Errorf("expired, refreshed: usable %v", v)
	}
	if code, body := readyz("/readyz?verbose"); code != http.StatusOK || body != want {
		t.Errorf("expired, verbose: %d %q, want %q", code, body, want)
	}

	// Back: usable again.
	srv.set(http.StatusOK, signer.metadata(t, "https://remote.example/acs1", now.Add(2*time.Hour), 0))
	p.refresh(context.Background(), sp)
	if v := usableGauge(t, "remote"); v != 1 {
		t.Errorf("recovered: usable %v", v)
	}
	if code, body := readyz("/readyz?verbose"); code != http.StatusOK || body != "[+]saml-metadata/remote ok\nreadyz check passed\n" {
		t.Errorf("recovered: %d %q", code, body)
	}
}

// TestMetadataURLLogRedacted: a metadata URL with a password in its
// userinfo (config refuses one; the adapter does not rely on it) never
// shows the password: not in the refresh warning, the error behind it,
// the status or the readiness log.
func TestMetadataURLLogRedacted(t *testing.T) {
	signer := newMDSigner(t, "sp-key.pem")
	srv := newMDServer(t)
	srv.set(http.StatusInternalServerError, nil)
	var log bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&log, nil))
	mdURL := strings.Replace(srv.URL, "http://", "http://user:s3cret@", 1) + "/md"
	p, err := New(Options{SessionKey: testSessionKey, Logger: logger, RelyingParties: []*config.RelyingParty{{ID: "remote", Protocol: Protocol, SAML: &config.SAML{
		EntityID: remoteEntity, MetadataURL: mdURL, MetadataCertFile: signer.certFile(t),
		NameIDFormats: []string{config.NameIDPersistent}}}}})
	if err != nil {
		t.Fatal(err)
	}
	ready := &health.Readiness{Logger: logger}
	ready.Add(p.ReadinessChecks()...)
	ready.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if !strings.Contains(log.String(), "SP metadata refresh failed") || !strings.Contains(log.String(), "readiness check unavailable") {
		t.Fatalf("nothing logged:\n%s", log.String())
	}
	if !strings.Contains(log.String(), "url=http://user:xxxxx@127.0.0.1") {
		t.Errorf("the refresh warning does not name the redacted URL:\n%s", log.String())
	}
	st := p.MetadataStatus()
	for _, s := range []string{log.String(), st[0].URL, st[0].LastError} {
		if strings.Contains(s, "s3cret") {
			t.Errorf("the password shows: %s", s)
		}
	}
}
