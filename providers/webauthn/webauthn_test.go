package webauthn

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
	"github.com/go-webauthn/webauthn/protocol/webauthncose"

	"github.com/trustbroker/trustbroker/broker/loa"
	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/broker/store/sqlstore"
	"github.com/trustbroker/trustbroker/providers"
)

const (
	testRPID   = "login.example.org"
	testOrigin = "https://login.example.org"
)

// authenticator is a software authenticator: one ES256 credential.
type authenticator struct {
	key     *ecdsa.PrivateKey
	id      []byte
	handle  []byte
	counter uint32
	flags   protocol.AuthenticatorFlags
}

func newAuthenticator(t *testing.T) *authenticator {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &authenticator{key: k, id: []byte("credential-0001"), handle: []byte("user-handle-0001"),
		flags: protocol.FlagUserPresent | protocol.FlagUserVerified}
}

func (a *authenticator) coseKey(t *testing.T) []byte {
	pub, err := a.key.PublicKey.ECDH()
	if err != nil {
		t.Fatal(err)
	}
	raw := pub.Bytes() // 0x04 | X | Y
	b, err := webauthncbor.Marshal(webauthncose.EC2PublicKeyData{
		PublicKeyData: webauthncose.PublicKeyData{KeyType: int64(webauthncose.EllipticKey), Algorithm: int64(webauthncose.AlgES256)},
		Curve:         1, XCoord: raw[1:33], YCoord: raw[33:],
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// assertion answers options like navigator.credentials.get would, with
// knobs to break each check.
type tamper struct {
	origin, rpID, typ, challenge string
	badSignature, noHandle       bool
	counter                      *uint32
	id                           []byte
}

func (a *authenticator) assert(t *testing.T, options json.RawMessage, tp tamper) json.RawMessage {
	t.Helper()
	var opts protocol.CredentialAssertion
	if err := json.Unmarshal(options, &opts); err != nil {
		t.Fatal(err)
	}
	challenge := base64.RawURLEncoding.EncodeToString(opts.Response.Challenge)
	if tp.challenge != "" {
		challenge = tp.challenge
	}
	origin, rpID, typ := testOrigin, testRPID, "webauthn.get"
	if tp.origin != "" {
		origin = tp.origin
	}
	if tp.rpID != "" {
		rpID = tp.rpID
	}
	if tp.typ != "" {
		typ = tp.typ
	}
	cd, _ := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": origin, "crossOrigin": false})
	a.counter++
	count := a.counter
	if tp.counter != nil {
		count = *tp.counter
	}
	rpHash := sha256.Sum256([]byte(rpID))
	ad := append(rpHash[:], byte(a.flags))
	ad = binary.BigEndian.AppendUint32(ad, count)
	cdHash := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte(nil), ad...), cdHash[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, a.key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	if tp.badSignature {
		sig[len(sig)-1] ^= 0xff
	}
	id := a.id
	if tp.id != nil {
		id = tp.id
	}
	resp := map[string]any{
		"clientDataJSON":    base64.RawURLEncoding.EncodeToString(cd),
		"authenticatorData": base64.RawURLEncoding.EncodeToString(ad),
		"signature":         base64.RawURLEncoding.EncodeToString(sig),
	}
	if !tp.noHandle {
		resp["userHandle"] = base64.RawURLEncoding.EncodeToString(a.handle)
	}
	out, _ := json.Marshal(map[string]any{
		"id": base64.RawURLEncoding.EncodeToString(id), "rawId": base64.RawURLEncoding.EncodeToString(id),
		"type": "public-key", "response": resp, "clientExtensionResults": map[string]any{},
	})
	return out
}

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type fixture struct {
	p     *Provider
	st    store.Store
	clock *testClock
	auth  *authenticator
}

func setup(t *testing.T, cfg Config) *fixture {
	t.Helper()
	ctx := t.Context()
	c := &testClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	st, err := sqlstore.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "tb.db"), sqlstore.Options{Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	s, err := cfg.settings("https://login.example.org", "providers[0].config")
	if err != nil {
		t.Fatal(err)
	}
	p, err := New("webauthn", s, st, c.now)
	if err != nil {
		t.Fatal(err)
	}
	a := newAuthenticator(t)
	if err := st.Accounts().Create(ctx, &store.Account{ID: "acc-1"}); err != nil {
		t.Fatal(err)
	}
	if err := st.WebAuthn().Create(ctx, &store.WebAuthnCredential{
		ID: a.id, AccountID: "acc-1", ProviderID: "webauthn", UserHandle: a.handle, UserName: "erika",
		PublicKey: a.coseKey(t), UserVerified: true, AttestationFormat: "none", Name: "key",
	}); err != nil {
		t.Fatal(err)
	}
	return &fixture{p: p, st: st, clock: c, auth: a}
}

func (f *fixture) options(t *testing.T, txID string, input string) (json.RawMessage, []byte) {
	t.Helper()
	req := providers.Request{TransactionID: txID, Lang: "en"}
	if input != "" {
		req.Input = json.RawMessage(input)
	}
	opts, state, err := f.p.Options(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	return opts, state
}

func (f *fixture) finish(t *testing.T, state []byte, resp json.RawMessage) (*providers.Identity, error) {
	return f.p.Finish(t.Context(), providers.Request{Lang: "en"}, state, resp)
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	pe, ok := providers.PublicError(err)
	if !ok || pe.Code != code {
		t.Fatalf("error %v; want code %q", err, code)
	}
}

func TestLoginPasskeyAndUserName(t *testing.T) {
	f := setup(t, Config{UserVerification: "required"})
	opts, state := f.options(t, "tx-1", "")
	id, err := f.finish(t, state, f.auth.assert(t, opts, tamper{}))
	if err != nil {
		t.Fatal(err)
	}
	if id.Subject != subjectOf(f.auth.handle) || id.LoA != loa.Low || id.Kind != providers.KindWebAuthn {
		t.Errorf("identity %+v", id)
	}
	if want := []string{"hwk", "user", "pin", "mfa"}; len(id.AMR) != 4 || id.AMR[0] != want[0] || id.AMR[2] != want[2] {
		t.Errorf("amr %v; want %v", id.AMR, want)
	}
	// By user name: allowCredentials lists the credential.
	opts, state = f.options(t, "tx-2", `{"username":"erika"}`)
	var o protocol.CredentialAssertion
	_ = json.Unmarshal(opts, &o)
	if len(o.Response.AllowedCredentials) != 1 || string(o.Response.AllowedCredentials[0].CredentialID) != string(f.auth.id) {
		t.Fatalf("allowCredentials %+v", o.Response.AllowedCredentials)
	}
	if _, err := f.finish(t, state, f.auth.assert(t, opts, tamper{noHandle: true})); err != nil {
		t.Fatal(err)
	}
	c, _ := f.st.WebAuthn().Get(t.Context(), f.auth.id)
	if c.SignCount != 2 || c.LastUsedAt.IsZero() {
		t.Errorf("stored credential after two logins: %+v", c)
	}
	// An unknown user name gets a plausible request, not an error.
	opts, _ = f.options(t, "tx-3", `{"username":"nobody"}`)
	_ = json.Unmarshal(opts, &o)
	if len(o.Response.AllowedCredentials) != 1 {
		t.Errorf("unknown user: allowCredentials %+v", o.Response.AllowedCredentials)
	}
}

func TestLoginRefused(t *testing.T) {
	zero := uint32(0)
	for _, tc := range []struct {
		name string
		tp   tamper
		code string
	}{
		{"wrong origin", tamper{origin: "https://evil.example"}, "assertion_invalid"},
		{"wrong rp id hash", tamper{rpID: "evil.example"}, "assertion_invalid"},
		{"create instead of get", tamper{typ: "webauthn.create"}, "assertion_invalid"},
		{"challenge of another transaction", tamper{challenge: "other"}, "assertion_invalid"},
		{"unknown credential", tamper{id: []byte("never-registered")}, "unknown_credential"},
		{"tampered signature", tamper{badSignature: true}, "assertion_invalid"},
		{"counter zero after use", tamper{counter: &zero}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := setup(t, Config{})
			if tc.tp.counter != nil {
				// A first login moves the stored counter to 1.
				opts, state := f.options(t, "tx-0", "")
				if _, err := f.finish(t, state, f.auth.assert(t, opts, tamper{})); err != nil {
					t.Fatal(err)
				}
				tc.code = "cloned"
			}
			opts, state := f.options(t, "tx-1", "")
			if tc.tp.challenge == "other" {
				other, _ := f.options(t, "tx-2", "")
				var o protocol.CredentialAssertion
				_ = json.Unmarshal(other, &o)
				tc.tp.challenge = base64.RawURLEncoding.EncodeToString(o.Response.Challenge)
			}
			_, err := f.finish(t, state, f.auth.assert(t, opts, tc.tp))
			wantCode(t, err, tc.code)
		})
	}
}

func TestReplayAndExpiry(t *testing.T) {
	f := setup(t, Config{ChallengeTTL: "2m"})
	opts, state := f.options(t, "tx-1", "")
	resp := f.auth.assert(t, opts, tamper{})
	if _, err := f.finish(t, state, resp); err != nil {
		t.Fatal(err)
	}
	_, err := f.finish(t, state, resp)
	wantCode(t, err, "replayed")

	opts, state = f.options(t, "tx-2", "")
	f.clock.add(2*time.Minute + time.Second)
	_, err = f.finish(t, state, f.auth.assert(t, opts, tamper{}))
	wantCode(t, err, "expired")
}

// TestCounterBackwards: a counter that goes backwards refuses the login,
// marks the credential cloned (later logins refused too) and is audited.
func TestCounterBackwards(t *testing.T) {
	f := setup(t, Config{})
	f.auth.counter = 10
	opts, state := f.options(t, "tx-1", "")
	if _, err := f.finish(t, state, f.auth.assert(t, opts, tamper{})); err != nil {
		t.Fatal(err)
	}
	five := uint32(5)
	opts, state = f.options(t, "tx-2", "")
	_, err := f.finish(t, state, f.auth.assert(t, opts, tamper{counter: &five}))
	wantCode(t, err, "cloned")
	c, _ := f.st.WebAuthn().Get(t.Context(), f.auth.id)
	if !c.Cloned || c.SignCount != 11 {
		t.Errorf("credential after clone detection: %+v", c)
	}
	evs, _ := f.st.Audit().List(t.Context(), store.AuditFilter{Action: "webauthn.cloned"})
	if len(evs) != 1 || evs[0].Actor != "acc-1" || evs[0].Outcome != store.OutcomeDenied {
		t.Errorf("audit %+v", evs)
	}
	opts, state = f.options(t, "tx-3", "")
	_, err = f.finish(t, state, f.auth.assert(t, opts, tamper{}))
	wantCode(t, err, "cloned")
}

// TestRacingAssertions: two assertions with the same counter value, on
// two challenges, race; exactly one wins.
func TestRacingAssertions(t *testing.T) {
	f := setup(t, Config{})
	one := uint32(1)
	o1, s1 := f.options(t, "tx-1", "")
	o2, s2 := f.options(t, "tx-2", "")
	r1, r2 := f.auth.assert(t, o1, tamper{counter: &one}), f.auth.assert(t, o2, tamper{counter: &one})
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Go(func() { _, errs[0] = f.finish(t, s1, r1) })
	wg.Go(func() { _, errs[1] = f.finish(t, s2, r2) })
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		}
	}
	if ok != 1 {
		t.Fatalf("racing assertions: %v; want exactly one success", errs)
	}
}

func TestUserVerificationRequired(t *testing.T) {
	f := setup(t, Config{UserVerification: "required"})
	f.auth.flags = protocol.FlagUserPresent
	opts, state := f.options(t, "tx-1", "")
	_, err := f.finish(t, state, f.auth.assert(t, opts, tamper{}))
	wantCode(t, err, "assertion_invalid")
}

func TestBackupEligibleMustNotChange(t *testing.T) {
	f := setup(t, Config{})
	f.auth.flags |= protocol.FlagBackupEligible
	opts, state := f.options(t, "tx-1", "")
	_, err := f.finish(t, state, f.auth.assert(t, opts, tamper{}))
	wantCode(t, err, "assertion_invalid")
}

func TestLevelOfAssurance(t *testing.T) {
	s, err := Config{}.settings("https://login.example.org", "p")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		be, attested, uv bool
		want             loa.Level
	}{
		{false, false, true, loa.Low},
		{true, true, true, loa.Low},
		{false, true, true, loa.Substantial},
		{false, true, false, loa.Low},
	} {
		if got := s.levelFor(tc.be, tc.attested, tc.uv); got != tc.want {
			t.Errorf("levelFor(be=%v, attested=%v, uv=%v) = %v; want %v", tc.be, tc.attested, tc.uv, got, tc.want)
		}
	}
	if s.maxLoA() != loa.Substantial {
		t.Errorf("maxLoA %v", s.maxLoA())
	}
	if amr := amr(true, false); amr[0] != "swk" || len(amr) != 2 {
		t.Errorf("amr of a synced key without UV: %v", amr)
	}
	_, err = Config{UserVerification: "sometimes", ChallengeTTL: "1h", Origins: []string{"http://evil.example"}}.settings("https://x", "p")
	var ce interface{ Error() string }
	if !errors.As(err, &ce) || err == nil {
		t.Fatal("bad config accepted")
	}
}

// FuzzParseAssertion feeds the client-data and authenticator-data parser
// the broker runs on untrusted input; it must never panic, and whatever
// it accepts must fail verification against a fresh challenge.
func FuzzParseAssertion(f *testing.F) {
	f.Add([]byte(`{"id":"AQ","rawId":"AQ","type":"public-key","response":{"clientDataJSON":"e30","authenticatorData":"AAAA","signature":"AA"}}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"id":"","rawId":"","type":"public-key","response":{"clientDataJSON":"eyJ0eXBlIjoid2ViYXV0aG4uZ2V0In0","authenticatorData":"SZYN5YgOjGh0NBcPZHZgW4_krrmihjLHmVzzuoMdl2MFAAAAAQ","signature":"MEUCIQ"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := protocol.ParseCredentialRequestResponseBytes(data)
		if err != nil {
			return
		}
		_ = p.Verify("Y2hhbGxlbmdl", testRPID, "", []string{testOrigin}, nil, nil,
			protocol.TopOriginDefaultVerificationMode, false, true, true, []byte{0xa0}, protocol.SignaturePolicy{})
	})
}
