package consent

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/trustbroker/trustbroker/broker/store"
)

// accountDeletePage is the confirmation page of the account deletion.
type accountDeletePage struct {
	Name, CSRF, Error string
	// Services whose consents will be withdrawn.
	Services []string
}

// handleDeletePage shows what deleting the account does and asks to
// confirm it (a checkbox and the CSRF-protected form).
func (d *Dashboard) handleDeletePage(w http.ResponseWriter, r *http.Request) {
	s, lang, ok := d.session(w, r)
	if !ok {
		return
	}
	d.renderDelete(w, r, s, lang, http.StatusOK, "")
}

func (d *Dashboard) renderDelete(w http.ResponseWriter, r *http.Request, s *store.Session, lang string, status int, errText string) {
	ctx := r.Context()
	acc, err := d.Manager.Store.Accounts().Get(ctx, s.AccountID)
	if err != nil {
		d.fail(w, r, lang, err)
		return
	}
	page := accountDeletePage{Name: acc.DisplayName, CSRF: d.Host.CSRFToken(s), Error: errText}
	if page.Name == "" {
		page.Name = acc.ID
	}
	cs, err := d.Manager.Store.Consents().ListByAccount(ctx, s.AccountID)
	if err != nil {
		d.fail(w, r, lang, err)
		return
	}
	now := d.Manager.Now()
	for _, c := range cs {
		if !c.WithdrawnAt.IsZero() || (!c.ExpiresAt.IsZero() && !c.ExpiresAt.After(now)) {
			continue
		}
		if name := d.service(c.RPID, lang); !slices.Contains(page.Services, name) {
			page.Services = append(page.Services, name)
		}
	}
	d.Host.Render(w, r, status, "account_delete", lang, page)
}

// handleDelete deletes the account (GDPR Art. 17) after the confirmation:
// Manager.Erase withdraws every consent (tokens revoked, back-channel
// logout sent), ends the SSO sessions and deletes the account; then the
// session cookie is cleared and the browser goes to the goodbye page,
// through the single logout of the session's relying parties when
// SingleLogout is set.
//
// The account is erased before anything is sent to the browser, so a
// browser that stops on the way (a service provider that never answers)
// cannot keep it alive, and the logout never needs the store: it works
// from the session as read before the erasure, which Erase changes (the
// OIDC clients are taken off it) and then deletes.
func (d *Dashboard) handleDelete(w http.ResponseWriter, r *http.Request) {
	s, lang, ok := d.session(w, r)
	if !ok {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if r.ParseForm() != nil || !d.Host.CSRFValid(s, r.PostForm.Get("csrf")) {
		d.Host.Audit(r.Context(), s.AccountID, "account.delete", s.AccountID, store.OutcomeDenied, "bad csrf token", nil)
		d.Host.Render(w, r, http.StatusForbidden, "error", lang, struct{ Message, RequestID string }{d.Host.Text(lang, "error.csrf"), ""})
		return
	}
	if r.PostForm.Get("confirm") != "yes" {
		d.renderDelete(w, r, s, lang, http.StatusBadRequest, d.Host.Text(lang, "account_delete.not_confirmed"))
		return
	}
	ended := *s
	ended.RelyingParties = slices.Clone(s.RelyingParties)
	if _, err := d.Manager.Erase(r.Context(), s.AccountID); err != nil {
		d.fail(w, r, lang, err)
		return
	}
	if err := d.Host.EndSession(w, r); err != nil {
		d.fail(w, r, lang, err)
		return
	}
	target := "/account/deleted"
	if q := r.URL.Query().Get("lang"); q == "de" || q == "en" {
		target += "?lang=" + q
	}
	if d.SingleLogout != nil {
		d.SingleLogout(w, r, &ended, target)
		return
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// handleDeleted is the goodbye page; it needs no session.
func (d *Dashboard) handleDeleted(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	d.Host.Render(w, r, http.StatusOK, "account_deleted", d.Host.Lang(r), nil)
}

// handleReceipt downloads the signed consent receipt (Kantara Consent
// Receipt v1.1 as a JWS) of one of the account's consents.
func (d *Dashboard) handleReceipt(w http.ResponseWriter, r *http.Request) {
	s, lang, ok := d.session(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	if d.Receipts == nil {
		d.notFound(w, r, lang)
		return
	}
	jws, _, err := d.Receipts.Sign(r.Context(), s.AccountID, id)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, ErrNotOwner) {
		d.Host.Audit(r.Context(), s.AccountID, "consent.receipt", id, store.OutcomeDenied, "no such consent of the account", nil)
		d.notFound(w, r, lang)
		return
	}
	if err != nil {
		d.fail(w, r, lang, err)
		return
	}
	d.Host.Audit(r.Context(), s.AccountID, "consent.receipt", id, store.OutcomeSuccess, "", nil)
	safe := strings.Map(func(c rune) rune {
		if c == '-' || c == '_' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') {
			return c
		}
		return -1
	}, id)
	w.Header().Set("Content-Type", "application/jwt")
	w.Header().Set("Content-Disposition", `attachment; filename="consent-receipt-`+safe+`.jwt"`)
	_, _ = w.Write([]byte(jws))
}

func (d *Dashboard) notFound(w http.ResponseWriter, r *http.Request, lang string) {
	d.Host.Render(w, r, http.StatusNotFound, "error", lang, struct{ Message, RequestID string }{d.Host.Text(lang, "error.not_found"), ""})
}
