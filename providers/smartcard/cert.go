package smartcard

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/trustbroker/trustbroker/providers/smartcard/brainpool"
)

// Cert is a parsed certificate. The embedded x509.Certificate carries the
// fields crypto/x509 decodes; its Raw, RawTBSCertificate,
// RawSubjectPublicKeyInfo and PublicKey are always the certificate's own.
// For a brainpoolP256r1 key, which crypto/x509 refuses to parse, Brainpool
// holds the key and PublicKey is the same *brainpool.PublicKey.
type Cert struct {
	*x509.Certificate
	Brainpool *brainpool.PublicKey
}

// maxCertSize bounds a certificate we are willing to parse.
const maxCertSize = 16 << 10

// ParseCertificate parses a DER certificate with crypto/x509. When the
// subject key is on brainpoolP256r1, it parses the certificate with a
// placeholder key in place of the subject public key (so crypto/x509 can
// decode names, validity, extensions) and then restores the original bytes
// and the brainpool key: signatures are always checked over the original
// TBSCertificate.
func ParseCertificate(der []byte) (*Cert, error) {
	if len(der) > maxCertSize {
		return nil, errors.New("certificate too large")
	}
	c, err := x509.ParseCertificate(der)
	if err == nil {
		return &Cert{Certificate: c}, nil
	}
	tbs, spki, rebuilt, ok := swapSPKI(der)
	if !ok {
		return nil, err
	}
	key, isBP, bpErr := brainpool.ParsePKIX(spki)
	if !isBP {
		return nil, err
	}
	if bpErr != nil {
		return nil, bpErr
	}
	c, err2 := x509.ParseCertificate(rebuilt)
	if err2 != nil {
		return nil, fmt.Errorf("brainpool certificate: %w", err2)
	}
	c.Raw = bytes.Clone(der)
	c.RawTBSCertificate = tbs
	c.RawSubjectPublicKeyInfo = spki
	c.PublicKey = key
	return &Cert{Certificate: c, Brainpool: key}, nil
}

// placeholderSPKI is a P-256 SubjectPublicKeyInfo (the generator point),
// used only to let crypto/x509 decode the rest of a brainpool certificate.
var placeholderSPKI = func() []byte {
	p := elliptic.P256().Params()
	b, err := x509.MarshalPKIXPublicKey(&ecdsa.PublicKey{Curve: elliptic.P256(), X: p.Gx, Y: p.Gy})
	if err != nil {
		panic(err)
	}
	return b
}()

// swapSPKI splits a Certificate (RFC 5280 §4.1) and returns its original
// TBSCertificate and SubjectPublicKeyInfo, and the certificate re-encoded
// with placeholderSPKI in place of the key.
func swapSPKI(der []byte) (tbs, spki, rebuilt []byte, ok bool) {
	in := cryptobyte.String(der)
	var cert, tbsBody, rest cryptobyte.String
	var tbsFull cryptobyte.String
	if !in.ReadASN1(&cert, cbasn1.SEQUENCE) || !in.Empty() {
		return nil, nil, nil, false
	}
	rest = cert
	if !rest.ReadASN1Element(&tbsFull, cbasn1.SEQUENCE) {
		return nil, nil, nil, false
	}
	tbsCopy := tbsFull
	if !tbsCopy.ReadASN1(&tbsBody, cbasn1.SEQUENCE) {
		return nil, nil, nil, false
	}
	// version [0] (optional), serial, signature, issuer, validity,
	// subject, subjectPublicKeyInfo, ...
	var elems []cryptobyte.String
	for !tbsBody.Empty() {
		var e cryptobyte.String
		var tag cbasn1.Tag
		if !tbsBody.ReadAnyASN1Element(&e, &tag) {
			return nil, nil, nil, false
		}
		elems = append(elems, e)
	}
	idx := 5
	if len(elems) > 0 && len(elems[0]) > 0 && elems[0][0] == 0xa0 {
		idx = 6
	}
	if len(elems) <= idx {
		return nil, nil, nil, false
	}
	spki = bytes.Clone(elems[idx])
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			for i, e := range elems {
				if i == idx {
					b.AddBytes(placeholderSPKI)
				} else {
					b.AddBytes(e)
				}
			}
		})
		b.AddBytes(rest) // signatureAlgorithm, signatureValue
	})
	out, err := b.Bytes()
	if err != nil {
		return nil, nil, nil, false
	}
	return bytes.Clone(tbsFull), spki, out, true
}

// checkSignature checks that parent's key signed child: crypto/x509 for RSA
// and NIST curves, package brainpool for brainpoolP256r1.
func checkSignature(child, parent *Cert) error {
	if parent.Brainpool == nil {
		return parent.Certificate.CheckSignature(child.SignatureAlgorithm, child.RawTBSCertificate, child.Signature)
	}
	var h crypto.Hash
	switch child.SignatureAlgorithm {
	case x509.ECDSAWithSHA256:
		h = crypto.SHA256
	case x509.ECDSAWithSHA384:
		h = crypto.SHA384
	case x509.ECDSAWithSHA512:
		h = crypto.SHA512
	default:
		return fmt.Errorf("signature algorithm %v with a brainpool key", child.SignatureAlgorithm)
	}
	d := h.New()
	d.Write(child.RawTBSCertificate)
	if !brainpool.VerifyASN1(parent.Brainpool, d.Sum(nil), child.Signature) {
		return errors.New("brainpool ECDSA signature invalid")
	}
	return nil
}
