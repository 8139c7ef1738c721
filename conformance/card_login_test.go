package conformance_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trustbroker/trustbroker/conformance/dbtest"
	"github.com/trustbroker/trustbroker/conformance/harness"
	"github.com/trustbroker/trustbroker/providers/smartcard/testpki"
)

const cardYAML = `
demo: true
server:
  card_login:
    listen: "{{card_listen}}"
    url: "https://{{card_listen}}"
    cert_file: "{{dir}}/server.pem"
    key_file: "{{dir}}/server.key"
    header: X-SSL-Client-Cert
    proxies: [127.0.0.1]
providers:
  - id: employee-card
    type: smartcard
    name: {de: Dienstausweis, en: Employee card}
    config:
      family: employee
      trust_anchors: ["{{dir}}/root.pem"]
      intermediates: ["{{dir}}/inter.pem"]
      subject_attribute: 2.16.840.1.113730.3.1.3
      revocation: {mode: soft} # this PKI has no responder; see card_revocation_test.go
relying_parties:
  - id: demo
    name: {de: Demo-Dienst, en: Demo service}
    protocol: oidc
    accepted_credentials: [smartcard]
    min_loa: substantial
    claims:
      - {name: given_name, required: true, purpose: {en: greeting}}
      - {name: family_name, purpose: {en: greeting}}
    oidc:
      redirect_uris: ["{{issuer}}/demo/callback"]
      client_secret: test-secret-0123456789-0123456789-0123
`

// cardBroker starts a broker with a card-login TLS listener and an
// employee-card provider over a fresh test PKI.
func cardBroker(t *testing.T, dsn string) (*harness.Broker, *testpki.CA, *testpki.CA) {
	t.Helper()
	now := time.Now()
	root := testpki.NewRoot("Card Root", testpki.P256, now)
	inter := root.NewIntermediate("Card Issuing CA", testpki.P256, now)
	b := startCardBroker(t, cardYAML, dsn, t.TempDir(), root, inter, nil, harness.Options{})
	return b, root, inter
}

// startCardBroker writes the PKI's certificates and a server certificate
// into dir, starts a broker from yamlText ({{card_listen}} and {{dir}}
// filled in, then the extra replacements) and serves its card-login
// listener until the test ends.
func startCardBroker(t *testing.T, yamlText, dsn, dir string, root, inter *testpki.CA, extra []string, o harness.Options) *harness.Broker {
	t.Helper()
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("root.pem", testpki.PEM(root.DER))
	write("inter.pem", testpki.PEM(inter.DER))
	certPEM, keyPEM := selfSignedServer(t)
	write("server.pem", certPEM)
	write("server.key", keyPEM)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pairs := append([]string{"{{card_listen}}", ln.Addr().String(), "{{dir}}", dir}, extra...)
	b := harness.Start(t, strings.NewReplacer(pairs...).Replace(yamlText), dsn, o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Server.ServeCardLogin(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("card listener: %v", err)
		}
	})
	return b
}

func TestCardLoginDirectTLS(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		b, _, inter := cardBroker(t, dsn)
		key := testpki.NewKey(testpki.P256)
		leaf := inter.Issue(testpki.Employee("Max", "Muster", "Beispiel AG", "max@example.org", "E-4711", time.Now()), key)
		br := harness.NewBrowser(t)
		br.Transport = &http.Transport{TLSClientConfig: &tls.Config{
			InsecureSkipVerify: true, // the test listener's self-signed server certificate
			Certificates:       []tls.Certificate{testpki.TLSCertificate(key, leaf, inter.DER)},
		}}
		method := beginLogin(t, b, br)
		if !strings.Contains(method.Body, "employee-card") {
			t.Fatalf("method page lacks the card provider:\n%s", method.Body)
		}
		res := choose(t, br, method, "employee-card")
		got := claims(t, res)
		if got["given_name"] != "Max" || !strings.Contains(res.Body, "sc") {
			t.Fatalf("claims %v", got)
		}

		// Without a certificate, the card listener refuses with a message.
		br2 := harness.NewBrowser(t)
		br2.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
		page := choose(t, br2, beginLogin(t, b, br2), "employee-card")
		if page.Status != http.StatusUnprocessableEntity || !strings.Contains(page.Body, "No card certificate") {
			t.Fatalf("no certificate: %d\n%s", page.Status, page.Body)
		}
	})
}

// TestCardLoginProxyHeader: the header path (nginx
// $ssl_client_escaped_cert), from a configured proxy address; an expired
// card is refused with its reason.
func TestCardLoginProxyHeader(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		b, _, inter := cardBroker(t, dsn)
		now := time.Now()
		good := inter.Issue(testpki.Employee("Erika", "Muster", "Beispiel AG", "erika@example.org", "E-1", now), testpki.NewKey(testpki.RSA))
		expiredTpl := testpki.Employee("Erika", "Muster", "Beispiel AG", "erika@example.org", "E-1", now)
		expiredTpl.NotBefore, expiredTpl.NotAfter = now.Add(-72*time.Hour), now.Add(-time.Hour)
		expired := inter.Issue(expiredTpl, testpki.NewKey(testpki.P256))
		for _, tc := range []struct {
			name string
			cert []byte
			ok   bool
			msg  string
		}{{"good", good, true, ""}, {"expired", expired, false, "expired"}} {
			t.Run(tc.name, func(t *testing.T) {
				br := harness.NewBrowser(t)
				hdr := strings.ReplaceAll(url.QueryEscape(string(testpki.PEM(tc.cert))), "+", "%20")
				br.Transport = headerTransport{hdr}
				method := beginLogin(t, b, br)
				// Stay on the main listener, as behind a proxy.
				page := choose(t, br, method, "employee-card")
				if !tc.ok {
					if page.Status != http.StatusUnprocessableEntity || !strings.Contains(page.Body, tc.msg) {
						t.Fatalf("%d\n%s", page.Status, page.Body)
					}
					return
				}
				if got := claims(t, page); got["given_name"] != "Erika" {
					t.Fatalf("claims %v", got)
				}
			})
		}
	})
}

// headerTransport plays the proxy: it adds the certificate header and
// sends /certificate requests to the main listener.
type headerTransport struct{ value string }

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if strings.HasSuffix(r.URL.Path, "/certificate") {
		r.Header.Set("X-SSL-Client-Cert", h.value)
	}
	if r.URL.Scheme == "https" {
		// The card listener's URL: a proxy would terminate TLS; here
		// the request goes to the same handler over TLS without a client
		// certificate.
		tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
		return tr.RoundTrip(r)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// selfSignedServer is the card listener's TLS server certificate.
func selfSignedServer(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd})
}
