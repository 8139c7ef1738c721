// Package wsse signs and verifies SOAP 1.1 messages with WS-Security as the
// BSI TR-03130 eID-Interface asks for (TR-03130-1 §3, the WS-SecurityPolicy
// of its WSDL): an asymmetric binding with X.509 tokens referenced by issuer
// and serial number (RequireIssuerSerialReference, IncludeToken/Never,
// WssX509V3Token10) and the algorithm suite Basic256Sha256, that is
// RSA-SHA256 signatures over SHA-256 digests with exclusive XML
// canonicalisation. The signature covers the SOAP Body and a wsu:Timestamp.
//
// Verification trusts only the configured certificates (never a key the
// message brings along) and hands back only the element the signature's
// reference resolved to: the one Body child of the Envelope. Unsigned
// messages, unknown algorithms or transforms, references to anything but
// the Body and the Timestamp, duplicate IDs, several Security headers or
// Signatures, and a document type declaration are refused, which closes the
// XML signature wrapping attacks (SECURITY.md §2).
package wsse

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"time"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
	"github.com/russellhaering/goxmldsig/etreeutils"
)

// Namespaces and algorithm identifiers.
const (
	NSSOAP = "http://schemas.xmlsoap.org/soap/envelope/"
	NSWSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
	NSWSU  = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
	NSDS   = "http://www.w3.org/2000/09/xmldsig#"

	AlgExcC14N   = "http://www.w3.org/2001/10/xml-exc-c14n#"
	AlgRSASHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
	AlgSHA256    = "http://www.w3.org/2001/04/xmlenc#sha256"
)

// MaxMessage bounds a SOAP message this package reads.
const MaxMessage = 1 << 20

// MinRSABits is the smallest RSA key accepted for signing or verifying.
// TR-03116-4 asks for 3000 bits for new keys; 2048 is still met in the
// field, so it is the floor here and the simulator issues 3072.
const MinRSABits = 2048

var (
	// ErrUnsigned: the message carries no WS-Security signature.
	ErrUnsigned = errors.New("wsse: message is not signed")
	// ErrBadSignature: the signature or a digest does not verify, or the
	// signing certificate is not a trusted one.
	ErrBadSignature = errors.New("wsse: signature does not verify")
	// ErrMalformed: the message is not a SOAP envelope of the expected shape.
	ErrMalformed = errors.New("wsse: malformed message")
	// ErrExpired: the signed timestamp is outside its validity window.
	ErrExpired = errors.New("wsse: message timestamp is not current")
)

// Signer signs outgoing messages.
type Signer struct {
	Key  crypto.Signer     // an RSA key (Basic256Sha256)
	Cert *x509.Certificate // its certificate, referenced by issuer and serial
	// TTL is the lifetime written into wsu:Timestamp (default 5 minutes).
	TTL  time.Duration
	Now  func() time.Time
	Rand io.Reader
	// siPrefixes is an InclusiveNamespaces PrefixList for SignedInfo
	// (tests: the form Apache WSS4J sends).
	siPrefixes string
}

// NewSigner checks the key and certificate.
func NewSigner(key crypto.Signer, cert *x509.Certificate, now func() time.Time) (*Signer, error) {
	pub, ok := key.Public().(*rsa.PublicKey)
	if !ok {
		return nil, errors.New("wsse: Basic256Sha256 needs an RSA signing key")
	}
	if pub.N.BitLen() < MinRSABits {
		return nil, fmt.Errorf("wsse: RSA key of %d bits is below %d", pub.N.BitLen(), MinRSABits)
	}
	if cp, ok := cert.PublicKey.(*rsa.PublicKey); !ok || !cp.Equal(pub) {
		return nil, errors.New("wsse: the certificate does not belong to the signing key")
	}
	if now == nil {
		now = time.Now
	}
	return &Signer{Key: key, Cert: cert, Now: now, Rand: rand.Reader}, nil
}

// Envelope wraps payload (the Body's one child, e.g. eid:useIDRequest) in
// a SOAP 1.1 envelope with a signed WS-Security header and serialises it.
func (s *Signer) Envelope(payload *etree.Element) ([]byte, error) {
	ttl := s.TTL
	if ttl <= 0 {
		ttl = 5 * time.Minute
	}
	rnd := s.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	idb := make([]byte, 12)
	if _, err := io.ReadFull(rnd, idb); err != nil {
		return nil, err
	}
	suffix := hex.EncodeToString(idb)
	bodyID, tsID := "Body-"+suffix, "TS-"+suffix

	doc := etree.NewDocument()
	env := doc.CreateElement("soapenv:Envelope")
	env.CreateAttr("xmlns:soapenv", NSSOAP)
	hdr := env.CreateElement("soapenv:Header")
	sec := hdr.CreateElement("wsse:Security")
	sec.CreateAttr("xmlns:wsse", NSWSSE)
	sec.CreateAttr("xmlns:wsu", NSWSU)
	sec.CreateAttr("soapenv:mustUnderstand", "1")
	ts := sec.CreateElement("wsu:Timestamp")
	ts.CreateAttr("wsu:Id", tsID)
	now := s.Now().UTC()
	ts.CreateElement("wsu:Created").SetText(now.Format("2006-01-02T15:04:05.000Z"))
	ts.CreateElement("wsu:Expires").SetText(now.Add(ttl).Format("2006-01-02T15:04:05.000Z"))
	body := env.CreateElement("soapenv:Body")
	body.CreateAttr("xmlns:wsu", NSWSU)
	body.CreateAttr("wsu:Id", bodyID)
	body.AddChild(payload.Copy())

	sig := etree.NewElement("ds:Signature")
	sig.CreateAttr("xmlns:ds", NSDS)
	si := sig.CreateElement("ds:SignedInfo")
	cm := si.CreateElement("ds:CanonicalizationMethod")
	cm.CreateAttr("Algorithm", AlgExcC14N)
	if s.siPrefixes != "" {
		in := cm.CreateElement("ec:InclusiveNamespaces")
		in.CreateAttr("xmlns:ec", AlgExcC14N)
		in.CreateAttr("PrefixList", s.siPrefixes)
	}
	si.CreateElement("ds:SignatureMethod").CreateAttr("Algorithm", AlgRSASHA256)
	for _, ref := range []struct {
		id string
		el *etree.Element
	}{{tsID, ts}, {bodyID, body}} {
		c, err := canonical(ref.el)
		if err != nil {
			return nil, err
		}
		d := sha256.Sum256(c)
		r := si.CreateElement("ds:Reference")
		r.CreateAttr("URI", "#"+ref.id)
		r.CreateElement("ds:Transforms").CreateElement("ds:Transform").CreateAttr("Algorithm", AlgExcC14N)
		r.CreateElement("ds:DigestMethod").CreateAttr("Algorithm", AlgSHA256)
		r.CreateElement("ds:DigestValue").SetText(base64.StdEncoding.EncodeToString(d[:]))
	}
	// The signature sits in the Security header; SignedInfo is
	// canonicalised in that final place.
	sec.AddChild(sig)
	c, err := canonicalWith(si, s.siPrefixes)
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256(c)
	sv, err := s.Key.Sign(rnd, h[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("wsse: sign: %w", err)
	}
	sig.CreateElement("ds:SignatureValue").SetText(base64.StdEncoding.EncodeToString(sv))
	ki := sig.CreateElement("ds:KeyInfo")
	str := ki.CreateElement("wsse:SecurityTokenReference")
	is := str.CreateElement("ds:X509Data").CreateElement("ds:X509IssuerSerial")
	is.CreateElement("ds:X509IssuerName").SetText(s.Cert.Issuer.String())
	is.CreateElement("ds:X509SerialNumber").SetText(s.Cert.SerialNumber.String())

	doc.WriteSettings = etree.WriteSettings{CanonicalEndTags: true, CanonicalText: true, CanonicalAttrVal: true}
	var buf bytes.Buffer
	buf.WriteString(`<?xml version="1.0" encoding="UTF-8"?>`)
	if _, err := doc.WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// canonical is the exclusive canonical form (without comments) of el with
// the namespaces in scope at its place in the document.
func canonical(el *etree.Element) ([]byte, error) { return canonicalWith(el, "") }

// canonicalWith is canonical with an InclusiveNamespaces prefix list.
func canonicalWith(el *etree.Element, prefixes string) ([]byte, error) {
	ctx, err := etreeutils.NSBuildParentContext(el)
	if err != nil {
		return nil, err
	}
	det, err := etreeutils.NSDetatch(ctx, el)
	if err != nil {
		return nil, err
	}
	return dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList(prefixes).Canonicalize(det)
}

// Verifier checks incoming messages against trusted certificates.
type Verifier struct {
	// Certs are the peer's signing certificates (several during a key
	// change). Nothing else is trusted.
	Certs []*x509.Certificate
	Now   func() time.Time
	// Skew is the clock tolerance for the timestamp (default 2 minutes).
	Skew time.Duration
	// RequireTimestamp refuses messages without a signed wsu:Timestamp.
	RequireTimestamp bool
	// MaxAge bounds Expires-Created and the age of Created (default 15m).
	MaxAge time.Duration
}

// Verified is a message whose signature held.
type Verified struct {
	// Payload is a detached copy of the Body's one element child, with
	// the namespaces in scope declared on it.
	Payload *etree.Element
	// Canonical is the exclusive canonical form of Payload: parse this,
	// nothing else (the bytes the digest covered).
	Canonical []byte
	// Created and Expires of the signed timestamp (zero without one).
	Created, Expires time.Time
	// SignatureValue, for one-time-use checks of the whole answer.
	SignatureValue []byte
	// Cert is the trusted certificate that verified.
	Cert *x509.Certificate
}

// Verify parses raw, checks its WS-Security signature and returns the
// signed payload.
func (v *Verifier) Verify(raw []byte) (*Verified, error) {
	if len(raw) > MaxMessage {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrMalformed, MaxMessage)
	}
	if bytes.Contains(bytes.ToUpper(raw), []byte("<!DOCTYPE")) || bytes.Contains(raw, []byte("<!ENTITY")) {
		return nil, fmt.Errorf("%w: document type declarations are not allowed", ErrMalformed)
	}
	doc := etree.NewDocument()
	doc.ReadSettings = etree.ReadSettings{}
	if err := doc.ReadFromBytes(raw); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	env := doc.Root()
	if env == nil || env.Tag != "Envelope" || env.NamespaceURI() != NSSOAP {
		return nil, fmt.Errorf("%w: no SOAP 1.1 Envelope", ErrMalformed)
	}
	var header, body *etree.Element
	for i, c := range env.ChildElements() {
		switch {
		case c.NamespaceURI() == NSSOAP && c.Tag == "Header" && header == nil && body == nil && i == 0:
			header = c
		case c.NamespaceURI() == NSSOAP && c.Tag == "Body" && body == nil:
			body = c
		default:
			return nil, fmt.Errorf("%w: unexpected %s in the Envelope", ErrMalformed, c.FullTag())
		}
	}
	if body == nil {
		return nil, fmt.Errorf("%w: no Body", ErrMalformed)
	}
	kids := body.ChildElements()
	if len(kids) != 1 {
		return nil, fmt.Errorf("%w: the Body must hold exactly one element", ErrMalformed)
	}
	if header == nil {
		return nil, ErrUnsigned
	}
	var sec *etree.Element
	for _, c := range header.ChildElements() {
		if c.NamespaceURI() == NSWSSE && c.Tag == "Security" {
			if sec != nil {
				return nil, fmt.Errorf("%w: several Security headers", ErrMalformed)
			}
			sec = c
		}
	}
	if sec == nil {
		return nil, ErrUnsigned
	}
	var sig, ts *etree.Element
	for _, c := range sec.ChildElements() {
		switch {
		case c.NamespaceURI() == NSDS && c.Tag == "Signature":
			if sig != nil {
				return nil, fmt.Errorf("%w: several signatures", ErrMalformed)
			}
			sig = c
		case c.NamespaceURI() == NSWSU && c.Tag == "Timestamp":
			if ts != nil {
				return nil, fmt.Errorf("%w: several timestamps", ErrMalformed)
			}
			ts = c
		}
	}
	if sig == nil {
		return nil, ErrUnsigned
	}
	if ts == nil && v.RequireTimestamp {
		return nil, fmt.Errorf("%w: no timestamp", ErrMalformed)
	}
	ids, err := collectIDs(env)
	if err != nil {
		return nil, err
	}
	bodyID := wsuID(body)
	if bodyID == "" || ids[bodyID] != body {
		return nil, fmt.Errorf("%w: the Body has no unique wsu:Id", ErrBadSignature)
	}
	tsID := ""
	if ts != nil {
		if tsID = wsuID(ts); tsID == "" || ids[tsID] != ts {
			return nil, fmt.Errorf("%w: the Timestamp has no unique wsu:Id", ErrBadSignature)
		}
	}

	si, sv, cert, err := v.checkSignature(sig)
	if err != nil {
		return nil, err
	}
	// Each Reference must point at the Body or the Timestamp, both must
	// be covered, and every digest must hold.
	covered := map[*etree.Element]bool{}
	for _, ref := range si.ChildElements() {
		if ref.Tag != "Reference" || ref.NamespaceURI() != NSDS {
			continue
		}
		uri := ref.SelectAttrValue("URI", "")
		if !strings.HasPrefix(uri, "#") {
			return nil, fmt.Errorf("%w: reference %q is not to an element of the message", ErrBadSignature, uri)
		}
		target := ids[uri[1:]]
		if target == nil || (target != body && target != ts) {
			return nil, fmt.Errorf("%w: reference %q is neither the Body nor the Timestamp", ErrBadSignature, uri)
		}
		if covered[target] {
			return nil, fmt.Errorf("%w: element referenced twice", ErrBadSignature)
		}
		if err := checkReference(ref, target); err != nil {
			return nil, err
		}
		covered[target] = true
	}
	if !covered[body] {
		return nil, fmt.Errorf("%w: the Body is not signed", ErrBadSignature)
	}
	if ts != nil && !covered[ts] {
		return nil, fmt.Errorf("%w: the Timestamp is not signed", ErrBadSignature)
	}
	out := &Verified{SignatureValue: sv, Cert: cert}
	if ts != nil {
		if out.Created, out.Expires, err = v.checkTimestamp(ts); err != nil {
			return nil, err
		}
	}
	ctx, err := etreeutils.NSBuildParentContext(kids[0])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if out.Payload, err = etreeutils.NSDetatch(ctx, kids[0]); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if out.Canonical, err = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("").Canonicalize(out.Payload.Copy()); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return out, nil
}

// checkSignature verifies SignedInfo with the trusted certificate named by
// the issuer-serial reference; it returns SignedInfo, the signature value
// and the certificate.
func (v *Verifier) checkSignature(sig *etree.Element) (*etree.Element, []byte, *x509.Certificate, error) {
	var si, svEl, ki *etree.Element
	for _, c := range sig.ChildElements() {
		if c.NamespaceURI() != NSDS {
			return nil, nil, nil, fmt.Errorf("%w: unexpected %s in the Signature", ErrMalformed, c.FullTag())
		}
		switch c.Tag {
		case "SignedInfo":
			if si != nil {
				return nil, nil, nil, fmt.Errorf("%w: several SignedInfo", ErrMalformed)
			}
			si = c
		case "SignatureValue":
			if svEl != nil {
				return nil, nil, nil, fmt.Errorf("%w: several SignatureValue", ErrMalformed)
			}
			svEl = c
		case "KeyInfo":
			if ki != nil {
				return nil, nil, nil, fmt.Errorf("%w: several KeyInfo", ErrMalformed)
			}
			ki = c
		default:
			// ds:Object and the like could carry a wrapped copy: refuse.
			return nil, nil, nil, fmt.Errorf("%w: unexpected ds:%s in the Signature", ErrMalformed, c.Tag)
		}
	}
	if si == nil || svEl == nil || ki == nil {
		return nil, nil, nil, fmt.Errorf("%w: incomplete Signature", ErrBadSignature)
	}
	cm := child(si, NSDS, "CanonicalizationMethod")
	sm := child(si, NSDS, "SignatureMethod")
	if cm == nil || cm.SelectAttrValue("Algorithm", "") != AlgExcC14N {
		return nil, nil, nil, fmt.Errorf("%w: canonicalisation must be exclusive c14n", ErrBadSignature)
	}
	// Apache WSS4J and others name the prefixes to keep (e.g. "soap").
	siPrefixes := ""
	for _, c := range cm.ChildElements() {
		if c.Tag != "InclusiveNamespaces" || c.NamespaceURI() != AlgExcC14N {
			return nil, nil, nil, fmt.Errorf("%w: unexpected %s in CanonicalizationMethod", ErrBadSignature, c.FullTag())
		}
		siPrefixes = c.SelectAttrValue("PrefixList", "")
	}
	if sm == nil || sm.SelectAttrValue("Algorithm", "") != AlgRSASHA256 {
		return nil, nil, nil, fmt.Errorf("%w: signature method must be rsa-sha256 (Basic256Sha256)", ErrBadSignature)
	}
	cert, err := v.certificate(ki)
	if err != nil {
		return nil, nil, nil, err
	}
	sv, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(svEl.Text()), ""))
	if err != nil || len(sv) == 0 {
		return nil, nil, nil, fmt.Errorf("%w: signature value is not base64", ErrBadSignature)
	}
	c, err := canonicalWith(si, siPrefixes)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	h := sha256.Sum256(c)
	pub := cert.PublicKey.(*rsa.PublicKey)
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, h[:], sv); err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	return si, sv, cert, nil
}

// certificate resolves the KeyInfo's issuer-serial reference to one of the
// trusted certificates.
func (v *Verifier) certificate(ki *etree.Element) (*x509.Certificate, error) {
	str := child(ki, NSWSSE, "SecurityTokenReference")
	if str == nil {
		return nil, fmt.Errorf("%w: KeyInfo holds no SecurityTokenReference", ErrBadSignature)
	}
	xd := child(str, NSDS, "X509Data")
	var is *etree.Element
	if xd != nil {
		is = child(xd, NSDS, "X509IssuerSerial")
	}
	if is == nil {
		return nil, fmt.Errorf("%w: the token is not referenced by issuer and serial", ErrBadSignature)
	}
	in, sn := child(is, NSDS, "X509IssuerName"), child(is, NSDS, "X509SerialNumber")
	if in == nil || sn == nil {
		return nil, fmt.Errorf("%w: incomplete X509IssuerSerial", ErrBadSignature)
	}
	serial, ok := new(big.Int).SetString(strings.TrimSpace(sn.Text()), 10)
	if !ok {
		return nil, fmt.Errorf("%w: serial number is not decimal", ErrBadSignature)
	}
	issuer := NormalizeDN(in.Text())
	for _, c := range v.Certs {
		if c.SerialNumber.Cmp(serial) == 0 && NormalizeDN(c.Issuer.String()) == issuer {
			pub, ok := c.PublicKey.(*rsa.PublicKey)
			if !ok || pub.N.BitLen() < MinRSABits {
				return nil, fmt.Errorf("%w: the trusted certificate has no usable RSA key", ErrBadSignature)
			}
			return c, nil
		}
	}
	return nil, fmt.Errorf("%w: signed with a certificate that is not trusted (issuer %q, serial %s)", ErrBadSignature, in.Text(), serial)
}

// NormalizeDN makes RFC 2253 distinguished names comparable: no spaces
// around separators, attribute types in upper case.
func NormalizeDN(dn string) string {
	parts := splitDN(dn)
	for i, p := range parts {
		k, val, ok := strings.Cut(p, "=")
		if !ok {
			parts[i] = strings.TrimSpace(p)
			continue
		}
		parts[i] = strings.ToUpper(strings.TrimSpace(k)) + "=" + strings.TrimSpace(val)
	}
	return strings.Join(parts, ",")
}

// splitDN splits at unescaped commas.
func splitDN(dn string) []string {
	var out []string
	var cur strings.Builder
	esc := false
	for _, r := range dn {
		switch {
		case esc:
			cur.WriteRune(r)
			esc = false
		case r == '\\':
			cur.WriteRune(r)
			esc = true
		case r == ',' || r == ';':
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteRune(r)
		}
	}
	return append(out, cur.String())
}

// checkReference verifies one Reference's transforms and digest.
func checkReference(ref, target *etree.Element) error {
	var transforms *etree.Element
	var dm, dv *etree.Element
	for _, c := range ref.ChildElements() {
		if c.NamespaceURI() != NSDS {
			return fmt.Errorf("%w: unexpected %s in a Reference", ErrMalformed, c.FullTag())
		}
		switch c.Tag {
		case "Transforms":
			transforms = c
		case "DigestMethod":
			dm = c
		case "DigestValue":
			dv = c
		default:
			return fmt.Errorf("%w: unexpected ds:%s in a Reference", ErrMalformed, c.Tag)
		}
	}
	prefixes := ""
	if transforms != nil {
		ts := transforms.ChildElements()
		if len(ts) != 1 || ts[0].Tag != "Transform" || ts[0].SelectAttrValue("Algorithm", "") != AlgExcC14N {
			return fmt.Errorf("%w: the only transform allowed is exclusive c14n", ErrBadSignature)
		}
		for _, c := range ts[0].ChildElements() {
			if c.Tag == "InclusiveNamespaces" && c.NamespaceURI() == AlgExcC14N {
				prefixes = c.SelectAttrValue("PrefixList", "")
			} else {
				return fmt.Errorf("%w: unexpected %s in a Transform", ErrBadSignature, c.FullTag())
			}
		}
	}
	if dm == nil || dm.SelectAttrValue("Algorithm", "") != AlgSHA256 {
		return fmt.Errorf("%w: digest must be SHA-256", ErrBadSignature)
	}
	if dv == nil {
		return fmt.Errorf("%w: no DigestValue", ErrBadSignature)
	}
	want, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(dv.Text()), ""))
	if err != nil {
		return fmt.Errorf("%w: digest is not base64", ErrBadSignature)
	}
	ctx, err := etreeutils.NSBuildParentContext(target)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	det, err := etreeutils.NSDetatch(ctx, target)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	c, err := dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList(prefixes).Canonicalize(det)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	got := sha256.Sum256(c)
	if !bytes.Equal(got[:], want) {
		return fmt.Errorf("%w: digest of #%s does not match", ErrBadSignature, wsuID(target))
	}
	return nil
}

func (v *Verifier) checkTimestamp(ts *etree.Element) (time.Time, time.Time, error) {
	skew, maxAge := v.Skew, v.MaxAge
	if skew <= 0 {
		skew = 2 * time.Minute
	}
	if maxAge <= 0 {
		maxAge = 15 * time.Minute
	}
	ce, ee := child(ts, NSWSU, "Created"), child(ts, NSWSU, "Expires")
	if ce == nil || ee == nil {
		return time.Time{}, time.Time{}, fmt.Errorf("%w: the Timestamp needs Created and Expires", ErrMalformed)
	}
	created, err1 := time.Parse(time.RFC3339Nano, strings.TrimSpace(ce.Text()))
	expires, err2 := time.Parse(time.RFC3339Nano, strings.TrimSpace(ee.Text()))
	if err1 != nil || err2 != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("%w: unreadable Timestamp", ErrMalformed)
	}
	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}
	switch {
	case !expires.After(created) || expires.Sub(created) > maxAge:
		return time.Time{}, time.Time{}, fmt.Errorf("%w: validity %s–%s", ErrExpired, created, expires)
	case created.After(now.Add(skew)):
		return time.Time{}, time.Time{}, fmt.Errorf("%w: created in the future (%s)", ErrExpired, created)
	case !expires.After(now.Add(-skew)):
		return time.Time{}, time.Time{}, fmt.Errorf("%w: expired at %s", ErrExpired, expires)
	}
	return created, expires, nil
}

// collectIDs maps every ID-like attribute value to its element and
// refuses duplicates (a wrapped copy carries the same ID).
func collectIDs(root *etree.Element) (map[string]*etree.Element, error) {
	ids := map[string]*etree.Element{}
	var walk func(el *etree.Element, depth int) error
	walk = func(el *etree.Element, depth int) error {
		if depth > 64 {
			return fmt.Errorf("%w: nested too deeply", ErrMalformed)
		}
		for _, a := range el.Attr {
			if a.Key == "Id" || a.Key == "ID" || a.Key == "id" {
				if _, dup := ids[a.Value]; dup {
					return fmt.Errorf("%w: duplicate ID %q", ErrBadSignature, a.Value)
				}
				ids[a.Value] = el
			}
		}
		for _, c := range el.ChildElements() {
			if err := walk(c, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return ids, walk(root, 0)
}

// wsuID is the element's wsu:Id.
func wsuID(el *etree.Element) string {
	for _, a := range el.Attr {
		if a.Key == "Id" && a.NamespaceURI() == NSWSU {
			return a.Value
		}
	}
	return ""
}

// child returns the one child element with namespace ns and tag, or nil
// when there is none or more than one.
func child(el *etree.Element, ns, tag string) *etree.Element {
	var found *etree.Element
	for _, c := range el.ChildElements() {
		if c.Tag == tag && c.NamespaceURI() == ns {
			if found != nil {
				return nil
			}
			found = c
		}
	}
	return found
}
