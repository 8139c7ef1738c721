package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/broker/server"
	"github.com/trustbroker/trustbroker/providers"
	"github.com/trustbroker/trustbroker/providers/builtin"
	"github.com/trustbroker/trustbroker/providers/smartcard"
)

// TestTestPKI: the demo card comes out as a PKCS#12 file that opens with
// the printed password, and the card logs in at a provider configured as
// printed.
func TestTestPKI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	code, out, errOut := runCmd(t, nil, "testpki", "-out", dir, "-given", "Erika", "-number", "E-42")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	m := regexp.MustCompile(`(?m)^Password: (\S+)$`).FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "trust_anchors: [\""+dir+"/root.pem\"]") {
		t.Fatalf("output:\n%s", out)
	}
	p12, err := os.ReadFile(filepath.Join(dir, "card.p12"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := pkcs12.DecodeChain(p12, "wrong"); err == nil {
		t.Fatal("PKCS#12 opens with a wrong password")
	}
	key, leaf, chain, err := pkcs12.DecodeChain(p12, m[1])
	if err != nil {
		t.Fatalf("PKCS#12 with the printed password: %v", err)
	}
	if key == nil || len(chain) != 1 || leaf.Subject.CommonName != "Erika Mustermann" {
		t.Fatalf("PKCS#12 holds %T, %s, %d CA certificates", key, leaf.Subject, len(chain))
	}
	s, err := smartcard.Config{Family: "employee", TrustAnchors: []string{dir + "/root.pem"}, Intermediates: []string{dir + "/inter.pem"},
		SubjectAttribute: "2.16.840.1.113730.3.1.3", Revocation: smartcard.RevocationConfig{Mode: "soft"}}.Settings("test")
	if err != nil {
		t.Fatal(err)
	}
	id, err := smartcard.New("employee-card", s, nil).Authenticate(context.Background(), providers.Request{Lang: "en"}, [][]byte{leaf.Raw})
	if err != nil {
		t.Fatalf("the test card does not log in: %v", err)
	}
	if id.Subject != "employee:E-42" {
		t.Errorf("subject %q", id.Subject)
	}
	if code, _, _ := runCmd(t, nil, "testpki", "extra"); code != 2 {
		t.Errorf("with an argument: exit %d", code)
	}
}

// TestDemoPKI: demo mode issues its card PKI once, the demo
// configuration's card provider builds against it, and a second start
// keeps the same card and password.
func TestDemoPKI(t *testing.T) {
	t.Chdir(t.TempDir())
	logger := slog.New(slog.DiscardHandler)
	if err := ensureDemoPKI(logger); err != nil {
		t.Fatal(err)
	}
	pw1, err := os.ReadFile(filepath.Join(demoPKIDir, "card-password.txt"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Demo()
	if err != nil {
		t.Fatal(err)
	}
	// The eID provider keeps one-time values in the store.
	cfg.Database.DSN = "sqlite:" + filepath.Join(t.TempDir(), "demo.db")
	st, err := server.OpenStore(context.Background(), cfg, logger, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	provs, err := server.BuildProviders(cfg, builtin.Registry(), providers.Deps{Now: time.Now, Logger: logger, Issuer: cfg.Server.Issuer, Store: st})
	if err != nil {
		t.Fatalf("demo providers: %v", err)
	}
	cards := 0
	for _, p := range provs {
		if p.Kind() == providers.KindSmartcard {
			cards++
		}
		// The demo's simulators run listeners of their own.
		if c, ok := p.Provider.(io.Closer); ok {
			_ = c.Close()
		}
	}
	if cards != 1 {
		t.Fatalf("demo providers: %v, want one card provider", provs)
	}
	if err := ensureDemoPKI(logger); err != nil {
		t.Fatal(err)
	}
	pw2, _ := os.ReadFile(filepath.Join(demoPKIDir, "card-password.txt"))
	if string(pw1) != string(pw2) || len(pw1) < 16 {
		t.Errorf("the demo card changed on the second start (%q, %q)", pw1, pw2)
	}
	if _, err := os.Stat(filepath.Join(demoPKIDir, "card.p12")); err != nil {
		t.Error(err)
	}
}
