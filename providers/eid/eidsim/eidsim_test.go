package eidsim_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/trustbroker/trustbroker/providers"
	"github.com/trustbroker/trustbroker/providers/eid"
	"github.com/trustbroker/trustbroker/providers/eid/eidsim"
	"github.com/trustbroker/trustbroker/providers/eid/wsse"
)

func result(t *testing.T, s *eidsim.Simulator, a answer, v any) {
	t.Helper()
	if err := eid.Decode(mustCanonical(t, s, a), v); err != nil {
		t.Fatal(err)
	}
}

// TestSimulatorRefusals: the simulated eID-Server answers as TR-03130-1
// says for requests it must refuse.
func TestSimulatorRefusals(t *testing.T) {
	s := sim(t)
	for _, tc := range []struct {
		name  string
		req   *eid.UseIDRequest
		minor string
	}{
		{"nothing requested", &eid.UseIDRequest{UseOperations: ops(nil)}, eid.MinorMissingArgument},
		{"place without community", &eid.UseIDRequest{UseOperations: ops(map[string]string{"PlaceVerification": eid.Required})}, eid.MinorMissingArgument},
		{"bad operation value", &eid.UseIDRequest{UseOperations: ops(map[string]string{"GivenNames": "MAYBE"})}, eid.MinorSchemaViolation},
		{"short PSK", &eid.UseIDRequest{UseOperations: ops(map[string]string{"GivenNames": eid.Required}), PSK: &eid.PSK{ID: "x", Key: "abcd"}}, eid.MinorInvalidPSK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, resp := useID(t, s, tc.req)
			if resp.Result.Major != eid.MajorError || resp.Result.Minor != tc.minor || resp.Session != nil {
				t.Errorf("got %+v", resp)
			}
		})
	}
}

func TestSimulatorTerminalRightsAndSessionLimit(t *testing.T) {
	rights := eid.Ops{GivenNames: eid.Allowed, RestrictedID: eid.Allowed}
	s, err := eidsim.Start(eidsim.Options{RSABits: 2048, Rights: &rights, MaxSessions: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, resp := useID(t, s, &eid.UseIDRequest{UseOperations: ops(map[string]string{"DateOfBirth": eid.Required})})
	if resp.Result.Minor != eid.MinorMissingTerminalRight {
		t.Errorf("without the right: %+v", resp.Result)
	}
	ok := &eid.UseIDRequest{UseOperations: ops(map[string]string{"GivenNames": eid.Required, "RestrictedID": eid.Required})}
	if _, resp := useID(t, s, ok); !resp.Result.OK() {
		t.Fatalf("first session: %+v", resp.Result)
	}
	if _, resp := useID(t, s, ok); resp.Result.Minor != eid.MinorTooManyOpenSessions {
		t.Errorf("second session: %+v", resp.Result)
	}
	var info eid.GetServerInfoResponse
	result(t, s, call(t, s, eid.ActionGetServerInfo, &eid.GetServerInfoRequest{}), &info)
	if info.DocumentVerificationRights.GivenNames != eid.Allowed || info.DocumentVerificationRights.DateOfBirth != eid.Prohibited {
		t.Errorf("rights: %+v", info.DocumentVerificationRights)
	}
}

// TestSimulatorRefusesForeignSignature: a request signed with a key the
// simulator does not know gets only common#internalError.
func TestSimulatorRefusesForeignSignature(t *testing.T) {
	s := sim(t)
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "stranger"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	cert, _ := x509.ParseCertificate(der)
	signer, err := wsse.NewSigner(key, cert, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, hc := client(t, s)
	c.Signer = signer
	body, _ := c.Envelope(&eid.UseIDRequest{UseOperations: ops(map[string]string{"GivenNames": eid.Required})})
	hr, _ := http.NewRequest(http.MethodPost, s.SOAPURL, bytes.NewReader(body))
	hr.Header.Set("SOAPAction", strconv.Quote(eid.ActionUseID))
	res, err := hc.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	v, err := c.Verifier.Verify(raw)
	if err != nil {
		t.Fatal(err)
	}
	var resp eid.UseIDResponse
	if err := eid.Decode(v.Canonical, &resp); err != nil || resp.Result.Minor != eid.MinorInternalError || resp.Session != nil {
		t.Errorf("answer: %+v %v", resp, err)
	}
	// Without a client certificate there is no TLS connection at all.
	bare := &http.Client{Transport: &http.Transport{TLSClientConfig: hc.Transport.(*http.Transport).TLSClientConfig.Clone()}}
	bare.Transport.(*http.Transport).TLSClientConfig.Certificates = nil
	if res, err := bare.Post(s.SOAPURL, "text/xml", bytes.NewReader(body)); err == nil {
		res.Body.Close()
		t.Errorf("SOAP without a client certificate: %d", res.StatusCode)
	}
}

// TestClientPage covers the eID client page's status answer and refusals.
func TestClientPage(t *testing.T) {
	s := sim(t)
	res, err := http.Get(s.ClientURL + "?status=json")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(b), "implementation-version") || res.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("status: %d %s %v", res.StatusCode, b, res.Header)
	}
	for name, u := range map[string]string{
		"no tcTokenURL":       s.ClientURL,
		"foreign host":        s.ClientURL + "?tcTokenURL=" + url.QueryEscape("https://evil.example/tc"),
		"unreachable":         s.ClientURL + "?tcTokenURL=" + url.QueryEscape("http://127.0.0.1:9/tc"),
		"unknown flow":        strings.TrimSuffix(s.ClientURL, "/eID-Client") + "/eID-Client/flow/nope",
		"javascript scheme":   s.ClientURL + "?tcTokenURL=" + url.QueryEscape("javascript:alert(1)"),
		"token is not a page": s.ClientURL + "?tcTokenURL=" + url.QueryEscape(s.ClientURL+"?Status"),
	} {
		res, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode < 400 || strings.Contains(string(b), `name="pin"`) || !strings.Contains(string(b), `role="alert"`) {
			t.Errorf("%s: %d\n%s", name, res.StatusCode, b)
		}
	}
}

func TestSpecimenCards(t *testing.T) {
	now := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	seen := map[string]bool{}
	for _, c := range eidsim.Cards {
		if seen[c.RestrictedID()] {
			t.Errorf("%s: pseudonym shared with another card", c.Key)
		}
		seen[c.RestrictedID()] = true
	}
	for key, want := range map[string][2]bool{ // {expired, 18+}
		"erika": {false, true}, "minor": {false, false}, "partial": {false, true}, "expired": {true, true},
	} {
		c := eidsim.CardByKey(key)
		if c.Expired(now) != want[0] || c.OldEnough(18, now) != want[1] {
			t.Errorf("%s: expired %v, 18+ %v", key, c.Expired(now), c.OldEnough(18, now))
		}
	}
	// A year-only birth date counts from the year's end.
	p := eidsim.CardByKey("partial")
	if p.OldEnough(71, time.Date(2026, 12, 30, 0, 0, 0, 0, time.UTC)) || !p.OldEnough(71, time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)) {
		t.Error("partial date of birth: age not counted from the latest possible day")
	}
	if eidsim.CardByKey("erika-renewed").Renews != "erika" || eidsim.CardByKey("nope") != nil {
		t.Error("card lookup")
	}
}

func TestSimulatorLoopbackOnly(t *testing.T) {
	if _, err := eidsim.Start(eidsim.Options{Listen: "0.0.0.0:0"}); err == nil {
		t.Error("simulator on a public address")
	}
}

func TestFactoryRefusesPublicIssuer(t *testing.T) {
	var node yaml.Node
	_ = yaml.Unmarshal([]byte("rsa_bits: 2048"), &node)
	_, err := eidsim.Factory("eid", &node, "providers[0].config", providers.Deps{Issuer: "https://login.example.org"})
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("simulator for a public issuer: %v", err)
	}
	_ = yaml.Unmarshal([]byte("rsa_bits: 1024"), &node)
	if _, err := eidsim.Factory("eid", &node, "p", providers.Deps{Issuer: "http://localhost:8080"}); err == nil {
		t.Error("1024-bit keys accepted")
	}
}
