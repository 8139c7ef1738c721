package eidassim_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/trustbroker/trustbroker/broker/loa"
	"github.com/trustbroker/trustbroker/broker/store/sqlstore"
	"github.com/trustbroker/trustbroker/broker/xmlsig"
	"github.com/trustbroker/trustbroker/providers"
	"github.com/trustbroker/trustbroker/providers/eidas/eidassim"
)

func newSim(t *testing.T) (*eidassim.Provider, []byte) {
	t.Helper()
	st, err := sqlstore.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "tb.db"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	p, err := eidassim.New("eu", providers.Deps{Issuer: "http://127.0.0.1:1", Store: st}, eidassim.Options{NodeLoA: loa.High})
	if err != nil {
		t.Fatal(err)
	}
	_, state, err := p.Begin(context.Background(), providers.Request{TransactionID: "tx", MinLoA: loa.High, Lang: "en"})
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Req []byte `json:"req"`
	}
	_ = json.Unmarshal(state, &s)
	return p, s.Req
}

// The node refuses AuthnRequests that break the eIDAS rules or are not
// signed by the SP.
func TestReadRequestRefuses(t *testing.T) {
	p, req := newSim(t)
	if r, err := p.Sim.Node.ReadRequest(base64.StdEncoding.EncodeToString(req)); err != nil || r.LoA != loa.High {
		t.Fatalf("genuine request: %+v %v", r, err)
	}
	other, otherCert, _ := eidassim.NewKey("ec", "Other SP", time.Now())
	for name, mutate := range map[string]func(*etree.Element){
		"unsigned": func(r *etree.Element) { r.RemoveChild(r.SelectElement("Signature")) },
		"changed":  func(r *etree.Element) { r.CreateAttr("ForceAuthn", "false") },
		"signed by another key": func(r *etree.Element) {
			r.RemoveChild(r.SelectElement("Signature"))
			_ = (&xmlsig.Signer{Key: other, Certificate: otherCert}).Sign(r)
		},
	} {
		doc, _ := xmlsig.Parse(req)
		mutate(doc.Root())
		b, _ := doc.WriteToBytes()
		if _, err := p.Sim.Node.ReadRequest(base64.StdEncoding.EncodeToString(b)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// The node's pages: the request leads to the tester's page (German and
// English), the answer to an auto-posting form to the SP's ACS; an
// answer for an unknown session is refused.
func TestNodePages(t *testing.T) {
	p, req := newSim(t)
	h := p.Endpoints(nil)
	form := url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString(req)}, "RelayState": {"tx"}}
	rec := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, "/providers/eu/node/sso", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	h.ServeHTTP(rec, r)
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("sso: %d %s", rec.Code, rec.Body)
	}
	loc, _ := url.Parse(rec.Header().Get("Location"))
	for lang, want := range map[string]string{"de": "Musterperson", "en": "Specimen person"} {
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, loc.Path+"?lang="+lang, nil))
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), want) || !strings.Contains(rec.Body.String(), `<html lang="`+lang+`">`) {
			t.Fatalf("pick page %s: %d\n%s", lang, rec.Code, rec.Body)
		}
	}
	sid := strings.TrimPrefix(loc.Path, "/providers/eu/node/pick/")
	answer := func() *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		f := url.Values{"session": {sid}, "person": {"it-mario"}, "behaviour": {"normal"}}
		r := httptest.NewRequest(http.MethodPost, "/providers/eu/node/answer", strings.NewReader(f.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		h.ServeHTTP(rec, r)
		return rec
	}
	if rec := answer(); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `action="http://127.0.0.1:1/providers/eu/acs"`) ||
		!strings.Contains(rec.Body.String(), `name="SAMLResponse"`) {
		t.Fatalf("answer: %d\n%s", rec.Code, rec.Body)
	}
	if rec := answer(); rec.Code != http.StatusNotFound {
		t.Fatalf("second answer for the same session: %d", rec.Code)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/providers/eu/node/metadata", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "IDPSSODescriptor") {
		t.Fatalf("metadata: %d", rec.Code)
	}
}

// Factory refuses to run for a broker that is not on loopback.
func TestFactoryOnlyOnLoopback(t *testing.T) {
	_, err := eidassim.Factory("eu", nil, "providers[0].config", providers.Deps{Issuer: "https://login.example.org"})
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("simulator for a public issuer: %v", err)
	}
}
