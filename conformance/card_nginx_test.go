package conformance_test

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/trustbroker/trustbroker/conformance/dbtest"
	"github.com/trustbroker/trustbroker/conformance/harness"
	"github.com/trustbroker/trustbroker/providers/smartcard/testpki"
)

// cardNginxYAML: nginx ({{nginx}}) is the public card-login host. It
// terminates TLS, asks for a client certificate and forwards it to the
// broker's main listener in X-SSL-Client-Cert, which the broker believes
// from 127.0.0.1 (nginx's source address) only. The broker's own
// card-login listener runs as well but is not used here.
const cardNginxYAML = `
demo: true
server:
  card_login:
    listen: "{{card_listen}}"
    url: "https://{{nginx}}"
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
      revocation: {mode: soft} # this PKI has no responder
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

// nginxCardConf terminates TLS with an optional client certificate that
// nginx does not verify (optional_no_ca: the broker's card provider
// validates the path to its own anchors) and passes it on URL-escaped.
// proxy_set_header replaces whatever X-SSL-Client-Cert a client sent; an
// empty value (no certificate) drops the header.
const nginxCardConf = `
daemon off;
worker_processes 1;
pid {{dir}}/nginx.pid;
error_log {{dir}}/error.log info;
events { worker_connections 512; }
http {
  access_log {{dir}}/access.log;
  client_body_temp_path {{dir}}/body;
  proxy_temp_path {{dir}}/proxy;
  server {
    listen {{nginx}} ssl;
    ssl_certificate {{certdir}}/server.pem;
    ssl_certificate_key {{certdir}}/server.key;
    ssl_verify_client optional_no_ca;
    location / {
      proxy_pass {{broker}};
      proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;
      proxy_set_header X-Forwarded-Proto https;
    }
  }
}
`

// TestCardLoginThroughNginx: a Go TLS client presenting a test card logs
// in through a real nginx terminating TLS; without a card (even with a
// forged header, which nginx replaces) it is refused; a forged header sent
// straight to the broker from an address that is not the proxy is not
// believed.
func TestCardLoginThroughNginx(t *testing.T) {
	bin := nginxBinary(t)
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		now := time.Now()
		root := testpki.NewRoot("Card Root", testpki.P256, now)
		inter := root.NewIntermediate("Card Issuing CA", testpki.P256, now)
		dir := t.TempDir()
		listen := freePort(t)
		b := startCardBroker(t, cardNginxYAML, dsn, dir, root, inter, []string{"{{nginx}}", listen}, harness.Options{})
		conf := strings.NewReplacer("{{nginx}}", listen, "{{broker}}", b.URL, "{{certdir}}", dir).Replace(nginxCardConf)
		startNginx(t, bin, listen, conf)

		key := testpki.NewKey(testpki.P256)
		leaf := inter.Issue(testpki.Employee("Max", "Muster", "Beispiel AG", "max@example.org", "E-4711", now), key)

		t.Run("card", func(t *testing.T) {
			br := harness.NewBrowser(t)
			br.Transport = &http.Transport{TLSClientConfig: &tls.Config{
				InsecureSkipVerify: true, // nginx serves the test's self-signed certificate
				// nginx forwards the leaf only; the provider has the intermediate.
				Certificates: []tls.Certificate{testpki.TLSCertificate(key, leaf)},
			}}
			method := beginLogin(t, b, br)
			page := choose(t, br, method, "employee-card")
			if got := claims(t, page); got["given_name"] != "Max" || got["family_name"] != "Muster" {
				t.Fatalf("claims %v", got)
			}
		})

		t.Run("no card", func(t *testing.T) {
			br := harness.NewBrowser(t)
			// A client that sends the header itself: nginx replaces it
			// (with nothing, as there is no certificate).
			forged := strings.ReplaceAll(url.QueryEscape(string(testpki.PEM(leaf))), "+", "%20")
			br.Transport = forgeHeader{value: forged, next: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
			page := choose(t, br, beginLogin(t, b, br), "employee-card")
			if page.Status != http.StatusUnprocessableEntity || !strings.Contains(page.Body, "No card certificate") {
				t.Fatalf("no certificate through nginx: %d %s\n%s", page.Status, page.URL, page.Body)
			}
			if !strings.HasPrefix(page.URL.String(), "https://"+listen+"/login/") {
				t.Fatalf("the refusal did not come through nginx: %s", page.URL)
			}
		})

		t.Run("forged header from another address", func(t *testing.T) {
			// Straight to the broker, from 127.0.0.2 (not the proxy), with
			// the card's certificate in the header but without its key.
			d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
			forged := strings.ReplaceAll(url.QueryEscape(string(testpki.PEM(leaf))), "+", "%20")
			br := harness.NewBrowser(t)
			br.Transport = forgeHeader{value: forged, direct: b.URL, next: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
			page := choose(t, br, beginLogin(t, b, br), "employee-card")
			if page.Status != http.StatusUnprocessableEntity || !strings.Contains(page.Body, "could not be read") {
				t.Fatalf("forged header: %d %s\n%s", page.Status, page.URL, page.Body)
			}
			if strings.Contains(page.Body, "given_name") {
				t.Fatalf("forged header logged in:\n%s", page.Body)
			}
		})
	})
}

// forgeHeader sets X-SSL-Client-Cert on every request. With direct set
// (the broker's main URL), requests for the card-login host go there
// instead, past nginx, as a client that knows the broker's address would.
type forgeHeader struct {
	value, direct string
	next          http.RoundTripper
}

func (f forgeHeader) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-SSL-Client-Cert", f.value)
	if f.direct != "" && r.URL.Scheme == "https" {
		d, err := url.Parse(f.direct)
		if err != nil {
			return nil, err
		}
		r.URL.Scheme, r.URL.Host, r.Host = d.Scheme, d.Host, ""
	}
	return f.next.RoundTrip(r)
}
