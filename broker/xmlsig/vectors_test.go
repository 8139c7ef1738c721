package xmlsig_test

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trustbroker/trustbroker/broker/xmlsig"
)

// middlewareDir finds the Governikus eIDAS Middleware vectors in ../shared
// (or $TRUSTBROKER_TEST_SHARED): skipped when absent, a failure when the
// variable is set and they are missing.
func middlewareDir(t testing.TB) string {
	t.Helper()
	shared, set := os.LookupEnv("TRUSTBROKER_TEST_SHARED")
	if !set {
		shared = filepath.Join("..", "..", "..", "shared")
	}
	dir := filepath.Join(shared, "testdata", "eidas-middleware")
	if _, err := os.Stat(filepath.Join(dir, "Metadata.xml")); err != nil {
		if set {
			t.Fatalf("TRUSTBROKER_TEST_SHARED is set but the eIDAS Middleware vectors are missing: %v", err)
		}
		t.Skipf("eIDAS Middleware vectors not found at %s (set TRUSTBROKER_TEST_SHARED): %v", dir, err)
	}
	return dir
}

func readCert(t testing.TB, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := pem.Decode(b); p != nil {
		b = p.Bytes
	}
	c, err := x509.ParseCertificate(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

// keyInfoCert extracts the certificate the vector carries in its KeyInfo:
// the test trusts it explicitly (Verify itself never looks there).
func keyInfoCert(t testing.TB, data []byte) *x509.Certificate {
	t.Helper()
	s := string(data)
	i := strings.Index(s, "<ds:X509Certificate>")
	j := strings.Index(s, "</ds:X509Certificate>")
	if i < 0 || j < i {
		t.Fatal("no X509Certificate in vector")
	}
	raw := strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == ' ' {
			return -1
		}
		return r
	}, s[i+len("<ds:X509Certificate>"):j])
	raw = strings.ReplaceAll(raw, "&#13;", "")
	der, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestMiddlewareVectors(t *testing.T) {
	dir := middlewareDir(t)
	wrong := readCert(t, filepath.Join(dir, "WrongSignerCert.cer"))
	newer := readCert(t, filepath.Join(dir, "EidasSignerTest_x509.cer"))
	mwCert := readCert(t, filepath.Join(dir, "middleware_sign_crypt.cer"))
	cases := []struct {
		file   string
		alg    string
		verify bool
	}{
		{"EidasSamlRequestWithOnlyProviderName.xml", xmlsig.AlgRSASHA256, true},
		{"EidasSamlRequestWithOnlyRequesterId.xml", xmlsig.AlgRSASHA256, true},
		{"EidasSamlRequestWithProviderNameAndRequesterId.xml", xmlsig.AlgRSASHA256, true},
		{"EidasSamlRequestWithoutProviderName.xml", xmlsig.AlgRSASHA256, true},
		{"EidasSamlRequest_13062017.xml", xmlsig.AlgRSAPSSSHA256, true},
		{"EidasSamlRequestWithoutNameIDPolicy.xml", xmlsig.AlgRSAPSSSHA256, true},
		{"EidasSamlRequestWithWrongNameIDPolicyType.xml", "", false},
		{"Metadata.xml", xmlsig.AlgRSAPSSSHA256, true},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(dir, c.file))
			if err != nil {
				t.Fatal(err)
			}
			own := keyInfoCert(t, data)
			if c.file == "Metadata.xml" && !own.Equal(mwCert) {
				t.Fatal("Metadata.xml is not signed by middleware_sign_crypt.cer")
			}
			doc, err := xmlsig.Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			opts := xmlsig.VerifyOptions{Certificates: []*x509.Certificate{own}}
			if c.alg == xmlsig.AlgRSASHA256 {
				// These four digest with SHA-1: refused unless allowed.
				if _, err := xmlsig.Verify(doc.Root(), opts); !errors.Is(err, xmlsig.ErrInvalid) || !strings.Contains(err.Error(), "DigestMethod") {
					t.Fatalf("SHA-1 digest accepted by default: %v", err)
				}
				opts.AllowSHA1Digest = true
			}
			v, err := xmlsig.Verify(doc.Root(), opts)
			if !c.verify {
				if err == nil || !errors.Is(err, xmlsig.ErrInvalid) {
					t.Fatalf("negative vector verified: %v", err)
				}
				t.Logf("refused as expected: %v", err)
				return
			}
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			if v.Algorithm != c.alg || !v.Certificate.Equal(own) {
				t.Fatalf("algorithm %s, want %s", v.Algorithm, c.alg)
			}
			if xmlsig.HasSignature(v.Element) {
				t.Fatal("verified element still carries its signature")
			}
			if v.Element.Tag != doc.Root().Tag || v.Element.SelectAttrValue("ID", "") != doc.Root().SelectAttrValue("ID", "") {
				t.Fatal("verified element is not the signed root")
			}
			// Any other certificate is refused, whatever KeyInfo says.
			for _, other := range []*x509.Certificate{wrong, newer, mwCert} {
				if other.Equal(own) {
					continue
				}
				if _, err := xmlsig.Verify(doc.Root(), xmlsig.VerifyOptions{Certificates: []*x509.Certificate{other}, AllowSHA1Digest: true}); !errors.Is(err, xmlsig.ErrInvalid) {
					t.Fatalf("verified with %s: %v", other.Subject, err)
				}
			}
			// The algorithm policy applies: RSA PKCS#1 v1.5 only when allowed.
			if _, err := xmlsig.Verify(doc.Root(), xmlsig.VerifyOptions{Certificates: []*x509.Certificate{own},
				Algorithms: []string{xmlsig.AlgECDSASHA256}, AllowSHA1Digest: true}); !errors.Is(err, xmlsig.ErrInvalid) {
				t.Fatalf("algorithm policy ignored: %v", err)
			}
		})
	}
}
