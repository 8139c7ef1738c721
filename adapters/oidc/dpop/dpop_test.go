package dpop

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/trustbroker/trustbroker/broker/store"
)

// wantRefusal fails unless err is an *Error with code whose Description
// contains desc.
func wantRefusal(t *testing.T, err error, code, desc string) *Error {
	t.Helper()
	var de *Error
	if !errors.As(err, &de) {
		t.Fatalf("err = %v, want a %s refusal", err, code)
	}
	if de.Code != code || !strings.Contains(de.Description, desc) {
		t.Fatalf("refusal = %q %q, want %q containing %q", de.Code, de.Description, code, desc)
	}
	return de
}

func TestVerifyAlgorithms(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"ES256", "ES384", "RS256", "PS256", "EdDSA"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			k := key(name)
			v := newTestVerifier(t, newClock(testNow), nil)
			claims := claimsAt(testNow, nil)
			p, err := v.Verify(t.Context(), tokenRequest(k.proof(t, claims)))
			if err != nil {
				t.Fatal(err)
			}
			if p.JKT != k.jkt(t) || p.JTI != claims["jti"] || !p.IssuedAt.Equal(testNow) || p.Nonce != "" {
				t.Errorf("proof = %+v", p)
			}
			if !p.Key.IsPublic() {
				t.Error("proof key is not public")
			}
		})
	}
}

func TestVerifyOptionalAlgorithm(t *testing.T) {
	t.Parallel()
	k := key("ES512")
	v := newTestVerifier(t, newClock(testNow), func(o *Options) { o.Algorithms = []string{"ES512"} })
	if _, err := v.Verify(t.Context(), tokenRequest(k.proof(t, claimsAt(testNow, nil)))); err != nil {
		t.Fatal(err)
	}
	es256 := key("ES256").proof(t, claimsAt(testNow, nil))
	_, err := v.Verify(t.Context(), tokenRequest(es256))
	wantRefusal(t, err, CodeInvalidProof, "alg 'ES256' is not accepted")
}

// TestVerifyAccepts covers proofs that differ from the canonical form but
// are valid.
func TestVerifyAccepts(t *testing.T) {
	t.Parallel()
	k := key("ES256")
	token := "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"
	tests := []struct {
		name   string
		claims map[string]any
		opts   []signOpt
		req    func(*Request)
	}{
		{name: "iat at now-MaxAge", claims: claimsAt(testNow.Add(-DefaultMaxAge), nil)},
		{name: "iat at now+Leeway", claims: claimsAt(testNow.Add(DefaultLeeway), nil)},
		{name: "exp and nbf within leeway", claims: claimsAt(testNow, map[string]any{
			"exp": testNow.Add(-DefaultLeeway + time.Second).Unix(), "nbf": testNow.Add(DefaultLeeway).Unix(),
		})},
		{name: "fractional iat", claims: claimsAt(testNow, map[string]any{"iat": float64(testNow.Unix()) + 0.25})},
		{name: "htu with query and fragment", claims: claimsAt(testNow, map[string]any{"htu": testURL + "?a=b#c"})},
		{name: "request URL with query", claims: claimsAt(testNow, nil), req: func(r *Request) { r.URL += "?x=1" }},
		{name: "htu normalised", claims: claimsAt(testNow, map[string]any{"htu": "HTTPS://OP.Example.Test:443/a/../%74oken"})},
		{name: "typ as full media type", claims: claimsAt(testNow, nil), opts: []signOpt{withHeader("typ", "application/DPoP+JWT")}},
		{name: "ath ignored without access token", claims: claimsAt(testNow, map[string]any{"ath": "whatever"})},
		{name: "access token with ath", claims: claimsAt(testNow, map[string]any{"htm": "GET", "ath": ATH(token)}),
			req: func(r *Request) { r.Method, r.AccessToken = "GET", token }},
		{name: "bound key", claims: claimsAt(testNow, nil), req: func(r *Request) { r.BoundJKT = k.jkt(t) }},
		{name: "unknown claims and kid", claims: claimsAt(testNow, map[string]any{"foo": []int{1}}), opts: []signOpt{withHeader("kid", "k1")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := newTestVerifier(t, newClock(testNow), nil)
			req := tokenRequest(k.proof(t, tt.claims, tt.opts...))
			if tt.req != nil {
				tt.req(&req)
			}
			if _, err := v.Verify(t.Context(), req); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestVerifyRefusals checks each refusal of RFC 9449 §4.3 with its code.
func TestVerifyRefusals(t *testing.T) {
	t.Parallel()
	es := key("ES256")
	token := "an-access-token"
	jwe := func(t *testing.T) string {
		enc, err := jose.NewEncrypter(jose.A128GCM, jose.Recipient{Algorithm: jose.DIRECT, Key: make([]byte, 16)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		obj, err := enc.Encrypt([]byte(`{"jti":"x"}`))
		if err != nil {
			t.Fatal(err)
		}
		s, err := obj.CompactSerialize()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	unsigned := func(t *testing.T, header map[string]any, claims map[string]any) string {
		h, _ := json.Marshal(header)
		c, _ := json.Marshal(claims)
		return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + "."
	}
	privJWK := func(t *testing.T) any {
		b, err := json.Marshal(jose.JSONWebKey{Key: es.priv})
		if err != nil {
			t.Fatal(err)
		}
		return json.RawMessage(b)
	}
	now := func(edits map[string]any) map[string]any { return claimsAt(testNow, edits) }
	proof := func(k testKey, claims map[string]any, opts ...signOpt) func(*testing.T) Request {
		return func(t *testing.T) Request { return tokenRequest(k.proof(t, claims, opts...)) }
	}
	raw := func(s string) func(*testing.T) Request {
		return func(*testing.T) Request { return tokenRequest(s) }
	}
	with := func(f func(*testing.T) Request, edit func(*Request)) func(*testing.T) Request {
		return func(t *testing.T) Request {
			r := f(t)
			edit(&r)
			return r
		}
	}

	tests := []struct {
		name string
		req  func(*testing.T) Request
		code string
		desc string
	}{
		// §4.3 step 1: one header.
		{"no DPoP header", with(raw(""), func(r *Request) { r.Headers = nil }), CodeInvalidProof, "missing"},
		{"two DPoP headers", with(proof(es, now(nil)), func(r *Request) { r.Headers = append(r.Headers, r.Headers[0]) }), CodeInvalidProof, "more than one"},
		// §4.3 step 2: a well-formed JWS in compact serialisation.
		{"empty header", raw(""), CodeInvalidProof, "empty"},
		{"not a JWS", raw("not-a-jwt"), CodeInvalidProof, "not a compact JWS"},
		{"comma-joined headers", func(t *testing.T) Request {
			p := es.proof(t, now(nil))
			return tokenRequest(p + ", " + p)
		}, CodeInvalidProof, "not a compact JWS"},
		{"JWE", func(t *testing.T) Request { return tokenRequest(jwe(t)) }, CodeInvalidProof, "not a compact JWS"},
		{"JSON serialisation", func(t *testing.T) Request {
			return tokenRequest(es.signJWS(t, []byte(`{}`)).FullSerialize())
		}, CodeInvalidProof, "not a compact JWS"},
		{"too long", raw(strings.Repeat("a", maxProofLen) + ".b.c"), CodeInvalidProof, "too long"},
		{"header not base64url JSON", raw("e30x.e30.AA"), CodeInvalidProof, "header"},
		{"header not an object", raw(base64.RawURLEncoding.EncodeToString([]byte(`[1]`)) + ".e30.AA"), CodeInvalidProof, "not a JSON object"},
		// §4.3 step 4: typ.
		{"wrong typ", proof(es, now(nil), withHeader("typ", "JWT")), CodeInvalidProof, "typ"},
		{"no typ", proof(es, now(nil), withHeader("typ", nil)), CodeInvalidProof, "typ"},
		{"typ not a string", proof(es, now(nil), withHeader("typ", 1)), CodeInvalidProof, "typ"},
		// §4.3 step 5: alg.
		{"alg none, unsigned", func(t *testing.T) Request {
			return tokenRequest(unsigned(t, map[string]any{"typ": typDPoP, "alg": "none", "jwk": es.pub}, now(nil)))
		}, CodeInvalidProof, "alg 'none' is not accepted"},
		{"alg none over a signature", proof(es, now(nil), withHeader("alg", "none")), CodeInvalidProof, "alg 'none'"},
		{"HS256 with an oct jwk", func(t *testing.T) Request {
			hs := testKey{alg: jose.HS256, priv: []byte(strings.Repeat("k", 32))}
			return tokenRequest(hs.proof(t, now(nil), withHeader("jwk", map[string]string{
				"kty": "oct", "k": base64.RawURLEncoding.EncodeToString(hs.priv.([]byte)),
			})))
		}, CodeInvalidProof, "alg 'HS256' is not accepted"},
		{"alg not in the accepted list", proof(key("ES512"), now(nil)), CodeInvalidProof, "alg 'ES512' is not accepted"},
		{"no alg", proof(es, now(nil), withHeader("alg", "")), CodeInvalidProof, "no alg"},
		// §4.3 step 7: jwk public only.
		{"private key in jwk", func(t *testing.T) Request {
			return tokenRequest(es.proof(t, now(nil), withoutJWK, withHeader("jwk", privJWK(t))))
		}, CodeInvalidProof, "private"},
		{"symmetric jwk under ES256", proof(es, now(nil), withHeader("jwk", map[string]string{"kty": "oct", "k": "AAAA"})), CodeInvalidProof, "private or symmetric"},
		{"jwk missing", proof(es, now(nil), withoutJWK), CodeInvalidProof, "no jwk"},
		{"jwk not an object", proof(es, now(nil), withHeader("jwk", "key")), CodeInvalidProof, "jwk header is not a JSON object"},
		{"jwk unparsable", proof(es, now(nil), withHeader("jwk", map[string]string{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"})), CodeInvalidProof, "not a well-formed JWS"},
		{"crit header", proof(es, now(nil), withHeader("crit", []string{"exp"}), withHeader("exp", 1)), CodeInvalidProof, "crit"},
		{"x5c header", proof(es, now(nil), withHeader("x5c", []string{"AA"})), CodeInvalidProof, "x5c"},
		{"b64 header", func(t *testing.T) Request { return tokenRequest(es.sign(t, []byte("abc"), withHeader("b64", false))) }, CodeInvalidProof, "b64"},
		// §4.3 step 6: the signature verifies with the jwk.
		{"signed by a different key", proof(es, now(nil), withHeader("jwk", key("ES256b").pub)), CodeInvalidProof, "signature"},
		{"RSA jwk under ES256", proof(es, now(nil), withHeader("jwk", key("RS256").pub)), CodeInvalidProof, "does not fit alg"},
		{"P-384 jwk under ES256", proof(es, now(nil), withHeader("jwk", key("ES384").pub)), CodeInvalidProof, "does not fit alg"},
		{"RSA key of 1024 bits", proof(key("RS256-1024"), now(nil)), CodeInvalidProof, "does not fit alg"},
		{"tampered payload", func(t *testing.T) Request {
			p := strings.Split(es.proof(t, now(nil)), ".")
			c, _ := json.Marshal(now(nil))
			return tokenRequest(p[0] + "." + base64.RawURLEncoding.EncodeToString(c) + "." + p[2])
		}, CodeInvalidProof, "signature"},
		// §4.3 step 3: required claims.
		{"missing jti", proof(es, now(map[string]any{"jti": nil})), CodeInvalidProof, "no jti"},
		{"empty jti", proof(es, now(map[string]any{"jti": ""})), CodeInvalidProof, "no jti"},
		{"jti too long", proof(es, now(map[string]any{"jti": strings.Repeat("j", maxJTILen+1)})), CodeInvalidProof, "jti is too long"},
		{"missing htm", proof(es, now(map[string]any{"htm": nil})), CodeInvalidProof, "no htm"},
		{"missing htu", proof(es, now(map[string]any{"htu": nil})), CodeInvalidProof, "no htu"},
		{"missing iat", proof(es, now(map[string]any{"iat": nil})), CodeInvalidProof, "no iat"},
		{"iat a string", proof(es, now(map[string]any{"iat": "1760000000"})), CodeInvalidProof, "expected types"},
		{"claims not an object", func(t *testing.T) Request { return tokenRequest(es.sign(t, []byte(`"claims"`))) }, CodeInvalidProof, "expected types"},
		// §4.3 step 8: htm.
		{"htm GET for POST", proof(es, now(map[string]any{"htm": "GET"})), CodeInvalidProof, "htm 'GET' does not match"},
		{"htm lower case", proof(es, now(map[string]any{"htm": "post"})), CodeInvalidProof, "htm"},
		// §4.3 step 9: htu.
		{"htu other host", proof(es, now(map[string]any{"htu": "https://evil.example.test/token"})), CodeInvalidProof, "htu does not match"},
		{"htu other path", proof(es, now(map[string]any{"htu": "https://op.example.test/userinfo"})), CodeInvalidProof, "htu does not match"},
		{"htu other scheme", proof(es, now(map[string]any{"htu": "http://op.example.test/token"})), CodeInvalidProof, "htu does not match"},
		{"htu other port", proof(es, now(map[string]any{"htu": "https://op.example.test:8443/token"})), CodeInvalidProof, "htu does not match"},
		{"htu trailing slash", proof(es, now(map[string]any{"htu": testURL + "/"})), CodeInvalidProof, "htu does not match"},
		{"htu relative", proof(es, now(map[string]any{"htu": "/token"})), CodeInvalidProof, "htu is not"},
		{"htu with userinfo", proof(es, now(map[string]any{"htu": "https://u@op.example.test/token"})), CodeInvalidProof, "htu is not"},
		// §4.3 step 11: iat window.
		{"iat one second too old", proof(es, claimsAt(testNow.Add(-DefaultMaxAge-time.Second), nil)), CodeInvalidProof, "too far in the past"},
		{"iat one second too far ahead", proof(es, claimsAt(testNow.Add(DefaultLeeway+time.Second), nil)), CodeInvalidProof, "in the future"},
		{"iat negative", proof(es, now(map[string]any{"iat": -1})), CodeInvalidProof, "out of range"},
		{"iat huge", proof(es, now(map[string]any{"iat": 1e300})), CodeInvalidProof, "out of range"},
		// RFC 7519 §4.1.4–5, when present.
		{"exp passed", proof(es, now(map[string]any{"exp": testNow.Add(-DefaultLeeway).Unix()})), CodeInvalidProof, "exp"},
		{"exp out of range", proof(es, now(map[string]any{"exp": -5})), CodeInvalidProof, "exp"},
		{"exp not a number", proof(es, now(map[string]any{"exp": "soon"})), CodeInvalidProof, "expected types"},
		{"nbf ahead", proof(es, now(map[string]any{"nbf": testNow.Add(DefaultLeeway + time.Second).Unix()})), CodeInvalidProof, "nbf"},
		// §4.3 step 12: ath and the key binding.
		{"ath missing with access token", with(proof(es, now(nil)), func(r *Request) { r.AccessToken = token }), CodeInvalidProof, "no ath"},
		{"ath mismatch", with(proof(es, now(map[string]any{"ath": ATH("another token")})), func(r *Request) { r.AccessToken = token }), CodeInvalidProof, "ath does not match"},
		{"bound key mismatch at the token endpoint", with(proof(es, now(nil)), func(r *Request) { r.BoundJKT = key("ES256b").jkt(t) }), CodeInvalidProof, "key binding"},
		{"bound key mismatch with an access token", with(proof(es, now(map[string]any{"ath": ATH(token)})), func(r *Request) {
			r.AccessToken, r.BoundJKT = token, key("EdDSA").jkt(t)
		}), CodeInvalidToken, "key binding"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := newTestVerifier(t, newClock(testNow), nil)
			_, err := v.Verify(t.Context(), tt.req(t))
			de := wantRefusal(t, err, tt.code, tt.desc)
			if strings.Contains(tt.desc, "key binding") && !errors.Is(de, ErrKeyMismatch) {
				t.Error("binding refusal does not wrap ErrKeyMismatch")
			}
		})
	}
}

// TestVerifyDuplicateMembers: a protected header that repeats a member is
// refused (RFC 7515 §4 allows refusing), so a proof cannot show one value
// to the checks and another to the signature: this package's first
// reading takes the last value, and go-jose refuses duplicates outright.
func TestVerifyDuplicateMembers(t *testing.T) {
	t.Parallel()
	es := key("ES256")
	pub, err := json.Marshal(es.pub)
	if err != nil {
		t.Fatal(err)
	}
	privJWK, err := json.Marshal(jose.JSONWebKey{Key: es.priv})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("helper signs a valid proof", func(t *testing.T) {
		v := newTestVerifier(t, newClock(testNow), nil)
		claims, _ := json.Marshal(claimsAt(testNow, nil))
		header := `{"typ":"dpop+jwt","alg":"ES256","jwk":` + string(pub) + `}`
		if _, err := v.Verify(t.Context(), tokenRequest(signES256Raw(t, es.priv.(*ecdsa.PrivateKey), []byte(header), claims))); err != nil {
			t.Fatal(err)
		}
	})
	tests := []struct {
		name, header, desc string
	}{
		{"alg ES256 then none", `{"typ":"dpop+jwt","alg":"ES256","jwk":` + string(pub) + `,"alg":"none"}`, "alg 'none'"},
		{"typ dpop+jwt then JWT", `{"typ":"dpop+jwt","alg":"ES256","jwk":` + string(pub) + `,"typ":"JWT"}`, "typ"},
		{"public jwk then private", `{"typ":"dpop+jwt","alg":"ES256","jwk":` + string(pub) + `,"jwk":` + string(privJWK) + `}`, "private"},
		{"alg none then ES256", `{"typ":"dpop+jwt","alg":"none","jwk":` + string(pub) + `,"alg":"ES256"}`, "not a well-formed JWS"},
		{"jwk twice", `{"typ":"dpop+jwt","alg":"ES256","jwk":` + string(pub) + `,"jwk":` + string(pub) + `}`, "not a well-formed JWS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := newTestVerifier(t, newClock(testNow), nil)
			claims, _ := json.Marshal(claimsAt(testNow, nil))
			_, err := v.Verify(t.Context(), tokenRequest(signES256Raw(t, es.priv.(*ecdsa.PrivateKey), []byte(tt.header), claims)))
			wantRefusal(t, err, CodeInvalidProof, tt.desc)
		})
	}
}

// signES256Raw signs header and payload bytes exactly as given.
func signES256Raw(t *testing.T, k *ecdsa.PrivateKey, header, payload []byte) string {
	t.Helper()
	input := base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(payload)
	sum := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, k, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func TestVerifyReplay(t *testing.T) {
	t.Parallel()
	clk := newClock(testNow)
	v := newTestVerifier(t, clk, nil)
	es := key("ES256")
	claims := claimsAt(testNow, nil)
	p := es.proof(t, claims)
	if _, err := v.Verify(t.Context(), tokenRequest(p)); err != nil {
		t.Fatal(err)
	}
	_, err := v.Verify(t.Context(), tokenRequest(p))
	de := wantRefusal(t, err, CodeInvalidProof, "used before")
	if !errors.Is(de, store.ErrConflict) {
		t.Error("replay refusal does not wrap store.ErrConflict")
	}
	// The same jti under another key is another proof (the key is part of
	// the replay value); and a new signature over the same claims by the
	// same key is still a replay.
	if _, err := v.Verify(t.Context(), tokenRequest(key("EdDSA").proof(t, claims))); err != nil {
		t.Errorf("same jti, other key: %v", err)
	}
	_, err = v.Verify(t.Context(), tokenRequest(es.proof(t, claims)))
	wantRefusal(t, err, CodeInvalidProof, "used before")
	// Refused proofs do not burn their jti.
	bad := claimsAt(testNow, map[string]any{"htm": "GET"})
	if _, err := v.Verify(t.Context(), tokenRequest(es.proof(t, bad))); err == nil {
		t.Fatal("GET proof accepted for POST")
	}
	bad["htm"] = testMethod
	if _, err := v.Verify(t.Context(), tokenRequest(es.proof(t, bad))); err != nil {
		t.Errorf("jti of a refused proof was burnt: %v", err)
	}
}

// TestVerifyReplayConcurrent sends one proof from many goroutines: exactly
// one is accepted.
func TestVerifyReplayConcurrent(t *testing.T) {
	t.Parallel()
	v := newTestVerifier(t, newClock(testNow), nil)
	p := key("ES256").proof(t, claimsAt(testNow, nil))
	var ok atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if _, err := v.Verify(t.Context(), tokenRequest(p)); err == nil {
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	if n := ok.Load(); n != 1 {
		t.Fatalf("%d of 16 uses accepted, want 1", n)
	}
}

// TestVerifyStorageError: a failing replay store is the server's error,
// never a refusal and never an acceptance.
func TestVerifyStorageError(t *testing.T) {
	t.Parallel()
	down := errors.New("database is down")
	v := newTestVerifier(t, newClock(testNow), func(o *Options) { o.Replay = failingReplay{down} })
	p, err := v.Verify(t.Context(), tokenRequest(key("ES256").proof(t, claimsAt(testNow, nil))))
	if p != nil || err == nil {
		t.Fatalf("Verify = %v, %v; want an error", p, err)
	}
	var de *Error
	if errors.As(err, &de) {
		t.Fatalf("storage failure reported as refusal %q", de.Code)
	}
	if !errors.Is(err, down) {
		t.Fatalf("err = %v, does not wrap the storage error", err)
	}
}

// TestVerifyRequestErrors: a bad Request is the caller's error.
func TestVerifyRequestErrors(t *testing.T) {
	t.Parallel()
	v := newTestVerifier(t, newClock(testNow), nil)
	p := key("ES256").proof(t, claimsAt(testNow, nil))
	for _, req := range []Request{
		{Headers: []string{p}, URL: testURL},
		{Headers: []string{p}, Method: testMethod, URL: "/token"},
		{Headers: []string{p}, Method: testMethod},
	} {
		_, err := v.Verify(t.Context(), req)
		var de *Error
		if err == nil || errors.As(err, &de) {
			t.Errorf("Verify(%+v) = %v, want a non-refusal error", req, err)
		}
	}
}

func TestVerifyNonce(t *testing.T) {
	t.Parallel()
	es := key("ES256")
	require := func(o *Options) { o.RequireNonce = true }
	withNonce := func(n string) map[string]any { return claimsAt(testNow, map[string]any{"nonce": n}) }

	t.Run("issued by another replica", func(t *testing.T) {
		t.Parallel()
		clk := newClock(testNow)
		replicaA := newTestVerifier(t, clk, require)
		replicaB := newTestVerifier(t, clk, require)
		n, err := replicaB.NewNonce()
		if err != nil {
			t.Fatal(err)
		}
		p, err := replicaA.Verify(t.Context(), tokenRequest(es.proof(t, withNonce(n))))
		if err != nil {
			t.Fatal(err)
		}
		if p.Nonce != n {
			t.Errorf("Nonce = %q, want %q", p.Nonce, n)
		}
	})

	t.Run("missing", func(t *testing.T) {
		t.Parallel()
		v := newTestVerifier(t, newClock(testNow), require)
		_, err := v.Verify(t.Context(), tokenRequest(es.proof(t, claimsAt(testNow, nil))))
		wantRefusal(t, err, CodeUseNonce, "required")
	})

	t.Run("forged", func(t *testing.T) {
		t.Parallel()
		clk := newClock(testNow)
		v := newTestVerifier(t, clk, require)
		other := newTestVerifier(t, clk, func(o *Options) { o.NonceKey = []byte(strings.Repeat("x", 32)) })
		forged, err := other.NewNonce()
		if err != nil {
			t.Fatal(err)
		}
		good, err := v.NewNonce()
		if err != nil {
			t.Fatal(err)
		}
		flipped := []byte(good)
		flipped[len(flipped)-2] ^= 1
		for _, n := range []string{forged, string(flipped), "nonce", good + "A", strings.Repeat("A", 500)} {
			_, err := v.Verify(t.Context(), tokenRequest(es.proof(t, withNonce(n))))
			wantRefusal(t, err, CodeUseNonce, "invalid or has expired")
		}
	})

	t.Run("window", func(t *testing.T) {
		t.Parallel()
		clk := newClock(testNow)
		v := newTestVerifier(t, clk, require)
		n, err := v.NewNonce()
		if err != nil {
			t.Fatal(err)
		}
		verifyAt := func(at time.Time) error {
			clk.Set(at)
			_, err := v.Verify(t.Context(), tokenRequest(es.proof(t, claimsAt(at, map[string]any{"nonce": n}))))
			return err
		}
		if err := verifyAt(testNow.Add(DefaultNonceLifetime)); err != nil {
			t.Errorf("at the end of the lifetime: %v", err)
		}
		wantRefusal(t, verifyAt(testNow.Add(DefaultNonceLifetime+time.Second)), CodeUseNonce, "expired")
		if err := verifyAt(testNow.Add(-DefaultLeeway)); err != nil {
			t.Errorf("issued Leeway ahead: %v", err)
		}
		wantRefusal(t, verifyAt(testNow.Add(-DefaultLeeway-time.Second)), CodeUseNonce, "expired")
	})

	t.Run("checked when present though not required", func(t *testing.T) {
		t.Parallel()
		v := newTestVerifier(t, newClock(testNow), nil)
		_, err := v.Verify(t.Context(), tokenRequest(es.proof(t, withNonce("made-up"))))
		wantRefusal(t, err, CodeUseNonce, "invalid")
	})

	t.Run("ignored without a nonce key", func(t *testing.T) {
		t.Parallel()
		v := newTestVerifier(t, newClock(testNow), func(o *Options) { o.NonceKey = nil })
		p, err := v.Verify(t.Context(), tokenRequest(es.proof(t, withNonce("made-up"))))
		if err != nil || p.Nonce != "" {
			t.Fatalf("Verify = %+v, %v", p, err)
		}
		if _, err := v.NewNonce(); !errors.Is(err, ErrNoNonceKey) {
			t.Errorf("NewNonce without key: %v", err)
		}
	})

	t.Run("other checks come first", func(t *testing.T) {
		t.Parallel()
		v := newTestVerifier(t, newClock(testNow), require)
		_, err := v.Verify(t.Context(), tokenRequest(es.proof(t, claimsAt(testNow, map[string]any{"htm": "GET"}))))
		wantRefusal(t, err, CodeInvalidProof, "htm")
	})
}

func TestNewVerifierOptions(t *testing.T) {
	t.Parallel()
	replay := newMemReplay(time.Now)
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no replay", Options{}, "Replay is required"},
		{"short nonce key", Options{Replay: replay, NonceKey: make([]byte, 31)}, "NonceKey"},
		{"nonce without key", Options{Replay: replay, RequireNonce: true}, "RequireNonce"},
		{"HS256", Options{Replay: replay, Algorithms: []string{"ES256", "HS256"}}, `"HS256"`},
		{"none", Options{Replay: replay, Algorithms: []string{"none"}}, `"none"`},
		{"negative", Options{Replay: replay, MaxAge: -time.Second}, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewVerifier(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewVerifier = %v, want an error naming %s", err, tt.want)
			}
		})
	}
	t.Run("all problems at once", func(t *testing.T) {
		_, err := NewVerifier(Options{NonceKey: []byte("k"), Algorithms: []string{"HS256"}})
		for _, want := range []string{"Replay", "NonceKey", "HS256"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("error %v does not name %s", err, want)
			}
		}
	})
	t.Run("defaults", func(t *testing.T) {
		key := make([]byte, 32)
		v, err := NewVerifier(Options{Replay: replay, NonceKey: key})
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(v.Algorithms(), " "); got != "ES256 ES384 PS256 RS256 EdDSA" {
			t.Errorf("Algorithms = %s", got)
		}
		if v.maxAge != DefaultMaxAge || v.leeway != DefaultLeeway || v.nonceLifetime != DefaultNonceLifetime {
			t.Errorf("durations = %v %v %v", v.maxAge, v.leeway, v.nonceLifetime)
		}
		key[0] = 1
		if v.nonceKey[0] != 0 {
			t.Error("NonceKey not copied")
		}
	})
}

// TestThumbprintVectors checks Thumbprint and ATH against the examples of
// RFC 7638 §3.1, RFC 8037 Appendix A.3 and RFC 9449.
func TestThumbprintVectors(t *testing.T) {
	t.Parallel()
	tests := []struct{ jwk, want string }{
		{`{"kty":"RSA","e":"AQAB","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"}`,
			"NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"},
		{`{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}`,
			"kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"},
		{`{"kty":"EC","crv":"P-256","x":"l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs","y":"9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA"}`,
			"0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"},
	}
	for _, tt := range tests {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON([]byte(tt.jwk)); err != nil {
			t.Fatal(err)
		}
		if got, err := Thumbprint(k); err != nil || got != tt.want {
			t.Errorf("Thumbprint(%.40s…) = %q, %v; want %q", tt.jwk, got, err, tt.want)
		}
	}
	if _, err := Thumbprint(jose.JSONWebKey{Key: []byte("secret")}); err == nil {
		t.Error("Thumbprint of a symmetric key succeeded")
	}
	if got, want := ATH("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"), "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"; got != want {
		t.Errorf("ATH = %q, want %q", got, want)
	}
	es := key("ES256")
	priv, err := Thumbprint(jose.JSONWebKey{Key: es.priv})
	if err != nil || priv != es.jkt(t) {
		t.Errorf("Thumbprint of the private key = %q, %v; want the public key's", priv, err)
	}
}

func TestWWWAuthenticate(t *testing.T) {
	t.Parallel()
	v := newTestVerifier(t, newClock(testNow), nil)
	tests := []struct {
		name  string
		err   error
		realm string
		want  string
	}{
		{"refusal", invalidProof("iat is in the future", nil), "trustbroker",
			`DPoP realm="trustbroker", error="invalid_dpop_proof", error_description="iat is in the future", algs="ES256 ES384 PS256 RS256 EdDSA"`},
		{"nonce", useNonce("a DPoP nonce is required"), "",
			`DPoP error="use_dpop_nonce", error_description="a DPoP nonce is required", algs="ES256 ES384 PS256 RS256 EdDSA"`},
		{"wrapped", errors.Join(errors.New("ctx"), &Error{Code: CodeInvalidToken, Description: `a "quoted"` + "\n\\ text"}), `r"ealm`,
			`DPoP realm="r?ealm", error="invalid_token", error_description="a ?quoted??? text", algs="ES256 ES384 PS256 RS256 EdDSA"`},
		{"internal", errors.New("db down"), "", `DPoP algs="ES256 ES384 PS256 RS256 EdDSA"`},
		{"none", nil, "", `DPoP algs="ES256 ES384 PS256 RS256 EdDSA"`},
	}
	for _, tt := range tests {
		if got := v.WWWAuthenticate(tt.err, tt.realm); got != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, got, tt.want)
		}
	}
}

// TestDescriptionsBounded: a hostile alg or htm shows up in the public
// description only as a short, sanitised excerpt.
func TestDescriptionsBounded(t *testing.T) {
	t.Parallel()
	es := key("ES256")
	hostile := "\"\\\r\n<script>" + strings.Repeat("x", 500) + "ünï"
	for _, req := range []Request{
		tokenRequest(es.proof(t, claimsAt(testNow, nil), withHeader("alg", hostile))),
		tokenRequest(es.proof(t, claimsAt(testNow, map[string]any{"htm": hostile}))),
		tokenRequest(es.proof(t, claimsAt(testNow, map[string]any{"htu": hostile}))),
	} {
		v := newTestVerifier(t, newClock(testNow), nil)
		_, err := v.Verify(t.Context(), req)
		de := wantRefusal(t, err, CodeInvalidProof, "")
		if len(de.Description) > 100 || sanitize(de.Description) != de.Description || strings.Contains(de.Description, "xxxxxxxxxxxxxxxxxxxxxxxxx") {
			t.Errorf("description %q is not bounded and sanitised", de.Description)
		}
	}
}

func TestErrorString(t *testing.T) {
	t.Parallel()
	e := invalidProof("bad", errors.New("cause"))
	if got := e.Error(); got != "dpop: invalid_dpop_proof: bad: cause" {
		t.Errorf("Error() = %q", got)
	}
	if errors.Unwrap(e) == nil {
		t.Error("Unwrap lost the cause")
	}
}

func BenchmarkVerifyES256(b *testing.B) {
	v, err := NewVerifier(Options{Now: func() time.Time { return testNow }, Replay: acceptAllReplay{}})
	if err != nil {
		b.Fatal(err)
	}
	p := key("ES256").proof(b, claimsAt(testNow, nil))
	req := tokenRequest(p)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// randomJTI is a jti as a real client makes it.
func randomJTI(t testing.TB) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
