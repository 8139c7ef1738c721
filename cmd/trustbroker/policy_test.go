package main

import (
	"strings"
	"testing"

	"github.com/trustbroker/trustbroker/conformance/dbtest"
)

const policyCmdYAML = `
keys: {rsa_bits: 2048}
policy:
  engine: casbin
  time_zone: Europe/Berlin
  networks:
    - {name: hospital, trust: trusted, cidrs: [10.10.0.0/16, "2001:db8:10::/48"]}
  roles:
    - {attribute: profession_oid, values: ["1.2.276.0.76.4.30"], role: physician}
  rules:
    - id: records-hospital
      subjects: [role:physician]
      objects: [records]
      actions: [login, GET]
      zones: [hospital]
      hours: Mon-Fri 07:00-19:00
      min_loa: high
      credentials: [smartcard]
      effect: allow
`

// TestPolicyCommands: what-if answers, and stored rules that the what-if
// then sees, on both backends.
func TestPolicyCommands(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		env := map[string]string{
			"TRUSTBROKER_DATABASE_DSN": dsn,
			"TRUSTBROKER_MASTER_KEY":   "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
		}
		cfg := writeFile(t, "p.yaml", policyCmdYAML)
		physician := []string{"policy", "test", "--config", cfg, "--attr", "profession_oid=1.2.276.0.76.4.30", "--object", "records"}
		for _, tc := range []struct {
			args []string
			want []string
		}{
			{[]string{"--ip", "10.10.3.4", "--time", "2026-03-02T10:00:00+01:00", "--loa", "high", "--credential", "smartcard"},
				[]string{"decision:  allow", "rule:      records-hospital", "zone hospital (trusted)"}},
			{[]string{"--ip", "2001:db8:10::9", "--time", "2026-03-02T10:00:00+01:00", "--loa", "substantial", "--credential", "smartcard"},
				[]string{"decision:    step_up", "step-up to:  level high with smartcard"}},
			{[]string{"--ip", "203.0.113.4", "--time", "2026-03-02T10:00:00+01:00", "--loa", "high", "--credential", "smartcard"},
				[]string{"decision:   deny", "default-deny", "Access is not permitted from this network."}},
			{[]string{"--ip", "10.10.3.4", "--time", "2026-03-02T19:00:00+01:00", "--loa", "high", "--credential", "smartcard"},
				[]string{"decision:   deny", "outside the permitted hours"}},
		} {
			code, out, errOut := runCmd(t, env, append(physician, tc.args...)...)
			for _, w := range tc.want {
				if code != 0 || !strings.Contains(out, w) {
					t.Errorf("policy test %v: %d, want %q in\n%s%s", tc.args, code, w, out, errOut)
				}
			}
		}
		// A stored rule before the configured one, and a stored role.
		code, out, errOut := runCmd(t, env, "policy", "add", "--config", cfg, "--id", "block-42", "--priority", "10",
			"--subjects", "account:42", "--objects", "records", "--actions", "*", "--effect", "deny")
		if code != 0 || !strings.Contains(out, "stored rule block-42") {
			t.Fatalf("policy add: %d %s %s", code, out, errOut)
		}
		if code, out, errOut = runCmd(t, env, "policy", "assign", "--config", cfg, "account:7", "role:physician"); code != 0 {
			t.Fatalf("policy assign: %d %s %s", code, out, errOut)
		}
		code, out, _ = runCmd(t, env, "policy", "test", "--config", cfg, "--subject", "42", "--attr", "profession_oid=1.2.276.0.76.4.30",
			"--object", "records", "--ip", "10.10.3.4", "--time", "2026-03-02T10:00:00+01:00", "--loa", "high", "--credential", "smartcard")
		if code != 0 || !strings.Contains(out, "rule:       block-42") {
			t.Errorf("stored deny rule not applied: %d\n%s", code, out)
		}
		code, out, _ = runCmd(t, env, "policy", "test", "--config", cfg, "--subject", "7", "--object", "records", "--ip", "10.10.3.4",
			"--time", "2026-03-02T10:00:00+01:00", "--loa", "high", "--credential", "smartcard")
		if code != 0 || !strings.Contains(out, "decision:  allow") || !strings.Contains(out, "account:7 role:physician") {
			t.Errorf("stored role assignment not applied: %d\n%s", code, out)
		}
		code, out, _ = runCmd(t, env, "policy", "list", "--config", cfg)
		if code != 0 || !strings.Contains(out, "block-42") || !strings.Contains(out, "store") || !strings.Contains(out, "records-hospital") ||
			!strings.Contains(out, "account:7 holds role:physician") {
			t.Errorf("policy list: %d\n%s", code, out)
		}
		// Invalid rules are refused with a message naming the rule (exit 2).
		code, _, errOut = runCmd(t, env, "policy", "add", "--config", cfg, "--id", "bad-hours", "--subjects", "*",
			"--objects", "records", "--actions", "login", "--hours", "always", "--effect", "allow")
		if code != 2 || !strings.Contains(errOut, "rule bad-hours") {
			t.Errorf("invalid rule: %d %s", code, errOut)
		}
		if code, out, errOut = runCmd(t, env, "policy", "remove", "--config", cfg, "block-42"); code != 0 {
			t.Errorf("policy remove: %d %s %s", code, out, errOut)
		}
		if code, _, _ = runCmd(t, env, "policy", "remove", "--config", cfg, "records-hospital"); code == 0 {
			t.Error("a configured rule cannot be removed from the store")
		}
		if code, _, _ = runCmd(t, env, "policy"); code != 2 {
			t.Errorf("policy without a command: %d", code)
		}
	})
}
