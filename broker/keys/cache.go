package keys

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/trustbroker/trustbroker/broker/store"
)

// snapshot is an immutable view of the keys as of one Reload. Readers load
// it through an atomic pointer and never lock.
type snapshot struct {
	byKID  map[string]*entry // published keys: next, active, retired until VerifyUntil
	active map[string]*entry // alg → its newest active key
	infos  []KeyInfo         // every stored key, in JWKS order
	jwks   []byte
	etag   string
}

// entry is one published key.
type entry struct {
	info KeyInfo
	material
}

// material is what Reload derives from a stored row; the next Reload
// reuses it while the row's key bytes are unchanged.
type material struct {
	rawJWK, sealed []byte
	jwk            jose.JSONWebKey // public
	key            crypto.Signer   // nil for retired keys
	joseSigner     jose.Signer     // active keys only, for SignJWT
}

func emptySnapshot() *snapshot {
	s, _ := newSnapshot(nil)
	return s
}

// newSnapshot returns a snapshot with empty maps and the JWKS of set.
func newSnapshot(set []jose.JSONWebKey) (*snapshot, error) {
	if set == nil {
		set = []jose.JSONWebKey{}
	}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: set})
	if err != nil {
		return nil, fmt.Errorf("marshal JWKS: %w", err)
	}
	sum := sha256.Sum256(jwks)
	return &snapshot{
		byKID:  map[string]*entry{},
		active: map[string]*entry{},
		jwks:   jwks,
		etag:   `"` + base64.RawURLEncoding.EncodeToString(sum[:16]) + `"`,
	}, nil
}

// Reload reads every key from the store and replaces the cache that
// Signer, PublicKey, JWKS and Keys serve. Private keys of next and active
// keys are decrypted and parsed once, here (retired keys need only their
// public half); rows unchanged since the previous Reload are not parsed
// again. The cache is replaced only when every key parsed: on error the
// previous one stays, and the error names the failing kid. A private key
// that does not decrypt yields ErrMasterKeyMismatch.
func (m *Manager) Reload(ctx context.Context) error {
	m.reloadMu.Lock()
	defer m.reloadMu.Unlock()
	rows, err := m.st.List(ctx)
	if err != nil {
		return fmt.Errorf("keys: reload: %w", err)
	}
	snap, err := m.build(rows, m.snap.Load())
	if err != nil {
		return fmt.Errorf("keys: reload: %w", err)
	}
	m.snap.Store(snap)
	return nil
}

func (m *Manager) build(rows []store.SigningKey, prev *snapshot) (*snapshot, error) {
	now := m.now()
	slices.SortFunc(rows, compareRows)
	var (
		infos   []KeyInfo
		entries []*entry
		set     []jose.JSONWebKey
	)
	for i := range rows {
		k := &rows[i]
		info := infoOf(k, now)
		infos = append(infos, info)
		if !info.Published {
			continue
		}
		mat, err := m.materialFor(k, prev.byKID[k.ID])
		if err != nil {
			return nil, fmt.Errorf("key %s (%s, %s): %w", k.ID, k.Alg, k.State, err)
		}
		entries = append(entries, &entry{info: info, material: mat})
		set = append(set, mat.jwk)
	}
	s, err := newSnapshot(set)
	if err != nil {
		return nil, err
	}
	s.infos = infos
	for _, e := range entries {
		s.byKID[e.info.KID] = e
		if e.info.State == store.KeyActive && s.active[e.info.Alg] == nil {
			s.active[e.info.Alg] = e
		}
	}
	return s, nil
}

// compareRows orders keys as the JWKS lists them: active, next, retired;
// then by alg; then the most recent state change first; then by kid.
func compareRows(a, b store.SigningKey) int {
	if c := stateRank(a.State) - stateRank(b.State); c != 0 {
		return c
	}
	if c := strings.Compare(a.Alg, b.Alg); c != 0 {
		return c
	}
	return cmpThen(changedAt(&b).Compare(changedAt(&a)), a.ID, b.ID)
}

func stateRank(state string) int {
	switch state {
	case store.KeyActive:
		return 0
	case store.KeyNext:
		return 1
	case store.KeyRetired:
		return 2
	}
	return 3
}

func changedAt(k *store.SigningKey) time.Time {
	switch k.State {
	case store.KeyActive:
		return k.ActivatedAt
	case store.KeyRetired:
		return k.RetiredAt
	}
	return k.CreatedAt
}

func infoOf(k *store.SigningKey, now time.Time) KeyInfo {
	return KeyInfo{
		KID: k.ID, Alg: k.Alg, State: k.State,
		CreatedAt: k.CreatedAt, ActivatedAt: k.ActivatedAt, RetiredAt: k.RetiredAt, VerifyUntil: k.VerifyUntil,
		Published: published(k, now),
	}
}

// materialFor parses row k, or reuses prev when the row's key bytes are
// those prev was parsed from.
func (m *Manager) materialFor(k *store.SigningKey, prev *entry) (material, error) {
	needKey := k.State != store.KeyRetired
	if prev != nil && prev.info.Alg == k.Alg && bytes.Equal(prev.rawJWK, k.PublicJWK) &&
		bytes.Equal(prev.sealed, k.PrivateEncrypted) && (prev.key != nil || !needKey) {
		return m.withJOSE(k, prev.material)
	}
	mat := material{rawJWK: k.PublicJWK, sealed: k.PrivateEncrypted}
	var err error
	if mat.jwk, err = parsePublicJWK(k.PublicJWK, k.ID, k.Alg); err != nil {
		return material{}, err
	}
	if needKey {
		if mat.key, err = m.decrypt(k, mat.jwk.Key); err != nil {
			return material{}, err
		}
	}
	return m.withJOSE(k, mat)
}

// withJOSE adds the go-jose signer an active key needs for SignJWT.
func (m *Manager) withJOSE(k *store.SigningKey, mat material) (material, error) {
	if k.State != store.KeyActive || mat.joseSigner != nil {
		return mat, nil
	}
	var err error
	mat.joseSigner, err = newJOSESigner(Signer{KID: k.ID, Alg: k.Alg, Key: mat.key}, (&jose.SignerOptions{}).WithType("JWT"))
	return mat, err
}

func (m *Manager) decrypt(k *store.SigningKey, pub crypto.PublicKey) (crypto.Signer, error) {
	der, err := m.mk.open(k.ID, k.PrivateEncrypted)
	if err != nil {
		return nil, err
	}
	defer clear(der)
	return parsePrivate(der, pub)
}

// Signer returns the active key of alg from the cache, without store
// access or parsing. It fails with ErrNoActiveKey before the first Reload
// or when alg has no active key.
func (m *Manager) Signer(alg string) (*Signer, error) {
	e, err := m.active(alg)
	if err != nil {
		return nil, err
	}
	return &Signer{KID: e.info.KID, Alg: e.info.Alg, Key: e.key}, nil
}

// NextSigner returns the next key of alg (published, not yet signing),
// for announcing it ahead of its use where a public key alone does not
// do (SAML metadata carries a certificate the key signs itself). ok is
// false when alg has no next key.
func (m *Manager) NextSigner(alg string) (*Signer, bool) {
	snap := m.snap.Load()
	for _, info := range snap.infos {
		if e := snap.byKID[info.KID]; e != nil && info.Alg == alg && info.State == store.KeyNext && e.key != nil {
			return &Signer{KID: info.KID, Alg: info.Alg, Key: e.key}, true
		}
	}
	return nil, false
}

func (m *Manager) active(alg string) (*entry, error) {
	if e := m.snap.Load().active[alg]; e != nil {
		return e, nil
	}
	return nil, fmt.Errorf("%w for %q", ErrNoActiveKey, alg)
}

// PublicKey returns the public key and alg of kid for verifying a
// signature: next and active keys, and retired keys until their
// VerifyUntil. ok is false for any other kid.
func (m *Manager) PublicKey(kid string) (pub crypto.PublicKey, alg string, ok bool) {
	e := m.snap.Load().byKID[kid]
	if e == nil || (e.info.State == store.KeyRetired && !m.now().Before(e.info.VerifyUntil)) {
		return nil, "", false
	}
	return e.jwk.Key, e.info.Alg, true
}

// JWKS returns the JSON Web Key Set (RFC 7517 §5) of the published public
// keys, active keys first, as of the last Reload. The bytes are shared:
// callers must not modify them.
func (m *Manager) JWKS() []byte {
	return m.snap.Load().jwks
}

// JWKSETag returns a strong HTTP entity tag (RFC 9110 §8.8.3) for JWKS. It
// is derived from the content, so it changes when the key set changes and
// is the same on every replica serving the same set.
func (m *Manager) JWKSETag() string {
	return m.snap.Load().etag
}

// Keys lists every stored key as of the last Reload, in JWKS order,
// without secret material.
func (m *Manager) Keys() []KeyInfo {
	return slices.Clone(m.snap.Load().infos)
}

// Watch calls Reload every interval (a minute when every <= 0) until ctx
// is done, so that a server notices rotations made by another process (the
// "keys rotate" command, another replica). Reload errors go to
// Options.OnError; the previous cache stays in use. Run it in its own
// goroutine.
func (m *Manager) Watch(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := m.Reload(ctx); err != nil && ctx.Err() == nil {
				m.opts.OnError(err)
			}
		}
	}
}
