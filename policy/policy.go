// Package policy is the contract of the policy decision point. The broker
// asks it at login, the gate on every proxied request, and the admin API for
// operator rights. policy/casbin will be its Casbin implementation; until
// then PassThrough is wired in, and every decision it makes names it.
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
	Roles     []string
}

// Context is the situation of the request.
type Context struct {
	ClientIP string
	// Networks are the configured network zones the client IP falls in.
	Networks []string
	// Time is the request time in the policy's time zone.
	Time           time.Time
	LoA            loa.Level
	CredentialKind string
	// HardwareToken: a hardware-backed credential was used (amr hwk or sc).
	HardwareToken bool
}

// Request is one question to the decision point.
type Request struct {
	Subject  Subject
	Resource string // relying party or protected service id
	Action   string // "login", "access"
	Context  Context
}

// Decision is the answer, with the rule that decided and why.
type Decision struct {
	Effect Effect
	Rule   string
	Reason string
	// RequiredLoA is set with StepUp.
	RequiredLoA loa.Level
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
