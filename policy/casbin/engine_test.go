package casbin

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/trustbroker/trustbroker/broker/loa"
	"github.com/trustbroker/trustbroker/policy"
	"github.com/trustbroker/trustbroker/policy/location"
)

// The Trusted Cloud scenarios: a hospital network, a company's offices and
// VPN, and the open internet.
var scenarioZones = []location.Zone{
	{Name: "hospital", Trust: policy.TrustTrusted, CIDRs: []string{"10.10.0.0/16", "2001:db8:10::/48"}},
	{Name: "office", Trust: policy.TrustTrusted, CIDRs: []string{"192.0.2.0/24"}},
	{Name: "vpn", Trust: policy.TrustSemiTrusted, CIDRs: []string{"198.51.100.0/24"}},
}

var scenarioSites = []location.Site{{Name: "berlin-hq", CIDRs: []string{"192.0.2.0/25"}}}

const (
	oidPhysician  = "1.2.276.0.76.4.30"
	oidPharmacist = "1.2.276.0.76.4.32"
)

var scenarioRules = []Rule{
	// Sensitive data never over an untrusted network: first, so that no
	// later allow can override it.
	{ID: "sensitive-untrusted", Priority: 10, Subjects: []string{"*"}, Objects: []string{"records", "finance"},
		Actions: []string{"*"}, Zones: []string{"trust=untrusted"}, Effect: "deny"},
	// Patient records only from the hospital network with a
	// health-professional card.
	{ID: "records-physicians", Subjects: []string{"role:physician", "role:pharmacist"}, Objects: []string{"records"},
		Actions: []string{"login", "GET", "POST"}, Zones: []string{"hospital"}, MinLoA: "high",
		Credentials: []string{"smartcard", "hardware"}, Effect: "allow"},
	{ID: "records-pharmacist-read", Priority: 50, Subjects: []string{"role:pharmacist"}, Objects: []string{"records/prescriptions/*"},
		Actions: []string{"GET"}, Zones: []string{"hospital"}, Effect: "allow"},
	// Company data only from the offices during business hours.
	{ID: "finance-office-hours", Subjects: []string{"role:org:ACME"}, Objects: []string{"finance"},
		Actions: []string{"*"}, Zones: []string{"office"}, Hours: "Mon-Fri 07:00-19:00 Europe/Berlin",
		MinLoA: "substantial", Effect: "allow"},
	// The intranet from anywhere trusted or semi-trusted.
	{ID: "intranet", Subjects: []string{"role:org:ACME"}, Objects: []string{"intranet"}, Actions: []string{"*"},
		Zones: []string{"trust>=semi-trusted"}, Effect: "allow"},
	{ID: "hq-only", Subjects: []string{"*"}, Objects: []string{"hq-*"}, Actions: []string{"login"}, Sites: []string{"berlin-hq"}, Effect: "allow"},
	{ID: "de-only", Subjects: []string{"*"}, Objects: []string{"citizen"}, Actions: []string{"login"}, Countries: []string{"DE", "AT"}, Effect: "allow"},
	{ID: "blocked-account", Priority: 1, Subjects: []string{"account:blocked"}, Objects: []string{"*"}, Actions: []string{"*"}, Effect: "deny"},
}

var scenarioRoles = []RoleMapping{
	{Attribute: "profession_oid", Values: []string{oidPhysician}, Role: "physician"},
	{Attribute: "profession_oid", Values: []string{oidPharmacist}, Role: "pharmacist"},
	{Attribute: "organization", Role: "org:{value}"},
}

func scenarioEngine(t testing.TB) (*Engine, *location.Locator) {
	t.Helper()
	loc, err := location.New(scenarioZones, scenarioSites, "")
	if err != nil {
		t.Fatal(err)
	}
	names := Names{Zones: map[string]bool{}, Sites: map[string]bool{}}
	for _, z := range scenarioZones {
		names.Zones[z.Name] = true
	}
	for _, s := range scenarioSites {
		names.Sites[s.Name] = true
	}
	e, err := New(context.Background(), Options{
		Rules: scenarioRules, Roles: scenarioRoles, Names: names, TimeZone: mustLoc(t, "Europe/Berlin"),
		Grouping: [][2]string{{"account:chief", "role:physician"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return e, loc
}

// berlin returns a time in Europe/Berlin.
func berlin(t testing.TB, s string) time.Time {
	tm, err := time.ParseInLocation("2006-01-02 15:04", s, mustLoc(t, "Europe/Berlin"))
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

type scenario struct {
	name     string
	account  string
	attrs    map[string]any
	object   string
	path     string
	action   string
	ip       string
	at       string // Berlin wall clock
	level    loa.Level
	kind     string
	hwk      bool
	country  string
	effect   policy.Effect
	rule     string
	public   string
	reqLoA   loa.Level
	reqKinds string
}

func TestScenarios(t *testing.T) {
	e, loc := scenarioEngine(t)
	physician := map[string]any{"profession_oid": oidPhysician}
	pharmacist := map[string]any{"profession_oid": []any{oidPharmacist}}
	acme := map[string]any{"organization": "ACME"}
	const monday, saturday = "2026-03-02 10:00", "2026-03-07 10:00"
	for _, tc := range []scenario{
		// Patient records.
		{name: "physician, hospital, HBA", attrs: physician, object: "records", action: "login", ip: "10.10.1.2", at: monday,
			level: loa.High, kind: "smartcard", hwk: true, effect: policy.Allow, rule: "records-physicians"},
		{name: "physician, hospital IPv6, HBA", attrs: physician, object: "records", action: "GET", path: "/patients/1",
			ip: "2001:db8:10::7", at: monday, level: loa.High, kind: "smartcard", hwk: true, effect: policy.Allow, rule: "records-physicians"},
		{name: "physician, hospital IPv4-mapped IPv6", attrs: physician, object: "records", action: "GET", ip: "::ffff:10.10.1.2",
			at: saturday, level: loa.High, kind: "smartcard", hwk: true, effect: policy.Allow, rule: "records-physicians"},
		{name: "physician, hospital, eID: step-up to the card", attrs: physician, object: "records", action: "login", ip: "10.10.1.2",
			at: monday, level: loa.High, kind: "eid", hwk: true, effect: policy.StepUp, rule: "records-physicians",
			public: policy.ReasonCredential, reqLoA: loa.High, reqKinds: "smartcard"},
		{name: "physician, hospital, substantial: step-up", attrs: physician, object: "records", action: "login", ip: "10.10.1.2",
			at: monday, level: loa.Substantial, kind: "smartcard", hwk: true, effect: policy.StepUp, rule: "records-physicians",
			public: policy.ReasonLoA, reqLoA: loa.High, reqKinds: "smartcard"},
		{name: "physician from the internet: never", attrs: physician, object: "records", action: "login", ip: "203.0.113.9",
			at: monday, level: loa.High, kind: "smartcard", hwk: true, effect: policy.Deny, rule: "sensitive-untrusted", public: policy.ReasonNetwork},
		{name: "physician from the office: not the hospital", attrs: physician, object: "records", action: "login", ip: "192.0.2.10",
			at: monday, level: loa.High, kind: "smartcard", hwk: true, effect: policy.Deny, rule: RuleDefault, public: policy.ReasonNetwork},
		{name: "no profession", attrs: acme, object: "records", action: "login", ip: "10.10.1.2",
			at: monday, level: loa.High, kind: "smartcard", hwk: true, effect: policy.Deny, rule: RuleDefault, public: policy.ReasonNoAccess},
		{name: "role by assignment", account: "chief", object: "records", action: "login", ip: "10.10.1.2",
			at: monday, level: loa.High, kind: "smartcard", hwk: true, effect: policy.Allow, rule: "records-physicians"},
		{name: "pharmacist reads prescriptions without the card (an earlier rule)", attrs: pharmacist, object: "records",
			path: "/prescriptions/9", action: "GET", ip: "10.10.1.2", at: monday, level: loa.Substantial, kind: "eid",
			effect: policy.Allow, rule: "records-pharmacist-read"},
		{name: "pharmacist other path: step-up", attrs: pharmacist, object: "records", path: "/patients/9", action: "GET",
			ip: "10.10.1.2", at: monday, level: loa.Substantial, kind: "eid", effect: policy.StepUp, rule: "records-physicians",
			public: policy.ReasonCredential, reqLoA: loa.High, reqKinds: "smartcard"},
		{name: "pharmacist may not delete prescriptions", attrs: pharmacist, object: "records", path: "/prescriptions/9",
			action: "DELETE", ip: "10.10.1.2", at: monday, level: loa.Substantial, kind: "eid", effect: policy.Deny, rule: RuleDefault, public: policy.ReasonNoAccess},
		{name: "physician DELETE: action not granted", attrs: physician, object: "records", action: "DELETE", ip: "10.10.1.2",
			at: monday, level: loa.High, kind: "smartcard", hwk: true, effect: policy.Deny, rule: RuleDefault, public: policy.ReasonNoAccess},
		// Company data.
		{name: "employee, office, business hours", attrs: acme, object: "finance", action: "GET", ip: "192.0.2.10", at: monday,
			level: loa.Substantial, kind: "smartcard", effect: policy.Allow, rule: "finance-office-hours"},
		{name: "employee, office, 06:59", attrs: acme, object: "finance", action: "GET", ip: "192.0.2.10", at: "2026-03-02 06:59",
			level: loa.Substantial, kind: "smartcard", effect: policy.Deny, rule: RuleDefault, public: policy.ReasonHours},
		{name: "employee, office, 19:00", attrs: acme, object: "finance", action: "GET", ip: "192.0.2.10", at: "2026-03-02 19:00",
			level: loa.Substantial, kind: "smartcard", effect: policy.Deny, rule: RuleDefault, public: policy.ReasonHours},
		{name: "employee, office, saturday", attrs: acme, object: "finance", action: "GET", ip: "192.0.2.10", at: saturday,
			level: loa.Substantial, kind: "smartcard", effect: policy.Deny, rule: RuleDefault, public: policy.ReasonHours},
		{name: "employee, VPN", attrs: acme, object: "finance", action: "GET", ip: "198.51.100.3", at: monday,
			level: loa.Substantial, kind: "smartcard", effect: policy.Deny, rule: RuleDefault, public: policy.ReasonNetwork},
		{name: "employee, internet", attrs: acme, object: "finance", action: "GET", ip: "203.0.113.9", at: monday,
			level: loa.Substantial, kind: "smartcard", effect: policy.Deny, rule: "sensitive-untrusted", public: policy.ReasonNetwork},
		{name: "other organisation", attrs: map[string]any{"organization": "Other"}, object: "finance", action: "GET", ip: "192.0.2.10",
			at: monday, level: loa.Substantial, kind: "smartcard", effect: policy.Deny, rule: RuleDefault, public: policy.ReasonNoAccess},
		{name: "employee, office, low: step-up", attrs: acme, object: "finance", action: "GET", ip: "192.0.2.10", at: monday,
			level: loa.Low, kind: "webauthn", effect: policy.StepUp, rule: "finance-office-hours", public: policy.ReasonLoA, reqLoA: loa.Substantial},
		// Trust levels.
		{name: "intranet over VPN", attrs: acme, object: "intranet", action: "GET", ip: "198.51.100.3", at: saturday,
			level: loa.Low, effect: policy.Allow, rule: "intranet"},
		{name: "intranet from the internet", attrs: acme, object: "intranet", action: "GET", ip: "203.0.113.9", at: saturday,
			level: loa.Low, effect: policy.Deny, rule: RuleDefault, public: policy.ReasonNetwork},
		// Sites, countries, patterns, priorities.
		{name: "hq site", object: "hq-portal", action: "login", ip: "192.0.2.5", at: monday, effect: policy.Allow, rule: "hq-only"},
		{name: "office, not the hq site", object: "hq-portal", action: "login", ip: "192.0.2.200", at: monday,
			effect: policy.Deny, rule: RuleDefault, public: policy.ReasonSite},
		{name: "country DE", object: "citizen", action: "login", ip: "203.0.113.9", country: "DE", at: monday, effect: policy.Allow, rule: "de-only"},
		{name: "country FR", object: "citizen", action: "login", ip: "203.0.113.9", country: "FR", at: monday,
			effect: policy.Deny, rule: RuleDefault, public: policy.ReasonCountry},
		{name: "country unknown", object: "citizen", action: "login", ip: "203.0.113.9", at: monday,
			effect: policy.Deny, rule: RuleDefault, public: policy.ReasonCountry},
		{name: "blocked account, first by priority", account: "blocked", attrs: physician, object: "records", action: "login", ip: "10.10.1.2",
			at: monday, level: loa.High, kind: "smartcard", hwk: true, effect: policy.Deny, rule: "blocked-account", public: policy.ReasonNoAccess},
		{name: "malformed IP is untrusted", attrs: acme, object: "intranet", action: "GET", ip: "10.10.1", at: monday,
			effect: policy.Deny, rule: RuleDefault, public: policy.ReasonNetwork},
		{name: "unknown object", object: "nothing", action: "login", ip: "10.10.1.2", at: monday, effect: policy.Deny, rule: RuleDefault, public: policy.ReasonNoAccess},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for pass := range 2 { // the second pass answers from the cache
				pc := policy.Context{ClientIP: tc.ip, Time: berlin(t, tc.at), LoA: tc.level, CredentialKind: tc.kind, HardwareToken: tc.hwk}
				loc.Apply(&pc)
				pc.Country = tc.country
				d, err := e.Decide(context.Background(), policy.Request{
					Subject: policy.Subject{AccountID: tc.account, Attributes: tc.attrs}, Resource: tc.object, Path: tc.path,
					Action: tc.action, Context: pc,
				})
				if err != nil {
					t.Fatal(err)
				}
				if d.Effect != tc.effect || d.Rule != tc.rule || (tc.public != "" && d.Public != tc.public) {
					t.Fatalf("pass %d: got %s by %s (%s, public %s), want %s by %s (public %s)", pass, d.Effect, d.Rule, d.Reason, d.Public, tc.effect, tc.rule, tc.public)
				}
				if tc.effect == policy.StepUp && (d.RequiredLoA != tc.reqLoA || strings.Join(d.RequiredKinds, " ") != tc.reqKinds) {
					t.Errorf("step-up needs %s %v, want %s %s", d.RequiredLoA, d.RequiredKinds, tc.reqLoA, tc.reqKinds)
				}
				if d.Reason == "" {
					t.Error("no reason")
				}
			}
		})
	}
}

func TestInvalidRulesRefused(t *testing.T) {
	_, err := New(context.Background(), Options{Rules: []Rule{
		{ID: "ok", Subjects: []string{"*"}, Objects: []string{"a"}, Actions: []string{"login"}, Effect: "allow"},
		{ID: "bad-hours", Subjects: []string{"*"}, Objects: []string{"a"}, Actions: []string{"login"}, Hours: "always", Effect: "allow"},
		{ID: "ok", Subjects: []string{"*"}, Objects: []string{"a"}, Actions: []string{"login"}, Effect: "allow"},
	}})
	if err == nil || !strings.Contains(err.Error(), "rule bad-hours") || !strings.Contains(err.Error(), "rule ok: id already used") {
		t.Fatalf("err = %v", err)
	}
}

func TestDefaultDenyWithoutRules(t *testing.T) {
	e, err := New(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.Decide(context.Background(), policy.Request{Resource: "x", Action: "login"})
	if err != nil || d.Effect != policy.Deny || d.Rule != RuleDefault {
		t.Fatalf("got %+v, %v", d, err)
	}
}

// fakeSource is a store of rules for the reload tests.
type fakeSource struct {
	p, g [][]string
	rev  int64
}

func (f *fakeSource) LoadRules(context.Context) ([][]string, [][]string, int64, error) {
	return f.p, f.g, f.rev, nil
}
func (f *fakeSource) Revision(context.Context) (int64, error) { return f.rev, nil }

func TestStoredRulesAndReload(t *testing.T) {
	src := &fakeSource{rev: 1}
	e, err := New(context.Background(), Options{Source: src,
		Rules: []Rule{{ID: "cfg", Priority: 50, Subjects: []string{"*"}, Objects: []string{"svc"}, Actions: []string{"GET"}, Effect: "deny"}}})
	if err != nil {
		t.Fatal(err)
	}
	req := policy.Request{Subject: policy.Subject{AccountID: "42"}, Resource: "svc", Action: "GET"}
	if d, _ := e.Decide(context.Background(), req); d.Rule != "cfg" {
		t.Fatalf("before: %+v", d)
	}
	src.p = [][]string{Rule{ID: "stored", Priority: 10, Subjects: []string{"role:ops"}, Objects: []string{"svc"}, Actions: []string{"*"}, Effect: "allow"}.Line()}
	src.g = [][]string{{"account:42", "role:ops"}}
	src.rev = 2
	ctx, cancel := context.WithCancel(context.Background())
	notify := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() { e.Watch(ctx, time.Hour, notify); close(done) }()
	notify <- struct{}{}
	deadline := time.Now().Add(5 * time.Second)
	for e.Revision() != 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if d, _ := e.Decide(context.Background(), req); d.Effect != policy.Allow || d.Rule != "stored" {
		t.Fatalf("after reload: %+v", d)
	}
	src.p = append(src.p, []string{"broken", "x", "", "", "", "", "", "", "", "", "", "allow"})
	src.rev = 3
	if err := e.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "rule broken") {
		t.Fatalf("invalid stored rule: %v", err)
	}
	if e.Revision() != 2 {
		t.Error("a failed reload replaced the rules in force")
	}
}

func TestMatcherFunctionsMalformedInput(t *testing.T) {
	s, err := build(Options{TimeZone: time.UTC}, nil, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	fns := s.functions()
	ec := &evalCtx{Context: policy.Context{Time: time.Now()}}
	for name, args := range map[string][]any{
		"zoneIn":       {"not a context", ""},
		"within":       {ec},
		"subjectIn":    {ec, "x"},
		"credentialIn": {ec, 7},
	} {
		if _, err := fns[name](args...); err == nil {
			t.Errorf("%s(%v) accepted", name, args)
		}
	}
	// Columns the snapshot did not compile are compiled on the spot;
	// malformed ones do not match.
	for name, col := range map[string]string{"within": "never", "loaAtLeast": "extreme"} {
		got, err := fns[name](ec, col)
		if err != nil || got != false {
			t.Errorf("%s(%q) = %v, %v; want false", name, col, got, err)
		}
	}
	got, _ := fns["zoneIn"](ec, "trust>=untrusted")
	if got != true {
		t.Error("trust>=untrusted must match a client in no zone")
	}
	got, _ = fns["credentialIn"](&evalCtx{Context: policy.Context{CredentialKind: "webauthn"}}, "webauthn hardware")
	if got != false {
		t.Error("hardware required, none used")
	}
}

func TestCacheKeepsWindowEdges(t *testing.T) {
	e, loc := scenarioEngine(t)
	acme := map[string]any{"organization": "ACME"}
	for _, tc := range []struct {
		at   string
		want policy.Effect
	}{
		{"2026-03-02 18:59:00", policy.Allow}, {"2026-03-02 18:59:59", policy.Allow},
		{"2026-03-02 19:00:00", policy.Deny}, {"2026-03-02 18:59:30", policy.Allow},
	} {
		tm, err := time.ParseInLocation("2006-01-02 15:04:05", tc.at, mustLoc(t, "Europe/Berlin"))
		if err != nil {
			t.Fatal(err)
		}
		pc := policy.Context{ClientIP: "192.0.2.10", Time: tm, LoA: loa.High, CredentialKind: "smartcard"}
		loc.Apply(&pc)
		d, _ := e.Decide(context.Background(), policy.Request{Subject: policy.Subject{Attributes: acme}, Resource: "finance", Action: "GET", Context: pc})
		if d.Effect != tc.want {
			t.Errorf("%s: %s, want %s", tc.at, d.Effect, tc.want)
		}
	}
}

// TestConcurrentDecideAndReload runs under the race detector in CI.
func TestConcurrentDecideAndReload(t *testing.T) {
	src := &fakeSource{rev: 1}
	e, err := New(context.Background(), Options{Source: src, Rules: scenarioRules, Roles: scenarioRoles,
		Names: Names{}, TimeZone: mustLoc(t, "Europe/Berlin")})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 50 {
			src.rev = int64(i + 2)
			if err := e.Reload(context.Background()); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := range 2000 {
		pc := policy.Context{ClientIP: "10.10.1.2", Zone: "hospital", Trust: "trusted", Networks: []string{"hospital"},
			Time: time.Date(2026, 3, 2, 9, i%60, 0, 0, time.UTC), LoA: loa.High, CredentialKind: "smartcard", HardwareToken: true}
		d, err := e.Decide(context.Background(), policy.Request{Subject: policy.Subject{Attributes: map[string]any{"profession_oid": oidPhysician}},
			Resource: "records", Path: fmt.Sprintf("/p/%d", i%7), Action: "GET", Context: pc})
		if err != nil || d.Effect != policy.Allow {
			t.Fatalf("decision %d: %+v %v", i, d, err)
		}
	}
	<-done
}
