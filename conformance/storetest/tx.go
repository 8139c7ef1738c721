package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/trustbroker/trustbroker/broker/store"
)

// wantAbsent fails unless the account is not found.
func (e *env) wantAbsent(id string) {
	e.t.Helper()
	_, err := e.st.Accounts().Get(e.ctx, id)
	wantErr(e.t, err, store.ErrNotFound)
}

// wantPresent fails unless the account is found.
func (e *env) wantPresent(id string) {
	e.t.Helper()
	_, err := e.st.Accounts().Get(e.ctx, id)
	must(e.t, err)
}

// createIn creates an account through the store s (a transaction view).
func (e *env) createIn(s store.Store, id string) error {
	return s.Accounts().Create(e.ctx, &store.Account{ID: id})
}

// catchPanic runs fn and returns what it panicked with.
func catchPanic(fn func()) (v any) {
	defer func() { v = recover() }()
	fn()
	return nil
}

func testInTx(t *testing.T, open Opener) {
	t.Run("Commit", func(t *testing.T) {
		e := setup(t, open)
		must(t, e.st.InTx(e.ctx, func(tx store.Store) error {
			if err := e.createIn(tx, "acc-1"); err != nil {
				return err
			}
			// A transaction reads its own writes.
			if _, err := tx.Accounts().Get(e.ctx, "acc-1"); err != nil {
				return err
			}
			return tx.Audit().Append(e.ctx, &store.AuditEvent{Actor: "acc-1", Action: "account.create"})
		}))
		e.wantPresent("acc-1")
		evs, err := e.st.Audit().List(e.ctx, store.AuditFilter{Actor: "acc-1"})
		must(t, err)
		equal(t, "audit events committed", len(evs), 1)
	})

	t.Run("RollbackOnError", func(t *testing.T) {
		e := setup(t, open)
		before := e.account("acc-0")
		err := e.st.InTx(e.ctx, func(tx store.Store) error {
			if err := e.createIn(tx, "acc-1"); err != nil {
				return err
			}
			if _, err := tx.Accounts().Update(e.ctx, "acc-0", func(a *store.Account) error {
				a.DisplayName = "changed"
				return nil
			}); err != nil {
				return err
			}
			if err := tx.Audit().Append(e.ctx, &store.AuditEvent{Action: "rolled.back"}); err != nil {
				return err
			}
			return fmt.Errorf("wrapped: %w", errBoom)
		})
		wantErr(t, err, errBoom)
		e.wantAbsent("acc-1")
		got, err := e.st.Accounts().Get(e.ctx, "acc-0")
		must(t, err)
		equal(t, "account updated in a rolled-back transaction", got, before)
		evs, err := e.st.Audit().List(e.ctx, store.AuditFilter{})
		must(t, err)
		equal(t, "audit events after rollback", len(evs), 0)
	})

	t.Run("RollbackOnPanic", func(t *testing.T) {
		e := setup(t, open)
		v := catchPanic(func() {
			_ = e.st.InTx(e.ctx, func(tx store.Store) error {
				if err := e.createIn(tx, "acc-1"); err != nil {
					return err
				}
				panic(errBoom)
			})
		})
		equal(t, "panic value passed on", v, any(errBoom))
		e.wantAbsent("acc-1")
		// The store still works: the connection went back to the pool clean.
		must(t, e.st.InTx(e.ctx, func(tx store.Store) error { return e.createIn(tx, "acc-2") }))
		e.wantPresent("acc-2")
	})

	t.Run("NestedJoins", func(t *testing.T) {
		e := setup(t, open)
		must(t, e.st.InTx(e.ctx, func(tx store.Store) error {
			if err := e.createIn(tx, "acc-1"); err != nil {
				return err
			}
			return tx.InTx(e.ctx, func(inner store.Store) error {
				if _, err := inner.Accounts().Get(e.ctx, "acc-1"); err != nil {
					return fmt.Errorf("inner transaction does not see the outer's write: %w", err)
				}
				return e.createIn(inner, "acc-2")
			})
		}))
		e.wantPresent("acc-1")
		e.wantPresent("acc-2")
	})

	t.Run("NestedRollsBackWithOuter", func(t *testing.T) {
		e := setup(t, open)
		err := e.st.InTx(e.ctx, func(tx store.Store) error {
			if err := tx.InTx(e.ctx, func(inner store.Store) error { return e.createIn(inner, "acc-1") }); err != nil {
				return err
			}
			return errBoom
		})
		wantErr(t, err, errBoom)
		e.wantAbsent("acc-1")

		err = e.st.InTx(e.ctx, func(tx store.Store) error {
			if err := e.createIn(tx, "acc-2"); err != nil {
				return err
			}
			return tx.InTx(e.ctx, func(inner store.Store) error { return errBoom })
		})
		wantErr(t, err, errBoom)
		e.wantAbsent("acc-2")

		v := catchPanic(func() {
			_ = e.st.InTx(e.ctx, func(tx store.Store) error {
				if err := e.createIn(tx, "acc-3"); err != nil {
					return err
				}
				return tx.InTx(e.ctx, func(store.Store) error { panic(errBoom) })
			})
		})
		equal(t, "panic value passed on", v, any(errBoom))
		e.wantAbsent("acc-3")
	})

	t.Run("ConflictInsideTx", func(t *testing.T) {
		e := setup(t, open)
		e.account("acc-1")
		err := e.st.InTx(e.ctx, func(tx store.Store) error { return e.createIn(tx, "acc-1") })
		wantErr(t, err, store.ErrConflict)
	})
}

func testGC(t *testing.T, open Opener) {
	t.Run("RemovesExpiredOnly", func(t *testing.T) {
		e := setup(t, open)
		st := e.st
		e.account("acc-1")
		// Rows expiring in a minute, and rows living a day.
		short, long := e.now().Add(time.Minute), e.now().Add(24*time.Hour)
		for _, x := range []struct {
			suffix string
			exp    time.Time
		}{{"old", short}, {"live", long}} {
			must(t, st.Sessions().Create(e.ctx, &store.Session{ID: "sess-" + x.suffix, AccountID: "acc-1", ExpiresAt: x.exp}))
			must(t, st.Transactions().Create(e.ctx, &store.Transaction{ID: "tx-" + x.suffix, ExpiresAt: x.exp}))
			tok := e.token(store.TokenAccess, "sig-"+x.suffix, "req-1")
			tok.ExpiresAt = x.exp
			must(t, st.OAuth().CreateToken(e.ctx, tok))
			must(t, st.Replay().Use(e.ctx, "jti", x.suffix, x.exp))
		}
		// Records GC must leave alone, however old.
		must(t, st.Keys().Create(e.ctx, &store.SigningKey{ID: "kid-retired", State: store.KeyRetired, VerifyUntil: short}))
		must(t, st.Consents().Create(e.ctx, &store.Consent{ID: "cons-expired", AccountID: "acc-1", RPID: "rp-1", ExpiresAt: short}))
		must(t, st.Audit().Append(e.ctx, &store.AuditEvent{Action: "test"}))

		e.clock.Advance(time.Hour)
		res, err := st.GC(e.ctx, e.now())
		must(t, err)
		equal(t, "GC total", res.Total(), int64(4))
		for _, table := range []string{"sessions", "login_transactions", "oauth_tokens", "replay_values"} {
			equal(t, "GC count of "+table, res[table], int64(1))
		}

		_, err = st.Sessions().Get(e.ctx, "sess-live")
		must(t, err)
		_, err = st.Transactions().Get(e.ctx, "tx-live")
		must(t, err)
		_, err = st.OAuth().GetToken(e.ctx, store.TokenAccess, "sig-live")
		must(t, err)
		wantErr(t, st.Replay().Use(e.ctx, "jti", "live", long), store.ErrConflict)
		_, err = st.Keys().Get(e.ctx, "kid-retired")
		must(t, err)
		_, err = st.Consents().Get(e.ctx, "cons-expired")
		must(t, err)
		evs, err := st.Audit().List(e.ctx, store.AuditFilter{})
		must(t, err)
		equal(t, "audit events after GC", len(evs), 1)
		// Expired rows are gone, not just hidden: deleting them finds nothing.
		wantErr(t, st.Sessions().Delete(e.ctx, "sess-old"), store.ErrNotFound)
		wantErr(t, st.Transactions().Delete(e.ctx, "tx-old"), store.ErrNotFound)
		wantErr(t, st.OAuth().DeleteToken(e.ctx, store.TokenAccess, "sig-old"), store.ErrNotFound)

		res, err = st.GC(e.ctx, e.now())
		must(t, err)
		equal(t, "second GC total", res.Total(), int64(0))
	})

	t.Run("LargeBacklog", func(t *testing.T) {
		e := setup(t, open)
		const n = 2345 // more than two batches of any sensible size
		exp := e.now().Add(time.Minute)
		must(t, e.st.InTx(e.ctx, func(tx store.Store) error {
			for i := range n {
				if err := tx.Replay().Use(e.ctx, "jti", fmt.Sprint(i), exp); err != nil {
					return err
				}
			}
			return tx.Replay().Use(e.ctx, "jti", "live", exp.Add(time.Hour))
		}))
		res, err := e.st.GC(e.ctx, exp)
		must(t, err)
		equal(t, "replay values removed", res["replay_values"], int64(n))
		wantErr(t, e.st.Replay().Use(e.ctx, "jti", "live", exp.Add(time.Hour)), store.ErrConflict)
	})
}
