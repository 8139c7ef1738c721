package keys

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/trustbroker/trustbroker/broker/store"
)

func jwksKIDs(t testing.TB, jwks []byte) []string {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(jwks, &set); err != nil {
		t.Fatalf("JWKS does not parse: %v", err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.KeyID)
	}
	return kids
}

type testClaims struct {
	Iss   string `json:"iss"`
	Sub   string `json:"sub"`
	Aud   string `json:"aud"`
	Nonce string `json:"nonce,omitempty"`
	Iat   int64  `json:"iat"`
	Exp   int64  `json:"exp"`
	Name  string `json:"name,omitempty"`
}

var claims = testClaims{Iss: "https://broker.example", Sub: "pairwise-subject", Aud: "demo-rp", Iat: 1772355600, Exp: 1772359200}

// verifyWithJWKS checks token against the JWK set the way a relying party
// does: find the key by the header's kid and verify.
func verifyWithJWKS(t *testing.T, jwks []byte, token string) error {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(jwks, &set); err != nil {
		t.Fatal(err)
	}
	jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256, jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	keys := set.Key(jws.Signatures[0].Header.KeyID)
	if len(keys) != 1 {
		return errors.New("kid not in JWKS")
	}
	_, err = jws.Verify(keys[0])
	return err
}

// verifyWithPublicKey verifies token with the key Manager.PublicKey gives.
func verifyWithPublicKey(t *testing.T, m *Manager, token string) error {
	t.Helper()
	jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256, jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	h := jws.Signatures[0].Header
	pub, alg, ok := m.PublicKey(h.KeyID)
	if !ok {
		return errors.New("kid unknown")
	}
	if alg != h.Algorithm {
		t.Errorf("alg %s, header says %s", alg, h.Algorithm)
	}
	_, err = jws.Verify(pub)
	return err
}

func TestOldTokensVerifyAfterRotation(t *testing.T) {
	for _, alg := range DefaultAlgs() {
		t.Run(alg, func(t *testing.T) {
			f := newFixture(t)
			f.ready(t, alg)
			token, err := f.m.SignJWT(alg, claims)
			if err != nil {
				t.Fatal(err)
			}
			f.rotate(t, alg)
			f.rotate(t, alg) // two rotations: the signing key is retired, not merely the previous one
			if err := verifyWithPublicKey(t, f.m, token); err != nil {
				t.Errorf("PublicKey after rotation: %v", err)
			}
			if err := verifyWithJWKS(t, f.m.JWKS(), token); err != nil {
				t.Errorf("JWKS after rotation: %v", err)
			}

			f.clock.Advance(24 * time.Hour)
			if err := verifyWithPublicKey(t, f.m, token); err == nil {
				t.Error("PublicKey still verifies after VerifyUntil")
			}
			if err := f.m.Reload(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := verifyWithJWKS(t, f.m.JWKS(), token); err == nil {
				t.Error("retired key still in the JWKS after VerifyUntil")
			}
		})
	}
}

func TestSignJWT(t *testing.T) {
	f := newFixture(t)
	f.ready(t)
	for alg, sigLen := range map[string]int{ES256: 64, RS256: 256} {
		token, err := f.m.SignJWT(alg, claims)
		if err != nil {
			t.Fatal(err)
		}
		jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
		if err != nil {
			t.Fatal(err)
		}
		s, _ := f.m.Signer(alg)
		h := jws.Signatures[0].Header
		if h.KeyID != s.KID || h.Algorithm != alg || h.ExtraHeaders["typ"] != "JWT" {
			t.Errorf("%s header %+v", alg, h)
		}
		if n := len(jws.Signatures[0].Signature); n != sigLen {
			t.Errorf("%s signature has %d bytes, want %d (R||S for ES256)", alg, n, sigLen)
		}
		var got testClaims
		payload, err := jws.Verify(s.Key.Public())
		if err != nil || json.Unmarshal(payload, &got) != nil || got != claims {
			t.Errorf("%s: verify %v, claims %+v", alg, err, got)
		}
	}
	if _, err := f.m.SignJWT(ES256, func() {}); err == nil {
		t.Error("unmarshalable claims signed")
	}
}

func TestJOSESigner(t *testing.T) {
	f := newFixture(t)
	f.ready(t, ES256)
	sig, err := f.m.JOSESigner(ES256, (&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	jws, err := sig.Sign([]byte(`{"sub":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	token, _ := jws.CompactSerialize()
	if err := verifyWithJWKS(t, f.m.JWKS(), token); err != nil {
		t.Fatal(err)
	}
	parsed, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	if typ := parsed.Signatures[0].Header.ExtraHeaders["typ"]; typ != "at+jwt" {
		t.Errorf("typ %v", typ)
	}
	if _, err := f.m.JOSESigner(RS256, nil); !errors.Is(err, ErrNoActiveKey) {
		t.Errorf("RS256 without keys: %v", err)
	}
}

func TestCacheBeforeReload(t *testing.T) {
	f := newFixture(t)
	if _, err := f.m.Signer(ES256); !errors.Is(err, ErrNoActiveKey) {
		t.Errorf("Signer: %v", err)
	}
	if _, err := f.m.SignJWT(ES256, claims); !errors.Is(err, ErrNoActiveKey) {
		t.Errorf("SignJWT: %v", err)
	}
	if got := string(f.m.JWKS()); got != `{"keys":[]}` {
		t.Errorf("JWKS %s", got)
	}
	if f.m.JWKSETag() == "" || len(f.m.Keys()) != 0 {
		t.Error("empty cache has no ETag or lists keys")
	}
}

func TestJWKS(t *testing.T) {
	f := newFixture(t)
	f.ready(t)
	f.rotate(t, ES256)
	raw := f.m.JWKS()

	var doc struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Keys) != 5 { // ES256: active, next, retired; RS256: active, next
		t.Fatalf("%d keys, want 5", len(doc.Keys))
	}
	for _, k := range doc.Keys {
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
			if _, ok := k[private]; ok {
				t.Errorf("key %v has private member %q", k["kid"], private)
			}
		}
		if k["use"] != "sig" || (k["alg"] != ES256 && k["alg"] != RS256) || k["kid"] == "" {
			t.Errorf("key members %v", k)
		}
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		t.Fatal(err)
	}
	for _, k := range set.Keys {
		if !k.IsPublic() || !k.Valid() {
			t.Errorf("key %s not a valid public key", k.KeyID)
		}
	}
	var states []string
	for _, info := range f.m.Keys() {
		states = append(states, info.Alg+" "+info.State)
	}
	want := []string{"ES256 active", "RS256 active", "ES256 next", "RS256 next", "ES256 retired"}
	if !slices.Equal(states, want) {
		t.Errorf("order %v, want %v", states, want)
	}
	if got, want := jwksKIDs(t, raw), kidsOf(f.m.Keys()); !slices.Equal(got, want) {
		t.Errorf("JWKS order %v differs from Keys() %v", got, want)
	}

	// Another process reading the same store serves the same bytes.
	other := f.manager(t, testMasterKey(t))
	if err := other.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if string(other.JWKS()) != string(raw) || other.JWKSETag() != f.m.JWKSETag() {
		t.Error("JWKS not deterministic across managers")
	}
}

func kidsOf(infos []KeyInfo) []string {
	var kids []string
	for _, i := range infos {
		kids = append(kids, i.KID)
	}
	return kids
}

func TestETagChangesWithTheSet(t *testing.T) {
	f := newFixture(t)
	f.ready(t, ES256)
	before := f.m.JWKSETag()
	if err := f.m.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if f.m.JWKSETag() != before {
		t.Error("ETag changed without a change of keys")
	}
	f.rotate(t, ES256)
	if f.m.JWKSETag() == before {
		t.Error("ETag unchanged after rotation")
	}
	if !strings.HasPrefix(before, `"`) || !strings.HasSuffix(before, `"`) {
		t.Errorf("ETag %s is not quoted", before)
	}
}

func TestKeysInfo(t *testing.T) {
	f := newFixture(t)
	f.ready(t, ES256)
	f.rotate(t, ES256)
	f.clock.Advance(25 * time.Hour)
	if err := f.m.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	infos := f.m.Keys()
	if len(infos) != 3 {
		t.Fatalf("%d keys", len(infos))
	}
	retired := infos[2]
	if retired.State != store.KeyRetired || retired.Published || retired.VerifyUntil.IsZero() || retired.ActivatedAt.IsZero() {
		t.Errorf("retired info %+v", retired)
	}
	if next := infos[1]; next.State != store.KeyNext || !next.Published || !next.ActivatedAt.IsZero() {
		t.Errorf("next info %+v", next)
	}
	infos[0].KID = "changed"
	if f.m.Keys()[0].KID == "changed" {
		t.Error("Keys returns the cache's own slice")
	}
}

func TestReloadParsesEachKeyOnce(t *testing.T) {
	f := newFixture(t)
	f.ready(t, ES256)
	before, _ := f.m.Signer(ES256)
	if err := f.m.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	after, _ := f.m.Signer(ES256)
	if before.Key != after.Key {
		t.Error("unchanged key parsed again on Reload")
	}
}

// reloadFails checks that Reload fails with wantErr mentioning kid, and
// that the cache still serves what it served before.
func reloadFails(t *testing.T, m *Manager, kid string, wantErr error) {
	t.Helper()
	jwks, etag := string(m.JWKS()), m.JWKSETag()
	signer, _ := m.Signer(ES256)
	err := m.Reload(context.Background())
	if err == nil || !errors.Is(err, wantErr) || !strings.Contains(err.Error(), kid) {
		t.Fatalf("Reload: %v, want %v naming %s", err, wantErr, kid)
	}
	if !strings.HasPrefix(err.Error(), "keys: ") {
		t.Errorf("error %q lacks the keys: prefix", err)
	}
	after, _ := m.Signer(ES256)
	if string(m.JWKS()) != jwks || m.JWKSETag() != etag || after.KID != signer.KID {
		t.Error("failed Reload replaced the cache")
	}
}

func TestReloadWrongMasterKey(t *testing.T) {
	f := newFixture(t)
	f.ready(t, ES256)
	// Another process with a different master key rotates: its new next
	// key is encrypted under a key this manager does not have.
	other := f.manager(t, otherMasterKey(t))
	if err := other.Rotate(context.Background(), ES256); err != nil {
		t.Fatal(err)
	}
	newNext := f.st.idsIn(ES256, store.KeyNext)[0]
	reloadFails(t, f.m, newNext, ErrMasterKeyMismatch)

	err := f.manager(t, otherMasterKey(t)).Reload(context.Background())
	if !errors.Is(err, ErrMasterKeyMismatch) || !strings.Contains(err.Error(), "master key does not match") {
		t.Errorf("fresh manager with the wrong master key: %v", err)
	}
}

func TestReloadTamperedCiphertext(t *testing.T) {
	f := newFixture(t)
	f.ready(t, ES256)
	kid := f.st.idsIn(ES256, store.KeyActive)[0]
	f.st.mutate(t, kid, func(k *store.SigningKey) { k.PrivateEncrypted[len(k.PrivateEncrypted)/2] ^= 1 })
	reloadFails(t, f.m, kid, ErrMasterKeyMismatch)
}

func TestReloadCiphertextMovedToAnotherKid(t *testing.T) {
	f := newFixture(t)
	f.ready(t, ES256)
	active, next := f.st.rows[f.st.idsIn(ES256, store.KeyActive)[0]], f.st.idsIn(ES256, store.KeyNext)[0]
	f.st.mutate(t, next, func(k *store.SigningKey) { k.PrivateEncrypted = active.PrivateEncrypted })
	reloadFails(t, f.m, next, ErrMasterKeyMismatch)

	// Moving the public JWK along does not help: its kid names the row
	// it came from.
	f.st.mutate(t, next, func(k *store.SigningKey) { k.PublicJWK = active.PublicJWK })
	err := f.m.Reload(context.Background())
	if err == nil || !strings.Contains(err.Error(), next) || !strings.Contains(err.Error(), "kid") {
		t.Fatalf("Reload: %v", err)
	}
}

func TestReloadRejectsBadRows(t *testing.T) {
	tests := []struct {
		name    string
		change  func(k *store.SigningKey)
		wantErr string
	}{
		{"private parts in the public JWK", func(k *store.SigningKey) {
			k.PublicJWK = json.RawMessage(strings.Replace(string(k.PublicJWK), "{", `{"d":"AAAA",`, 1))
		}, ""},
		{"alg column changed", func(k *store.SigningKey) { k.Alg = RS256 }, "alg"},
		{"use changed", func(k *store.SigningKey) {
			k.PublicJWK = json.RawMessage(strings.Replace(string(k.PublicJWK), `"use":"sig"`, `"use":"enc"`, 1))
		}, "use"},
		{"unknown scheme version", func(k *store.SigningKey) { k.PrivateEncrypted[0] = 9 }, "version 9"},
		{"truncated ciphertext", func(k *store.SigningKey) { k.PrivateEncrypted = k.PrivateEncrypted[:20] }, "truncated"},
		{"unknown alg", func(k *store.SigningKey) { k.Alg = "EdDSA" }, "unsupported algorithm"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.ready(t, ES256)
			kid := f.st.idsIn(ES256, store.KeyNext)[0]
			f.st.mutate(t, kid, tt.change)
			err := f.m.Reload(context.Background())
			if err == nil || !strings.Contains(err.Error(), kid) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Reload: %v, want an error naming %s and %q", err, kid, tt.wantErr)
			}
		})
	}
}

func TestConcurrentSignersDuringReload(t *testing.T) {
	f := newFixture(t)
	f.ready(t, ES256)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	var signed atomic.Int64
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				if err := signAndVerify(f.m); err != nil {
					t.Error(err)
					return
				}
				signed.Add(1)
			}
		})
	}
	wg.Go(func() { // a second reloader, as Watch would be
		for ctx.Err() == nil {
			if err := f.m.Reload(ctx); err != nil && ctx.Err() == nil {
				t.Error(err)
				return
			}
		}
	})
	for range 5 {
		mark := signed.Load()
		waitFor(t, func() bool { return signed.Load() >= mark+10 })
		f.rotate(t, ES256)
	}
	cancel()
	wg.Wait()
}

// signAndVerify signs with the cached active key and checks the result
// against the cache.
func signAndVerify(m *Manager) error {
	s, err := m.Signer(ES256)
	if err != nil {
		return err
	}
	if _, _, ok := m.PublicKey(s.KID); !ok {
		return errors.New("active key not verifiable")
	}
	token, err := m.SignJWT(ES256, claims)
	if err != nil {
		return err
	}
	jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return err
	}
	pub, _, ok := m.PublicKey(jws.Signatures[0].Header.KeyID)
	if !ok {
		return errors.New("signing key not verifiable")
	}
	if _, err := jws.Verify(pub); err != nil {
		return err
	}
	if len(m.JWKS()) == 0 {
		return errors.New("empty JWKS")
	}
	return nil
}

func TestWatchNoticesRotationElsewhere(t *testing.T) {
	f := newFixture(t)
	f.ready(t, ES256)
	before, _ := f.m.Signer(ES256)

	errs := make(chan error, 10)
	server := f.manager(t, testMasterKey(t), func(o *Options) { o.OnError = func(err error) { errs <- err } })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { server.Watch(ctx, 5*time.Millisecond); close(done) }()

	waitFor(t, func() bool { s, err := server.Signer(ES256); return err == nil && s.KID == before.KID })
	if err := f.m.Rotate(context.Background(), ES256); err != nil { // the "keys rotate" command
		t.Fatal(err)
	}
	waitFor(t, func() bool { s, _ := server.Signer(ES256); return s.KID != before.KID })

	f.st.mutate(t, f.st.idsIn(ES256, store.KeyNext)[0], func(k *store.SigningKey) { k.PrivateEncrypted[5] ^= 1 })
	select {
	case err := <-errs:
		if !errors.Is(err, ErrMasterKeyMismatch) {
			t.Errorf("OnError got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("OnError not called")
	}
	cancel()
	<-done
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met in time")
}

func TestUnknownStateIsNeitherPublishedNorPruned(t *testing.T) {
	f := newFixture(t)
	ids := seed(t, f, store.KeyActive, store.KeyNext, "disabled")
	if err := f.m.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(jwksKIDs(t, f.m.JWKS()), ids[2]) {
		t.Error("key in unknown state published")
	}
	if _, _, ok := f.m.PublicKey(ids[2]); ok {
		t.Error("key in unknown state verifies")
	}
	if infos := f.m.Keys(); len(infos) != 3 || infos[2].Published {
		t.Errorf("Keys() %+v", infos)
	}
	if n, err := f.m.Prune(context.Background()); n != 0 || err != nil {
		t.Errorf("Prune: %d, %v", n, err)
	}
}
