package xmlsig_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/trustbroker/trustbroker/broker/xmlsig"
)

func roundTrip(t *testing.T, ed *etree.Element) *etree.Element {
	t.Helper()
	doc := etree.NewDocument()
	doc.SetRoot(ed)
	b, _ := doc.WriteToBytes()
	d, err := xmlsig.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return d.Root()
}

func TestEncryptDecrypt(t *testing.T) {
	plain := []byte(`<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_a"/>`)
	for _, kind := range []string{"rsa", "p256", "p384", "p521"} {
		t.Run(kind, func(t *testing.T) {
			k := newKey(t, kind)
			ed, err := xmlsig.Encrypt(plain, k.cert, nil)
			if err != nil {
				t.Fatal(err)
			}
			ed = roundTrip(t, ed)
			if got := ed.FindElement("./EncryptionMethod").SelectAttrValue("Algorithm", ""); got != xmlsig.AlgAES256GCM {
				t.Fatalf("content algorithm %s", got)
			}
			got, err := xmlsig.Decrypt(ed, nil, k.key)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(plain) {
				t.Fatalf("plaintext %q", got)
			}
			// Another key of the same kind cannot decrypt.
			if _, err := xmlsig.Decrypt(ed, nil, newKey(t, kind).key); !errors.Is(err, xmlsig.ErrDecrypt) {
				t.Fatalf("wrong key: %v", err)
			}
			// A flipped ciphertext bit fails the GCM tag.
			cv := ed.FindElement("./CipherData/CipherValue")
			s := cv.Text()
			mid := len(s) / 2
			c := byte('A')
			if s[mid] == 'A' {
				c = 'B'
			}
			cv.SetText(s[:mid] + string(c) + s[mid+1:])
			if _, err := xmlsig.Decrypt(ed, nil, k.key); !errors.Is(err, xmlsig.ErrDecrypt) {
				t.Fatalf("tampered ciphertext: %v", err)
			}
		})
	}
}

// The EncryptedKey may sit beside EncryptedData (SAML EncryptedAssertion).
func TestEncryptedKeyAsSibling(t *testing.T) {
	k := newKey(t, "rsa")
	ed, err := xmlsig.Encrypt([]byte("<a/>"), k.cert, nil)
	if err != nil {
		t.Fatal(err)
	}
	ki := ed.FindElement("./KeyInfo")
	ek := ki.FindElement("./EncryptedKey")
	ki.RemoveChild(ek)
	ea := etree.NewElement("saml:EncryptedAssertion")
	ea.CreateAttr("xmlns:saml", "urn:oasis:names:tc:SAML:2.0:assertion")
	ea.CreateAttr("xmlns:xenc", xmlsig.NSXMLEnc)
	ea.CreateAttr("xmlns:ds", xmlsig.NSDSig)
	ea.AddChild(ed)
	ea.AddChild(ek)
	ea = roundTrip(t, ea)
	got, err := xmlsig.Decrypt(ea.ChildElements()[0], ea.ChildElements()[1:], k.key)
	if err != nil || string(got) != "<a/>" {
		t.Fatalf("%q %v", got, err)
	}
}

// Algorithms outside the profile are refused: CBC content encryption,
// RSA PKCS#1 v1.5 key transport.
func TestDecryptRefusesWeakAlgorithms(t *testing.T) {
	k := newKey(t, "rsa")
	ed, _ := xmlsig.Encrypt([]byte("<a/>"), k.cert, nil)
	ed = roundTrip(t, ed)
	for name, mutate := range map[string]func(*etree.Element){
		"aes256-cbc": func(e *etree.Element) {
			e.FindElement("./EncryptionMethod").CreateAttr("Algorithm", "http://www.w3.org/2001/04/xmlenc#aes256-cbc")
		},
		"rsa-1_5": func(e *etree.Element) {
			e.FindElement("./KeyInfo/EncryptedKey/EncryptionMethod").CreateAttr("Algorithm", "http://www.w3.org/2001/04/xmlenc#rsa-1_5")
		},
		"sha1 ConcatKDF / unknown MGF": func(e *etree.Element) {
			e.FindElement("./KeyInfo/EncryptedKey/EncryptionMethod/MGF").CreateAttr("Algorithm", "urn:x")
		},
		"no key": func(e *etree.Element) { e.RemoveChild(e.FindElement("./KeyInfo")) },
	} {
		e := ed.Copy()
		mutate(e)
		if _, err := xmlsig.Decrypt(e, nil, k.key); !errors.Is(err, xmlsig.ErrDecrypt) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// The public error text never says which step failed.
	_, err := xmlsig.Decrypt(ed, nil, newKey(t, "rsa").key)
	if !strings.HasPrefix(err.Error(), xmlsig.ErrDecrypt.Error()) {
		t.Fatal(err)
	}
}
