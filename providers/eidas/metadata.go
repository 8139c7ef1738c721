package eidas

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/beevik/etree"

	"github.com/trustbroker/trustbroker/broker/health"
	"github.com/trustbroker/trustbroker/broker/xmlsig"
)

// Node is what the SP needs to know about the eIDAS node (connector or
// eIDAS Middleware) it talks to.
type Node struct {
	EntityID string
	// SSOURL is the SingleSignOnService with the HTTP-POST binding.
	SSOURL string
	// Certificates sign the node's responses and assertions.
	Certificates []*x509.Certificate
	// Country is eidas:NodeCountry, when the metadata names it.
	Country string
	// ValidUntil of the metadata (zero for a configured node).
	ValidUntil time.Time
}

// NodeSource gives the current node description.
type NodeSource interface {
	Node(ctx context.Context, now time.Time) (*Node, error)
}

// StaticNode is a node configured in code (the in-process simulator).
type StaticNode struct{ N *Node }

// Node returns the configured node.
func (s StaticNode) Node(context.Context, time.Time) (*Node, error) { return s.N, nil }

// Fetcher reads a URL (the broker's HTTP client, bounded).
type Fetcher func(ctx context.Context, url string) ([]byte, error)

// MetadataSource reads the node's SAML metadata from a URL or a file,
// checks its signature against the configured signer certificates and
// its validUntil, and reads it again after Refresh. When a refresh fails,
// the last good metadata is used until its own validUntil. It is read on
// demand: by a login, or by /readyz (Ready).
type MetadataSource struct {
	URL, File string
	Signers   []*x509.Certificate
	Refresh   time.Duration
	Fetch     Fetcher

	mu      sync.Mutex
	cur     *Node
	fetched time.Time
	// lastErr is the failure of the last read (nil after a success),
	// failingSince the first failure since the last success, attempted
	// the time of the last read.
	lastErr      error
	failingSince time.Time
	attempted    time.Time
}

// metadataRetry is how long a failed read is not repeated: every login
// and every readiness probe asks for the node, and while the node's
// metadata server is down each of them would otherwise wait for a fetch
// of its own (one at a time, under the lock) before failing.
const metadataRetry = time.Minute

// Node returns the node description, reading the metadata when due.
func (m *MetadataSource) Node(ctx context.Context, now time.Time) (*Node, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cur != nil && now.Sub(m.fetched) < m.Refresh && now.Before(m.cur.ValidUntil) {
		return m.cur, nil
	}
	if m.lastErr != nil && now.Sub(m.attempted) < metadataRetry {
		return m.failed(now, m.lastErr)
	}
	m.attempted = now
	var data []byte
	var err error
	if m.File != "" {
		data, err = os.ReadFile(m.File)
	} else if m.Fetch != nil {
		data, err = m.Fetch(ctx, m.URL)
	} else {
		err = errors.New("no way to fetch the node metadata")
	}
	if err == nil {
		var n *Node
		if n, err = ParseNodeMetadata(data, m.Signers, now); err == nil {
			m.cur, m.fetched, m.lastErr, m.failingSince = n, now, nil, time.Time{}
			return n, nil
		}
	}
	m.lastErr = err
	if m.failingSince.IsZero() {
		m.failingSince = now
	}
	return m.failed(now, err)
}

// failed answers while reads fail: the last good copy until its
// validUntil, else the error.
func (m *MetadataSource) failed(now time.Time, err error) (*Node, error) {
	if m.cur != nil && now.Before(m.cur.ValidUntil) {
		return m.cur, nil
	}
	return nil, fmt.Errorf("eidas: node metadata: %w", err)
}

// Ready reads the node metadata when due, as a login would, so that a
// replica that no login reaches still loads it. It fails while there is
// no usable metadata (never read, or past its validUntil); while the last
// read failed and the last good copy is still valid it is degraded. The
// reasons carry times, never the URL.
func (m *MetadataSource) Ready(ctx context.Context, now time.Time) error {
	_, err := m.Node(ctx, now)
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case err != nil && m.cur == nil:
		return health.Failed("metadata never loaded", err)
	case err != nil:
		return health.Failed("metadata expired at "+m.cur.ValidUntil.UTC().Format(time.RFC3339), err)
	case m.lastErr != nil:
		return health.Degraded(fmt.Sprintf("refresh failing since %s; using the copy of %s",
			m.failingSince.UTC().Format(time.RFC3339), m.fetched.UTC().Format(time.RFC3339)), m.lastErr)
	}
	return nil
}

// ReadinessChecks are the provider's /readyz checks: the node's metadata
// ("eidas-metadata/{id}") when it comes from a URL or a file. The check
// is partial: without usable metadata this provider is shown as
// unavailable, but the broker stays ready. Every replica reads the same
// metadata, so failing readiness for it would take all replicas out of
// the load balancer at once, for every relying party.
func (p *Provider) ReadinessChecks() []health.Check {
	m, ok := p.s.Node.(*MetadataSource)
	if !ok {
		return nil
	}
	return []health.Check{{Name: "eidas-metadata/" + p.id, Partial: true, Run: func(ctx context.Context) error {
		return m.Ready(ctx, p.now())
	}}}
}

// ParseNodeMetadata reads the signed md:EntityDescriptor of an eIDAS node
// (as the EUMW publishes it, DOMAIN.md §1.5): the signature must verify
// with one of signers (RSASSA-PSS or ECDSA; RSA PKCS#1 v1.5 only with a
// SHA-256 digest is refused too), validUntil must lie after now, and the
// IDPSSODescriptor must offer an HTTP-POST SingleSignOnService and a
// signing certificate.
func ParseNodeMetadata(data []byte, signers []*x509.Certificate, now time.Time) (*Node, error) {
	doc, err := xmlsig.Parse(data)
	if err != nil {
		return nil, err
	}
	root := doc.Root()
	if root.Tag != "EntityDescriptor" || root.NamespaceURI() != NSMD {
		return nil, errors.New("not an md:EntityDescriptor")
	}
	v, err := xmlsig.Verify(root, xmlsig.VerifyOptions{Certificates: signers, Now: now,
		Algorithms: []string{xmlsig.AlgRSAPSSSHA256, xmlsig.AlgECDSASHA256, xmlsig.AlgECDSASHA384, xmlsig.AlgECDSASHA512}})
	if err != nil {
		return nil, fmt.Errorf("metadata signature: %w", err)
	}
	ed := v.Element
	n := &Node{EntityID: ed.SelectAttrValue("entityID", "")}
	if n.EntityID == "" {
		return nil, errors.New("metadata without entityID")
	}
	vu := ed.SelectAttrValue("validUntil", "")
	if vu == "" {
		return nil, errors.New("metadata without validUntil")
	}
	if n.ValidUntil, err = time.Parse(time.RFC3339Nano, vu); err != nil {
		return nil, fmt.Errorf("validUntil: %w", err)
	}
	if !now.Before(n.ValidUntil) {
		return nil, fmt.Errorf("metadata expired at %s", vu)
	}
	idp, err := xmlsig.Child(ed, NSMD, "IDPSSODescriptor")
	if err != nil || idp == nil {
		return nil, errors.New("metadata needs exactly one IDPSSODescriptor")
	}
	if ext, _ := xmlsig.Child(ed, NSMD, "Extensions"); ext != nil {
		if c, _ := xmlsig.Child(ext, NSEIDAS, "NodeCountry"); c != nil {
			n.Country = xmlsig.Text(c)
		}
	}
	for _, kd := range xmlsig.Children(idp, NSMD, "KeyDescriptor") {
		if use := kd.SelectAttrValue("use", ""); use != "" && use != "signing" {
			continue
		}
		for _, xc := range kd.FindElements("./KeyInfo/X509Data/X509Certificate") {
			der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(xmlsig.Text(xc)), ""))
			if err != nil {
				return nil, fmt.Errorf("signing certificate: %w", err)
			}
			c, err := x509.ParseCertificate(der)
			if err != nil {
				return nil, fmt.Errorf("signing certificate: %w", err)
			}
			n.Certificates = append(n.Certificates, c)
		}
	}
	if len(n.Certificates) == 0 {
		return nil, errors.New("metadata names no signing certificate")
	}
	for _, sso := range xmlsig.Children(idp, NSMD, "SingleSignOnService") {
		if sso.SelectAttrValue("Binding", "") == BindingPOST {
			n.SSOURL = sso.SelectAttrValue("Location", "")
			break
		}
	}
	if err := checkURL(n.SSOURL); err != nil {
		return nil, fmt.Errorf("HTTP-POST SingleSignOnService: %w", err)
	}
	return n, nil
}

// newID returns a SAML ID: an NCName with 160 random bits.
func newID() string {
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	return "_" + hex.EncodeToString(b)
}

// samlTime formats t as SAML does (UTC, milliseconds).
func samlTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// SPMetadata builds the SP's signed metadata (eIDAS SAML Message Format
// 1.2 §2.2): entityID, validUntil, extensions with eidas:SPType and the
// supported algorithms, the signing and encryption certificates with
// their methods, the NameID formats and the one HTTP-POST assertion
// consumer service.
func (p *Provider) SPMetadata(now time.Time) ([]byte, error) {
	doc := etree.NewDocument()
	doc.CreateProcInst("xml", `version="1.0" encoding="UTF-8"`)
	ed := doc.CreateElement("md:EntityDescriptor")
	ed.CreateAttr("xmlns:md", NSMD)
	ed.CreateAttr("xmlns:ds", xmlsig.NSDSig)
	ed.CreateAttr("ID", newID())
	ed.CreateAttr("entityID", p.entityID)
	ed.CreateAttr("validUntil", samlTime(now.Add(p.s.MetadataValidity)))

	ext := ed.CreateElement("md:Extensions")
	spt := ext.CreateElement("eidas:SPType")
	spt.CreateAttr("xmlns:eidas", NSEIDAS)
	spt.SetText(p.s.SPType)
	ea := ext.CreateElement("mdattr:EntityAttributes")
	ea.CreateAttr("xmlns:mdattr", NSMDAttr)
	ea.CreateAttr("xmlns:saml2", NSSAML)
	a := ea.CreateElement("saml2:Attribute")
	a.CreateAttr("Name", "http://eidas.europa.eu/entity-attributes/protocol-version")
	a.CreateAttr("NameFormat", AttrNameFormatURI)
	a.CreateElement("saml2:AttributeValue").SetText("1.2")
	dm := ext.CreateElement("alg:DigestMethod")
	dm.CreateAttr("xmlns:alg", NSAlg)
	dm.CreateAttr("Algorithm", xmlsig.AlgSHA256)
	for _, m := range []struct{ alg, min, max string }{
		{xmlsig.AlgECDSASHA256, "256", ""},
		{xmlsig.AlgRSAPSSSHA256, "3072", "4096"},
	} {
		sm := ext.CreateElement("alg:SigningMethod")
		sm.CreateAttr("xmlns:alg", NSAlg)
		sm.CreateAttr("Algorithm", m.alg)
		sm.CreateAttr("MinKeySize", m.min)
		if m.max != "" {
			sm.CreateAttr("MaxKeySize", m.max)
		}
	}

	sp := ed.CreateElement("md:SPSSODescriptor")
	sp.CreateAttr("AuthnRequestsSigned", "true")
	sp.CreateAttr("WantAssertionsSigned", "true")
	sp.CreateAttr("protocolSupportEnumeration", NSSAMLP)
	keyDescriptor(sp, "signing", p.s.SigningCert)
	enc := keyDescriptor(sp, "encryption", p.s.EncryptionCert)
	for _, alg := range []string{xmlsig.AlgAES256GCM, xmlsig.AlgAES192GCM, xmlsig.AlgAES128GCM} {
		enc.CreateElement("md:EncryptionMethod").CreateAttr("Algorithm", alg)
	}
	if _, isRSA := p.s.EncryptionCert.PublicKey.(*rsa.PublicKey); isRSA {
		m := enc.CreateElement("md:EncryptionMethod")
		m.CreateAttr("Algorithm", xmlsig.AlgRSAOAEP11)
	} else {
		enc.CreateElement("md:EncryptionMethod").CreateAttr("Algorithm", xmlsig.AlgKWAES256)
	}
	for _, f := range []string{NameIDPersistent, NameIDTransient, NameIDUnspecified} {
		sp.CreateElement("md:NameIDFormat").SetText(f)
	}
	acs := sp.CreateElement("md:AssertionConsumerService")
	acs.CreateAttr("Binding", BindingPOST)
	acs.CreateAttr("Location", p.acsURL)
	acs.CreateAttr("index", "0")
	acs.CreateAttr("isDefault", "true")

	signer := &xmlsig.Signer{Key: p.s.SigningKey, Certificate: p.s.SigningCert}
	if err := signer.Sign(ed); err != nil {
		return nil, err
	}
	return doc.WriteToBytes()
}

func keyDescriptor(parent *etree.Element, use string, cert *x509.Certificate) *etree.Element {
	kd := parent.CreateElement("md:KeyDescriptor")
	kd.CreateAttr("use", use)
	kd.CreateElement("ds:KeyInfo").CreateElement("ds:X509Data").CreateElement("ds:X509Certificate").
		SetText(base64.StdEncoding.EncodeToString(cert.Raw))
	return kd
}
