package xmlsig

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/beevik/etree"
)

// XML Encryption 1.1 algorithm identifiers (W3C xmlenc-core1).
const (
	AlgAES128GCM  = "http://www.w3.org/2009/xmlenc11#aes128-gcm"
	AlgAES192GCM  = "http://www.w3.org/2009/xmlenc11#aes192-gcm"
	AlgAES256GCM  = "http://www.w3.org/2009/xmlenc11#aes256-gcm"
	AlgRSAOAEP11  = "http://www.w3.org/2009/xmlenc11#rsa-oaep"
	AlgRSAOAEP    = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"
	AlgECDHES     = "http://www.w3.org/2009/xmlenc11#ECDH-ES"
	AlgConcatKDF  = "http://www.w3.org/2009/xmlenc11#ConcatKDF"
	AlgKWAES128   = "http://www.w3.org/2001/04/xmlenc#kw-aes128"
	AlgKWAES256   = "http://www.w3.org/2001/04/xmlenc#kw-aes256"
	AlgMGF1SHA1   = "http://www.w3.org/2009/xmlenc11#mgf1sha1"
	AlgMGF1SHA256 = "http://www.w3.org/2009/xmlenc11#mgf1sha256"
	AlgMGF1SHA384 = "http://www.w3.org/2009/xmlenc11#mgf1sha384"
	AlgMGF1SHA512 = "http://www.w3.org/2009/xmlenc11#mgf1sha512"

	TypeElement = "http://www.w3.org/2001/04/xmlenc#Element"
)

// ErrDecrypt is the one error every decryption failure returns, whatever
// the cause, so that no padding or key oracle can tell them apart
// (SECURITY.md §2, encrypted assertions).
var ErrDecrypt = errors.New("xmlsig: cannot decrypt")

// Decrypt decrypts an xenc:EncryptedData element whose content key is in
// an xenc:EncryptedKey, either inside its ds:KeyInfo or as one of
// siblings (SAML's EncryptedAssertion may carry it beside the data).
// Content encryption: AES-GCM (128/192/256); key transport RSA-OAEP
// (xmlenc11#rsa-oaep with its DigestMethod and MGF, or rsa-oaep-mgf1p) for
// RSA keys; key agreement ECDH-ES with ConcatKDF and AES key wrap for EC
// keys. CBC and RSA PKCS#1 v1.5 are not accepted.
func Decrypt(encData *etree.Element, siblings []*etree.Element, key crypto.PrivateKey) ([]byte, error) {
	pt, err := decrypt(encData, siblings, key)
	if err != nil {
		return nil, fmt.Errorf("%w (%v)", ErrDecrypt, err)
	}
	return pt, nil
}

func decrypt(encData *etree.Element, siblings []*etree.Element, key crypto.PrivateKey) ([]byte, error) {
	if !is(encData, NSXMLEnc, "EncryptedData") {
		return nil, errors.New("not an EncryptedData element")
	}
	em, _ := Child(encData, NSXMLEnc, "EncryptionMethod")
	if em == nil {
		return nil, errors.New("EncryptedData without EncryptionMethod")
	}
	contentAlg := em.SelectAttrValue("Algorithm", "")
	keyLen, ok := gcmKeyLen(contentAlg)
	if !ok {
		return nil, fmt.Errorf("content encryption %q not accepted", contentAlg)
	}
	var eks []*etree.Element
	if ki, _ := Child(encData, NSDSig, "KeyInfo"); ki != nil {
		eks = append(eks, Children(ki, NSXMLEnc, "EncryptedKey")...)
	}
	for _, s := range siblings {
		if is(s, NSXMLEnc, "EncryptedKey") {
			eks = append(eks, s)
		}
	}
	if len(eks) == 0 {
		return nil, errors.New("no EncryptedKey")
	}
	ct, err := cipherValue(encData)
	if err != nil {
		return nil, err
	}
	var lastErr error
	for _, ek := range eks {
		cek, err := unwrapKey(ek, key, keyLen)
		if err != nil {
			lastErr = err
			continue
		}
		return gcmOpen(cek, ct)
	}
	return nil, lastErr
}

func gcmKeyLen(alg string) (int, bool) {
	switch alg {
	case AlgAES128GCM:
		return 16, true
	case AlgAES192GCM:
		return 24, true
	case AlgAES256GCM:
		return 32, true
	}
	return 0, false
}

func cipherValue(el *etree.Element) ([]byte, error) {
	cd, _ := Child(el, NSXMLEnc, "CipherData")
	if cd == nil {
		return nil, errors.New("no CipherData")
	}
	cv, _ := Child(cd, NSXMLEnc, "CipherValue")
	if cv == nil {
		return nil, errors.New("no CipherValue (CipherReference is not supported)")
	}
	return decodeBase64(Text(cv))
}

// gcmOpen: XML Encryption 1.1 §5.2.4, the CipherValue is IV (96 bits) ||
// ciphertext || tag (128 bits).
func gcmOpen(key, ct []byte) ([]byte, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	g, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	if len(ct) < g.NonceSize()+g.Overhead() {
		return nil, errors.New("ciphertext too short")
	}
	return g.Open(nil, ct[:g.NonceSize()], ct[g.NonceSize():], nil)
}

func unwrapKey(ek *etree.Element, key crypto.PrivateKey, keyLen int) ([]byte, error) {
	em, _ := Child(ek, NSXMLEnc, "EncryptionMethod")
	if em == nil {
		return nil, errors.New("EncryptedKey without EncryptionMethod")
	}
	wrapped, err := cipherValue(ek)
	if err != nil {
		return nil, err
	}
	var cek []byte
	switch alg := em.SelectAttrValue("Algorithm", ""); alg {
	case AlgRSAOAEP11, AlgRSAOAEP:
		k, ok := key.(*rsa.PrivateKey)
		if !ok {
			return nil, errors.New("RSA-OAEP needs an RSA key")
		}
		h, mgf := crypto.SHA1, crypto.SHA1
		if dm, _ := Child(em, NSDSig, "DigestMethod"); dm != nil {
			if h, ok = oaepHash(dm.SelectAttrValue("Algorithm", "")); !ok {
				return nil, errors.New("OAEP digest not accepted")
			}
		}
		if alg == AlgRSAOAEP11 {
			if m, _ := Child(em, NSXMLEnc1, "MGF"); m != nil {
				if mgf, ok = mgfHash(m.SelectAttrValue("Algorithm", "")); !ok {
					return nil, errors.New("OAEP MGF not accepted")
				}
			}
		}
		if p, _ := Child(em, NSXMLEnc, "OAEPparams"); p != nil {
			return nil, errors.New("OAEPparams not supported")
		}
		cek, err = k.Decrypt(nil, wrapped, &rsa.OAEPOptions{Hash: h, MGFHash: mgf})
		if err != nil {
			return nil, err
		}
	case AlgKWAES256, AlgKWAES128:
		kek, err := agreeECDHES(ek, key, kwKeyLen(alg))
		if err != nil {
			return nil, err
		}
		if cek, err = aesKeyUnwrap(kek, wrapped); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("key transport %q not accepted", alg)
	}
	if len(cek) != keyLen {
		return nil, errors.New("content key of the wrong length")
	}
	return cek, nil
}

func kwKeyLen(alg string) int {
	if alg == AlgKWAES128 {
		return 16
	}
	return 32
}

func oaepHash(alg string) (crypto.Hash, bool) {
	switch alg {
	case AlgSHA1:
		return crypto.SHA1, true
	case AlgSHA256:
		return crypto.SHA256, true
	case AlgSHA384:
		return crypto.SHA384, true
	case AlgSHA512:
		return crypto.SHA512, true
	}
	return 0, false
}

func mgfHash(alg string) (crypto.Hash, bool) {
	switch alg {
	case AlgMGF1SHA1:
		return crypto.SHA1, true
	case AlgMGF1SHA256:
		return crypto.SHA256, true
	case AlgMGF1SHA384:
		return crypto.SHA384, true
	case AlgMGF1SHA512:
		return crypto.SHA512, true
	}
	return 0, false
}

// agreeECDHES derives the key-encryption key of an EncryptedKey whose
// ds:KeyInfo holds an xenc:AgreementMethod ECDH-ES (XML Encryption 1.1
// §5.6.2) with the originator's ephemeral key in OriginatorKeyInfo
// (dsig11:ECKeyValue, named curve, uncompressed point) and a ConcatKDF
// key derivation (§5.4.1).
func agreeECDHES(ek *etree.Element, key crypto.PrivateKey, kekLen int) ([]byte, error) {
	priv, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		return nil, errors.New("ECDH-ES needs an EC key")
	}
	ki, _ := Child(ek, NSDSig, "KeyInfo")
	if ki == nil {
		return nil, errors.New("EncryptedKey without KeyInfo")
	}
	am, _ := Child(ki, NSXMLEnc, "AgreementMethod")
	if am == nil || am.SelectAttrValue("Algorithm", "") != AlgECDHES {
		return nil, errors.New("no ECDH-ES AgreementMethod")
	}
	kdm, _ := Child(am, NSXMLEnc1, "KeyDerivationMethod")
	if kdm == nil || kdm.SelectAttrValue("Algorithm", "") != AlgConcatKDF {
		return nil, errors.New("no ConcatKDF KeyDerivationMethod")
	}
	params, _ := Child(kdm, NSXMLEnc1, "ConcatKDFParams")
	if params == nil {
		return nil, errors.New("no ConcatKDFParams")
	}
	dm, _ := Child(params, NSDSig, "DigestMethod")
	if dm == nil {
		return nil, errors.New("ConcatKDFParams without DigestMethod")
	}
	h, ok := oaepHash(dm.SelectAttrValue("Algorithm", ""))
	if !ok || h == crypto.SHA1 {
		return nil, errors.New("ConcatKDF digest not accepted")
	}
	var otherInfo []byte
	for _, name := range []string{"AlgorithmID", "PartyUInfo", "PartyVInfo", "SuppPubInfo", "SuppPrivInfo"} {
		b, err := bitString(params.SelectAttrValue(name, ""))
		if err != nil {
			return nil, fmt.Errorf("ConcatKDFParams %s: %w", name, err)
		}
		otherInfo = append(otherInfo, b...)
	}
	oki, _ := Child(am, NSXMLEnc, "OriginatorKeyInfo")
	if oki == nil {
		return nil, errors.New("no OriginatorKeyInfo")
	}
	kv, _ := Child(oki, NSDSig, "KeyValue")
	if kv == nil {
		return nil, errors.New("no originator KeyValue")
	}
	eckv, _ := Child(kv, NSDSig11, "ECKeyValue")
	if eckv == nil {
		return nil, errors.New("no originator ECKeyValue")
	}
	nc, _ := Child(eckv, NSDSig11, "NamedCurve")
	pk, _ := Child(eckv, NSDSig11, "PublicKey")
	if nc == nil || pk == nil {
		return nil, errors.New("ECKeyValue needs NamedCurve and PublicKey")
	}
	curve, ecdhCurve, ok := curveByURI(nc.SelectAttrValue("URI", ""))
	if !ok || curve != priv.Curve {
		return nil, errors.New("originator curve does not match the key")
	}
	point, err := decodeBase64(Text(pk))
	if err != nil {
		return nil, err
	}
	peer, err := ecdhCurve.NewPublicKey(point)
	if err != nil {
		return nil, err
	}
	mine, err := priv.ECDH()
	if err != nil {
		return nil, err
	}
	z, err := mine.ECDH(peer)
	if err != nil {
		return nil, err
	}
	return concatKDF(h, z, otherInfo, kekLen), nil
}

// bitString decodes a ConcatKDFParams attribute: hex, whose first byte
// counts the padding bits of the last byte (xmlenc-core1 §5.4.1); only
// whole bytes (padding 0) are accepted. The empty string is empty.
func bitString(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, err
	}
	if len(b) == 0 || b[0] != 0 {
		return nil, errors.New("only byte-aligned bit strings are supported")
	}
	return b[1:], nil
}

func hexBitString(b []byte) string { return "00" + hex.EncodeToString(b) }

// concatKDF is the single-step KDF of NIST SP 800-56A §5.8.1 with a hash.
func concatKDF(h crypto.Hash, z, otherInfo []byte, n int) []byte {
	var out []byte
	for counter := uint32(1); len(out) < n; counter++ {
		d := h.New()
		var c [4]byte
		binary.BigEndian.PutUint32(c[:], counter)
		d.Write(c[:])
		d.Write(z)
		d.Write(otherInfo)
		out = d.Sum(out)
	}
	return out[:n]
}

func curveByURI(uri string) (elliptic.Curve, ecdh.Curve, bool) {
	switch uri {
	case "urn:oid:1.2.840.10045.3.1.7":
		return elliptic.P256(), ecdh.P256(), true
	case "urn:oid:1.3.132.0.34":
		return elliptic.P384(), ecdh.P384(), true
	case "urn:oid:1.3.132.0.35":
		return elliptic.P521(), ecdh.P521(), true
	}
	return nil, nil, false
}

func curveURI(c elliptic.Curve) (string, ecdh.Curve, bool) {
	switch c {
	case elliptic.P256():
		return "urn:oid:1.2.840.10045.3.1.7", ecdh.P256(), true
	case elliptic.P384():
		return "urn:oid:1.3.132.0.34", ecdh.P384(), true
	case elliptic.P521():
		return "urn:oid:1.3.132.0.35", ecdh.P521(), true
	}
	return "", nil, false
}

// Encrypt encrypts plaintext (an XML element's serialization) for the
// public key of recipient with AES-256-GCM, the content key transported
// with RSA-OAEP (SHA-256, MGF1-SHA-256) for RSA keys or agreed with
// ECDH-ES, ConcatKDF (SHA-256) and AES-256 key wrap for EC keys, as the
// eIDAS crypto requirements ask. It returns the xenc:EncryptedData with
// the EncryptedKey inside its KeyInfo.
func Encrypt(plaintext []byte, recipient *x509.Certificate, r io.Reader) (*etree.Element, error) {
	if r == nil {
		r = rand.Reader
	}
	cek := make([]byte, 32)
	if _, err := io.ReadFull(r, cek); err != nil {
		return nil, err
	}
	block, _ := aes.NewCipher(cek)
	g, _ := cipher.NewGCM(block)
	iv := make([]byte, g.NonceSize())
	if _, err := io.ReadFull(r, iv); err != nil {
		return nil, err
	}
	ct := g.Seal(append([]byte{}, iv...), iv, plaintext, nil)

	ed := etree.NewElement("xenc:EncryptedData")
	ed.CreateAttr("xmlns:xenc", NSXMLEnc)
	ed.CreateAttr("Type", TypeElement)
	ed.CreateElement("xenc:EncryptionMethod").CreateAttr("Algorithm", AlgAES256GCM)
	ki := ed.CreateElement("ds:KeyInfo")
	ki.CreateAttr("xmlns:ds", NSDSig)
	ek := ki.CreateElement("xenc:EncryptedKey")
	var wrapped []byte
	switch pub := recipient.PublicKey.(type) {
	case *rsa.PublicKey:
		em := ek.CreateElement("xenc:EncryptionMethod")
		em.CreateAttr("Algorithm", AlgRSAOAEP11)
		em.CreateElement("ds:DigestMethod").CreateAttr("Algorithm", AlgSHA256)
		mgf := em.CreateElement("xenc11:MGF")
		mgf.CreateAttr("xmlns:xenc11", NSXMLEnc1)
		mgf.CreateAttr("Algorithm", AlgMGF1SHA256)
		var err error
		if wrapped, err = rsa.EncryptOAEP(crypto.SHA256.New(), r, pub, cek, nil); err != nil {
			return nil, err
		}
		ek.CreateElement("ds:KeyInfo").CreateElement("ds:X509Data").CreateElement("ds:X509Certificate").
			SetText(base64.StdEncoding.EncodeToString(recipient.Raw))
	case *ecdsa.PublicKey:
		uri, curve, ok := curveURI(pub.Curve)
		if !ok {
			return nil, fmt.Errorf("xmlsig: unsupported curve %s", pub.Curve.Params().Name)
		}
		peer, err := pub.ECDH()
		if err != nil {
			return nil, err
		}
		eph, err := curve.GenerateKey(r)
		if err != nil {
			return nil, err
		}
		z, err := eph.ECDH(peer)
		if err != nil {
			return nil, err
		}
		algID := []byte(AlgKWAES256)
		kek := concatKDF(crypto.SHA256, z, append([]byte{}, algID...), 32)
		if wrapped, err = aesKeyWrap(kek, cek); err != nil {
			return nil, err
		}
		ek.CreateElement("xenc:EncryptionMethod").CreateAttr("Algorithm", AlgKWAES256)
		eki := ek.CreateElement("ds:KeyInfo")
		am := eki.CreateElement("xenc:AgreementMethod")
		am.CreateAttr("Algorithm", AlgECDHES)
		kdm := am.CreateElement("xenc11:KeyDerivationMethod")
		kdm.CreateAttr("xmlns:xenc11", NSXMLEnc1)
		kdm.CreateAttr("Algorithm", AlgConcatKDF)
		p := kdm.CreateElement("xenc11:ConcatKDFParams")
		p.CreateAttr("AlgorithmID", hexBitString(algID))
		p.CreateAttr("PartyUInfo", "")
		p.CreateAttr("PartyVInfo", "")
		p.CreateElement("ds:DigestMethod").CreateAttr("Algorithm", AlgSHA256)
		kv := am.CreateElement("xenc:OriginatorKeyInfo").CreateElement("ds:KeyValue").CreateElement("dsig11:ECKeyValue")
		kv.CreateAttr("xmlns:dsig11", NSDSig11)
		kv.CreateElement("dsig11:NamedCurve").CreateAttr("URI", uri)
		kv.CreateElement("dsig11:PublicKey").SetText(base64.StdEncoding.EncodeToString(eph.PublicKey().Bytes()))
		am.CreateElement("xenc:RecipientKeyInfo").CreateElement("ds:X509Data").CreateElement("ds:X509Certificate").
			SetText(base64.StdEncoding.EncodeToString(recipient.Raw))
	default:
		return nil, fmt.Errorf("xmlsig: cannot encrypt for key type %T", recipient.PublicKey)
	}
	ek.CreateElement("xenc:CipherData").CreateElement("xenc:CipherValue").SetText(base64.StdEncoding.EncodeToString(wrapped))
	ed.CreateElement("xenc:CipherData").CreateElement("xenc:CipherValue").SetText(base64.StdEncoding.EncodeToString(ct))
	return ed, nil
}
