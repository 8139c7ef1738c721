// Package eidassim simulates an eIDAS node (a receiving country's eIDAS
// connector, as the broker's eIDAS provider sees it) for the demo and the
// tests: it checks the signed AuthnRequest, lets the tester pick a
// specimen person of one of several member states and a behaviour, and
// answers with a Response signed with ECDSA or RSASSA-PSS whose assertion
// is signed and encrypted with AES-256-GCM (ECDH-ES or RSA-OAEP key
// transport), as real nodes do. Behaviours include a node that reaches a
// lower level than asked and one whose assertion is tampered with.
//
// It proves whatever person the tester picks: it runs only for a broker on
// a loopback address (see Factory).
package eidassim

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/beevik/etree"

	"github.com/trustbroker/trustbroker/broker/loa"
	"github.com/trustbroker/trustbroker/broker/xmlsig"
	"github.com/trustbroker/trustbroker/providers/eidas"
)

// Node is the simulated eIDAS node.
type Node struct {
	EntityID string
	SSOURL   string
	Country  string // the node's (receiving) country, second part of PersonIdentifier
	Key      crypto.Signer
	Cert     *x509.Certificate
	// SP is the one service provider the node serves.
	SP SP
	// LoA is the highest level the node reaches (default high).
	LoA loa.Level
	// Algorithm is the SignatureMethod; empty: ECDSA for EC keys,
	// RSASSA-PSS for RSA keys.
	Algorithm string
	Now       func() time.Time
}

// SP is what the node knows of the service provider (from its metadata).
type SP struct {
	EntityID       string
	ACSURL         string
	SigningCert    *x509.Certificate
	EncryptionCert *x509.Certificate
}

// NewKey makes a self-signed key pair: "ec" (P-256) or "rsa" (3072 bits).
func NewKey(kind, cn string, now time.Time) (crypto.Signer, *x509.Certificate, error) {
	var k crypto.Signer
	var err error
	switch kind {
	case "ec", "":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "rsa":
		k, err = rsa.GenerateKey(rand.Reader, 3072)
	default:
		return nil, nil, fmt.Errorf("key kind %q: use ec or rsa", kind)
	}
	if err != nil {
		return nil, nil, err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn, Country: []string{"DE"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(5 * 365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageKeyAgreement}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		return nil, nil, err
	}
	c, err := x509.ParseCertificate(der)
	return k, c, err
}

// Request is a verified AuthnRequest as the node read it.
type Request struct {
	ID           string
	Issuer       string
	Destination  string
	LoA          loa.Level
	NameIDFormat string
	// Attributes requested, by name, with isRequired.
	Attributes map[string]bool
	SPType     string
}

// ReadRequest verifies and reads a base64 SAMLRequest (HTTP-POST): the
// signature by the SP's signing certificate (ECDSA or RSASSA-PSS), the
// issuer, destination, ForceAuthn, the eIDAS LoA with Comparison minimum
// and the requested attributes.
func (n *Node) ReadRequest(b64 string) (*Request, error) {
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("SAMLRequest: %w", err)
	}
	doc, err := xmlsig.Parse(raw)
	if err != nil {
		return nil, err
	}
	v, err := xmlsig.Verify(doc.Root(), xmlsig.VerifyOptions{Certificates: []*x509.Certificate{n.SP.SigningCert}, Now: n.Now(),
		Algorithms: []string{xmlsig.AlgECDSASHA256, xmlsig.AlgECDSASHA384, xmlsig.AlgECDSASHA512, xmlsig.AlgRSAPSSSHA256}})
	if err != nil {
		return nil, fmt.Errorf("AuthnRequest signature: %w", err)
	}
	r := v.Element
	if r.Tag != "AuthnRequest" || r.NamespaceURI() != eidas.NSSAMLP {
		return nil, errors.New("not an AuthnRequest")
	}
	req := &Request{ID: r.SelectAttrValue("ID", ""), Destination: r.SelectAttrValue("Destination", ""), Attributes: map[string]bool{}}
	if iss := r.FindElement("./Issuer"); iss != nil {
		req.Issuer = xmlsig.Text(iss)
	}
	if req.Issuer != n.SP.EntityID {
		return nil, fmt.Errorf("issuer %q is not the SP %q", req.Issuer, n.SP.EntityID)
	}
	if req.Destination != n.SSOURL {
		return nil, fmt.Errorf("destination %q", req.Destination)
	}
	if r.SelectAttrValue("ForceAuthn", "") != "true" {
		return nil, errors.New("ForceAuthn must be true")
	}
	rac := r.FindElement("./RequestedAuthnContext")
	if rac == nil || rac.SelectAttrValue("Comparison", "") != "minimum" {
		return nil, errors.New("RequestedAuthnContext with Comparison minimum required")
	}
	refs := rac.FindElements("./AuthnContextClassRef")
	if len(refs) != 1 {
		return nil, errors.New("exactly one AuthnContextClassRef required")
	}
	level, notified, ok := eidas.ParseLoA(xmlsig.Text(refs[0]))
	if !ok || !notified {
		return nil, fmt.Errorf("LoA %q is not an eIDAS level", xmlsig.Text(refs[0]))
	}
	req.LoA = level
	if nip := r.FindElement("./NameIDPolicy"); nip != nil {
		req.NameIDFormat = nip.SelectAttrValue("Format", "")
	} else {
		return nil, errors.New("NameIDPolicy required")
	}
	for _, ra := range r.FindElements("./Extensions/RequestedAttributes/RequestedAttribute") {
		req.Attributes[ra.SelectAttrValue("Name", "")] = ra.SelectAttrValue("isRequired", "") == "true"
	}
	if st := r.FindElement("./Extensions/SPType"); st != nil {
		req.SPType = xmlsig.Text(st)
	}
	for _, a := range eidas.Attributes {
		if a.MDS {
			if _, ok := req.Attributes[a.Name]; !ok {
				return nil, fmt.Errorf("minimum data set attribute %s not requested", a.FriendlyName)
			}
		}
	}
	return req, nil
}

// Behaviour selects how the node answers.
type Behaviour string

const (
	Normal      Behaviour = "normal"
	LowerLoA    Behaviour = "lower_loa"   // reaches one level less than asked (at least low)
	Tampered    Behaviour = "tampered"    // the assertion is changed after signing
	Unencrypted Behaviour = "unencrypted" // the assertion is sent in the clear
	Cancel      Behaviour = "cancel"      // the user cancels at the node
)

// Behaviours lists them in the order the page shows them.
var Behaviours = []Behaviour{Normal, LowerLoA, Tampered, Unencrypted, Cancel}

// Spec is everything one response says; tests change single fields to
// build the negative cases.
type Spec struct {
	ResponseID, AssertionID string
	InResponseTo            string
	Issuer                  string
	Destination, Recipient  string
	Audience                string
	Person                  *Person
	LoAURI                  string
	Released                map[string]bool // attribute names to send (nil: all the person has)
	IssueInstant            time.Time
	Validity                time.Duration
	SignResponse            bool
	SignAssertion           bool
	Encrypt                 bool
	// TamperAssertion changes the assertion after it was signed.
	TamperAssertion func(*etree.Element)
	// StatusSub, when set, makes a failure response with this second-level
	// status (no assertion).
	StatusSub    string
	NameIDFormat string
}

// DefaultSpec is the answer of a well-behaved node to req for person.
func (n *Node) DefaultSpec(req *Request, p *Person) Spec {
	level := min(p.SchemeLoA, n.LoA)
	return Spec{
		InResponseTo: req.ID, Issuer: n.EntityID, Destination: n.SP.ACSURL, Recipient: n.SP.ACSURL,
		Audience: n.SP.EntityID, Person: p, LoAURI: level.URI(), Released: req.Attributes,
		IssueInstant: n.Now(), Validity: 5 * time.Minute, SignResponse: true, SignAssertion: true, Encrypt: true,
		NameIDFormat: req.NameIDFormat,
	}
}

// Answer applies a behaviour to the default answer.
func (n *Node) Answer(req *Request, p *Person, b Behaviour) ([]byte, error) {
	s := n.DefaultSpec(req, p)
	switch b {
	case Normal, "":
	case LowerLoA:
		s.LoAURI = max(req.LoA-1, loa.Low).URI()
	case Tampered:
		s.TamperAssertion = func(a *etree.Element) {
			for _, av := range a.FindElements("//Attribute") {
				if av.SelectAttrValue("Name", "") == eidas.AttrFamilyName {
					av.FindElement("./AttributeValue").SetText("Tampered")
				}
			}
		}
	case Unencrypted:
		s.Encrypt = false
	case Cancel:
		s.StatusSub = "urn:oasis:names:tc:SAML:2.0:status:AuthnFailed"
	default:
		return nil, fmt.Errorf("unknown behaviour %q", b)
	}
	return n.Build(s)
}

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "_" + hex.EncodeToString(b)
}

func samlTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// Build makes the Response XML of s.
func (n *Node) Build(s Spec) ([]byte, error) {
	if s.ResponseID == "" {
		s.ResponseID = newID()
	}
	if s.AssertionID == "" {
		s.AssertionID = newID()
	}
	now := s.IssueInstant
	doc := etree.NewDocument()
	doc.CreateProcInst("xml", `version="1.0" encoding="UTF-8"`)
	resp := doc.CreateElement("saml2p:Response")
	resp.CreateAttr("xmlns:saml2p", eidas.NSSAMLP)
	resp.CreateAttr("xmlns:saml2", eidas.NSSAML)
	resp.CreateAttr("Destination", s.Destination)
	resp.CreateAttr("ID", s.ResponseID)
	resp.CreateAttr("InResponseTo", s.InResponseTo)
	resp.CreateAttr("IssueInstant", samlTime(now))
	resp.CreateAttr("Version", "2.0")
	iss := resp.CreateElement("saml2:Issuer")
	iss.CreateAttr("Format", eidas.NameIDEntity)
	iss.SetText(s.Issuer)
	st := resp.CreateElement("saml2p:Status")
	sc := st.CreateElement("saml2p:StatusCode")
	if s.StatusSub != "" {
		sc.CreateAttr("Value", "urn:oasis:names:tc:SAML:2.0:status:Responder")
		sc.CreateElement("saml2p:StatusCode").CreateAttr("Value", s.StatusSub)
		st.CreateElement("saml2p:StatusMessage").SetText("The user cancelled the authentication.")
	} else {
		sc.CreateAttr("Value", eidas.StatusSuccess)
		a, err := n.assertion(s)
		if err != nil {
			return nil, err
		}
		if s.Encrypt {
			ad := etree.NewDocument()
			ad.SetRoot(a)
			plain, err := ad.WriteToBytes()
			if err != nil {
				return nil, err
			}
			ed, err := xmlsig.Encrypt(plain, n.SP.EncryptionCert, nil)
			if err != nil {
				return nil, err
			}
			resp.CreateElement("saml2:EncryptedAssertion").AddChild(ed)
		} else {
			resp.AddChild(a)
		}
	}
	if s.SignResponse {
		if err := (&xmlsig.Signer{Key: n.Key, Certificate: n.Cert, Algorithm: n.Algorithm}).Sign(resp); err != nil {
			return nil, err
		}
	}
	return doc.WriteToBytes()
}

// assertion builds (and signs) the standalone saml2:Assertion.
func (n *Node) assertion(s Spec) (*etree.Element, error) {
	now := s.IssueInstant
	until := samlTime(now.Add(s.Validity))
	a := etree.NewElement("saml2:Assertion")
	a.CreateAttr("xmlns:saml2", eidas.NSSAML)
	a.CreateAttr("xmlns:eidas-natural", eidas.NSEIDASNP)
	a.CreateAttr("xmlns:xsi", "http://www.w3.org/2001/XMLSchema-instance")
	a.CreateAttr("ID", s.AssertionID)
	a.CreateAttr("IssueInstant", samlTime(now))
	a.CreateAttr("Version", "2.0")
	iss := a.CreateElement("saml2:Issuer")
	iss.CreateAttr("Format", eidas.NameIDEntity)
	iss.SetText(s.Issuer)
	p := s.Person
	pid := p.Country + "/" + n.Country + "/" + p.ID
	subj := a.CreateElement("saml2:Subject")
	nid := subj.CreateElement("saml2:NameID")
	format := s.NameIDFormat
	if format == "" {
		format = eidas.NameIDPersistent
	}
	nid.CreateAttr("Format", format)
	nid.CreateAttr("NameQualifier", s.Issuer)
	nid.SetText(pid)
	scf := subj.CreateElement("saml2:SubjectConfirmation")
	scf.CreateAttr("Method", eidas.CMBearer)
	scd := scf.CreateElement("saml2:SubjectConfirmationData")
	scd.CreateAttr("InResponseTo", s.InResponseTo)
	scd.CreateAttr("NotOnOrAfter", until)
	scd.CreateAttr("Recipient", s.Recipient)
	cond := a.CreateElement("saml2:Conditions")
	cond.CreateAttr("NotBefore", samlTime(now))
	cond.CreateAttr("NotOnOrAfter", until)
	cond.CreateElement("saml2:AudienceRestriction").CreateElement("saml2:Audience").SetText(s.Audience)
	as := a.CreateElement("saml2:AuthnStatement")
	as.CreateAttr("AuthnInstant", samlTime(now))
	as.CreateElement("saml2:AuthnContext").CreateElement("saml2:AuthnContextClassRef").SetText(s.LoAURI)

	ast := a.CreateElement("saml2:AttributeStatement")
	add := func(name, friendly, typ string, values ...[2]string) {
		if s.Released != nil {
			if _, ok := s.Released[name]; !ok {
				return
			}
		}
		at := ast.CreateElement("saml2:Attribute")
		at.CreateAttr("FriendlyName", friendly)
		at.CreateAttr("Name", name)
		at.CreateAttr("NameFormat", eidas.AttrNameFormatURI)
		for _, v := range values {
			av := at.CreateElement("saml2:AttributeValue")
			av.CreateAttr("xsi:type", "eidas-natural:"+typ)
			if v[1] != "" {
				av.CreateAttr("eidas-natural:LatinScript", v[1])
			}
			av.SetText(v[0])
		}
	}
	one := func(v string) [2]string { return [2]string{v, ""} }
	add(eidas.AttrPersonIdentifier, "PersonIdentifier", "PersonIdentifierType", one(pid))
	// The original script first, the transliteration after it: the SP
	// must pick by LatinScript, not by position.
	fam := [][2]string{one(p.FamilyName)}
	if p.FamilyNameNative != "" {
		fam = [][2]string{{p.FamilyNameNative, "false"}, one(p.FamilyName)}
	}
	add(eidas.AttrFamilyName, "FamilyName", "CurrentFamilyNameType", fam...)
	first := [][2]string{one(p.FirstName)}
	if p.FirstNameNative != "" {
		first = [][2]string{{p.FirstNameNative, "false"}, one(p.FirstName)}
	}
	add(eidas.AttrFirstName, "FirstName", "CurrentGivenNameType", first...)
	add(eidas.AttrDateOfBirth, "DateOfBirth", "DateOfBirthType", one(p.DateOfBirth))
	if p.BirthName != "" {
		add(eidas.AttrBirthName, "BirthName", "BirthNameType", one(p.BirthName))
	}
	if p.PlaceOfBirth != "" {
		add(eidas.AttrPlaceOfBirth, "PlaceOfBirth", "PlaceOfBirthType", one(p.PlaceOfBirth))
	}
	if p.Gender != "" {
		add(eidas.AttrGender, "Gender", "GenderType", one(p.Gender))
	}
	if p.Address != nil {
		add(eidas.AttrCurrentAddress, "CurrentAddress", "CurrentAddressType", one(eidas.EncodeCurrentAddress(p.Address)))
	}
	if s.SignAssertion {
		if err := (&xmlsig.Signer{Key: n.Key, Certificate: n.Cert, Algorithm: n.Algorithm}).Sign(a); err != nil {
			return nil, err
		}
	}
	if s.TamperAssertion != nil {
		s.TamperAssertion(a)
	}
	return a, nil
}

// Metadata is the node's signed metadata (IDPSSODescriptor with an
// HTTP-POST SingleSignOnService, its signing certificate, eidas:NodeCountry).
func (n *Node) Metadata(validity time.Duration) ([]byte, error) {
	doc := etree.NewDocument()
	doc.CreateProcInst("xml", `version="1.0" encoding="UTF-8"`)
	ed := doc.CreateElement("md:EntityDescriptor")
	ed.CreateAttr("xmlns:md", eidas.NSMD)
	ed.CreateAttr("xmlns:ds", xmlsig.NSDSig)
	ed.CreateAttr("ID", newID())
	ed.CreateAttr("entityID", n.EntityID)
	ed.CreateAttr("validUntil", samlTime(n.Now().Add(validity)))
	ext := ed.CreateElement("md:Extensions")
	nc := ext.CreateElement("eidas:NodeCountry")
	nc.CreateAttr("xmlns:eidas", eidas.NSEIDAS)
	nc.SetText(n.Country)
	idp := ed.CreateElement("md:IDPSSODescriptor")
	idp.CreateAttr("WantAuthnRequestsSigned", "true")
	idp.CreateAttr("protocolSupportEnumeration", eidas.NSSAMLP)
	kd := idp.CreateElement("md:KeyDescriptor")
	kd.CreateAttr("use", "signing")
	kd.CreateElement("ds:KeyInfo").CreateElement("ds:X509Data").CreateElement("ds:X509Certificate").
		SetText(base64.StdEncoding.EncodeToString(n.Cert.Raw))
	for _, f := range []string{eidas.NameIDPersistent, eidas.NameIDTransient, eidas.NameIDUnspecified} {
		idp.CreateElement("md:NameIDFormat").SetText(f)
	}
	sso := idp.CreateElement("md:SingleSignOnService")
	sso.CreateAttr("Binding", eidas.BindingPOST)
	sso.CreateAttr("Location", n.SSOURL)
	if err := (&xmlsig.Signer{Key: n.Key, Certificate: n.Cert, Algorithm: n.Algorithm}).Sign(ed); err != nil {
		return nil, err
	}
	return doc.WriteToBytes()
}

// released reports whether the request asked for attribute name.
func (r *Request) released(name string) bool {
	_, ok := r.Attributes[name]
	return ok
}
