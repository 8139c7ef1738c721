package sqlstore

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	casbinv2 "github.com/casbin/casbin/v2"
	"github.com/casbin/casbin/v2/model"

	"github.com/trustbroker/trustbroker/broker/store"
)

// A small Casbin model of the same shape as the engine's, to show the
// adapter works under Casbin's own enforcer.
const testModel = `
[request_definition]
r = sub, obj, act
[policy_definition]
p = id, sub, obj, act, eft
[role_definition]
g = _, _
[policy_effect]
e = priority(p.eft) || deny
[matchers]
m = g(r.sub, p.sub) && r.obj == p.obj && r.act == p.act
`

func TestPolicyAdapter(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		st := openStore(t, b.newDSN(t), nil)
		a := st.PolicyAdapter(func(ptype string, rule []string) error {
			if ptype == "p" && rule[0] == "invalid" {
				return errors.New("rule invalid: refused")
			}
			return nil
		})
		rev0, err := a.Revision(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range [][]string{{"r1", "role:a", "svc", "GET", "allow"}, {"r2", "role:b", "svc", "GET", "deny"}} {
			if err := a.AddPolicyCtx(ctx, "p", "p", l); err != nil {
				t.Fatal(err)
			}
		}
		if err := a.AddPolicy("g", "g", []string{"alice", "role:a"}); err != nil {
			t.Fatal(err)
		}
		if err := a.AddPolicy("p", "p", []string{"r1", "x", "y", "z", "allow"}); !errors.Is(err, store.ErrConflict) {
			t.Errorf("duplicate rule id: %v, want ErrConflict", err)
		}
		if err := a.AddPolicy("g", "g", []string{"alice", "role:a"}); !errors.Is(err, store.ErrConflict) {
			t.Errorf("duplicate assignment: %v, want ErrConflict", err)
		}
		if err := a.AddPolicy("p", "p", []string{"invalid", "x"}); err == nil || !strings.Contains(err.Error(), "rule invalid") {
			t.Errorf("invalid rule: %v", err)
		}
		if err := a.AddPolicy("x", "x", []string{"a"}); err == nil {
			t.Error("unknown line type accepted")
		}
		if err := a.AddPolicy("p", "p", make([]string, 13)); err == nil {
			t.Error("overlong line accepted")
		}
		p, g, rev, err := a.LoadRules(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if rev != rev0+3 || len(p) != 2 || p[0][0] != "r1" || p[1][0] != "r2" || len(p[0]) != policyValues ||
			len(g) != 1 || !slices.Equal(g[0], []string{"alice", "role:a"}) {
			t.Fatalf("LoadRules = %v %v %d", p, g, rev)
		}

		// Casbin's own enforcer over the adapter.
		m, err := model.NewModelFromString(testModel)
		if err != nil {
			t.Fatal(err)
		}
		e, err := casbinv2.NewEnforcer(m, a)
		if err != nil {
			t.Fatal(err)
		}
		if ok, _ := e.Enforce("alice", "svc", "GET"); !ok {
			t.Error("alice holds role:a through the stored assignment")
		}
		if ok, _ := e.Enforce("bob", "svc", "GET"); ok {
			t.Error("bob holds no role")
		}
		// Auto-save through the enforcer.
		if _, err := e.AddPolicy("r3", "role:c", "svc", "POST", "allow"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.RemovePolicy("r2", "role:b", "svc", "GET", "deny"); err != nil {
			t.Fatal(err)
		}
		p, _, _, _ = a.LoadRules(ctx)
		if len(p) != 2 || p[0][0] != "r1" || p[1][0] != "r3" {
			t.Fatalf("after enforcer writes: %v", p)
		}
		if err := a.RemovePolicyCtx(ctx, "p", "p", []string{"r2", "role:b", "svc", "GET", "deny"}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("removing a missing line: %v", err)
		}
		if err := a.RemoveFilteredPolicyCtx(ctx, "p", "p", 2, "svc"); err != nil {
			t.Fatal(err)
		}
		p, g, _, _ = a.LoadRules(ctx)
		if len(p) != 0 || len(g) != 1 {
			t.Fatalf("after filtered remove: %v %v", p, g)
		}
		// SavePolicy replaces everything with the enforcer's model.
		e.ClearPolicy()
		if _, err := e.AddPolicy("only", "role:z", "svc", "GET", "allow"); err != nil {
			t.Fatal(err)
		}
		if err := e.SavePolicy(); err != nil {
			t.Fatal(err)
		}
		p, g, _, _ = a.LoadRules(ctx)
		if len(p) != 1 || p[0][0] != "only" || len(g) != 0 {
			t.Fatalf("after save: %v %v", p, g)
		}
		if rev2, _ := a.Revision(ctx); rev2 <= rev {
			t.Errorf("revision did not increase: %d -> %d", rev, rev2)
		}
	})
}

// TestPolicyNotify: a write through one store reaches a listener on
// another store of the same database (another replica), on PostgreSQL.
func TestPolicyNotify(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		dsn := b.newDSN(t)
		writer := openStore(t, dsn, nil)
		reader := openStore(t, dsn, nil)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		ch := reader.ListenPolicy(ctx)
		if b.name == DialectSQLite {
			if ch != nil {
				t.Fatal("SQLite has no notifications: replicas poll")
			}
			return
		}
		// The listener signals once when it is listening.
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatal("listener did not start")
		}
		if err := writer.PolicyAdapter(nil).AddPolicyCtx(t.Context(), "p", "p", []string{"n1", "x"}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatal("no notification for a policy write")
		}
		cancel()
		for range ch { // closes when the listener stops
		}
	})
}
