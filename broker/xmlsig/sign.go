package xmlsig

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"

	"github.com/beevik/etree"
)

// Signer makes enveloped signatures.
type Signer struct {
	Key         crypto.Signer
	Certificate *x509.Certificate // put into KeyInfo; may be nil
	// Algorithm is the SignatureMethod; empty means ECDSA with the hash
	// matching the curve for EC keys and RSASSA-PSS-SHA256 for RSA keys
	// (never RSA PKCS#1 v1.5 by default: eIDAS nodes refuse it).
	Algorithm string
	// Rand is the randomness source (crypto/rand when nil).
	Rand io.Reader
}

// DefaultAlgorithm is the SignatureMethod Sign uses for key.
func DefaultAlgorithm(key crypto.PublicKey) (string, error) {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve.Params().BitSize {
		case 256:
			return AlgECDSASHA256, nil
		case 384:
			return AlgECDSASHA384, nil
		case 521:
			return AlgECDSASHA512, nil
		}
		return "", fmt.Errorf("xmlsig: unsupported curve %s", k.Curve.Params().Name)
	case *rsa.PublicKey:
		return AlgRSAPSSSHA256, nil
	}
	return "", fmt.Errorf("xmlsig: unsupported key type %T", key)
}

// Sign adds an enveloped signature over el (which must carry a non-empty
// ID attribute) as a child of el: right after a child named Issuer when
// there is one (SAML protocol messages and assertions), else as the first
// child (SAML metadata).
func (s *Signer) Sign(el *etree.Element) error {
	id := el.SelectAttrValue("ID", "")
	if id == "" {
		return errors.New("xmlsig: element to sign has no ID")
	}
	if HasSignature(el) {
		return errors.New("xmlsig: element is already signed")
	}
	alg := s.Algorithm
	if alg == "" {
		var err error
		if alg, err = DefaultAlgorithm(s.Key.Public()); err != nil {
			return err
		}
	}
	h, ok := hashFor(alg)
	if !ok {
		return fmt.Errorf("xmlsig: unsupported signature method %q", alg)
	}
	body, err := canonicalize(el, "", nil)
	if err != nil {
		return fmt.Errorf("xmlsig: canonicalize: %w", err)
	}
	d := crypto.SHA256.New()
	d.Write(body)

	sig := etree.NewElement("ds:Signature")
	sig.CreateAttr("xmlns:ds", NSDSig)
	si := sig.CreateElement("ds:SignedInfo")
	si.CreateElement("ds:CanonicalizationMethod").CreateAttr("Algorithm", AlgExcC14N)
	si.CreateElement("ds:SignatureMethod").CreateAttr("Algorithm", alg)
	ref := si.CreateElement("ds:Reference")
	ref.CreateAttr("URI", "#"+id)
	ts := ref.CreateElement("ds:Transforms")
	ts.CreateElement("ds:Transform").CreateAttr("Algorithm", AlgEnvelopedSignature)
	ts.CreateElement("ds:Transform").CreateAttr("Algorithm", AlgExcC14N)
	ref.CreateElement("ds:DigestMethod").CreateAttr("Algorithm", AlgSHA256)
	ref.CreateElement("ds:DigestValue").SetText(base64.StdEncoding.EncodeToString(d.Sum(nil)))

	pos := 0
	for i, t := range el.Child {
		if c, ok := t.(*etree.Element); ok && c.Tag == "Issuer" {
			pos = i + 1
			break
		}
	}
	el.InsertChildAt(pos, sig)

	canonSI, err := canonicalize(si, "", nil)
	if err != nil {
		el.RemoveChild(sig)
		return fmt.Errorf("xmlsig: canonicalize SignedInfo: %w", err)
	}
	value, err := s.signRaw(alg, h, canonSI)
	if err != nil {
		el.RemoveChild(sig)
		return err
	}
	sig.CreateElement("ds:SignatureValue").SetText(base64.StdEncoding.EncodeToString(value))
	if s.Certificate != nil {
		sig.CreateElement("ds:KeyInfo").CreateElement("ds:X509Data").CreateElement("ds:X509Certificate").
			SetText(base64.StdEncoding.EncodeToString(s.Certificate.Raw))
	}
	return nil
}

func (s *Signer) signRaw(alg string, h crypto.Hash, data []byte) ([]byte, error) {
	r := s.Rand
	if r == nil {
		r = rand.Reader
	}
	d := h.New()
	d.Write(data)
	digest := d.Sum(nil)
	switch alg {
	case AlgRSASHA256:
		if _, ok := s.Key.Public().(*rsa.PublicKey); !ok {
			return nil, errors.New("xmlsig: RSA algorithm needs an RSA key")
		}
		return s.Key.Sign(r, digest, h)
	case AlgRSAPSSSHA256:
		if _, ok := s.Key.Public().(*rsa.PublicKey); !ok {
			return nil, errors.New("xmlsig: RSA algorithm needs an RSA key")
		}
		return s.Key.Sign(r, digest, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: h})
	case AlgECDSASHA256, AlgECDSASHA384, AlgECDSASHA512:
		pub, ok := s.Key.Public().(*ecdsa.PublicKey)
		if !ok {
			return nil, errors.New("xmlsig: ECDSA algorithm needs an EC key")
		}
		der, err := s.Key.Sign(r, digest, h)
		if err != nil {
			return nil, err
		}
		return derToRS(der, (pub.Curve.Params().BitSize+7)/8)
	}
	return nil, fmt.Errorf("xmlsig: unsupported signature method %q", alg)
}
