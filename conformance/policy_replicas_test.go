package conformance_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/trustbroker/trustbroker/broker/server"
	"github.com/trustbroker/trustbroker/broker/store/sqlstore"
	"github.com/trustbroker/trustbroker/conformance/dbtest"
	"github.com/trustbroker/trustbroker/conformance/harness"
	"github.com/trustbroker/trustbroker/policy"
	"github.com/trustbroker/trustbroker/policy/casbin"
)

// TestPolicyReachesEveryReplica: a rule stored through one replica is in
// force on another without a restart: by NOTIFY on PostgreSQL (the poll
// interval is an hour there, so only the notification can deliver it in
// time), by polling the revision on SQLite.
func TestPolicyReachesEveryReplica(t *testing.T) {
	for _, b := range dbtest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			dsn := b.DSN(t)
			interval := "1h"
			if b.Name == "sqlite" {
				interval = "100ms"
			}
			yaml := "policy:\n  engine: casbin\n  reload_interval: " + interval + "\n"
			// The running broker is the replica that must notice; the
			// writer is another process's store on the same database.
			two := harness.Start(t, yaml, dsn, harness.Options{})
			writer, err := sqlstore.Open(context.Background(), dsn, sqlstore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { writer.Close() })
			req := policy.Request{Subject: policy.Subject{AccountID: "42"}, Resource: "svc", Action: "GET"}
			if d, _ := two.Server.Policy.Decide(context.Background(), req); d.Effect != policy.Deny {
				t.Fatalf("before: %+v", d)
			}
			rule := casbin.Rule{ID: "svc-42", Subjects: []string{"account:42"}, Objects: []string{"svc"}, Actions: []string{"GET"}, Effect: "allow"}
			if err := server.PolicyAdapter(writer, two.Config).AddPolicyCtx(context.Background(), "p", "p", rule.Line()); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(15 * time.Second)
			for {
				d, err := two.Server.Policy.Decide(context.Background(), req)
				if err != nil {
					t.Fatal(err)
				}
				if d.Effect == policy.Allow && d.Rule == "svc-42" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the other replica still answers %+v", d)
				}
				time.Sleep(20 * time.Millisecond)
			}
			// An invalid line written behind the adapter's back is refused
			// at reload: the rules in force stay.
			if err := writer.PolicyAdapter(nil).AddPolicyCtx(context.Background(), "p", "p",
				[]string{"broken", "1", "*", "svc", "GET", "", "", "", "always", "", "", "allow"}); err != nil {
				t.Fatal(err)
			}
			if err := two.Server.Policy.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "rule broken") {
				t.Errorf("reload with an invalid stored rule: %v", err)
			}
			if d, _ := two.Server.Policy.Decide(context.Background(), req); d.Rule != "svc-42" {
				t.Errorf("after a failed reload: %+v", d)
			}
		})
	}
}
