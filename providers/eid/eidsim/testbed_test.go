package eidsim_test

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"html"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/trustbroker/trustbroker/providers/eid"
	"github.com/trustbroker/trustbroker/providers/eid/eidsim"
	"github.com/trustbroker/trustbroker/providers/eid/wsse"
)

// The BSI eID-Server test bed (TR-03130-4, github.com/eID-Testbeds/server)
// plays the eService against an eID-Server. Its OUT_* steps are what the
// broker sends, its IN_* steps what an eID-Server must answer. The files
// stay in ../shared (third-party data), read at test time.

func testbedDir(t *testing.T) string {
	t.Helper()
	shared, set := os.LookupEnv("TRUSTBROKER_TEST_SHARED")
	if !set {
		shared = filepath.Join("..", "..", "..", "..", "shared")
	}
	dir := filepath.Join(shared, "testdata", "eid-testbed", "steps")
	if _, err := os.Stat(filepath.Join(dir, "IN_USEID_RESPONSE.xml")); err != nil {
		if set {
			t.Fatalf("TRUSTBROKER_TEST_SHARED is set but the eID test bed is missing: %v", err)
		}
		t.Skipf("eID test bed not found at %s (set TRUSTBROKER_TEST_SHARED): %v", dir, err)
	}
	return dir
}

type token struct {
	Name      string `xml:"name"`
	Parent    string `xml:"parentName"`
	Value     string `xml:"value"`
	Mandatory bool   `xml:"isMandatory"`
}

type step struct {
	HTTP     []token `xml:"HttpStepToken"`
	Protocol []token `xml:"ProtocolStepToken"`
}

func loadStep(t *testing.T, dir, name string) step {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name+".xml"))
	if err != nil {
		t.Fatal(err)
	}
	var s step
	if err := xml.Unmarshal(b, &s); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(s.Protocol) == 0 {
		t.Fatalf("%s: no protocol tokens", name)
	}
	return s
}

var placeholderRE = regexp.MustCompile(`\[[A-Z0-9_]+\]`)

// outPayload is the SOAP Body child of an OUT_* step's message, with its
// placeholders filled in.
func outPayload(t *testing.T, dir, name string) (*etree.Element, string) {
	t.Helper()
	s := loadStep(t, dir, name)
	msg := strings.Replace(s.Protocol[0].Value, "[[CREATE_SOAP_SECURITY_HEADER]]", "", 1)
	msg = placeholderRE.ReplaceAllString(html.UnescapeString(msg), "1")
	doc := etree.NewDocument()
	if err := doc.ReadFromString(msg); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	body := doc.FindElement("/Envelope/Body")
	if body == nil || len(body.ChildElements()) != 1 {
		t.Fatalf("%s: no body payload", name)
	}
	return body.ChildElements()[0], s.HTTP[0].Value
}

// shape lists an element tree as namespace|path lines, in document order.
func shape(el *etree.Element, prefix string, out *[]string) {
	p := prefix + "/" + el.Tag
	*out = append(*out, el.NamespaceURI()+"|"+p)
	for _, c := range el.ChildElements() {
		shape(c, p, out)
	}
}

func shapeOf(el *etree.Element) string {
	var out []string
	shape(el, "", &out)
	return strings.Join(out, "\n")
}

var (
	simOnce sync.Once
	theSim  *eidsim.Simulator
	simErr  error
)

// sim is one simulator for the package's tests.
func sim(t *testing.T) *eidsim.Simulator {
	t.Helper()
	simOnce.Do(func() { theSim, simErr = eidsim.Start(eidsim.Options{RSABits: 2048}) })
	if simErr != nil {
		t.Fatal(simErr)
	}
	return theSim
}

func TestMain(m *testing.M) {
	code := m.Run()
	if theSim != nil {
		theSim.Close()
	}
	os.Exit(code)
}

// client is the eService side: signs with the simulator's client key,
// verifies with its server certificate.
func client(t *testing.T, s *eidsim.Simulator) (*eid.Client, *http.Client) {
	t.Helper()
	signer, err := wsse.NewSigner(s.ClientTLS.PrivateKey.(crypto.Signer), s.ClientTLS.Leaf, nil)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		MinVersion: tls.VersionTLS12, RootCAs: s.CAPool, Certificates: []tls.Certificate{s.ClientTLS}}}}
	return &eid.Client{URL: s.SOAPURL, HTTP: hc, Signer: signer,
		Verifier: &wsse.Verifier{Certs: []*x509.Certificate{s.ServerSigningCert}, RequireTimestamp: true}}, hc
}

// answer is a raw SOAP answer with its verified payload.
type answer struct {
	status      int
	contentType string
	payload     *etree.Element
	raw         []byte
}

func call(t *testing.T, s *eidsim.Simulator, action string, req any) answer {
	t.Helper()
	c, hc := client(t, s)
	body, err := c.Envelope(req)
	if err != nil {
		t.Fatal(err)
	}
	hr, _ := http.NewRequest(http.MethodPost, c.URL, bytes.NewReader(body))
	hr.Header.Set("Content-Type", "text/xml; charset=utf-8")
	hr.Header.Set("SOAPAction", strconv.Quote(action))
	res, err := hc.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	v, err := c.Verifier.Verify(raw)
	if err != nil {
		t.Fatalf("answer does not verify: %v\n%s", err, raw)
	}
	return answer{status: res.StatusCode, contentType: res.Header.Get("Content-Type"), payload: v.Payload, raw: raw}
}

// satisfies checks every mandatory token of an IN_* step against an
// answer. values fills the step's placeholders; a placeholder without a
// value only asks for the element.
func satisfies(t *testing.T, dir, name string, a answer, values map[string]string) {
	t.Helper()
	s := loadStep(t, dir, name)
	for _, h := range s.HTTP {
		if !h.Mandatory {
			continue
		}
		switch h.Name {
		case "HTTP_STATUS_CODE":
			if want := strings.Fields(h.Value); len(want) < 2 || want[1] != strconv.Itoa(a.status) {
				t.Errorf("%s: HTTP status %d, want %s", name, a.status, h.Value)
			}
		case "Content-Type":
			got, gp, _ := mime.ParseMediaType(a.contentType)
			want, wp, _ := mime.ParseMediaType(h.Value)
			if got != want || !strings.EqualFold(gp["charset"], wp["charset"]) {
				t.Errorf("%s: Content-Type %q, want %q", name, a.contentType, h.Value)
			}
		}
	}
	var all []*etree.Element
	var walk func(*etree.Element)
	walk = func(el *etree.Element) {
		all = append(all, el)
		for _, c := range el.ChildElements() {
			walk(c)
		}
	}
	walk(a.payload)
	missing := 0
	defer func() {
		if missing > 0 {
			t.Logf("%s: the answer was\n%s", name, a.raw)
		}
	}()
	for _, tk := range s.Protocol {
		if !tk.Mandatory {
			continue
		}
		want := strings.TrimSpace(tk.Value)
		if placeholderRE.MatchString(want) {
			want = values[want]
		}
		found := false
		for _, el := range all {
			if el.Tag != tk.Name || (tk.Parent != "" && (el.Parent() == nil || el.Parent().Tag != tk.Parent)) {
				continue
			}
			if want == "" || strings.EqualFold(strings.TrimSpace(el.Text()), want) {
				found = true
				break
			}
		}
		if !found {
			missing++
			t.Errorf("%s: no %s (parent %q) with value %q", name, tk.Name, tk.Parent, want)
		}
	}
}

func withAgePlace(m map[string]string) map[string]string {
	out := map[string]string{"AgeVerification": eid.Required, "PlaceVerification": eid.Required}
	for k, v := range m {
		out[k] = v
	}
	return out
}

func ops(values map[string]string) eid.Ops {
	var o eid.Ops
	for k, v := range values {
		o.Set(k, v)
	}
	o.Fill(eid.Prohibited)
	return o
}

func useID(t *testing.T, s *eidsim.Simulator, req *eid.UseIDRequest) (answer, *eid.UseIDResponse) {
	t.Helper()
	a := call(t, s, eid.ActionUseID, req)
	var resp eid.UseIDResponse
	c := mustCanonical(t, s, a)
	if err := eid.Decode(c, &resp); err != nil {
		t.Fatal(err)
	}
	return a, &resp
}

func mustCanonical(t *testing.T, s *eidsim.Simulator, a answer) []byte {
	t.Helper()
	v, err := (&wsse.Verifier{Certs: []*x509.Certificate{s.ServerSigningCert}}).Verify(a.raw)
	if err != nil {
		t.Fatal(err)
	}
	return v.Canonical
}

// finish runs the eID client page for a session: it serves the TC token on
// a loopback server, lets the page fetch it, and submits card and PIN.
func finish(t *testing.T, s *eidsim.Simulator, resp *eid.UseIDResponse, card string, release ...string) {
	t.Helper()
	const refresh = "http://127.0.0.1:9/refresh"
	tok, _ := eid.NewTCToken(resp.ECardServerAddress, *resp.PSK, refresh, "").Marshal()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/xml;charset=utf-8")
		_, _ = w.Write(tok)
	}))
	defer ts.Close()
	hc := &http.Client{CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), refresh) {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	res, err := hc.Get(s.ClientURL + "?tcTokenURL=" + url.QueryEscape(ts.URL+"/tc"))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	m := regexp.MustCompile(`<form method="post" action="([^"]+)"`).FindSubmatch(page)
	if res.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("client page %d:\n%s", res.StatusCode, page)
	}
	action, _ := res.Request.URL.Parse(html.UnescapeString(string(m[1])))
	res, err = hc.PostForm(action.String(), url.Values{"card": {card}, "pin": {eidsim.PIN}, "action": {"identify"}, "release": release})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if loc := res.Header.Get("Location"); res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, refresh+"?ResultMajor=ok") {
		t.Fatalf("after the PIN: %d %s", res.StatusCode, loc)
	}
}

func getResult(t *testing.T, s *eidsim.Simulator, session string, counter int) answer {
	t.Helper()
	return call(t, s, eid.ActionGetResult, &eid.GetResultRequest{Session: eid.Session{ID: session}, RequestCounter: counter})
}

// TestTestbedOUT: the broker's useID, getResult and getServerInfo bodies
// have the structure of the test bed's OUT_* messages, and go with its
// SOAPAction.
func TestTestbedOUT(t *testing.T) {
	dir := testbedDir(t)
	s := sim(t)
	c, _ := client(t, s)
	settings := &eid.Settings{CommunityID: "027605"}
	basic, _, _ := settings.UseIDRequest([]string{"family_name"})
	all, _, _ := settings.UseIDRequest([]string{"given_name", "family_name", "birthdate", "age_over_18", "place_verified"})
	age, _, _ := settings.UseIDRequest([]string{"family_name", "age_over_18"})
	for _, tc := range []struct {
		step, action string
		msg          any
	}{
		{"OUT_USEID_REQUEST", eid.ActionUseID, basic},
		{"OUT_USEID_REQUEST_ALL", eid.ActionUseID, all},
		{"OUT_USEID_REQUEST_AGE", eid.ActionUseID, age},
		{"OUT_GETRESULT_REQUEST", eid.ActionGetResult, &eid.GetResultRequest{Session: eid.Session{ID: "s"}, RequestCounter: 1}},
		{"OUT_GETSERVERINFO_REQUEST", eid.ActionGetServerInfo, &eid.GetServerInfoRequest{}},
	} {
		t.Run(tc.step, func(t *testing.T) {
			want, header := outPayload(t, dir, tc.step)
			if !strings.Contains(header, `SOAPAction: "`+tc.action+`"`) {
				t.Errorf("the step's header names another SOAPAction than %s:\n%s", tc.action, header)
			}
			env, err := c.Envelope(tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			v, err := (&wsse.Verifier{Certs: []*x509.Certificate{s.ClientTLS.Leaf}, RequireTimestamp: true}).Verify(env)
			if err != nil {
				t.Fatalf("our own request does not verify: %v", err)
			}
			if got, w := shapeOf(v.Payload), shapeOf(want); got != w {
				t.Errorf("structure differs\n--- ours\n%s\n--- test bed\n%s", got, w)
			}
		})
	}
}

// TestTestbedIN: the simulator's answers satisfy the test bed's IN_*
// expectations.
func TestTestbedIN(t *testing.T) {
	dir := testbedDir(t)
	s := sim(t)
	famAndID := &eid.UseIDRequest{UseOperations: ops(map[string]string{"FamilyNames": eid.Required, "RestrictedID": eid.Required})}

	t.Run("useID without PSK", func(t *testing.T) {
		a, _ := useID(t, s, famAndID)
		satisfies(t, dir, "IN_USEID_RESPONSE", a, nil)
		satisfies(t, dir, "IN_USEID_RESPONSE_NO_PSK", a, nil)
		satisfies(t, dir, "IN_USEID_RESPONSE_UNIQUE", a, nil)
	})
	t.Run("useID with PSK", func(t *testing.T) {
		req := *famAndID
		psk := eid.PSK{ID: "testbed-psk-0001", Key: strings.Repeat("0123456789abcdef", 4)}
		req.PSK = &psk
		a, _ := useID(t, s, &req)
		satisfies(t, dir, "IN_USEID_RESPONSE_PSK", a, map[string]string{"[PSK_ID]": psk.ID, "[PSK_KEY]": psk.Key})
	})
	t.Run("useID error", func(t *testing.T) {
		req := &eid.UseIDRequest{UseOperations: ops(map[string]string{"AgeVerification": eid.Required})}
		a, _ := useID(t, s, req)
		satisfies(t, dir, "IN_USEID_RESPONSE_ERROR", a, map[string]string{"[RES_MIN_IN_USEID_RESPONSE_ERROR]": eid.MinorMissingArgument})
	})
	t.Run("getResult noResultYet, then invalid counter", func(t *testing.T) {
		_, resp := useID(t, s, famAndID)
		satisfies(t, dir, "IN_GETRESULT_RESPONSE_NORESULTYET", getResult(t, s, resp.Session.ID, 1), nil)
		satisfies(t, dir, "IN_GETRESULT_RESPONSE_ERROR_2", getResult(t, s, resp.Session.ID, 1),
			map[string]string{"[RES_MIN_IN_GETRESULT_RESPONSE_ERROR_2]": eid.MinorInvalidCounter})
		// The session is gone after that.
		satisfies(t, dir, "IN_GETRESULT_RESPONSE_ERROR", getResult(t, s, resp.Session.ID, 2),
			map[string]string{"[RES_MIN_IN_GETRESULT_RESPONSE_ERROR]": eid.MinorInvalidSession})
	})
	t.Run("getServerInfo", func(t *testing.T) {
		satisfies(t, dir, "IN_GETSERVERINFO_RESPONSE", call(t, s, eid.ActionGetServerInfo, &eid.GetServerInfoRequest{}), nil)
	})

	base := map[string]string{}
	for _, op := range []string{"DocumentType", "IssuingState", "DateOfExpiry", "GivenNames", "FamilyNames", "ArtisticName", "AcademicTitle",
		"DateOfBirth", "PlaceOfBirth", "Nationality", "BirthName", "PlaceOfResidence", "ResidencePermitI", "RestrictedID"} {
		base[op] = eid.Required
	}
	for _, tc := range []struct {
		step      string
		ops       map[string]string
		age       int
		community string
		card      string
	}{
		{"IN_GETRESULT_RESPONSE", base, 0, "", "erika"},
		{"IN_GETRESULT_RESPONSE_AGE", map[string]string{"FamilyNames": eid.Required, "AgeVerification": eid.Required}, 18, "", "erika"},
		{"IN_GETRESULT_RESPONSE_AGE_OPTIONAL", map[string]string{"FamilyNames": eid.Required, "AgeVerification": eid.Allowed}, 18, "", "minor"},
		{"IN_GETRESULT_RESPONSE_PLACE", map[string]string{"FamilyNames": eid.Required, "PlaceVerification": eid.Required}, 0, "027605", "erika"},
		{"IN_GETRESULT_RESPONSE_AGEPLACE", map[string]string{"FamilyNames": eid.Required, "RestrictedID": eid.Required,
			"AgeVerification": eid.Required, "PlaceVerification": eid.Required}, 18, "027609", "minor"},
		// An early residence permit: every data group but the birth name.
		{"IN_GETRESULT_RESPONSE_EIDCARD_3", withAgePlace(base), 18, "027609", "permit"},
	} {
		t.Run(tc.step, func(t *testing.T) {
			req := &eid.UseIDRequest{UseOperations: ops(tc.ops)}
			if tc.age > 0 {
				req.SetAge(tc.age)
			}
			if tc.community != "" {
				req.SetCommunity(tc.community)
			}
			_, resp := useID(t, s, req)
			if !resp.Result.OK() {
				t.Fatalf("useID: %+v", resp.Result)
			}
			var release []string
			for op, v := range tc.ops {
				if v == eid.Allowed {
					release = append(release, op)
				}
			}
			finish(t, s, resp, tc.card, release...)
			satisfies(t, dir, tc.step, getResult(t, s, resp.Session.ID, 1), nil)
		})
	}
}

// TestTestbedTCToken: the token the broker serves has the test bed's
// mandatory IN_TC_TOKEN tokens.
func TestTestbedTCToken(t *testing.T) {
	dir := testbedDir(t)
	s := sim(t)
	b, _ := eid.NewTCToken(s.PAOSURL, eid.PSK{ID: "abc", Key: strings.Repeat("ab", 32)}, "https://rp.example/cb", "https://rp.example/cb").Marshal()
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(b); err != nil {
		t.Fatal(err)
	}
	satisfies(t, dir, "IN_TC_TOKEN", answer{status: 200, contentType: "text/xml;charset=utf-8", payload: doc.Root(), raw: b},
		map[string]string{"[CANDIDATE_URL]": s.PAOSURL})
}
