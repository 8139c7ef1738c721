package config

import (
	"strings"
	"testing"
)

const policyBase = `
relying_parties:
  - id: records
    name: {en: Records}
    protocol: gate
    accepted_credentials: [smartcard]
    claims:
      - {name: given_name, purpose: {en: greeting}}
policy:
  engine: casbin
  networks:
    - {name: office, trust: trusted, cidrs: [192.0.2.0/24]}
  sites:
    - {name: hq, cidrs: [192.0.2.0/25]}
  roles:
    - {attribute: profession_oid, values: ["1.2.276.0.76.4.30"], role: physician}
  role_assignments:
    - {member: "account:1", role: physician}
  rules:
    - {id: r1, subjects: [physician], objects: [records], actions: [login, GET], zones: [office], sites: [hq], effect: allow}
gate:
  proxies: [127.0.0.1]
  services:
    - id: records
      hosts: [records.example]
      headers: {subject: X-User}
      attributes: {given_name: X-Given-Name}
`

func TestPolicyConfigValid(t *testing.T) {
	c, err := Parse([]byte(policyBase), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Policy.Engine != PolicyCasbin || c.Policy.Networks[0].Trust != "trusted" || c.Policy.ReloadInterval <= 0 || c.Gate.Audit != "all" {
		t.Errorf("defaults: %+v %+v", c.Policy, c.Gate)
	}
	if zs := c.Policy.Zones(); len(zs) != 1 || zs[0].Trust != "trusted" {
		t.Errorf("zones: %+v", zs)
	}
}

func TestPolicyDefaults(t *testing.T) {
	c, err := Parse([]byte("policy:\n  networks:\n    - {name: n, cidrs: [10.0.0.0/8]}\n"), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Policy.Engine != PolicyPassThrough || c.Policy.Networks[0].Trust != "untrusted" {
		t.Errorf("engine %q, trust %q", c.Policy.Engine, c.Policy.Networks[0].Trust)
	}
}

func TestPolicyConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		from, to, want string
	}{
		{"engine: casbin", "engine: opa", "policy.engine"},
		{"trust: trusted", "trust: very", "policy.networks[0].trust"},
		{"{name: hq, cidrs: [192.0.2.0/25]}", "{name: hq, cidrs: [192.0.2.0/33]}", "policy.sites[0].cidrs[0]"},
		{"{name: hq, cidrs: [192.0.2.0/25]}", "{name: hq, trust: trusted, cidrs: [192.0.2.0/25]}", "policy.sites[0].trust"},
		{"role: physician}\n  role_assignments", "role: ''}\n  role_assignments", "policy.roles[0].role"},
		{`member: "account:1"`, `member: "a b"`, "policy.role_assignments[0].member"},
		{"zones: [office]", "zones: [lab]", "policy.rules[0]: rule r1: zone \"lab\""},
		{"sites: [hq]", "sites: [paris]", "rule r1: site \"paris\""},
		{"effect: allow}", "effect: allow, hours: sometimes}", "rule r1: hours"},
		{"effect: allow}", "effect: maybe}", "rule r1: effect"},
		{"proxies: [127.0.0.1]", "proxies: [localhost]", "gate.proxies[0]"},
		{"proxies: [127.0.0.1]\n", "proxies: []\n", "gate.proxies"},
		{"hosts: [records.example]", "hosts: [\"records.example/path\"]", "gate.services[0].hosts[0]"},
		{"subject: X-User", "subject: \"X User\"", "gate.services[0].headers.subject"},
		{"given_name: X-Given-Name", "birthdate: X-Birthdate", "does not register the claim"},
		{"    - id: records\n      hosts", "    - id: other\n      hosts", "gate.services[0].id"},
		{"protocol: gate", "protocol: gopher", "use oidc, saml or gate"},
	} {
		text := strings.Replace(policyBase, tc.from, tc.to, 1)
		if text == policyBase {
			t.Fatalf("%q not in the base config", tc.from)
		}
		_, err := Parse([]byte(text), "t.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s -> %s: error %v, want %q", tc.from, tc.to, err, tc.want)
		}
	}
	// A duplicate rule id.
	dup := strings.Replace(policyBase, "  rules:\n", "  rules:\n    - {id: r1, subjects: ['*'], objects: [x], actions: [login], effect: deny}\n", 1)
	if _, err := Parse([]byte(dup), "t.yaml"); err == nil || !strings.Contains(err.Error(), "rule r1: id used twice") {
		t.Errorf("duplicate id: %v", err)
	}
	// A gate relying party without a service.
	orphan := strings.Replace(policyBase, "gate:\n", "gate_unused:\n", 1)
	if _, err := Parse([]byte(orphan), "t.yaml"); err == nil {
		t.Error("unknown key accepted")
	}
}
