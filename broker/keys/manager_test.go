package keys

import (
	"context"
	"crypto/rsa"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trustbroker/trustbroker/broker/store"
)

func TestEnsureCreatesActiveAndNextPerAlg(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if err := f.m.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	for _, alg := range DefaultAlgs() {
		if got := f.st.count(alg); got[store.KeyActive] != 1 || got[store.KeyNext] != 1 || len(got) != 2 {
			t.Errorf("%s: states %v, want 1 active and 1 next", alg, got)
		}
	}
	before, _ := f.st.List(ctx)
	f.clock.Advance(time.Hour)
	if err := f.m.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	after, _ := f.st.List(ctx)
	if !slices.EqualFunc(before, after, sameRow) {
		t.Error("second Ensure changed the store")
	}
	if f.st.writes != 4 {
		t.Errorf("%d writes, want 4", f.st.writes)
	}
}

func sameRow(a, b store.SigningKey) bool {
	return a.ID == b.ID && a.State == b.State && a.ActivatedAt.Equal(b.ActivatedAt) && a.VerifyUntil.Equal(b.VerifyUntil)
}

func TestEnsureRejectsUnknownAlg(t *testing.T) {
	f := newFixture(t)
	err := f.m.Ensure(context.Background(), ES256, "HS256")
	if !errors.Is(err, ErrUnsupportedAlg) || !strings.Contains(err.Error(), "HS256") {
		t.Fatalf("err = %v", err)
	}
	if f.st.writes != 0 {
		t.Error("Ensure wrote before rejecting the alg")
	}
	if err := f.m.Rotate(context.Background(), "none"); !errors.Is(err, ErrUnsupportedAlg) {
		t.Fatalf("rotate: %v", err)
	}
}

// seed stores keys of ES256 in the given states, created a minute apart
// and activated in the same order.
func seed(t *testing.T, f *fixture, states ...string) []string {
	t.Helper()
	var ids []string
	for _, state := range states {
		k, err := f.m.newKey(ES256, state)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.st.Create(context.Background(), k); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, k.ID)
		f.clock.Advance(time.Minute)
	}
	return ids
}

func TestEnsureRepairs(t *testing.T) {
	tests := []struct {
		name   string
		seed   []string
		retire []int // indexes of seeded keys that end up retired
		gone   []int // ... deleted
		active int   // ... active
	}{
		{"next only: promoted", []string{store.KeyNext}, nil, nil, 0},
		{"two active: the older is retired", []string{store.KeyActive, store.KeyActive, store.KeyNext}, []int{0}, nil, 1},
		{"two next: the newer is deleted", []string{store.KeyActive, store.KeyNext, store.KeyNext}, nil, []int{2}, 0},
		{"no active, two next: the older is promoted", []string{store.KeyNext, store.KeyNext}, nil, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			ids := seed(t, f, tt.seed...)
			if err := f.m.Ensure(context.Background(), ES256); err != nil {
				t.Fatal(err)
			}
			if got := f.st.count(ES256); got[store.KeyActive] != 1 || got[store.KeyNext] != 1 {
				t.Fatalf("states %v", got)
			}
			if got := f.st.idsIn(ES256, store.KeyActive); got[0] != ids[tt.active] {
				t.Errorf("active %v, want seeded key %d", got, tt.active)
			}
			for _, i := range tt.retire {
				if !slices.Contains(f.st.idsIn(ES256, store.KeyRetired), ids[i]) {
					t.Errorf("seeded key %d not retired", i)
				}
			}
			for _, i := range tt.gone {
				if _, ok := f.st.rows[ids[i]]; ok {
					t.Errorf("seeded key %d not deleted", i)
				}
			}
		})
	}
}

func TestRotate(t *testing.T) {
	f := newFixture(t)
	f.ready(t, ES256)
	oldActive, oldNext := f.st.idsIn(ES256, store.KeyActive)[0], f.st.idsIn(ES256, store.KeyNext)[0]
	f.clock.Advance(time.Hour)
	rotatedAt := f.clock.Now()
	f.rotate(t, ES256)

	if got := f.st.idsIn(ES256, store.KeyActive); !slices.Equal(got, []string{oldNext}) {
		t.Errorf("active %v, want the old next key %s", got, oldNext)
	}
	if got := f.st.idsIn(ES256, store.KeyRetired); !slices.Equal(got, []string{oldActive}) {
		t.Errorf("retired %v, want %s", got, oldActive)
	}
	next := f.st.idsIn(ES256, store.KeyNext)
	if len(next) != 1 || next[0] == oldNext || next[0] == oldActive {
		t.Errorf("next %v, want one fresh key", next)
	}
	ret := f.st.rows[oldActive]
	if !ret.RetiredAt.Equal(rotatedAt) || !ret.VerifyUntil.Equal(rotatedAt.Add(24*time.Hour)) {
		t.Errorf("retired at %v, verify until %v", ret.RetiredAt, ret.VerifyUntil)
	}
	if act := f.st.rows[oldNext]; !act.ActivatedAt.Equal(rotatedAt) {
		t.Errorf("activated at %v", act.ActivatedAt)
	}
}

func TestRotatePublishesNextBeforeItSigns(t *testing.T) {
	for _, alg := range DefaultAlgs() {
		t.Run(alg, func(t *testing.T) {
			f := newFixture(t)
			f.ready(t, alg)
			published := jwksKIDs(t, f.m.JWKS())
			f.rotate(t, alg)
			s, err := f.m.Signer(alg)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(published, s.KID) {
				t.Errorf("new active key %s was not in the JWKS before the rotation (%v)", s.KID, published)
			}
		})
	}
}

func TestRotateWithoutNextKey(t *testing.T) {
	f := newFixture(t)
	seed(t, f, store.KeyActive)
	if err := f.m.Rotate(context.Background(), ES256); !errors.Is(err, ErrNoNextKey) {
		t.Fatalf("err = %v, want ErrNoNextKey", err)
	}
	if got := f.st.count(ES256); got[store.KeyActive] != 1 || len(got) != 1 {
		t.Errorf("store changed: %v", got)
	}
}

// TestRotateInterrupted crashes Rotate after each of its writes and checks
// that an active key is always left and that Ensure repairs the rest.
func TestRotateInterrupted(t *testing.T) {
	for writes := 1; writes < 3; writes++ { // Rotate writes 3 times
		f := newFixture(t)
		f.ready(t, ES256)
		f.st.writes, f.st.failAfter = 0, writes
		err := f.m.Rotate(context.Background(), ES256)
		if !errors.Is(err, errCrash) {
			t.Fatalf("crash after %d writes: err = %v", writes, err)
		}
		if got := f.st.count(ES256); got[store.KeyActive] == 0 {
			t.Fatalf("crash after %d writes left no active key: %v", writes, got)
		}
		if err := f.m.Reload(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, err := f.m.Signer(ES256); err != nil {
			t.Fatalf("crash after %d writes: %v", writes, err)
		}
		f.st.failAfter = 0
		if err := f.m.Ensure(context.Background(), ES256); err != nil {
			t.Fatal(err)
		}
		if got := f.st.count(ES256); got[store.KeyActive] != 1 || got[store.KeyNext] != 1 {
			t.Errorf("crash after %d writes: after Ensure %v", writes, got)
		}
	}
}

func TestRotateInTxRollsBack(t *testing.T) {
	var f *fixture
	f = newFixture(t, func(o *Options) {
		o.InTx = func(ctx context.Context, fn func(KeyStore) error) error { return f.st.inTx(ctx, fn) }
	})
	f.ready(t, ES256)
	before, _ := f.st.List(context.Background())
	f.st.writes, f.st.failAfter = 0, 2
	if err := f.m.Rotate(context.Background(), ES256); !errors.Is(err, errCrash) {
		t.Fatalf("err = %v", err)
	}
	after, _ := f.st.List(context.Background())
	if !slices.EqualFunc(before, after, sameRow) || len(before) != len(after) {
		t.Error("failed transaction left changes behind")
	}
}

// txStore is a store.Store with only what StoreTx needs.
type txStore struct {
	store.Store
	keys *memStore
	txs  int
}

func (s *txStore) Keys() store.Keys { return memKeys{s.keys} }

func (s *txStore) InTx(_ context.Context, fn func(store.Store) error) error {
	s.txs++
	return fn(s)
}

// memKeys adds the Get that store.Keys has and KeyStore does not need.
type memKeys struct{ *memStore }

func (k memKeys) Get(context.Context, string) (*store.SigningKey, error) {
	return nil, store.ErrNotFound
}

func TestStoreTx(t *testing.T) {
	f := newFixture(t)
	st := &txStore{keys: f.st}
	m := f.manager(t, testMasterKey(t), func(o *Options) { o.InTx = StoreTx(st) })
	if err := m.Ensure(context.Background(), ES256); err != nil {
		t.Fatal(err)
	}
	if err := m.Rotate(context.Background(), ES256); err != nil {
		t.Fatal(err)
	}
	if st.txs != 2 {
		t.Errorf("%d transactions, want 2", st.txs)
	}
}

func TestPrune(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.ready(t, ES256)
	first := f.st.idsIn(ES256, store.KeyActive)[0]
	f.rotate(t, ES256) // first retired, verifiable for 24h
	f.clock.Advance(12 * time.Hour)
	second := f.st.idsIn(ES256, store.KeyActive)[0]
	f.rotate(t, ES256) // second retired, verifiable for 24h

	if n, err := f.m.Prune(ctx); err != nil || n != 0 {
		t.Fatalf("prune before expiry: %d, %v", n, err)
	}
	f.clock.Advance(12 * time.Hour) // first's VerifyUntil is now
	n, err := f.m.Prune(ctx)
	if err != nil || n != 1 {
		t.Fatalf("prune: %d, %v", n, err)
	}
	if _, ok := f.st.rows[first]; ok {
		t.Error("expired retired key kept")
	}
	if got := f.st.idsIn(ES256, store.KeyRetired); !slices.Equal(got, []string{second}) {
		t.Errorf("retired %v, want only %s", got, second)
	}
	if got := f.st.count(ES256); got[store.KeyActive] != 1 || got[store.KeyNext] != 1 {
		t.Errorf("prune touched active/next keys: %v", got)
	}
}

func TestDefaults(t *testing.T) {
	m := NewManager(newMemStore(), testMasterKey(t), Options{})
	if m.opts.RSABits != DefaultRSABits || m.opts.MaxTokenLifetime != 24*time.Hour {
		t.Fatalf("defaults %+v", m.opts)
	}
	if testing.Short() {
		t.Skip("skipping RSA 3072 key generation in short mode")
	}
	k, err := m.newKey(RS256, store.KeyNext)
	if err != nil {
		t.Fatal(err)
	}
	jwk, err := parsePublicJWK(k.PublicJWK, k.ID, RS256)
	if err != nil {
		t.Fatal(err)
	}
	if bits := jwk.Key.(*rsa.PublicKey).N.BitLen(); bits != 3072 {
		t.Errorf("RSA key has %d bits, want 3072", bits)
	}
}

func TestRSABitsBelowMinimum(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.RSABits = 1024 })
	err := f.m.Ensure(context.Background(), RS256)
	if err == nil || !strings.Contains(err.Error(), "below 2048") {
		t.Fatalf("err = %v", err)
	}
}
