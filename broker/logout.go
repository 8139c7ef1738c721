package broker

import (
	"errors"
	"net/http"

	"github.com/trustbroker/trustbroker/broker/session"
	"github.com/trustbroker/trustbroker/broker/store"
)

// EndSession ends the browser's SSO session and returns it, so the caller
// can tell the relying parties that took part (logout propagation). It
// returns nil without error when there was no session.
func (b *Broker) EndSession(w http.ResponseWriter, r *http.Request) (*store.Session, error) {
	ctx := r.Context()
	s, err := b.o.Sessions.Current(ctx, r)
	if errors.Is(err, session.ErrNoSession) {
		b.o.Cookies.Clear(w, b.o.Sessions.CookieName, "/")
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if err := b.o.Sessions.End(ctx, w, r); err != nil {
		return nil, err
	}
	b.audit(ctx, s.AccountID, "session.end", s.ID[:12], store.OutcomeSuccess, "logout", map[string]any{"relying_parties": s.RelyingParties})
	return s, nil
}

// Audit appends an event to the audit trail for a front door.
func (b *Broker) Audit(r *http.Request, actor, action, target, outcome, reason string, details any) {
	b.audit(r.Context(), actor, action, target, outcome, reason, details)
}
