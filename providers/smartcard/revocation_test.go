package smartcard

import (
	"context"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/trustbroker/trustbroker/broker/store/sqlstore"
	"github.com/trustbroker/trustbroker/providers"
	"github.com/trustbroker/trustbroker/providers/smartcard/testpki"
)

// revEnv is a CA, a card under it naming a loopback OCSP responder whose
// answers the test decides, and a CRL endpoint.
type revEnv struct {
	now    time.Time
	root   *testpki.CA
	ca     *testpki.CA
	path   []*Cert
	answer atomic.Value // func(nonce []byte) []byte
	crl    atomic.Value // []byte
	hits   atomic.Int32
	url    string
}

func newRevEnv(t *testing.T, caKey testpki.KeyType) *revEnv {
	t.Helper()
	e := &revEnv{now: time.Now()}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.hits.Add(1)
		if r.URL.Path == "/crl" {
			b, _ := e.crl.Load().([]byte)
			if b == nil {
				http.Error(w, "no CRL", http.StatusNotFound)
				return
			}
			w.Write(b)
			return
		}
		body, _ := io.ReadAll(r.Body)
		f, _ := e.answer.Load().(func([]byte) []byte)
		if f == nil {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Write(f(requestNonce(t, body)))
	}))
	t.Cleanup(srv.Close)
	e.url = srv.URL
	e.root = testpki.NewRoot("Rev Root", testpki.P256, e.now)
	e.ca = e.root.NewIntermediate("Rev Issuing CA", caKey, e.now)
	tpl := testpki.Employee("Max", "Muster", "Beispiel AG", "max@example.org", "E-1", e.now)
	tpl.Extra = append(tpl.Extra, testpki.AIA(srv.URL+"/ocsp"), testpki.CRLDP(srv.URL+"/crl"))
	leaf := e.ca.Issue(tpl, testpki.NewKey(testpki.P256))
	for _, der := range [][]byte{leaf, e.ca.DER, e.root.DER} {
		c, err := ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		e.path = append(e.path, c)
	}
	return e
}

// requestNonce returns the nonce extension value of an OCSP request.
func requestNonce(t *testing.T, der []byte) []byte {
	in := cryptobyte.String(der)
	var req, tbs, exts, ext cryptobyte.String
	if !in.ReadASN1(&req, cbasn1.SEQUENCE) || !req.ReadASN1(&tbs, cbasn1.SEQUENCE) ||
		!tbs.SkipASN1(cbasn1.SEQUENCE) { // requestList
		t.Errorf("malformed OCSP request")
		return nil
	}
	var wrap cryptobyte.String
	if !tbs.ReadASN1(&wrap, cbasn1.Tag(2).Constructed().ContextSpecific()) || !wrap.ReadASN1(&exts, cbasn1.SEQUENCE) ||
		!exts.ReadASN1(&ext, cbasn1.SEQUENCE) {
		t.Errorf("OCSP request without extensions")
		return nil
	}
	var v []byte
	if !ext.SkipASN1(cbasn1.OBJECT_IDENTIFIER) || !ext.ReadASN1Bytes(&v, cbasn1.OCTET_STRING) {
		t.Errorf("malformed nonce")
	}
	return v
}

func (e *revEnv) leaf() *Cert { return e.path[0] }

// resp is a response about the card signed by the CA itself, fresh.
func (e *revEnv) resp(status int, nonce []byte) testpki.OCSPResponse {
	return testpki.OCSPResponse{Issuer: e.ca, Serial: e.leaf().SerialNumber, Status: status, RevokedAt: e.now.Add(-time.Hour),
		ThisUpdate: e.now.Add(-time.Minute), NextUpdate: e.now.Add(time.Hour), Nonce: nonce,
		SignerName: testpki.SubjectDER(e.ca.DER), SignerKey: e.ca.Key}
}

func (e *revEnv) serve(f func(nonce []byte) testpki.OCSPResponse) {
	e.answer.Store(func(n []byte) []byte { return testpki.BuildOCSPResponse(f(n)) })
}

func (e *revEnv) checker(_ *testing.T, soft bool) *revocationChecker {
	return newRevocationChecker(&RevocationSettings{SoftFail: soft, Timeout: 2 * time.Second, Skew: defaultSkew, MaxAge: defaultMaxAge}, nil, nil)
}

func revCode(err error) string {
	if pe, ok := providers.PublicError(err); ok {
		return pe.Code
	}
	return ""
}

func TestOCSP(t *testing.T) {
	for _, kt := range []struct {
		name string
		t    testpki.KeyType
	}{{"p256", testpki.P256}, {"rsa", testpki.RSA}, {"brainpool", testpki.Brainpool}} {
		t.Run(kt.name, func(t *testing.T) {
			e := newRevEnv(t, kt.t)
			ctx := context.Background()
			otherCA := e.root.NewIntermediate("Other CA", testpki.P256, e.now)
			cases := []struct {
				name string
				resp func(nonce []byte) testpki.OCSPResponse
				want string // "" good, else refusal code
				msg  string // part of the private cause
			}{
				{"good", func(n []byte) testpki.OCSPResponse { return e.resp(testpki.OCSPGood, n) }, "", ""},
				{"good without nonce", func([]byte) testpki.OCSPResponse { return e.resp(testpki.OCSPGood, nil) }, "", ""},
				{"revoked", func(n []byte) testpki.OCSPResponse { return e.resp(testpki.OCSPRevoked, n) }, CodeRevoked, "revoked"},
				{"unknown", func(n []byte) testpki.OCSPResponse { return e.resp(testpki.OCSPUnknown, n) }, CodeRevocationUnavailable, "unknown"},
				{"wrong key", func(n []byte) testpki.OCSPResponse {
					r := e.resp(testpki.OCSPGood, n)
					r.SignerKey = testpki.NewKey(kt.t)
					return r
				}, CodeRevocationUnavailable, "does not verify"},
				{"stale", func(n []byte) testpki.OCSPResponse {
					r := e.resp(testpki.OCSPGood, n)
					r.ThisUpdate, r.NextUpdate = e.now.Add(-48*time.Hour), e.now.Add(-24*time.Hour)
					return r
				}, CodeRevocationUnavailable, "stale"},
				{"stale without nextUpdate", func(n []byte) testpki.OCSPResponse {
					r := e.resp(testpki.OCSPGood, n)
					r.ThisUpdate, r.NextUpdate = e.now.Add(-3*time.Hour), time.Time{}
					return r
				}, CodeRevocationUnavailable, "stale"},
				{"from the future", func(n []byte) testpki.OCSPResponse {
					r := e.resp(testpki.OCSPGood, n)
					r.ThisUpdate = e.now.Add(time.Hour)
					return r
				}, CodeRevocationUnavailable, "future"},
				{"nonce mismatch", func([]byte) testpki.OCSPResponse {
					return e.resp(testpki.OCSPGood, []byte{4, 2, 1, 2})
				}, CodeRevocationUnavailable, "nonce"},
				{"other serial", func(n []byte) testpki.OCSPResponse {
					r := e.resp(testpki.OCSPGood, n)
					r.Serial = new(big.Int).Add(r.Serial, big.NewInt(1))
					return r
				}, CodeRevocationUnavailable, "no response matching"},
				{"other issuer", func(n []byte) testpki.OCSPResponse {
					r := e.resp(testpki.OCSPGood, n)
					r.Issuer = otherCA
					return r
				}, CodeRevocationUnavailable, "another issuer"},
				{"delegated responder", func(n []byte) testpki.OCSPResponse {
					k, der := e.ca.Responder("Rev OCSP", testpki.P256, e.now)
					r := e.resp(testpki.OCSPGood, n)
					r.SignerName, r.SignerKey, r.Certs = testpki.SubjectDER(der), k, [][]byte{der}
					return r
				}, "", ""},
				{"delegated responder revoked answer", func(n []byte) testpki.OCSPResponse {
					k, der := e.ca.Responder("Rev OCSP", testpki.RSA, e.now)
					r := e.resp(testpki.OCSPRevoked, n)
					r.SignerName, r.SignerKey, r.Certs = testpki.SubjectDER(der), k, [][]byte{der}
					return r
				}, CodeRevoked, "revoked"},
				{"delegated responder without OCSPSigning", func(n []byte) testpki.OCSPResponse {
					k, der := e.ca.Responder("Rev OCSP", testpki.P256, e.now, testpki.OIDClientAuth)
					r := e.resp(testpki.OCSPRevoked, n) // a forged "good" or "revoked" alike
					r.Status = testpki.OCSPGood
					r.SignerName, r.SignerKey, r.Certs = testpki.SubjectDER(der), k, [][]byte{der}
					return r
				}, CodeRevocationUnavailable, "lacks id-kp-OCSPSigning"},
				{"delegated responder of another CA", func(n []byte) testpki.OCSPResponse {
					k, der := otherCA.Responder("Other OCSP", testpki.P256, e.now)
					r := e.resp(testpki.OCSPGood, n)
					r.SignerName, r.SignerKey, r.Certs = testpki.SubjectDER(der), k, [][]byte{der}
					return r
				}, CodeRevocationUnavailable, "not issued by"},
				{"self-made responder certificate", func(n []byte) testpki.OCSPResponse {
					fake := testpki.NewRoot("Rev Issuing CA", testpki.P256, e.now) // same name, other key
					k, der := fake.Responder("Rev OCSP", testpki.P256, e.now)
					r := e.resp(testpki.OCSPGood, n)
					r.SignerName, r.SignerKey, r.Certs = testpki.SubjectDER(der), k, [][]byte{der}
					return r
				}, CodeRevocationUnavailable, "not signed by the issuing CA"},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					e.serve(tc.resp)
					st, err := e.checker(t, false).Check(ctx, e.path, e.now)
					if got := revCode(err); got != tc.want {
						t.Fatalf("code %q (%v), want %q", got, err, tc.want)
					}
					if tc.want == "" && (st.Status != "good" || st.Source != "ocsp") {
						t.Fatalf("status %+v", st)
					}
					if tc.want != "" && !strings.Contains(err.Error(), tc.msg) {
						t.Fatalf("cause %v lacks %q", err, tc.msg)
					}
				})
			}
		})
	}
}

func TestRevocationSoftFailAndCRL(t *testing.T) {
	e := newRevEnv(t, testpki.P256)
	ctx := context.Background()
	e.answer.Store(func([]byte) []byte { return []byte("garbage") })

	// No answer: hard refuses, soft allows and says so.
	if _, err := e.checker(t, false).Check(ctx, e.path, e.now); revCode(err) != CodeRevocationUnavailable {
		t.Fatalf("hard: %v", err)
	}
	st, err := e.checker(t, true).Check(ctx, e.path, e.now)
	if err != nil || st.Status != "unavailable" || st.Source != "none" {
		t.Fatalf("soft: %+v %v", st, err)
	}
	// A revoked card is refused in soft mode too (from the CRL).
	e.crl.Store(e.ca.CRL(e.now.Add(-time.Minute), e.now.Add(time.Hour), e.leaf().SerialNumber))
	if _, err := e.checker(t, true).Check(ctx, e.path, e.now); revCode(err) != CodeRevoked {
		t.Fatalf("soft, revoked on the CRL: %v", err)
	}
	// CRL fallback, good.
	e.crl.Store(e.ca.CRL(e.now.Add(-time.Minute), e.now.Add(time.Hour), big.NewInt(42)))
	if st, err := e.checker(t, false).Check(ctx, e.path, e.now); err != nil || st.Source != "crl" {
		t.Fatalf("crl good: %+v %v", st, err)
	}
	// A CRL signed by another CA, or stale, is no answer.
	other := e.root.NewIntermediate("Rev Issuing CA", testpki.P256, e.now)
	e.crl.Store(other.CRL(e.now.Add(-time.Minute), e.now.Add(time.Hour)))
	if _, err := e.checker(t, false).Check(ctx, e.path, e.now); revCode(err) != CodeRevocationUnavailable || !strings.Contains(err.Error(), "CRL") {
		t.Fatalf("forged crl: %v", err)
	}
	e.crl.Store(e.ca.CRL(e.now.Add(-48*time.Hour), e.now.Add(-24*time.Hour)))
	if _, err := e.checker(t, false).Check(ctx, e.path, e.now); revCode(err) != CodeRevocationUnavailable || !strings.Contains(err.Error(), "stale CRL") {
		t.Fatalf("stale crl: %v", err)
	}
}

// TestRevocationCache: an answer one replica fetched serves another until
// nextUpdate, verified again; the responder is not asked.
func TestRevocationCache(t *testing.T) {
	e := newRevEnv(t, testpki.P256)
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "tb.db"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	s := &RevocationSettings{Timeout: 2 * time.Second, Skew: defaultSkew, MaxAge: defaultMaxAge}
	e.serve(func(n []byte) testpki.OCSPResponse { return e.resp(testpki.OCSPGood, n) })
	a, b := newRevocationChecker(s, st, nil), newRevocationChecker(s, st, nil)
	if r, err := a.Check(ctx, e.path, e.now); err != nil || r.Cached {
		t.Fatalf("first: %+v %v", r, err)
	}
	e.answer.Store(func([]byte) []byte { return nil })
	hits := e.hits.Load()
	r, err := b.Check(ctx, e.path, e.now)
	if err != nil || !r.Cached || r.Source != "ocsp" || e.hits.Load() != hits {
		t.Fatalf("second replica: %+v %v (hits %d→%d)", r, err, hits, e.hits.Load())
	}
	// Past nextUpdate the entry is gone and the (now broken) responder is asked.
	if _, err := b.Check(ctx, e.path, e.now.Add(2*time.Hour)); err == nil {
		t.Fatal("expired cache entry used")
	}
}

// TestRevocationNeverFetchesUnvalidated: the provider validates the path
// before it looks at the certificate's URLs.
func TestRevocationNeverFetchesUnvalidated(t *testing.T) {
	e := newRevEnv(t, testpki.P256)
	e.serve(func(n []byte) testpki.OCSPResponse { return e.resp(testpki.OCSPGood, n) })
	stranger := testpki.NewRoot("Rev Issuing CA", testpki.P256, e.now) // not trusted
	tpl := testpki.Employee("Eve", "Muster", "Beispiel AG", "eve@example.org", "E-2", e.now)
	tpl.Extra = append(tpl.Extra, testpki.AIA(e.url+"/ocsp"), testpki.CRLDP(e.url+"/crl"))
	leaf := stranger.Issue(tpl, testpki.NewKey(testpki.P256))
	root, _ := ParseCertificate(e.root.DER)
	inter, _ := ParseCertificate(e.ca.DER)
	s := &Settings{Family: FamilyEmployee, Anchors: []*Cert{root}, Intermediates: []*Cert{inter}, MaxChainLength: 5,
		SubjectAttribute: testpki.OIDEmployeeNumber, Revocation: &RevocationSettings{Timeout: time.Second, Skew: defaultSkew, MaxAge: defaultMaxAge}}
	p := New("card", s, func() time.Time { return e.now })
	_, err := p.Authenticate(context.Background(), providers.Request{}, [][]byte{leaf})
	if revCode(err) != CodeUntrusted || e.hits.Load() != 0 {
		t.Fatalf("%v, %d fetches", err, e.hits.Load())
	}
}

func TestRevocationConfig(t *testing.T) {
	var msgs []string
	bad := func(field, format string, args ...any) { msgs = append(msgs, field) }
	RevocationConfig{Mode: "lenient", OCSPResponder: "file:///etc/passwd", CRLURLs: []string{"ldap://x"}, CRLFiles: []string{"/nonexistent"}, Timeout: time.Hour}.settings(bad)
	if len(msgs) != 5 {
		t.Fatalf("errors %v", msgs)
	}
	msgs = nil
	r := RevocationConfig{}.settings(bad)
	if len(msgs) != 0 || r.SoftFail || r.Timeout != defaultRevTimeout {
		t.Fatalf("defaults %+v %v", r, msgs)
	}
}

// FuzzOCSPEnvelope: the response parser must not panic, and what it
// accepts x/crypto/ocsp must be able to read as far as the stripped form.
func FuzzOCSPEnvelope(f *testing.F) {
	now := time.Now()
	ca := testpki.NewRoot("Fuzz CA", testpki.P256, now)
	k, der := ca.Responder("Fuzz OCSP", testpki.P256, now)
	f.Add(testpki.BuildOCSPResponse(testpki.OCSPResponse{Issuer: ca, Serial: big.NewInt(7), ThisUpdate: now, NextUpdate: now.Add(time.Hour),
		Nonce: []byte{4, 1, 0}, SignerName: testpki.SubjectDER(der), SignerKey: k, Certs: [][]byte{der}}))
	f.Add([]byte{0x30, 0x03, 0x0a, 0x01, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := parseOCSPEnvelope(data)
		if err != nil || env.status != 0 {
			return
		}
		if _, err := parseOCSPEnvelope(env.stripped); err != nil {
			t.Fatalf("stripped form does not parse: %v", err)
		}
	})
}
