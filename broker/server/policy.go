package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/trustbroker/trustbroker/adapters/gate"
	"github.com/trustbroker/trustbroker/adapters/oidc"
	"github.com/trustbroker/trustbroker/broker"
	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/broker/store/sqlstore"
	"github.com/trustbroker/trustbroker/broker/ui"
	"github.com/trustbroker/trustbroker/consent"
	"github.com/trustbroker/trustbroker/policy"
	"github.com/trustbroker/trustbroker/policy/casbin"
	"github.com/trustbroker/trustbroker/policy/location"
)

// policyParts are the decision point and what shares its view of the
// client: the locator.
type policyParts struct {
	dp      policy.DecisionPoint
	engine  *casbin.Engine // nil with the pass-through engine
	locator *location.Locator
}

// BuildPolicy builds the configured decision point: the Casbin engine over
// the configured rules and those in st (policy.engine: casbin), or
// pass-through. The caller closes the locator.
func BuildPolicy(ctx context.Context, cfg *config.Config, st *sqlstore.Store, logger *slog.Logger) (policy.DecisionPoint, *casbin.Engine, *location.Locator, error) {
	p, err := buildPolicy(ctx, cfg, st, logger)
	if err != nil {
		return nil, nil, nil, err
	}
	return p.dp, p.engine, p.locator, nil
}

func buildPolicy(ctx context.Context, cfg *config.Config, st *sqlstore.Store, logger *slog.Logger) (*policyParts, error) {
	pc := cfg.Policy
	loc, err := location.New(pc.Zones(), pc.SiteList(), pc.GeoIPFile)
	if err != nil {
		return nil, err
	}
	if pc.Engine != config.PolicyCasbin {
		return &policyParts{dp: policy.PassThrough{}, locator: loc}, nil
	}
	tz, err := time.LoadLocation(pc.TimeZone)
	if err != nil {
		loc.Close()
		return nil, err
	}
	o := casbin.Options{Names: pc.RuleNames(), TimeZone: tz, Logger: logger, Source: PolicyAdapter(st, cfg)}
	for _, r := range pc.Rules {
		o.Rules = append(o.Rules, r.Rule())
	}
	for _, m := range pc.Roles {
		o.Roles = append(o.Roles, casbin.RoleMapping{Attribute: m.Attribute, Values: m.Values, Role: m.Role})
	}
	for _, a := range pc.RoleAssignments {
		o.Grouping = append(o.Grouping, [2]string{a.Member, a.Role})
	}
	e, err := casbin.New(ctx, o)
	if err != nil {
		loc.Close()
		return nil, err
	}
	return &policyParts{dp: e, engine: e, locator: loc}, nil
}

// PolicyAdapter is the store's Casbin adapter with the engine's check of
// every line written: an invalid rule is refused with a message naming it.
func PolicyAdapter(st *sqlstore.Store, cfg *config.Config) *sqlstore.PolicyAdapter {
	names := cfg.Policy.RuleNames()
	tz, err := time.LoadLocation(cfg.Policy.TimeZone)
	if err != nil {
		tz = time.UTC
	}
	return st.PolicyAdapter(func(ptype string, line []string) error {
		switch ptype {
		case "p":
			r, err := casbin.ParseLine(line)
			if err != nil {
				return err
			}
			return r.Validate(names, tz)
		case "g":
			if len(line) != 2 || line[0] == "" || line[1] == "" {
				return fmt.Errorf("role assignment %v: want a member and a role", line)
			}
		}
		return nil
	})
}

// newGate builds the forward-auth endpoint when services are configured.
func newGate(cfg *config.Config, b *broker.Broker, st *sqlstore.Store, u *ui.UI, pp *policyParts, cs consent.Step, tokens gate.TokenVerifier, o Options) (*gate.Gate, error) {
	if len(cfg.Gate.Services) == 0 {
		return nil, nil
	}
	tz, err := time.LoadLocation(cfg.Policy.TimeZone)
	if err != nil {
		return nil, err
	}
	return gate.New(gate.Options{
		Broker: b, Policy: pp.dp, Consent: cs, Audit: st.Audit(), UI: u, Locator: pp.locator, Tokens: tokens,
		Config: cfg.Gate, Issuer: cfg.Server.Issuer, TimeZone: tz, Now: o.Now, Logger: o.Logger,
	})
}

// registerGate adds the gate to the broker and the mux.
func registerGate(g *gate.Gate, b *broker.Broker, mux *http.ServeMux) {
	if g == nil {
		return
	}
	b.RegisterAdapter(g)
	g.Routes(mux)
}

// opTokens lets the gate accept the OpenID Provider's access tokens as
// bearer tokens (DPoP-bound ones are refused: a reverse proxy does not pass
// their proof on).
type opTokens struct{ op *oidc.Provider }

var _ gate.TokenVerifier = opTokens{}

func (t opTokens) VerifyAccessToken(ctx context.Context, token string) (*gate.Token, error) {
	info, err := t.op.AccessTokenInfo(ctx, token)
	if err != nil {
		return nil, err
	}
	return &gate.Token{AccountID: info.AccountID, ClientID: info.ClientID, LoA: info.LoA,
		Kind: info.CredentialKind, AMR: info.AMR, Attributes: info.Claims}, nil
}
