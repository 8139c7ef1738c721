package conformance_test

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/trustbroker/trustbroker/conformance/dbtest"
	"github.com/trustbroker/trustbroker/conformance/harness"
)

// sectorYAML: amt and amt2 share the sector localhost (their redirect
// URIs' host); far names a sector_identifier_uri on 127.0.0.1, another
// sector, served over TLS by the test.
const sectorYAML = `
providers:
  - id: eid-fake
    type: fake-redirect
    name: {de: Test-Ausweis, en: Test ID card}
    config:
      kind: eid
      subject: restricted-id-0001
      loa: high
      amr: [sc, pin, mfa]
      attributes: {given_name: Erika}
relying_parties:
  - id: amt
    name: {de: Bürgeramt, en: Citizens' office}
    protocol: oidc
    accepted_credentials: [eid]
    claims: [{name: given_name, required: true, purpose: {de: Anrede, en: greeting}}]
    oidc:
      redirect_uris: [` + rpRedirect + `]
      client_secret: ` + consentSecret + `
      backchannel_logout_uri: BC_AMT
  - id: amt2
    name: {de: Kfz-Stelle, en: Vehicle office}
    protocol: oidc
    accepted_credentials: [eid]
    claims: [{name: given_name, required: true, purpose: {de: Anrede, en: greeting}}]
    oidc:
      redirect_uris: [` + rpRedirect + `]
      client_secret: ` + consentSecret + `
      backchannel_logout_uri: BC_AMT2
  - id: far
    name: {de: Anderswo, en: Elsewhere}
    protocol: oidc
    accepted_credentials: [eid]
    claims: [{name: given_name, required: true, purpose: {de: Anrede, en: greeting}}]
    oidc:
      redirect_uris: [` + rpRedirect + `]
      sector_identifier_uri: SECTOR_URI
      sector_identifier_ca_file: SECTOR_CA
      client_secret: ` + consentSecret + `
      backchannel_logout_uri: BC_FAR
`

// TestOIDCPairwiseSectors: two clients of one sector see the same
// subject, a client of another sector (sector_identifier_uri, fetched over
// TLS at start) a different one; withdrawing the consent for one client of
// the shared sector revokes only that client's tokens and logs only it
// out; a later logout names each client's own subject.
func TestOIDCPairwiseSectors(t *testing.T) {
	sector := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`["` + rpRedirect + `"]`))
	}))
	defer sector.Close()
	ca := filepath.Join(t.TempDir(), "sector-ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: sector.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		bcAmt, logoutsAmt := backchannelReceiver(t)
		bcAmt2, logoutsAmt2 := backchannelReceiver(t)
		bcFar, logoutsFar := backchannelReceiver(t)
		y := strings.NewReplacer("BC_AMT2", bcAmt2, "BC_AMT", bcAmt, "BC_FAR", bcFar,
			"SECTOR_URI", sector.URL+"/sector.json", "SECTOR_CA", ca).Replace(sectorYAML)
		b := startConsent(t, dsn, y, "")
		br := harness.NewBrowser(t).StopAt(rpRedirect)
		ctx := context.Background()

		login := func(r *rp) (*oauth2.Token, string) {
			t.Helper()
			v := oauth2.GenerateVerifier()
			page := consentLogin(t, r, br, oauth2.S256ChallengeOption(v))
			if !isConsentPage(page) {
				t.Fatalf("%s: no consent page: %d %s", r.conf.ClientID, page.Status, page.URL)
			}
			tok, _ := exchange(t, r, answer(t, br, page, "approve").Location(t), v)
			raw, _ := tok.Extra("id_token").(string)
			return tok, raw
		}
		scopes := []string{gooidc.ScopeOpenID, "profile", "offline_access"}
		amt, amt2, far := newRP(t, b, "amt", consentSecret, scopes...), newRP(t, b, "amt2", consentSecret, scopes...), newRP(t, b, "far", consentSecret, scopes...)
		tokAmt, _ := login(amt)
		tokAmt2, rawAmt2 := login(amt2)
		tokFar, _ := login(far)
		subAmt, subAmt2, subFar := subjectOf(t, amt, tokAmt), subjectOf(t, amt2, tokAmt2), subjectOf(t, far, tokFar)
		if subAmt != subAmt2 {
			t.Errorf("two clients of sector localhost see %s and %s", subAmt, subAmt2)
		}
		if subFar == subAmt {
			t.Error("a client of sector 127.0.0.1 sees the subject of sector localhost")
		}

		// Withdraw amt's consent: amt's tokens die and amt is logged out;
		// amt2, same sector and same subject, keeps its tokens.
		dash := br.Get(b.URL + "/account?lang=en")
		after := br.Post(b.URL+"/account/withdraw?lang=en", url.Values{"csrf": {dash.CSRF(t)}, "rp": {"amt"}})
		if after.Status != 200 || !strings.Contains(after.Body, "has been withdrawn") {
			t.Fatalf("withdrawal %d:\n%s", after.Status, after.Body)
		}
		if _, err := amt.conf.TokenSource(amt.ctx, &oauth2.Token{RefreshToken: tokAmt.RefreshToken}).Token(); err == nil {
			t.Error("amt's refresh token still works after withdrawal")
		}
		if code := userinfoStatus(t, b, tokAmt.AccessToken); code != http.StatusUnauthorized {
			t.Errorf("amt's access token after withdrawal: %d", code)
		}
		if code := userinfoStatus(t, b, tokAmt2.AccessToken); code != http.StatusOK {
			t.Errorf("amt2's access token after amt's withdrawal: %d", code)
		}
		if _, err := amt2.conf.TokenSource(amt2.ctx, &oauth2.Token{RefreshToken: tokAmt2.RefreshToken}).Token(); err != nil {
			t.Errorf("amt2's refresh token after amt's withdrawal: %v", err)
		}
		select {
		case lt := <-logoutsAmt:
			if lv, err := amt.provider.Verifier(&gooidc.Config{ClientID: "amt"}).Verify(ctx, lt); err != nil || lv.Subject != subAmt {
				t.Errorf("amt's logout token: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("no back-channel logout to amt after withdrawal")
		}
		select {
		case lt := <-logoutsAmt2:
			t.Fatalf("amt2 was logged out by amt's withdrawal: %s", lt)
		case lt := <-logoutsFar:
			t.Fatalf("far was logged out by amt's withdrawal: %s", lt)
		case <-time.After(500 * time.Millisecond):
		}

		// RP-initiated logout: amt2 and far each get a logout token with
		// their own subject.
		p := br.Get(b.URL + "/oauth2/logout?" + url.Values{"id_token_hint": {rawAmt2}}.Encode())
		if p.Status >= 400 {
			t.Fatalf("logout %d", p.Status)
		}
		for _, c := range []struct {
			r      *rp
			tokens <-chan string
			sub    string
		}{{amt2, logoutsAmt2, subAmt2}, {far, logoutsFar, subFar}} {
			select {
			case lt := <-c.tokens:
				lv, err := c.r.provider.Verifier(&gooidc.Config{ClientID: c.r.conf.ClientID}).Verify(ctx, lt)
				if err != nil || lv.Subject != c.sub {
					t.Errorf("%s's logout token: sub %v, want %s", c.r.conf.ClientID, lv, c.sub)
				}
			case <-time.After(15 * time.Second):
				t.Fatalf("no back-channel logout to %s", c.r.conf.ClientID)
			}
		}
		select {
		case lt := <-logoutsAmt:
			t.Errorf("amt, no longer in the session, got a second logout token: %s", lt)
		case <-time.After(300 * time.Millisecond):
		}
	})
}
