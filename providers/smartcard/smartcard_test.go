package smartcard_test

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/broker/loa"
	"github.com/trustbroker/trustbroker/providers"
	"github.com/trustbroker/trustbroker/providers/smartcard"
	"github.com/trustbroker/trustbroker/providers/smartcard/testpki"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// pki is one root → intermediate hierarchy per key type.
type pki struct {
	root, inter *testpki.CA
	dir         string
}

func newPKI(t *testing.T, kt testpki.KeyType) *pki {
	t.Helper()
	root := testpki.NewRoot("Test Root CA", kt, now)
	inter := root.NewIntermediate("Test Card CA", kt, now)
	dir := t.TempDir()
	write(t, filepath.Join(dir, "root.pem"), testpki.PEM(root.DER))
	write(t, filepath.Join(dir, "inter.pem"), testpki.PEM(inter.DER))
	return &pki{root: root, inter: inter, dir: dir}
}

func write(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// provider builds an instance through the registry's factory, from YAML.
func provider(t *testing.T, yamlText string) *smartcard.Provider {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(yamlText), &doc); err != nil {
		t.Fatal(err)
	}
	p, err := smartcard.Factory("card", doc.Content[0], "providers[0].config", providers.Deps{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatalf("factory: %v", err)
	}
	return p.(*smartcard.Provider)
}

func (k *pki) config(family string, extra string) string {
	return "family: " + family + "\ntrust_anchors: [" + filepath.Join(k.dir, "root.pem") + "]\nintermediates: [" +
		filepath.Join(k.dir, "inter.pem") + "]\n" +
		// This PKI names no responder: soft-fail lets its cards in (see revocation_test.go).
		"revocation: {mode: soft}\n" + extra
}

func authenticate(p *smartcard.Provider, chain ...[]byte) (*providers.Identity, error) {
	return p.Authenticate(context.Background(), providers.Request{Lang: "de"}, chain)
}

func code(err error) string {
	if pe, ok := providers.PublicError(err); ok {
		return pe.Code
	}
	if err != nil {
		return "other: " + err.Error()
	}
	return ""
}

func TestFamilies(t *testing.T) {
	for _, kt := range []struct {
		name string
		kt   testpki.KeyType
	}{{"p256", testpki.P256}, {"rsa", testpki.RSA}, {"brainpool", testpki.Brainpool}} {
		t.Run(kt.name, func(t *testing.T) {
			t.Parallel()
			k := newPKI(t, kt.kt)
			leafKey := testpki.NewKey(kt.kt)
			cases := []struct {
				family, extra string
				tpl           testpki.Template
				subject       string
				attrs         map[string]any
			}{
				{"hba", "", testpki.HBA("Anna", "Ärztin", "1-HBA-Testkarte-883110000129068", now),
					"telematik-id:1-HBA-Testkarte-883110000129068",
					map[string]any{"given_name": "Anna", "family_name": "Ärztin", "profession_oid": "1.2.276.0.76.4.30", "profession": "Ärztin/Arzt", "telematik_id": "1-HBA-Testkarte-883110000129068"}},
				{"smcb", "", testpki.SMCB("Zahnarztpraxis Dr. Test", "1-SMC-B-Testkarte-883110000116873", now),
					"telematik-id:1-SMC-B-Testkarte-883110000116873",
					map[string]any{"organization": "Zahnarztpraxis Dr. Test", "profession_oid": "1.2.276.0.76.4.51", "profession": "Zahnarztpraxis"}},
				{"egk", "", testpki.EGK("Erika", "Mustermann", "X110411675", "Test-BKK", now),
					"kvnr:X110411675", map[string]any{"kvnr": "X110411675", "organization": "Test-BKK", "family_name": "Mustermann"}},
				{"employee", "subject_attribute: 2.16.840.1.113730.3.1.3\n", testpki.Employee("Max", "Muster", "Beispiel AG", "max@example.org", "E-4711", now),
					"employee:E-4711", map[string]any{"employee_number": "E-4711", "email": "max@example.org", "organization": "Beispiel AG"}},
			}
			for _, c := range cases {
				p := provider(t, k.config(c.family, c.extra))
				leaf := k.inter.Issue(c.tpl, leafKey)
				id, err := authenticate(p, leaf)
				if err != nil {
					t.Fatalf("%s: %v", c.family, err)
				}
				if id.Subject != c.subject || id.LoA != loa.High || strings.Join(id.AMR, " ") != "sc hwk pin" {
					t.Errorf("%s: subject %q loa %v amr %v", c.family, id.Subject, id.LoA, id.AMR)
				}
				for key, want := range c.attrs {
					if id.Attributes[key] != want {
						t.Errorf("%s: %s = %v, want %v", c.family, key, id.Attributes[key], want)
					}
				}
				if id.Evidence == nil || len(id.Evidence.Items) != 1 {
					t.Fatalf("%s: no evidence", c.family)
				}
				var ev map[string]any
				_ = json.Unmarshal(id.Evidence.Items[0], &ev)
				if ev["type"] != "electronic_signature" || ev["issuer"] == "" || ev["revocation"] != "unavailable" || ev["revocation_source"] != "none" {
					t.Errorf("%s: evidence %v", c.family, ev)
				}
			}
		})
	}
}

func TestSignatureCardSubjectSurvivesRenewal(t *testing.T) {
	k := newPKI(t, testpki.P256)
	p := provider(t, k.config("signature", "loa: substantial\n"))
	a, err := authenticate(p, k.inter.Issue(testpki.Signature("Max", "Muster", "PN-123", now), testpki.NewKey(testpki.P256)))
	if err != nil {
		t.Fatal(err)
	}
	b, err := authenticate(p, k.inter.Issue(testpki.Signature("Max", "Muster", "PN-123", now), testpki.NewKey(testpki.P256)))
	if err != nil {
		t.Fatal(err)
	}
	if a.Subject != b.Subject || !strings.HasPrefix(a.Subject, "x509:") {
		t.Fatalf("subjects %q %q", a.Subject, b.Subject)
	}
	if a.Attributes["qualified"] != true || a.Attributes["serial_number"] != "PN-123" || a.LoA != loa.Substantial {
		t.Fatalf("attributes %v loa %v", a.Attributes, a.LoA)
	}
}

func TestRefusals(t *testing.T) {
	k := newPKI(t, testpki.P256)
	other := newPKI(t, testpki.P256)
	key := testpki.NewKey(testpki.P256)
	hba := func(mod func(*testpki.Template)) []byte {
		tpl := testpki.HBA("Anna", "Ärztin", "1-HBA-1", now)
		if mod != nil {
			mod(&tpl)
		}
		return k.inter.Issue(tpl, key)
	}
	// A forged intermediate: the real intermediate's name, another key,
	// self-issued under a fake root of the same name as the real root.
	fakeRoot := testpki.NewRoot("Test Root CA", testpki.P256, now)
	forged := fakeRoot.NewIntermediate("Test Card CA", testpki.P256, now)
	forgedLeaf := forged.Issue(testpki.HBA("Eve", "Fälscherin", "1-HBA-1", now), key)

	p := provider(t, k.config("hba", ""))
	for _, tc := range []struct {
		name  string
		chain [][]byte
		want  string
	}{
		{"expired", [][]byte{hba(func(t *testpki.Template) { t.NotBefore, t.NotAfter = now.Add(-48*time.Hour), now.Add(-24*time.Hour) })}, smartcard.CodeExpired},
		{"not yet valid", [][]byte{hba(func(t *testpki.Template) { t.NotBefore = now.Add(24 * time.Hour) })}, smartcard.CodeNotYetValid},
		{"wrong trust anchor", [][]byte{other.inter.Issue(testpki.HBA("Anna", "Ärztin", "1-HBA-1", now), key), other.inter.DER}, smartcard.CodeUntrusted},
		{"missing clientAuth", [][]byte{hba(func(t *testpki.Template) { t.ExtKeyUse = []asn1.ObjectIdentifier{testpki.OIDServerAuth} })}, smartcard.CodeExtKeyUsage},
		{"wrong policy", [][]byte{hba(func(t *testpki.Template) { t.Policies = []asn1.ObjectIdentifier{testpki.OIDPolicySMCBAut} })}, smartcard.CodePolicy},
		{"wrong key usage", [][]byte{hba(func(t *testpki.Template) { t.KeyUsage = x509.KeyUsageContentCommitment })}, smartcard.CodeKeyUsage},
		{"forged intermediate", [][]byte{forgedLeaf, forged.DER}, smartcard.CodeUntrusted},
		{"no authority key id", [][]byte{hba(func(t *testpki.Template) { t.NoAuthorityKeyID = true })}, smartcard.CodeMalformed},
		{"critical unknown extension", [][]byte{hba(func(t *testpki.Template) {
			t.Extra = []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 2, 3, 4}, Critical: true, Value: []byte{5, 0}}}
		})}, smartcard.CodeCriticalExtension},
		{"no admission", [][]byte{hba(func(t *testpki.Template) { t.Admission = nil })}, smartcard.CodeAdmission},
		{"CA certificate as leaf", [][]byte{k.inter.DER}, smartcard.CodeCA},
		{"garbage", [][]byte{[]byte("not a certificate")}, smartcard.CodeMalformed},
		{"nothing", nil, smartcard.CodeNoCertificate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := authenticate(p, tc.chain...)
			if got := code(err); got != tc.want {
				t.Fatalf("code %q (%v), want %q; identity %v", got, err, tc.want, id)
			}
			pe, _ := providers.PublicError(err)
			if pe.Public == "" {
				t.Fatal("no public message")
			}
		})
	}
	// profession: optional logs the card in without profession data.
	opt := provider(t, k.config("hba", "profession: optional\n"))
	id, err := authenticate(opt, hba(func(t *testpki.Template) { t.Admission = nil }))
	if err != nil || !strings.HasPrefix(id.Subject, "x509:") || id.Attributes["profession_oid"] != nil {
		t.Fatalf("optional profession: %v %v", id, err)
	}
}

func TestConfigErrors(t *testing.T) {
	var doc yaml.Node
	_ = yaml.Unmarshal([]byte("family: tarot\ntrust_anchors: [/nonexistent.pem]\nrequired_eku: [bogus]\nloa: max\nsubject_atribute: x\n"), &doc)
	_, err := smartcard.Factory("card", doc.Content[0], "providers[0].config", providers.Deps{})
	var es config.Errors
	if !errors.As(err, &es) {
		t.Fatalf("err = %v", err)
	}
	msg := err.Error()
	for _, want := range []string{"subject_atribute"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q not reported in %v", want, msg)
		}
	}
	var s smartcard.Config
	_ = s
	_, err = smartcard.Config{Family: "tarot", TrustAnchors: []string{"/nonexistent.pem"}, RequiredEKU: []string{"bogus"}, LoA: "max"}.Settings("p")
	for _, want := range []string{"p.family", "p.trust_anchors[0]", "p.required_eku[0]", "p.loa"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q not reported in %v", want, err)
		}
	}
}
