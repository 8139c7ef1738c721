package server

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestMetricsOnManagementOnly: GET /metrics is the public listener's
// normal 404 page, without a metric; the management listener serves the
// metrics, with the public listener's requests counted (scrapes are not)
// and the SAML metadata gauges, and nothing of the public routes.
func TestMetricsOnManagementOnly(t *testing.T) {
	b := startReadyz(t, http.StatusOK)
	t.Cleanup(func() { b.s.Close() })
	if code, body := b.get(t, "/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("public healthz: %d %q", code, body)
	}

	w := httptest.NewRecorder()
	b.s.Handler.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if w.Code != http.StatusNotFound || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") ||
		strings.Contains(w.Body.String(), "trustbroker_") || strings.Contains(w.Body.String(), "go_goroutines") {
		t.Errorf("public /metrics: %d %s\n%s", w.Code, w.Header().Get("Content-Type"), w.Body)
	}

	for range 2 { // the second scrape would see the first if scrapes were counted
		code, body := b.manage(t, "/metrics")
		if code != http.StatusOK {
			t.Fatalf("management /metrics: %d\n%s", code, body)
		}
		for _, want := range []string{
			`trustbroker_http_requests_total{code="200",route="GET /healthz"} 1` + "\n",
			`trustbroker_http_requests_total{code="404",route="/"} 1` + "\n", // the public /metrics
			`trustbroker_saml_metadata_usable{rp="remote"} 1` + "\n",
			"\ngo_goroutines ",
		} {
			if !strings.Contains(body, want) {
				t.Errorf("management /metrics lacks %q", want)
			}
		}
		if strings.Contains(body, `route="GET /metrics"`) {
			t.Errorf("scrapes of the management listener are counted as public requests:\n%s", body)
		}
	}
	for _, target := range []string{"/jwks.json", "/", "/.well-known/openid-configuration"} {
		if code, _ := b.manage(t, target); code != http.StatusNotFound {
			t.Errorf("management %s: %d, want 404 (public routes stay public)", target, code)
		}
	}
}

// TestServeManagement: the management listener serves on its own socket
// and shuts down when its context ends.
func TestServeManagement(t *testing.T) {
	b := startReadyz(t, http.StatusOK)
	t.Cleanup(func() { b.s.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- b.s.ServeManagement(ctx, ln) }()
	base := "http://" + ln.Addr().String()
	for target, want := range map[string]string{
		"/metrics":        "\ntrustbroker_saml_metadata_usable{rp=\"remote\"} 1\n",
		"/readyz?verbose": "[+]saml-metadata/remote ok\n",
		"/healthz":        "ok\n",
	} {
		resp, err := http.Get(base + target)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("%s: %d, want %q in\n%s", target, resp.StatusCode, want, body)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("ServeManagement: %v", err)
	}
	if resp, err := http.Get(base + "/healthz"); err == nil {
		resp.Body.Close()
		t.Error("the management listener still answers after shutdown")
	}
}
