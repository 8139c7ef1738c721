package conformance_test

import (
	"bytes"
	"compress/flate"
	"encoding/base64"
	"encoding/xml"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	crewsaml "github.com/crewjam/saml"

	"github.com/trustbroker/trustbroker/adapters/saml"
	"github.com/trustbroker/trustbroker/conformance/dbtest"
	"github.com/trustbroker/trustbroker/conformance/harness"
)

// sloSPs are two SAML SPs with SingleLogoutServices on one loopback
// server: /a/slo and /b/slo answer LogoutRequests with a LogoutResponse
// (HTTP-Redirect) and record the LogoutResponses the IdP sends them.
type sloSPs struct {
	a, b *crewsaml.ServiceProvider
	base string

	mu        sync.Mutex
	requests  map[string][]*crewsaml.LogoutRequest // by SP path
	responses map[string][]*crewsaml.LogoutResponse
	errs      []error
}

func newSLOSPs(t *testing.T) *sloSPs {
	t.Helper()
	s := &sloSPs{requests: map[string][]*crewsaml.LogoutRequest{}, responses: map[string][]*crewsaml.LogoutResponse{}}
	srv := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(srv.Close)
	s.base = strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	mk := func(name string) *crewsaml.ServiceProvider {
		sp := signingSP(t, "https://"+name+".example/saml", "http://localhost/"+name+"/acs")
		slo, _ := url.Parse(s.base + "/" + name + "/slo")
		sp.SloURL = *slo
		sp.LogoutBindings = []string{crewsaml.HTTPRedirectBinding}
		if name == "b" {
			sp.AuthnNameIDFormat = crewsaml.TransientNameIDFormat
		}
		return sp
	}
	s.a, s.b = mk("a"), mk("b")
	return s
}

func (s *sloSPs) sp(path string) *crewsaml.ServiceProvider {
	if strings.HasPrefix(path, "/a/") {
		return s.a
	}
	return s.b
}

func (s *sloSPs) serve(w http.ResponseWriter, r *http.Request) {
	sp := s.sp(r.URL.Path)
	_ = r.ParseForm()
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.Form.Get("SAMLRequest") != "" {
		req, err := sp.ValidateLogoutRequest(r)
		if err != nil {
			s.errs = append(s.errs, err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.requests[r.URL.Path] = append(s.requests[r.URL.Path], req)
		u, err := sp.MakeRedirectLogoutResponse(req.ID, r.Form.Get("RelayState"))
		if err != nil {
			s.errs = append(s.errs, err)
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		http.Redirect(w, r, u.String(), http.StatusFound)
		return
	}
	raw, err := base64.StdEncoding.DecodeString(r.Form.Get("SAMLResponse"))
	if err == nil && r.Method == http.MethodGet {
		raw, err = inflate(raw)
	}
	var resp crewsaml.LogoutResponse
	if err == nil {
		err = xml.Unmarshal(raw, &resp)
	}
	if err != nil {
		s.errs = append(s.errs, err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.responses[r.URL.Path] = append(s.responses[r.URL.Path], &resp)
	_, _ = w.Write([]byte("logged out at the SP"))
}

func inflate(b []byte) ([]byte, error) {
	return io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(b)), 1<<20))
}

const sloYAML = `
  - id: slo-a
    name: {de: A, en: A}
    protocol: saml
    accepted_credentials: [eid]
    claims:
      - {name: given_name, required: true, purpose: {en: greeting}}
    saml:
      entity_id: https://a.example/saml
      metadata_file: {{a_md}}
  - id: slo-b
    name: {de: B, en: B}
    protocol: saml
    accepted_credentials: [eid]
    claims:
      - {name: given_name, required: true, purpose: {en: greeting}}
    saml:
      entity_id: https://b.example/saml
      metadata_file: {{b_md}}
      name_id_formats: [transient, persistent]
`

var samlFormRE = regexp.MustCompile(`name="(SAMLRequest|SAMLResponse)" value="([^"]+)"`)

// TestSAMLSingleLogout: a browser logged in at SAML SPs A and B and at
// the OIDC client shop; A's signed LogoutRequest ends the session, B gets
// a LogoutRequest through the browser, shop a back-channel logout token,
// and A a Success LogoutResponse. Unsigned, forged and replayed requests
// are refused; a POST LogoutRequest is answered over HTTP-POST.
func TestSAMLSingleLogout(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		sps := newSLOSPs(t)
		bcURL, tokens := backchannelReceiver(t)
		extra := strings.NewReplacer("{{a_md}}", writeSPMetadata(t, sps.a, nil), "{{b_md}}", writeSPMetadata(t, sps.b, nil)).Replace(sloYAML)
		b, _, _ := startOIDCExtra(t, dsn, bcURL, extra)
		trustIdP(t, b, sps.a)
		trustIdP(t, b, sps.b)
		if loc := sps.a.GetSLOBindingLocation(crewsaml.HTTPRedirectBinding); loc != b.URL+saml.PathSLO {
			t.Fatalf("IdP metadata SingleLogoutService %q", loc)
		}

		// login logs the browser in at A, B and shop and returns A's
		// and B's assertions.
		login := func(br *harness.Browser) (*crewsaml.Assertion, *crewsaml.Assertion) {
			var out []*crewsaml.Assertion
			for _, sp := range []*crewsaml.ServiceProvider{sps.a, sps.b} {
				req := newRequest(t, sp, crewsaml.HTTPRedirectBinding, nil)
				a, err := acsParse(t, sp, send(t, b, br, sp, crewsaml.HTTPRedirectBinding, req), req.ID)
				if err != nil {
					t.Fatalf("%s: %v", sp.EntityID, samlErr(err))
				}
				out = append(out, a)
			}
			portal := newRP(t, b, "portal", portalSecret, gooidc.ScopeOpenID, "profile")
			portal.login(br)
			return out[0], out[1]
		}
		logoutRequest := func(sp *crewsaml.ServiceProvider, a *crewsaml.Assertion) *crewsaml.LogoutRequest {
			req, err := sp.MakeLogoutRequest(b.URL+saml.PathSLO, a.Subject.NameID.Value)
			if err != nil {
				t.Fatal(err)
			}
			req.NameID.Format = a.Subject.NameID.Format
			req.SessionIndex = &crewsaml.SessionIndex{Value: a.AuthnStatements[0].SessionIndex}
			return req
		}

		t.Run("SP-initiated over HTTP-Redirect, propagated", func(t *testing.T) {
			br := harness.NewBrowser(t).StopAt("http://localhost/rp/")
			aA, aB := login(br)
			req := logoutRequest(sps.a, aA)
			u, err := sps.a.RedirectLogoutRequestURL(req, "relay-slo")
			if err != nil {
				t.Fatal(err)
			}
			page := br.Get(u.String())
			if page.Status != http.StatusOK || page.URL.Path != "/a/slo" {
				t.Fatalf("logout ended at %d %s\n%s", page.Status, page.URL, page.Body)
			}
			sps.mu.Lock()
			reqsB, respsA, errs := sps.requests["/b/slo"], sps.responses["/a/slo"], sps.errs
			sps.mu.Unlock()
			if len(errs) > 0 {
				t.Fatalf("SP errors: %v", errs)
			}
			if len(reqsB) != 1 || reqsB[0].NameID == nil || reqsB[0].NameID.Value != aB.Subject.NameID.Value ||
				reqsB[0].NameID.Format != string(crewsaml.TransientNameIDFormat) ||
				reqsB[0].SessionIndex == nil || reqsB[0].SessionIndex.Value != aB.AuthnStatements[0].SessionIndex {
				t.Errorf("B's LogoutRequest: %+v", reqsB)
			}
			if len(respsA) != 1 || respsA[0].InResponseTo != req.ID || respsA[0].Status.StatusCode.Value != crewsaml.StatusSuccess ||
				respsA[0].Status.StatusCode.StatusCode != nil || respsA[0].Signature == nil && page.URL.Query().Get("Signature") == "" {
				t.Errorf("A's LogoutResponse: %+v", respsA)
			}
			if page.URL.Query().Get("RelayState") != "relay-slo" {
				t.Errorf("RelayState: %s", page.URL)
			}
			select {
			case <-tokens:
			case <-time.After(15 * time.Second):
				t.Error("no back-channel logout token for the OIDC client")
			}
			// The session is gone: A's next request needs a login.
			next := newRequest(t, sps.a, crewsaml.HTTPRedirectBinding, nil)
			u2, _ := url.Parse(redirectURL(t, sps.a, next))
			if p := br.Get(b.URL + saml.PathSSO + "?" + u2.RawQuery); !strings.HasPrefix(p.URL.Path, "/login/") || samlResponseRE.MatchString(p.Body) {
				t.Errorf("still logged in after SLO: %d %s", p.Status, p.URL)
			}
			// The same LogoutRequest again: refused.
			if p := br.Get(u.String()); p.Status != http.StatusBadRequest {
				t.Errorf("replayed LogoutRequest: %d %s", p.Status, p.URL)
			}
		})

		t.Run("unsigned and forged LogoutRequests are refused", func(t *testing.T) {
			br := harness.NewBrowser(t).StopAt("http://localhost/rp/")
			aA, _ := login(br)
			unsigned := *sps.a
			unsigned.SignatureMethod = ""
			u, err := unsigned.RedirectLogoutRequestURL(logoutRequest(&unsigned, aA), "")
			if err != nil {
				t.Fatal(err)
			}
			forged := signingSP(t, sps.a.EntityID, "http://localhost/a/acs")
			forged.IDPMetadata = sps.a.IDPMetadata
			u2, err := forged.RedirectLogoutRequestURL(logoutRequest(forged, aA), "")
			if err != nil {
				t.Fatal(err)
			}
			for _, u := range []*url.URL{u, u2} {
				if p := br.Get(u.String()); p.Status != http.StatusBadRequest {
					t.Errorf("%d %s", p.Status, p.URL)
				}
			}
			// Still logged in.
			next := newRequest(t, sps.a, crewsaml.HTTPRedirectBinding, nil)
			if _, err := acsParse(t, sps.a, send(t, b, br, sps.a, crewsaml.HTTPRedirectBinding, next), next.ID); err != nil {
				t.Errorf("session ended by a refused request: %v", samlErr(err))
			}
		})

		t.Run("IdP-initiated from the dashboard", func(t *testing.T) {
			br := harness.NewBrowser(t).StopAt("http://localhost/rp/")
			aA, aB := login(br)
			for len(tokens) > 0 {
				<-tokens
			}
			count := func() (int, int) {
				sps.mu.Lock()
				defer sps.mu.Unlock()
				return len(sps.requests["/a/slo"]), len(sps.requests["/b/slo"])
			}
			a0, b0 := count()
			account := br.Get(b.URL + "/account?lang=en")
			if account.Status != http.StatusOK || !strings.Contains(account.Body, `action="/account/logout`) {
				t.Fatalf("no logout button on the dashboard: %d", account.Status)
			}
			if p := br.Post(b.URL+"/account/logout", url.Values{"csrf": {"forged"}}); p.Status != http.StatusForbidden {
				t.Errorf("forged CSRF token: %d", p.Status)
			}
			page := br.Post(b.URL+"/account/logout", url.Values{"csrf": {account.CSRF(t)}})
			if page.Status != http.StatusOK || page.URL.Path != "/" {
				t.Fatalf("logout ended at %d %s\n%s", page.Status, page.URL, page.Body)
			}
			a1, b1 := count()
			if a1 != a0+1 || b1 != b0+1 {
				t.Errorf("LogoutRequests: A %d→%d, B %d→%d", a0, a1, b0, b1)
			}
			sps.mu.Lock()
			lastA := sps.requests["/a/slo"][a1-1]
			lastB := sps.requests["/b/slo"][b1-1]
			errs := sps.errs
			sps.mu.Unlock()
			if len(errs) > 0 {
				t.Errorf("SP errors: %v", errs)
			}
			if lastA.NameID.Value != aA.Subject.NameID.Value || lastB.NameID.Value != aB.Subject.NameID.Value {
				t.Errorf("NameIDs: A %q want %q, B %q want %q", lastA.NameID.Value, aA.Subject.NameID.Value, lastB.NameID.Value, aB.Subject.NameID.Value)
			}
			select {
			case <-tokens:
			case <-time.After(15 * time.Second):
				t.Error("no back-channel logout token for the OIDC client")
			}
			if p := br.Get(b.URL + "/account"); strings.Contains(p.Body, `action="/account/logout`) {
				t.Errorf("still logged in at the dashboard: %d %s", p.Status, p.URL)
			}
		})

		t.Run("SP-initiated over HTTP-POST", func(t *testing.T) {
			br := harness.NewBrowser(t).StopAt("http://localhost/rp/")
			aA, _ := login(br)
			form, err := sps.a.MakePostLogoutRequest(aA.Subject.NameID.Value, "relay-post")
			if err != nil {
				t.Fatal(err)
			}
			m := samlFormRE.FindSubmatch(form)
			if m == nil {
				t.Fatalf("no SAMLRequest in %s", form)
			}
			page := br.Post(b.URL+saml.PathSLO, url.Values{"SAMLRequest": {html.UnescapeString(string(m[2]))}, "RelayState": {"relay-post"}})
			// B is logged out first (HTTP-Redirect), then A's SLO gets the
			// LogoutResponse: A lists only HTTP-Redirect, so it comes that way.
			if page.URL.Path != "/a/slo" {
				t.Fatalf("POST logout ended at %d %s\n%s", page.Status, page.URL, page.Body)
			}
			if strings.Contains(page.Body, "<script>") {
				t.Error("inline script")
			}
		})

		// A LogoutRequest POSTed cross-site carries no SameSite=Lax session
		// cookie: the signed request's SessionIndex names the session,
		// which ends when the issuer took part in it and the NameID is the
		// issuer's; nothing else ends.
		t.Run("HTTP-POST without the session cookie", func(t *testing.T) {
			loggedIn := func(br *harness.Browser, sp *crewsaml.ServiceProvider) bool {
				t.Helper()
				req := newRequest(t, sp, crewsaml.HTTPRedirectBinding, nil)
				u, _ := url.Parse(redirectURL(t, sp, req))
				p := br.Get(b.URL + saml.PathSSO + "?" + u.RawQuery)
				// Without a session the method page comes, not the
				// Response (the SSO answer ends at a /login/ URL too).
				return samlResponseRE.MatchString(p.Body)
			}
			post := func(sp *crewsaml.ServiceProvider, nameID, index string) *harness.Page {
				t.Helper()
				form, err := sp.MakePostLogoutRequest(nameID, "relay-nocookie", crewsaml.WithSessionIndex(index))
				if err != nil {
					t.Fatal(err)
				}
				m := samlFormRE.FindSubmatch(form)
				if m == nil {
					t.Fatalf("no SAMLRequest in %s", form)
				}
				// A browser without the broker's cookie, as after a
				// cross-site POST.
				cross := harness.NewBrowser(t).StopAt("http://localhost/rp/")
				return cross.Post(b.URL+saml.PathSLO, url.Values{"SAMLRequest": {html.UnescapeString(string(m[2]))}, "RelayState": {"relay-nocookie"}})
			}
			br1 := harness.NewBrowser(t).StopAt("http://localhost/rp/")
			a1, b1 := login(br1)
			br2 := harness.NewBrowser(t).StopAt("http://localhost/rp/")
			a2, _ := login(br2)
			// br3 used only B: A took no part in that session.
			br3 := harness.NewBrowser(t).StopAt("http://localhost/rp/")
			reqB := newRequest(t, sps.b, crewsaml.HTTPRedirectBinding, nil)
			b3, err := acsParse(t, sps.b, send(t, b, br3, sps.b, crewsaml.HTTPRedirectBinding, reqB), reqB.ID)
			if err != nil {
				t.Fatal(samlErr(err))
			}
			idx := func(a *crewsaml.Assertion) string { return a.AuthnStatements[0].SessionIndex }
			if idx(a1) == idx(a2) || idx(a1) != idx(b1) {
				t.Fatalf("SessionIndexes: A1 %s A2 %s B1 %s", idx(a1), idx(a2), idx(b1))
			}
			for len(tokens) > 0 {
				<-tokens
			}
			sps.mu.Lock()
			nB := len(sps.requests["/b/slo"])
			nA := len(sps.responses["/a/slo"])
			sps.mu.Unlock()

			unsigned := *sps.a
			unsigned.SignatureMethod = ""
			if p := post(&unsigned, a1.Subject.NameID.Value, idx(a1)); p.Status != http.StatusBadRequest {
				t.Errorf("unsigned LogoutRequest: %d %s", p.Status, p.URL)
			}
			forged := signingSP(t, sps.a.EntityID, "http://localhost/a/acs")
			forged.IDPMetadata = sps.a.IDPMetadata
			if p := post(forged, a1.Subject.NameID.Value, idx(a1)); p.Status != http.StatusBadRequest {
				t.Errorf("LogoutRequest signed by another key: %d %s", p.Status, p.URL)
			}
			// A's NameID of this account, but the SessionIndex of a
			// session A took no part in.
			post(sps.a, a1.Subject.NameID.Value, idx(b3))
			// The right SessionIndex with a NameID that is not A's:
			// another value, and B's transient NameID of the session.
			post(sps.a, "someone-else", idx(a1))
			post(sps.a, b1.Subject.NameID.Value, idx(a1))
			// A SessionIndex the broker did not issue.
			post(sps.a, a1.Subject.NameID.Value, "_"+strings.Repeat("A", 80))
			if l1, l2, l3 := loggedIn(br1, sps.a), loggedIn(br2, sps.a), loggedIn(br3, sps.b); !l1 || !l2 || !l3 {
				t.Fatalf("a refused LogoutRequest ended a session: %v %v %v", l1, l2, l3)
			}
			select {
			case <-tokens:
				t.Error("back-channel logout for a refused LogoutRequest")
			default:
			}
			sps.mu.Lock()
			if n := len(sps.requests["/b/slo"]); n != nB {
				t.Errorf("a refused LogoutRequest reached B: %d LogoutRequests", n-nB)
			}
			nA = len(sps.responses["/a/slo"])
			sps.mu.Unlock()

			page := post(sps.a, a1.Subject.NameID.Value, idx(a1))
			if page.URL.Path != "/a/slo" {
				t.Fatalf("logout ended at %d %s\n%s", page.Status, page.URL, page.Body)
			}
			sps.mu.Lock()
			reqsB, respsA, errs := sps.requests["/b/slo"][nB:], sps.responses["/a/slo"][nA:], sps.errs
			sps.mu.Unlock()
			if len(errs) > 0 {
				t.Fatalf("SP errors: %v", errs)
			}
			if len(reqsB) != 1 || reqsB[0].NameID == nil || reqsB[0].NameID.Value != b1.Subject.NameID.Value ||
				reqsB[0].SessionIndex == nil || reqsB[0].SessionIndex.Value != idx(b1) {
				t.Errorf("B's LogoutRequest: %+v", reqsB)
			}
			if len(respsA) != 1 || respsA[0].Status.StatusCode.Value != crewsaml.StatusSuccess || respsA[0].Status.StatusCode.StatusCode != nil {
				t.Errorf("A's LogoutResponse: %+v", respsA)
			}
			select {
			case <-tokens:
			case <-time.After(15 * time.Second):
				t.Error("no back-channel logout token for the OIDC client")
			}
			if loggedIn(br1, sps.a) {
				t.Error("the session the LogoutRequest named is still alive")
			}
			if !loggedIn(br2, sps.a) || !loggedIn(br3, sps.b) {
				t.Error("another session of the account ended")
			}
		})
	})
}
