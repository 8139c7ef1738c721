package eidas_test

import (
	"crypto/x509"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trustbroker/trustbroker/broker/loa"
	"github.com/trustbroker/trustbroker/broker/xmlsig"
	"github.com/trustbroker/trustbroker/providers/eidas"
	"github.com/trustbroker/trustbroker/providers/eidas/eidassim"
)

// middlewareDir finds the Governikus eIDAS Middleware vectors in ../shared
// (or $TRUSTBROKER_TEST_SHARED): skipped when absent, a failure when the
// variable is set and they are missing.
func middlewareDir(t testing.TB) string {
	t.Helper()
	shared, set := os.LookupEnv("TRUSTBROKER_TEST_SHARED")
	if !set {
		shared = filepath.Join("..", "..", "..", "shared")
	}
	dir := filepath.Join(shared, "testdata", "eidas-middleware")
	if _, err := os.Stat(filepath.Join(dir, "schemas", "SamlAuthRequest.xsd")); err != nil {
		if set {
			t.Fatalf("TRUSTBROKER_TEST_SHARED is set but the eIDAS Middleware vectors are missing: %v", err)
		}
		t.Skipf("eIDAS Middleware vectors not found at %s (set TRUSTBROKER_TEST_SHARED): %v", dir, err)
	}
	return dir
}

// schemaDir copies the middleware's schemas to a temporary directory with
// the imports pointing at the local files (the originals name a W3C URL
// and a file name with a dot for the underscore), so that xmllint runs
// offline.
func schemaDir(t *testing.T) (string, string) {
	t.Helper()
	src := filepath.Join(middlewareDir(t), "schemas")
	xmllint, err := exec.LookPath("xmllint")
	if err != nil {
		if os.Getenv("TRUSTBROKER_TEST_SHARED") != "" {
			t.Fatal("xmllint (Debian libxml2-utils) is required when TRUSTBROKER_TEST_SHARED is set")
		}
		t.Skip("xmllint not installed (Debian libxml2-utils)")
	}
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		s := strings.ReplaceAll(string(b), "http://www.w3.org/TR/2002/REC-xmldsig-core-20020212/xmldsig-core-schema.xsd", "xmldsig-core-schema.xsd")
		name := e.Name()
		if err := os.WriteFile(filepath.Join(dst, name), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if name == "saml-schema-assertion-2_0.xsd" {
			_ = os.WriteFile(filepath.Join(dst, "saml-schema-assertion-2.0.xsd"), []byte(s), 0o600)
		}
	}
	// One schema for messages that also use XML Encryption 1.1 (ECDH-ES
	// key agreement in an EncryptedAssertion).
	all := `<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:trustbroker:test:all">
<xs:import namespace="urn:oasis:names:tc:SAML:2.0:protocol" schemaLocation="saml-schema-protocol-2_0.xsd"/>
<xs:import namespace="http://www.w3.org/2009/xmlenc11#" schemaLocation="xenc-schema-11.xsd"/>
<xs:import namespace="http://eidas.europa.eu/attributes/naturalperson" schemaLocation="NaturalPersonShema.xsd"/>
</xs:schema>`
	if err := os.WriteFile(filepath.Join(dst, "all.xsd"), []byte(all), 0o600); err != nil {
		t.Fatal(err)
	}
	return dst, xmllint
}

func xmllintValidate(t *testing.T, xmllint, schema string, doc []byte) error {
	t.Helper()
	f := filepath.Join(t.TempDir(), "doc.xml")
	if err := os.WriteFile(f, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(xmllint, "--noout", "--nonet", "--schema", schema, f).CombinedOutput()
	if err != nil {
		return errors.New(string(out))
	}
	return nil
}

// The broker's AuthnRequest validates against the SAML protocol schema the
// middleware validates with (its SamlAuthRequest.xsd is shipped commented
// out), as the middleware's test requests do; one with an unknown element
// does not (the check can fail).
func TestAuthnRequestSchema(t *testing.T) {
	dir, xmllint := schemaDir(t)
	schema := filepath.Join(dir, "saml-schema-protocol-2_0.xsd")
	vec, err := os.ReadFile(filepath.Join(middlewareDir(t), "EidasSamlRequest_13062017.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := xmllintValidate(t, xmllint, schema, vec); err != nil {
		t.Fatalf("the middleware's own request does not validate: %v", err)
	}
	for _, private := range []bool{false, true} {
		f := newFixture(t, "ec", "ec", func(s *eidas.Settings) {
			if private {
				s.SPType, s.RequesterID = "private", "https://shop.example/"
			}
		})
		_, _, req := f.begin(t, f.request("tx1", allClaims, loa.High))
		if err := xmllintValidate(t, xmllint, schema, req); err != nil {
			t.Fatalf("private=%v: %v\n%s", private, err, req)
		}
		bad := strings.Replace(string(req), "<saml2p:NameIDPolicy", "<saml2p:Bogus/><saml2p:NameIDPolicy", 1)
		if err := xmllintValidate(t, xmllint, schema, []byte(bad)); err == nil {
			t.Fatal("schema validation accepts an unknown element")
		}
	}
}

// The AuthnRequest has the shape of the middleware's test requests:
// the same attributes and elements in the same order.
func TestAuthnRequestShape(t *testing.T) {
	vec, err := os.ReadFile(filepath.Join(middlewareDir(t), "EidasSamlRequest_13062017.xml"))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := xmlsig.Parse(vec)
	f := newFixture(t, "rsa", "ec", nil)
	_, _, raw := f.begin(t, f.request("tx1", []string{"given_name", "address"}, loa.Low))
	got, err := xmlsig.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	shape := func(el interface {
		ChildElements() []*etreeElement
	}) []string {
		var s []string
		for _, c := range el.ChildElements() {
			s = append(s, c.Tag)
		}
		return s
	}
	if w, g := strings.Join(shape(want.Root()), ","), strings.Join(shape(got.Root()), ","); w != g {
		t.Fatalf("children %s, middleware %s", g, w)
	}
	r := got.Root()
	for _, a := range []string{"Destination", "ForceAuthn", "ID", "IsPassive", "IssueInstant", "ProviderName", "Version"} {
		if r.SelectAttrValue(a, "") == "" || want.Root().SelectAttrValue(a, "") == "" {
			t.Errorf("attribute %s missing", a)
		}
	}
	if r.SelectAttrValue("ForceAuthn", "") != "true" || r.SelectAttrValue("IsPassive", "") != "false" {
		t.Fatal("ForceAuthn/IsPassive")
	}
	if m := r.FindElement("./Signature/SignedInfo/SignatureMethod").SelectAttrValue("Algorithm", ""); m != xmlsig.AlgRSAPSSSHA256 {
		t.Fatalf("RSA key signs with %s, want RSASSA-PSS", m)
	}
	if r.FindElement("./Issuer").SelectAttrValue("Format", "") != eidas.NameIDEntity || r.FindElement("./Extensions/SPType").Text() != "public" {
		t.Fatal("issuer format or SPType")
	}
	rac := r.FindElement("./RequestedAuthnContext")
	if rac.SelectAttrValue("Comparison", "") != "minimum" || rac.FindElement("./AuthnContextClassRef").Text() != loa.URISubstantial {
		t.Fatal("RequestedAuthnContext (the provider asks for at least substantial)")
	}
	req := map[string]string{}
	for _, ra := range r.FindElements("./Extensions/RequestedAttributes/RequestedAttribute") {
		if ra.SelectAttrValue("NameFormat", "") != eidas.AttrNameFormatURI {
			t.Fatal("NameFormat")
		}
		req[ra.SelectAttrValue("Name", "")] = ra.SelectAttrValue("isRequired", "")
	}
	if req[eidas.AttrPersonIdentifier] != "true" || req[eidas.AttrDateOfBirth] != "true" || req[eidas.AttrCurrentAddress] != "false" ||
		req[eidas.AttrGender] != "" || len(req) != 5 {
		t.Fatalf("requested attributes %v", req)
	}
	if nip := r.FindElement("./NameIDPolicy"); nip.SelectAttrValue("Format", "") != eidas.NameIDPersistent || nip.SelectAttrValue("AllowCreate", "") != "true" {
		t.Fatal("NameIDPolicy")
	}
}

// The SP metadata is signed (verifies with the SP certificate), carries
// the eIDAS extensions and reads back as the node's loader would.
func TestSPMetadata(t *testing.T) {
	f := newFixture(t, "ec", "rsa", nil)
	md, err := f.p.SPMetadata(f.now)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := xmlsig.Parse(md)
	if err != nil {
		t.Fatal(err)
	}
	v, err := xmlsig.Verify(doc.Root(), xmlsig.VerifyOptions{Certificates: []*x509.Certificate{f.node.SP.SigningCert}, Now: f.now})
	if err != nil {
		t.Fatal(err)
	}
	ed := v.Element
	if ed.SelectAttrValue("entityID", "") != issuer+"/providers/eu/metadata" || ed.SelectAttrValue("validUntil", "") == "" {
		t.Fatal("entityID / validUntil")
	}
	if ed.FindElement("./Extensions/SPType").Text() != "public" || len(ed.FindElements("./Extensions/SigningMethod")) != 2 ||
		ed.FindElement("./Extensions/DigestMethod") == nil {
		t.Fatal("eIDAS extensions")
	}
	sp := ed.FindElement("./SPSSODescriptor")
	if sp.SelectAttrValue("AuthnRequestsSigned", "") != "true" || sp.SelectAttrValue("WantAssertionsSigned", "") != "true" {
		t.Fatal("SPSSODescriptor flags")
	}
	acs := sp.FindElement("./AssertionConsumerService")
	if acs.SelectAttrValue("Location", "") != issuer+"/providers/eu/acs" || acs.SelectAttrValue("Binding", "") != eidas.BindingPOST {
		t.Fatal("ACS")
	}
	if len(sp.FindElements("./KeyDescriptor[@use='encryption']/EncryptionMethod[@Algorithm='"+xmlsig.AlgAES256GCM+"']")) != 1 {
		t.Fatal("encryption method aes256-gcm")
	}
}

// Node metadata: the middleware's own metadata loads while valid (signed
// with RSASSA-PSS) and is refused expired, with another signer, or
// unsigned.
func TestNodeMetadataMiddleware(t *testing.T) {
	dir := middlewareDir(t)
	md, _ := os.ReadFile(filepath.Join(dir, "Metadata.xml"))
	unsigned, _ := os.ReadFile(filepath.Join(dir, "Metadata_without_signature.xml"))
	signer, err := eidas.LoadCertificates(filepath.Join(dir, "middleware_sign_crypt.cer"))
	if err != nil {
		t.Fatal(err)
	}
	wrong, _ := eidas.LoadCertificates(filepath.Join(dir, "WrongSignerCert.cer"))
	then := time.Date(2020, 1, 15, 0, 0, 0, 0, time.UTC)
	n, err := eidas.ParseNodeMetadata(md, signer, then)
	if err != nil {
		t.Fatal(err)
	}
	if n.EntityID != "https://localhost:9443/eidas-middleware/Metadata" || n.SSOURL != "https://localhost:9443/eidas-middleware/RequestReceiver" ||
		len(n.Certificates) != 1 || !n.Certificates[0].Equal(signer[0]) {
		t.Fatalf("%+v", n)
	}
	if _, err := eidas.ParseNodeMetadata(md, signer, time.Now()); err == nil {
		t.Fatal("expired metadata accepted")
	}
	if _, err := eidas.ParseNodeMetadata(md, wrong, then); err == nil {
		t.Fatal("metadata accepted with the wrong signer")
	}
	if _, err := eidas.ParseNodeMetadata(unsigned, signer, then); err == nil {
		t.Fatal("unsigned metadata accepted")
	}
}

// The simulator's answers are schema-valid too: the Response (with its
// EncryptedAssertion, XML Encryption 1.1) and the decrypted Assertion
// against the SAML schemas and the eIDAS natural-person schema (xsi:type
// of each attribute value, LatinScript).
func TestSimulatorResponseSchema(t *testing.T) {
	dir, xmllint := schemaDir(t)
	f := newFixture(t, "ec", "ec", nil)
	_, nr, _ := f.begin(t, f.request("tx1", allClaims, loa.Substantial))
	resp, err := f.node.Answer(nr, eidassim.PersonByKey("el-eleni"), eidassim.Normal)
	if err != nil {
		t.Fatal(err)
	}
	if err := xmllintValidate(t, xmllint, filepath.Join(dir, "all.xsd"), resp); err != nil {
		t.Fatalf("response: %v\n%s", err, resp)
	}
	doc, _ := xmlsig.Parse(resp)
	ed := doc.FindElement("//EncryptedData")
	plain, err := xmlsig.Decrypt(ed, nil, f.spKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := xmllintValidate(t, xmllint, filepath.Join(dir, "all.xsd"), plain); err != nil {
		t.Fatalf("assertion: %v\n%s", err, plain)
	}
}
