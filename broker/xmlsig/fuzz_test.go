package xmlsig_test

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/trustbroker/trustbroker/broker/xmlsig"
)

// FuzzVerify: whatever arrives, Parse and Verify return an error or a
// verified element, never panic; nothing but the genuine signed bytes
// verifies under the test key.
func FuzzVerify(f *testing.F) {
	k := newKey(f, "p256")
	doc := signedAssertion(f, k, "")
	b, _ := doc.WriteToBytes()
	f.Add(b)
	f.Add([]byte(responseXML))
	if dir, ok := os.LookupEnv("TRUSTBROKER_TEST_SHARED"); ok {
		for _, n := range []string{"EidasSamlRequest_13062017.xml", "Metadata.xml"} {
			if v, err := os.ReadFile(filepath.Join(dir, "testdata", "eidas-middleware", n)); err == nil {
				f.Add(v)
			}
		}
	}
	o := xmlsig.VerifyOptions{Certificates: []*x509.Certificate{k.cert}, Now: time.Now()}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := xmlsig.Parse(data)
		if err != nil {
			return
		}
		for _, el := range append([]*etreeElement{d.Root()}, d.Root().ChildElements()...) {
			v, err := xmlsig.Verify(el, o)
			if err == nil && (v.Element == nil || xmlsig.HasSignature(v.Element)) {
				t.Fatal("verified element still signed")
			}
		}
	})
}

// FuzzDecrypt: hostile EncryptedData never panics the decrypter.
func FuzzDecrypt(f *testing.F) {
	rsaKey := newKey(f, "rsa")
	ecKey := newKey(f, "p256")
	for _, k := range []testKey{rsaKey, ecKey} {
		ed, err := xmlsig.Encrypt([]byte("<a/>"), k.cert, nil)
		if err != nil {
			f.Fatal(err)
		}
		d := newDoc(ed)
		b, _ := d.WriteToBytes()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := xmlsig.Parse(data)
		if err != nil {
			return
		}
		_, _ = xmlsig.Decrypt(d.Root(), d.Root().ChildElements(), rsaKey.key)
		_, _ = xmlsig.Decrypt(d.Root(), nil, ecKey.key)
	})
}
