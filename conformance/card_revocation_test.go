package conformance_test

import (
	"bytes"
	"crypto/tls"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustbroker/trustbroker/conformance/dbtest"
	"github.com/trustbroker/trustbroker/conformance/harness"
	"github.com/trustbroker/trustbroker/providers/smartcard/testpki"
)

const revocationYAML = `
demo: true
server:
  card_login:
    listen: "{{card_listen}}"
    url: "https://{{card_listen}}"
    cert_file: "{{dir}}/server.pem"
    key_file: "{{dir}}/server.key"
providers:
  - id: card-hard
    type: smartcard
    name: {de: Dienstausweis, en: Employee card}
    config:
      family: employee
      trust_anchors: ["{{dir}}/root.pem"]
      intermediates: ["{{dir}}/inter.pem"]
      subject_attribute: 2.16.840.1.113730.3.1.3
      revocation: {timeout: 3s}
  - id: card-soft
    type: smartcard
    name: {de: Dienstausweis (soft), en: Employee card (soft)}
    config:
      family: employee
      trust_anchors: ["{{dir}}/root.pem"]
      intermediates: ["{{dir}}/inter.pem"]
      subject_attribute: 2.16.840.1.113730.3.1.3
      revocation: {mode: soft, ocsp_responder: "{{ocsp}}", timeout: 3s}
relying_parties:
  - id: demo
    name: {de: Demo-Dienst, en: Demo service}
    protocol: oidc
    accepted_credentials: [smartcard]
    min_loa: substantial
    claims:
      - {name: given_name, required: true, purpose: {en: greeting}}
    oidc:
      redirect_uris: ["{{issuer}}/demo/callback"]
      client_secret: test-secret-0123456789-0123456789-0123
`

// opensslOCSP runs `openssl ocsp` as the responder of ca, answering from
// index with a delegated responder certificate, until stop or test end.
// OpenSSL 3.0's -port takes a number only, so it listens on the wildcard
// address; the broker reaches it over loopback.
func opensslOCSP(t *testing.T, dir string, ca *testpki.CA, index []byte, port int) (stop func()) {
	t.Helper()
	// TRUSTBROKER_TEST_OPENSSL names the binary and makes the test
	// mandatory (CI sets it); unset, a missing openssl skips the test.
	bin := os.Getenv("TRUSTBROKER_TEST_OPENSSL")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("openssl"); err != nil {
			t.Skip("openssl not installed: set TRUSTBROKER_TEST_OPENSSL to make this test run")
		}
	} else if _, err := os.Stat(bin); err != nil {
		t.Fatalf("TRUSTBROKER_TEST_OPENSSL=%s: %v", bin, err)
	}
	rkey, rcert := ca.Responder("Card OCSP Responder", testpki.P256, time.Now())
	// Renewed cards share a subject: the index must not insist on unique ones.
	for name, data := range map[string][]byte{"index.txt": index, "index.txt.attr": []byte("unique_subject = no\n"), "ocsp-ca.pem": testpki.PEM(ca.DER),
		"ocsp.pem": testpki.PEM(rcert), "ocsp.key": rkey.KeyPEM()} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var out syncBuffer
	cmd := exec.Command(bin, "ocsp", "-index", filepath.Join(dir, "index.txt"), "-port", strconv.Itoa(port),
		"-CA", filepath.Join(dir, "ocsp-ca.pem"), "-rsigner", filepath.Join(dir, "ocsp.pem"),
		"-rkey", filepath.Join(dir, "ocsp.key"), "-nmin", "60", "-ignore_err")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
	}
	t.Cleanup(stop)
	// Wait for its banner: a bare probe connection would wedge the
	// single-threaded responder, which then reads from it forever.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), "waiting for OCSP client connections"); {
		if time.Now().After(deadline) {
			t.Fatalf("openssl ocsp did not start: %s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return stop
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestCardRevocationOpenSSL: card logins checked against a real OCSP
// responder (openssl ocsp over the CA's index, answering with a delegated
// responder certificate): a good card logs in, a revoked one is refused
// with a clear message; with the responder down a hard-fail instance
// refuses and a soft-fail instance lets the card in and logs it.
func TestCardRevocationOpenSSL(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		now := time.Now()
		dir := t.TempDir()
		root := testpki.NewRoot("Card Root", testpki.P256, now)
		inter := root.NewIntermediate("Card Issuing CA", testpki.RSA, now)
		_, portText, _ := net.SplitHostPort(freePort(t))
		port, _ := strconv.Atoi(portText)
		url := "http://" + net.JoinHostPort("127.0.0.1", portText) + "/"
		card := func(num string) (*testpki.Key, []byte) {
			k := testpki.NewKey(testpki.P256)
			tpl := testpki.Employee("Max", "Muster", "Beispiel AG", "max@example.org", num, now)
			tpl.Extra = append(tpl.Extra, testpki.AIA(url))
			return k, inter.Issue(tpl, k)
		}
		goodKey, good := card("E-1")
		revKey, rev := card("E-2")
		laterKey, later := card("E-3")
		index := testpki.OpenSSLIndex(testpki.IndexEntry{Cert: good}, testpki.IndexEntry{Cert: rev, RevokedAt: now.Add(-time.Hour)},
			testpki.IndexEntry{Cert: later})
		stop := opensslOCSP(t, dir, inter, index, port)

		var logs syncBuffer
		b := startCardBroker(t, revocationYAML, dsn, dir, root, inter, []string{"{{ocsp}}", url}, harness.Options{Log: &logs})

		login := func(provider string, key *testpki.Key, leaf []byte) *harness.Page {
			br := harness.NewBrowser(t)
			br.Transport = &http.Transport{TLSClientConfig: &tls.Config{
				InsecureSkipVerify: true, // the test listener's self-signed server certificate
				Certificates:       []tls.Certificate{testpki.TLSCertificate(key, leaf, inter.DER)},
			}}
			return choose(t, br, beginLogin(t, b, br), provider)
		}
		refused := func(t *testing.T, p *harness.Page, msg string) {
			t.Helper()
			if p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, msg) {
				t.Fatalf("want refusal %q, got %d\n%s", msg, p.Status, p.Body)
			}
		}

		t.Run("good", func(t *testing.T) {
			page := login("card-hard", goodKey, good)
			if got := claims(t, page); got["given_name"] != "Max" {
				t.Fatalf("claims %v", got)
			}
			// verified_claims evidence names the source of the status.
			if !strings.Contains(page.Body, "revocation_source&#34;:&#34;ocsp") || !strings.Contains(page.Body, "revocation&#34;:&#34;good") {
				t.Fatalf("evidence lacks the OCSP status:\n%s", page.Body)
			}
		})
		t.Run("revoked", func(t *testing.T) {
			refused(t, login("card-hard", revKey, rev), "has been revoked")
			refused(t, login("card-soft", revKey, rev), "has been revoked")
		})
		stop()
		t.Run("responder down", func(t *testing.T) {
			refused(t, login("card-hard", laterKey, later), "could not be checked")
			if got := claims(t, login("card-soft", laterKey, later)); got["given_name"] != "Max" {
				t.Fatalf("soft-fail: claims %v", got)
			}
			if !strings.Contains(logs.String(), "soft-fail") {
				t.Fatalf("soft-fail login not logged:\n%s", logs.String())
			}
		})
		t.Run("cached answer outlives the outage", func(t *testing.T) {
			// The good card's answer stays in the store until nextUpdate.
			if got := claims(t, login("card-hard", goodKey, good)); got["given_name"] != "Max" {
				t.Fatalf("claims %v", got)
			}
		})
	})
}
