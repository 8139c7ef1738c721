package dpop

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/trustbroker/trustbroker/broker/store"
)

const (
	testURL    = "https://op.example.test/token"
	testMethod = "POST"
)

// testNow is the fixed instant most tests run at.
var testNow = time.Unix(1_760_000_000, 0)

// testNonceKey is the nonce key shared by the test "replicas".
var testNonceKey = []byte("0123456789abcdef0123456789abcdef")

// clock is an adjustable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// memReplay is an in-memory ReplayCache for tests, safe for concurrent
// use, with the semantics of store.Replay.
type memReplay struct {
	now  func() time.Time
	mu   sync.Mutex
	seen map[string]time.Time
}

func newMemReplay(now func() time.Time) *memReplay {
	return &memReplay{now: now, seen: map[string]time.Time{}}
}

func (m *memReplay) Use(_ context.Context, namespace, value string, expiresAt time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := namespace + "\x00" + value
	if exp, ok := m.seen[k]; ok && exp.After(m.now()) {
		return fmt.Errorf("memReplay: %q: %w", value, store.ErrConflict)
	}
	m.seen[k] = expiresAt
	return nil
}

// failingReplay is a ReplayCache whose storage is down.
type failingReplay struct{ err error }

func (f failingReplay) Use(context.Context, string, string, time.Time) error { return f.err }

// acceptAllReplay accepts every value (for benchmarks of the checks alone).
type acceptAllReplay struct{}

func (acceptAllReplay) Use(context.Context, string, string, time.Time) error { return nil }

// testKey is a proof key of one algorithm.
type testKey struct {
	alg  jose.SignatureAlgorithm
	priv any
	pub  jose.JSONWebKey
}

// testKeys are generated once per test binary and never changed.
var testKeys = sync.OnceValue(func() map[string]testKey {
	keys := map[string]testKey{}
	add := func(name string, alg jose.SignatureAlgorithm, priv any, pub any) {
		keys[name] = testKey{alg: alg, priv: priv, pub: jose.JSONWebKey{Key: pub}}
	}
	ec := func(c elliptic.Curve) *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	}
	rsaKey := func(bits int) *rsa.PrivateKey {
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			panic(err)
		}
		return k
	}
	p256, p256b, p384, p521 := ec(elliptic.P256()), ec(elliptic.P256()), ec(elliptic.P384()), ec(elliptic.P521())
	r2048, r1024 := rsaKey(2048), rsaKey(1024)
	edPub, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	add("ES256", jose.ES256, p256, &p256.PublicKey)
	add("ES256b", jose.ES256, p256b, &p256b.PublicKey)
	add("ES384", jose.ES384, p384, &p384.PublicKey)
	add("ES512", jose.ES512, p521, &p521.PublicKey)
	add("RS256", jose.RS256, r2048, &r2048.PublicKey)
	add("PS256", jose.PS256, r2048, &r2048.PublicKey)
	add("RS256-1024", jose.RS256, r1024, &r1024.PublicKey)
	add("EdDSA", jose.EdDSA, edPriv, edPub)
	return keys
})

func key(name string) testKey {
	k, ok := testKeys()[name]
	if !ok {
		panic("no test key " + name)
	}
	return k
}

// jkt is the thumbprint of the key's public part.
func (k testKey) jkt(t testing.TB) string {
	t.Helper()
	s, err := Thumbprint(k.pub)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// signOpt adjusts the JWS header of a test proof.
type signOpt func(*jose.SignerOptions)

// withHeader sets (or, with a nil value, removes) a protected header
// parameter; it overrides what the signer would write.
func withHeader(name string, v any) signOpt {
	return func(so *jose.SignerOptions) {
		if v == nil {
			delete(so.ExtraHeaders, jose.HeaderKey(name))
			return
		}
		so.WithHeader(jose.HeaderKey(name), v)
	}
}

// withoutJWK leaves the jwk header out.
func withoutJWK(so *jose.SignerOptions) { so.EmbedJWK = false }

// sign returns a compact JWS over payload with typ dpop+jwt and the
// public key embedded as jwk, adjusted by opts.
func (k testKey) sign(t testing.TB, payload []byte, opts ...signOpt) string {
	t.Helper()
	jws := k.signJWS(t, payload, opts...)
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (k testKey) signJWS(t testing.TB, payload []byte, opts ...signOpt) *jose.JSONWebSignature {
	t.Helper()
	so := (&jose.SignerOptions{EmbedJWK: true}).WithType(typDPoP)
	for _, o := range opts {
		o(so)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: k.priv}, so)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	return jws
}

// proof signs claims (see claimsAt) with adjusted headers.
func (k testKey) proof(t testing.TB, claims map[string]any, opts ...signOpt) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return k.sign(t, payload, opts...)
}

var jtiCounter struct {
	mu sync.Mutex
	n  int
}

// newJTI returns a jti unique within the test binary.
func newJTI() string {
	jtiCounter.mu.Lock()
	defer jtiCounter.mu.Unlock()
	jtiCounter.n++
	return fmt.Sprintf("jti-%d", jtiCounter.n)
}

// claimsAt are valid claims for a POST to testURL issued at iat, changed
// by edits ("name": nil deletes a claim).
func claimsAt(iat time.Time, edits map[string]any) map[string]any {
	c := map[string]any{
		"jti": newJTI(),
		"htm": testMethod,
		"htu": testURL,
		"iat": iat.Unix(),
	}
	for k, v := range edits {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// newTestVerifier builds a Verifier on clk with an in-memory replay cache
// and the test nonce key, adjusted by edit.
func newTestVerifier(t testing.TB, clk *clock, edit func(*Options)) *Verifier {
	t.Helper()
	opts := Options{
		Now:      clk.Now,
		Replay:   newMemReplay(clk.Now),
		NonceKey: testNonceKey,
	}
	if edit != nil {
		edit(&opts)
	}
	v, err := NewVerifier(opts)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// tokenRequest is a token-endpoint request carrying proof.
func tokenRequest(proof string) Request {
	return Request{Headers: []string{proof}, Method: testMethod, URL: testURL}
}
