package conformance_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/xml"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	crewsaml "github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/trustbroker/trustbroker/adapters/saml"
	"github.com/trustbroker/trustbroker/broker/loa"
	"github.com/trustbroker/trustbroker/conformance/dbtest"
	"github.com/trustbroker/trustbroker/conformance/harness"
)

// The SPs of the protocol matrix besides samlYAML's samlsp (unsigned,
// persistent only): two that sign their requests (required) and have an
// encryption key, one listing GCM (crewjam's default metadata) and one
// listing only CBC; one that gets email NameIDs but no email attribute;
// one whose metadata says AuthnRequestsSigned (signedsp's does not: there
// only require_signed_requests asks for signatures).
const (
	signedEntityID = "https://signed.example/saml"
	signedACS      = "http://localhost/signed/acs"
	cbcEntityID    = "https://cbc.example/saml"
	cbcACS         = "http://localhost/cbc/acs"
	noMailEntityID = "https://nomail.example/saml"
	noMailACS      = "http://localhost/nomail/acs"
	mdEntityID     = "https://md-signs.example/saml"
	mdACS          = "http://localhost/md-signs/acs"
)

const samlMatrixYAML = samlYAML + `
  - id: signedsp
    name: {de: Signiert, en: Signed}
    protocol: saml
    accepted_credentials: [eid]
    min_loa: low
    claims:
      - {name: given_name, required: true, purpose: {en: greeting}}
      - {name: email, required: true, purpose: {en: receipts}}
    saml:
      entity_id: ` + signedEntityID + `
      metadata_file: {{signed_md}}
      require_signed_requests: true
      name_id_formats: [persistent, transient, email]
  - id: cbcsp
    name: {de: CBC, en: CBC}
    protocol: saml
    accepted_credentials: [eid]
    claims:
      - {name: given_name, required: true, purpose: {en: greeting}}
    saml:
      entity_id: ` + cbcEntityID + `
      metadata_file: {{cbc_md}}
  - id: nomailsp
    name: {de: Ohne Mail, en: No mail}
    protocol: saml
    accepted_credentials: [eid]
    claims:
      - {name: given_name, required: true, purpose: {en: greeting}}
    saml:
      entity_id: ` + noMailEntityID + `
      acs_urls: [` + noMailACS + `]
      name_id_formats: [email]
  - id: mdsp
    name: {de: Metadaten, en: Metadata}
    protocol: saml
    accepted_credentials: [eid]
    claims:
      - {name: given_name, required: true, purpose: {en: greeting}}
    saml:
      entity_id: ` + mdEntityID + `
      metadata_file: {{md_md}}
`

// signingSP is a crewjam ServiceProvider with its own RSA key, signing
// its requests with RSA-SHA256.
func signingSP(t *testing.T, entityID, acs string) *crewsaml.ServiceProvider {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: entityID},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	au, _ := url.Parse(acs)
	mu, _ := url.Parse(entityID)
	return &crewsaml.ServiceProvider{EntityID: entityID, AcsURL: *au, MetadataURL: *mu, Key: key, Certificate: cert,
		SignatureMethod: dsig.RSASHA256SignatureMethod, AuthnNameIDFormat: crewsaml.PersistentNameIDFormat}
}

// writeSPMetadata writes the SP's metadata, edited by edit, to a file.
func writeSPMetadata(t *testing.T, sp *crewsaml.ServiceProvider, edit func(*crewsaml.EntityDescriptor)) string {
	t.Helper()
	md := sp.Metadata()
	if edit != nil {
		edit(md)
	}
	raw, err := xml.MarshalIndent(md, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "sp.xml")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// trustIdP gives sp the broker's metadata.
func trustIdP(t *testing.T, b *harness.Broker, sp *crewsaml.ServiceProvider) {
	t.Helper()
	sp.IDPMetadata = newSAMLSP(t, b, spACS).IDPMetadata
}

// samlStatus is the top- and second-level status of the Response on page.
func samlStatus(t *testing.T, page *harness.Page) (string, string) {
	t.Helper()
	var r crewsaml.Response
	if err := xml.Unmarshal(decodeResponse(t, page), &r); err != nil {
		t.Fatal(err)
	}
	second := ""
	if r.Status.StatusCode.StatusCode != nil {
		second = r.Status.StatusCode.StatusCode.Value
	}
	return r.Status.StatusCode.Value, second
}

// wantStatus asserts an error Response, signed, to the SP's registered ACS,
// in response to reqID, with exactly the given status codes.
func wantStatus(t *testing.T, page *harness.Page, acs, reqID, top, second string) {
	t.Helper()
	if page.Status != http.StatusOK || !samlResponseRE.MatchString(page.Body) {
		t.Fatalf("want a Response with %s/%s, got %d %s\n%s", top, second, page.Status, page.URL, page.Body)
	}
	gotTop, gotSecond := samlStatus(t, page)
	if gotTop != top || gotSecond != second {
		t.Errorf("status %s / %s, want %s / %s", gotTop, gotSecond, top, second)
	}
	var r crewsaml.Response
	_ = xml.Unmarshal(decodeResponse(t, page), &r)
	if r.Destination != acs || r.InResponseTo != reqID || r.Signature == nil || r.Assertion != nil || r.EncryptedAssertion != nil {
		t.Errorf("error Response: Destination %q InResponseTo %q signed %v assertion %v", r.Destination, r.InResponseTo,
			r.Signature != nil, r.Assertion != nil || r.EncryptedAssertion != nil)
	}
	if !strings.Contains(page.Body, `action="`+acs+`"`) {
		t.Errorf("form does not post to %s", acs)
	}
}

// wantRefusedPage asserts the broker's error page: no Response anywhere.
func wantRefusedPage(t *testing.T, page *harness.Page) {
	t.Helper()
	if page.Status != http.StatusBadRequest || samlResponseRE.MatchString(page.Body) || strings.HasPrefix(page.URL.Path, "/login/") {
		t.Errorf("want the broker's 400 page, got %d %s\n%s", page.Status, page.URL, page.Body)
	}
}

// redirectURL is req over HTTP-Redirect (signed in the query when sp signs).
func redirectURL(t *testing.T, sp *crewsaml.ServiceProvider, req *crewsaml.AuthnRequest) string {
	t.Helper()
	u, err := req.Redirect("relay-m", sp)
	if err != nil {
		t.Fatal(err)
	}
	return u.String()
}

// newRequest is an AuthnRequest of sp for binding, changed by edit, and
// signed again (POST) after the edit when sp signs.
func newRequest(t *testing.T, sp *crewsaml.ServiceProvider, binding string, edit func(*crewsaml.AuthnRequest)) *crewsaml.AuthnRequest {
	t.Helper()
	req, err := sp.MakeAuthenticationRequest(sp.GetSSOBindingLocation(binding), binding, crewsaml.HTTPPostBinding)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(req)
		if req.Signature != nil {
			req.Signature = nil
			if err := sp.SignAuthnRequest(req); err != nil {
				t.Fatal(err)
			}
		}
	}
	return req
}

// send sends req over binding from br and logs in with the eID fake when
// the method page comes.
func send(t *testing.T, b *harness.Broker, br *harness.Browser, sp *crewsaml.ServiceProvider, binding string, req *crewsaml.AuthnRequest) *harness.Page {
	t.Helper()
	if binding == crewsaml.HTTPRedirectBinding {
		// Always to the broker, whatever the Destination says.
		u, _ := url.Parse(redirectURL(t, sp, req))
		return samlLogin(t, br, br.Get(b.URL+saml.PathSSO+"?"+u.RawQuery))
	}
	return samlLogin(t, br, br.Post(b.URL+saml.PathSSO, url.Values{"SAMLRequest": {etreeString(t, req)}, "RelayState": {"relay-m"}}))
}

func boolp(b bool) *bool { return &b }

func racOf(cmp string, refs ...string) *crewsaml.RequestedAuthnContext {
	return &crewsaml.RequestedAuthnContext{Comparison: cmp, AuthnContextClassRefs: refs}
}

func nameIDPolicy(format crewsaml.NameIDFormat) func(*crewsaml.AuthnRequest) {
	return func(r *crewsaml.AuthnRequest) { f := string(format); r.NameIDPolicy.Format = &f }
}

// TestSAMLProtocolMatrix runs crewjam's ServiceProvider against the IdP:
// both bindings, signed and unsigned requests, ForceAuthn, IsPassive,
// RequestedAuthnContext, NameIDPolicy, encrypted assertions, and every
// refusal with its exact status (or the broker's page where no Response
// may be sent).
func TestSAMLProtocolMatrix(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		signed := signingSP(t, signedEntityID, signedACS)
		cbc := signingSP(t, cbcEntityID, cbcACS)
		cbc.SignatureMethod = "" // does not sign; has an encryption key
		mdSigns := signingSP(t, mdEntityID, mdACS)
		notSaid := func(md *crewsaml.EntityDescriptor) { md.SPSSODescriptors[0].AuthnRequestsSigned = boolp(false) }
		yaml := strings.NewReplacer(
			"{{signed_md}}", writeSPMetadata(t, signed, notSaid),
			"{{md_md}}", writeSPMetadata(t, mdSigns, nil),
			"{{cbc_md}}", writeSPMetadata(t, cbc, func(md *crewsaml.EntityDescriptor) {
				for i, kd := range md.SPSSODescriptors[0].KeyDescriptors {
					if kd.Use == "encryption" {
						md.SPSSODescriptors[0].KeyDescriptors[i].EncryptionMethods = []crewsaml.EncryptionMethod{
							{Algorithm: "http://www.w3.org/2001/04/xmlenc#aes256-cbc"},
							{Algorithm: "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"}}
					}
				}
			}),
		).Replace(samlMatrixYAML)
		c := &clock{t: nowUTC()}
		b := harness.Start(t, yaml, dsn, harness.Options{Now: c.now})
		plain := newSAMLSP(t, b, spACS)
		trustIdP(t, b, signed)
		trustIdP(t, b, cbc)
		trustIdP(t, b, mdSigns)
		noMail := newSAMLSP(t, b, noMailACS)
		noMail.EntityID = noMailEntityID
		for _, sp := range []*crewsaml.ServiceProvider{signed, noMail} {
			sp.AuthnNameIDFormat = crewsaml.UnspecifiedNameIDFormat
		}

		bindings := []string{crewsaml.HTTPRedirectBinding, crewsaml.HTTPPostBinding}
		short := map[string]string{crewsaml.HTTPRedirectBinding: "redirect", crewsaml.HTTPPostBinding: "post"}

		for _, binding := range bindings {
			t.Run("signed request "+short[binding], func(t *testing.T) {
				br := harness.NewBrowser(t)
				req := newRequest(t, signed, binding, nil)
				page := send(t, b, br, signed, binding, req)
				if !strings.Contains(page.Body, `name="RelayState" value="relay-m"`) {
					t.Errorf("RelayState not passed through")
				}
				raw := decodeResponse(t, page)
				if !strings.Contains(string(raw), "EncryptedAssertion") || strings.Contains(string(raw), "Erika") ||
					!strings.Contains(string(raw), "http://www.w3.org/2009/xmlenc11#aes256-gcm") ||
					!strings.Contains(string(raw), "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p") {
					t.Errorf("assertion not encrypted with RSA-OAEP and AES-256-GCM:\n%s", raw)
				}
				a, err := acsParse(t, signed, page, req.ID)
				if err != nil {
					t.Fatalf("SP refused the response: %v", samlErr(err))
				}
				if a.Subject.NameID.Format != string(crewsaml.PersistentNameIDFormat) || attrs(a)["email"] != "erika@example.org" {
					t.Errorf("assertion: %+v %v", a.Subject.NameID, attrs(a))
				}
			})
			t.Run("unsigned request where required "+short[binding], func(t *testing.T) {
				unsigned := *signed
				unsigned.SignatureMethod = ""
				req := newRequest(t, &unsigned, binding, nil)
				wantRefusedPage(t, send(t, b, harness.NewBrowser(t), &unsigned, binding, req))
			})
			t.Run("unsigned request, metadata says AuthnRequestsSigned "+short[binding], func(t *testing.T) {
				unsigned := *mdSigns
				unsigned.SignatureMethod = ""
				req := newRequest(t, &unsigned, binding, nil)
				wantRefusedPage(t, send(t, b, harness.NewBrowser(t), &unsigned, binding, req))
				req = newRequest(t, mdSigns, binding, nil)
				if _, err := acsParse(t, mdSigns, send(t, b, harness.NewBrowser(t), mdSigns, binding, req), req.ID); err != nil {
					t.Errorf("signed: %v", samlErr(err))
				}
			})
			t.Run("request signed with a foreign key "+short[binding], func(t *testing.T) {
				forged := signingSP(t, signedEntityID, signedACS)
				forged.IDPMetadata = signed.IDPMetadata
				req := newRequest(t, forged, binding, nil)
				wantRefusedPage(t, send(t, b, harness.NewBrowser(t), forged, binding, req))
			})
			t.Run("stale IssueInstant "+short[binding], func(t *testing.T) {
				req := newRequest(t, plain, binding, func(r *crewsaml.AuthnRequest) { r.IssueInstant = c.now().Add(-10 * time.Minute) })
				wantStatus(t, send(t, b, harness.NewBrowser(t), plain, binding, req), spACS, req.ID,
					crewsaml.StatusRequester, crewsaml.StatusRequestDenied)
			})
			t.Run("signed, IssueInstant in the future "+short[binding], func(t *testing.T) {
				req := newRequest(t, signed, binding, func(r *crewsaml.AuthnRequest) { r.IssueInstant = c.now().Add(10 * time.Minute) })
				wantStatus(t, send(t, b, harness.NewBrowser(t), signed, binding, req), signedACS, req.ID,
					crewsaml.StatusRequester, crewsaml.StatusRequestDenied)
			})
			t.Run("wrong Destination "+short[binding], func(t *testing.T) {
				req := newRequest(t, signed, binding, func(r *crewsaml.AuthnRequest) { r.Destination = "https://other-idp.example/sso" })
				page := send(t, b, harness.NewBrowser(t), signed, binding, req)
				wantStatus(t, page, signedACS, req.ID, crewsaml.StatusRequester, crewsaml.StatusRequestDenied)
			})
			t.Run("stale and forged "+short[binding], func(t *testing.T) {
				forged := signingSP(t, signedEntityID, signedACS)
				forged.IDPMetadata = signed.IDPMetadata
				req := newRequest(t, forged, binding, func(r *crewsaml.AuthnRequest) { r.IssueInstant = c.now().Add(-time.Hour) })
				wantRefusedPage(t, send(t, b, harness.NewBrowser(t), forged, binding, req))
			})
			t.Run("replayed request ID "+short[binding], func(t *testing.T) {
				req := newRequest(t, signed, binding, nil)
				first := send(t, b, harness.NewBrowser(t), signed, binding, req)
				if _, err := acsParse(t, signed, first, req.ID); err != nil {
					t.Fatalf("first: %v", samlErr(err))
				}
				again := send(t, b, harness.NewBrowser(t), signed, binding, req)
				wantStatus(t, again, signedACS, req.ID, crewsaml.StatusRequester, crewsaml.StatusRequestDenied)
			})
		}

		t.Run("unsigned request of an SP that does not sign is fine", func(t *testing.T) {
			req := newRequest(t, plain, crewsaml.HTTPPostBinding, nil)
			page := send(t, b, harness.NewBrowser(t), plain, crewsaml.HTTPPostBinding, req)
			a, err := acsParse(t, plain, page, req.ID)
			if err != nil {
				t.Fatalf("SP refused the response: %v", samlErr(err))
			}
			if a.Signature == nil {
				t.Error("plain assertion not signed")
			}
		})

		t.Run("encrypted with AES-256-CBC when the SP lists no GCM", func(t *testing.T) {
			req := newRequest(t, cbc, crewsaml.HTTPRedirectBinding, nil)
			page := send(t, b, harness.NewBrowser(t), cbc, crewsaml.HTTPRedirectBinding, req)
			raw := string(decodeResponse(t, page))
			if !strings.Contains(raw, "http://www.w3.org/2001/04/xmlenc#aes256-cbc") || strings.Contains(raw, "gcm") {
				t.Errorf("want AES-256-CBC:\n%s", raw)
			}
			a, err := acsParse(t, cbc, page, req.ID)
			if err != nil {
				t.Fatalf("SP refused the response: %v", samlErr(err))
			}
			if attrs(a)["given_name"] != "Erika" {
				t.Errorf("attributes %v", attrs(a))
			}
		})

		t.Run("IsPassive without session", func(t *testing.T) {
			req := newRequest(t, plain, crewsaml.HTTPRedirectBinding, func(r *crewsaml.AuthnRequest) { r.IsPassive = boolp(true) })
			page := harness.NewBrowser(t).Get(redirectURL(t, plain, req))
			wantStatus(t, page, spACS, req.ID, crewsaml.StatusResponder, crewsaml.StatusNoPassive)
		})

		t.Run("IsPassive and ForceAuthn with session, ForceAuthn", func(t *testing.T) {
			br := harness.NewBrowser(t)
			first := newRequest(t, plain, crewsaml.HTTPRedirectBinding, nil)
			a1, err := acsParse(t, plain, send(t, b, br, plain, crewsaml.HTTPRedirectBinding, first), first.ID)
			if err != nil {
				t.Fatal(samlErr(err))
			}
			c.add(time.Minute)
			passive := newRequest(t, plain, crewsaml.HTTPRedirectBinding, func(r *crewsaml.AuthnRequest) { r.IsPassive = boolp(true) })
			page := br.Get(redirectURL(t, plain, passive))
			a2, err := acsParse(t, plain, page, passive.ID)
			if err != nil {
				t.Fatalf("IsPassive with a session: %v", samlErr(err))
			}
			if a2.Subject.NameID.Value != a1.Subject.NameID.Value || !a2.AuthnStatements[0].AuthnInstant.Equal(a1.AuthnStatements[0].AuthnInstant) {
				t.Errorf("IsPassive answered from another login")
			}
			both := newRequest(t, plain, crewsaml.HTTPRedirectBinding, func(r *crewsaml.AuthnRequest) {
				r.IsPassive, r.ForceAuthn = boolp(true), boolp(true)
			})
			wantStatus(t, br.Get(redirectURL(t, plain, both)), spACS, both.ID, crewsaml.StatusResponder, crewsaml.StatusNoPassive)

			force := newRequest(t, plain, crewsaml.HTTPRedirectBinding, func(r *crewsaml.AuthnRequest) { r.ForceAuthn = boolp(true) })
			method := br.Get(redirectURL(t, plain, force))
			if !strings.HasPrefix(method.URL.Path, "/login/") || samlResponseRE.MatchString(method.Body) {
				t.Fatalf("ForceAuthn answered from the session: %d %s", method.Status, method.URL)
			}
			a3, err := acsParse(t, plain, samlLogin(t, br, method), force.ID)
			if err != nil {
				t.Fatal(samlErr(err))
			}
			if !a3.AuthnStatements[0].AuthnInstant.After(a1.AuthnStatements[0].AuthnInstant) {
				t.Errorf("ForceAuthn: AuthnInstant %v not after %v", a3.AuthnStatements[0].AuthnInstant, a1.AuthnStatements[0].AuthnInstant)
			}
		})

		for _, tc := range []struct {
			name   string
			rac    *crewsaml.RequestedAuthnContext
			class  string // asserted; "" = status
			status string
		}{
			{"minimum substantial", racOf("minimum", loa.URISubstantial), loa.URIHigh, ""},
			{"minimum high (BSI URI)", racOf("minimum", loa.URIBSIHoch), loa.URIHigh, ""},
			{"exact substantial", racOf("exact", loa.URISubstantial), loa.URISubstantial, ""},
			{"exact low below the SP's minimum", racOf("exact", loa.URILow), "", crewsaml.StatusNoAuthnContext},
			{"maximum substantial", racOf("maximum", loa.URISubstantial), loa.URISubstantial, ""},
			{"better high", racOf("better", loa.URIHigh), "", crewsaml.StatusNoAuthnContext},
			{"unknown class", racOf("exact", "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"), "", crewsaml.StatusNoAuthnContext},
		} {
			t.Run("RequestedAuthnContext "+tc.name, func(t *testing.T) {
				req := newRequest(t, plain, crewsaml.HTTPRedirectBinding, func(r *crewsaml.AuthnRequest) { r.RequestedAuthnContext = tc.rac })
				page := send(t, b, harness.NewBrowser(t), plain, crewsaml.HTTPRedirectBinding, req)
				if tc.status != "" {
					wantStatus(t, page, spACS, req.ID, crewsaml.StatusResponder, tc.status)
					return
				}
				a, err := acsParse(t, plain, page, req.ID)
				if err != nil {
					t.Fatal(samlErr(err))
				}
				if got := a.AuthnStatements[0].AuthnContext.AuthnContextClassRef.Value; got != tc.class {
					t.Errorf("AuthnContextClassRef %q, want %q", got, tc.class)
				}
			})
		}
		t.Run("RequestedAuthnContext unknown comparison", func(t *testing.T) {
			req := newRequest(t, plain, crewsaml.HTTPRedirectBinding, func(r *crewsaml.AuthnRequest) {
				r.RequestedAuthnContext = racOf("roughly", loa.URILow)
			})
			page := harness.NewBrowser(t).Get(redirectURL(t, plain, req))
			if page.Status == http.StatusOK && samlResponseRE.MatchString(page.Body) {
				wantStatus(t, page, spACS, req.ID, crewsaml.StatusRequester, crewsaml.StatusRequestUnsupported)
			} else {
				// crewjam may refuse the schema violation before the adapter.
				wantRefusedPage(t, page)
			}
		})

		t.Run("NameIDPolicy", func(t *testing.T) {
			br := harness.NewBrowser(t)
			get := func(sp *crewsaml.ServiceProvider, f crewsaml.NameIDFormat) (*crewsaml.AuthnRequest, *harness.Page) {
				req := newRequest(t, sp, crewsaml.HTTPRedirectBinding, nameIDPolicy(f))
				return req, send(t, b, br, sp, crewsaml.HTTPRedirectBinding, req)
			}
			nameID := func(sp *crewsaml.ServiceProvider, f crewsaml.NameIDFormat) *crewsaml.NameID {
				req, page := get(sp, f)
				a, err := acsParse(t, sp, page, req.ID)
				if err != nil {
					t.Fatalf("%s: %v", f, samlErr(err))
				}
				return a.Subject.NameID
			}
			p1 := nameID(signed, crewsaml.PersistentNameIDFormat)
			p2 := nameID(signed, crewsaml.UnspecifiedNameIDFormat)
			pPlain := nameID(plain, crewsaml.PersistentNameIDFormat)
			if p1.Format != string(crewsaml.PersistentNameIDFormat) || p1.Value != p2.Value || p1.Value == pPlain.Value ||
				p1.SPNameQualifier != signedEntityID || p1.NameQualifier != b.URL+saml.PathMetadata {
				t.Errorf("persistent NameIDs must be pairwise and stable: %+v %+v %+v", p1, p2, pPlain)
			}
			// transient: one value per SSO session and SP (single logout
			// names it), another in the next session.
			t1 := nameID(signed, crewsaml.TransientNameIDFormat)
			t2 := nameID(signed, crewsaml.TransientNameIDFormat)
			req3 := newRequest(t, signed, crewsaml.HTTPRedirectBinding, nameIDPolicy(crewsaml.TransientNameIDFormat))
			a3, err := acsParse(t, signed, send(t, b, harness.NewBrowser(t), signed, crewsaml.HTTPRedirectBinding, req3), req3.ID)
			if err != nil {
				t.Fatal(samlErr(err))
			}
			t3 := a3.Subject.NameID
			if t1.Format != string(crewsaml.TransientNameIDFormat) || t1.Value != t2.Value || t1.Value == t3.Value ||
				t1.Value == p1.Value || len(t1.Value) < 32 {
				t.Errorf("transient NameIDs: %+v %+v %+v", t1, t2, t3)
			}
			if e := nameID(signed, crewsaml.EmailAddressNameIDFormat); e.Format != string(crewsaml.EmailAddressNameIDFormat) || e.Value != "erika@example.org" {
				t.Errorf("email NameID: %+v", e)
			}
			for _, f := range []crewsaml.NameIDFormat{crewsaml.TransientNameIDFormat, crewsaml.EmailAddressNameIDFormat,
				"urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName"} {
				req, page := get(plain, f)
				wantStatus(t, page, spACS, req.ID, crewsaml.StatusRequester, crewsaml.StatusInvalidNameIDPolicy)
			}
			// email is the only format of nomailsp, which gets no email
			// attribute: refused after the login.
			req, page := get(noMail, crewsaml.UnspecifiedNameIDFormat)
			wantStatus(t, page, noMailACS, req.ID, crewsaml.StatusRequester, crewsaml.StatusInvalidNameIDPolicy)
		})

		t.Run("ACS not in metadata", func(t *testing.T) {
			evil := *signed
			evil.AcsURL = url.URL{Scheme: "http", Host: "localhost", Path: "/evil/acs"}
			req := newRequest(t, &evil, crewsaml.HTTPPostBinding, nil)
			wantRefusedPage(t, send(t, b, harness.NewBrowser(t), &evil, crewsaml.HTTPPostBinding, req))
		})

		t.Run("unknown SP", func(t *testing.T) {
			other := signingSP(t, "https://unknown.example/saml", "http://localhost/unknown/acs")
			other.IDPMetadata = signed.IDPMetadata
			req := newRequest(t, other, crewsaml.HTTPRedirectBinding, nil)
			wantRefusedPage(t, send(t, b, harness.NewBrowser(t), other, crewsaml.HTTPRedirectBinding, req))
		})

		t.Run("no Response for an unparseable request", func(t *testing.T) {
			for _, q := range []string{"SAMLRequest=%%%", "SAMLRequest=" + url.QueryEscape(base64.StdEncoding.EncodeToString([]byte("not deflated")))} {
				wantRefusedPage(t, harness.NewBrowser(t).Get(b.URL+saml.PathSSO+"?"+q))
			}
		})
	})
}
