package oidc

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trustbroker/trustbroker/broker/config"
)

func TestParseSectorDocument(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		want      []string
		err       string
	}{
		{"one", `["https://a.example/cb"]`, []string{"https://a.example/cb"}, ""},
		{"several, whitespace", " [\"https://a.example/cb\",\n \"https://b.example/cb\"]\n", []string{"https://a.example/cb", "https://b.example/cb"}, ""},
		{"empty body", ``, nil, "not JSON"},
		{"html", `<html>not found</html>`, nil, "not JSON"},
		{"truncated", `["https://a.example/cb"`, nil, "not JSON"},
		{"object", `{"redirect_uris":["https://a.example/cb"]}`, nil, "not a JSON array of redirect URIs but an object"},
		{"string", `"https://a.example/cb"`, nil, "but a string"},
		{"null", `null`, nil, "but null"},
		{"number", `42`, nil, "but a number"},
		{"empty array", `[]`, nil, "lists no redirect URI"},
		{"number element", `["https://a.example/cb", 1]`, nil, "element 1 is a number, not a string"},
		{"nested array", `[["https://a.example/cb"]]`, nil, "element 0 is an array"},
		{"empty string", `["https://a.example/cb", ""]`, nil, "element 1 is empty"},
		{"trailing data", `["https://a.example/cb"] ["https://evil.example/cb"]`, nil, "data after the array"},
		{"trailing garbage", `["https://a.example/cb"]]`, nil, "data after the array"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseSectorDocument([]byte(tc.doc))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("got %q %v, want %q", got, err, tc.want)
			}
		})
	}
}

// FuzzParseSectorDocument: the parser never panics, and what it accepts is
// a non-empty list of non-empty strings that survives a round trip.
func FuzzParseSectorDocument(f *testing.F) {
	for _, s := range []string{`["https://a.example/cb"]`, `[]`, `{}`, `[1]`, `[""]`, `["a"] x`, `"x"`, `null`, "\xef\xbb\xbf[\"a\"]", `["\u0000"]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, err := ParseSectorDocument(raw)
		if err != nil {
			if got != nil {
				t.Fatalf("result %q with error %v", got, err)
			}
			return
		}
		if len(got) == 0 || slices.Contains(got, "") {
			t.Fatalf("accepted %q as %q", raw, got)
		}
		again, _ := json.Marshal(got)
		back, err := ParseSectorDocument(again)
		if err != nil || !slices.Equal(back, got) {
			t.Fatalf("round trip of %q: %q %v", got, back, err)
		}
	})
}

// sectorServer serves body with status at /sector.json over TLS on
// 127.0.0.1 and writes its certificate to a CA file.
func sectorServer(t *testing.T, h http.HandlerFunc) (uri, caFile string) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusted-certificate case fails handshakes
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	pemCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caFile, pemCert, 0o600); err != nil {
		t.Fatal(err)
	}
	return srv.URL + "/sector.json", caFile
}

func serve(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

func TestCheckSectorIdentifier(t *testing.T) {
	redirects := []string{"https://a.example/cb", "https://b.example/cb"}
	listed := `["https://a.example/cb", "https://b.example/cb", "https://c.example/cb"]`
	for _, tc := range []struct {
		name string
		h    http.HandlerFunc
		err  string // "" when the check passes
	}{
		{"lists all", serve(200, listed), ""},
		{"lists one", serve(200, `["https://a.example/cb"]`), "does not list the redirect URIs https://b.example/cb"},
		{"compared exactly", serve(200, `["https://a.example/cb/", "https://B.example/cb"]`), "https://a.example/cb, https://b.example/cb"},
		{"not found", serve(404, listed), "404 Not Found"},
		{"server error", serve(500, listed), "500 Internal Server Error"},
		{"not JSON", serve(200, `<html></html>`), "not JSON"},
		{"not an array", serve(200, `{"redirect_uris": []}`), "not a JSON array"},
		{"oversize", serve(200, `["`+strings.Repeat("x", maxSectorDocumentBytes)+`"]`), "more than 65536 bytes"},
		{"redirect not followed", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		}, "redirects are not followed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uri, ca := sectorServer(t, tc.h)
			err := CheckSectorIdentifier(t.Context(), &config.OIDC{RedirectURIs: redirects, SectorIdentifierURI: uri, SectorIdentifierCAFile: ca})
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want %q", err, tc.err)
			}
		})
	}

	t.Run("untrusted certificate", func(t *testing.T) {
		uri, _ := sectorServer(t, serve(200, listed))
		err := CheckSectorIdentifier(t.Context(), &config.OIDC{RedirectURIs: redirects, SectorIdentifierURI: uri})
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("a server outside the system roots was trusted: %v", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		release := make(chan struct{})
		uri, ca := sectorServer(t, func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		})
		defer close(release)
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := CheckSectorIdentifier(ctx, &config.OIDC{RedirectURIs: redirects, SectorIdentifierURI: uri, SectorIdentifierCAFile: ca})
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
			t.Fatalf("hanging server: %v after %s", err, time.Since(start))
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		err = CheckSectorIdentifier(t.Context(), &config.OIDC{RedirectURIs: redirects, SectorIdentifierURI: "https://" + addr + "/sector.json"})
		if err == nil || !strings.Contains(err.Error(), "GET https://"+addr) {
			t.Fatalf("unreachable server: %v", err)
		}
	})
	t.Run("http on loopback", func(t *testing.T) {
		srv := httptest.NewServer(serve(200, listed))
		defer srv.Close()
		if err := CheckSectorIdentifier(t.Context(), &config.OIDC{RedirectURIs: redirects, SectorIdentifierURI: srv.URL + "/s"}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("CA file", func(t *testing.T) {
		dir := t.TempDir()
		notPEM := filepath.Join(dir, "x.pem")
		_ = os.WriteFile(notPEM, []byte("no certificate here"), 0o600)
		badCert := filepath.Join(dir, "bad.pem")
		_ = os.WriteFile(badCert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("garbage")}), 0o600)
		for file, want := range map[string]string{
			filepath.Join(dir, "missing.pem"): "no such file",
			notPEM:                            "no PEM certificate",
			badCert:                           "sector_identifier_ca_file " + badCert,
		} {
			err := CheckSectorIdentifier(t.Context(), &config.OIDC{RedirectURIs: redirects, SectorIdentifierURI: "https://127.0.0.1:1/s", SectorIdentifierCAFile: file})
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: %v, want %q", file, err, want)
			}
		}
	})
}

// TestCheckSectorIdentifiers: every client is checked, clients without a
// sector_identifier_uri are left alone, and each error names its key path.
func TestCheckSectorIdentifiers(t *testing.T) {
	good, goodCA := sectorServer(t, serve(200, `["https://a.example/cb"]`))
	bad, badCA := sectorServer(t, serve(200, `["https://other.example/cb"]`))
	rps := []config.RelyingParty{
		{ID: "saml", Protocol: "saml", SAML: &config.SAML{}},
		{ID: "plain", Protocol: "oidc", OIDC: &config.OIDC{RedirectURIs: []string{"https://a.example/cb"}}},
		{ID: "good", Protocol: "oidc", OIDC: &config.OIDC{RedirectURIs: []string{"https://a.example/cb"}, SectorIdentifierURI: good, SectorIdentifierCAFile: goodCA}},
		{ID: "bad", Protocol: "oidc", OIDC: &config.OIDC{RedirectURIs: []string{"https://a.example/cb"}, SectorIdentifierURI: bad, SectorIdentifierCAFile: badCA}},
	}
	err := CheckSectorIdentifiers(t.Context(), rps)
	var es config.Errors
	if !errors.As(err, &es) || len(es) != 1 || es[0].Path != "relying_parties[3].oidc.sector_identifier_uri" ||
		!strings.Contains(es[0].Msg, "does not list the redirect URIs https://a.example/cb") {
		t.Fatalf("errors %v", err)
	}
	if err := CheckSectorIdentifiers(t.Context(), rps[:3]); err != nil {
		t.Fatal(err)
	}
}
