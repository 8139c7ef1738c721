package eidas_test

import (
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustbroker/trustbroker/broker/health"
	"github.com/trustbroker/trustbroker/providers/eidas"
)

// TestMetadataReadiness: /readyz over the provider's check reads the
// node's metadata from its URL when due (so a replica no login reaches
// still loads it). The check is partial: while there is no metadata or it
// is past its validUntil, /readyz stays 200 and ?verbose shows the
// provider unavailable; while a refresh fails and the last good copy is
// valid it is degraded. The URL never shows.
func TestMetadataReadiness(t *testing.T) {
	var mu sync.Mutex
	status, body, hits := http.StatusNotFound, []byte(nil), 0
	serve := func(s int, b []byte) { mu.Lock(); status, body = s, b; mu.Unlock() }
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		hits++
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	src := &eidas.MetadataSource{URL: srv.URL + "/md", Refresh: time.Hour, Fetch: eidas.HTTPFetcher(nil)}
	f := newFixture(t, "ec", "ec", func(s *eidas.Settings) { s.Node = src })
	src.Signers = []*x509.Certificate{f.node.Cert}
	t0 := f.now

	ready := &health.Readiness{}
	ready.Add(f.p.ReadinessChecks()...)
	readyz := func(target string) (int, string) {
		w := httptest.NewRecorder()
		ready.ServeHTTP(w, httptest.NewRequest(http.MethodGet, target, nil))
		if strings.Contains(w.Body.String(), srv.URL) {
			t.Errorf("the answer shows the metadata URL:\n%s", w.Body)
		}
		return w.Code, w.Body.String()
	}
	rfc := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }

	if code, b := readyz("/readyz"); code != http.StatusOK || b != "ok\n" {
		t.Errorf("never loaded: %d %q", code, b)
	}
	if code, b := readyz("/readyz?verbose"); code != http.StatusOK ||
		b != "[+]eidas-metadata/eu unavailable: metadata never loaded\nreadyz check passed\n" {
		t.Errorf("never loaded, verbose: %d %q", code, b)
	}

	md, err := f.node.Metadata(2 * time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	serve(http.StatusOK, md)
	hitsNow := func() int { mu.Lock(); defer mu.Unlock(); return hits }
	// A failed read is not repeated for a minute (every login and probe
	// would otherwise wait for a fetch of its own).
	before := hitsNow()
	f.now = t0.Add(59 * time.Second)
	if code, b := readyz("/readyz?verbose"); code != http.StatusOK || hitsNow() != before ||
		b != "[+]eidas-metadata/eu unavailable: metadata never loaded\nreadyz check passed\n" {
		t.Errorf("within a minute of the failed read: %d %q, %d fetches (want none)", code, b, hitsNow()-before)
	}
	loaded := t0.Add(time.Minute)
	f.now = loaded
	if code, b := readyz("/readyz?verbose"); code != http.StatusOK || b != "[+]eidas-metadata/eu ok\nreadyz check passed\n" {
		t.Errorf("loaded by the check: %d %q", code, b)
	}
	before = hitsNow()
	f.now = t0.Add(30 * time.Minute)
	readyz("/readyz")
	mu.Lock()
	if hits != before {
		t.Errorf("the check fetched before the refresh was due")
	}
	mu.Unlock()

	serve(http.StatusInternalServerError, nil)
	f.now = t0.Add(61 * time.Minute)
	if code, b := readyz("/readyz"); code != http.StatusOK || b != "ok\n" {
		t.Errorf("refresh failing, copy valid: %d %q", code, b)
	}
	before = hitsNow()
	f.now = t0.Add(61*time.Minute + 30*time.Second)
	if readyz("/readyz"); hitsNow() != before {
		t.Errorf("the failed refresh was repeated within a minute")
	}
	f.now = t0.Add(62 * time.Minute)
	want := "[+]eidas-metadata/eu degraded: refresh failing since " + rfc(t0.Add(61*time.Minute)) + "; using the copy of " + rfc(loaded) + "\n"
	if code, b := readyz("/readyz?verbose"); code != http.StatusOK || !strings.Contains(b, want) {
		t.Errorf("refresh failing, copy valid, verbose: %d\n%s\nwant %q", code, b, want)
	}

	f.now = t0.Add(2 * time.Hour)
	if code, b := readyz("/readyz"); code != http.StatusOK || b != "ok\n" {
		t.Errorf("expired: %d %q", code, b)
	}
	want = "[+]eidas-metadata/eu unavailable: metadata expired at " + rfc(t0.Add(2*time.Hour)) + "\nreadyz check passed\n"
	if code, b := readyz("/readyz?verbose"); code != http.StatusOK || b != want {
		t.Errorf("expired, verbose: %d %q, want %q", code, b, want)
	}

	md, err = f.node.Metadata(2 * time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	serve(http.StatusOK, md)
	f.now = t0.Add(2*time.Hour + time.Minute) // the last failed read was at 2 h
	if code, b := readyz("/readyz?verbose"); code != http.StatusOK || b != "[+]eidas-metadata/eu ok\nreadyz check passed\n" {
		t.Errorf("recovered: %d %q", code, b)
	}

	// A node configured in code (the simulator) has nothing to check.
	if cs := newFixture(t, "ec", "ec", nil).p.ReadinessChecks(); cs != nil {
		t.Errorf("static node: %d checks", len(cs))
	}
}

// TestHTTPFetcherRedactsURL: a failed fetch names the metadata URL without
// a userinfo password (the error reaches the log and /readyz's log).
func TestHTTPFetcherRedactsURL(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	u := strings.Replace(srv.URL, "http://", "http://node:s3cret@", 1) + "/md"
	_, err := eidas.HTTPFetcher(nil)(t.Context(), u)
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "node:xxxxx@") {
		t.Fatalf("fetch error = %v, want the URL with its password hidden", err)
	}
}
