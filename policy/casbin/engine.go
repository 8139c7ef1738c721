// Package casbin is the policy decision point on Casbin
// (github.com/casbin/casbin/v2): the embedded model in model.conf, custom
// functions for the context conditions (zone, site, country, time window,
// level of assurance, credential kind), rules from the configuration and
// from the store, and an index and a cache in front of Casbin that keep a
// decision fast with many rules.
//
// # Evaluation
//
// Rules are partitioned by object: one Casbin enforcer per relying party
// or service id that rules name exactly, and one for the rules whose
// object is a pattern. A request consults the enforcer of its object and
// the pattern enforcer and keeps the match that comes first in rule order.
// Casbin's priority effect checks every earlier line again for each line
// it evaluates, so one enforcer over thousands of rules costs milliseconds;
// the partitions keep each enforcer small.
//
// Decisions are cached per snapshot of the rules, keyed on everything a
// rule can read: the subject's expanded roles, object and path, action,
// zone names and trust, site, country, the minute of the time (windows are
// whole minutes in any time zone), level of assurance, credential kind and
// hardware token. A reload replaces the snapshot and with it the cache.
package casbin

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	casbin "github.com/casbin/casbin/v2"
	"github.com/casbin/casbin/v2/model"
	defaultrolemanager "github.com/casbin/casbin/v2/rbac/default-role-manager"

	"github.com/trustbroker/trustbroker/broker/loa"
	"github.com/trustbroker/trustbroker/policy"
	"github.com/trustbroker/trustbroker/policy/location"
)

// ModelText is the embedded Casbin model.
//
//go:embed model.conf
var ModelText string

// RuleDefault is the rule id of the default deny.
const RuleDefault = "default-deny"

// RoleMapping derives a role from a verified attribute: an identity whose
// Attribute holds one of Values (any value when Values is empty) holds
// Role. "{value}" in Role is replaced by the value ("org:{value}").
type RoleMapping struct {
	Attribute string
	Values    []string
	Role      string
}

// Source is where rules beyond the configuration come from: the store.
// sqlstore's policy adapter implements it.
type Source interface {
	// LoadRules returns the stored policy lines ("p": rules, "g": role
	// assignments) and the revision they belong to.
	LoadRules(ctx context.Context) (p, g [][]string, rev int64, err error)
	// Revision is the current revision; it changes with every write.
	Revision(ctx context.Context) (int64, error)
}

// Options configure an Engine.
type Options struct {
	// Rules from the configuration.
	Rules []Rule
	// Grouping lines from the configuration: {member, role}, e.g.
	// {"account:42", "role:physician"} or {"role:chief", "role:physician"}.
	Grouping [][2]string
	Roles    []RoleMapping
	// Names of the configured zones and sites, to check rules against.
	Names Names
	// TimeZone reads windows that name none (the policy's time zone).
	TimeZone *time.Location
	// Source adds stored rules; nil for configuration only.
	Source Source
	// CacheSize bounds the decision cache (entries); 0 means 65536,
	// negative disables it.
	CacheSize int
	Logger    *slog.Logger

	// flat puts every rule in one enforcer (benchmarks measure the index
	// against it).
	flat bool
}

// Engine is the decision point. It is safe for concurrent use.
type Engine struct {
	o    Options
	snap atomic.Pointer[snapshot]
	mu   sync.Mutex // serializes reloads
}

var _ policy.DecisionPoint = (*Engine)(nil)

// New builds an engine from the configured rules and, with a Source, the
// stored ones. Invalid rules are refused with an error naming each.
func New(ctx context.Context, o Options) (*Engine, error) {
	if o.TimeZone == nil {
		o.TimeZone = time.UTC
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.CacheSize == 0 {
		o.CacheSize = 1 << 16
	}
	e := &Engine{o: o}
	if err := e.Reload(ctx); err != nil {
		return nil, err
	}
	return e, nil
}

// Revision is the store revision of the loaded rules (0 without a store).
func (e *Engine) Revision() int64 { return e.snap.Load().rev }

// Rules returns the loaded rules in evaluation order.
func (e *Engine) Rules() []Rule {
	s := e.snap.Load()
	out := make([]Rule, len(s.ordered))
	for i, c := range s.ordered {
		out[i] = c.Rule
	}
	return out
}

// Reload reads the rules again and swaps them in; on error the rules in
// force stay.
func (e *Engine) Reload(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var stored, grouping [][]string
	var rev int64
	if e.o.Source != nil {
		var err error
		if stored, grouping, rev, err = e.o.Source.LoadRules(ctx); err != nil {
			return fmt.Errorf("policy: load stored rules: %w", err)
		}
	}
	s, err := build(e.o, stored, grouping, rev)
	if err != nil {
		return err
	}
	e.snap.Store(s)
	return nil
}

// Watch reloads when the store revision changes: it checks every interval
// and whenever notify delivers (PostgreSQL LISTEN/NOTIFY; nil on SQLite).
// It returns when ctx ends.
func (e *Engine) Watch(ctx context.Context, interval time.Duration, notify <-chan struct{}) {
	if e.o.Source == nil {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var failed int64 = -1 // a revision that did not load: reported once
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-notify:
		}
		rev, err := e.o.Source.Revision(ctx)
		if err != nil {
			e.o.Logger.WarnContext(ctx, "policy: read revision", "err", err)
			continue
		}
		if rev == e.Revision() || rev == failed {
			continue
		}
		if err := e.Reload(ctx); err != nil {
			failed = rev
			e.o.Logger.ErrorContext(ctx, "policy: reload failed; the rules in force stay", "revision", rev, "err", err)
			continue
		}
		e.o.Logger.InfoContext(ctx, "policy: rules reloaded", "revision", e.Revision())
	}
}

// compiled is a rule with its compiled conditions.
type compiled struct {
	Rule
	order   int // position in evaluation order
	objects []object
	zones   []zoneItem
	windows []window
	minLoA  loa.Level
	kinds   []string
	hwk     bool
	stepUp  bool // the rule has requirements
	source  string
	subCol  string
}

// snapshot is one immutable generation of the rules.
type snapshot struct {
	rev     int64
	ordered []*compiled
	byID    map[string]*compiled
	// exactRules are the rules by the object id they name exactly;
	// patterns the rules with a pattern object.
	exactRules map[string][]*compiled
	patterns   []*compiled
	parts      sync.Map        // partKey(object id, action) -> *partition
	actions    map[string]bool // every action a rule names
	nparts     atomic.Int64
	roles      *defaultrolemanager.RoleManagerImpl
	mappings   []RoleMapping
	// column values compiled once, looked up by the matcher functions.
	lists   map[string][]string
	zoneCol map[string][]zoneItem
	winCol  map[string][]window
	objCol  map[string][]object
	loaCol  map[string]loa.Level
	credCol map[string]credReq
	cache   *decisionCache
	flat    bool
}

type credReq struct {
	kinds []string
	hwk   bool
}

// build compiles configured and stored rules into a snapshot.
func build(o Options, stored, grouping [][]string, rev int64) (*snapshot, error) {
	var errs []error
	var all []*compiled
	seen := map[string]string{}
	add := func(r Rule, source string) {
		if err := r.Validate(o.Names, o.TimeZone); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", source, err))
			return
		}
		if prev, dup := seen[r.ID]; dup {
			errs = append(errs, fmt.Errorf("%s: rule %s: id already used (%s)", source, r.ID, prev))
			return
		}
		seen[r.ID] = source
		if r.Priority == 0 {
			r.Priority = DefaultPriority
		}
		all = append(all, &compiled{Rule: r, source: source})
	}
	for _, r := range o.Rules {
		add(r, "configuration")
	}
	for _, line := range stored {
		r, err := ParseLine(line)
		if err != nil {
			errs = append(errs, fmt.Errorf("store: %w", err))
			continue
		}
		add(r, "store")
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("policy: invalid rules:\n%w", err)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Priority < all[j].Priority })

	s := &snapshot{
		rev: rev, ordered: all, byID: map[string]*compiled{}, exactRules: map[string][]*compiled{}, actions: map[string]bool{"*": true},
		roles: defaultrolemanager.NewRoleManagerImpl(10), mappings: o.Roles,
		lists: map[string][]string{}, zoneCol: map[string][]zoneItem{}, winCol: map[string][]window{},
		objCol: map[string][]object{}, loaCol: map[string]loa.Level{}, credCol: map[string]credReq{},
	}
	if o.CacheSize > 0 {
		s.cache = newDecisionCache(o.CacheSize)
	}
	s.flat = o.flat
	for _, gl := range o.Grouping {
		grouping = append(grouping, []string{gl[0], gl[1]})
	}
	for _, gl := range grouping {
		if len(gl) != 2 {
			return nil, fmt.Errorf("policy: role assignment %v: want member and role", gl)
		}
		if err := s.roles.AddLink(normalizeSubject(gl[0]), normalizeSubject(gl[1])); err != nil {
			return nil, fmt.Errorf("policy: role assignment %v: %w", gl, err)
		}
	}
	for i, c := range all {
		c.order = i
		s.byID[c.ID] = c
		s.compileColumns(c, c.Line(), o.TimeZone)
		for _, ob := range c.objects {
			if ob.glob {
				s.patterns = appendOnce(s.patterns, c)
				continue
			}
			s.exactRules[ob.id] = appendOnce(s.exactRules[ob.id], c)
		}
	}
	for _, c := range all {
		for _, a := range c.Actions {
			s.actions[a] = true
		}
	}
	// Partitions and their enforcers are built on first use: only the
	// objects, actions and subject sets that requests bring cost memory.
	// One enforcer now checks that the model and functions load.
	if _, err := s.enforcer(nil); err != nil {
		return nil, err
	}
	return s, nil
}

func appendOnce(l []*compiled, c *compiled) []*compiled {
	if len(l) > 0 && l[len(l)-1] == c {
		return l
	}
	return append(l, c)
}

// partition is the enforcer of one object id and action: the rules that
// name the object exactly or cover it with a pattern, and that name the
// action or "*", in rule order.
type partition struct {
	rules []*compiled
	// subTokens are the subjects the rules name ("*" aside), in a fixed
	// order; a request's view is the subset it holds.
	subTokens []string
	once      sync.Once
	en        *casbin.Enforcer // all rules, built on first use; nil when none applies
	err       error
	views     sync.Map // view key -> *view
	nviews    atomic.Int64
}

// view is the enforcer over the rules of a partition whose subject the
// request holds (or "*"): usually a handful of lines instead of all.
type view struct {
	rules []*compiled
	en    *casbin.Enforcer
}

// maxViews bounds the views kept per partition; beyond it a request is
// answered by the partition's enforcer over all its rules.
const maxViews = 256

// view returns the enforcer for the subjects in subs.
func (s *snapshot) view(p *partition, subs subjectSet) (*view, error) {
	var key strings.Builder
	for i, t := range p.subTokens {
		if subs[t] {
			key.WriteString(strconv.Itoa(i))
			key.WriteByte(',')
		}
	}
	k := key.String()
	if v, ok := p.views.Load(k); ok {
		return v.(*view), nil
	}
	if p.nviews.Load() >= maxViews || s.flat {
		en, err := p.fullEnforcer(s)
		return &view{rules: p.rules, en: en}, err
	}
	var rules []*compiled
	for _, c := range p.rules {
		for _, t := range s.list(c.subCol) {
			if t == "*" || subs[normalizeSubject(t)] {
				rules = append(rules, c)
				break
			}
		}
	}
	v := &view{rules: rules}
	if len(rules) > 0 {
		en, err := s.enforcer(expand(rules))
		if err != nil {
			return nil, err
		}
		v.en = en
	}
	if prev, loaded := p.views.LoadOrStore(k, v); loaded {
		return prev.(*view), nil
	}
	p.nviews.Add(1)
	return v, nil
}

// expand gives the policy lines of rules: each rule's line, and after an
// allow rule with requirements its step-up line.
func expand(rules []*compiled) [][]string {
	var lines [][]string
	for _, c := range rules {
		line := c.Line()
		lines = append(lines, line)
		if c.Effect == EffectAllow && c.stepUp {
			fallback := slices.Clone(line)
			fallback[11] = EffectDeny
			lines = append(lines, fallback)
		}
	}
	return lines
}

// maxLazyPartitions bounds the partitions kept (object id and action
// pairs seen in requests); beyond it a request gets a partition that is
// not kept.
const maxLazyPartitions = 1 << 16

func partKey(id, action string) string { return id + "\x00" + action }

// partition returns the partition of an object id and action. An action
// no rule names shares the partition of "*" (only rules for every action
// apply to it), so that request methods cannot multiply partitions.
func (s *snapshot) partition(id, action string) (*partition, error) {
	if !s.actions[action] {
		action = "*"
	}
	key := partKey(id, action)
	if p, ok := s.parts.Load(key); ok {
		return p.(*partition), nil
	}
	p, err := s.buildPartition(id, action)
	if err != nil {
		return nil, err
	}
	if s.nparts.Load() < maxLazyPartitions {
		if prev, loaded := s.parts.LoadOrStore(key, p); loaded {
			return prev.(*partition), nil
		}
		s.nparts.Add(1)
	}
	return p, nil
}

func (s *snapshot) buildPartition(id, action string) (*partition, error) {
	var rules []*compiled
	if s.flat {
		rules = s.ordered
	}
	for _, c := range s.exactRules[id] {
		if slices.Contains(c.Actions, action) || slices.Contains(c.Actions, "*") {
			rules = append(rules, c)
		}
	}
	for _, c := range s.patterns {
		if !slices.Contains(c.Actions, action) && !slices.Contains(c.Actions, "*") {
			continue
		}
		for _, ob := range c.objects {
			if ob.glob && globID(ob.id, id) || !ob.glob && ob.id == id {
				rules = appendOnce(rules, c)
				break
			}
		}
	}
	slices.SortFunc(rules, func(a, b *compiled) int { return a.order - b.order })
	rules = slices.CompactFunc(rules, func(a, b *compiled) bool { return a == b })
	p := &partition{rules: rules}
	seen := map[string]bool{}
	for _, c := range rules {
		for _, t := range s.list(c.subCol) {
			if n := normalizeSubject(t); n != "*" && !seen[n] {
				seen[n] = true
				p.subTokens = append(p.subTokens, n)
			}
		}
	}
	return p, nil
}

// fullEnforcer is the enforcer over all rules of the partition, built on
// first use (only when a partition has more subject views than it keeps).
func (p *partition) fullEnforcer(s *snapshot) (*casbin.Enforcer, error) {
	p.once.Do(func() {
		if len(p.rules) > 0 {
			p.en, p.err = s.enforcer(expand(p.rules))
		}
	})
	return p.en, p.err
}

func globID(pattern, id string) bool {
	ok, _ := path.Match(pattern, id)
	return ok
}

func (s *snapshot) compileColumns(c *compiled, line []string, tz *time.Location) {
	c.subCol = line[2]
	for _, col := range []string{line[2], line[4], line[6], line[7]} {
		s.lists[col] = strings.Fields(col)
	}
	for _, o := range c.Objects {
		ob, _ := compileObject(o)
		c.objects = append(c.objects, ob)
	}
	s.objCol[line[3]] = c.objects
	for _, z := range c.Zones {
		zi, _ := compileZoneItem(z, nil)
		c.zones = append(c.zones, zi)
	}
	s.zoneCol[line[5]] = c.zones
	if c.Hours != "" {
		c.windows, _ = parseWindows(c.Hours, tz)
	}
	s.winCol[line[8]] = c.windows
	if c.MinLoA != "" {
		c.minLoA, _ = loa.Parse(c.MinLoA)
	}
	s.loaCol[line[9]] = c.minLoA
	for _, k := range c.Credentials {
		if k == CredentialHardware {
			c.hwk = true
		} else {
			c.kinds = append(c.kinds, k)
		}
	}
	s.credCol[line[10]] = credReq{kinds: c.kinds, hwk: c.hwk}
	c.stepUp = c.Rule.requirements()
}

// enforcer builds one Casbin enforcer over lines, with the custom
// functions bound to this snapshot.
func (s *snapshot) enforcer(lines [][]string) (*casbin.Enforcer, error) {
	m, err := model.NewModelFromString(ModelText)
	if err != nil {
		return nil, fmt.Errorf("policy: model: %w", err)
	}
	if err := m.AddPolicies("p", "p", lines); err != nil {
		return nil, fmt.Errorf("policy: add rules: %w", err)
	}
	en, err := casbin.NewEnforcer(m)
	if err != nil {
		return nil, fmt.Errorf("policy: enforcer: %w", err)
	}
	en.EnableLog(false)
	for name, fn := range s.functions() {
		en.AddFunction(name, fn)
	}
	return en, nil
}

// request is what the matcher functions see as r.sub, r.obj and r.ctx.
type subjectSet map[string]bool

type objectRef struct {
	id, path string
}

type evalCtx struct {
	policy.Context
	trustRank int
}

// Decide implements policy.DecisionPoint.
func (e *Engine) Decide(ctx context.Context, req policy.Request) (policy.Decision, error) {
	return e.snap.Load().decide(req)
}

// Explain is Decide for operators: the decision and the expanded subject.
func (e *Engine) Explain(req policy.Request) (policy.Decision, []string, error) {
	s := e.snap.Load()
	d, err := s.decide(req)
	subs := s.subjects(req.Subject)
	names := make([]string, 0, len(subs))
	for n := range subs {
		names = append(names, n)
	}
	slices.Sort(names)
	return d, names, err
}

func (s *snapshot) decide(req policy.Request) (policy.Decision, error) {
	subs := s.subjects(req.Subject)
	var key string
	if s.cache != nil {
		key = cacheKey(subs, req, &req.Context)
		if d, ok := s.cache.get(key); ok {
			d.RequiredKinds = slices.Clone(d.RequiredKinds)
			return d, nil
		}
	}
	ec := &evalCtx{Context: req.Context, trustRank: max(location.TrustRank(req.Context.Trust), 0)}
	obj := objectRef{id: req.Resource, path: req.Path}
	part, err := s.partition(req.Resource, req.Action)
	if err != nil {
		return failed(), err
	}
	v, err := s.view(part, subs)
	if err != nil {
		return failed(), err
	}
	var best *compiled
	var bestDeny bool
	if v.en != nil {
		_, explain, err := v.en.EnforceEx(subs, obj, req.Action, ec)
		if err != nil {
			return failed(), fmt.Errorf("policy: enforce: %w", err)
		}
		if len(explain) == lineFields {
			best, bestDeny = s.byID[explain[0]], explain[11] == EffectDeny
		}
	}
	d := s.decision(v.rules, best, bestDeny, subs, obj, req.Action, ec)
	if s.cache != nil {
		s.cache.put(key, d)
	}
	return d, nil
}

// failed is the answer when the evaluation itself failed.
func failed() policy.Decision {
	return policy.Decision{Effect: policy.Deny, Rule: RuleDefault, Reason: "policy evaluation failed", Public: policy.ReasonUnknown}
}

func (s *snapshot) decision(rules []*compiled, c *compiled, denyLine bool, subs subjectSet, obj objectRef, act string, ec *evalCtx) policy.Decision {
	switch {
	case c == nil:
		return policy.Decision{Effect: policy.Deny, Rule: RuleDefault, Reason: "no rule matched",
			Public: s.diagnose(rules, subs, obj, act, ec)}
	case c.Effect == EffectAllow && !denyLine:
		return policy.Decision{Effect: policy.Allow, Rule: c.ID, Reason: "rule " + c.ID + " allows"}
	case c.Effect == EffectAllow:
		d := policy.Decision{Effect: policy.StepUp, Rule: c.ID, RequiredLoA: max(c.minLoA, ec.LoA),
			RequiredKinds: slices.Clone(c.kinds), Public: policy.ReasonLoA}
		var need []string
		if !ec.LoA.Satisfies(c.minLoA) {
			need = append(need, "level of assurance "+c.minLoA.String())
		}
		if len(c.kinds) > 0 && !slices.Contains(c.kinds, ec.CredentialKind) {
			need = append(need, "credential "+strings.Join(c.kinds, " or "))
			d.Public = policy.ReasonCredential
		}
		if c.hwk && !ec.HardwareToken {
			need = append(need, "a hardware token")
			d.Public = policy.ReasonCredential
		}
		d.Reason = "rule " + c.ID + " needs " + strings.Join(need, ", ")
		return d
	default:
		return policy.Decision{Effect: policy.Deny, Rule: c.ID, Reason: "rule " + c.ID + " denies", Public: publicOf(c)}
	}
}

// publicOf names what a deny rule conditions on.
func publicOf(c *compiled) string {
	switch {
	case len(c.Zones) > 0:
		return policy.ReasonNetwork
	case len(c.Sites) > 0:
		return policy.ReasonSite
	case len(c.Countries) > 0:
		return policy.ReasonCountry
	case c.Hours != "":
		return policy.ReasonHours
	}
	return policy.ReasonNoAccess
}

// diagnose finds, for a default deny, the first allow rule for this
// subject, object and action, and names the first context condition it
// failed: the safe reason the user is shown.
func (s *snapshot) diagnose(rules []*compiled, subs subjectSet, obj objectRef, act string, ec *evalCtx) string {
	for _, c := range rules {
		if c.Effect != EffectAllow || !s.subjectIn(subs, c.subCol) || !matchObjects(c.objects, obj) || !listIn(c.Actions, act) {
			continue
		}
		switch {
		case !zoneMatch(c.zones, ec):
			return policy.ReasonNetwork
		case len(c.Sites) > 0 && !slices.Contains(c.Sites, ec.Site):
			return policy.ReasonSite
		case len(c.Countries) > 0 && !slices.Contains(c.Countries, ec.Country):
			return policy.ReasonCountry
		case !windowsMatch(c.windows, ec.Time):
			return policy.ReasonHours
		}
	}
	return policy.ReasonNoAccess
}

// subjects expands the subject: the account, the given roles, the roles
// its attributes map to, and every role those hold through grouping lines.
func (s *snapshot) subjects(sub policy.Subject) subjectSet {
	set := subjectSet{}
	var queue []string
	push := func(n string) {
		if !set[n] {
			set[n] = true
			queue = append(queue, n)
		}
	}
	if sub.AccountID != "" {
		push("account:" + sub.AccountID)
	}
	for _, r := range sub.Roles {
		push(normalizeSubject(r))
	}
	for _, m := range s.mappings {
		for _, v := range attributeValues(sub.Attributes[m.Attribute]) {
			if len(m.Values) == 0 || slices.Contains(m.Values, v) {
				push(normalizeSubject(strings.ReplaceAll(m.Role, "{value}", v)))
			}
		}
	}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		roles, _ := s.roles.GetRoles(n)
		for _, r := range roles {
			push(r)
		}
	}
	return set
}

func attributeValues(v any) []string {
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		if x == "" {
			return nil
		}
		return []string{x}
	case []string:
		return x
	case []any:
		var out []string
		for _, e := range x {
			if s, ok := e.(string); ok && s != "" {
				out = append(out, s)
			}
		}
		return out
	default:
		return []string{fmt.Sprint(x)}
	}
}

func cacheKey(subs subjectSet, req policy.Request, ec *policy.Context) string {
	names := make([]string, 0, len(subs))
	for n := range subs {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	b.Grow(128)
	for _, n := range names {
		b.WriteString(n)
		b.WriteByte(' ')
	}
	for _, v := range []string{req.Resource, req.Path, req.Action, ec.Trust, ec.Site, ec.Country, ec.CredentialKind} {
		b.WriteByte(0)
		b.WriteString(v)
	}
	b.WriteByte(0)
	b.WriteString(strings.Join(ec.Networks, " "))
	b.WriteByte(0)
	b.WriteString(strconv.FormatInt(ec.Time.Unix()/60, 10))
	b.WriteByte(byte('0' + int(ec.LoA)))
	if ec.HardwareToken {
		b.WriteByte('h')
	}
	return b.String()
}

// decisionCache is a bounded map, emptied when full: the entries of a
// minute age out within that minute anyway.
type decisionCache struct {
	mu  sync.RWMutex
	m   map[string]policy.Decision
	max int
}

func newDecisionCache(n int) *decisionCache {
	return &decisionCache{m: make(map[string]policy.Decision, 1024), max: n}
}

func (c *decisionCache) get(k string) (policy.Decision, bool) {
	c.mu.RLock()
	d, ok := c.m[k]
	c.mu.RUnlock()
	return d, ok
}

func (c *decisionCache) put(k string, d policy.Decision) {
	c.mu.Lock()
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[k] = d
	c.mu.Unlock()
}

var _ policy.RoleLister = (*Engine)(nil)

// Roles implements policy.RoleLister: the role names the subject holds,
// sorted, without the "role:" prefix.
func (e *Engine) Roles(sub policy.Subject) []string {
	var out []string
	for n := range e.snap.Load().subjects(sub) {
		if r, ok := strings.CutPrefix(n, "role:"); ok {
			out = append(out, r)
		}
	}
	slices.Sort(out)
	return out
}
