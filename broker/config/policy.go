package config

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/trustbroker/trustbroker/policy/casbin"
	"github.com/trustbroker/trustbroker/policy/location"
)

// Policy engines (policy.engine).
const (
	// PolicyCasbin is the Casbin decision point: default deny, rules from
	// policy.rules and the store.
	PolicyCasbin = "casbin"
	// PolicyPassThrough allows everything (the behaviour before the
	// decision point existed); for tests and first steps only.
	PolicyPassThrough = "passthrough"
)

// PolicyRule is a rule of policy.rules: the YAML form of casbin.Rule.
type PolicyRule struct {
	ID          string   `yaml:"id"`
	Priority    int      `yaml:"priority"`
	Subjects    []string `yaml:"subjects"`
	Objects     []string `yaml:"objects"`
	Actions     []string `yaml:"actions"`
	Zones       []string `yaml:"zones"`
	Sites       []string `yaml:"sites"`
	Countries   []string `yaml:"countries"`
	Hours       string   `yaml:"hours"`
	MinLoA      string   `yaml:"min_loa"`
	Credentials []string `yaml:"credentials"`
	Effect      string   `yaml:"effect"`
}

// Rule converts to the engine's form.
func (r PolicyRule) Rule() casbin.Rule {
	return casbin.Rule{ID: r.ID, Priority: r.Priority, Subjects: r.Subjects, Objects: r.Objects, Actions: r.Actions,
		Zones: r.Zones, Sites: r.Sites, Countries: r.Countries, Hours: r.Hours, MinLoA: r.MinLoA,
		Credentials: r.Credentials, Effect: r.Effect}
}

// RoleMapping gives a role to identities with a verified attribute value
// (policy.roles).
type RoleMapping struct {
	Attribute string   `yaml:"attribute"`
	Values    []string `yaml:"values"`
	// Role may hold {value}: "org:{value}".
	Role string `yaml:"role"`
}

// RoleAssignment gives a role to an account or a role to a role
// (policy.role_assignments): "account:ID" or "role:NAME" holds Role.
type RoleAssignment struct {
	Member string `yaml:"member"`
	Role   string `yaml:"role"`
}

// Gate configures forward authentication for services behind a reverse
// proxy (nginx auth_request, Traefik ForwardAuth).
type Gate struct {
	// Proxies are the addresses allowed to ask the gate; their
	// X-Forwarded-* headers are believed.
	Proxies []string `yaml:"proxies"`
	// Services are the protected services; each names a relying party of
	// protocol gate by its id.
	Services []GateService `yaml:"services"`
	// Audit: "all" (every decision, the default) or "deny" (denials and
	// step-ups only; allows are counted in the metrics).
	Audit string `yaml:"audit"`
}

// GateService is one protected service.
type GateService struct {
	ID string `yaml:"id"`
	// Hosts are the Host values (host or host:port) the proxy forwards for
	// it; the login returns only to these.
	Hosts []string `yaml:"hosts"`
	// Headers name the identity headers; empty ones are not sent.
	Headers GateHeaders `yaml:"headers"`
	// Attributes map consented attribute names to header names.
	Attributes map[string]string `yaml:"attributes"`
}

// GateHeaders name the identity headers of an allowed request.
type GateHeaders struct {
	Subject string `yaml:"subject"`
	Name    string `yaml:"name"`
	Roles   string `yaml:"roles"`
	LoA     string `yaml:"loa"`
}

var headerPattern = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)

// Zones returns the configured network zones for the locator.
func (p Policy) Zones() []location.Zone {
	out := make([]location.Zone, len(p.Networks))
	for i, n := range p.Networks {
		out[i] = location.Zone{Name: n.Name, Trust: n.Trust, CIDRs: n.CIDRs}
	}
	return out
}

// SiteList returns the configured sites for the locator.
func (p Policy) SiteList() []location.Site {
	out := make([]location.Site, len(p.Sites))
	for i, s := range p.Sites {
		out[i] = location.Site{Name: s.Name, CIDRs: s.CIDRs}
	}
	return out
}

// RuleNames are the zone and site names rules may use.
func (p Policy) RuleNames() casbin.Names {
	n := casbin.Names{Zones: map[string]bool{}, Sites: map[string]bool{}}
	for _, z := range p.Networks {
		n.Zones[z.Name] = true
	}
	for _, s := range p.Sites {
		n.Sites[s.Name] = true
	}
	return n
}

// validatePolicyEngine checks what validatePolicy does not: engine, zone
// trust, sites, GeoIP file, roles and rules.
func (c *Config) validatePolicyEngine(es *Errors) {
	p := &c.Policy
	if p.Engine == "" {
		p.Engine = PolicyPassThrough
	}
	if p.Engine != PolicyCasbin && p.Engine != PolicyPassThrough {
		es.add("policy.engine", 0, "%q: use casbin or passthrough", p.Engine)
	}
	for i := range p.Networks {
		n := &p.Networks[i]
		if n.Trust == "" {
			n.Trust = "untrusted"
		}
		if !location.ValidTrust(n.Trust) {
			es.add(fmt.Sprintf("policy.networks[%d].trust", i), 0, "%q: use trusted, semi-trusted or untrusted", n.Trust)
		}
	}
	seen := map[string]bool{}
	for i, s := range p.Sites {
		path := fmt.Sprintf("policy.sites[%d]", i)
		if !idPattern.MatchString(s.Name) {
			es.add(path+".name", 0, "%q: use letters, digits, . _ : -", s.Name)
		} else if seen[s.Name] {
			es.add(path+".name", 0, "%q is used twice", s.Name)
		}
		seen[s.Name] = true
		if s.Trust != "" {
			es.add(path+".trust", 0, "a site has no trust level (zones have)")
		}
		if len(s.CIDRs) == 0 {
			es.add(path+".cidrs", 0, "name at least one CIDR")
		}
		for j, cidr := range s.CIDRs {
			if _, err := location.ParsePrefix(cidr); err != nil {
				es.add(fmt.Sprintf("%s.cidrs[%d]", path, j), 0, "%v", err)
			}
		}
	}
	if p.ReloadInterval < 0 {
		es.add("policy.reload_interval", 0, "must not be negative")
	}
	if p.ReloadInterval == 0 {
		p.ReloadInterval = 10 * time.Second
	}
	for i, m := range p.Roles {
		path := fmt.Sprintf("policy.roles[%d]", i)
		if !claimPattern.MatchString(m.Attribute) {
			es.add(path+".attribute", 0, "%q is not an attribute name", m.Attribute)
		}
		if m.Role == "" || strings.ContainsAny(m.Role, " ,") {
			es.add(path+".role", 0, "%q: a role name without spaces or commas", m.Role)
		}
	}
	for i, a := range p.RoleAssignments {
		path := fmt.Sprintf("policy.role_assignments[%d]", i)
		if a.Member == "" || strings.ContainsAny(a.Member, " ,") {
			es.add(path+".member", 0, "%q: use account:ID or role:NAME", a.Member)
		}
		if a.Role == "" || strings.ContainsAny(a.Role, " ,") {
			es.add(path+".role", 0, "%q: a role name without spaces or commas", a.Role)
		}
	}
	tz, err := time.LoadLocation(p.TimeZone)
	if err != nil {
		return // reported by validatePolicy
	}
	names := p.RuleNames()
	for i, r := range p.Rules {
		if err := r.Rule().Validate(names, tz); err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				es.add(fmt.Sprintf("policy.rules[%d]", i), 0, "%s", line)
			}
		}
	}
	ids := map[string]bool{}
	for i, r := range p.Rules {
		if ids[r.ID] {
			es.add(fmt.Sprintf("policy.rules[%d].id", i), 0, "rule %s: id used twice", r.ID)
		}
		ids[r.ID] = true
	}
}

// validateGate checks the gate section against the relying parties.
func (c *Config) validateGate(es *Errors) {
	g := &c.Gate
	if g.Audit == "" {
		g.Audit = "all"
	}
	if g.Audit != "all" && g.Audit != "deny" {
		es.add("gate.audit", 0, "%q: use all or deny", g.Audit)
	}
	if len(g.Services) > 0 && len(g.Proxies) == 0 {
		es.add("gate.proxies", 0, "name the addresses of the reverse proxies that ask the gate")
	}
	for i, p := range g.Proxies {
		if _, err := location.ParsePrefix(p); err != nil {
			es.add(fmt.Sprintf("gate.proxies[%d]", i), 0, "%v", err)
		}
	}
	rps := map[string]*RelyingParty{}
	for i := range c.RelyingParties {
		rps[c.RelyingParties[i].ID] = &c.RelyingParties[i]
	}
	hosts := map[string]string{}
	for i, s := range g.Services {
		path := fmt.Sprintf("gate.services[%d]", i)
		rp, ok := rps[s.ID]
		switch {
		case !ok:
			es.add(path+".id", 0, "%q: no relying party with this id (add one with protocol: gate)", s.ID)
		case rp.Protocol != "gate":
			es.add(path+".id", 0, "relying party %q has protocol %s, not gate", s.ID, rp.Protocol)
		}
		if len(s.Hosts) == 0 {
			es.add(path+".hosts", 0, "name at least one host the proxy forwards")
		}
		for j, h := range s.Hosts {
			hp := fmt.Sprintf("%s.hosts[%d]", path, j)
			if u, err := url.Parse("http://" + h); err != nil || u.Host != h || h == "" || u.Path != "" {
				es.add(hp, 0, "%q is not a host or host:port", h)
			} else if prev, dup := hosts[strings.ToLower(h)]; dup {
				es.add(hp, 0, "%q is already served by %s", h, prev)
			}
			hosts[strings.ToLower(h)] = s.ID
		}
		for name, h := range map[string]string{"subject": s.Headers.Subject, "name": s.Headers.Name, "roles": s.Headers.Roles, "loa": s.Headers.LoA} {
			if h != "" && !headerPattern.MatchString(h) {
				es.add(path+".headers."+name, 0, "%q is not a header name", h)
			}
		}
		for attr, h := range s.Attributes {
			if !headerPattern.MatchString(h) {
				es.add(path+".attributes."+attr, 0, "%q is not a header name", h)
			}
			if ok && !slicesContainsClaim(rp, attr) {
				es.add(path+".attributes."+attr, 0, "relying party %q does not register the claim %q", s.ID, attr)
			}
		}
	}
	for i := range c.RelyingParties {
		rp := &c.RelyingParties[i]
		if rp.Protocol != "gate" {
			continue
		}
		found := false
		for _, s := range g.Services {
			found = found || s.ID == rp.ID
		}
		if !found {
			es.add(fmt.Sprintf("relying_parties[%d]", i), 0, "protocol gate, but gate.services does not name %q", rp.ID)
		}
	}
}

func slicesContainsClaim(rp *RelyingParty, name string) bool {
	for _, c := range rp.Claims {
		if c.Name == name {
			return true
		}
	}
	return false
}

// validateGateRP checks a relying party of protocol gate: a service behind
// a reverse proxy, with neither an OIDC nor a SAML part.
func validateGateRP(es *Errors, path string, rp *RelyingParty) {
	if rp.OIDC != nil {
		es.add(path+".oidc", 0, "only for protocol oidc")
	}
	if rp.SAML != nil {
		es.add(path+".saml", 0, "only for protocol saml")
	}
}
