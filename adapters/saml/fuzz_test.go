package saml

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"encoding/xml"
	"html"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	crewsaml "github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/broker/loa"
)

// testKey is a fixed RSA test key from testdata: generating one in every
// fuzz worker, with the coverage instrumentation of fuzzing, takes longer
// than a short fuzz run.
func testKey(t testing.TB, name string) *rsa.PrivateKey {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(raw)
	if b == nil {
		t.Fatalf("%s: no PEM", name)
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(*rsa.PrivateKey)
}

// testIdP is crewjam's IdP with this package's SP registry, without a
// broker: enough for the request parsing the adapter owns.
func testIdP(t testing.TB) *crewsaml.IdentityProvider {
	t.Helper()
	key := testKey(t, "idp-key.pem")
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "idp"},
		NotBefore: time.Unix(0, 0), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	p, err := New(Options{SessionKey: testSessionKey, RelyingParties: []*config.RelyingParty{{ID: "sp", Protocol: Protocol,
		SAML: &config.SAML{EntityID: "https://sp.example/saml", ACSURLs: []string{"https://sp.example/acs"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	sso, _ := url.Parse("https://idp.example/saml/sso")
	return &crewsaml.IdentityProvider{Signer: key, Certificate: cert, SSOURL: *sso, ServiceProviderProvider: p, RejectSHA1Signatures: true}
}

const seedRequest = `<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="id-1" Version="2.0" IssueInstant="2026-01-01T00:00:00Z" Destination="https://idp.example/saml/sso" AssertionConsumerServiceURL="https://sp.example/acs"><saml:Issuer>https://sp.example/saml</saml:Issuer><samlp:RequestedAuthnContext Comparison="minimum"><saml:AuthnContextClassRef>http://eidas.europa.eu/LoA/substantial</saml:AuthnContextClassRef></samlp:RequestedAuthnContext></samlp:AuthnRequest>`

func deflate(s string) string {
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestCompression)
	_, _ = w.Write([]byte(s))
	_ = w.Close()
	return base64.StdEncoding.EncodeToString(b.Bytes())
}

func TestParseStored(t *testing.T) {
	idp := testIdP(t)
	at := time.Date(2026, 1, 1, 0, 0, 30, 0, time.UTC)
	ok := []storedRequest{
		{Method: "GET", RawQuery: url.Values{"SAMLRequest": {deflate(seedRequest)}, "RelayState": {"r"}}.Encode()},
		{Method: "POST", Form: url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString([]byte(seedRequest))}}.Encode()},
	}
	for _, sr := range ok {
		req, err := parseStored(context.Background(), idp, sr, at)
		if err != nil {
			t.Fatalf("%s: %v", sr.Method, err)
		}
		if lvl, _ := requestedLoA(req.Request.RequestedAuthnContext, loa.None); lvl.String() != "substantial" || req.ACSEndpoint.Location != "https://sp.example/acs" {
			t.Errorf("%s: %+v", sr.Method, req.Request)
		}
	}
	bad := map[string]string{
		"stale":      seedRequest,
		"other ACS":  replace(seedRequest, "https://sp.example/acs", "https://evil.example/acs"),
		"unknown SP": replace(seedRequest, "<saml:Issuer>https://sp.example/saml", "<saml:Issuer>https://evil.example/saml"),
		"doctype":    `<!DOCTYPE x [<!ENTITY a "b">]>` + seedRequest,
	}
	for name, doc := range bad {
		when := at
		if name == "stale" {
			when = at.Add(time.Hour)
		}
		sr := storedRequest{Method: "POST", Form: url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString([]byte(doc))}}.Encode()}
		if _, err := parseStored(context.Background(), idp, sr, when); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func replace(s, old, new string) string {
	return string(bytes.ReplaceAll([]byte(s), []byte(old), []byte(new)))
}

// FuzzAuthnRequest feeds arbitrary AuthnRequests through both bindings of
// the parsing and validation the adapter runs on Resume: no panic, and
// anything accepted names the registered SP and one of its ACS URLs.
func FuzzAuthnRequest(f *testing.F) {
	idp := testIdP(f)
	at := time.Date(2026, 1, 1, 0, 0, 30, 0, time.UTC)
	f.Add([]byte(seedRequest), true)
	f.Add([]byte(seedRequest), false)
	f.Add([]byte(`<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"/>`), false)
	f.Fuzz(func(t *testing.T, doc []byte, redirect bool) {
		sr := storedRequest{Method: "POST", Form: url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString(doc)}}.Encode()}
		if redirect {
			sr = storedRequest{Method: "GET", RawQuery: url.Values{"SAMLRequest": {deflate(string(doc))}}.Encode()}
		}
		req, err := parseStored(context.Background(), idp, sr, at)
		if err != nil {
			return
		}
		if req.ServiceProviderMetadata.EntityID != "https://sp.example/saml" || req.ACSEndpoint == nil || req.ACSEndpoint.Location != "https://sp.example/acs" {
			t.Fatalf("accepted %q with SP %q ACS %+v", doc, req.ServiceProviderMetadata.EntityID, req.ACSEndpoint)
		}
		_, _ = requestedLoA(req.Request.RequestedAuthnContext, loa.Substantial)
		_, _ = assertedClass(req.Request.RequestedAuthnContext, loa.High)
	})
}

// FuzzParseMetadata: SP metadata files never panic the parser.
func FuzzParseMetadata(f *testing.F) {
	f.Add([]byte(`<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://sp.example/saml"><SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://sp.example/acs" index="0"/></SPSSODescriptor></EntityDescriptor>`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		_, _ = ParseMetadata(raw)
	})
}

// FuzzLogoutRequest feeds arbitrary LogoutRequests through both bindings
// of the SingleLogoutService's parsing and validation (crewjam's, with
// this package's SP registry): no panic, and nothing is accepted but the
// SP's own signed request, unchanged in what it says.
func FuzzLogoutRequest(f *testing.F) {
	key := testKey(f, "sp-key.pem")
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "sp"},
		NotBefore: time.Unix(0, 0), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	cert, _ := x509.ParseCertificate(der)
	acs, _ := url.Parse("https://sp.example/acs")
	slo, _ := url.Parse("https://sp.example/slo")
	sp := &crewsaml.ServiceProvider{EntityID: "https://sp.example/saml", AcsURL: *acs, SloURL: *slo, Key: key, Certificate: cert,
		SignatureMethod: dsig.RSASHA256SignatureMethod, LogoutBindings: []string{crewsaml.HTTPRedirectBinding, crewsaml.HTTPPostBinding}}
	raw, _ := xml.Marshal(sp.Metadata())
	mdFile := filepath.Join(f.TempDir(), "sp.xml")
	if err := os.WriteFile(mdFile, raw, 0o600); err != nil {
		f.Fatal(err)
	}
	p, err := New(Options{SessionKey: testSessionKey, RelyingParties: []*config.RelyingParty{{ID: "sp", Protocol: Protocol,
		SAML: &config.SAML{EntityID: sp.EntityID, MetadataFile: mdFile, NameIDFormats: []string{config.NameIDPersistent}}}}})
	if err != nil {
		f.Fatal(err)
	}
	idp := testIdP(f)
	idp.ServiceProviderProvider = p
	sloURL, _ := url.Parse("https://idp.example/saml/slo")
	idp.LogoutURL = *sloURL
	idp.LogoutBindings = []string{crewsaml.HTTPRedirectBinding, crewsaml.HTTPPostBinding}
	sp.IDPMetadata = idp.Metadata()

	form, err := sp.MakePostLogoutRequest("subject-1", "")
	if err != nil {
		f.Fatal(err)
	}
	m := regexp.MustCompile(`name="SAMLRequest" value="([^"]+)"`).FindSubmatch(form)
	if m == nil {
		f.Fatalf("no SAMLRequest in %s", form)
	}
	signed, err := base64.StdEncoding.DecodeString(html.UnescapeString(string(m[1])))
	if err != nil {
		f.Fatal(err)
	}
	var req crewsaml.LogoutRequest
	if err := xml.Unmarshal(signed, &req); err != nil {
		f.Fatal(err)
	}
	// The signed seed is accepted, so the target reaches acceptance.
	hr := httptest.NewRequest(http.MethodPost, sloURL.String(), strings.NewReader(url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString(signed)}}.Encode()))
	hr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	lr, err := crewsaml.NewIdpLogoutRequest(idp, hr)
	if err == nil {
		err = lr.Validate()
	}
	if err != nil {
		f.Fatalf("the SP's signed LogoutRequest is refused: %v", err)
	}
	f.Add(signed, false)
	f.Add([]byte(`<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="x" Version="2.0" IssueInstant="2026-01-01T00:00:00Z"><saml:Issuer>https://sp.example/saml</saml:Issuer><saml:NameID>a</saml:NameID></samlp:LogoutRequest>`), true)
	f.Fuzz(func(t *testing.T, doc []byte, redirect bool) {
		var hr *http.Request
		if redirect {
			hr = httptest.NewRequest(http.MethodGet, sloURL.String()+"?"+url.Values{"SAMLRequest": {deflate(string(doc))}}.Encode(), nil)
		} else {
			hr = httptest.NewRequest(http.MethodPost, sloURL.String(), strings.NewReader(url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString(doc)}}.Encode()))
			hr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		lr, err := crewsaml.NewIdpLogoutRequest(idp, hr)
		if err != nil {
			return
		}
		if lr.Validate() != nil {
			return
		}
		if redirect || lr.Request.NameID == nil || lr.Request.NameID.Value != "subject-1" ||
			lr.ServiceProviderMetadata.EntityID != sp.EntityID {
			t.Fatalf("accepted a LogoutRequest the SP did not sign: %q", doc)
		}
	})
}
