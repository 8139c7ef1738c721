package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/trustbroker/trustbroker/broker"
	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/broker/ui"
	"github.com/trustbroker/trustbroker/broker/web"
	"github.com/trustbroker/trustbroker/providers"
)

// mountAccountPages mounts the account pages of providers that have them
// (providers.AccountProvider) under /account/{provider id}/.
func mountAccountPages(mux *http.ServeMux, provs []broker.Provider, host accountHost) {
	for _, p := range provs {
		ap, ok := p.Provider.(providers.AccountProvider)
		if !ok {
			continue
		}
		prefix := "/account/" + ap.ID()
		h := ap.AccountHandler(host)
		mux.Handle(prefix, h)
		mux.Handle(prefix+"/", h)
	}
}

// accountHost lends the account pages the broker's session, pages, CSRF
// tokens and audit trail.
type accountHost struct {
	b    *broker.Broker
	st   store.Store
	ui   *ui.UI
	csrf *web.CSRF
	now  func() time.Time
	log  *slog.Logger
}

var _ providers.AccountHost = accountHost{}

func (h accountHost) Session(r *http.Request) (*store.Session, error) { return h.b.CurrentSession(r) }

func (h accountHost) Lang(r *http.Request) string { return ui.Lang(r) }

func (h accountHost) Text(lang, key string) string { return h.ui.Text(lang, key) }

func (h accountHost) Render(w http.ResponseWriter, r *http.Request, status int, page, lang string, data any) {
	h.ui.Render(w, r, status, page, lang, data)
}

// csrfBinding binds account-page tokens to the session (never the same
// value as a login transaction's binding, which contains a "|").
func csrfBinding(s *store.Session) string { return "account:" + strings.ReplaceAll(s.ID, "|", "") }

func (h accountHost) CSRFToken(s *store.Session) string { return h.csrf.Token(csrfBinding(s)) }

func (h accountHost) CSRFValid(s *store.Session, token string) bool {
	return h.csrf.Valid(csrfBinding(s), token)
}

// EndSession ends the browser's session and clears the cookie (the
// dashboard's account deletion).
func (h accountHost) EndSession(w http.ResponseWriter, r *http.Request) error {
	_, err := h.b.EndSession(w, r)
	return err
}

func (h accountHost) Audit(ctx context.Context, actor, action, target, outcome, reason string, details any) {
	ev := &store.AuditEvent{
		Time: h.now(), Actor: actor, Action: action, Target: target,
		Outcome: outcome, Reason: reason, RequestID: web.RequestID(ctx),
	}
	if details != nil {
		ev.Details, _ = json.Marshal(details)
	}
	if err := h.st.Audit().Append(ctx, ev); err != nil && h.log != nil {
		h.log.ErrorContext(ctx, "audit append failed", "action", action, "err", err)
	}
}
