// Package policy is the contract of the policy decision point. The broker
// asks it at login, the gate on every proxied request, and the admin API for
// operator rights. policy/casbin is its Casbin implementation; PassThrough
// stands in where no engine is configured, and every decision it makes
// names it.
package policy

import (
	"context"
	"time"

	"github.com/trustbroker/trustbroker/broker/loa"
)

// Effect is the outcome of a decision.
type Effect string

// The effects a decision point can give.
const (
	Allow  Effect = "allow"
	Deny   Effect = "deny"
	StepUp Effect = "step_up" // allowed once the level of assurance is raised
)

// Subject is who asks.
type Subject struct {
	AccountID string
	// Roles given by the caller; the decision point adds those it derives
	// from Attributes and from its own role assignments.
	Roles []string
	// Attributes are the verified attributes of the identity (for example
	// the profession OID of a health-professional card), from which roles
	// are derived. They never leave the decision point.
	Attributes map[string]any
}

// Trust levels of a network zone, lowest first.
const (
	TrustUntrusted   = "untrusted"
	TrustSemiTrusted = "semi-trusted"
	TrustTrusted     = "trusted"
)

// Context is the situation of the request, computed once per request.
type Context struct {
	// ClientIP is the client address: the peer, or the X-Forwarded-For
	// entry when the peer is a configured trusted proxy.
	ClientIP string
	// Networks are the configured network zones the client IP falls in.
	Networks []string
	// Zone is the first configured zone the client IP falls in ("" when
	// none) and Trust its trust level (TrustUntrusted when none).
	Zone  string
	Trust string
	// Site is the first configured location the client IP falls in.
	Site string
	// Country is the ISO 3166-1 alpha-2 code from the GeoIP database; ""
	// when unknown (no database, or no entry), and then every rule that
	// needs a country does not match.
	Country string
	// Time is the request time; rules read it in their own time zone.
	Time           time.Time
	LoA            loa.Level
	CredentialKind string
	// HardwareToken: a hardware-backed credential was used (amr hwk or sc).
	HardwareToken bool
}

// Actions of the login flow; the gate uses HTTP methods.
const (
	ActionLogin = "login"
)

// Request is one question to the decision point.
type Request struct {
	Subject Subject
	// Resource is the relying party or protected service id.
	Resource string
	// Path is the request path at a protected service (the gate); "" at
	// login.
	Path    string
	Action  string // "login", or an HTTP method at the gate
	Context Context
}

// Decision is the answer, with the rule that decided and why.
type Decision struct {
	Effect Effect
	// Rule is the id of the rule that decided ("default-deny" when none
	// matched).
	Rule string
	// Reason is for operators and the audit trail.
	Reason string
	// Public is a reason code safe to show the user (see PublicReason).
	Public string
	// RequiredLoA is set with StepUp.
	RequiredLoA loa.Level
	// RequiredKinds, with StepUp, are the credential kinds that satisfy the
	// rule; nil when any kind does.
	RequiredKinds []string
	// Obligations the caller must honour (e.g. "max_session": "1h").
	Obligations map[string]string
}

// DecisionPoint decides.
type DecisionPoint interface {
	Decide(ctx context.Context, req Request) (Decision, error)
}

// PassThrough allows every request. It stands where the Casbin decision
// point will plug in, and says so in every decision it makes.
type PassThrough struct{}

var _ DecisionPoint = PassThrough{}

// Decide allows.
func (PassThrough) Decide(context.Context, Request) (Decision, error) {
	return Decision{Effect: Allow, Rule: "passthrough", Reason: "no policy engine configured yet: pass-through allows"}, nil
}

// RoleLister is an optional capability of a decision point: the roles a
// subject holds after its own expansion (attribute mappings, assignments,
// inheritance). The gate sends them to the protected service.
type RoleLister interface {
	Roles(sub Subject) []string
}
