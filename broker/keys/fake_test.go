package keys

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustbroker/trustbroker/broker/store"
)

// memStore is an in-memory KeyStore. failAfter, when positive, makes the
// write after that many successful writes fail (a crash in the middle).
type memStore struct {
	mu        sync.Mutex
	rows      map[string]store.SigningKey
	writes    int
	failAfter int
}

var _ KeyStore = (*memStore)(nil)

var errCrash = errors.New("simulated crash")

func newMemStore() *memStore { return &memStore{rows: map[string]store.SigningKey{}} }

func cloneKey(k store.SigningKey) store.SigningKey {
	k.PublicJWK = slices.Clone(k.PublicJWK)
	k.PrivateEncrypted = slices.Clone(k.PrivateEncrypted)
	return k
}

// write counts a write and reports the simulated crash; mu is held.
func (s *memStore) write() error {
	if s.failAfter > 0 && s.writes >= s.failAfter {
		return errCrash
	}
	s.writes++
	return nil
}

func (s *memStore) List(context.Context) ([]store.SigningKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []store.SigningKey
	for _, id := range slices.Sorted(maps.Keys(s.rows)) {
		out = append(out, cloneKey(s.rows[id]))
	}
	return out, nil
}

func (s *memStore) Create(_ context.Context, k *store.SigningKey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.rows[k.ID]; ok {
		return fmt.Errorf("mem: create %s: %w", k.ID, store.ErrConflict)
	}
	if err := s.write(); err != nil {
		return err
	}
	s.rows[k.ID] = cloneKey(*k)
	return nil
}

func (s *memStore) Update(_ context.Context, id string, fn func(*store.SigningKey) error) (*store.SigningKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.rows[id]
	if !ok {
		return nil, fmt.Errorf("mem: update %s: %w", id, store.ErrNotFound)
	}
	k = cloneKey(k)
	if err := fn(&k); err != nil {
		return nil, err
	}
	if err := s.write(); err != nil {
		return nil, err
	}
	s.rows[id] = cloneKey(k)
	return &k, nil
}

func (s *memStore) Delete(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.rows[id]; !ok {
		return fmt.Errorf("mem: delete %s: %w", id, store.ErrNotFound)
	}
	if err := s.write(); err != nil {
		return err
	}
	delete(s.rows, id)
	return nil
}

// mutate changes a stored row directly, as an attacker with database
// access could.
func (s *memStore) mutate(t *testing.T, id string, fn func(*store.SigningKey)) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.rows[id]
	if !ok {
		t.Fatalf("no row %s", id)
	}
	fn(&k)
	s.rows[id] = k
}

// inTx is a TxFunc over s: fn's writes are undone when it fails.
func (s *memStore) inTx(ctx context.Context, fn func(KeyStore) error) error {
	s.mu.Lock()
	saved := maps.Clone(s.rows)
	s.mu.Unlock()
	err := fn(s)
	if err != nil {
		s.mu.Lock()
		s.rows = saved
		s.mu.Unlock()
	}
	return err
}

// count returns how many keys of alg are in each state.
func (s *memStore) count(alg string) map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := map[string]int{}
	for _, k := range s.rows {
		if k.Alg == alg {
			n[k.State]++
		}
	}
	return n
}

// idsIn returns the kids of alg in state.
func (s *memStore) idsIn(alg, state string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for _, k := range s.rows {
		if k.Alg == alg && k.State == state {
			ids = append(ids, k.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

const testMasterHex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

func testMasterKey(t testing.TB) MasterKey {
	t.Helper()
	mk, err := ParseMasterKey(testMasterHex)
	if err != nil {
		t.Fatal(err)
	}
	return mk
}

func otherMasterKey(t testing.TB) MasterKey {
	t.Helper()
	mk, err := ParseMasterKey(strings.Repeat("ff", MasterKeySize))
	if err != nil {
		t.Fatal(err)
	}
	return mk
}

type fixture struct {
	st    *memStore
	clock *clock
	m     *Manager
}

// newFixture returns a Manager over an empty memStore with RSA 2048 keys
// and a 24h token lifetime.
func newFixture(t testing.TB, tweak ...func(*Options)) *fixture {
	t.Helper()
	f := &fixture{st: newMemStore(), clock: newClock()}
	f.m = f.manager(t, testMasterKey(t), tweak...)
	return f
}

// manager returns another Manager over the fixture's store and clock.
func (f *fixture) manager(t testing.TB, mk MasterKey, tweak ...func(*Options)) *Manager {
	t.Helper()
	opts := Options{Now: f.clock.Now, RSABits: MinRSABits, MaxTokenLifetime: 24 * time.Hour}
	for _, fn := range tweak {
		fn(&opts)
	}
	return NewManager(f.st, mk, opts)
}

// ready runs Ensure and Reload.
func (f *fixture) ready(t testing.TB, algs ...string) {
	t.Helper()
	ctx := context.Background()
	if err := f.m.Ensure(ctx, algs...); err != nil {
		t.Fatal(err)
	}
	if err := f.m.Reload(ctx); err != nil {
		t.Fatal(err)
	}
}

// rotate runs Rotate and Reload.
func (f *fixture) rotate(t testing.TB, alg string) {
	t.Helper()
	ctx := context.Background()
	if err := f.m.Rotate(ctx, alg); err != nil {
		t.Fatal(err)
	}
	if err := f.m.Reload(ctx); err != nil {
		t.Fatal(err)
	}
}
