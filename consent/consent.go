// Package consent is the consent step: what a relying party may receive
// (Step, with PassThrough for consent.mode passthrough and Manager over the
// store), recording a grant, withdrawing it (which revokes what the
// relying party holds), the disclosure log, and the citizen dashboard at
// /account.
package consent

import (
	"context"
	"encoding/json"
)

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
	// Mechanism names what decided ("passthrough", "stored", "ask",
	// "legal-basis").
	Mechanism string
	// Offer: when Ask, the consent-based attributes the page asks for.
	Offer []string
	// Info: attributes released on another legal basis (contract, legal
	// obligation); the page shows them as information.
	Info []string
	// Previous: what the last consent in force granted (to preselect).
	Previous []string
	// ConsentID is the stored consent the release relies on, if any.
	ConsentID string
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

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return b
}
