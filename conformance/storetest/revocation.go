package storetest

import (
	"bytes"
	"testing"
	"time"

	"github.com/trustbroker/trustbroker/broker/store"
)

func testRevocations(t *testing.T, open Opener) {
	t.Run("PutGetExpire", func(t *testing.T) {
		e := setup(t, open)
		rc := e.st.Revocations()
		_, err := rc.Get(e.ctx, "ocsp:a")
		wantErr(t, err, store.ErrNotFound)
		wantSomeErr(t, rc.Put(e.ctx, &store.RevocationEntry{Key: "ocsp:a", Data: []byte{1}}), "Put without expiry")
		wantSomeErr(t, rc.Put(e.ctx, &store.RevocationEntry{Key: "ocsp:a", ExpiresAt: e.now().Add(time.Hour)}), "Put without data")

		must(t, rc.Put(e.ctx, &store.RevocationEntry{Key: "ocsp:a", Data: []byte{0x30, 1, 2}, ExpiresAt: e.now().Add(time.Hour)}))
		got, err := rc.Get(e.ctx, "ocsp:a")
		must(t, err)
		if !bytes.Equal(got.Data, []byte{0x30, 1, 2}) || !got.FetchedAt.Equal(e.now()) || !got.ExpiresAt.Equal(e.now().Add(time.Hour)) {
			t.Fatalf("got %+v", got)
		}
		// Put replaces: a newer answer wins.
		must(t, rc.Put(e.ctx, &store.RevocationEntry{Key: "ocsp:a", Data: []byte{0x30, 9}, ExpiresAt: e.now().Add(2 * time.Hour)}))
		got, err = rc.Get(e.ctx, "ocsp:a")
		must(t, err)
		equal(t, "replaced data", got.Data, []byte{0x30, 9})

		e.clock.Advance(2 * time.Hour) // expired: not found, and GC removes it
		_, err = rc.Get(e.ctx, "ocsp:a")
		wantErr(t, err, store.ErrNotFound)
		res, err := e.st.GC(e.ctx, e.now())
		must(t, err)
		equal(t, "GC count of revocation_cache", res["revocation_cache"], int64(1))
	})

	t.Run("ConcurrentPut", func(t *testing.T) {
		e := setup(t, open)
		errs := parallel(writers, func(i int) error {
			return e.st.Revocations().Put(e.ctx, &store.RevocationEntry{Key: "crl:x", Data: []byte{byte(i + 1)}, ExpiresAt: e.now().Add(time.Hour)})
		})
		for _, err := range errs {
			must(t, err)
		}
		got, err := e.st.Revocations().Get(e.ctx, "crl:x")
		must(t, err)
		equal(t, "one value", len(got.Data), 1)
	})
}
