package smartcard_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trustbroker/trustbroker/providers/smartcard"
)

// gematikDir finds gematik's TEST-ONLY PKI in ../shared (or
// $TRUSTBROKER_TEST_SHARED); tests skip when it is absent.
func gematikDir(t *testing.T) string {
	t.Helper()
	shared := os.Getenv("TRUSTBROKER_TEST_SHARED")
	if shared == "" {
		shared = filepath.Join("..", "..", "..", "shared")
	}
	dir := filepath.Join(shared, "testdata", "gematik-pki", "certificates")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("gematik test PKI not found at %s (set TRUSTBROKER_TEST_SHARED): %v", dir, err)
	}
	return dir
}

func gematikLeaf(t *testing.T, name string) []byte {
	t.Helper()
	certs, err := smartcard.LoadCertificates(name)
	if err != nil {
		t.Fatal(err)
	}
	return certs[0].Raw
}

// The certificates are valid 2024–2029; the clock is fixed inside.
var gematikNow = time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)

func gematikProvider(t *testing.T, family, anchor, extra string) *smartcard.Provider {
	t.Helper()
	s, err := smartcard.Config{Family: family, TrustAnchors: []string{anchor}}.Settings("p")
	if err != nil {
		t.Fatal(err)
	}
	if extra == "optional" {
		s.RequireProfession = false
	}
	// The certificates name gematik's test responders, out of reach here.
	s.Revocation = nil
	return smartcard.New("gematik-"+family, s, func() time.Time { return gematikNow })
}

func TestGematikCards(t *testing.T) {
	dir := gematikDir(t)
	for _, tc := range []struct {
		name, family, anchor, leaf string
		want                       map[string]any
		subject                    string
	}{
		{"HBA brainpool", "hba", "GEM.HBA-CA57/GEM.HBA-CA57-TEST-ONLY.pem", "GEM.HBA-CA57/BabetteBeyer.pem",
			map[string]any{"given_name": "Babette", "family_name": "Beyer", "profession_oid": "1.2.276.0.76.4.45",
				"profession": "Psychotherapeut/-in", "telematik_id": "4-1-Psycho-BabetteBeyer01", "email": "vonsinnen@test.de"},
			"telematik-id:4-1-Psycho-BabetteBeyer01"},
		{"eGK brainpool", "egk", "GEM.EGK-CA51/GEM.EGK-CA51-TEST-ONLY.pem", "GEM.EGK-CA51/LetitiaBeutelsbacher.pem",
			map[string]any{"family_name": "Beutelsbacher-Tütenkram", "kvnr": "X110481951", "organization": "gematik Musterkasse1 GKV NOT-VALID"}, "kvnr:X110481951"},
		{"SMC-B brainpool", "smcb", "GEM.SMCB-CA57/GEM.SMCB-CA57-TEST-ONLY.pem", "GEM.SMCB-CA57/valid/PraxisBabetteBeyer.pem",
			map[string]any{"profession_oid": "1.2.276.0.76.4.52", "profession": "Betriebsstätte Psychotherapeut",
				"organization": "Psychotherapeutische Praxis Babette Beyer TEST-ONLY"}, "telematik-id:1-2-Psycho-BabetteBeyer01"},
		{"SMC-B RSA", "smcb", "GEM.SMCB-CA41-RSA/GEM.SMCB-CA41.pem", "GEM.SMCB-CA41-RSA/Aschoffsche_Apotheke-AUT-RSA.pem",
			map[string]any{"profession_oid": "1.2.276.0.76.4.54"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := gematikProvider(t, tc.family, filepath.Join(dir, tc.anchor), "")
			id, err := authenticate(p, gematikLeaf(t, filepath.Join(dir, tc.leaf)))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.want {
				if id.Attributes[k] != v {
					t.Errorf("%s = %v, want %v (all: %v)", k, id.Attributes[k], v, id.Attributes)
				}
			}
			if tc.subject != "" && id.Subject != tc.subject {
				t.Errorf("subject %q, want %q", id.Subject, tc.subject)
			}
			if !strings.HasPrefix(id.Subject, "telematik-id:") && !strings.HasPrefix(id.Subject, "kvnr:") {
				t.Errorf("subject %q", id.Subject)
			}
			t.Logf("%s: %v", id.Subject, id.Attributes)
		})
	}
}

// TestGematikInvalid: every certificate under GEM.SMCB-CA57/invalid is
// refused, each for its own reason.
func TestGematikInvalid(t *testing.T) {
	dir := gematikDir(t)
	p := gematikProvider(t, "smcb", filepath.Join(dir, "GEM.SMCB-CA57/GEM.SMCB-CA57-TEST-ONLY.pem"), "")
	want := map[string]string{
		"BabetteBeyer-expired.pem":                  smartcard.CodeExpired,
		"BabetteBeyer-not-yet-valid.pem":            smartcard.CodeNotYetValid,
		"BabetteBeyer-selfsigned.pem":               smartcard.CodeUntrusted,
		"BabetteBeyer-invalid-signature.pem":        smartcard.CodeUntrusted,
		"BabetteBeyer-invalid-authorityKeyId.pem":   smartcard.CodeUntrusted,
		"BabetteBeyer-missing-authorityKeyId.pem":   smartcard.CodeMalformed,
		"BabetteBeyer-invalid-keyusage.pem":         smartcard.CodeKeyUsage,
		"BabetteBeyer-missing-keyUsage.pem":         smartcard.CodeKeyUsage,
		"BabetteBeyer-invalid-ext-keyusage.pem":     smartcard.CodeExtKeyUsage,
		"BabetteBeyer-missing-extKeyUsage.pem":      smartcard.CodeExtKeyUsage,
		"BabetteBeyer-invalid-certificate-type.pem": smartcard.CodePolicy,
		"BabetteBeyer-missing-certificate-type.pem": smartcard.CodePolicy,
		"BabetteBeyer-missing-policyId.pem":         smartcard.CodePolicy,
		"BabetteBeyer-invalid-extension-crit.pem":   smartcard.CodeCriticalExtension,
	}
	files, _ := filepath.Glob(filepath.Join(dir, "GEM.SMCB-CA57/invalid/*.pem"))
	if len(files) == 0 {
		t.Fatal("no invalid certificates found")
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			_, err := authenticate(p, gematikLeaf(t, f))
			got := code(err)
			if got == "" {
				t.Fatal("accepted")
			}
			if w, ok := want[name]; !ok {
				t.Errorf("no expectation for %s (refused with %s: %v)", name, got, err)
			} else if got != w {
				t.Errorf("refused with %s (%v), want %s", got, err, w)
			}
		})
	}
}

// TestGematikValidVariants: the valid/ variants are accepted; those
// without admission data only by an instance with `profession: optional`
// (the default `required` refuses them: an SMC-B login without a
// Telematik-ID has no stable subject of its own).
func TestGematikValidVariants(t *testing.T) {
	dir := gematikDir(t)
	anchor := filepath.Join(dir, "GEM.SMCB-CA57/GEM.SMCB-CA57-TEST-ONLY.pem")
	strict := gematikProvider(t, "smcb", anchor, "")
	lax := gematikProvider(t, "smcb", anchor, "optional")
	for name, strictOK := range map[string]bool{
		"PraxisBabetteBeyer.pem":                      true,
		"BabetteBeyer-invalid-extension-not-crit.pem": true,
		"BabetteBeyer-invalid-profession-Item.pem":    true,
		"BabetteBeyer-missing-admission.pem":          false,
		"BabetteBeyer-missing-prof-oid.pem":           false,
	} {
		t.Run(name, func(t *testing.T) {
			leaf := gematikLeaf(t, filepath.Join(dir, "GEM.SMCB-CA57/valid", name))
			_, err := authenticate(strict, leaf)
			if (err == nil) != strictOK {
				t.Errorf("profession required: err = %v", err)
			}
			if _, err := authenticate(lax, leaf); err != nil {
				t.Errorf("profession optional: %v", err)
			}
		})
	}
}
