package conformance_test

import (
	"encoding/base64"
	"errors"
	"time"

	"encoding/xml"
	"github.com/beevik/etree"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	crewsaml "github.com/crewjam/saml"

	"github.com/trustbroker/trustbroker/adapters/saml"
	"github.com/trustbroker/trustbroker/conformance/dbtest"
	"github.com/trustbroker/trustbroker/conformance/harness"
)

const (
	spEntityID = "https://sp.example/saml"
	spACS      = "http://localhost/sp/acs"
)

// samlYAML: one SAML service provider registered by entity_id and
// acs_urls, releasing given_name and email only (the provider proves more).
const samlYAML = `
providers:
  - id: eid-fake
    type: fake-redirect
    name: {de: Test-Ausweis, en: Test ID card}
    config:
      kind: eid
      subject: restricted-id-0001
      loa: high
      amr: [sc, pin, mfa]
      attributes: {given_name: Erika, family_name: Mustermann, birthdate: "1964-08-12", email: erika@example.org}
relying_parties:
  - id: samlsp
    name: {de: SAML-Dienst, en: SAML service}
    protocol: saml
    accepted_credentials: [eid]
    min_loa: substantial
    claims:
      - {name: given_name, required: true, purpose: {en: greeting}}
      - {name: email, purpose: {en: receipts}}
    saml:
      entity_id: ` + spEntityID + `
      acs_urls: [` + spACS + `]
`

// newSAMLSP is crewjam's ServiceProvider trusting the broker's metadata.
func newSAMLSP(t *testing.T, b *harness.Broker, acs string) *crewsaml.ServiceProvider {
	t.Helper()
	resp, err := http.Get(b.URL + saml.PathMetadata)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("metadata: %d", resp.StatusCode)
	}
	var md crewsaml.EntityDescriptor
	if err := xml.NewDecoder(resp.Body).Decode(&md); err != nil {
		t.Fatalf("metadata: %v", err)
	}
	if md.EntityID != b.URL+saml.PathMetadata || len(md.IDPSSODescriptors) != 1 || len(md.IDPSSODescriptors[0].KeyDescriptors) == 0 {
		t.Fatalf("metadata: %+v", md)
	}
	au, _ := url.Parse(acs)
	mu, _ := url.Parse(spEntityID)
	return &crewsaml.ServiceProvider{
		EntityID: spEntityID, AcsURL: *au, MetadataURL: *mu, IDPMetadata: &md,
		AuthnNameIDFormat: crewsaml.PersistentNameIDFormat,
	}
}

var samlResponseRE = regexp.MustCompile(`name="SAMLResponse" value="([^"]+)"`)

// samlLogin runs the browser from the SSO URL through the login and
// returns the page that posts the Response (or whatever came instead).
func samlLogin(t *testing.T, br *harness.Browser, page *harness.Page) *harness.Page {
	t.Helper()
	if strings.HasPrefix(page.URL.Path, "/login/") && page.Status == 200 && !samlResponseRE.MatchString(page.Body) {
		page = choose(t, br, page, "eid-fake")
	}
	return page
}

// acsParse gives the Response on page to the SP, as its ACS would.
func acsParse(t *testing.T, sp *crewsaml.ServiceProvider, page *harness.Page, reqID string) (*crewsaml.Assertion, error) {
	t.Helper()
	m := samlResponseRE.FindStringSubmatch(page.Body)
	if m == nil {
		t.Fatalf("no SAMLResponse form: %d %s\n%s", page.Status, page.URL, page.Body)
	}
	form := url.Values{"SAMLResponse": {html.UnescapeString(m[1])}}
	req, _ := http.NewRequest(http.MethodPost, sp.AcsURL.String(), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if err := req.ParseForm(); err != nil {
		t.Fatal(err)
	}
	return sp.ParseResponse(req, []string{reqID})
}

func attrs(a *crewsaml.Assertion) map[string]string {
	out := map[string]string{}
	for _, st := range a.AttributeStatements {
		for _, at := range st.Attributes {
			var vs []string
			for _, v := range at.Values {
				vs = append(vs, v.Value)
			}
			out[at.Name] = strings.Join(vs, ",")
		}
	}
	return out
}

func redirectRequest(t *testing.T, sp *crewsaml.ServiceProvider) (string, string) {
	t.Helper()
	req, err := sp.MakeAuthenticationRequest(sp.GetSSOBindingLocation(crewsaml.HTTPRedirectBinding), crewsaml.HTTPRedirectBinding, crewsaml.HTTPPostBinding)
	if err != nil {
		t.Fatal(err)
	}
	u, err := req.Redirect("relay-1", sp)
	if err != nil {
		t.Fatal(err)
	}
	return u.String(), req.ID
}

func TestSAMLSSO(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		c := &clock{t: nowUTC()}
		b := harness.Start(t, samlYAML, dsn, harness.Options{Now: c.now})
		sp := newSAMLSP(t, b, spACS)

		t.Run("redirect binding", func(t *testing.T) {
			br := harness.NewBrowser(t)
			u, id := redirectRequest(t, sp)
			page := samlLogin(t, br, br.Get(u))
			if strings.Contains(page.Body, "<script>") || !strings.Contains(page.Body, `src="/assets/form_post.js"`) {
				t.Errorf("the POST form must work under the broker's CSP (no inline script):\n%s", page.Body)
			}
			if !strings.Contains(page.Body, `name="RelayState" value="relay-1"`) {
				t.Errorf("RelayState not passed through:\n%s", page.Body)
			}
			a, err := acsParse(t, sp, page, id)
			if err != nil {
				t.Fatalf("SP refused the response: %v", samlErr(err))
			}
			if a.Signature == nil {
				t.Error("assertion not signed")
			}
			if a.Subject == nil || a.Subject.NameID == nil || a.Subject.NameID.Format != string(crewsaml.PersistentNameIDFormat) ||
				a.Subject.NameID.Value == "" || a.Subject.NameID.Value == "restricted-id-0001" {
				t.Errorf("NameID: %+v", a.Subject)
			}
			if len(a.AuthnStatements) != 1 || a.AuthnStatements[0].AuthnContext.AuthnContextClassRef == nil ||
				a.AuthnStatements[0].AuthnContext.AuthnContextClassRef.Value != "http://eidas.europa.eu/LoA/high" {
				t.Errorf("AuthnContext: %+v", a.AuthnStatements)
			}
			got := attrs(a)
			if got["given_name"] != "Erika" || got["email"] != "erika@example.org" || len(got) != 2 {
				t.Errorf("attributes %v: want given_name and email only", got)
			}
			if !responseSigned(t, page) {
				t.Error("response not signed")
			}

			// The same request again: refused, even in the same browser,
			// with Requester/RequestDenied and no assertion.
			again := br.Get(u)
			wantStatus(t, again, spACS, id, crewsaml.StatusRequester, crewsaml.StatusRequestDenied)
		})

		t.Run("post binding", func(t *testing.T) {
			br := harness.NewBrowser(t)
			req, err := sp.MakeAuthenticationRequest(sp.GetSSOBindingLocation(crewsaml.HTTPPostBinding), crewsaml.HTTPPostBinding, crewsaml.HTTPPostBinding)
			if err != nil {
				t.Fatal(err)
			}
			doc := etreeString(t, req)
			page := samlLogin(t, br, br.Post(b.URL+saml.PathSSO, url.Values{"SAMLRequest": {doc}, "RelayState": {"r2"}}))
			a, err := acsParse(t, sp, page, req.ID)
			if err != nil {
				t.Fatalf("SP refused the response: %v", samlErr(err))
			}
			if a.Subject.NameID.Value == "" {
				t.Error("no NameID")
			}
			// SSO: the next request is answered at once, with the same
			// pairwise subject.
			u, id := redirectRequest(t, sp)
			a2, err := acsParse(t, sp, samlLogin(t, br, br.Get(u)), id)
			if err != nil {
				t.Fatalf("SSO answer: %v", samlErr(err))
			}
			if a2.Subject.NameID.Value != a.Subject.NameID.Value {
				t.Error("persistent NameID changed between logins")
			}
		})

		t.Run("ACS not in metadata", func(t *testing.T) {
			evil := newSAMLSP(t, b, "http://localhost/evil/acs")
			br := harness.NewBrowser(t)
			u, _ := redirectRequest(t, evil)
			page := br.Get(u)
			if page.Status != http.StatusBadRequest || strings.Contains(page.Body, "evil") || strings.HasPrefix(page.URL.Path, "/login/") {
				t.Errorf("unregistered ACS: %d %s\n%s", page.Status, page.URL, page.Body)
			}
		})

		t.Run("unknown SP", func(t *testing.T) {
			other := newSAMLSP(t, b, spACS)
			other.EntityID = "https://other.example/saml"
			br := harness.NewBrowser(t)
			u, _ := redirectRequest(t, other)
			page := br.Get(u)
			if page.Status != http.StatusBadRequest || strings.HasPrefix(page.URL.Path, "/login/") || samlResponseRE.MatchString(page.Body) {
				t.Errorf("unknown SP: %d %s", page.Status, page.URL)
			}
		})
	})
}

// responseSigned reports whether the Response element itself carries a
// signature (the SP verified it when present).
func responseSigned(t *testing.T, page *harness.Page) bool {
	t.Helper()
	raw := decodeResponse(t, page)
	var r struct {
		Signature *struct{} `xml:"http://www.w3.org/2000/09/xmldsig# Signature"`
	}
	if err := xml.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	return r.Signature != nil
}

func nowUTC() time.Time { return time.Now().UTC() }

func decodeResponse(t *testing.T, page *harness.Page) []byte {
	t.Helper()
	m := samlResponseRE.FindStringSubmatch(page.Body)
	if m == nil {
		t.Fatal("no SAMLResponse")
	}
	raw, err := base64.StdEncoding.DecodeString(html.UnescapeString(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// etreeString is the AuthnRequest as the HTTP-POST binding carries it.
func etreeString(t *testing.T, req *crewsaml.AuthnRequest) string {
	t.Helper()
	doc := etree.NewDocument()
	doc.SetRoot(req.Element())
	raw, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(raw)
}

// samlErr shows the private detail of the SP's refusal.
func samlErr(err error) error {
	var ire *crewsaml.InvalidResponseError
	if errors.As(err, &ire) {
		return ire.PrivateErr
	}
	return err
}

// TestSAMLConsent: with the consent page, only the attributes the citizen
// granted enter the assertion (email left out here).
func TestSAMLConsent(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		c := &clock{t: nowUTC()}
		b := harness.Start(t, samlYAML, dsn, harness.Options{Now: c.now, Consent: "ask"})
		sp := newSAMLSP(t, b, spACS)
		br := harness.NewBrowser(t)
		u, id := redirectRequest(t, sp)
		page := samlLogin(t, br, br.Get(u))
		if !isConsentPage(page) {
			t.Fatalf("no consent page: %d %s", page.Status, page.URL)
		}
		a, err := acsParse(t, sp, answer(t, br, page, "approve"), id)
		if err != nil {
			t.Fatalf("SP refused the response: %v", samlErr(err))
		}
		if got := attrs(a); got["given_name"] != "Erika" || len(got) != 1 {
			t.Errorf("attributes %v: want given_name only", got)
		}
	})
}
