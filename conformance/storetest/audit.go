package storetest

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/trustbroker/trustbroker/broker/store"
)

func testAudit(t *testing.T, open Opener) {
	t.Run("AppendList", func(t *testing.T) {
		e := setup(t, open)
		audit := e.st.Audit()
		evs := []*store.AuditEvent{
			{Actor: "acc-1", Action: "login.start", Target: "rp-1", Outcome: store.OutcomeSuccess, RequestID: "req-1"},
			{Actor: "acc-1", Action: "consent.grant", Target: "rp-2", Outcome: store.OutcomeSuccess,
				Details: json.RawMessage(`{"attributes":["given_name"]}`)},
			{Actor: "system", Action: "login.start", Target: "rp-1", Outcome: store.OutcomeDenied, Reason: "policy: outside office hours"},
		}
		var lastSeq int64
		for _, ev := range evs {
			must(t, audit.Append(e.ctx, ev))
			if ev.Seq <= lastSeq {
				t.Fatalf("Seq %d after %d: not increasing", ev.Seq, lastSeq)
			}
			lastSeq = ev.Seq
			equal(t, "defaulted Time", ev.Time, e.now())
			e.clock.Advance(time.Minute)
		}
		all := []store.AuditEvent{*evs[0], *evs[1], *evs[2]}

		for _, tc := range []struct {
			name string
			f    store.AuditFilter
			want []store.AuditEvent
		}{
			{"all", store.AuditFilter{}, all},
			{"actor", store.AuditFilter{Actor: "acc-1"}, all[:2]},
			{"action", store.AuditFilter{Action: "login.start"}, []store.AuditEvent{all[0], all[2]}},
			{"target", store.AuditFilter{Target: "rp-2"}, all[1:2]},
			{"after seq", store.AuditFilter{AfterSeq: evs[0].Seq}, all[1:]},
			{"since (inclusive)", store.AuditFilter{Since: evs[1].Time}, all[1:]},
			{"combined", store.AuditFilter{Actor: "acc-1", Action: "login.start", Target: "rp-1"}, all[:1]},
			{"limit", store.AuditFilter{Limit: 2}, all[:2]},
			{"no match", store.AuditFilter{Actor: "nobody"}, nil},
		} {
			got, err := audit.List(e.ctx, tc.f)
			must(t, err)
			if len(got) == 0 && len(tc.want) == 0 {
				continue
			}
			equal(t, "List "+tc.name, got, tc.want)
		}
	})

	t.Run("ListLimits", func(t *testing.T) {
		e := setup(t, open)
		const n = 1005
		must(t, e.st.InTx(e.ctx, func(tx store.Store) error {
			for i := range n {
				if err := tx.Audit().Append(e.ctx, &store.AuditEvent{Actor: "system", Action: fmt.Sprintf("test.%d", i)}); err != nil {
					return err
				}
			}
			return nil
		}))
		for _, tc := range []struct{ limit, want int }{{0, 100}, {-1, 100}, {7, 7}, {1000, 1000}, {5000, 1000}} {
			got, err := e.st.Audit().List(e.ctx, store.AuditFilter{Limit: tc.limit})
			must(t, err)
			equal(t, fmt.Sprintf("events listed with Limit %d", tc.limit), len(got), tc.want)
			equal(t, "first event", got[0].Action, "test.0")
		}
	})
}
