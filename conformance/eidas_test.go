package conformance_test

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/broker/server"
	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/broker/xmlsig"
	"github.com/trustbroker/trustbroker/conformance/dbtest"
	"github.com/trustbroker/trustbroker/conformance/harness"
	"github.com/trustbroker/trustbroker/providers"
	"github.com/trustbroker/trustbroker/providers/eidas"
)

// eidasYAML: the demo relying party accepts only EU eIDs at level high,
// through the built-in simulated eIDAS node (a real eidas provider against
// a simulated node: signed AuthnRequest, ECDSA-signed response, AES-256-GCM
// encrypted assertion with ECDH-ES key agreement).
const eidasYAML = `
demo: true
providers:
  - id: eu-sim
    type: eidas-simulator
    name: {de: EU-eID (Simulator), en: EU eID (simulator)}
    config:
      node_key: ec
      sp_key: ec
relying_parties:
  - id: demo
    name: {de: Demo-Dienst, en: Demo service}
    protocol: oidc
    accepted_credentials: [eidas]
    min_loa: high
    claims:
      - {name: given_name, required: true, purpose: {en: greeting}}
      - {name: family_name, required: true, purpose: {en: greeting}}
      - {name: birthdate, purpose: {en: age}}
      - {name: address, purpose: {en: letters}}
    oidc:
      redirect_uris: ["{{issuer}}/demo/callback"]
      client_secret: test-secret-0123456789-0123456789-0123
`

var hiddenRE = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// hidden reads the hidden fields of a page's form.
func hidden(p *harness.Page) url.Values {
	v := url.Values{}
	for _, m := range hiddenRE.FindAllStringSubmatch(p.Body, -1) {
		v.Set(m[1], html.UnescapeString(m[2]))
	}
	return v
}

// postOn submits the page's first form with its hidden fields (what
// form_post.js does in a browser).
func postOn(t *testing.T, br *harness.Browser, p *harness.Page, extra url.Values) *harness.Page {
	t.Helper()
	if p.Status != http.StatusOK {
		t.Fatalf("%s: %d\n%s", p.URL, p.Status, p.Body)
	}
	v := hidden(p)
	for k, vs := range extra {
		v[k] = vs
	}
	return br.Post(p.Action(t), v)
}

// eidasToNode runs the login up to the simulated node's page.
func eidasToNode(t *testing.T, b *harness.Broker, br *harness.Browser) (authn, pick *harness.Page) {
	t.Helper()
	authn = choose(t, br, beginLogin(t, b, br), "eu-sim")
	if authn.Status != http.StatusOK || !strings.HasPrefix(authn.URL.Path, "/providers/eu-sim/authn/") ||
		!strings.Contains(authn.Body, "/assets/form_post.js") || hidden(authn).Get("SAMLRequest") == "" {
		t.Fatalf("AuthnRequest page %d %s:\n%s", authn.Status, authn.URL, authn.Body)
	}
	pick = postOn(t, br, authn, nil)
	if pick.Status != http.StatusOK || !strings.Contains(pick.Body, `name="person"`) {
		t.Fatalf("node page %d %s:\n%s", pick.Status, pick.URL, pick.Body)
	}
	return authn, pick
}

// eidasAnswer picks a person and behaviour at the node and follows the
// response through the ACS relay to the broker's callback.
func eidasAnswer(t *testing.T, br *harness.Browser, pick *harness.Page, person, behaviour string) (relay, end *harness.Page) {
	t.Helper()
	post := postOn(t, br, pick, url.Values{"person": {person}, "behaviour": {behaviour}})
	if !strings.HasSuffix(post.Action(t), "/providers/eu-sim/acs") {
		t.Fatalf("node answer page:\n%s", post.Body)
	}
	relay = postOn(t, br, post, nil)
	if !strings.Contains(relay.Action(t), "/callback") {
		t.Fatalf("ACS relay page:\n%s", relay.Body)
	}
	return relay, postOn(t, br, relay, nil)
}

func auditReasons(t *testing.T, st store.Store, target string) []string {
	t.Helper()
	evs, err := st.Audit().List(context.Background(), store.AuditFilter{Target: target, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		out = append(out, e.Action+":"+e.Outcome+":"+e.Reason)
	}
	return out
}

// TestEIDASLogin: demo relying party → broker → simulated eIDAS node →
// relying party, for persons of two member states, on every database.
func TestEIDASLogin(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		b := harness.Start(t, eidasYAML, dsn, harness.Options{})
		for _, c := range []struct{ person, given, family, birth, country string }{
			{"at-max", "Max", "Mustermann", "1980-01-01", "AT"},
			{"es-carmen", "Carmen", "Española Española", "1965-03-15", "ES"},
		} {
			t.Run(c.person, func(t *testing.T) {
				br := harness.NewBrowser(t)
				authn, pick := eidasToNode(t, b, br)
				tx := strings.TrimPrefix(authn.URL.Path, "/providers/eu-sim/authn/")
				for _, want := range []string{"Simulator", "http://eidas.europa.eu/LoA/high", "PersonIdentifier", "DateOfBirth"} {
					if !strings.Contains(pick.Body, want) {
						t.Errorf("node page lacks %q", want)
					}
				}
				_, end := eidasAnswer(t, br, pick, c.person, "normal")
				got := claims(t, end)
				want := map[string]string{"given_name": c.given, "family_name": c.family, "birthdate": c.birth,
					"acr": "http://eidas.europa.eu/LoA/high", "amr": "mfa"}
				for k, v := range want {
					if got[k] != v {
						t.Errorf("claim %s = %q, want %q (all: %v)", k, got[k], v, got)
					}
				}
				acts := strings.Join(auditActions(t, b.Server.Store, tx), ",")
				for _, a := range []string{"login.provider:success", "login.complete:success"} {
					if !strings.Contains(acts, a) {
						t.Errorf("audit trail %s lacks %s", acts, a)
					}
				}
				// The same person in a fresh browser is the same account
				// (the PersonIdentifier is the subject).
				br2 := harness.NewBrowser(t)
				_, pick2 := eidasToNode(t, b, br2)
				_, end2 := eidasAnswer(t, br2, pick2, c.person, "normal")
				if again := claims(t, end2); again["sub"] == "" || again["sub"] != got["sub"] {
					t.Errorf("second login: sub %q, first %q", again["sub"], got["sub"])
				}
			})
		}
	})
}

// TestEIDASNodeMisbehaves: each bad answer of the node is refused, the
// user sees why on the method page, and the audit log keeps the reason.
func TestEIDASNodeMisbehaves(t *testing.T) {
	b := harness.Start(t, eidasYAML, dbtest.SQLite(t), harness.Options{})
	for _, c := range []struct{ behaviour, reason, text string }{
		{"lower_loa", eidas.CodeLoATooLow, "Vertrauensniveau Ihrer Anmeldung"},
		{"tampered", eidas.CodeSignature, "ungültig"},
		{"unencrypted", eidas.CodeUnencrypted, "ungültig"},
		{"cancel", eidas.CodeCancelled, "abgebrochen"},
	} {
		t.Run(c.behaviour, func(t *testing.T) {
			br := harness.NewBrowser(t)
			authn, pick := eidasToNode(t, b, br)
			tx := strings.TrimPrefix(authn.URL.Path, "/providers/eu-sim/authn/")
			_, end := eidasAnswer(t, br, pick, "at-max", c.behaviour)
			if end.Status != http.StatusUnprocessableEntity || !strings.HasPrefix(end.URL.Path, "/login/") || !strings.Contains(end.Body, c.text) {
				t.Fatalf("want the method page with %q, got %d %s:\n%s", c.text, end.Status, end.URL, end.Body)
			}
			reasons := strings.Join(auditReasons(t, b.Server.Store, tx), ",")
			if !strings.Contains(reasons, "login.provider:failure:"+c.reason) {
				t.Errorf("audit %s lacks the reason %s", reasons, c.reason)
			}
		})
	}
}

// TestEIDASRelayBoundToBrowser: the node's answer, carried to the
// callback by another browser (no login cookie), does not log anyone in;
// an answer for an unknown login stops at the ACS, and so does the same
// answer once its login is over (replays inside a login: providers/eidas).
func TestEIDASRelayBoundToBrowser(t *testing.T) {
	b := harness.Start(t, eidasYAML, dbtest.SQLite(t), harness.Options{})
	br := harness.NewBrowser(t)
	authn, pick := eidasToNode(t, b, br)
	// The AuthnRequest page needs the login's nonce.
	if p := harness.NewBrowser(t).Get(b.URL + authn.URL.Path + "?k=0000"); p.Status != http.StatusNotFound {
		t.Fatalf("AuthnRequest page with a wrong nonce: %d", p.Status)
	}
	post := postOn(t, br, pick, url.Values{"person": {"at-max"}, "behaviour": {"normal"}})
	answer := hidden(post)

	attacker := harness.NewBrowser(t)
	relay := attacker.Post(post.Action(t), answer)
	if relay.Status != http.StatusOK {
		t.Fatalf("ACS: %d", relay.Status)
	}
	if p := postOn(t, attacker, relay, nil); p.Status != http.StatusForbidden {
		t.Fatalf("callback from another browser: %d\n%s", p.Status, p.Body)
	}
	bogus := url.Values{"SAMLResponse": {answer.Get("SAMLResponse")}, "RelayState": {"no-such-login"}}
	if p := attacker.Post(post.Action(t), bogus); p.Status != http.StatusBadRequest {
		t.Fatalf("ACS with an unknown login: %d", p.Status)
	}
	// The rightful browser completes once; the same answer again fails.
	relay = br.Post(post.Action(t), answer)
	end := postOn(t, br, relay, nil)
	if claims(t, end)["family_name"] != "Mustermann" {
		t.Fatal("login did not complete")
	}
	if p := br.Post(post.Action(t), answer); p.Status != http.StatusBadRequest {
		t.Fatalf("the same answer after the login: %d", p.Status)
	}
}

// TestEIDASMetadata: the SP metadata is signed by the key in its signing
// KeyDescriptor and names the ACS the node posts to.
func TestEIDASMetadata(t *testing.T) {
	b := harness.Start(t, eidasYAML, dbtest.SQLite(t), harness.Options{})
	p := harness.NewBrowser(t).Get(b.URL + "/providers/eu-sim/metadata")
	if p.Status != http.StatusOK || p.Header.Get("Content-Type") != "application/samlmetadata+xml" {
		t.Fatalf("metadata %d %s", p.Status, p.Header.Get("Content-Type"))
	}
	doc, err := xmlsig.Parse([]byte(p.Body))
	if err != nil {
		t.Fatal(err)
	}
	kd := doc.FindElement("//KeyDescriptor[@use='signing']/KeyInfo/X509Data/X509Certificate")
	der, _ := base64.StdEncoding.DecodeString(kd.Text())
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	v, err := xmlsig.Verify(doc.Root(), xmlsig.VerifyOptions{Certificates: []*x509.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	if v.Element.SelectAttrValue("entityID", "") != b.URL+"/providers/eu-sim/metadata" ||
		v.Element.FindElement("//AssertionConsumerService").SelectAttrValue("Location", "") != b.URL+"/providers/eu-sim/acs" {
		t.Fatalf("metadata:\n%s", p.Body)
	}
}

// TestDemoOffersEIDASSimulator: the demo configuration offers the eIDAS
// simulator, labelled as one, to the demo relying party, and it builds
// (with the keys it makes at start) for the demo's localhost issuer.
func TestDemoOffersEIDASSimulator(t *testing.T) {
	cfg, err := config.Demo()
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, p := range cfg.Providers {
		if p.ID != "eu-eid-sim" {
			continue
		}
		found = true
		// Only this one is built below (the card provider needs the demo
		// PKI files that the binary issues on first start).
		cfg.Providers = []config.Provider{p}
		if p.Type != "eidas-simulator" || p.Name["de"] != "EU eID (Simulator)" || p.Name["en"] != "EU eID (simulator)" {
			t.Errorf("demo eIDAS provider: %s %v", p.Type, p.Name)
		}
	}
	if !found {
		t.Fatal("the demo configuration has no eu-eid-sim provider")
	}
	if rp := cfg.RelyingParties[0]; !slices.Contains(rp.AcceptedCredentials, "eidas") {
		t.Errorf("the demo relying party does not accept eidas: %v", rp.AcceptedCredentials)
	}
	provs, err := server.BuildProviders(cfg, harness.Registry(), providers.Deps{Issuer: cfg.Server.Issuer})
	if err != nil {
		t.Fatal(err)
	}
	defer server.CloseProviders(provs)
	for _, p := range provs {
		if p.ID() == "eu-eid-sim" {
			if _, ok := p.Provider.(providers.EndpointProvider); !ok || p.Kind() != providers.KindEIDAS {
				t.Fatalf("eu-eid-sim: %T", p.Provider)
			}
			return
		}
	}
	t.Fatal("eu-eid-sim not built")
}
