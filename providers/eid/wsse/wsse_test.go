package wsse

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
)

type keyPair struct {
	key  *rsa.PrivateKey
	cert *x509.Certificate
}

var (
	keysOnce sync.Once
	keys     [2]keyPair
)

// testKeys returns two RSA keys with self-issued certificates of the same
// issuer name (so only the serial and the key tell them apart).
func testKeys(t testing.TB) (keyPair, keyPair) {
	keysOnce.Do(func() {
		for i := range keys {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			tmpl := &x509.Certificate{
				SerialNumber: big.NewInt(int64(1000 + i)),
				Subject:      pkix.Name{CommonName: "eService test", Organization: []string{"Trustbroker, Test"}, Country: []string{"DE"}},
				NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
			if err != nil {
				panic(err)
			}
			c, _ := x509.ParseCertificate(der)
			keys[i] = keyPair{k, c}
		}
	})
	return keys[0], keys[1]
}

var now = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func payload() *etree.Element {
	doc := etree.NewDocument()
	if err := doc.ReadFromString(`<eid:getResultRequest xmlns:eid="http://bsi.bund.de/eID/"><eid:Session><eid:ID>abc</eid:ID></eid:Session><eid:RequestCounter>1</eid:RequestCounter></eid:getResultRequest>`); err != nil {
		panic(err)
	}
	return doc.Root()
}

func signed(t testing.TB, kp keyPair) []byte {
	t.Helper()
	s, err := NewSigner(kp.key, kp.cert, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.Envelope(payload())
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func verifier(kp ...keyPair) *Verifier {
	v := &Verifier{Now: func() time.Time { return now }, RequireTimestamp: true}
	for _, k := range kp {
		v.Certs = append(v.Certs, k.cert)
	}
	return v
}

func TestRoundTrip(t *testing.T) {
	a, b := testKeys(t)
	msg := signed(t, a)
	got, err := verifier(b, a).Verify(msg)
	if err != nil {
		t.Fatalf("verify: %v\n%s", err, msg)
	}
	if got.Payload.Tag != "getResultRequest" || got.Cert != a.cert || !got.Created.Equal(now) || !got.Expires.Equal(now.Add(5*time.Minute)) {
		t.Errorf("verified: %+v", got)
	}
	if !strings.Contains(string(got.Canonical), `<eid:RequestCounter>1</eid:RequestCounter>`) ||
		!strings.Contains(string(got.Canonical), `xmlns:eid="http://bsi.bund.de/eID/"`) {
		t.Errorf("canonical payload: %s", got.Canonical)
	}
	for _, want := range []string{"X509IssuerSerial", AlgRSASHA256, AlgExcC14N, AlgSHA256, `mustUnderstand="1"`} {
		if !strings.Contains(string(msg), want) {
			t.Errorf("message lacks %s", want)
		}
	}
	// Indentation by a proxy or a pretty printer outside the signed parts
	// does not matter.
	doc := etree.NewDocument()
	_ = doc.ReadFromBytes(msg)
	doc.Root().InsertChildAt(0, etree.NewText("\n  "))
	re, _ := doc.WriteToBytes()
	if _, err := verifier(a).Verify(re); err != nil {
		t.Errorf("whitespace between Envelope children: %v", err)
	}
}

// TestInclusiveNamespaces: SignedInfo canonicalised with a prefix list,
// as Apache WSS4J signs, verifies; a changed list does not.
func TestInclusiveNamespaces(t *testing.T) {
	a, _ := testKeys(t)
	s, err := NewSigner(a.key, a.cert, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	s.siPrefixes = "soapenv"
	msg, err := s.Envelope(payload())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(msg), `PrefixList="soapenv"`) {
		t.Fatalf("no prefix list:\n%s", msg)
	}
	if _, err := verifier(a).Verify(msg); err != nil {
		t.Fatalf("verify: %v", err)
	}
	changed := mutate(t, msg, func(d *etree.Document) {
		find(d, "//CanonicalizationMethod/InclusiveNamespaces").CreateAttr("PrefixList", "")
	})
	if _, err := verifier(a).Verify(changed); !errors.Is(err, ErrBadSignature) {
		t.Errorf("changed prefix list: %v", err)
	}
}

func TestSignerRefusesWeakOrForeignKey(t *testing.T) {
	a, b := testKeys(t)
	if _, err := NewSigner(a.key, b.cert, nil); err == nil {
		t.Error("certificate of another key accepted")
	}
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	if _, err := NewSigner(small, a.cert, nil); err == nil {
		t.Error("1024-bit key accepted")
	}
}

// mutate parses msg, lets fn change it, and serialises it again.
func mutate(t *testing.T, msg []byte, fn func(doc *etree.Document)) []byte {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(msg); err != nil {
		t.Fatal(err)
	}
	fn(doc)
	out, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func find(doc *etree.Document, path string) *etree.Element {
	el := doc.FindElement(path)
	if el == nil {
		panic("no " + path)
	}
	return el
}

func TestRefused(t *testing.T) {
	a, b := testKeys(t)
	msg := signed(t, a)
	cases := []struct {
		name string
		msg  []byte
		v    *Verifier
		want error
	}{
		{"wrong certificate", msg, verifier(b), ErrBadSignature},
		{"no trusted certificate", msg, verifier(), ErrBadSignature},
		{"tampered body", []byte(strings.Replace(string(msg), "<eid:RequestCounter>1<", "<eid:RequestCounter>2<", 1)), verifier(a), ErrBadSignature},
		{"tampered timestamp", mutate(t, msg, func(d *etree.Document) {
			find(d, "//Timestamp/Expires").SetText(now.Add(time.Minute).Format(time.RFC3339))
		}), verifier(a), ErrBadSignature},
		{"unsigned", mutate(t, msg, func(d *etree.Document) {
			sec := find(d, "//Security")
			sec.RemoveChild(sec.SelectElement("Signature"))
		}), verifier(a), ErrUnsigned},
		{"no header", mutate(t, msg, func(d *etree.Document) {
			d.Root().RemoveChild(d.Root().SelectElement("Header"))
		}), verifier(a), ErrUnsigned},
		{"empty signature value", mutate(t, msg, func(d *etree.Document) { find(d, "//SignatureValue").SetText("") }), verifier(a), ErrBadSignature},
		{"signature of another message", mutate(t, msg, func(d *etree.Document) {
			find(d, "//SignatureValue").SetText(strings.Repeat("QUFB", 86) + "QQ==")
		}), verifier(a), ErrBadSignature},
		{"wrong serial", mutate(t, msg, func(d *etree.Document) { find(d, "//X509SerialNumber").SetText("1001") }), verifier(a, b), ErrBadSignature},
		{"wrong issuer", mutate(t, msg, func(d *etree.Document) { find(d, "//X509IssuerName").SetText("CN=evil") }), verifier(a), ErrBadSignature},
		{"embedded certificate instead of issuer-serial", mutate(t, msg, func(d *etree.Document) {
			xd := find(d, "//X509Data")
			xd.RemoveChild(xd.SelectElement("X509IssuerSerial"))
			xd.CreateElement("ds:X509Certificate").SetText("MIIB")
		}), verifier(a), ErrBadSignature},
		{"sha1 signature method", mutate(t, msg, func(d *etree.Document) {
			find(d, "//SignatureMethod").CreateAttr("Algorithm", "http://www.w3.org/2000/09/xmldsig#rsa-sha1")
		}), verifier(a), ErrBadSignature},
		{"inclusive c14n", mutate(t, msg, func(d *etree.Document) {
			find(d, "//CanonicalizationMethod").CreateAttr("Algorithm", "http://www.w3.org/TR/2001/REC-xml-c14n-20010315")
		}), verifier(a), ErrBadSignature},
		{"xpath transform", mutate(t, msg, func(d *etree.Document) {
			find(d, "//Reference/Transforms/Transform").CreateAttr("Algorithm", "http://www.w3.org/TR/1999/REC-xpath-19991116")
		}), verifier(a), ErrBadSignature},
		{"expired", msg, &Verifier{Certs: []*x509.Certificate{a.cert}, Now: func() time.Time { return now.Add(time.Hour) }}, ErrExpired},
		{"from the future", msg, &Verifier{Certs: []*x509.Certificate{a.cert}, Now: func() time.Time { return now.Add(-time.Hour) }}, ErrExpired},
		{"timestamp required", mutate(t, msg, func(d *etree.Document) {
			sec := find(d, "//Security")
			sec.RemoveChild(sec.SelectElement("Timestamp"))
		}), verifier(a), ErrMalformed},
		{"doctype", []byte(strings.Replace(string(msg), "?>", "?><!DOCTYPE x [<!ENTITY e \"x\">]>", 1)), verifier(a), ErrMalformed},
		{"two bodies", mutate(t, msg, func(d *etree.Document) {
			d.Root().AddChild(d.Root().SelectElement("Body").Copy())
		}), verifier(a), ErrMalformed},
		{"two payloads", mutate(t, msg, func(d *etree.Document) {
			body := d.Root().SelectElement("Body")
			body.AddChild(body.ChildElements()[0].Copy())
		}), verifier(a), ErrMalformed},
		{"two security headers", mutate(t, msg, func(d *etree.Document) {
			h := d.Root().SelectElement("Header")
			h.AddChild(h.SelectElement("Security").Copy())
		}), verifier(a), ErrMalformed},
		{"object in signature", mutate(t, msg, func(d *etree.Document) {
			find(d, "//Signature").CreateElement("ds:Object").CreateElement("x")
		}), verifier(a), ErrMalformed},
		// Wrapping: the signed Body moves into the header, an evil Body
		// with the same wsu:Id takes its place (duplicate ID).
		{"wrapped: signed body in header, evil body", mutate(t, msg, func(d *etree.Document) {
			env := d.Root()
			body := env.SelectElement("Body")
			env.SelectElement("Header").AddChild(body.Copy())
			find(d, "/Envelope/Body/getResultRequest/RequestCounter").SetText("9")
		}), verifier(a), ErrBadSignature},
		// Wrapping without a duplicate: the evil Body gets another Id, the
		// signed original hides in the header.
		{"wrapped: evil body with another id", mutate(t, msg, func(d *etree.Document) {
			env := d.Root()
			body := env.SelectElement("Body")
			env.SelectElement("Header").AddChild(body.Copy())
			for i, a := range body.Attr {
				if a.Key == "Id" {
					body.Attr[i].Value = "evil"
				}
			}
			find(d, "/Envelope/Body/getResultRequest/RequestCounter").SetText("9")
		}), verifier(a), ErrBadSignature},
		{"reference to a foreign element", mutate(t, msg, func(d *etree.Document) {
			sec := find(d, "//Security")
			x := sec.CreateElement("wsu:Extra")
			x.CreateAttr("wsu:Id", "extra")
			find(d, "//Reference").CreateAttr("URI", "#extra")
		}), verifier(a), ErrBadSignature},
		{"not an envelope", []byte(`<a/>`), verifier(a), ErrMalformed},
		{"not xml", []byte(`{"x":1}`), verifier(a), ErrMalformed},
		{"soap 1.2 envelope", []byte(strings.ReplaceAll(string(msg), NSSOAP, "http://www.w3.org/2003/05/soap-envelope")), verifier(a), ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.v.Verify(tc.msg)
			if !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestNormalizeDN(t *testing.T) {
	for _, tc := range [][2]string{
		{"CN=a, O=b,c=DE", "CN=a,O=b,C=DE"},
		{`CN=a\, b,O=c`, `CN=a\, b,O=c`},
	} {
		if got := NormalizeDN(tc[0]); got != tc[1] {
			t.Errorf("NormalizeDN(%q) = %q, want %q", tc[0], got, tc[1])
		}
	}
}

func FuzzVerify(f *testing.F) {
	a, _ := testKeys(f)
	msg := signed(f, a)
	f.Add(msg)
	f.Add([]byte(`<soapenv:Envelope xmlns:soapenv="` + NSSOAP + `"><soapenv:Body/></soapenv:Envelope>`))
	v := verifier(a)
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := v.Verify(b)
		if err == nil && got.Payload == nil {
			t.Fatal("verified without a payload")
		}
	})
}
