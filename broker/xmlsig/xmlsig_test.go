package xmlsig_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/trustbroker/trustbroker/broker/xmlsig"
)

type testKey struct {
	key  crypto.Signer
	cert *x509.Certificate
}

func newKey(t testing.TB, kind string) testKey {
	t.Helper()
	var k crypto.Signer
	var err error
	switch kind {
	case "p256":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "p384":
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "p521":
		k, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "rsa":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "xmlsig test " + kind},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return testKey{k, c}
}

const responseXML = `<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_resp" Version="2.0"><saml:Issuer>https://node.example/</saml:Issuer><saml:Assertion ID="_assert" Version="2.0"><saml:Issuer>https://node.example/</saml:Issuer><saml:Subject><saml:NameID>user@user.com.evil.com</saml:NameID></saml:Subject><saml:AttributeStatement><saml:Attribute Name="x"><saml:AttributeValue>good</saml:AttributeValue></saml:Attribute></saml:AttributeStatement></saml:Assertion></samlp:Response>`

// signedAssertion returns a Response document whose Assertion is signed.
func signedAssertion(t testing.TB, k testKey, alg string) *etree.Document {
	t.Helper()
	doc, err := xmlsig.Parse([]byte(responseXML))
	if err != nil {
		t.Fatal(err)
	}
	a := doc.FindElement("//Assertion")
	s := &xmlsig.Signer{Key: k.key, Certificate: k.cert, Algorithm: alg}
	if err := s.Sign(a); err != nil {
		t.Fatal(err)
	}
	// Through bytes and back, as a message travels.
	b, _ := doc.WriteToBytes()
	doc, err = xmlsig.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func opts(k testKey) xmlsig.VerifyOptions {
	return xmlsig.VerifyOptions{Certificates: []*x509.Certificate{k.cert}, Now: time.Now()}
}

func TestSignVerifyAlgorithms(t *testing.T) {
	for _, c := range []struct{ kind, alg string }{
		{"p256", ""}, {"p384", ""}, {"p521", ""}, {"rsa", ""},
		{"rsa", xmlsig.AlgRSASHA256}, {"p256", xmlsig.AlgECDSASHA512},
	} {
		t.Run(c.kind+c.alg, func(t *testing.T) {
			k := newKey(t, c.kind)
			doc := signedAssertion(t, k, c.alg)
			a := doc.FindElement("//Assertion")
			v, err := xmlsig.Verify(a, opts(k))
			if err != nil {
				t.Fatal(err)
			}
			want := c.alg
			if want == "" {
				want, _ = xmlsig.DefaultAlgorithm(k.key.Public())
			}
			if v.Algorithm != want {
				t.Fatalf("algorithm %s, want %s", v.Algorithm, want)
			}
			if c.kind == "rsa" && c.alg == "" && v.Algorithm != xmlsig.AlgRSAPSSSHA256 {
				t.Fatal("RSA keys must default to RSASSA-PSS")
			}
			if got := xmlsig.Text(v.Element.FindElement("//NameID")); got != "user@user.com.evil.com" {
				t.Fatalf("NameID %q", got)
			}
			// The signature sits right after the Issuer (SAML schema order).
			kids := a.ChildElements()
			if kids[0].Tag != "Issuer" || kids[1].Tag != "Signature" {
				t.Fatalf("signature at the wrong place: %s, %s", kids[0].Tag, kids[1].Tag)
			}
			// The Response itself carries no signature.
			if _, err := xmlsig.Verify(doc.Root(), opts(k)); !errors.Is(err, xmlsig.ErrNoSignature) {
				t.Fatalf("unsigned response: %v", err)
			}
		})
	}
}

// mutate parses a signed response, changes it and verifies the assertion
// it then finds by path.
func TestRefusals(t *testing.T) {
	k := newKey(t, "p256")
	other := newKey(t, "p256")
	rsaKey := newKey(t, "rsa")
	type mutation func(t *testing.T, doc *etree.Document) *etree.Element
	first := func(doc *etree.Document) *etree.Element { return doc.FindElement("//Assertion") }
	cases := []struct {
		name   string
		mutate mutation
		opts   *xmlsig.VerifyOptions
		want   error
	}{
		{"changed attribute value", func(t *testing.T, doc *etree.Document) *etree.Element {
			doc.FindElement("//AttributeValue").SetText("evil")
			return first(doc)
		}, nil, xmlsig.ErrInvalid},
		{"changed ID attribute", func(t *testing.T, doc *etree.Document) *etree.Element {
			a := first(doc)
			a.CreateAttr("Version", "2.1")
			return a
		}, nil, xmlsig.ErrInvalid},
		{"signature stripped", func(t *testing.T, doc *etree.Document) *etree.Element {
			a := first(doc)
			a.RemoveChild(a.SelectElement("Signature"))
			return a
		}, nil, xmlsig.ErrNoSignature},
		{"empty SignatureValue", func(t *testing.T, doc *etree.Document) *etree.Element {
			doc.FindElement("//SignatureValue").SetText("")
			return first(doc)
		}, nil, xmlsig.ErrInvalid},
		{"two signatures", func(t *testing.T, doc *etree.Document) *etree.Element {
			a := first(doc)
			a.AddChild(a.SelectElement("Signature").Copy())
			return a
		}, nil, xmlsig.ErrInvalid},
		{"ds:Object in Signature (XSW8)", func(t *testing.T, doc *etree.Document) *etree.Element {
			a := first(doc)
			sig := a.SelectElement("Signature")
			obj := sig.CreateElement("ds:Object")
			obj.AddChild(a.Copy())
			return a
		}, nil, xmlsig.ErrInvalid},
		{"evil assertion wraps the signed one (XSW4, same ID)", func(t *testing.T, doc *etree.Document) *etree.Element {
			a := first(doc)
			evil := a.Copy()
			evil.RemoveChild(evil.SelectElement("Signature"))
			evil.FindElement("//AttributeValue").SetText("evil")
			evil.AddChild(a.Copy())
			resp := doc.Root()
			resp.RemoveChild(a)
			resp.AddChild(evil)
			// The evil outer element carries no signature of its own.
			return evil
		}, nil, xmlsig.ErrNoSignature},
		{"signed copy beside an evil one with the same ID (XSW3)", func(t *testing.T, doc *etree.Document) *etree.Element {
			a := first(doc)
			evil := a.Copy()
			evil.FindElement("//AttributeValue").SetText("evil")
			doc.Root().InsertChildAt(a.Index(), evil)
			return a
		}, nil, xmlsig.ErrInvalid},
		{"signature moved to an evil element with another ID (XSW1)", func(t *testing.T, doc *etree.Document) *etree.Element {
			a := first(doc)
			evil := a.Copy()
			evil.CreateAttr("ID", "_evil")
			evil.FindElement("//AttributeValue").SetText("evil")
			doc.Root().AddChild(evil)
			return evil
		}, nil, xmlsig.ErrInvalid},
		{"reference URI empty (whole document)", func(t *testing.T, doc *etree.Document) *etree.Element {
			doc.FindElement("//Reference").CreateAttr("URI", "")
			return first(doc)
		}, nil, xmlsig.ErrInvalid},
		{"XPath transform", func(t *testing.T, doc *etree.Document) *etree.Element {
			ts := doc.FindElement("//Transforms")
			ts.CreateElement("ds:Transform").CreateAttr("Algorithm", "http://www.w3.org/TR/1999/REC-xpath-19991116")
			return first(doc)
		}, nil, xmlsig.ErrInvalid},
		{"c14n with comments", func(t *testing.T, doc *etree.Document) *etree.Element {
			doc.FindElement("//CanonicalizationMethod").CreateAttr("Algorithm", xmlsig.AlgExcC14NComments)
			return first(doc)
		}, nil, xmlsig.ErrInvalid},
		{"wrong certificate", func(t *testing.T, doc *etree.Document) *etree.Element { return first(doc) },
			&xmlsig.VerifyOptions{Certificates: []*x509.Certificate{other.cert, rsaKey.cert}}, xmlsig.ErrInvalid},
		{"no trusted certificate", func(t *testing.T, doc *etree.Document) *etree.Element { return first(doc) },
			&xmlsig.VerifyOptions{}, xmlsig.ErrInvalid},
		{"certificate not yet valid", func(t *testing.T, doc *etree.Document) *etree.Element { return first(doc) },
			&xmlsig.VerifyOptions{Certificates: []*x509.Certificate{k.cert}, Now: time.Now().Add(-48 * time.Hour)}, xmlsig.ErrInvalid},
		{"algorithm not allowed", func(t *testing.T, doc *etree.Document) *etree.Element { return first(doc) },
			&xmlsig.VerifyOptions{Certificates: []*x509.Certificate{k.cert}, Algorithms: []string{xmlsig.AlgRSAPSSSHA256}}, xmlsig.ErrInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			doc := signedAssertion(t, k, "")
			el := c.mutate(t, doc)
			o := opts(k)
			if c.opts != nil {
				o = *c.opts
			}
			_, err := xmlsig.Verify(el, o)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			t.Log(err)
		})
	}
}

// A KeyInfo naming an attacker's certificate does not make the attacker's
// signature count (key confusion): only configured certificates verify.
func TestKeyInfoIsNotTrusted(t *testing.T) {
	good := newKey(t, "p256")
	evil := newKey(t, "p256")
	doc := signedAssertion(t, evil, "")
	if _, err := xmlsig.Verify(doc.FindElement("//Assertion"), opts(good)); !errors.Is(err, xmlsig.ErrInvalid) {
		t.Fatalf("signature by a KeyInfo certificate accepted: %v", err)
	}
}

// CVE-2017-11427 and relatives: a comment splits the NameID text; the
// signature still verifies (c14n drops comments) and the caller sees the
// whole text, not the part before the comment.
func TestCommentInjection(t *testing.T) {
	k := newKey(t, "p256")
	doc := signedAssertion(t, k, "")
	b, _ := doc.WriteToBytes()
	s := strings.Replace(string(b), "user@user.com.evil.com", "user@user.com<!---->.evil.com", 1)
	doc2, err := xmlsig.Parse([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	if len(doc2.FindElement("//NameID").Child) != 3 {
		t.Fatal("test premise: the comment splits the NameID into two text nodes")
	}
	v, err := xmlsig.Verify(doc2.FindElement("//Assertion"), opts(k))
	if err != nil {
		t.Fatal(err)
	}
	n := v.Element.FindElement("//NameID")
	if len(n.Child) != 1 || n.Text() != "user@user.com.evil.com" || xmlsig.Text(n) != "user@user.com.evil.com" {
		t.Fatalf("NameID after verification: %q", n.Text())
	}
}

// A signed Response with a signed Assertion inside: each verifies on its
// own; the inner signature stays inside the outer verified element.
func TestNestedSignatures(t *testing.T) {
	k := newKey(t, "rsa")
	doc := signedAssertion(t, k, "")
	if err := (&xmlsig.Signer{Key: k.key, Certificate: k.cert}).Sign(doc.Root()); err != nil {
		t.Fatal(err)
	}
	b, _ := doc.WriteToBytes()
	doc, _ = xmlsig.Parse(b)
	v, err := xmlsig.Verify(doc.Root(), opts(k))
	if err != nil {
		t.Fatal(err)
	}
	inner := v.Element.FindElement("//Assertion")
	if _, err := xmlsig.Verify(inner, opts(k)); err != nil {
		t.Fatalf("inner signature after outer verification: %v", err)
	}
}

func TestParseRefuses(t *testing.T) {
	for name, in := range map[string]string{
		"doctype":     `<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>`,
		"pi":          `<a><?evil x?></a>`,
		"two roots":   `<a/><b/>`,
		"dup attr":    `<a x="1" x="2"/>`,
		"text":        `hello<a/>`,
		"deep":        strings.Repeat("<a>", 100) + strings.Repeat("</a>", 100),
		"not xml":     `<a`,
		"empty":       ``,
		"too big":     "<a>" + strings.Repeat("x", xmlsig.MaxDocumentSize) + "</a>",
		"dup ns attr": `<a xmlns:p="u" p:x="1" p:x="2"/>`,
	} {
		if _, err := xmlsig.Parse([]byte(in)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
