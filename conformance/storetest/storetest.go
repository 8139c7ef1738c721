// Package storetest is the conformance suite of the broker/store contract.
// Every backend runs it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T, now func() time.Time) store.Store {
//			return openFreshMigratedStore(t, now)
//		})
//	}
//
// The suite covers every repository method: happy paths, store.ErrNotFound
// and store.ErrConflict, expiry against a controlled clock, updater
// semantics, concurrent writers, transactions that commit, fail or panic,
// garbage collection and the account-deletion cascade.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/trustbroker/trustbroker/broker/store"
)

// Opener returns a fresh, migrated, empty store for one test, and
// registers its cleanup (close, drop) with t.Cleanup. The store must take
// now as its clock for every expiry decision and default timestamp. The
// suite calls Opener from parallel subtests.
type Opener func(t *testing.T, now func() time.Time) store.Store

// Run runs the whole suite against the stores open returns.
func Run(t *testing.T, open Opener) {
	t.Run("Basics", func(t *testing.T) { testBasics(t, open) })
	t.Run("Accounts", func(t *testing.T) { testAccounts(t, open) })
	t.Run("Sessions", func(t *testing.T) { testSessions(t, open) })
	t.Run("Transactions", func(t *testing.T) { testTransactions(t, open) })
	t.Run("RelyingParties", func(t *testing.T) { testRelyingParties(t, open) })
	t.Run("Consents", func(t *testing.T) { testConsents(t, open) })
	t.Run("ConsentRecords", func(t *testing.T) { testConsentRecords(t, open) })
	t.Run("Disclosures", func(t *testing.T) { testDisclosures(t, open) })
	t.Run("RevokeBySubject", func(t *testing.T) { testRevokeBySubject(t, open) })
	t.Run("Audit", func(t *testing.T) { testAudit(t, open) })
	t.Run("Keys", func(t *testing.T) { testKeys(t, open) })
	t.Run("OAuth", func(t *testing.T) { testOAuth(t, open) })
	t.Run("Replay", func(t *testing.T) { testReplay(t, open) })
	t.Run("WebAuthn", func(t *testing.T) { testWebAuthn(t, open) })
	t.Run("Revocations", func(t *testing.T) { testRevocations(t, open) })
	t.Run("InTx", func(t *testing.T) { testInTx(t, open) })
	t.Run("GC", func(t *testing.T) { testGC(t, open) })
}

// Concurrency of the concurrent-writer tests.
const (
	writers          = 16
	updatesPerWriter = 20
)

// start is the suite's initial clock reading: microsecond precision in
// UTC, as stores return times.
var start = time.Date(2030, time.January, 2, 3, 4, 5, 123456000, time.UTC)

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// env is one subtest's store, clock and context.
type env struct {
	t     *testing.T
	ctx   context.Context
	clock *clock
	st    store.Store
}

// setup marks the subtest parallel and opens its store.
func setup(t *testing.T, open Opener) *env {
	t.Helper()
	t.Parallel()
	c := &clock{now: start}
	st := open(t, c.Now)
	if st == nil {
		t.Fatal("opener returned a nil store")
	}
	return &env{t: t, ctx: t.Context(), clock: c, st: st}
}

func (e *env) now() time.Time { return e.clock.Now() }

// account creates an account with the given ID.
func (e *env) account(id string) *store.Account {
	e.t.Helper()
	a := &store.Account{ID: id, DisplayName: "Erika " + id}
	must(e.t, e.st.Accounts().Create(e.ctx, a))
	return a
}

// session creates a session of the account, valid for an hour.
func (e *env) session(id, accountID string) *store.Session {
	e.t.Helper()
	s := &store.Session{
		ID: id, AccountID: accountID, ExpiresAt: e.now().Add(time.Hour), AuthTime: e.now(),
		LoA: "http://eidas.europa.eu/LoA/high", AMR: []string{"hwk", "pin"}, ProviderID: "eid",
		CredentialKind: "eid", RelyingParties: []string{"rp-1"},
		Identity: json.RawMessage(`{"provider_id":"eid","subject":"sub-1","loa":"high","attributes":{"given_name":"Erika"}}`),
	}
	must(e.t, e.st.Sessions().Create(e.ctx, s))
	return s
}

// consent creates a consent of the account for the relying party.
func (e *env) consent(id, accountID, rpID string) *store.Consent {
	e.t.Helper()
	c := &store.Consent{
		ID: id, AccountID: accountID, RPID: rpID, Attributes: []string{"given_name", "family_name"},
		Purpose: "Antrag bearbeiten",
	}
	must(e.t, e.st.Consents().Create(e.ctx, c))
	return c
}

// parallel runs fn n times concurrently, released together, and returns
// the errors.
func parallel(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-gate
			errs[i] = fn(i)
		})
	}
	close(gate)
	wg.Wait()
	return errs
}

var errBoom = errors.New("storetest: boom")

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// wantErr fails unless errors.Is(err, target).
func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("got error %v, want %v", err, target)
	}
}

// wantSomeErr fails when err is nil.
func wantSomeErr(t *testing.T, err error, what string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: got no error", what)
	}
}

// equal fails unless got and want are deeply equal.
func equal[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func testBasics(t *testing.T, open Opener) {
	t.Run("DialectAndPing", func(t *testing.T) {
		e := setup(t, open)
		if d := e.st.Dialect(); d != "sqlite" && d != "postgres" {
			t.Fatalf("Dialect() = %q", d)
		}
		must(t, e.st.Ping(e.ctx))
	})
}
