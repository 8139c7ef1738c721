package keys

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trustbroker/trustbroker/broker/store"
)

// DefaultMaxTokenLifetime is how long a retired key stays verifiable when
// Options.MaxTokenLifetime is zero.
const DefaultMaxTokenLifetime = 24 * time.Hour

// KeyStore is what the Manager needs from the store; store.Keys has it.
type KeyStore interface {
	List(ctx context.Context) ([]store.SigningKey, error)
	Create(ctx context.Context, k *store.SigningKey) error
	Update(ctx context.Context, id string, fn func(*store.SigningKey) error) (*store.SigningKey, error)
	Delete(ctx context.Context, id string) error
}

var _ KeyStore = store.Keys(nil)

// TxFunc runs fn in one store transaction, handing it a KeyStore bound to
// that transaction. StoreTx adapts a store.Store.
type TxFunc func(ctx context.Context, fn func(KeyStore) error) error

// StoreTx adapts store.Store.InTx for Options.InTx:
//
//	keys.Options{InTx: keys.StoreTx(st)}
func StoreTx(st store.Store) TxFunc {
	return func(ctx context.Context, fn func(KeyStore) error) error {
		return st.InTx(ctx, func(tx store.Store) error { return fn(tx.Keys()) })
	}
}

// Options configure a Manager. The zero value is usable.
type Options struct {
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Rand supplies the AES-GCM nonces; crypto/rand.Reader when nil. It is
	// also handed to key generation, but since Go 1.26 crypto/ecdsa and
	// crypto/rsa ignore it and always use a secure source (tests that need
	// reproducible keys use testing/cryptotest.SetGlobalRandom).
	Rand io.Reader
	// RSABits is the modulus size of new RS256 keys: DefaultRSABits when
	// zero, at least MinRSABits.
	RSABits int
	// MaxTokenLifetime is how long a retired key stays published for
	// verification: the longest lifetime of anything signed (ID, access
	// and refresh tokens, SAML assertions) plus the clock skew verifiers
	// allow. DefaultMaxTokenLifetime when zero.
	MaxTokenLifetime time.Duration
	// InTx, when set, makes Ensure and Rotate atomic. Without it their
	// writes are ordered so that an interruption never leaves an algorithm
	// without an active key, and Ensure repairs what is left.
	InTx TxFunc
	// OnError receives the errors of the Reload calls Watch makes; they
	// are dropped when nil.
	OnError func(error)
}

func (o Options) withDefaults() Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.RSABits == 0 {
		o.RSABits = DefaultRSABits
	}
	if o.MaxTokenLifetime <= 0 {
		o.MaxTokenLifetime = DefaultMaxTokenLifetime
	}
	if o.OnError == nil {
		o.OnError = func(error) {}
	}
	return o
}

// Manager creates, rotates and prunes signing keys in the store and serves
// them from an in-memory snapshot that Reload refreshes. Its methods are
// safe for concurrent use.
type Manager struct {
	st   KeyStore
	mk   MasterKey
	opts Options

	reloadMu sync.Mutex // serialises Reload; readers use snap only
	snap     atomic.Pointer[snapshot]
}

// NewManager returns a Manager over st whose private keys are encrypted
// under mk. Its cache is empty until the first Reload.
func NewManager(st KeyStore, mk MasterKey, opts Options) *Manager {
	m := &Manager{st: st, mk: mk, opts: opts.withDefaults()}
	m.snap.Store(emptySnapshot())
	return m
}

// now is the clock at the store's precision (microseconds, UTC).
func (m *Manager) now() time.Time {
	return m.opts.Now().UTC().Truncate(time.Microsecond)
}

func (m *Manager) inTx(ctx context.Context, fn func(KeyStore) error) error {
	if m.opts.InTx != nil {
		return m.opts.InTx(ctx, fn)
	}
	return fn(m.st)
}

// Ensure makes sure that each algorithm (DefaultAlgs when none is given)
// has exactly one active and one next key, creating what is missing (on
// first start) and repairing what an interrupted rotation or two replicas
// starting at once left behind: a next key is promoted when no key is
// active, extra active keys but the newest are retired, extra next keys but
// the oldest are deleted (they never signed). Call Reload afterwards.
func (m *Manager) Ensure(ctx context.Context, algs ...string) error {
	if len(algs) == 0 {
		algs = DefaultAlgs()
	}
	if err := checkAlgs(algs); err != nil {
		return err
	}
	for _, alg := range algs {
		err := m.inTx(ctx, func(ks KeyStore) error { return m.ensure(ctx, ks, alg) })
		if err != nil {
			return fmt.Errorf("keys: ensure %s: %w", alg, err)
		}
	}
	return nil
}

func (m *Manager) ensure(ctx context.Context, ks KeyStore, alg string) error {
	active, next, err := listStates(ctx, ks, alg)
	if err != nil {
		return err
	}
	if len(active) == 0 && len(next) > 0 {
		if err := m.promote(ctx, ks, next[0].ID); err != nil {
			return err
		}
		active, next = next[:1], next[1:]
	}
	if len(active) == 0 {
		if err := m.create(ctx, ks, alg, store.KeyActive); err != nil {
			return err
		}
	}
	if err := m.retireAll(ctx, ks, idsOf(active, 1)); err != nil {
		return err
	}
	if err := deleteAll(ctx, ks, idsOf(next, 1)); err != nil {
		return err
	}
	if len(next) == 0 {
		return m.create(ctx, ks, alg, store.KeyNext)
	}
	return nil
}

// Rotate moves alg one step along the key lifecycle: a fresh key is
// created as next, the current next key becomes active, and the active key
// is retired with VerifyUntil = now + MaxTokenLifetime. The key that starts
// signing has therefore been published (as next) since the previous
// rotation. Without Options.InTx the writes happen in that order, so an
// interruption leaves at least one active key. Call Reload afterwards;
// other processes notice through Watch.
func (m *Manager) Rotate(ctx context.Context, alg string) error {
	if err := checkAlgs([]string{alg}); err != nil {
		return err
	}
	fresh, err := m.newKey(alg, store.KeyNext)
	if err != nil {
		return fmt.Errorf("keys: rotate %s: %w", alg, err)
	}
	err = m.inTx(ctx, func(ks KeyStore) error { return m.rotate(ctx, ks, alg, fresh) })
	if err != nil {
		return fmt.Errorf("keys: rotate %s: %w", alg, err)
	}
	return nil
}

func (m *Manager) rotate(ctx context.Context, ks KeyStore, alg string, fresh *store.SigningKey) error {
	active, next, err := listStates(ctx, ks, alg)
	if err != nil {
		return err
	}
	if len(next) == 0 {
		return ErrNoNextKey
	}
	if err := ks.Create(ctx, fresh); err != nil {
		return fmt.Errorf("create %s: %w", fresh.ID, err)
	}
	if err := m.promote(ctx, ks, next[0].ID); err != nil {
		return err
	}
	return m.retireAll(ctx, ks, idsOf(active, 0))
}

// Prune deletes the retired keys whose VerifyUntil has passed and returns
// how many it deleted. A key deleted meanwhile by another process counts
// as done.
func (m *Manager) Prune(ctx context.Context) (int, error) {
	rows, err := m.st.List(ctx)
	if err != nil {
		return 0, fmt.Errorf("keys: prune: %w", err)
	}
	now, n := m.now(), 0
	for _, k := range rows {
		if k.State != store.KeyRetired || published(&k, now) {
			continue // next, active, still verifiable, or a state this version does not know
		}
		if err := m.st.Delete(ctx, k.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return n, fmt.Errorf("keys: prune %s: %w", k.ID, err)
		}
		n++
	}
	return n, nil
}

// published reports whether k belongs in the JWKS at now: next and active
// keys always, retired keys until VerifyUntil, keys in any other state
// never.
func published(k *store.SigningKey, now time.Time) bool {
	switch k.State {
	case store.KeyNext, store.KeyActive:
		return true
	case store.KeyRetired:
		return now.Before(k.VerifyUntil)
	}
	return false
}

// listStates returns alg's active keys, newest activation first, and its
// next keys, oldest first.
func listStates(ctx context.Context, ks KeyStore, alg string) (active, next []store.SigningKey, err error) {
	rows, err := ks.List(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, k := range rows {
		switch {
		case k.Alg != alg:
		case k.State == store.KeyActive:
			active = append(active, k)
		case k.State == store.KeyNext:
			next = append(next, k)
		}
	}
	slices.SortFunc(active, func(a, b store.SigningKey) int {
		return cmpThen(b.ActivatedAt.Compare(a.ActivatedAt), a.ID, b.ID)
	})
	slices.SortFunc(next, func(a, b store.SigningKey) int {
		return cmpThen(a.CreatedAt.Compare(b.CreatedAt), a.ID, b.ID)
	})
	return active, next, nil
}

// cmpThen returns c, or the order of the ids when c is a tie.
func cmpThen(c int, idA, idB string) int {
	if c != 0 {
		return c
	}
	switch {
	case idA < idB:
		return -1
	case idA > idB:
		return 1
	}
	return 0
}

// idsOf returns the ids of keys[from:].
func idsOf(keys []store.SigningKey, from int) []string {
	var ids []string
	for i := from; i < len(keys); i++ {
		ids = append(ids, keys[i].ID)
	}
	return ids
}

func (m *Manager) create(ctx context.Context, ks KeyStore, alg, state string) error {
	k, err := m.newKey(alg, state)
	if err != nil {
		return err
	}
	if err := ks.Create(ctx, k); err != nil {
		return fmt.Errorf("create %s: %w", k.ID, err)
	}
	return nil
}

// promote turns the next key id into the active one.
func (m *Manager) promote(ctx context.Context, ks KeyStore, id string) error {
	now := m.now()
	return transition(ctx, ks, id, store.KeyNext, func(k *store.SigningKey) {
		k.State, k.ActivatedAt = store.KeyActive, now
	})
}

// retireAll retires the active keys ids, keeping them verifiable for
// MaxTokenLifetime.
func (m *Manager) retireAll(ctx context.Context, ks KeyStore, ids []string) error {
	now := m.now()
	for _, id := range ids {
		err := transition(ctx, ks, id, store.KeyActive, func(k *store.SigningKey) {
			k.State, k.RetiredAt, k.VerifyUntil = store.KeyRetired, now, now.Add(m.opts.MaxTokenLifetime)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// transition applies change to key id if it is still in state from;
// otherwise another writer moved it and the result is store.ErrConflict.
func transition(ctx context.Context, ks KeyStore, id, from string, change func(*store.SigningKey)) error {
	_, err := ks.Update(ctx, id, func(k *store.SigningKey) error {
		if k.State != from {
			return fmt.Errorf("key is %s, not %s: %w", k.State, from, store.ErrConflict)
		}
		change(k)
		return nil
	})
	if err != nil {
		return fmt.Errorf("update %s: %w", id, err)
	}
	return nil
}

func deleteAll(ctx context.Context, ks KeyStore, ids []string) error {
	for _, id := range ids {
		if err := ks.Delete(ctx, id); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("delete %s: %w", id, err)
		}
	}
	return nil
}

// newKey generates a key pair for alg and returns it as a store row with
// the private key sealed under the master key.
func (m *Manager) newKey(alg, state string) (*store.SigningKey, error) {
	a, err := algorithmFor(alg)
	if err != nil {
		return nil, err
	}
	priv, err := a.generate(m.opts.Rand, m.opts.RSABits)
	if err != nil {
		return nil, fmt.Errorf("generate %s key: %w", alg, err)
	}
	jwk, err := publicJWK(priv, alg)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("marshal private key: %w", err)
	}
	defer clear(der)
	sealed, err := m.mk.seal(m.opts.Rand, jwk.KeyID, der)
	if err != nil {
		return nil, err
	}
	pub, err := json.Marshal(jwk)
	if err != nil {
		return nil, fmt.Errorf("marshal public JWK: %w", err)
	}
	now := m.now()
	k := &store.SigningKey{ID: jwk.KeyID, Alg: alg, State: state, PublicJWK: pub, PrivateEncrypted: sealed, CreatedAt: now}
	if state == store.KeyActive {
		k.ActivatedAt = now
	}
	return k, nil
}
