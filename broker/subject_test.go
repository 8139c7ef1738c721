package broker

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"testing"

	"github.com/trustbroker/trustbroker/broker/config"
)

// TestSubjectSectors: OIDC clients of one sector (OIDC Core §8.1) see the
// same pairwise subject, clients of another sector a different one; SAML
// and gate relying parties keep their per-RP subjects; public is the
// account id.
func TestSubjectSectors(t *testing.T) {
	b := testBroker(t)
	oidcRP := func(id, sectorURI string, redirects ...string) *config.RelyingParty {
		return &config.RelyingParty{ID: id, Protocol: "oidc", SubjectType: "pairwise",
			OIDC: &config.OIDC{RedirectURIs: redirects, SectorIdentifierURI: sectorURI}}
	}
	shop := oidcRP("shop", "", "https://shop.example/cb")
	shopAdmin := oidcRP("shop-admin", "", "https://Shop.example:8443/admin/cb") // same host: port and case do not count
	viaURI := oidcRP("shop-app", "https://shop.example/sector.json", "https://app.example/cb", "https://m.app.example/cb")
	other := oidcRP("other", "", "https://other.example/cb")
	otherViaURI := oidcRP("other-app", "https://other.example/sector.json", "https://shop.example/cb")
	samlSP := &config.RelyingParty{ID: "shop.example", Protocol: "saml", SubjectType: "pairwise", SAML: &config.SAML{}}
	gate := &config.RelyingParty{ID: "wiki", Protocol: "gate", SubjectType: "pairwise"}

	sub := b.Subject(shop, "acct")
	for _, rp := range []*config.RelyingParty{shopAdmin, viaURI} {
		if got := b.Subject(rp, "acct"); got != sub {
			t.Errorf("%s, in sector shop.example, sees %s, shop sees %s", rp.ID, got, sub)
		}
	}
	for _, rp := range []*config.RelyingParty{other, otherViaURI, samlSP, gate} {
		if b.Subject(rp, "acct") == sub {
			t.Errorf("%s, outside sector shop.example, sees shop's subject", rp.ID)
		}
	}
	if b.Subject(other, "acct") != b.Subject(otherViaURI, "acct") {
		t.Error("sector_identifier_uri does not put other-app into sector other.example")
	}
	if b.Subject(shop, "acct") == b.Subject(shop, "acct-2") {
		t.Error("two accounts share a subject")
	}

	// The hash input, pinned: an OIDC sector enters tagged, a SAML SP or
	// gate service by its id, as before sectors existed (their subjects
	// did not change).
	want := func(sector string) string {
		m := hmac.New(sha256.New, b.o.PairwiseKey)
		m.Write([]byte(sector + "\x00acct"))
		return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	if sub != want("oidc-sector/shop.example") {
		t.Errorf("OIDC subject %s", sub)
	}
	if b.Subject(samlSP, "acct") != want("shop.example") || b.Subject(gate, "acct") != want("wiki") {
		t.Error("SAML or gate subjects changed")
	}

	pub := oidcRP("pub", "", "https://shop.example/cb")
	pub.SubjectType = "public"
	if b.Subject(pub, "acct") != "acct" {
		t.Error("public subject is not the account id")
	}
}
