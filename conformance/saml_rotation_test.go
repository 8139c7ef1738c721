package conformance_test

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"strings"
	"testing"

	crewsaml "github.com/crewjam/saml"

	"github.com/trustbroker/trustbroker/broker/keys"
	"github.com/trustbroker/trustbroker/conformance/dbtest"
	"github.com/trustbroker/trustbroker/conformance/harness"
)

// signingCerts are the public keys (SubjectPublicKeyInfo) of the signing
// certificates of IdP metadata.
func signingCerts(md *crewsaml.EntityDescriptor) []string {
	var out []string
	for _, kd := range md.IDPSSODescriptors[0].KeyDescriptors {
		if kd.Use != "signing" && kd.Use != "" {
			continue
		}
		for _, c := range kd.KeyInfo.X509Data.X509Certificates {
			der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(c.Data), ""))
			if err != nil {
				continue
			}
			cert, err := x509.ParseCertificate(der)
			if err != nil {
				continue
			}
			out = append(out, string(cert.RawSubjectPublicKeyInfo))
		}
	}
	return out
}

// TestSAMLKeyRotation: the metadata announces the next RS256 key before it
// signs, so an SP that fetched the metadata before a key rotation accepts
// the Responses signed with the new key; an SP that knew only the old
// certificate does not.
func TestSAMLKeyRotation(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		c := &clock{t: nowUTC()}
		b := harness.Start(t, samlYAML, dsn, harness.Options{Now: c.now})
		before := newSAMLSP(t, b, spACS)
		certs := signingCerts(before.IDPMetadata)
		if len(certs) != 2 {
			t.Fatalf("metadata signing certificates: %d, want the active and the next key", len(certs))
		}
		onlyActive := newSAMLSP(t, b, spACS)
		var kept []crewsaml.KeyDescriptor
		seen := false
		for _, kd := range onlyActive.IDPMetadata.IDPSSODescriptors[0].KeyDescriptors {
			if kd.Use == "signing" || kd.Use == "" {
				if seen {
					continue
				}
				seen = true
				kd.KeyInfo.X509Data.X509Certificates = kd.KeyInfo.X509Data.X509Certificates[:1]
			}
			kept = append(kept, kd)
		}
		onlyActive.IDPMetadata.IDPSSODescriptors[0].KeyDescriptors = kept
		if got := signingCerts(onlyActive.IDPMetadata); len(got) != 1 || got[0] != certs[0] {
			t.Fatalf("active certificate first: %d", len(got))
		}

		ctx := context.Background()
		if err := b.Server.Keys.Rotate(ctx, keys.RS256); err != nil {
			t.Fatal(err)
		}
		if err := b.Server.Keys.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		after := signingCerts(newSAMLSP(t, b, spACS).IDPMetadata)
		if len(after) < 2 || after[0] != certs[1] {
			t.Fatalf("after the rotation the announced key must sign: %d certificates", len(after))
		}

		br := harness.NewBrowser(t)
		u, id := redirectRequest(t, before)
		page := samlLogin(t, br, br.Get(u))
		if _, err := acsParse(t, before, page, id); err != nil {
			t.Errorf("SP with the metadata from before the rotation: %v", samlErr(err))
		}
		u, id = redirectRequest(t, onlyActive)
		if _, err := acsParse(t, onlyActive, samlLogin(t, br, br.Get(u)), id); err == nil {
			t.Error("an SP that knew only the old certificate accepted the new signature")
		}
	})
}
