package casbin

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/trustbroker/trustbroker/broker/loa"
	"github.com/trustbroker/trustbroker/policy/location"
	"github.com/trustbroker/trustbroker/providers"
)

// Effects a rule can have.
const (
	EffectAllow = "allow"
	EffectDeny  = "deny"
)

// CredentialHardware in a rule's credentials requires a hardware token
// (amr hwk or sc), whatever the kind.
const CredentialHardware = "hardware"

// DefaultPriority is the priority of a rule that names none.
const DefaultPriority = 100

// Rule is one policy rule as operators write it (YAML, the store, the
// command line). Lists are alternatives: a rule matches when the request
// matches one entry of every non-empty list.
type Rule struct {
	ID string
	// Priority orders rules, lowest first; DefaultPriority when 0. Rules of
	// equal priority keep their declared order, configuration before store.
	Priority int
	// Subjects: "*", "role:NAME" (or bare NAME) or "account:ID".
	Subjects []string
	// Objects: a relying party or service id, optionally with a path
	// pattern for the gate ("records/patients/*"); the id may hold * and ?
	// wildcards ("*" alone is every object).
	Objects []string
	// Actions: "login", HTTP methods, or "*".
	Actions []string
	// Zones: zone names, or a trust condition "trust=LEVEL" or
	// "trust>=LEVEL" (untrusted < semi-trusted < trusted).
	Zones []string
	// Sites: site names.
	Sites []string
	// Countries: ISO 3166-1 alpha-2 codes. A rule with countries never
	// matches when the country is unknown.
	Countries []string
	// Hours: time windows, "Mon-Fri 07:00-19:00 Europe/Berlin"; several
	// joined with ";". Days and zone may be left out (every day; the
	// policy's time zone). The end is exclusive; an end before the start
	// runs over midnight.
	Hours string
	// MinLoA and Credentials are requirements of an allow rule: unmet, the
	// answer is a step-up. Credentials are kinds, plus "hardware".
	MinLoA      string
	Credentials []string
	Effect      string
}

// ruleIDPattern is what a rule id may be.
var ruleIDPattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._:-]{0,127}$`)

// Line is the Casbin policy line of r (without the "p" type).
func (r Rule) Line() []string {
	prio := r.Priority
	if prio == 0 {
		prio = DefaultPriority
	}
	subs := make([]string, len(r.Subjects))
	for i, s := range r.Subjects {
		subs[i] = normalizeSubject(s)
	}
	return []string{
		r.ID, strconv.Itoa(prio), strings.Join(subs, " "), strings.Join(r.Objects, " "),
		strings.Join(r.Actions, " "), strings.Join(r.Zones, " "), strings.Join(r.Sites, " "),
		strings.Join(r.Countries, " "), r.Hours, r.MinLoA, strings.Join(r.Credentials, " "), r.Effect,
	}
}

// lineFields is the number of values of a policy line.
const lineFields = 12

// ParseLine reads a Casbin policy line (without the "p" type).
func ParseLine(line []string) (Rule, error) {
	if len(line) != lineFields {
		return Rule{}, fmt.Errorf("policy line has %d values, want %d", len(line), lineFields)
	}
	prio, err := strconv.Atoi(strings.TrimSpace(line[1]))
	if err != nil {
		return Rule{ID: line[0]}, fmt.Errorf("rule %s: priority %q is not a number", line[0], line[1])
	}
	return Rule{
		ID: line[0], Priority: prio, Subjects: strings.Fields(line[2]), Objects: strings.Fields(line[3]),
		Actions: strings.Fields(line[4]), Zones: strings.Fields(line[5]), Sites: strings.Fields(line[6]),
		Countries: strings.Fields(line[7]), Hours: strings.TrimSpace(line[8]), MinLoA: strings.TrimSpace(line[9]),
		Credentials: strings.Fields(line[10]), Effect: strings.TrimSpace(line[11]),
	}, nil
}

func normalizeSubject(s string) string {
	if s == "*" || strings.HasPrefix(s, "role:") || strings.HasPrefix(s, "account:") {
		return s
	}
	return "role:" + s
}

// Names are the zones and sites rules may name; nil maps skip the check.
type Names struct {
	Zones map[string]bool
	Sites map[string]bool
}

// Validate checks r and returns every problem, each naming the rule.
// defaultTZ is where windows without a time zone are read.
func (r Rule) Validate(names Names, defaultTZ *time.Location) error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("rule %s: "+format, append([]any{r.ID}, args...)...))
	}
	if !ruleIDPattern.MatchString(r.ID) {
		bad("id: use 1 to 128 letters, digits, . _ : -")
	}
	if r.Priority < 0 {
		bad("priority: must not be negative")
	}
	if len(r.Subjects) == 0 {
		bad("subjects: name at least one (\"*\" for everyone)")
	}
	for _, s := range r.Subjects {
		n := normalizeSubject(s)
		if n != "*" && (strings.ContainsAny(n, " ,") || strings.HasSuffix(n, ":")) {
			bad("subject %q: use *, role:NAME or account:ID", s)
		}
	}
	if len(r.Objects) == 0 {
		bad("objects: name at least one (\"*\" for every relying party and service)")
	}
	for _, o := range r.Objects {
		if _, err := compileObject(o); err != nil {
			bad("object %q: %v", o, err)
		}
	}
	if len(r.Actions) == 0 {
		bad("actions: name at least one (login, an HTTP method, or *)")
	}
	for _, a := range r.Actions {
		if a != "*" && a != "login" && !httpMethod.MatchString(a) {
			bad("action %q: use login, an HTTP method (GET, POST, ...) or *", a)
		}
	}
	for _, z := range r.Zones {
		if _, err := compileZoneItem(z, names.Zones); err != nil {
			bad("zone %q: %v", z, err)
		}
	}
	for _, s := range r.Sites {
		if names.Sites != nil && !names.Sites[s] {
			bad("site %q is not configured", s)
		}
	}
	for _, c := range r.Countries {
		if len(c) != 2 || strings.ToUpper(c) != c || strings.ToLower(c) == c {
			bad("country %q: use an ISO 3166-1 alpha-2 code in capitals (DE, AT, ...)", c)
		}
	}
	if r.Hours != "" {
		if _, err := parseWindows(r.Hours, defaultTZ); err != nil {
			bad("hours %q: %v", r.Hours, err)
		}
	}
	switch r.Effect {
	case EffectAllow:
	case EffectDeny:
		if r.MinLoA != "" || len(r.Credentials) > 0 {
			bad("a deny rule has no min_loa or credentials (they are requirements of an allow rule)")
		}
	default:
		bad("effect %q: use allow or deny", r.Effect)
	}
	if r.MinLoA != "" {
		if _, err := loa.Parse(r.MinLoA); err != nil {
			bad("min_loa: %v", err)
		}
	}
	for _, c := range r.Credentials {
		if c != CredentialHardware && !providers.KnownKind(c) {
			bad("credential %q: use %s or %s", c, strings.Join(providers.Kinds, ", "), CredentialHardware)
		}
	}
	for i, v := range r.Line() {
		if strings.ContainsAny(v, "\n\r") {
			bad("value %d holds a line break", i)
		}
	}
	return errors.Join(errs...)
}

var httpMethod = regexp.MustCompile(`^[A-Z]{3,10}$`)

// requirements reports whether the rule has step-up requirements.
func (r Rule) requirements() bool { return r.MinLoA != "" || len(r.Credentials) > 0 }

// object is a compiled object pattern: an id (glob) and a path pattern.
type object struct {
	id     string
	glob   bool
	path   string // "" or "/*": every path
	prefix bool   // path ends in /*: prefix match
}

func compileObject(s string) (object, error) {
	id, p, hasPath := strings.Cut(s, "/")
	if id == "" {
		return object{}, errors.New("no id before the path")
	}
	o := object{id: id, glob: strings.ContainsAny(id, "*?[")}
	if o.glob {
		if _, err := path.Match(id, ""); err != nil {
			return object{}, fmt.Errorf("bad pattern: %w", err)
		}
	}
	if hasPath {
		p = "/" + p
		if strings.Contains(strings.TrimSuffix(p, "*"), "*") {
			return object{}, errors.New("a path pattern may hold * only at its end")
		}
		if strings.HasSuffix(p, "*") {
			o.prefix = true
			p = strings.TrimSuffix(p, "*")
		}
		if p != "/" || !o.prefix {
			o.path = p
		}
	}
	return o, nil
}

// match reports whether o covers the object id and request path.
func (o object) match(id, reqPath string) bool {
	if o.glob {
		if ok, _ := path.Match(o.id, id); !ok {
			return false
		}
	} else if o.id != id {
		return false
	}
	switch {
	case o.path == "":
		return true
	case o.prefix:
		return strings.HasPrefix(reqPath, o.path)
	default:
		return reqPath == o.path
	}
}

// zoneItem is a compiled zone condition.
type zoneItem struct {
	name     string
	trust    int // rank; -1 when the item is a name
	atLeast  bool
	trustSet bool
}

func compileZoneItem(s string, known map[string]bool) (zoneItem, error) {
	if v, ok := strings.CutPrefix(s, "trust>="); ok {
		r := location.TrustRank(v)
		if r < 0 {
			return zoneItem{}, errors.New("use trust>=trusted, trust>=semi-trusted or trust>=untrusted")
		}
		return zoneItem{trust: r, atLeast: true, trustSet: true}, nil
	}
	if v, ok := strings.CutPrefix(s, "trust="); ok {
		r := location.TrustRank(v)
		if r < 0 {
			return zoneItem{}, errors.New("use trust=trusted, trust=semi-trusted or trust=untrusted")
		}
		return zoneItem{trust: r, trustSet: true}, nil
	}
	if known != nil && !known[s] {
		return zoneItem{}, errors.New("no such zone is configured")
	}
	return zoneItem{name: s, trust: -1}, nil
}

// window is one weekly time window in a time zone.
type window struct {
	days       [7]bool // by time.Weekday
	start, end int     // minutes since midnight; end may be 1440
	loc        *time.Location
}

var dayNames = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// parseWindows reads "Mon-Fri 07:00-19:00 Europe/Berlin; Sat 08:00-12:00".
func parseWindows(s string, defaultTZ *time.Location) ([]window, error) {
	var out []window
	for part := range strings.SplitSeq(s, ";") {
		f := strings.Fields(part)
		if len(f) == 0 {
			return nil, errors.New("empty window")
		}
		w := window{loc: defaultTZ}
		i := 0
		if !strings.Contains(f[0], ":") {
			if err := parseDays(f[0], &w.days); err != nil {
				return nil, err
			}
			i++
		} else {
			for d := range w.days {
				w.days[d] = true
			}
		}
		if i >= len(f) {
			return nil, errors.New("no HH:MM-HH:MM range")
		}
		a, b, ok := strings.Cut(f[i], "-")
		if !ok {
			return nil, fmt.Errorf("%q is not HH:MM-HH:MM", f[i])
		}
		var err error
		if w.start, err = parseClock(a, false); err != nil {
			return nil, err
		}
		if w.end, err = parseClock(b, true); err != nil {
			return nil, err
		}
		if w.start == w.end {
			return nil, fmt.Errorf("%q is empty", f[i])
		}
		i++
		if i < len(f) {
			loc, err := time.LoadLocation(f[i])
			if err != nil || f[i] == "Local" {
				return nil, fmt.Errorf("%q is not an IANA time zone", f[i])
			}
			w.loc = loc
			i++
		}
		if i != len(f) {
			return nil, fmt.Errorf("unexpected %q", strings.Join(f[i:], " "))
		}
		if w.loc == nil {
			return nil, errors.New("no time zone")
		}
		out = append(out, w)
	}
	return out, nil
}

func parseDays(s string, days *[7]bool) error {
	for item := range strings.SplitSeq(s, ",") {
		a, b, isRange := strings.Cut(strings.ToLower(item), "-")
		da, ok := dayNames[a]
		if !ok {
			return fmt.Errorf("%q is not a day (Mon, Tue, ... Sun)", a)
		}
		if !isRange {
			days[da] = true
			continue
		}
		db, ok := dayNames[b]
		if !ok {
			return fmt.Errorf("%q is not a day (Mon, Tue, ... Sun)", b)
		}
		for d := da; ; d = (d + 1) % 7 {
			days[d] = true
			if d == db {
				break
			}
		}
	}
	return nil
}

func parseClock(s string, end bool) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || len(h) != 2 || len(m) != 2 || mm < 0 || mm > 59 || hh < 0 {
		return 0, fmt.Errorf("%q is not HH:MM", s)
	}
	if hh == 24 && mm == 0 && end {
		return 24 * 60, nil
	}
	if hh > 23 {
		return 0, fmt.Errorf("%q is not HH:MM (00:00 to 23:59, 24:00 as an end)", s)
	}
	return hh*60 + mm, nil
}

// contains reports whether t lies in the window, read in its time zone.
// The weekday is that of the window's start: a window over midnight
// ("Fri 22:00-06:00") covers Saturday morning.
func (w *window) contains(t time.Time) bool {
	lt := t.In(w.loc)
	m := lt.Hour()*60 + lt.Minute()
	day := lt.Weekday()
	if w.start < w.end {
		return w.days[day] && m >= w.start && m < w.end
	}
	prev := (day + 6) % 7
	return (w.days[day] && m >= w.start) || (w.days[prev] && m < w.end)
}

func fieldsOf(s string) []string { return strings.Fields(s) }
