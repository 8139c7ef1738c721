package storetest

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/trustbroker/trustbroker/broker/store"
)

func testSessions(t *testing.T, open Opener) {
	t.Run("CreateGetDelete", func(t *testing.T) {
		e := setup(t, open)
		sessions := e.st.Sessions()
		e.account("acc-1")
		s := e.session("sess-1", "acc-1")
		equal(t, "defaulted CreatedAt", s.CreatedAt, e.now())
		got, err := sessions.Get(e.ctx, "sess-1")
		must(t, err)
		equal(t, "Get", got, s)

		wantErr(t, sessions.Create(e.ctx, &store.Session{ID: "sess-1", AccountID: "acc-1", ExpiresAt: e.now().Add(time.Hour)}), store.ErrConflict)
		wantErr(t, sessions.Create(e.ctx, &store.Session{ID: "sess-2", AccountID: "acc-missing", ExpiresAt: e.now().Add(time.Hour)}), store.ErrNotFound)
		wantSomeErr(t, sessions.Create(e.ctx, &store.Session{ID: "sess-3", AccountID: "acc-1"}), "Create without ExpiresAt")

		must(t, sessions.Delete(e.ctx, "sess-1"))
		_, err = sessions.Get(e.ctx, "sess-1")
		wantErr(t, err, store.ErrNotFound)
		wantErr(t, sessions.Delete(e.ctx, "sess-1"), store.ErrNotFound)
	})

	t.Run("Expiry", func(t *testing.T) {
		e := setup(t, open)
		sessions := e.st.Sessions()
		e.account("acc-1")
		s := e.session("sess-1", "acc-1")
		e.clock.Advance(time.Hour - time.Microsecond)
		_, err := sessions.Get(e.ctx, "sess-1")
		must(t, err)
		e.clock.Advance(time.Microsecond) // now == ExpiresAt
		_, err = sessions.Get(e.ctx, s.ID)
		wantErr(t, err, store.ErrNotFound)
		_, err = sessions.Update(e.ctx, s.ID, func(*store.Session) error { return nil })
		wantErr(t, err, store.ErrNotFound)
		list, err := sessions.ListByAccount(e.ctx, "acc-1")
		must(t, err)
		equal(t, "ListByAccount after expiry", len(list), 0)
	})

	t.Run("Update", func(t *testing.T) {
		e := setup(t, open)
		sessions := e.st.Sessions()
		e.account("acc-1")
		s := e.session("sess-1", "acc-1")
		e.clock.Advance(time.Minute)
		got, err := sessions.Update(e.ctx, "sess-1", func(s *store.Session) error {
			s.RelyingParties = append(s.RelyingParties, "rp-2")
			s.LastSeenAt = e.now()
			s.ExpiresAt = e.now().Add(2 * time.Hour) // sliding expiry
			s.Identity = json.RawMessage(`{"provider_id":"webauthn"}`)
			s.ID = "sess-hijacked"
			return nil
		})
		must(t, err)
		want := *s
		want.RelyingParties = []string{"rp-1", "rp-2"}
		want.LastSeenAt, want.ExpiresAt = e.now(), e.now().Add(2*time.Hour)
		want.Identity = json.RawMessage(`{"provider_id":"webauthn"}`)
		equal(t, "Update result", *got, want)
		e.clock.Advance(90 * time.Minute) // past the original expiry
		stored, err := sessions.Get(e.ctx, "sess-1")
		must(t, err)
		equal(t, "stored after Update", *stored, want)

		_, err = sessions.Update(e.ctx, "sess-1", func(s *store.Session) error {
			s.LoA = "lost"
			return errBoom
		})
		wantErr(t, err, errBoom)
		stored, err = sessions.Get(e.ctx, "sess-1")
		must(t, err)
		equal(t, "stored after failed Update", *stored, want)
		_, err = sessions.Update(e.ctx, "sess-missing", func(*store.Session) error { return nil })
		wantErr(t, err, store.ErrNotFound)
	})

	t.Run("ConcurrentUpdate", func(t *testing.T) {
		e := setup(t, open)
		sessions := e.st.Sessions()
		e.account("acc-1")
		e.session("sess-1", "acc-1")
		errs := parallel(writers, func(w int) error {
			for i := range updatesPerWriter {
				_, err := sessions.Update(e.ctx, "sess-1", func(s *store.Session) error {
					s.RelyingParties = append(s.RelyingParties, fmt.Sprintf("rp-%d-%d", w, i))
					return nil
				})
				if err != nil {
					return err
				}
			}
			return nil
		})
		for _, err := range errs {
			must(t, err)
		}
		got, err := sessions.Get(e.ctx, "sess-1")
		must(t, err)
		rps := slices.Compact(slices.Sorted(slices.Values(got.RelyingParties)))
		equal(t, "distinct relying parties", len(rps), 1+writers*updatesPerWriter)
	})

	t.Run("ListDeleteByAccount", func(t *testing.T) {
		e := setup(t, open)
		sessions := e.st.Sessions()
		e.account("acc-1")
		e.account("acc-2")
		var want []store.Session
		for _, id := range []string{"sess-c", "sess-a", "sess-b"} {
			want = append(want, *e.session(id, "acc-1"))
			e.clock.Advance(time.Second)
		}
		other := e.session("sess-other", "acc-2")

		got, err := sessions.ListByAccount(e.ctx, "acc-1")
		must(t, err)
		equal(t, "ListByAccount (oldest first)", got, want)

		n, err := sessions.DeleteByAccount(e.ctx, "acc-1")
		must(t, err)
		equal(t, "DeleteByAccount count", n, int64(3))
		got, err = sessions.ListByAccount(e.ctx, "acc-1")
		must(t, err)
		equal(t, "ListByAccount after DeleteByAccount", len(got), 0)
		left, err := sessions.Get(e.ctx, "sess-other")
		must(t, err)
		equal(t, "other account's session", left, other)
		n, err = sessions.DeleteByAccount(e.ctx, "acc-1")
		must(t, err)
		equal(t, "second DeleteByAccount count", n, int64(0))
	})
}
