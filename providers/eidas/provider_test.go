package eidas_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/trustbroker/trustbroker/broker/loa"
	"github.com/trustbroker/trustbroker/broker/xmlsig"
	"github.com/trustbroker/trustbroker/providers"
	"github.com/trustbroker/trustbroker/providers/eidas"
	"github.com/trustbroker/trustbroker/providers/eidas/eidassim"
)

var allClaims = []string{"given_name", "family_name", "birthdate", "address", "gender", "birth_family_name", "place_of_birth"}

func TestLogin(t *testing.T) {
	for _, c := range []struct{ sp, node string }{{"ec", "ec"}, {"rsa", "rsa"}, {"ec", "rsa"}} {
		t.Run(c.sp+"-"+c.node, func(t *testing.T) {
			f := newFixture(t, c.sp, c.node, nil)
			req := f.request("tx1", allClaims, loa.Substantial)
			state, nr, _ := f.begin(t, req)
			if nr.LoA != loa.Substantial || !nr.Attributes[eidas.AttrPersonIdentifier] || nr.Attributes[eidas.AttrCurrentAddress] {
				t.Fatalf("request as the node read it: %+v", nr)
			}
			resp, err := f.node.Answer(nr, eidassim.PersonByKey("at-max"), eidassim.Normal)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(resp, []byte("EncryptedAssertion")) || bytes.Contains(resp, []byte("Mustermann")) {
				t.Fatal("the assertion is not encrypted")
			}
			id, err := f.complete(req, state, resp)
			if err != nil {
				t.Fatal(err)
			}
			if id.Subject != "AT/DE/4f1c5e0b2a8d4e7f9c3b6a1d0e2f4a5b" || id.LoA != loa.High {
				t.Fatalf("identity %+v", id)
			}
			a := id.Attributes
			if a["given_name"] != "Max" || a["family_name"] != "Mustermann" || a["birthdate"] != "1980-01-01" ||
				a["eidas_sending_country"] != "AT" || a["gender"] != "male" {
				t.Fatalf("attributes %v", a)
			}
			addr, _ := a["address"].(map[string]any)
			if addr["street_address"] != "Musterstraße 1" || addr["locality"] != "Wien" || addr["postal_code"] != "1010" || addr["country"] != "AT" {
				t.Fatalf("address %v", addr)
			}
			if pob, _ := a["place_of_birth"].(map[string]any); pob["locality"] != "Wien" {
				t.Fatalf("place of birth %v", a["place_of_birth"])
			}
			if len(id.AMR) != 1 || id.AMR[0] != "mfa" || id.Evidence == nil || id.Evidence.TrustFramework != "eidas" || id.Evidence.AssuranceLevel != "high" {
				t.Fatalf("amr %v evidence %+v", id.AMR, id.Evidence)
			}
		})
	}
}

// The Greek specimen sends its names in Greek script and transliterated:
// the Latin transliteration is used.
func TestLatinScript(t *testing.T) {
	f := newFixture(t, "ec", "ec", nil)
	req := f.request("tx1", []string{"given_name", "family_name", "birth_family_name"}, loa.Low)
	state, nr, _ := f.begin(t, req)
	resp, err := f.node.Answer(nr, eidassim.PersonByKey("el-eleni"), eidassim.Normal)
	if err != nil {
		t.Fatal(err)
	}
	id, err := f.complete(req, state, resp)
	if err != nil {
		t.Fatal(err)
	}
	if id.Attributes["given_name"] != "Eleni" || id.Attributes["family_name"] != "Papadopoulou" ||
		id.Attributes["birth_family_name"] != "Georgiou" || id.LoA != loa.Substantial {
		t.Fatalf("%+v", id)
	}
	if _, ok := id.Attributes["address"]; ok {
		t.Fatal("address released without being requested")
	}
}

func refusedWith(t *testing.T, err error, code string) {
	t.Helper()
	pe, ok := providers.PublicError(err)
	if !ok {
		t.Fatalf("want refusal %s, got %v", code, err)
	}
	if pe.Code != code {
		t.Fatalf("refused with %s, want %s: %v", pe.Code, code, err)
	}
	if pe.Public == "" || strings.Contains(pe.Public, "xmlsig") {
		t.Fatalf("public text %q", pe.Public)
	}
	t.Logf("refused (%s): %v", code, pe.Err)
}

// Every check of SECURITY.md §2 on the SP side, one bad response each.
func TestRefusals(t *testing.T) {
	other, otherCert, _ := eidassim.NewKey("ec", "Attacker", time.Now())
	cases := []struct {
		name   string
		mutate func(f *fixture, s *eidassim.Spec)
		node   func(n *eidassim.Node)
		code   string
		loa    loa.Level
	}{
		{"bad signature (another key)", nil, func(n *eidassim.Node) { n.Key, n.Cert = other, otherCert }, eidas.CodeSignature, 0},
		{"tampered assertion", func(f *fixture, s *eidassim.Spec) {
			s.TamperAssertion = func(a *etree.Element) { a.FindElement("//NameID").SetText("AT/DE/someone-else") }
		}, nil, eidas.CodeSignature, 0},
		{"unsigned response and assertion", func(f *fixture, s *eidassim.Spec) { s.SignResponse, s.SignAssertion = false, false }, nil, eidas.CodeSignature, 0},
		{"wrong audience", func(f *fixture, s *eidassim.Spec) { s.Audience = "https://other-sp.test/metadata" }, nil, eidas.CodeAudience, 0},
		{"wrong recipient", func(f *fixture, s *eidassim.Spec) { s.Recipient = "https://other-sp.test/acs" }, nil, eidas.CodeRecipient, 0},
		{"wrong destination", func(f *fixture, s *eidassim.Spec) { s.Destination = "https://other-sp.test/acs" }, nil, eidas.CodeDestination, 0},
		{"wrong InResponseTo", func(f *fixture, s *eidassim.Spec) { s.InResponseTo = "_other" }, nil, eidas.CodeInResponse, 0},
		{"wrong issuer", func(f *fixture, s *eidassim.Spec) { s.Issuer = "https://evil-node.test/metadata" }, nil, eidas.CodeIssuer, 0},
		{"expired", func(f *fixture, s *eidassim.Spec) { s.IssueInstant = f.now.Add(-10 * time.Minute) }, nil, eidas.CodeExpired, 0},
		{"not yet valid", func(f *fixture, s *eidassim.Spec) { s.IssueInstant = f.now.Add(5 * time.Minute) }, nil, eidas.CodeNotYetValid, 0},
		{"old response, long-lived assertion", func(f *fixture, s *eidassim.Spec) {
			s.IssueInstant, s.Validity = f.now.Add(-30*time.Minute), time.Hour
		}, nil, eidas.CodeExpired, 0},
		{"lower LoA", func(f *fixture, s *eidassim.Spec) { s.LoAURI = loa.URISubstantial }, nil, eidas.CodeLoATooLow, loa.High},
		{"not notified", func(f *fixture, s *eidassim.Spec) { s.LoAURI = "http://eidas.europa.eu/NotNotified/LoA/high" }, nil, eidas.CodeNotNotified, 0},
		{"not an eIDAS level", func(f *fixture, s *eidassim.Spec) { s.LoAURI = "urn:oasis:names:tc:SAML:2.0:ac:classes:Password" }, nil, eidas.CodeLoATooLow, 0},
		{"unencrypted where required", func(f *fixture, s *eidassim.Spec) { s.Encrypt = false }, nil, eidas.CodeUnencrypted, 0},
		{"cancelled at the node", func(f *fixture, s *eidassim.Spec) { s.StatusSub = "urn:oasis:names:tc:SAML:2.0:status:AuthnFailed" }, nil, eidas.CodeCancelled, 0},
		// The node's trusted RSA key, but RSA PKCS#1 v1.5 (see nodeKind).
		{"RSA PKCS#1 v1.5 signature", nil, func(n *eidassim.Node) { n.Algorithm = xmlsig.AlgRSASHA256 }, eidas.CodeSignature, 0},
		{"minimum data set missing", func(f *fixture, s *eidassim.Spec) {
			s.Released = map[string]bool{eidas.AttrPersonIdentifier: true, eidas.AttrFamilyName: true}
		}, nil, eidas.CodeAttributes, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			nodeKind := "ec"
			if strings.Contains(c.name, "RSA") {
				nodeKind = "rsa"
			}
			f := newFixture(t, "ec", nodeKind, nil)
			level := c.loa
			if level == 0 {
				level = loa.Substantial
			}
			req := f.request("tx1", allClaims, level)
			state, nr, _ := f.begin(t, req)
			if c.node != nil {
				c.node(f.node)
			}
			s := f.node.DefaultSpec(nr, eidassim.PersonByKey("at-max"))
			if c.mutate != nil {
				c.mutate(f, &s)
			}
			resp, err := f.node.Build(s)
			if err != nil {
				t.Fatal(err)
			}
			_, err = f.complete(req, state, resp)
			refusedWith(t, err, c.code)
		})
	}
}

// A replayed response (same assertion, same request) is refused, across
// logins too.
func TestReplay(t *testing.T) {
	f := newFixture(t, "ec", "ec", nil)
	req := f.request("tx1", nil, loa.Substantial)
	state, nr, _ := f.begin(t, req)
	resp, err := f.node.Answer(nr, eidassim.PersonByKey("es-carmen"), eidassim.Normal)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.complete(req, state, resp); err != nil {
		t.Fatal(err)
	}
	_, err = f.complete(req, state, resp)
	refusedWith(t, err, eidas.CodeReplayed)
	// A fresh assertion for the same request: the request is answered.
	resp2, _ := f.node.Answer(nr, eidassim.PersonByKey("es-carmen"), eidassim.Normal)
	_, err = f.complete(req, state, resp2)
	refusedWith(t, err, eidas.CodeReplayed)
}

// XML signature wrapping against an SP that takes unencrypted, signed
// assertions in an unsigned response (the weakest configuration).
func TestSignatureWrapping(t *testing.T) {
	wraps := map[string]func(resp *etree.Element){
		"evil assertion before the signed one (XSW3)": func(resp *etree.Element) {
			a := resp.FindElement("./Assertion")
			evil := a.Copy()
			evil.RemoveChild(evil.FindElement("./Signature"))
			evil.CreateAttr("ID", "_evil")
			evil.FindElement("./Subject/NameID").SetText("AT/DE/victim")
			resp.InsertChildAt(a.Index(), evil)
		},
		"signed assertion hidden in Extensions (XSW7)": func(resp *etree.Element) {
			a := resp.FindElement("./Assertion")
			evil := a.Copy()
			evil.RemoveChild(evil.FindElement("./Signature"))
			evil.FindElement("./Subject/NameID").SetText("AT/DE/victim")
			ext := etree.NewElement("saml2p:Extensions")
			resp.RemoveChild(a)
			ext.AddChild(a)
			resp.InsertChildAt(1, ext)
			resp.AddChild(evil)
		},
		"evil assertion wraps the signed one (XSW4)": func(resp *etree.Element) {
			a := resp.FindElement("./Assertion")
			evil := a.Copy()
			evil.RemoveChild(evil.FindElement("./Signature"))
			evil.CreateAttr("ID", "_evil")
			evil.FindElement("./Subject/NameID").SetText("AT/DE/victim")
			resp.RemoveChild(a)
			evil.AddChild(a)
			resp.AddChild(evil)
		},
	}
	for name, wrap := range wraps {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, "ec", "ec", func(s *eidas.Settings) { s.RequireEncryption = false })
			req := f.request("tx1", nil, loa.Substantial)
			state, nr, _ := f.begin(t, req)
			s := f.node.DefaultSpec(nr, eidassim.PersonByKey("at-max"))
			s.Encrypt, s.SignResponse = false, false
			resp, err := f.node.Build(s)
			if err != nil {
				t.Fatal(err)
			}
			// The unwrapped response is accepted in this configuration.
			doc, _ := xmlsig.Parse(resp)
			wrap(doc.Root())
			evil, _ := doc.WriteToBytes()
			_, err = f.complete(req, state, evil)
			refusedWith(t, err, eidas.CodeWrapped)
			if _, err := f.complete(req, state, resp); err != nil {
				t.Fatalf("the genuine response after the attempt: %v", err)
			}
		})
	}
}

func TestBeginRefusesLevelAboveNode(t *testing.T) {
	f := newFixture(t, "ec", "ec", func(s *eidas.Settings) { s.MaxLoA = loa.Substantial })
	_, _, err := f.p.Begin(t.Context(), f.request("tx1", nil, loa.High))
	refusedWith(t, err, eidas.CodeLoATooLow)
}

func TestRSAKeysBelow3072AreRefused(t *testing.T) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, cert, _ := eidassim.NewKey("ec", "x", time.Now())
	f := newFixture(t, "ec", "ec", nil)
	s := &eidas.Settings{Node: eidas.StaticNode{N: &eidas.Node{}}, SigningKey: k, SigningCert: cert, EncryptionKey: k, EncryptionCert: cert}
	if _, err := eidas.New("eu", s, providers.Deps{Store: f.st}); err == nil || !strings.Contains(err.Error(), "3072") {
		t.Fatalf("RSA-2048 accepted: %v", err)
	}
}

// Comment injection (CVE-2017-11427 and relatives): a comment inside the
// signed PersonIdentifier does not break the signature (c14n drops it)
// and does not cut the subject short.
func TestCommentInjection(t *testing.T) {
	f := newFixture(t, "ec", "ec", func(s *eidas.Settings) { s.RequireEncryption = false })
	req := f.request("tx1", nil, loa.Substantial)
	state, nr, _ := f.begin(t, req)
	s := f.node.DefaultSpec(nr, eidassim.PersonByKey("at-max"))
	s.Encrypt, s.SignResponse = false, false
	resp, err := f.node.Build(s)
	if err != nil {
		t.Fatal(err)
	}
	const full = "AT/DE/4f1c5e0b2a8d4e7f9c3b6a1d0e2f4a5b"
	injected := bytes.ReplaceAll(resp, []byte(full), []byte("AT/DE/4f1c<!---->5e0b2a8d4e7f9c3b6a1d0e2f4a5b"))
	if bytes.Equal(injected, resp) {
		t.Fatal("test premise: the identifier is in the response")
	}
	id, err := f.complete(req, state, injected)
	if err != nil {
		t.Fatal(err)
	}
	if id.Subject != full || id.Attributes["eidas_person_identifier"] != full {
		t.Fatalf("subject %q", id.Subject)
	}
}
