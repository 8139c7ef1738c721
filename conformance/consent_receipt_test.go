package conformance_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/conformance/dbtest"
	"github.com/trustbroker/trustbroker/conformance/harness"
)

var receiptLinkRE = regexp.MustCompile(`href="(/account/receipts/[^"]+)"`)

// verifyReceipt checks the JWS against the broker's /jwks.json and returns
// its header and payload.
func verifyReceipt(t *testing.T, b *harness.Broker, raw string) (jose.Header, map[string]any) {
	t.Helper()
	jws, err := jose.ParseSigned(strings.TrimSpace(raw), []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatalf("receipt is not an ES256 JWS: %v\n%s", err, raw)
	}
	resp, err := http.Get(b.URL + "/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	h := jws.Signatures[0].Header
	keys := set.Key(h.KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q not in the JWKS", h.KeyID)
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatalf("receipt signature: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(payload, &m); err != nil {
		t.Fatal(err)
	}
	return h, m
}

// TestConsentReceipt: the dashboard offers a signed consent receipt
// (Kantara Consent Receipt v1.1) per consent; it verifies against the
// JWKS and carries what was consented to.
func TestConsentReceipt(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		b := startConsent(t, dsn, consentYAML, "https://amt.example/bc")
		amt := newRP(t, b, "amt", consentSecret, gooidc.ScopeOpenID, "profile", "email")
		br := harness.NewBrowser(t).StopAt(rpRedirect)
		ctx := context.Background()
		v := oauth2.GenerateVerifier()
		page := consentLogin(t, amt, br, oauth2.S256ChallengeOption(v))
		if !isConsentPage(page) {
			t.Fatalf("no consent page: %d %s", page.Status, page.URL)
		}
		exchange(t, amt, answer(t, br, page, "approve", "email").Location(t), v)
		evs, err := b.Server.Store.Audit().List(ctx, store.AuditFilter{Action: "consent.grant"})
		if err != nil || len(evs) != 1 {
			t.Fatalf("consent.grant %v %v", evs, err)
		}
		accountID := evs[0].Actor
		c, err := b.Server.Store.Consents().Active(ctx, accountID, "amt", time.Now())
		if err != nil {
			t.Fatal(err)
		}

		dash := br.Get(b.URL + "/account")
		m := receiptLinkRE.FindStringSubmatch(dash.Body)
		if m == nil || m[1] != "/account/receipts/"+c.ID {
			t.Fatalf("no receipt link for %s on the dashboard:\n%s", c.ID, dash.Body)
		}
		rec := br.Get(b.URL + m[1])
		if rec.Status != 200 || rec.Header.Get("Content-Type") != "application/jwt" ||
			!strings.Contains(rec.Header.Get("Content-Disposition"), "attachment") {
			t.Fatalf("receipt download %d %v", rec.Status, rec.Header)
		}
		h, r := verifyReceipt(t, b, rec.Body)
		if h.Algorithm != "ES256" {
			t.Errorf("alg %s", h.Algorithm)
		}
		for k, want := range map[string]any{
			"version": "KI-CR-v1.1.0", "jurisdiction": "DE", "consentReceiptID": c.ID, "piiPrincipalId": accountID,
			"language": "de", "iss": b.URL, "sensitive": false, "consentTimestamp": float64(c.GrantedAt.Unix()),
		} {
			if r[k] != want {
				t.Errorf("receipt %s = %v, want %v", k, r[k], want)
			}
		}
		ctrl, _ := r["piiControllers"].([]any)
		if len(ctrl) != 1 || ctrl[0].(map[string]any)["piiController"] != "Bürgeramt" {
			t.Errorf("piiControllers %v", r["piiControllers"])
		}
		svcs, _ := r["services"].([]any)
		if len(svcs) != 1 {
			t.Fatalf("services %v", r["services"])
		}
		svc := svcs[0].(map[string]any)
		var cats, purposes []string
		for _, p := range svc["purposes"].([]any) {
			pm := p.(map[string]any)
			cats = append(cats, pm["piiCategory"].([]any)[0].(string))
			purposes = append(purposes, pm["purpose"].(string))
			if pm["consentType"] != "EXPLICIT" || !strings.HasPrefix(pm["termination"].(string), "until withdrawn") {
				t.Errorf("purpose %v", pm)
			}
		}
		slices.Sort(cats)
		if svc["service"] != "Bürgeramt" || strings.Join(cats, ",") != "email,given_name" ||
			!slices.Contains(purposes, "Eingangsbestätigung") || !slices.Contains(purposes, "Anrede") {
			t.Errorf("service %v", svc)
		}
		ext, _ := r["trustbroker"].(map[string]any)
		if ext["status"] != "active" || ext["relying_party"] != "amt" || ext["purpose_version"] != c.PurposeVersion {
			t.Errorf("extension %v", ext)
		}

		// Someone else's or an unknown consent: not found.
		other := harness.NewBrowser(t)
		if p := other.Get(b.URL + m[1]); p.Status != http.StatusUnauthorized {
			t.Errorf("receipt without a session: %d", p.Status)
		}
		if p := br.Get(b.URL + "/account/receipts/unknown"); p.Status != http.StatusNotFound {
			t.Errorf("unknown receipt: %d", p.Status)
		}

		// After withdrawal the receipt says so.
		if p := br.Post(b.URL+"/account/withdraw", url.Values{"csrf": {dash.CSRF(t)}, "rp": {"amt"}}); p.Status != 200 {
			t.Fatalf("withdraw %d", p.Status)
		}
		_, r = verifyReceipt(t, b, br.Get(b.URL+m[1]).Body)
		ext, _ = r["trustbroker"].(map[string]any)
		if ext["status"] != "withdrawn" || ext["withdrawn_at"] == nil {
			t.Errorf("withdrawn receipt extension %v", ext)
		}
	})
}
