package conformance_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/trustbroker/trustbroker/conformance/dbtest"
	"github.com/trustbroker/trustbroker/conformance/harness"
	"github.com/trustbroker/trustbroker/providers/smartcard/testpki"
)

// cardFamiliesYAML: one provider per card family of the health
// telematics infrastructure, each with the family's defaults (required
// certificate-type policy, Admission extension), over one test PKI.
const cardFamiliesYAML = `
demo: true
server:
  card_login:
    listen: "{{card_listen}}"
    url: "https://{{card_listen}}"
    cert_file: "{{dir}}/server.pem"
    key_file: "{{dir}}/server.key"
providers:
  - id: hba-card
    type: smartcard
    name: {de: Heilberufsausweis, en: Health professional card}
    config:
      family: hba
      trust_anchors: ["{{dir}}/root.pem"]
      intermediates: ["{{dir}}/inter.pem"]
      revocation: {mode: soft} # this PKI has no responder; see card_revocation_test.go
  - id: smcb-card
    type: smartcard
    name: {de: Institutionskarte, en: Institution card}
    config:
      family: smcb
      trust_anchors: ["{{dir}}/root.pem"]
      intermediates: ["{{dir}}/inter.pem"]
      revocation: {mode: soft}
  - id: egk-card
    type: smartcard
    name: {de: Gesundheitskarte, en: Health insurance card}
    config:
      family: egk
      trust_anchors: ["{{dir}}/root.pem"]
      intermediates: ["{{dir}}/inter.pem"]
      revocation: {mode: soft}
relying_parties:
  - id: demo
    name: {de: Demo-Dienst, en: Demo service}
    protocol: oidc
    accepted_credentials: [smartcard]
    min_loa: high
    claims:
      - {name: given_name, purpose: {en: greeting}}
      - {name: family_name, purpose: {en: greeting}}
      - {name: profession, purpose: {en: access by profession}}
      - {name: profession_oid, purpose: {en: access by profession}}
      - {name: telematik_id, purpose: {en: addressing in the TI}}
      - {name: organization, purpose: {en: the institution}}
      - {name: kvnr, purpose: {en: the insured person}}
    oidc:
      redirect_uris: ["{{issuer}}/demo/callback"]
      client_secret: test-secret-0123456789-0123456789-0123
`

// TestCardFamiliesDirectTLS: an HBA, an SMC-B and an eGK (P-256 test
// certificates) log in over the card-login TLS listener, each at the
// provider of its family, and the relying party receives what the card
// says: profession and Telematik-ID, the institution, the KVNR. A card of
// one family is refused by another family's provider (certificate-type
// policy).
func TestCardFamiliesDirectTLS(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		now := time.Now()
		root := testpki.NewRoot("TI Test Root", testpki.P256, now)
		inter := root.NewIntermediate("TI Test Card CA", testpki.P256, now)
		b := startCardBroker(t, cardFamiliesYAML, dsn, t.TempDir(), root, inter, nil, harness.Options{})

		login := func(t *testing.T, provider string, tpl testpki.Template) *harness.Page {
			t.Helper()
			key := testpki.NewKey(testpki.P256)
			leaf := inter.Issue(tpl, key)
			br := harness.NewBrowser(t)
			br.Transport = cardClient(t, key, leaf, inter.DER)
			method := beginLogin(t, b, br)
			if !strings.Contains(method.Body, `value="`+provider+`"`) {
				t.Fatalf("method page lacks %s:\n%s", provider, method.Body)
			}
			return choose(t, br, method, provider)
		}
		for _, tc := range []struct {
			name, provider string
			tpl            testpki.Template
			want           map[string]string
			absent         []string
		}{
			{"hba", "hba-card", testpki.HBA("Erika", "Mustermann", "1-HBA-Testkarte-883110000129068", now), map[string]string{
				"given_name": "Erika", "family_name": "Mustermann", "profession_oid": "1.2.276.0.76.4.30",
				"profession": "Ärztin/Arzt", "telematik_id": "1-HBA-Testkarte-883110000129068",
			}, []string{"kvnr", "organization"}},
			{"smcb", "smcb-card", testpki.SMCB("Zahnarztpraxis Dr. Müller TEST-ONLY", "2-SMC-B-Testkarte-883110000129069", now), map[string]string{
				"profession_oid": "1.2.276.0.76.4.51", "profession": "Zahnarztpraxis",
				"telematik_id": "2-SMC-B-Testkarte-883110000129069", "organization": "Zahnarztpraxis Dr. Müller TEST-ONLY",
			}, []string{"kvnr", "given_name"}},
			{"egk", "egk-card", testpki.EGK("Max", "Versichert", "X110411675", "Test-Krankenkasse", now), map[string]string{
				"given_name": "Max", "family_name": "Versichert", "kvnr": "X110411675", "organization": "Test-Krankenkasse",
			}, []string{"telematik_id", "profession"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				page := login(t, tc.provider, tc.tpl)
				got := claims(t, page)
				for k, v := range tc.want {
					if got[k] != v {
						t.Errorf("%s = %q, want %q (all: %v)", k, got[k], v, got)
					}
				}
				for _, k := range tc.absent {
					if _, ok := got[k]; ok {
						t.Errorf("%s released for a %s: %v", k, tc.name, got)
					}
				}
				if !strings.Contains(page.Body, "de_telematik") {
					t.Errorf("verified_claims without the TI trust framework:\n%s", page.Body)
				}
			})
		}
		t.Run("wrong family", func(t *testing.T) {
			page := login(t, "hba-card", testpki.EGK("Max", "Versichert", "X110411675", "Test-Krankenkasse", now))
			if page.Status != http.StatusUnprocessableEntity {
				t.Fatalf("an eGK at the HBA provider: %d\n%s", page.Status, page.Body)
			}
		})
	})
}
