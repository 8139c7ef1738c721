package casbin

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/trustbroker/trustbroker/broker/loa"
	"github.com/trustbroker/trustbroker/policy"
	"github.com/trustbroker/trustbroker/policy/location"
)

// benchRules makes n rules over n/10 services (at least one), ten rules a
// service with mixed conditions; one rule in a hundred has a pattern
// object that covers ten services. Spread: the ten rules of a service name
// ten different teams (of 50), so a request's subject holds about one of
// them. Dense: they all name the same team, so every rule of the service
// applies to the requester (the worst case for the index).
func benchRules(n int, dense bool) []Rule {
	services := max(n/10, 1)
	var rules []Rule
	for i := 0; len(rules) < n; i++ {
		svc := fmt.Sprintf("svc-%d", i%services)
		team := (i%services + i/services) % 50
		if dense {
			team = (i % services) % 50
		}
		r := Rule{ID: fmt.Sprintf("r%d", i), Subjects: []string{fmt.Sprintf("role:team-%d", team)}, Objects: []string{svc},
			Actions: []string{"GET", "POST"}, Effect: "allow"}
		switch i % 5 {
		case 0:
			r.Zones = []string{"office"}
			r.Hours = "Mon-Fri 07:00-19:00 Europe/Berlin"
		case 1:
			r.Zones = []string{"trust>=semi-trusted"}
			r.MinLoA = "substantial"
		case 2:
			r.Objects = []string{svc + "/api/*"}
			r.Countries = []string{"DE", "AT"}
		case 3:
			r.Effect, r.Zones = "deny", []string{"trust=untrusted"}
		case 4:
			r.Credentials = []string{"smartcard", "hardware"}
		}
		if i%100 == 99 && services >= 100 {
			// A pattern rule covers ten services: svc-K0 to svc-K9.
			r.Objects = []string{fmt.Sprintf("svc-%d?", 1+(i/100)%(services/10-1))}
		}
		rules = append(rules, r)
	}
	return rules
}

// benchEngine builds the engine and a request maker: request i asks for
// service i mod S as a member of the team of one of its rules (spread) or
// of all of them (dense), from one of three addresses, at one of 600
// minutes of a Monday.
func benchEngine(b *testing.B, n, cache int, flat, dense bool) (*Engine, func(i int) policy.Request) {
	b.Helper()
	e, err := New(context.Background(), Options{Rules: benchRules(n, dense), CacheSize: cache, flat: flat,
		TimeZone: mustLoc(b, "Europe/Berlin"),
		Roles:    []RoleMapping{{Attribute: "team", Role: "team-{value}"}}})
	if err != nil {
		b.Fatal(err)
	}
	loc, err := location.New([]location.Zone{{Name: "office", Trust: "trusted", CIDRs: []string{"192.0.2.0/24"}}}, nil, "")
	if err != nil {
		b.Fatal(err)
	}
	services := max(n/10, 1)
	base := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	ips := []string{"192.0.2.10", "203.0.113.5", "2001:db8::1"}
	team := func(i int) int {
		if dense {
			return (i % services) % 50
		}
		return (i%services + (i/services)%10) % 50
	}
	req := func(i int) policy.Request {
		pc := policy.Context{ClientIP: ips[i%3], Time: base.Add(time.Duration(i%600) * time.Minute),
			LoA: loa.Level(1 + i%3), CredentialKind: "smartcard", HardwareToken: i%2 == 0}
		loc.Apply(&pc)
		return policy.Request{
			Subject:  policy.Subject{AccountID: fmt.Sprint(i % 1000), Attributes: map[string]any{"team": fmt.Sprint(team(i))}},
			Resource: fmt.Sprintf("svc-%d", i%services), Path: "/api/items", Action: "GET", Context: pc,
		}
	}
	return e, req
}

// BenchmarkDecide reports decision latency (p50, p99) and decisions per
// second on one goroutine, per rule count: "uncached" is every decision
// through Casbin (the index alone), "cached" repeats a working set of 256
// distinct requests, "flat" is one enforcer without the index, "dense"
// uncached with every rule of an object applying to the requester.
// Run with -cpu 1 for one core. Each mode is warmed up with one pass over
// its 256 requests first (lazy partitions and views, the cache), so the
// figures are the steady state.
func BenchmarkDecide(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		for _, mode := range []string{"uncached", "cached", "flat", "dense"} {
			if mode == "flat" && n > 1000 {
				continue // O(n²) in Casbin's priority effect: some 100 times the 1,000-rule figure
			}
			b.Run(fmt.Sprintf("rules=%d/%s", n, mode), func(b *testing.B) {
				cache := -1
				if mode == "cached" {
					cache = 0
				}
				e, mk := benchEngine(b, n, cache, mode == "flat", mode == "dense")
				reqs := make([]policy.Request, 256)
				for i := range reqs {
					reqs[i] = mk(i)
				}
				ctx := context.Background()
				// Warm up: partitions and subject views are built on first
				// use (a one-time cost per object, action and subject set);
				// the cached mode also fills its cache here.
				for _, r := range reqs {
					if _, err := e.Decide(ctx, r); err != nil {
						b.Fatal(err)
					}
				}
				lat := make([]time.Duration, 0, b.N)
				runtime.GC()
				b.ResetTimer()
				start := time.Now()
				for i := 0; i < b.N; i++ {
					t0 := time.Now()
					if _, err := e.Decide(ctx, reqs[i%len(reqs)]); err != nil {
						b.Fatal(err)
					}
					lat = append(lat, time.Since(t0))
				}
				total := time.Since(start)
				b.StopTimer()
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
				b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
				b.ReportMetric(float64(b.N)/total.Seconds(), "decisions/s")
			})
		}
	}
}
