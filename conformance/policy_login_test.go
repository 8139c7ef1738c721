package conformance_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/conformance/dbtest"
	"github.com/trustbroker/trustbroker/conformance/harness"
)

// policyLoginYAML: the service needs a health-professional card; an eID
// login is stepped up to the card. Logins to "closed" are denied.
const policyLoginYAML = `
providers:
  - id: eid-fake
    type: fake-redirect
    name: {de: Ausweis, en: ID card}
    config: {kind: eid, subject: eid-1, loa: high, amr: [pin], attributes: {given_name: Erika}}
  - id: hba
    type: fake-redirect
    name: {de: Heilberufsausweis, en: Health professional card}
    config:
      kind: smartcard
      subject: hba-1
      loa: high
      amr: [sc, pin]
      attributes: {given_name: Erika, profession_oid: "1.2.276.0.76.4.30"}
relying_parties:
  - id: records
    name: {en: Patient records}
    protocol: gate
    accepted_credentials: [eid, smartcard]
    min_loa: substantial
  - id: closed
    name: {en: Closed}
    protocol: gate
    accepted_credentials: [eid, smartcard]
policy:
  engine: casbin
  networks:
    - {name: local, trust: trusted, cidrs: [127.0.0.0/8]}
  roles:
    - {attribute: profession_oid, values: ["1.2.276.0.76.4.30"], role: physician}
  rules:
    - id: records-card
      subjects: ["*"]
      objects: [records]
      actions: [login]
      zones: [local]
      credentials: [smartcard, hardware]
      effect: allow
    - id: closed-local
      subjects: ["*"]
      objects: [closed]
      actions: [login]
      zones: [local]
      effect: deny
gate:
  proxies: [127.0.0.1]
  services:
    - {id: records, hosts: [records.test]}
    - {id: closed, hosts: [closed.test]}
`

// stayBrowser follows redirects on the broker only.
func stayBrowser(t *testing.T, b *harness.Broker) *harness.Browser {
	br := harness.NewBrowser(t)
	base, _ := url.Parse(b.URL)
	br.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
		if req.URL.Host != base.Host {
			return http.ErrUseLastResponse
		}
		return nil
	}
	return br
}

func TestPolicyStepUpAtLogin(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		b := harness.Start(t, policyLoginYAML, dsn, harness.Options{})
		br := stayBrowser(t, b)
		method := br.Get(b.URL + "/gate/login?rd=" + url.QueryEscape("http://records.test/x"))
		if method.Status != 200 || !strings.Contains(method.Body, `value="eid-fake"`) || !strings.Contains(method.Body, `value="hba"`) {
			t.Fatalf("method page: %d\n%s", method.Status, method.Body)
		}
		tx := strings.TrimPrefix(method.URL.Path, "/login/")
		// The eID card reaches the level but is not the card the rule
		// needs: back to the method choice, which offers the card only.
		again := br.Post(method.Action(t), url.Values{"csrf": {method.CSRF(t)}, "provider": {"eid-fake"}})
		if again.Status != 200 || again.URL.Path != method.URL.Path || strings.Contains(again.Body, `value="eid-fake"`) ||
			!strings.Contains(again.Body, `value="hba"`) {
			t.Fatalf("after step-up: %d %s\n%s", again.Status, again.URL, again.Body)
		}
		done := br.Post(again.Action(t), url.Values{"csrf": {again.CSRF(t)}, "provider": {"hba"}})
		if done.Status != http.StatusSeeOther || done.Header.Get("Location") != "http://records.test/x" {
			t.Fatalf("after the card: %d %q\n%s", done.Status, done.Header.Get("Location"), done.Body)
		}
		evs, err := b.Server.Store.Audit().List(context.Background(), store.AuditFilter{Target: tx, Action: "login.policy"})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 2 || evs[0].Outcome != "step_up" || evs[1].Outcome != "allow" || !strings.HasPrefix(evs[1].Reason, "records-card:") {
			t.Errorf("policy audit: %+v", evs)
		}
	})
}

func TestPolicyDenyAtLoginShowsSafeReason(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		b := harness.Start(t, policyLoginYAML, dsn, harness.Options{})
		for lang, want := range map[string]string{"de": "Der Zugriff ist aus diesem Netzwerk nicht erlaubt.", "en": "Access is not permitted from this network."} {
			br := stayBrowser(t, b)
			method := br.Get(b.URL + "/gate/login?lang=" + lang + "&rd=" + url.QueryEscape("http://closed.test/"))
			denied := br.Post(method.Action(t), url.Values{"csrf": {method.CSRF(t)}, "provider": {"hba"}})
			if denied.Status != http.StatusForbidden || !strings.Contains(denied.Body, want) || strings.Contains(denied.Body, "closed-local") {
				t.Errorf("%s: %d\n%s", lang, denied.Status, denied.Body)
			}
		}
		// rd must be a configured service: no open redirect.
		br := stayBrowser(t, b)
		if p := br.Get(b.URL + "/gate/login?rd=" + url.QueryEscape("https://evil.test/")); p.Status != http.StatusBadRequest {
			t.Errorf("foreign rd: %d", p.Status)
		}
	})
}
