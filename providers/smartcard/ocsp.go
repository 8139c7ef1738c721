package smartcard

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
	"golang.org/x/crypto/ocsp"

	"github.com/trustbroker/trustbroker/providers/smartcard/brainpool"
)

var (
	oidOCSPBasic   = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 1}
	oidOCSPNonce   = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}
	oidOCSPSigning = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 9}
)

// maxOCSPResponse bounds an OCSP response we read or parse.
const maxOCSPResponse = 64 << 10

// ocspRequest is a DER OCSP request with a nonce (RFC 6960 §4.1, RFC 8954)
// and the CertID it asks about.
type ocspRequest struct {
	der   []byte
	nonce []byte // the nonce extension's extnValue, as sent
}

// newOCSPRequest asks about leaf, issued by issuer: x/crypto/ocsp builds
// the request (SHA-1 CertID, as responders expect), then a 16-byte nonce
// extension is added to the TBSRequest. The request stays unsigned.
func newOCSPRequest(leaf, issuer *Cert) (*ocspRequest, error) {
	plain, err := ocsp.CreateRequest(leaf.Certificate, issuer.Certificate, &ocsp.RequestOptions{Hash: crypto.SHA1})
	if err != nil {
		return nil, err
	}
	n := make([]byte, 16)
	if _, err := rand.Read(n); err != nil {
		return nil, err
	}
	nonce, err := asn1.Marshal(n) // Nonce ::= OCTET STRING
	if err != nil {
		return nil, err
	}
	in := cryptobyte.String(plain)
	var req, tbs cryptobyte.String
	if !in.ReadASN1(&req, cbasn1.SEQUENCE) || !req.ReadASN1(&tbs, cbasn1.SEQUENCE) {
		return nil, errors.New("ocsp: cannot re-read the request")
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddBytes(tbs) // version (default), requestList
			b.AddASN1(cbasn1.Tag(2).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1ObjectIdentifier(oidOCSPNonce)
						b.AddASN1OctetString(nonce)
					})
				})
			})
		})
	})
	der, err := b.Bytes()
	if err != nil {
		return nil, err
	}
	return &ocspRequest{der: der, nonce: nonce}, nil
}

// singleID is the CertID of one SingleResponse.
type singleID struct {
	hashAlg  asn1.ObjectIdentifier
	nameHash []byte
	keyHash  []byte
	serial   *big.Int
}

// ocspEnvelope is what x/crypto/ocsp does not expose or cannot parse: the
// response extensions (the nonce), every CertID, and the embedded
// certificates (which may carry brainpool keys). stripped is the response
// re-encoded without certificates, for ocsp.ParseResponseForCert; the
// signature covers tbs only, so stripping leaves it intact.
type ocspEnvelope struct {
	status   int
	tbs      []byte
	certs    [][]byte
	nonce    []byte // extnValue of the response's nonce extension; nil when absent
	singles  []singleID
	stripped []byte
}

var errOCSPSyntax = errors.New("ocsp: malformed response")

// parseOCSPEnvelope splits a DER OCSPResponse (RFC 6960 §4.2.1).
func parseOCSPEnvelope(der []byte) (*ocspEnvelope, error) {
	if len(der) > maxOCSPResponse {
		return nil, errors.New("ocsp: response too large")
	}
	in := cryptobyte.String(der)
	var resp cryptobyte.String
	env := &ocspEnvelope{}
	var status int
	if !in.ReadASN1(&resp, cbasn1.SEQUENCE) || !in.Empty() || !resp.ReadASN1Enum(&status) {
		return nil, errOCSPSyntax
	}
	env.status = status
	if status != 0 {
		return env, nil
	}
	var rb, rbSeq, basicOctets, basic cryptobyte.String
	var typ asn1.ObjectIdentifier
	if !resp.ReadASN1(&rb, cbasn1.Tag(0).Constructed().ContextSpecific()) || !resp.Empty() ||
		!rb.ReadASN1(&rbSeq, cbasn1.SEQUENCE) || !rb.Empty() ||
		!rbSeq.ReadASN1ObjectIdentifier(&typ) || !rbSeq.ReadASN1(&basicOctets, cbasn1.OCTET_STRING) || !rbSeq.Empty() {
		return nil, errOCSPSyntax
	}
	if !typ.Equal(oidOCSPBasic) {
		return nil, fmt.Errorf("ocsp: response type %v is not id-pkix-ocsp-basic", typ)
	}
	var tbs, sigAlg, sig, certsWrap cryptobyte.String
	var hasCerts bool
	if !basicOctets.ReadASN1(&basic, cbasn1.SEQUENCE) || !basicOctets.Empty() ||
		!basic.ReadASN1Element(&tbs, cbasn1.SEQUENCE) || !basic.ReadASN1Element(&sigAlg, cbasn1.SEQUENCE) ||
		!basic.ReadASN1Element(&sig, cbasn1.BIT_STRING) ||
		!basic.ReadOptionalASN1(&certsWrap, &hasCerts, cbasn1.Tag(0).Constructed().ContextSpecific()) || !basic.Empty() {
		return nil, errOCSPSyntax
	}
	if hasCerts {
		var seq cryptobyte.String
		if !certsWrap.ReadASN1(&seq, cbasn1.SEQUENCE) || !certsWrap.Empty() {
			return nil, errOCSPSyntax
		}
		for !seq.Empty() {
			var c cryptobyte.String
			if !seq.ReadASN1Element(&c, cbasn1.SEQUENCE) || len(env.certs) >= 4 {
				return nil, errOCSPSyntax
			}
			env.certs = append(env.certs, bytes.Clone(c))
		}
	}
	env.tbs = bytes.Clone(tbs)
	if err := env.parseTBS(tbs); err != nil {
		return nil, err
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Enum(0)
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(oidOCSPBasic)
				b.AddASN1(cbasn1.OCTET_STRING, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddBytes(tbs)
						b.AddBytes(sigAlg)
						b.AddBytes(sig)
					})
				})
			})
		})
	})
	var err error
	if env.stripped, err = b.Bytes(); err != nil {
		return nil, err
	}
	return env, nil
}

// parseTBS reads the CertIDs and the response extensions of a
// ResponseData.
func (env *ocspEnvelope) parseTBS(tbs cryptobyte.String) error {
	var body, rid, produced, responses, extsWrap cryptobyte.String
	var ridTag cbasn1.Tag
	var hasExts bool
	if !tbs.ReadASN1(&body, cbasn1.SEQUENCE) ||
		!body.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) ||
		!body.ReadAnyASN1Element(&rid, &ridTag) ||
		!body.ReadASN1Element(&produced, cbasn1.GeneralizedTime) ||
		!body.ReadASN1(&responses, cbasn1.SEQUENCE) ||
		!body.ReadOptionalASN1(&extsWrap, &hasExts, cbasn1.Tag(1).Constructed().ContextSpecific()) || !body.Empty() {
		return errOCSPSyntax
	}
	for !responses.Empty() {
		var single, certID, alg cryptobyte.String
		var id singleID
		id.serial = new(big.Int)
		if !responses.ReadASN1(&single, cbasn1.SEQUENCE) || !single.ReadASN1(&certID, cbasn1.SEQUENCE) ||
			!certID.ReadASN1(&alg, cbasn1.SEQUENCE) || !alg.ReadASN1ObjectIdentifier(&id.hashAlg) ||
			!certID.ReadASN1Bytes(&id.nameHash, cbasn1.OCTET_STRING) || !certID.ReadASN1Bytes(&id.keyHash, cbasn1.OCTET_STRING) ||
			!certID.ReadASN1Integer(id.serial) || !certID.Empty() || len(env.singles) >= 16 {
			return errOCSPSyntax
		}
		env.singles = append(env.singles, id)
	}
	if !hasExts {
		return nil
	}
	var exts cryptobyte.String
	if !extsWrap.ReadASN1(&exts, cbasn1.SEQUENCE) || !extsWrap.Empty() {
		return errOCSPSyntax
	}
	for !exts.Empty() {
		var ext cryptobyte.String
		var oid asn1.ObjectIdentifier
		var critical bool
		var value []byte
		if !exts.ReadASN1(&ext, cbasn1.SEQUENCE) || !ext.ReadASN1ObjectIdentifier(&oid) ||
			!ext.ReadOptionalASN1Boolean(&critical, cbasn1.BOOLEAN, false) ||
			!ext.ReadASN1Bytes(&value, cbasn1.OCTET_STRING) || !ext.Empty() {
			return errOCSPSyntax
		}
		switch {
		case oid.Equal(oidOCSPNonce):
			if env.nonce != nil {
				return errors.New("ocsp: two nonce extensions")
			}
			env.nonce = value
		case critical:
			return fmt.Errorf("ocsp: unsupported critical response extension %v", oid)
		}
	}
	return nil
}

// ocspAnswer is a verified OCSP response about one certificate.
type ocspAnswer struct {
	resp   *ocsp.Response
	signer string // "issuer", "delegated" or "configured"
}

// verifyOCSP parses der and checks it answers about leaf (issued by issuer)
// for this very request (its nonce, when the responder echoes one; req nil
// for a cached response), is signed by the issuer, a delegated responder
// the issuer certified for OCSP signing, or a configured responder, and is
// fresh at now within skew. maxAge bounds thisUpdate for responses without
// nextUpdate.
func verifyOCSP(der []byte, leaf, issuer *Cert, req *ocspRequest, trusted []*Cert, now time.Time, skew, maxAge time.Duration) (*ocspAnswer, error) {
	env, err := parseOCSPEnvelope(der)
	if err != nil {
		return nil, err
	}
	if env.status != 0 {
		return nil, ocsp.ResponseError{Status: ocsp.ResponseStatus(env.status)}
	}
	resp, err := ocsp.ParseResponseForCert(env.stripped, leaf.Certificate, nil)
	if err != nil {
		return nil, err
	}
	// The SingleResponse must be about this certificate of this issuer.
	matched := 0
	for _, id := range env.singles {
		if id.serial.Cmp(leaf.SerialNumber) != 0 {
			continue
		}
		if !idHashMatches(id, issuer) {
			return nil, errors.New("ocsp: response is about a certificate of another issuer")
		}
		matched++
	}
	if matched != 1 {
		return nil, fmt.Errorf("ocsp: %d answers about the certificate", matched)
	}
	if req != nil && env.nonce != nil && !bytes.Equal(env.nonce, req.nonce) {
		return nil, errors.New("ocsp: nonce mismatch (a replayed or misdirected response)")
	}
	kind, err := checkOCSPSigner(env, resp, issuer, trusted, now)
	if err != nil {
		return nil, err
	}
	if resp.ThisUpdate.After(now.Add(skew)) {
		return nil, fmt.Errorf("ocsp: thisUpdate %s lies in the future", resp.ThisUpdate.UTC().Format(time.RFC3339))
	}
	if !resp.NextUpdate.IsZero() {
		if resp.NextUpdate.Before(resp.ThisUpdate) {
			return nil, errors.New("ocsp: nextUpdate before thisUpdate")
		}
		if now.Add(-skew).After(resp.NextUpdate) {
			return nil, fmt.Errorf("ocsp: stale response (nextUpdate %s)", resp.NextUpdate.UTC().Format(time.RFC3339))
		}
	} else if now.Sub(resp.ThisUpdate) > maxAge {
		return nil, fmt.Errorf("ocsp: stale response (thisUpdate %s, no nextUpdate)", resp.ThisUpdate.UTC().Format(time.RFC3339))
	}
	return &ocspAnswer{resp: resp, signer: kind}, nil
}

// idHashMatches checks the issuer name and key hashes of a CertID.
func idHashMatches(s singleID, issuer *Cert) bool {
	for h, oid := range map[crypto.Hash]asn1.ObjectIdentifier{
		crypto.SHA1:   {1, 3, 14, 3, 2, 26},
		crypto.SHA256: {2, 16, 840, 1, 101, 3, 4, 2, 1},
		crypto.SHA384: {2, 16, 840, 1, 101, 3, 4, 2, 2},
		crypto.SHA512: {2, 16, 840, 1, 101, 3, 4, 2, 3},
	} {
		if !s.hashAlg.Equal(oid) {
			continue
		}
		key, err := subjectPublicKeyBits(issuer.RawSubjectPublicKeyInfo)
		if err != nil {
			return false
		}
		nh, kh := h.New(), h.New()
		nh.Write(issuer.RawSubject)
		kh.Write(key)
		return bytes.Equal(s.nameHash, nh.Sum(nil)) && bytes.Equal(s.keyHash, kh.Sum(nil))
	}
	return false
}

// checkOCSPSigner finds the certificate named by the ResponderID and checks
// the response signature with it (RFC 6960 §4.2.2.2): the issuing CA
// itself, a configured responder, or a delegated responder certificate
// from the response that the issuing CA signed, that carries
// id-kp-OCSPSigning and is valid now.
func checkOCSPSigner(env *ocspEnvelope, resp *ocsp.Response, issuer *Cert, trusted []*Cert, now time.Time) (string, error) {
	named := func(c *Cert) bool {
		if resp.RawResponderName != nil {
			return bytes.Equal(c.RawSubject, resp.RawResponderName)
		}
		key, err := subjectPublicKeyBits(c.RawSubjectPublicKeyInfo)
		if err != nil {
			return false
		}
		h := sha1.Sum(key)
		return bytes.Equal(h[:], resp.ResponderKeyHash)
	}
	verify := func(c *Cert) error {
		return signedBy(c, resp.SignatureAlgorithm, env.tbs, resp.Signature)
	}
	if named(issuer) {
		if err := verify(issuer); err != nil {
			return "", fmt.Errorf("ocsp: signature by the issuing CA does not verify: %w", err)
		}
		return "issuer", nil
	}
	for _, c := range trusted {
		if named(c) {
			if err := verify(c); err != nil {
				return "", fmt.Errorf("ocsp: signature by the configured responder does not verify: %w", err)
			}
			return "configured", nil
		}
	}
	var lastErr error = errors.New("ocsp: the responder is neither the issuing CA nor a responder it authorized")
	for _, der := range env.certs {
		c, err := ParseCertificate(der)
		if err != nil || !named(c) {
			continue
		}
		if err := authorizedResponder(c, issuer, now); err != nil {
			lastErr = err
			continue
		}
		if err := verify(c); err != nil {
			return "", fmt.Errorf("ocsp: signature by the delegated responder does not verify: %w", err)
		}
		return "delegated", nil
	}
	return "", lastErr
}

// authorizedResponder checks a delegated responder certificate: issued
// (signed) by the CA that issued the certificate in question, with the
// id-kp-OCSPSigning extended key usage, not a CA, valid at now.
func authorizedResponder(c, issuer *Cert, now time.Time) error {
	if !bytes.Equal(c.RawIssuer, issuer.RawSubject) {
		return fmt.Errorf("ocsp: responder %q is not issued by %q", c.Subject, issuer.Subject)
	}
	if err := checkSignature(c, issuer); err != nil {
		return fmt.Errorf("ocsp: responder certificate %q is not signed by the issuing CA: %w", c.Subject, err)
	}
	ekus, err := extKeyUsages(c)
	if err != nil || !slices.ContainsFunc(ekus, oidOCSPSigning.Equal) {
		return fmt.Errorf("ocsp: responder certificate %q lacks id-kp-OCSPSigning", c.Subject)
	}
	if c.BasicConstraintsValid && c.IsCA {
		return fmt.Errorf("ocsp: responder certificate %q is a CA", c.Subject)
	}
	if now.Before(c.NotBefore) || now.After(c.NotAfter) {
		return fmt.Errorf("ocsp: responder certificate %q is outside its validity", c.Subject)
	}
	if len(c.UnhandledCriticalExtensions) > 0 {
		return fmt.Errorf("ocsp: responder certificate %q has unhandled critical extensions", c.Subject)
	}
	return nil
}

// signedBy checks sig over data with signer's key: crypto/x509 for RSA and
// NIST curves, package brainpool for brainpoolP256r1 (ECDSA with SHA-2).
func signedBy(signer *Cert, alg x509.SignatureAlgorithm, data, sig []byte) error {
	if signer.Brainpool == nil {
		return signer.Certificate.CheckSignature(alg, data, sig)
	}
	var h crypto.Hash
	switch alg {
	case x509.ECDSAWithSHA256:
		h = crypto.SHA256
	case x509.ECDSAWithSHA384:
		h = crypto.SHA384
	case x509.ECDSAWithSHA512:
		h = crypto.SHA512
	default:
		return fmt.Errorf("signature algorithm %v with a brainpool key", alg)
	}
	d := h.New()
	d.Write(data)
	if !brainpool.VerifyASN1(signer.Brainpool, d.Sum(nil), sig) {
		return errors.New("brainpool ECDSA signature invalid")
	}
	return nil
}

// subjectPublicKeyBits returns the subjectPublicKey BIT STRING contents of
// a SubjectPublicKeyInfo (what OCSP key hashes cover).
func subjectPublicKeyBits(spki []byte) ([]byte, error) {
	in := cryptobyte.String(spki)
	var seq cryptobyte.String
	var alg cryptobyte.String
	var bits asn1.BitString
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.ReadASN1(&alg, cbasn1.SEQUENCE) || !seq.ReadASN1BitString(&bits) {
		return nil, errors.New("malformed subject public key info")
	}
	return bits.Bytes, nil
}
