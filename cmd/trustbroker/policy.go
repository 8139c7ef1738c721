package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/broker/loa"
	"github.com/trustbroker/trustbroker/broker/server"
	"github.com/trustbroker/trustbroker/broker/store/sqlstore"
	"github.com/trustbroker/trustbroker/policy"
	"github.com/trustbroker/trustbroker/policy/casbin"
	"github.com/trustbroker/trustbroker/policy/location"
)

const policyUsage = `Usage: trustbroker policy COMMAND [flags]

Commands:
  test     what if: the decision and deciding rule for a subject, object,
           action and context (IP, time, level of assurance, credential)
  list     the rules in evaluation order, from the configuration and the store
  add      store a rule (running servers pick it up)
  remove   remove a stored rule by id
  assign   store a role assignment: MEMBER ROLE (account:ID or role:NAME)
  unassign remove a stored role assignment

Run "trustbroker policy COMMAND --help" for the flags of a command.
`

// listFlag collects a repeated or space-separated flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error {
	*l = append(*l, strings.Fields(v)...)
	return nil
}

func (e env) policyCmd(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, policyUsage)
		return errConfig{errors.New("policy: name a command")}
	}
	switch args[0] {
	case "test":
		return e.policyTest(ctx, args[1:])
	case "list":
		return e.policyList(ctx, args[1:])
	case "add":
		return e.policyAdd(ctx, args[1:])
	case "remove":
		return e.policyRemove(ctx, args[1:])
	case "assign", "unassign":
		return e.policyAssign(ctx, args[0], args[1:])
	case "help", "-h", "--help":
		fmt.Fprint(e.stdout, policyUsage)
		return nil
	}
	fmt.Fprint(e.stderr, policyUsage)
	return errConfig{fmt.Errorf("policy: unknown command %q", args[0])}
}

// policyStore opens the store (migrated) for the policy commands.
func (e env) policyStore(ctx context.Context, cfg *config.Config) (*sqlstore.Store, error) {
	return server.OpenStore(ctx, cfg, e.logger(cfg), time.Now)
}

// policyEngine builds the Casbin engine of cfg over the store (nil: the
// configuration's rules only), whatever policy.engine says.
func policyEngine(ctx context.Context, cfg *config.Config, st *sqlstore.Store) (*casbin.Engine, *location.Locator, error) {
	c := *cfg
	c.Policy.Engine = config.PolicyCasbin
	var src *sqlstore.Store
	if st != nil {
		src = st
	}
	_, eng, loc, err := server.BuildPolicy(ctx, &c, src, nil)
	return eng, loc, err
}

func (e env) policyTest(ctx context.Context, args []string) error {
	f := e.newFlags("policy test", "policy test [flags]")
	var roles, attrs listFlag
	subject := f.fs.String("subject", "", "account id")
	f.fs.Var(&roles, "role", "a role the subject holds (repeatable)")
	f.fs.Var(&attrs, "attr", "a verified attribute NAME=VALUE, e.g. profession_oid=1.2.276.0.76.4.30 (repeatable)")
	object := f.fs.String("object", "", "relying party or service id")
	path := f.fs.String("path", "", "request path at a service behind the gate")
	action := f.fs.String("action", "login", "login, or an HTTP method")
	ip := f.fs.String("ip", "", "client IP address")
	at := f.fs.String("time", "", "time of the request, RFC 3339 (default: now)")
	level := f.fs.String("loa", "substantial", "level of assurance reached: low, substantial, high")
	kind := f.fs.String("credential", "", "credential kind: eid, eidas, smartcard, webauthn, oidc, saml")
	hwk := f.fs.Bool("hardware-token", false, "a hardware token was used")
	noStore := f.fs.Bool("no-store", false, "the configuration's rules only, without the database")
	cfg, err := e.load(f, args)
	if err != nil {
		return err
	}
	if *object == "" {
		return errConfig{errors.New("policy test: --object is required")}
	}
	lv, err := loa.Parse(*level)
	if err != nil {
		return errConfig{fmt.Errorf("policy test: --loa: %w", err)}
	}
	now := time.Now()
	if *at != "" {
		if now, err = time.Parse(time.RFC3339, *at); err != nil {
			return errConfig{fmt.Errorf("policy test: --time: %w", err)}
		}
	}
	attributes := map[string]any{}
	for _, a := range attrs {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			return errConfig{fmt.Errorf("policy test: --attr %q: use NAME=VALUE", a)}
		}
		attributes[k] = v
	}
	var st *sqlstore.Store
	if !*noStore {
		if st, err = e.policyStore(ctx, cfg); err != nil {
			return err
		}
		defer st.Close()
	}
	eng, loc, err := policyEngine(ctx, cfg, st)
	if err != nil {
		return err
	}
	defer loc.Close()
	tz, _ := time.LoadLocation(cfg.Policy.TimeZone)
	pc := policy.Context{ClientIP: *ip, Time: now.In(tz), LoA: lv, CredentialKind: *kind, HardwareToken: *hwk}
	loc.Apply(&pc)
	req := policy.Request{Subject: policy.Subject{AccountID: *subject, Roles: roles, Attributes: attributes},
		Resource: *object, Path: *path, Action: *action, Context: pc}
	d, subs, err := eng.Explain(req)
	if err != nil {
		return err
	}
	printDecision(e.stdout, d, subs, pc, cfg.Policy.Engine)
	return nil
}

func printDecision(w io.Writer, d policy.Decision, subs []string, pc policy.Context, engine string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "decision:\t%s\n", d.Effect)
	fmt.Fprintf(tw, "rule:\t%s\n", d.Rule)
	fmt.Fprintf(tw, "reason:\t%s\n", d.Reason)
	if d.Effect == policy.StepUp {
		fmt.Fprintf(tw, "step-up to:\tlevel %s%s\n", d.RequiredLoA, kindsText(d.RequiredKinds))
	}
	if d.Effect != policy.Allow {
		fmt.Fprintf(tw, "user sees:\t%s / %s\n", policy.PublicReason(d.Public, "en"), policy.PublicReason(d.Public, "de"))
	}
	fmt.Fprintf(tw, "subject:\t%s\n", orNone(strings.Join(subs, " ")))
	fmt.Fprintf(tw, "client:\tip %s, zone %s (%s), site %s, country %s\n", orNone(pc.ClientIP), orNone(pc.Zone), pc.Trust, orNone(pc.Site), orNone(pc.Country))
	fmt.Fprintf(tw, "time:\t%s\n", pc.Time.Format("Mon 2006-01-02 15:04:05 MST"))
	fmt.Fprintf(tw, "login:\tlevel %s, credential %s, hardware token %v\n", pc.LoA, orNone(pc.CredentialKind), pc.HardwareToken)
	if engine != config.PolicyCasbin {
		fmt.Fprintf(tw, "note:\tpolicy.engine is %s: a running server allows everything\n", engine)
	}
	tw.Flush()
}

func kindsText(k []string) string {
	if len(k) == 0 {
		return ""
	}
	return " with " + strings.Join(k, " or ")
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func (e env) policyList(ctx context.Context, args []string) error {
	f := e.newFlags("policy list", "policy list [flags]")
	cfg, err := e.load(f, args)
	if err != nil {
		return err
	}
	st, err := e.policyStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	eng, loc, err := policyEngine(ctx, cfg, st)
	if err != nil {
		return err
	}
	defer loc.Close()
	stored := map[string]bool{}
	p, g, rev, err := server.PolicyAdapter(st, cfg).LoadRules(ctx)
	if err != nil {
		return err
	}
	for _, l := range p {
		stored[l[0]] = true
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPRIO\tSOURCE\tEFFECT\tSUBJECTS\tOBJECTS\tACTIONS\tCONDITIONS\tREQUIRES")
	for _, r := range eng.Rules() {
		src := "config"
		if stored[r.ID] {
			src = "store"
		}
		var cond, req []string
		for name, v := range map[string][]string{"zones": r.Zones, "sites": r.Sites, "countries": r.Countries} {
			if len(v) > 0 {
				cond = append(cond, name+"="+strings.Join(v, ","))
			}
		}
		slices.Sort(cond)
		if r.Hours != "" {
			cond = append(cond, "hours="+r.Hours)
		}
		if r.MinLoA != "" {
			req = append(req, "loa>="+r.MinLoA)
		}
		if len(r.Credentials) > 0 {
			req = append(req, "credential="+strings.Join(r.Credentials, ","))
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Priority, src, r.Effect, strings.Join(r.Subjects, ","),
			strings.Join(r.Objects, ","), strings.Join(r.Actions, ","), orDash(strings.Join(cond, " ")), orDash(strings.Join(req, " ")))
	}
	tw.Flush()
	for _, l := range g {
		fmt.Fprintf(e.stdout, "stored assignment: %s holds %s\n", l[0], l[1])
	}
	fmt.Fprintf(e.stdout, "store revision %d\n", rev)
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (e env) policyAdd(ctx context.Context, args []string) error {
	f := e.newFlags("policy add", "policy add --id ID --subjects ... --objects ... --actions ... --effect allow|deny [flags]")
	var r casbin.Rule
	var subs, objs, acts, zones, sites, countries, creds listFlag
	f.fs.StringVar(&r.ID, "id", "", "rule id")
	f.fs.IntVar(&r.Priority, "priority", casbin.DefaultPriority, "priority, lowest first")
	f.fs.Var(&subs, "subjects", `subjects: "*", role:NAME, account:ID`)
	f.fs.Var(&objs, "objects", "relying party or service ids, with path patterns (records/patients/*)")
	f.fs.Var(&acts, "actions", "login, HTTP methods, or *")
	f.fs.Var(&zones, "zones", "zone names, trust=LEVEL or trust>=LEVEL")
	f.fs.Var(&sites, "sites", "site names")
	f.fs.Var(&countries, "countries", "ISO 3166-1 alpha-2 codes")
	f.fs.StringVar(&r.Hours, "hours", "", `time windows, e.g. "Mon-Fri 07:00-19:00 Europe/Berlin"`)
	f.fs.StringVar(&r.MinLoA, "min-loa", "", "required level of assurance (allow rules; else step-up)")
	f.fs.Var(&creds, "credentials", "required credential kinds, and hardware (allow rules; else step-up)")
	f.fs.StringVar(&r.Effect, "effect", "", "allow or deny")
	cfg, err := e.load(f, args)
	if err != nil {
		return err
	}
	r.Subjects, r.Objects, r.Actions, r.Zones, r.Sites, r.Countries, r.Credentials = subs, objs, acts, zones, sites, countries, creds
	st, err := e.policyStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := server.PolicyAdapter(st, cfg).AddPolicyCtx(ctx, "p", "p", r.Line()); err != nil {
		return policyWriteErr(err)
	}
	fmt.Fprintf(e.stdout, "stored rule %s; running servers pick it up within %s\n", r.ID, cfg.Policy.ReloadInterval)
	return nil
}

func (e env) policyRemove(ctx context.Context, args []string) error {
	f := e.newFlags("policy remove", "policy remove [flags] ID")
	cfg, err := e.load(f, args)
	if err != nil {
		return err
	}
	if f.fs.NArg() != 1 {
		return errConfig{errors.New("policy remove: name one rule id")}
	}
	st, err := e.policyStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	a := server.PolicyAdapter(st, cfg)
	p, _, _, err := a.LoadRules(ctx)
	if err != nil {
		return err
	}
	id := f.fs.Arg(0)
	i := slices.IndexFunc(p, func(l []string) bool { return l[0] == id })
	if i < 0 {
		return fmt.Errorf("policy remove: no stored rule %q (rules of the configuration file are changed there)", id)
	}
	if err := a.RemovePolicyCtx(ctx, "p", "p", p[i]); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "removed rule %s\n", id)
	return nil
}

func (e env) policyAssign(ctx context.Context, sub string, args []string) error {
	f := e.newFlags("policy "+sub, "policy "+sub+" [flags] MEMBER ROLE")
	cfg, err := e.load(f, args)
	if err != nil {
		return err
	}
	if f.fs.NArg() != 2 {
		return errConfig{fmt.Errorf("policy %s: name a member (account:ID or role:NAME) and a role", sub)}
	}
	st, err := e.policyStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	line := []string{f.fs.Arg(0), f.fs.Arg(1)}
	a := server.PolicyAdapter(st, cfg)
	if sub == "assign" {
		err = a.AddPolicyCtx(ctx, "g", "g", line)
	} else {
		err = a.RemovePolicyCtx(ctx, "g", "g", line)
	}
	if err != nil {
		return policyWriteErr(err)
	}
	fmt.Fprintf(e.stdout, "%sed: %s holds %s\n", sub, line[0], line[1])
	return nil
}

// policyWriteErr makes an invalid rule a configuration error (exit 2).
func policyWriteErr(err error) error {
	if errors.Is(err, sqlstore.ErrInvalidPolicy) {
		return errConfig{err}
	}
	return err
}
