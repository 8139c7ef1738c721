// Package consent is the contract of the consent step: what a relying party
// may receive, recording a grant, withdrawing it. The consent page and the
// citizen dashboard come with their issue; until then PassThrough is wired
// in and says so.
package consent

import "context"

// Requested is an attribute a relying party asks for.
type Requested struct {
	Name     string
	Purpose  string
	Required bool
	// Available: the identity carries a value for it.
	Available bool
}

// Evaluation says what may leave without asking and what needs a page.
type Evaluation struct {
	// Granted attributes may be released now.
	Granted []string
	// Ask is true when the user must be shown the consent page.
	Ask bool
	// Mechanism names what decided ("passthrough", "stored", ...).
	Mechanism string
}

// Step is the consent point of the login flow.
type Step interface {
	Evaluate(ctx context.Context, accountID, rpID string, requested []Requested) (Evaluation, error)
}

// PassThrough releases every requested attribute the identity carries,
// without a page. It stands where the consent manager will plug in.
type PassThrough struct{}

var _ Step = PassThrough{}

// Evaluate grants what is available.
func (PassThrough) Evaluate(_ context.Context, _, _ string, requested []Requested) (Evaluation, error) {
	ev := Evaluation{Mechanism: "passthrough"}
	for _, r := range requested {
		if r.Available {
			ev.Granted = append(ev.Granted, r.Name)
		}
	}
	return ev, nil
}
