package eid

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	"go.yaml.in/yaml/v3"

	"github.com/trustbroker/trustbroker/broker/loa"
	"github.com/trustbroker/trustbroker/providers"
)

func TestEveryMinorHasItsMessage(t *testing.T) {
	seen := map[string]string{}
	for _, minor := range append(append([]string{}, ServerMinors...), ClientMinors...) {
		for _, lang := range []string{"de", "en"} {
			e := MinorError(minor, lang, nil)
			if e.Code == "" || e.Code == unknownMessage.code || e.Public == "" || e.Public == unknownMessage.text(lang) {
				t.Errorf("%s (%s): generic or empty message %+v", minor, lang, e)
			}
			if e.Err == nil || !strings.Contains(e.Err.Error(), minor) {
				t.Errorf("%s: the cause does not name the code: %v", minor, e.Err)
			}
			key := lang + "|" + e.Public
			if other, dup := seen[key]; dup && minorMessages[minor].code != minorMessages[other].code {
				t.Errorf("%s and %s share a message", minor, other)
			}
			seen[key] = minor
		}
	}
	if got := MinorError(MinorDeniedDocument, "en", nil); got.Code != "card_blocked" || !strings.Contains(got.Public, "blocked") {
		t.Errorf("deniedDocument: %+v", got)
	}
	if got := MinorError(ClientCancelled, "de", nil); got.Code != "cancelled" || !strings.Contains(got.Public, "abgebrochen") {
		t.Errorf("cancellationByUser: %+v", got)
	}
	// A client may report its minor as a URI ending in #code.
	if got := MinorError("http://www.bsi.bund.de/ecard/api/1.1/resultminor/sal#cancellationByUser", "en", nil); got.Code != "cancelled" {
		t.Errorf("URI form: %+v", got)
	}
	for _, unknown := range []string{"", "nonsense", "http://example.org/x#internalError", MinorPrefix + "common#madeUp"} {
		if got := MinorError(unknown, "en", nil); got.Code != "eid_error" {
			t.Errorf("%q: %+v", unknown, got)
		}
	}
}

func TestBirthdate(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"19640812", "1964-08-12"},
		{"196408  ", "1964-08"},
		{"1964    ", "1964"},
		{"19640800", "1964-08"},
		{"19640000", "1964"},
		{"        ", ""},
		{"1964", ""},
		{"abcd0812", ""},
	} {
		if got := Birthdate(GeneralDate{DateString: tc.in}); got != tc.want {
			t.Errorf("Birthdate(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := Birthdate(GeneralDate{DateString: "x", DateValue: "1964-08-12"}); got != "1964-08-12" {
		t.Errorf("DateValue fallback: %q", got)
	}
}

func TestUseIDRequestFromClaims(t *testing.T) {
	s := &Settings{CommunityID: "027605", LoARequest: "http://bsi.bund.de/eID/LoA/hoch", TransactionInfo: "x"}
	req, age, place := s.UseIDRequest([]string{"given_name", "birthdate", "age_over_16", "age_over_18", "place_verified", "unknown", "age_over_x"})
	ops := req.UseOperations
	if ops.GivenNames != Required || ops.DateOfBirth != Required || ops.RestrictedID != Required || ops.FamilyNames != Prohibited ||
		ops.DocumentType != Allowed || ops.AgeVerification != Required || ops.PlaceVerification != Required || ops.CommunityID != "" {
		t.Errorf("operations: %+v", ops)
	}
	if age != 18 || req.AgeRequest == nil || req.AgeRequest.Age != 18 || !place || req.PlaceRequest.CommunityID != "027605" {
		t.Errorf("age %d place %v: %+v", age, place, req)
	}
	if req.LevelOfAssurance == "" || req.TransactionInfo != "x" {
		t.Errorf("request: %+v", req)
	}
	// Without a configured community, place verification is not asked.
	req, _, place = (&Settings{}).UseIDRequest([]string{"place_verified"})
	if place || req.PlaceRequest != nil || req.UseOperations.PlaceVerification != Prohibited {
		t.Errorf("place without community: %+v", req)
	}
}

func testProvider() *Provider {
	return &Provider{id: "eid", s: &Settings{LoA: loa.High, Operator: "Op"}, now: func() time.Time { return time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC) }}
}

func TestIdentity(t *testing.T) {
	p := testProvider()
	res := &GetResultResponse{
		PersonalData: &PersonalData{
			DocumentType: "ID", IssuingState: "D", DateOfExpiry: "2031-10-31", GivenNames: "ERIKA", FamilyNames: "MUSTERMANN",
			DateOfBirth: &GeneralDate{DateString: "196408  "}, PlaceOfBirth: &GeneralPlace{Freetext: "BERLIN"},
			PlaceOfResidence: &GeneralPlace{Structured: &Place{Street: "HEIDESTRASSE 17", City: "KÖLN", Country: "D", ZipCode: "51147"}},
			Nationality:      "D", BirthName: "GABLER", RestrictedID: &RestrictedID{ID: "ABCDEF0123"},
		},
		FulfilsAgeVerification:   &Verification{FulfilsRequest: true},
		FulfilsPlaceVerification: &Verification{FulfilsRequest: false},
		LevelOfAssuranceResult:   "http://bsi.bund.de/eID/LoA/substantiell",
	}
	id, err := p.identity(res, &state{Age: 18, Place: true, Session: "s"}, "en")
	if err != nil {
		t.Fatal(err)
	}
	if id.Subject != "abcdef0123" || id.LoA != loa.Substantial || strings.Join(id.AMR, " ") != "sc pin mfa" {
		t.Errorf("identity: %+v", id)
	}
	a := id.Attributes
	addr, _ := a["address"].(map[string]any)
	if a["given_name"] != "ERIKA" || a["birthdate"] != "1964-08" || a["age_over_18"] != true || a["place_verified"] != false ||
		addr["country"] != "DEU" || addr["postal_code"] != "51147" || a["birth_family_name"] != "GABLER" ||
		a["place_of_birth"].(map[string]any)["locality"] != "BERLIN" || a["nationalities"].([]string)[0] != "DEU" {
		t.Errorf("attributes: %#v", a)
	}
	if id.Evidence == nil || id.Evidence.TrustFramework != "eidas" || id.Evidence.AssuranceLevel != "substantial" || len(id.Evidence.Items) != 1 {
		t.Fatalf("evidence: %+v", id.Evidence)
	}
	var ev map[string]any
	_ = json.Unmarshal(id.Evidence.Items[0], &ev)
	dd := ev["document_details"].(map[string]any)
	if ev["type"] != "document" || dd["type"] != "idcard" || dd["date_of_expiry"] != "2031-10-31" ||
		ev["check_details"].([]any)[0].(map[string]any)["check_method"] != "vcrypt" {
		t.Errorf("evidence item: %s", id.Evidence.Items[0])
	}
	// Without a pseudonym there is no identity.
	res.PersonalData.RestrictedID = nil
	if _, err := p.identity(res, &state{}, "de"); err == nil {
		t.Error("identity without RestrictedID")
	}
	res.PersonalData.RestrictedID = &RestrictedID{ID: "not hex"}
	if _, err := p.identity(res, &state{}, "de"); err == nil {
		t.Error("identity with a malformed RestrictedID")
	}
	res.PersonalData.RestrictedID = &RestrictedID{ID: "ab"}
	res.LevelOfAssuranceResult = "http://example.org/LoA/x"
	if _, err := p.identity(res, &state{}, "de"); err == nil {
		t.Error("unknown level of assurance accepted")
	}
}

func TestDocumentTypes(t *testing.T) {
	for in, want := range map[string]string{"ID": "idcard", "AR": "residence_permit", "AF": "residence_permit", "UB": "de_eid_card_eu"} {
		if got := DocumentTypeIDA(in); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
}

// testbed finds the BSI eID-Server test bed vectors in ../shared (or
// $TRUSTBROKER_TEST_SHARED): skipped when absent, fatal when the variable
// names a directory without them.
func testbed(t *testing.T) string {
	t.Helper()
	shared, set := os.LookupEnv("TRUSTBROKER_TEST_SHARED")
	if !set {
		shared = filepath.Join("..", "..", "..", "shared")
	}
	dir := filepath.Join(shared, "testdata", "eid-testbed")
	if _, err := os.Stat(filepath.Join(dir, "bsi_TCToken.xsd")); err != nil {
		if set {
			t.Fatalf("TRUSTBROKER_TEST_SHARED is set but the eID test bed is missing: %v", err)
		}
		t.Skipf("eID test bed not found at %s (set TRUSTBROKER_TEST_SHARED): %v", dir, err)
	}
	return dir
}

const testPSK = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestTCTokenSchema(t *testing.T) {
	dir := testbed(t)
	xmllint, err := exec.LookPath("xmllint")
	if err != nil {
		t.Fatalf("xmllint (Debian libxml2-utils) is needed with the test bed: %v", err)
	}
	tok := NewTCToken("https://eid.example.org/paos", PSK{ID: "4711abcd", Key: testPSK}, "https://login.example.org/login/tx/callback", "https://login.example.org/login/tx/callback")
	b, err := tok.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "tctoken.xml")
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(xmllint, "--noout", "--nonet", "--schema", filepath.Join(dir, "bsi_TCToken.xsd"), f).CombinedOutput()
	if err != nil {
		t.Fatalf("xmllint: %v\n%s\n%s", err, out, b)
	}
	// A token that breaks the schema is caught by the same check (the
	// check can fail).
	bad := strings.Replace(string(b), "<Binding>", "<Unknown>x</Unknown><Binding>", 1)
	_ = os.WriteFile(f, []byte(bad), 0o600)
	if out, err := exec.Command(xmllint, "--noout", "--nonet", "--schema", filepath.Join(dir, "bsi_TCToken.xsd"), f).CombinedOutput(); err == nil {
		t.Errorf("xmllint accepted an invalid token: %s", out)
	}
	got, err := ParseTCToken(b)
	if err != nil || got.SessionIdentifier != "4711abcd" || got.PathSecurityParameters.PSK != testPSK || got.Binding != BindingPAOS {
		t.Errorf("round trip: %+v %v", got, err)
	}
}

func TestParseTCTokenRefuses(t *testing.T) {
	good := func() string {
		b, _ := NewTCToken("https://eid.example.org/paos", PSK{ID: "id1", Key: testPSK}, "https://rp.example/cb", "").Marshal()
		return string(b)
	}()
	if _, err := ParseTCToken([]byte(good)); err != nil {
		t.Fatalf("good token: %v", err)
	}
	for name, tok := range map[string]string{
		"http server":     strings.Replace(good, "https://eid.example.org", "http://eid.example.org", 1),
		"relative":        strings.Replace(good, "https://rp.example/cb", "/cb", 1),
		"javascript":      strings.Replace(good, "https://rp.example/cb", "javascript:alert(1)", 1),
		"binding":         strings.Replace(good, BindingPAOS, "urn:ietf:rfc:2616", 1),
		"short psk":       strings.Replace(good, testPSK, "abcd", 1),
		"psk not hex":     strings.Replace(good, testPSK, strings.Repeat("zz", 32), 1),
		"no session":      strings.Replace(good, "<SessionIdentifier>id1</SessionIdentifier>", "", 1),
		"namespace":       strings.Replace(good, "<TCTokenType>", `<TCTokenType xmlns="urn:x">`, 1),
		"doctype":         strings.Replace(good, "?>", "?><!DOCTYPE x>", 1),
		"not xml":         "{}",
		"user info":       strings.Replace(good, "https://rp.example/cb", "https://a@rp.example/cb", 1),
		"path security ?": strings.Replace(good, PathSecurityPSK, "urn:ietf:rfc:5246", 1),
	} {
		if _, err := ParseTCToken([]byte(tok)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// http is fine on loopback (the simulator).
	lb := strings.Replace(strings.Replace(good, "https://eid.example.org", "http://127.0.0.1:9", 1), "https://rp.example", "http://localhost:8080", 1)
	if _, err := ParseTCToken([]byte(lb)); err != nil {
		t.Errorf("loopback http: %v", err)
	}
}

func FuzzParseTCToken(f *testing.F) {
	b, _ := NewTCToken("https://eid.example.org/paos", PSK{ID: "id1", Key: testPSK}, "https://rp.example/cb", "https://rp.example/err").Marshal()
	f.Add(b)
	f.Add([]byte(`<TCTokenType><ServerAddress>x</ServerAddress></TCTokenType>`))
	f.Fuzz(func(t *testing.T, in []byte) {
		tok, err := ParseTCToken(in)
		if err != nil {
			return
		}
		// What parses must survive its own round trip.
		out, err := tok.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseTCToken(out); err != nil {
			t.Fatalf("re-parse: %v\n%s", err, out)
		}
	})
}

// FuzzGetResultResponse feeds the response decoder and the identity
// mapping with arbitrary (already signature-checked) payloads.
func FuzzGetResultResponse(f *testing.F) {
	res := &GetResultResponse{
		PersonalData: &PersonalData{GivenNames: "ERIKA", DateOfBirth: &GeneralDate{DateString: "1964    "},
			PlaceOfResidence: &GeneralPlace{Structured: &Place{City: "KÖLN", Country: "D"}}, RestrictedID: &RestrictedID{ID: "ab"}},
		FulfilsAgeVerification: &Verification{FulfilsRequest: true}, OperationsAllowedByUser: &Ops{},
		Result: Result{Major: MajorOK},
	}
	el, _ := Element(res)
	doc := el.Copy()
	b, _ := xmlBytes(doc)
	f.Add(b)
	f.Add([]byte(`<getResultResponse xmlns="http://bsi.bund.de/eID/"><Result xmlns="urn:oasis:names:tc:dss:1.0:core:schema"><ResultMajor>x</ResultMajor></Result></getResultResponse>`))
	p := testProvider()
	f.Fuzz(func(t *testing.T, in []byte) {
		var r GetResultResponse
		if Decode(in, &r) != nil {
			return
		}
		id, err := p.identity(&r, &state{Age: 18, Place: true}, "en")
		if err == nil && id.Subject == "" {
			t.Fatal("identity without subject")
		}
	})
}

// xmlBytes serialises an element.
func xmlBytes(el *etree.Element) ([]byte, error) {
	doc := etree.NewDocument()
	doc.SetRoot(el)
	return doc.WriteToBytes()
}

func TestConfigErrors(t *testing.T) {
	var node yaml.Node
	_ = yaml.Unmarshal([]byte(`
server_url: http://eid.example.org/soap
client_cert_file: /nonexistent/client.pem
client_key_file: /nonexistent/client.key
psk: maybe
loa: extreme
level_of_assurance_request: http://example.org/x
place_verification_community_id: "02x"
max_polls: 99
poll_interval: 1h
eid_types: {card_certified: YES, floppy: ALLOWED}
`), &node)
	_, err := Factory("eid", &node, "providers[0].config", providers.Deps{})
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"server_url", "client_cert_file", "server_ca_file", "server_signing_cert_files", "psk", "loa",
		"level_of_assurance_request", "place_verification_community_id", "max_polls", "poll_interval", "eid_types.card_certified", "eid_types.floppy"} {
		if !strings.Contains(err.Error(), "providers[0].config."+want) {
			t.Errorf("no error for %s in:\n%v", want, err)
		}
	}
	_ = yaml.Unmarshal([]byte("colour: blue"), &node)
	if _, err := Factory("eid", &node, "p", providers.Deps{}); err == nil || !strings.Contains(err.Error(), "colour") {
		t.Errorf("unknown key: %v", err)
	}
}
