package xmlsig

import (
	_ "crypto/sha1" // SHA-1 digests of legacy connectors, only with AllowSHA1Digest

	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/beevik/etree"
	"github.com/russellhaering/goxmldsig/etreeutils"
)

// VerifyOptions say whom and what to trust.
type VerifyOptions struct {
	// Certificates whose public keys may have made the signature. The
	// message's own KeyInfo is ignored.
	Certificates []*x509.Certificate
	// Algorithms allowed as SignatureMethod; empty means every one this
	// package supports (RSA-SHA256, RSASSA-PSS-SHA256, ECDSA-SHA256/384/512).
	Algorithms []string
	// Now, when not zero, must lie within the certificate's validity.
	Now time.Time
	// IDAttribute names the ID attribute (default "ID", as in SAML).
	IDAttribute string
	// AllowSHA1Digest accepts a SHA-1 DigestMethod in the Reference (older
	// eIDAS connectors sent RSA-SHA256 signatures over SHA-1 digests). Off
	// by default; the eIDAS provider never sets it.
	AllowSHA1Digest bool
}

// Verified is the outcome of a successful verification.
type Verified struct {
	// Element is the signed element, rebuilt from the digested canonical
	// bytes (without the signature and without comments), detached.
	Element *etree.Element
	// Certificate is the trusted certificate whose key verified.
	Certificate *x509.Certificate
	// Algorithm is the SignatureMethod.
	Algorithm string
}

var supportedSignature = []string{AlgRSASHA256, AlgRSAPSSSHA256, AlgECDSASHA256, AlgECDSASHA384, AlgECDSASHA512}

func hashFor(alg string) (crypto.Hash, bool) {
	switch alg {
	case AlgRSASHA256, AlgRSAPSSSHA256, AlgECDSASHA256:
		return crypto.SHA256, true
	case AlgECDSASHA384:
		return crypto.SHA384, true
	case AlgECDSASHA512:
		return crypto.SHA512, true
	}
	return 0, false
}

func digestFor(alg string) (crypto.Hash, bool) {
	switch alg {
	case AlgSHA256:
		return crypto.SHA256, true
	case AlgSHA384:
		return crypto.SHA384, true
	case AlgSHA512:
		return crypto.SHA512, true
	}
	return 0, false
}

// HasSignature reports whether el has a ds:Signature child.
func HasSignature(el *etree.Element) bool {
	return len(Children(el, NSDSig, "Signature")) > 0
}

// Verify checks the enveloped signature that is a direct child of el and
// returns the element it covers. It fails with ErrNoSignature when el has
// no signature child and with an error wrapping ErrInvalid otherwise.
func Verify(el *etree.Element, opts VerifyOptions) (*Verified, error) {
	if el == nil {
		return nil, ErrNoSignature
	}
	idAttr := opts.IDAttribute
	if idAttr == "" {
		idAttr = "ID"
	}
	sigs := Children(el, NSDSig, "Signature")
	if len(sigs) == 0 {
		return nil, ErrNoSignature
	}
	if len(sigs) > 1 {
		return nil, invalid("more than one Signature on %s", el.Tag)
	}
	sig := sigs[0]

	// Shape: SignedInfo, SignatureValue, optional KeyInfo; nothing else
	// (no ds:Object: XSW8 hides the original there).
	kids := sig.ChildElements()
	if len(kids) < 2 || len(kids) > 3 ||
		!is(kids[0], NSDSig, "SignedInfo") || !is(kids[1], NSDSig, "SignatureValue") ||
		(len(kids) == 3 && !is(kids[2], NSDSig, "KeyInfo")) {
		return nil, invalid("Signature must hold SignedInfo, SignatureValue and at most KeyInfo")
	}
	signedInfo, sigValueEl := kids[0], kids[1]

	// SignedInfo as found, only to learn the c14n and signature methods;
	// everything else is read from the verified canonical bytes below.
	c14n, err := Child(signedInfo, NSDSig, "CanonicalizationMethod")
	if err != nil || c14n == nil {
		return nil, invalid("SignedInfo needs one CanonicalizationMethod")
	}
	if a := c14n.SelectAttrValue("Algorithm", ""); a != AlgExcC14N {
		return nil, invalid("CanonicalizationMethod %q not accepted (only exclusive c14n without comments)", a)
	}
	prefixes, err := inclusivePrefixes(c14n)
	if err != nil {
		return nil, err
	}
	sm, err := Child(signedInfo, NSDSig, "SignatureMethod")
	if err != nil || sm == nil {
		return nil, invalid("SignedInfo needs one SignatureMethod")
	}
	alg := sm.SelectAttrValue("Algorithm", "")
	allowed := opts.Algorithms
	if len(allowed) == 0 {
		allowed = supportedSignature
	}
	if !slices.Contains(allowed, alg) || !slices.Contains(supportedSignature, alg) {
		return nil, invalid("SignatureMethod %q not accepted", alg)
	}

	canonSI, err := canonicalize(signedInfo, prefixes, nil)
	if err != nil {
		return nil, invalid("canonicalize SignedInfo: %v", err)
	}
	sigValue, err := decodeBase64(Text(sigValueEl))
	if err != nil || len(sigValue) == 0 {
		return nil, invalid("SignatureValue is not base64")
	}
	var cert *x509.Certificate
	for _, c := range opts.Certificates {
		if !opts.Now.IsZero() && (opts.Now.Before(c.NotBefore) || opts.Now.After(c.NotAfter)) {
			continue
		}
		if verifyRaw(alg, c.PublicKey, canonSI, sigValue) == nil {
			cert = c
			break
		}
	}
	if cert == nil {
		return nil, invalid("SignatureValue does not verify with any trusted certificate")
	}

	// From here on only the verified SignedInfo counts.
	vdoc := etree.NewDocument()
	if err := vdoc.ReadFromBytes(canonSI); err != nil {
		return nil, invalid("re-read SignedInfo: %v", err)
	}
	vsi := vdoc.Root()
	refs := Children(vsi, NSDSig, "Reference")
	if len(refs) != 1 {
		return nil, invalid("SignedInfo must hold exactly one Reference, has %d", len(refs))
	}
	ref := refs[0]
	id := el.SelectAttrValue(idAttr, "")
	if id == "" || ref.SelectAttrValue("URI", "") != "#"+id {
		return nil, invalid("Reference URI %q does not name the signed element (ID %q)", ref.SelectAttrValue("URI", ""), id)
	}
	if n := countID(root(el), id); n != 1 {
		return nil, invalid("ID %q occurs %d times in the document", id, n)
	}
	refPrefixes, err := checkTransforms(ref)
	if err != nil {
		return nil, err
	}
	dm, err := Child(ref, NSDSig, "DigestMethod")
	if err != nil || dm == nil {
		return nil, invalid("Reference needs one DigestMethod")
	}
	dalg := dm.SelectAttrValue("Algorithm", "")
	h, ok := digestFor(dalg)
	if dalg == AlgSHA1 && opts.AllowSHA1Digest {
		h, ok = crypto.SHA1, true
	}
	if !ok {
		return nil, invalid("DigestMethod %q not accepted", dalg)
	}
	dvEl, err := Child(ref, NSDSig, "DigestValue")
	if err != nil || dvEl == nil {
		return nil, invalid("Reference needs one DigestValue")
	}
	want, err := decodeBase64(Text(dvEl))
	if err != nil || len(want) != h.Size() {
		return nil, invalid("DigestValue is malformed")
	}

	signedBytes, err := canonicalize(el, refPrefixes, sig)
	if err != nil {
		return nil, invalid("canonicalize signed element: %v", err)
	}
	d := h.New()
	d.Write(signedBytes)
	if subtle.ConstantTimeCompare(d.Sum(nil), want) != 1 {
		return nil, invalid("digest of the signed element does not match")
	}
	out := etree.NewDocument()
	if err := out.ReadFromBytes(signedBytes); err != nil {
		return nil, invalid("re-read signed element: %v", err)
	}
	return &Verified{Element: out.Root(), Certificate: cert, Algorithm: alg}, nil
}

func is(el *etree.Element, ns, tag string) bool {
	return el.Tag == tag && el.NamespaceURI() == ns
}

// inclusivePrefixes reads an optional ec:InclusiveNamespaces PrefixList
// child of a c14n method or transform.
func inclusivePrefixes(method *etree.Element) (string, error) {
	kids := method.ChildElements()
	switch {
	case len(kids) == 0:
		return "", nil
	case len(kids) == 1 && is(kids[0], AlgExcC14N, "InclusiveNamespaces"):
		return kids[0].SelectAttrValue("PrefixList", ""), nil
	}
	return "", invalid("unexpected content in %s", method.Tag)
}

// checkTransforms accepts exactly enveloped-signature followed by
// exclusive c14n (without comments), and returns the c14n prefix list.
func checkTransforms(ref *etree.Element) (string, error) {
	tsEl, err := Child(ref, NSDSig, "Transforms")
	if err != nil || tsEl == nil {
		return "", invalid("Reference needs Transforms (enveloped-signature, exclusive c14n)")
	}
	ts := tsEl.ChildElements()
	if len(ts) != 2 || !is(ts[0], NSDSig, "Transform") || !is(ts[1], NSDSig, "Transform") ||
		ts[0].SelectAttrValue("Algorithm", "") != AlgEnvelopedSignature ||
		ts[1].SelectAttrValue("Algorithm", "") != AlgExcC14N || len(ts[0].ChildElements()) != 0 {
		var algs []string
		for _, t := range ts {
			algs = append(algs, t.SelectAttrValue("Algorithm", t.Tag))
		}
		return "", invalid("transforms %v not accepted (want enveloped-signature, exclusive c14n)", algs)
	}
	return inclusivePrefixes(ts[1])
}

func root(el *etree.Element) *etree.Element {
	for el.Parent() != nil {
		el = el.Parent()
	}
	return el
}

// countID counts elements carrying id in an unprefixed ID, Id or id
// attribute: a second element with the signed ID is a wrapping attempt.
func countID(el *etree.Element, id string) int {
	n := 0
	for _, a := range el.Attr {
		if a.Space == "" && (a.Key == "ID" || a.Key == "Id" || a.Key == "id") && a.Value == id {
			n++
		}
	}
	for _, c := range el.ChildElements() {
		n += countID(c, id)
	}
	return n
}

// canonicalize returns the exclusive c14n (without comments) of el in the
// namespace context of its ancestors, leaving out the descendant without
// (the enveloped signature) when it is not nil.
func canonicalize(el *etree.Element, prefixList string, without *etree.Element) ([]byte, error) {
	ctx, err := etreeutils.NSBuildParentContext(el)
	if err != nil {
		return nil, err
	}
	var path []int
	if without != nil {
		path = pathTo(el, without)
		if path == nil {
			return nil, errors.New("signature is not inside the signed element")
		}
	}
	det, err := etreeutils.NSDetatch(ctx, el)
	if err != nil {
		return nil, err
	}
	if without != nil && !removeAt(det, path) {
		return nil, errors.New("enveloped signature not found in copy")
	}
	if err := etreeutils.TransformExcC14n(det, prefixList, false); err != nil {
		return nil, err
	}
	doc := etree.NewDocument()
	doc.SetRoot(det)
	doc.WriteSettings = etree.WriteSettings{CanonicalAttrVal: true, CanonicalEndTags: true, CanonicalText: true}
	return doc.WriteToBytes()
}

func pathTo(from, target *etree.Element) []int {
	for i, t := range from.Child {
		if t == target {
			return []int{i}
		}
		if c, ok := t.(*etree.Element); ok {
			if p := pathTo(c, target); p != nil {
				return append([]int{i}, p...)
			}
		}
	}
	return nil
}

func removeAt(el *etree.Element, path []int) bool {
	for len(path) > 1 {
		if path[0] >= len(el.Child) {
			return false
		}
		c, ok := el.Child[path[0]].(*etree.Element)
		if !ok {
			return false
		}
		el, path = c, path[1:]
	}
	if len(path) != 1 || path[0] >= len(el.Child) {
		return false
	}
	el.RemoveChildAt(path[0])
	return true
}

func decodeBase64(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\r', '\n':
			return -1
		}
		return r
	}, s)
	return base64.StdEncoding.DecodeString(s)
}

// verifyRaw checks sig over data with pub under alg.
func verifyRaw(alg string, pub any, data, sig []byte) error {
	h, ok := hashFor(alg)
	if !ok {
		return fmt.Errorf("unsupported algorithm %q", alg)
	}
	d := h.New()
	d.Write(data)
	digest := d.Sum(nil)
	switch alg {
	case AlgRSASHA256:
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return errors.New("not an RSA key")
		}
		return rsa.VerifyPKCS1v15(k, h, digest, sig)
	case AlgRSAPSSSHA256:
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return errors.New("not an RSA key")
		}
		// RFC 6931 §2.3.10: salt length defaults to the hash length.
		return rsa.VerifyPSS(k, h, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: h})
	case AlgECDSASHA256, AlgECDSASHA384, AlgECDSASHA512:
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok {
			return errors.New("not an EC key")
		}
		n := (k.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*n {
			return errors.New("ECDSA signature of the wrong length")
		}
		r := new(big.Int).SetBytes(sig[:n])
		s := new(big.Int).SetBytes(sig[n:])
		if !ecdsa.Verify(k, digest, r, s) {
			return errors.New("ECDSA signature does not verify")
		}
		return nil
	}
	return fmt.Errorf("unsupported algorithm %q", alg)
}
