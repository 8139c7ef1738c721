package saml

import (
	"strings"
	"testing"
	"time"

	crewsaml "github.com/crewjam/saml"
	"github.com/crewjam/saml/xmlenc"

	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/broker/loa"
)

func rac(cmp string, refs ...string) *crewsaml.RequestedAuthnContext {
	return &crewsaml.RequestedAuthnContext{Comparison: cmp, AuthnContextClassRefs: refs}
}

const (
	passwordClass = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
	bsiHoch       = loa.URIBSIHoch
)

// TestRequestedAuthnContext: the level a request needs, the class the
// assertion carries, and the status when it cannot be met, per comparison.
func TestRequestedAuthnContext(t *testing.T) {
	for _, tc := range []struct {
		name    string
		rac     *crewsaml.RequestedAuthnContext
		rpMin   loa.Level
		wantMin loa.Level
		startSE string // second-level status at the start, "" = none
		reached loa.Level
		class   string // asserted class; "" with endSE
		endSE   string
	}{
		{"none asked", nil, loa.Substantial, loa.None, "", loa.High, loa.URIHigh, ""},
		{"minimum substantial, high reached", rac("minimum", loa.URISubstantial), loa.Low, loa.Substantial, "", loa.High, loa.URIHigh, ""},
		{"minimum high, substantial reached", rac("minimum", loa.URIHigh), loa.Low, loa.High, "", loa.Substantial, "", crewsaml.StatusNoAuthnContext},
		{"omitted comparison is exact", rac("", loa.URISubstantial), loa.Low, loa.Substantial, "", loa.High, loa.URISubstantial, ""},
		{"exact high", rac("exact", loa.URIHigh), loa.Low, loa.High, "", loa.High, loa.URIHigh, ""},
		{"exact low or substantial, high reached", rac("exact", loa.URILow, loa.URISubstantial), loa.Low, loa.Low, "", loa.High, loa.URISubstantial, ""},
		{"exact substantial, low reached", rac("exact", loa.URISubstantial), loa.Low, loa.Substantial, "", loa.Low, "", crewsaml.StatusNoAuthnContext},
		{"exact low below the SP's minimum", rac("exact", loa.URILow), loa.Substantial, loa.None, crewsaml.StatusNoAuthnContext, 0, "", ""},
		{"exact BSI URI kept as written", rac("exact", bsiHoch), loa.Low, loa.High, "", loa.High, bsiHoch, ""},
		{"better substantial", rac("better", loa.URISubstantial), loa.Low, loa.High, "", loa.High, loa.URIHigh, ""},
		{"better substantial, substantial reached", rac("better", loa.URISubstantial), loa.Low, loa.High, "", loa.Substantial, "", crewsaml.StatusNoAuthnContext},
		{"better high cannot be met", rac("better", loa.URIHigh), loa.Low, loa.None, crewsaml.StatusNoAuthnContext, 0, "", ""},
		{"maximum substantial caps high", rac("maximum", loa.URISubstantial), loa.Low, loa.None, "", loa.High, loa.URISubstantial, ""},
		{"maximum high, low reached", rac("maximum", loa.URIHigh), loa.Low, loa.None, "", loa.Low, loa.URILow, ""},
		{"maximum low below the SP's minimum", rac("maximum", loa.URILow), loa.Substantial, loa.None, crewsaml.StatusNoAuthnContext, 0, "", ""},
		{"only unknown classes", rac("exact", passwordClass), loa.Low, loa.None, crewsaml.StatusNoAuthnContext, 0, "", ""},
		{"unknown classes ignored beside known", rac("minimum", passwordClass, loa.URILow), loa.Low, loa.Low, "", loa.Substantial, loa.URISubstantial, ""},
		{"short names are not classes", rac("minimum", "high"), loa.Low, loa.None, crewsaml.StatusNoAuthnContext, 0, "", ""},
		{"unknown comparison", rac("roughly", loa.URILow), loa.Low, loa.None, crewsaml.StatusRequestUnsupported, 0, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, se := requestedLoA(tc.rac, tc.rpMin)
			if tc.startSE != "" {
				if se == nil || se.SecondLevel != tc.startSE {
					t.Fatalf("start: %v, want %s", se, tc.startSE)
				}
				return
			}
			if se != nil || got != tc.wantMin {
				t.Fatalf("start: %v %v, want %v", got, se, tc.wantMin)
			}
			class, se := assertedClass(tc.rac, tc.reached)
			if tc.endSE != "" {
				if se == nil || se.SecondLevel != tc.endSE || se.TopLevel != crewsaml.StatusResponder {
					t.Fatalf("end: %q %v, want %s", class, se, tc.endSE)
				}
				return
			}
			if se != nil || class != tc.class {
				t.Fatalf("end: %q %v, want %q", class, se, tc.class)
			}
		})
	}
}

func TestNameIDFormat(t *testing.T) {
	f := func(s string) *crewsaml.NameIDPolicy { return &crewsaml.NameIDPolicy{Format: &s} }
	def := &serviceProvider{formats: []string{config.NameIDPersistent}}
	all := &serviceProvider{formats: []string{config.NameIDTransient, config.NameIDEmail, config.NameIDPersistent}}
	for _, tc := range []struct {
		sp     *serviceProvider
		policy *crewsaml.NameIDPolicy
		want   string
	}{
		{def, nil, config.NameIDPersistent},
		{def, &crewsaml.NameIDPolicy{}, config.NameIDPersistent},
		{def, f(string(crewsaml.UnspecifiedNameIDFormat)), config.NameIDPersistent},
		{def, f(string(crewsaml.PersistentNameIDFormat)), config.NameIDPersistent},
		{def, f(string(crewsaml.TransientNameIDFormat)), ""},
		{def, f(string(crewsaml.EmailAddressNameIDFormat)), ""},
		{def, f("urn:oasis:names:tc:SAML:2.0:nameid-format:encrypted"), ""},
		{def, f("urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName"), ""},
		{all, nil, config.NameIDTransient},
		{all, f(string(crewsaml.EmailAddressNameIDFormat)), config.NameIDEmail},
		{all, f(string(crewsaml.PersistentNameIDFormat)), config.NameIDPersistent},
	} {
		got, se := tc.sp.nameIDFormat(tc.policy)
		if tc.want == "" {
			if se == nil || se.TopLevel != crewsaml.StatusRequester || se.SecondLevel != crewsaml.StatusInvalidNameIDPolicy {
				t.Errorf("%v %+v: %q %v, want InvalidNameIDPolicy", tc.sp.formats, tc.policy, got, se)
			}
		} else if se != nil || got != tc.want {
			t.Errorf("%v %+v: %q %v, want %q", tc.sp.formats, tc.policy, got, se, tc.want)
		}
	}
}

func TestEncrypterChoice(t *testing.T) {
	m := func(algs ...string) []crewsaml.EncryptionMethod {
		var out []crewsaml.EncryptionMethod
		for _, a := range algs {
			out = append(out, crewsaml.EncryptionMethod{Algorithm: a})
		}
		return out
	}
	const (
		gcm128 = "http://www.w3.org/2009/xmlenc11#aes128-gcm"
		cbc256 = "http://www.w3.org/2001/04/xmlenc#aes256-cbc"
		oaep   = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"
	)
	for _, tc := range []struct {
		methods []crewsaml.EncryptionMethod
		want    xmlenc.BlockCipher
	}{
		{nil, xmlenc.AES256CBC},
		{m(oaep), xmlenc.AES256CBC},
		{m(cbc256, gcm128), xmlenc.AES256GCM},
		{m(gcm128), xmlenc.AES256GCM},
		{m(cbc256, oaep), xmlenc.AES256CBC},
	} {
		e := encrypter(tc.methods)
		rsa, ok := e.(xmlenc.RSA)
		if !ok || rsa.BlockCipher.Algorithm() != tc.want.Algorithm() || rsa.Algorithm() != oaep {
			t.Errorf("%v: %T %v", tc.methods, e, e)
		}
	}
}

// TestConfigSAML: the SAML part of a registration is checked with the
// key named, and SAML needs an RSA key.
func TestConfigSAML(t *testing.T) {
	base := `
relying_parties:
  - id: sp
    name: {de: D, en: S}
    protocol: saml
    accepted_credentials: [eid]
    saml:
      entity_id: https://sp.example/saml
      acs_urls: [https://sp.example/acs]
`
	for _, tc := range []struct{ extra, want string }{
		{"", ""},
		{"      name_id_formats: [transient, email]\n", ""},
		{"      name_id_formats: [persistent, kerberos]\n", `relying_parties[0].saml.name_id_formats[1]: "kerberos": use persistent, transient or email`},
		{"      name_id_formats: [email, email]\n", `relying_parties[0].saml.name_id_formats[1]: "email" is listed twice`},
		{"      require_signed_requests: true\n", "relying_parties[0].saml.require_signed_requests: needs metadata_file or metadata_url"},
		{"keys:\n  algorithms: [ES256]\n", "relying_parties[0].protocol: saml signs with RSA-SHA256: add RS256 to keys.algorithms"},
		{"      metadata_file: /x.xml\n", "relying_parties[0].saml: name one of acs_urls, metadata_file, metadata_url"},
	} {
		cfg, err := config.Parse([]byte(base+tc.extra), "t.yaml")
		if err == nil {
			err = cfg.Validate()
		}
		if tc.want == "" {
			if err != nil {
				t.Errorf("%q: %v", tc.extra, err)
			} else if tc.extra == "" && strings.Join(cfg.RelyingParties[0].SAML.NameIDFormats, ",") != "persistent" {
				t.Errorf("default name_id_formats: %v", cfg.RelyingParties[0].SAML.NameIDFormats)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.extra, err, tc.want)
		}
	}
}

// TestConfigSAMLMetadataURL: metadata_url needs its certificate and a safe
// URL.
func TestConfigSAMLMetadataURL(t *testing.T) {
	base := `
relying_parties:
  - id: sp
    name: {de: D, en: S}
    protocol: saml
    accepted_credentials: [eid]
    saml:
      entity_id: https://sp.example/saml
`
	for _, tc := range []struct{ extra, want string }{
		{"      metadata_url: https://sp.example/md\n      metadata_cert_file: /c.pem\n", ""},
		{"      metadata_url: http://localhost:8080/md\n      metadata_cert_file: /c.pem\n", ""},
		{"      metadata_url: https://sp.example/md\n", "relying_parties[0].saml.metadata_cert_file: missing"},
		{"      metadata_url: http://sp.example/md\n      metadata_cert_file: /c.pem\n", "relying_parties[0].saml.metadata_url:"},
		{"      metadata_url: https://sp.example/md\n      metadata_cert_file: /c.pem\n      metadata_refresh: -1s\n", "metadata_refresh: must not be negative"},
		{"      metadata_url: https://sp.example/md\n      metadata_cert_file: /c.pem\n      acs_urls: [https://sp.example/acs]\n", "name one of acs_urls, metadata_file, metadata_url"},
	} {
		cfg, err := config.Parse([]byte(base+tc.extra), "t.yaml")
		if err == nil {
			err = cfg.Validate()
		}
		if tc.want == "" {
			if err != nil {
				t.Errorf("%q: %v", tc.extra, err)
			} else if cfg.RelyingParties[0].SAML.MetadataRefresh != time.Hour {
				t.Errorf("default metadata_refresh %v", cfg.RelyingParties[0].SAML.MetadataRefresh)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.extra, err, tc.want)
		}
	}
}
