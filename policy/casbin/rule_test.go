package casbin

import (
	"strings"
	"testing"
	"time"
)

func mustLoc(t testing.TB, name string) *time.Location {
	t.Helper()
	l, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestWindowBoundaries(t *testing.T) {
	berlin := mustLoc(t, "Europe/Berlin")
	at := func(s string) time.Time {
		tm, err := time.ParseInLocation("2006-01-02 15:04:05", s, berlin)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	business, err := parseWindows("Mon-Fri 07:00-19:00 Europe/Berlin", time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	night, err := parseWindows("Fri 22:00-06:00 Europe/Berlin", time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	wrap, err := parseWindows("Sat-Mon 00:00-24:00 Europe/Berlin", time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		ws   []window
		t    time.Time
		want bool
	}{
		{"monday 06:59:59", business, at("2026-03-02 06:59:59"), false},
		{"monday 07:00", business, at("2026-03-02 07:00:00"), true},
		{"monday 18:59:59", business, at("2026-03-02 18:59:59"), true},
		{"monday 19:00 (end exclusive)", business, at("2026-03-02 19:00:00"), false},
		{"friday noon", business, at("2026-03-06 12:00:00"), true},
		{"saturday noon", business, at("2026-03-07 12:00:00"), false},
		{"sunday noon", business, at("2026-03-08 12:00:00"), false},
		// 2026-03-29: Berlin springs forward 02:00 -> 03:00 (a Sunday);
		// 2026-03-30 is the first Monday in summer time.
		{"monday after spring DST 06:59 CEST", business, at("2026-03-30 06:59:00"), false},
		{"monday after spring DST 07:00 CEST", business, at("2026-03-30 07:00:00"), true},
		{"07:00 CEST is 05:00 UTC", business, time.Date(2026, 3, 30, 5, 0, 0, 0, time.UTC), true},
		{"06:00 UTC in winter is 07:00 CET", business, time.Date(2026, 3, 2, 6, 0, 0, 0, time.UTC), true},
		{"05:59 UTC in winter is 06:59 CET", business, time.Date(2026, 3, 2, 5, 59, 0, 0, time.UTC), false},
		// 2026-10-25: back from 03:00 CEST to 02:00 CET (a Sunday); the
		// Friday before and the Monday after read the wall clock.
		{"monday after autumn DST 07:00 CET", business, at("2026-10-26 07:00:00"), true},
		{"monday after autumn DST 06:00 UTC = 07:00 CET", business, time.Date(2026, 10, 26, 6, 0, 0, 0, time.UTC), true},
		{"friday before autumn DST 05:00 UTC = 07:00 CEST", business, time.Date(2026, 10, 23, 5, 0, 0, 0, time.UTC), true},
		{"overnight friday 22:00", night, at("2026-03-06 22:00:00"), true},
		{"overnight saturday 05:59", night, at("2026-03-07 05:59:00"), true},
		{"overnight saturday 06:00", night, at("2026-03-07 06:00:00"), false},
		{"overnight thursday 23:00", night, at("2026-03-05 23:00:00"), false},
		{"overnight friday 21:59", night, at("2026-03-06 21:59:00"), false},
		{"day range over sunday: monday", wrap, at("2026-03-02 23:59:59"), true},
		{"day range over sunday: tuesday", wrap, at("2026-03-03 00:00:00"), false},
		{"day range over sunday: sunday", wrap, at("2026-03-08 10:00:00"), true},
		// The night the clocks go forward: 01:59 CET is followed by 03:00
		// CEST; a window 02:00-03:00 never contains a real instant.
		{"spring gap", mustWindows(t, "Sun 02:00-03:00 Europe/Berlin"), time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC), false},
		{"spring after gap", mustWindows(t, "Sun 03:00-04:00 Europe/Berlin"), time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC), true},
		// The night the clocks go back: 02:30 happens twice, both in.
		{"autumn first 02:30", mustWindows(t, "Sun 02:00-03:00 Europe/Berlin"), time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC), true},
		{"autumn second 02:30", mustWindows(t, "Sun 02:00-03:00 Europe/Berlin"), time.Date(2026, 10, 25, 1, 30, 0, 0, time.UTC), true},
		{"other zone", mustWindows(t, "Mon-Fri 09:00-17:00 America/New_York"), time.Date(2026, 3, 2, 14, 0, 0, 0, time.UTC), true},
		{"other zone before", mustWindows(t, "Mon-Fri 09:00-17:00 America/New_York"), time.Date(2026, 3, 2, 13, 59, 0, 0, time.UTC), false},
		{"two windows, second", mustWindows(t, "Mon-Fri 07:00-19:00 Europe/Berlin; Sat 08:00-12:00 Europe/Berlin"), at("2026-03-07 11:59:00"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := windowsMatch(tc.ws, tc.t); got != tc.want {
				t.Errorf("%v in window = %v, want %v", tc.t, got, tc.want)
			}
		})
	}
}

func mustWindows(t *testing.T, s string) []window {
	t.Helper()
	ws, err := parseWindows(s, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	return ws
}

func TestWindowDefaultZone(t *testing.T) {
	ws, err := parseWindows("07:00-19:00", mustLoc(t, "Europe/Berlin"))
	if err != nil {
		t.Fatal(err)
	}
	if !windowsMatch(ws, time.Date(2026, 3, 8, 6, 0, 0, 0, time.UTC)) { // Sunday 07:00 CET
		t.Error("a window without days covers every day, read in the default zone")
	}
}

func TestParseWindowsMalformed(t *testing.T) {
	for _, s := range []string{
		"", ";", "Mon-Fri", "Mon-Fri 7:00-19:00", "Mon-Fri 07:00-19:60", "Mon-Fri 25:00-26:00",
		"Mon-Fri 07:00", "Mon-Fri 07:00-07:00", "Mo-Fr 07:00-19:00", "Mon-Fri 07:00-19:00 Mars/Olympus",
		"Mon-Fri 07:00-19:00 Europe/Berlin extra", "Mon-Fri 24:00-19:00", "Mon-Fri 07:00-19:00 Local",
		"Mon-Fri aa:bb-cc:dd",
	} {
		if _, err := parseWindows(s, time.UTC); err == nil {
			t.Errorf("parseWindows(%q) accepted", s)
		}
	}
}

func TestObjectPatterns(t *testing.T) {
	for _, tc := range []struct {
		pattern, id, path string
		want              bool
	}{
		{"records", "records", "", true},
		{"records", "records", "/anything", true},
		{"records", "record", "", false},
		{"records/patients/*", "records", "/patients/17", true},
		{"records/patients/*", "records", "/patients/", true},
		{"records/patients/*", "records", "/patientsX", false},
		{"records/patients/*", "records", "/admin", false},
		{"records/patients/*", "records", "", false},
		{"records/health", "records", "/health", true},
		{"records/health", "records", "/health/x", false},
		{"records/*", "records", "/x", true},
		{"*", "anything", "/x", true},
		{"health-*", "health-records", "", true},
		{"health-*", "wealth-records", "", false},
		{"health-?", "health-a", "", true},
	} {
		o, err := compileObject(tc.pattern)
		if err != nil {
			t.Fatalf("%s: %v", tc.pattern, err)
		}
		if got := o.match(tc.id, tc.path); got != tc.want {
			t.Errorf("%s matches (%s, %s) = %v, want %v", tc.pattern, tc.id, tc.path, got, tc.want)
		}
	}
	for _, bad := range []string{"/x", "a/*/b", "[a"} {
		if _, err := compileObject(bad); err == nil {
			t.Errorf("compileObject(%q) accepted", bad)
		}
	}
}

func TestRuleValidate(t *testing.T) {
	names := Names{Zones: map[string]bool{"office": true}, Sites: map[string]bool{"berlin": true}}
	good := Rule{ID: "r1", Subjects: []string{"*"}, Objects: []string{"svc"}, Actions: []string{"login"}, Effect: "allow"}
	if err := good.Validate(names, time.UTC); err != nil {
		t.Fatalf("good rule refused: %v", err)
	}
	for _, tc := range []struct {
		mut  func(r *Rule)
		want string
	}{
		{func(r *Rule) { r.ID = "" }, "id"},
		{func(r *Rule) { r.Subjects = nil }, "subjects"},
		{func(r *Rule) { r.Objects = nil }, "objects"},
		{func(r *Rule) { r.Actions = []string{"get"} }, "action"},
		{func(r *Rule) { r.Zones = []string{"lab"} }, "no such zone"},
		{func(r *Rule) { r.Zones = []string{"trust>=very"} }, "trust>="},
		{func(r *Rule) { r.Sites = []string{"paris"} }, "site"},
		{func(r *Rule) { r.Countries = []string{"de"} }, "country"},
		{func(r *Rule) { r.Countries = []string{"DEU"} }, "country"},
		{func(r *Rule) { r.Hours = "weekdays" }, "hours"},
		{func(r *Rule) { r.MinLoA = "extreme" }, "min_loa"},
		{func(r *Rule) { r.Credentials = []string{"password"} }, "credential"},
		{func(r *Rule) { r.Effect = "maybe" }, "effect"},
		{func(r *Rule) { r.Effect = "deny"; r.MinLoA = "high" }, "deny rule"},
		{func(r *Rule) { r.Priority = -1 }, "priority"},
		{func(r *Rule) { r.Hours = "Mon 07:00-08:00\nx" }, "hours"},
	} {
		r := good
		tc.mut(&r)
		err := r.Validate(names, time.UTC)
		if err == nil || !strings.Contains(err.Error(), "rule "+r.ID) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("rule %+v: error %v, want one naming the rule and %q", r, err, tc.want)
		}
	}
}

func TestLineRoundTrip(t *testing.T) {
	r := Rule{ID: "r", Priority: 5, Subjects: []string{"role:a", "account:1"}, Objects: []string{"svc/x/*"},
		Actions: []string{"GET", "HEAD"}, Zones: []string{"office", "trust>=trusted"}, Sites: []string{"b"},
		Countries: []string{"DE"}, Hours: "Mon-Fri 07:00-19:00 Europe/Berlin", MinLoA: "high",
		Credentials: []string{"smartcard", "hardware"}, Effect: "allow"}
	back, err := ParseLine(r.Line())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(back.Line(), "|") != strings.Join(r.Line(), "|") {
		t.Errorf("round trip: %v != %v", back.Line(), r.Line())
	}
	if _, err := ParseLine([]string{"x"}); err == nil {
		t.Error("short line accepted")
	}
	if _, err := ParseLine([]string{"x", "high", "", "", "", "", "", "", "", "", "", "allow"}); err == nil {
		t.Error("bad priority accepted")
	}
}
