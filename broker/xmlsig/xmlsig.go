// Package xmlsig signs and verifies enveloped XML signatures (W3C XML
// Signature Syntax and Processing 1.1) and decrypts and encrypts XML
// Encryption 1.1 elements, to the narrow profile that SAML, and the eIDAS
// SAML profile in particular, needs:
//
//   - one ds:Signature, a direct child of the signed element, with one
//     Reference to that element by its ID ("#id");
//   - transforms enveloped-signature and exclusive c14n (without comments),
//     CanonicalizationMethod exclusive c14n;
//   - SignatureMethod RSA-SHA256, RSASSA-PSS with SHA-256 and MGF1-SHA-256
//     (RFC 6931 §2.3.10, "sha256-rsa-MGF1", as eIDAS nodes and the German
//     eIDAS Middleware use it; goxmldsig lacks it), ECDSA with SHA-256/384/512
//     (RFC 6931 §2.3.6, r||s encoding), digests SHA-256/384/512;
//   - the key only from the certificates the caller trusts: a KeyInfo in the
//     message is never used to choose or build a key.
//
// Verify returns only the element the signature covers, rebuilt from the
// canonical bytes that were digested, so that nothing outside the signed
// bytes (a wrapped copy, a comment splitting a text node) can reach the
// caller. Canonicalization uses goxmldsig's etree-based exclusive c14n.
package xmlsig

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/beevik/etree"
)

// Namespaces and algorithm identifiers (XML-DSig 1.1, RFC 6931, XML Encryption 1.1).
const (
	NSDSig    = "http://www.w3.org/2000/09/xmldsig#"
	NSDSig11  = "http://www.w3.org/2009/xmldsig11#"
	NSXMLEnc  = "http://www.w3.org/2001/04/xmlenc#"
	NSXMLEnc1 = "http://www.w3.org/2009/xmlenc11#"

	AlgExcC14N            = "http://www.w3.org/2001/10/xml-exc-c14n#"
	AlgExcC14NComments    = "http://www.w3.org/2001/10/xml-exc-c14n#WithComments"
	AlgEnvelopedSignature = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"

	AlgSHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
	AlgSHA384 = "http://www.w3.org/2001/04/xmldsig-more#sha384"
	AlgSHA512 = "http://www.w3.org/2001/04/xmlenc#sha512"
	AlgSHA1   = "http://www.w3.org/2000/09/xmldsig#sha1"

	AlgRSASHA256    = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
	AlgRSAPSSSHA256 = "http://www.w3.org/2007/05/xmldsig-more#sha256-rsa-MGF1"
	AlgECDSASHA256  = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
	AlgECDSASHA384  = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384"
	AlgECDSASHA512  = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512"
)

// MaxDocumentSize bounds what Parse accepts.
const MaxDocumentSize = 1 << 20

// maxDepth bounds element nesting in parsed documents.
const maxDepth = 64

var (
	// ErrNoSignature: the element has no ds:Signature child.
	ErrNoSignature = errors.New("xmlsig: element is not signed")
	// ErrInvalid: a signature is present but does not verify, or does not
	// have the shape this package accepts. The wrapped text says why.
	ErrInvalid = errors.New("xmlsig: invalid signature")
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Parse reads an XML document from outside: at most MaxDocumentSize
// bytes, no DTD or other directive (no entities), no processing
// instruction other than the XML declaration, no duplicate attributes, at
// most 64 levels of nesting, exactly one root element.
func Parse(data []byte) (*etree.Document, error) {
	if len(data) > MaxDocumentSize {
		return nil, fmt.Errorf("xmlsig: document larger than %d bytes", MaxDocumentSize)
	}
	if bytes.Contains(data, []byte("<!DOCTYPE")) || bytes.Contains(data, []byte("<!ENTITY")) {
		return nil, errors.New("xmlsig: DTDs are not accepted")
	}
	doc := etree.NewDocument()
	doc.ReadSettings = etree.ReadSettings{PreserveDuplicateAttrs: true, ValidateInput: false}
	if err := doc.ReadFromBytes(data); err != nil {
		return nil, fmt.Errorf("xmlsig: parse: %w", err)
	}
	roots := 0
	for _, t := range doc.Child {
		switch t := t.(type) {
		case *etree.Element:
			roots++
		case *etree.Directive:
			return nil, errors.New("xmlsig: directives are not accepted")
		case *etree.ProcInst:
			if t.Target != "xml" {
				return nil, errors.New("xmlsig: processing instructions are not accepted")
			}
		case *etree.CharData:
			if !t.IsWhitespace() {
				return nil, errors.New("xmlsig: text outside the root element")
			}
		}
	}
	if roots != 1 {
		return nil, errors.New("xmlsig: want exactly one root element")
	}
	if err := checkTree(doc.Root(), 1); err != nil {
		return nil, err
	}
	return doc, nil
}

func checkTree(el *etree.Element, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("xmlsig: nesting deeper than %d", maxDepth)
	}
	seen := make(map[string]bool, len(el.Attr))
	for _, a := range el.Attr {
		k := a.Space + ":" + a.Key
		if seen[k] {
			return fmt.Errorf("xmlsig: duplicate attribute %s on %s", a.FullKey(), el.FullTag())
		}
		seen[k] = true
	}
	for _, t := range el.Child {
		switch t := t.(type) {
		case *etree.Element:
			if err := checkTree(t, depth+1); err != nil {
				return err
			}
		case *etree.Directive:
			return errors.New("xmlsig: directives are not accepted")
		case *etree.ProcInst:
			return errors.New("xmlsig: processing instructions are not accepted")
		}
	}
	return nil
}

// Text returns the whole character content of el (all text nodes, in
// order), trimmed of surrounding white space: never only the first node,
// which a comment could have split off (CVE-2017-11427 and relatives).
func Text(el *etree.Element) string {
	if el == nil {
		return ""
	}
	var b bytes.Buffer
	for _, t := range el.Child {
		if cd, ok := t.(*etree.CharData); ok {
			b.WriteString(cd.Data)
		}
	}
	return string(bytes.TrimSpace(b.Bytes()))
}

// Child returns the only child element of el in namespace ns with local
// name tag, nil when there is none, and an error when there are several.
func Child(el *etree.Element, ns, tag string) (*etree.Element, error) {
	var found *etree.Element
	for _, c := range el.ChildElements() {
		if c.Tag == tag && c.NamespaceURI() == ns {
			if found != nil {
				return nil, fmt.Errorf("xmlsig: more than one %s in %s", tag, el.Tag)
			}
			found = c
		}
	}
	return found, nil
}

// Children returns the child elements of el in namespace ns named tag.
func Children(el *etree.Element, ns, tag string) []*etree.Element {
	var out []*etree.Element
	for _, c := range el.ChildElements() {
		if c.Tag == tag && c.NamespaceURI() == ns {
			out = append(out, c)
		}
	}
	return out
}
