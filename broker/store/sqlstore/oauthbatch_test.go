package sqlstore

import (
	"errors"
	"testing"
	"time"

	"github.com/trustbroker/trustbroker/broker/store"
)

// TestWriteOAuth: a batch of OAuth writes is all or nothing, on SQLite (one
// grouped transaction) and on PostgreSQL (one pipeline): a compare-and-swap
// that finds no active token, or an insert of a taken key, fails the batch
// naming the write, and nothing of it is written; inside a transaction the
// writes are the transaction's.
func TestWriteOAuth(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		st := openStore(t, b.newDSN(t), nil)
		o := st.OAuth()
		active := func(kind, sig string) (exists, isActive bool) {
			t.Helper()
			tok, err := o.GetToken(ctx, kind, sig)
			if errors.Is(err, store.ErrNotFound) {
				return false, false
			}
			if err != nil {
				t.Fatal(err)
			}
			return true, tok.Active
		}
		for _, tok := range []*store.OAuthToken{
			testToken(store.TokenRefresh, "rt1", "fam"), testToken(store.TokenAccess, "at1", "fam"),
			testToken(store.TokenAccess, "at0", "fam"),
		} {
			if err := o.CreateToken(ctx, tok); err != nil {
				t.Fatal(err)
			}
		}
		expired := testToken(store.TokenRefresh, "rt-old", "fam")
		expired.ExpiresAt = time.Now().Add(-time.Minute)
		if err := o.CreateToken(ctx, expired); err != nil {
			t.Fatal(err)
		}
		swap := func(sig string) store.OAuthWrite {
			return store.OAuthWrite{Deactivate: &store.OAuthToken{Kind: store.TokenRefresh, Signature: sig}}
		}
		revoke := store.OAuthWrite{Revoke: &store.OAuthToken{Kind: store.TokenAccess, RequestID: "fam"}}
		create := func(kind, sig string) store.OAuthWrite {
			return store.OAuthWrite{Create: testToken(kind, sig, "fam")}
		}

		// Failures first, each leaving everything as it was.
		for _, tc := range []struct {
			name  string
			ws    []store.OAuthWrite
			index int
			want  error
		}{
			{"swap of an unknown token", []store.OAuthWrite{create(store.TokenAccess, "x1"), swap("nope"), create(store.TokenRefresh, "x2")}, 1, store.ErrNotFound},
			{"swap of an expired token", []store.OAuthWrite{revoke, swap("rt-old"), create(store.TokenRefresh, "x2")}, 1, store.ErrNotFound},
			{"taken key", []store.OAuthWrite{swap("rt1"), revoke, create(store.TokenAccess, "at1")}, 2, store.ErrConflict},
		} {
			err := st.WriteOAuth(ctx, tc.ws)
			be, ok := errors.AsType[*store.OAuthBatchError](err)
			if !ok || be.Index != tc.index || !errors.Is(err, tc.want) {
				t.Fatalf("%s: %v, want write %d failing with %v", tc.name, err, tc.index, tc.want)
			}
			for _, x := range []struct {
				kind, sig string
				exists    bool
			}{{store.TokenAccess, "x1", false}, {store.TokenRefresh, "x2", false},
				{store.TokenRefresh, "rt1", true}, {store.TokenAccess, "at1", true}, {store.TokenAccess, "at0", true}} {
				if e, a := active(x.kind, x.sig); e != x.exists || (e && !a) {
					t.Fatalf("%s: %s %s exists %v active %v after the failed batch", tc.name, x.kind, x.sig, e, a)
				}
			}
		}

		// The rotation: swap, revoke, two new rows.
		if err := st.WriteOAuth(ctx, []store.OAuthWrite{swap("rt1"), revoke, create(store.TokenAccess, "at2"), create(store.TokenRefresh, "rt2")}); err != nil {
			t.Fatal(err)
		}
		for _, x := range []struct {
			kind, sig string
			active    bool
		}{{store.TokenRefresh, "rt1", false}, {store.TokenAccess, "at0", false}, {store.TokenAccess, "at1", false},
			{store.TokenAccess, "at2", true}, {store.TokenRefresh, "rt2", true}} {
			if e, a := active(x.kind, x.sig); !e || a != x.active {
				t.Errorf("after the rotation %s %s exists %v active %v, want active %v", x.kind, x.sig, e, a, x.active)
			}
		}
		// A second swap of the same token is the reuse the batch reports.
		if err := st.WriteOAuth(ctx, []store.OAuthWrite{swap("rt1")}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second swap: %v", err)
		}

		// Inside a transaction the writes are the transaction's.
		err := st.InTx(ctx, func(tx store.Store) error {
			if err := tx.(store.OAuthBatch).WriteOAuth(ctx, []store.OAuthWrite{swap("rt2"), create(store.TokenRefresh, "rt3")}); err != nil {
				return err
			}
			return errors.New("roll back")
		})
		if err == nil || err.Error() != "roll back" {
			t.Fatalf("InTx: %v", err)
		}
		if e, a := active(store.TokenRefresh, "rt2"); !e || !a {
			t.Error("a rolled-back transaction's batch swapped rt2")
		}
		if e, _ := active(store.TokenRefresh, "rt3"); e {
			t.Error("a rolled-back transaction's batch created rt3")
		}
	})
}
