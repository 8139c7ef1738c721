package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/trustbroker/trustbroker/broker/store"
)

func testToken(kind, sig, requestID string) *store.OAuthToken {
	return &store.OAuthToken{Kind: kind, Signature: sig, RequestID: requestID, ClientID: "c", Subject: "s",
		Active: true, ExpiresAt: time.Now().Add(time.Hour), Data: []byte(`{}`)}
}

// TestBegin: what a Begin transaction writes is seen by others after
// commit and never after rollback; end is the only way out.
func TestBegin(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		st := openStore(t, b.newDSN(t), nil)
		for _, commit := range []bool{true, false} {
			sig := fmt.Sprintf("sig-%v", commit)
			tx, end, err := st.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := tx.OAuth().CreateToken(ctx, testToken(store.TokenAccess, sig, "r")); err != nil {
				t.Fatal(err)
			}
			if _, err := tx.OAuth().GetToken(ctx, store.TokenAccess, sig); err != nil {
				t.Fatalf("own write not visible inside the transaction: %v", err)
			}
			if err := end(commit); err != nil {
				t.Fatal(err)
			}
			_, err = st.OAuth().GetToken(ctx, store.TokenAccess, sig)
			if commit && err != nil {
				t.Fatalf("committed token: %v", err)
			}
			if !commit && !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("rolled back token: %v, want ErrNotFound", err)
			}
		}
		tx, end, err := st.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := tx.(*Store).Begin(ctx); err == nil {
			t.Fatal("Begin inside a transaction succeeded")
		}
		if err := end(false); err != nil {
			t.Fatal(err)
		}
	})
}

// TestWriteQueue: many writers at once, in and outside transactions, all
// succeed (none ends in SQLITE_BUSY), and a Begin transaction's
// compare-and-swap still lets exactly one of racing rotations win.
func TestWriteQueue(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		st := openStore(t, b.newDSN(t), nil)
		if err := st.OAuth().CreateToken(ctx, testToken(store.TokenRefresh, "rt", "fam")); err != nil {
			t.Fatal(err)
		}
		const n = 24
		var wg sync.WaitGroup
		errs := make(chan error, 2*n)
		var won sync.Map
		for i := range n {
			wg.Add(2)
			go func() {
				defer wg.Done()
				errs <- st.OAuth().CreateToken(ctx, testToken(store.TokenAccess, fmt.Sprintf("at-%d", i), "fam"))
			}()
			go func() {
				defer wg.Done()
				tx, end, err := st.Begin(ctx)
				if err != nil {
					errs <- err
					return
				}
				err = tx.OAuth().DeactivateToken(ctx, store.TokenRefresh, "rt")
				if err == nil {
					won.Store(i, true)
					err = tx.OAuth().CreateToken(ctx, testToken(store.TokenRefresh, fmt.Sprintf("rt-%d", i), "fam"))
				} else if errors.Is(err, store.ErrNotFound) {
					err = nil
				}
				errs <- errors.Join(err, end(err == nil))
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		winners := 0
		won.Range(func(any, any) bool { winners++; return true })
		if winners != 1 {
			t.Fatalf("%d racing rotations won, want exactly 1", winners)
		}
	})
}

// TestWriteQueueTimeout: a writer that breaks the InTx rule (writing
// through the outer Store while its own transaction holds the write slot)
// is not stuck for ever: after the queue's timeout it goes on to SQLite,
// whose busy timeout then refuses it.
func TestWriteQueueTimeout(t *testing.T) {
	dsn := testBackends[0].newDSN(t)
	st, err := Open(t.Context(), dsn+"?_pragma=busy_timeout(100)", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	st.writers.timeout = 100 * time.Millisecond
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	err = st.InTx(ctx, func(tx store.Store) error {
		if err := tx.OAuth().CreateToken(ctx, testToken(store.TokenAccess, "inner", "r")); err != nil {
			return err
		}
		return st.OAuth().CreateToken(ctx, testToken(store.TokenAccess, "outer", "r"))
	})
	if err == nil || ctx.Err() != nil {
		t.Fatalf("write through the outer store inside a transaction: %v (context %v), want a busy error in time", err, ctx.Err())
	}
}

// TestStatementCache: cached statements serve repeated queries, inside and
// outside transactions, and DDL is never cached.
func TestStatementCache(t *testing.T) {
	st := openStore(t, testBackends[0].newDSN(t), nil)
	ctx := t.Context()
	for i := range 3 {
		if err := st.OAuth().CreateToken(ctx, testToken(store.TokenAccess, fmt.Sprintf("s%d", i), "r")); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.InTx(ctx, func(tx store.Store) error {
		_, err := tx.OAuth().RevokeByRequestID(ctx, store.TokenAccess, "r")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if n := st.stmts.n.Load(); n < 1 {
		t.Fatalf("%d statements cached, want some", n)
	}
	st.stmts.m.Range(func(k, _ any) bool {
		if !cacheable(k.(string)) {
			t.Errorf("cached %q", k)
		}
		return true
	})
	for _, q := range []string{"CREATE TABLE x (a)", "PRAGMA foo", "select 1", "  SELECT 1", ""} {
		if cacheable(q) && q != "select 1" {
			t.Errorf("cacheable(%q)", q)
		}
	}
	tok, err := st.OAuth().GetToken(ctx, store.TokenAccess, "s1")
	if err != nil || tok.Active {
		t.Fatalf("GetToken after revocation = %+v, %v", tok, err)
	}
}

// TestGroupCommit: writers that share one SQLite commit keep their own
// outcome: a rolled-back or failing writer undoes only its own work, a
// panicking one too, and every writer that reported success is committed.
func TestGroupCommit(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		st := openStore(t, b.newDSN(t), nil)
		if err := st.OAuth().CreateToken(ctx, testToken(store.TokenAccess, "taken", "r")); err != nil {
			t.Fatal(err)
		}
		errRollback := errors.New("rolled back on purpose")
		const n = 48
		results := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sig := fmt.Sprintf("w%d", i)
				switch i % 4 {
				case 0: // commits
					results[i] = st.InTx(ctx, func(tx store.Store) error {
						return tx.OAuth().CreateToken(ctx, testToken(store.TokenAccess, sig, "r"))
					})
				case 1: // writes, then rolls back
					results[i] = st.InTx(ctx, func(tx store.Store) error {
						if err := tx.OAuth().CreateToken(ctx, testToken(store.TokenAccess, sig, "r")); err != nil {
							return err
						}
						return errRollback
					})
				case 2: // a conflict outside a transaction
					results[i] = st.OAuth().CreateToken(ctx, testToken(store.TokenAccess, "taken", "r"))
				case 3: // writes, then panics
					func() {
						defer func() { results[i] = fmt.Errorf("panic: %v", recover()) }()
						_ = st.InTx(ctx, func(tx store.Store) error {
							if err := tx.OAuth().CreateToken(ctx, testToken(store.TokenAccess, sig, "r")); err != nil {
								return err
							}
							panic("on purpose")
						})
					}()
				}
			}()
		}
		wg.Wait()
		for i, err := range results {
			sig := fmt.Sprintf("w%d", i)
			_, gerr := st.OAuth().GetToken(ctx, store.TokenAccess, sig)
			switch i % 4 {
			case 0:
				if err != nil || gerr != nil {
					t.Errorf("writer %d: %v, token %v; want committed", i, err, gerr)
				}
			case 1:
				if !errors.Is(err, errRollback) || !errors.Is(gerr, store.ErrNotFound) {
					t.Errorf("writer %d: %v, token %v; want rolled back", i, err, gerr)
				}
			case 2:
				if !errors.Is(err, store.ErrConflict) {
					t.Errorf("writer %d: %v, want ErrConflict", i, err)
				}
			case 3:
				if err == nil || !errors.Is(gerr, store.ErrNotFound) {
					t.Errorf("writer %d: %v, token %v; want the panic and no token", i, err, gerr)
				}
			}
		}
		if _, err := st.OAuth().GetToken(ctx, store.TokenAccess, "taken"); err != nil {
			t.Fatalf("the taken token: %v", err)
		}
		// Begin's end is single-use.
		_, end, err := st.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := end(false); err != nil {
			t.Fatal(err)
		}
		if b.name == DialectSQLite {
			if err := end(true); err == nil {
				t.Fatal("second end succeeded")
			}
		}
	})
}

// TestGroupCommitCancelled: a writer whose request is cancelled while
// it waits for its turn gives up, without disturbing the group.
func TestGroupCommitCancelled(t *testing.T) {
	st := openStore(t, testBackends[0].newDSN(t), nil)
	ctx := t.Context()
	_, end, err := st.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- st.OAuth().CreateToken(cctx, testToken(store.TokenAccess, "cancelled", "r")) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled writer: %v", err)
	}
	if err := end(true); err != nil {
		t.Fatal(err)
	}
	if err := st.OAuth().CreateToken(ctx, testToken(store.TokenAccess, "after", "r")); err != nil {
		t.Fatalf("write after: %v", err)
	}
	if _, err := st.OAuth().GetToken(ctx, store.TokenAccess, "cancelled"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("cancelled writer's token: %v", err)
	}
}
