package sqlstore

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/trustbroker/trustbroker/broker/store"
)

// benchRows is how many rows the lookup benchmarks read from.
const benchRows = 1000

// benchBackends runs fn as a sub-benchmark per backend, each run on a
// fresh, migrated store, and reports ops/s.
func benchBackends(b *testing.B, fn func(b *testing.B, st *Store)) {
	for _, be := range testBackends {
		b.Run(be.name, func(b *testing.B) {
			be.require(b)
			st := openStore(b, be.newDSN(b), nil)
			b.ReportAllocs()
			b.ResetTimer()
			fn(b, st)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
		})
	}
}

func benchTransaction(id string) *store.Transaction {
	return &store.Transaction{
		ID: id, Protocol: "oidc", RPID: "rp-1", State: store.TxStateMethod,
		ExpiresAt: time.Now().Add(time.Hour),
		Request:   json.RawMessage(`{"client_id":"rp-1","redirect_uri":"https://rp.example/cb","scope":"openid profile","state":"af0ifjsldkj","nonce":"n-0S6_WzA2Mj"}`),
		Params:    json.RawMessage(`{"acr":"http://eidas.europa.eu/LoA/substantial","max_age":300,"claims":["given_name","family_name","birthdate"]}`),
	}
}

func benchToken(sig string) *store.OAuthToken {
	return &store.OAuthToken{
		Kind: store.TokenAccess, Signature: sig, RequestID: "req-" + sig, ClientID: "rp-1", Subject: "pairwise-1",
		Active: true, ExpiresAt: time.Now().Add(time.Hour),
		Data: json.RawMessage(`{"requested_scope":["openid","profile"],"granted_scope":["openid","profile"],"session":{"subject":"pairwise-1","expires_at":{"access_token":"2030-01-01T00:00:00Z"}}}`),
	}
}

// seed creates n rows with create(tx, i) in one transaction, outside the
// timer.
func seed(b *testing.B, st *Store, n int, create func(tx store.Store, i int) error) {
	b.Helper()
	b.StopTimer()
	defer b.StartTimer()
	err := st.InTx(b.Context(), func(tx store.Store) error {
		for i := range n {
			if err := create(tx, i); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

func BenchmarkTransactionCreate(b *testing.B) {
	benchBackends(b, func(b *testing.B, st *Store) {
		ctx := b.Context()
		for i := 0; i < b.N; i++ {
			if err := st.Transactions().Create(ctx, benchTransaction(fmt.Sprint("tx-", i))); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkTransactionGet(b *testing.B) {
	benchBackends(b, func(b *testing.B, st *Store) {
		ctx := b.Context()
		seed(b, st, benchRows, func(tx store.Store, i int) error {
			return tx.Transactions().Create(ctx, benchTransaction(fmt.Sprint("tx-", i)))
		})
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				id := fmt.Sprint("tx-", next.Add(1)%benchRows)
				if _, err := st.Transactions().Get(ctx, id); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

func BenchmarkTransactionDelete(b *testing.B) {
	benchBackends(b, func(b *testing.B, st *Store) {
		ctx := b.Context()
		seed(b, st, b.N, func(tx store.Store, i int) error {
			return tx.Transactions().Create(ctx, benchTransaction(fmt.Sprint("tx-", i)))
		})
		for i := 0; i < b.N; i++ {
			if err := st.Transactions().Delete(ctx, fmt.Sprint("tx-", i)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkTokenInsert(b *testing.B) {
	benchBackends(b, func(b *testing.B, st *Store) {
		ctx := b.Context()
		for i := 0; i < b.N; i++ {
			if err := st.OAuth().CreateToken(ctx, benchToken(fmt.Sprint("sig-", i))); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkTokenLookup(b *testing.B) {
	benchBackends(b, func(b *testing.B, st *Store) {
		ctx := b.Context()
		seed(b, st, benchRows, func(tx store.Store, i int) error {
			return tx.OAuth().CreateToken(ctx, benchToken(fmt.Sprint("sig-", i)))
		})
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				sig := fmt.Sprint("sig-", next.Add(1)%benchRows)
				if _, err := st.OAuth().GetToken(ctx, store.TokenAccess, sig); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkRefreshRotation is the database part of one refresh-token
// rotation as the OpenID Provider runs it (adapters/oidc): the refresh
// token's row is read, then one batch (WriteOAuth: one transaction)
// swaps it inactive, revokes the grant's access tokens and inserts the
// new access and refresh token,
// rows of ~1.3 kB like the provider's. 64 goroutines rotate a family each,
// as the load tool's clients do. cpu-us/op is the process CPU time per
// rotation: the floor of what a rotation through HTTP can cost.
func BenchmarkRefreshRotation(b *testing.B) {
	data := json.RawMessage(`{"id":"` + strings.Repeat("r", 36) + `","requested_at":"2026-11-27T14:54:50.123Z","client_id":"bench",` +
		`"requested_scope":["openid","profile","offline_access"],"granted_scope":["openid","profile","offline_access"],"form":{},` +
		`"session":{"claims":{"given_name":"Erika","family_name":"Mustermann","birthdate":"1964-08-12"},` +
		`"x":"` + strings.Repeat("x", 900) + `"}}`)
	benchBackends(b, func(b *testing.B, st *Store) {
		ctx := b.Context()
		var family atomic.Int64
		var cpu0 syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &cpu0)
		b.SetParallelism(32)
		b.RunParallel(func(pb *testing.PB) {
			fam := fmt.Sprint("fam-", family.Add(1))
			tok := func(kind string, n int) *store.OAuthToken {
				return &store.OAuthToken{Kind: kind, Signature: fmt.Sprint(fam, "-", n), RequestID: fam, ClientID: "bench",
					Subject: "sub", Active: true, ExpiresAt: time.Now().Add(time.Hour), Data: data}
			}
			if err := st.OAuth().CreateToken(ctx, tok(store.TokenRefresh, 0)); err != nil {
				b.Error(err)
				return
			}
			for n := 0; pb.Next(); n++ {
				old := fmt.Sprint(fam, "-", n)
				if _, err := st.OAuth().GetToken(ctx, store.TokenRefresh, old); err != nil {
					b.Error(err)
					return
				}
				err := st.WriteOAuth(ctx, []store.OAuthWrite{
					{Deactivate: &store.OAuthToken{Kind: store.TokenRefresh, Signature: old}},
					{Revoke: &store.OAuthToken{Kind: store.TokenAccess, RequestID: fam}},
					{Create: tok(store.TokenAccess, n+1)},
					{Create: tok(store.TokenRefresh, n+1)},
				})
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
		var cpu1 syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &cpu1)
		used := time.Duration(syscall.TimevalToNsec(cpu1.Utime) + syscall.TimevalToNsec(cpu1.Stime) -
			syscall.TimevalToNsec(cpu0.Utime) - syscall.TimevalToNsec(cpu0.Stime))
		b.ReportMetric(float64(used.Microseconds())/float64(b.N), "cpu-us/op")
	})
}
