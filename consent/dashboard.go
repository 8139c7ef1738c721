package consent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/trustbroker/trustbroker/broker/store"
)

// Host is what the broker lends the dashboard: the browser's session,
// pages, CSRF tokens bound to the session, and the audit trail (the
// broker's account-page host satisfies it).
type Host interface {
	Session(r *http.Request) (*store.Session, error)
	Lang(r *http.Request) string
	Text(lang, key string) string
	Render(w http.ResponseWriter, r *http.Request, status int, page, lang string, data any)
	CSRFToken(s *store.Session) string
	CSRFValid(s *store.Session, token string) bool
	Audit(ctx context.Context, actor, action, target, outcome, reason string, details any)
	// EndSession ends the browser's session and clears its cookie.
	EndSession(w http.ResponseWriter, r *http.Request) error
}

// Dashboard is the citizen's account page at /account: services used,
// what each received and when, consents in force with their purposes,
// withdrawal per service, the login methods, and a JSON export of the
// account's own data (GDPR Art. 15 and 20).
// CredentialPage is a provider's credential page linked from the
// dashboard; the link text is the catalogue key "account.manage.<Kind>".
type CredentialPage struct{ Kind, Path string }

type Dashboard struct {
	Manager *Manager
	Host    Host
	// CredentialPages link the pages where the owner manages credentials
	// of a provider (security keys, eID cards), in the order given.
	CredentialPages []CredentialPage
	TimeZone        *time.Location
	// Receipts, when set, offers a signed consent receipt per consent.
	Receipts *Receipts
	// SingleLogout, when set, is how an account deletion ends: it tells
	// the relying parties of the browser's session through the browser
	// (the SAML service providers' single logout, then the OIDC
	// front-channel logout page, as "log out everywhere" does) and ends
	// at returnURL. It runs after the account is erased and the session
	// cookie cleared; s is the session as read before the erasure (it is
	// no longer in the store). Without it the browser goes to returnURL.
	SingleLogout func(w http.ResponseWriter, r *http.Request, s *store.Session, returnURL string)
}

// Routes mounts the dashboard.
func (d *Dashboard) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /account", d.handlePage)
	mux.HandleFunc("GET /account/{$}", d.handlePage)
	mux.HandleFunc("POST /account/withdraw", d.handleWithdraw)
	mux.HandleFunc("GET /account/export.json", d.handleExport)
	mux.HandleFunc("GET /account/receipts/{id}", d.handleReceipt)
	mux.HandleFunc("GET /account/delete", d.handleDeletePage)
	mux.HandleFunc("POST /account/delete", d.handleDelete)
	mux.HandleFunc("GET /account/deleted", d.handleDeleted)
}

type consentRow struct {
	ID, RPID, Service, Attributes, LeftOut, Purpose, Granted, Expires string
	Receipt                                                           bool
}

type disclosureRow struct{ When, Service, Attributes, Protocol string }

type identityRow struct{ Kind, Linked, LastUsed string }

type accountPage struct {
	Name, CSRF, Notice, Error string
	Manage                    []CredentialPage
	Consents                  []consentRow
	Disclosures               []disclosureRow
	Identities                []identityRow
}

func noStore(w http.ResponseWriter) { w.Header().Set("Cache-Control", "no-store") }

// session returns the browser's session or shows the page that asks to
// log in first.
func (d *Dashboard) session(w http.ResponseWriter, r *http.Request) (*store.Session, string, bool) {
	noStore(w)
	lang := d.Host.Lang(r)
	s, err := d.Host.Session(r)
	if err != nil {
		d.Host.Render(w, r, http.StatusUnauthorized, "error", lang, struct{ Message, RequestID string }{d.Host.Text(lang, "account.no_session"), ""})
		return nil, lang, false
	}
	return s, lang, true
}

func (d *Dashboard) handlePage(w http.ResponseWriter, r *http.Request) {
	s, lang, ok := d.session(w, r)
	if !ok {
		return
	}
	d.render(w, r, s, lang, http.StatusOK, r.URL.Query().Get("notice"), "")
}

func (d *Dashboard) render(w http.ResponseWriter, r *http.Request, s *store.Session, lang string, status int, notice, errText string) {
	ctx := r.Context()
	st := d.Manager.Store
	acc, err := st.Accounts().Get(ctx, s.AccountID)
	if err != nil {
		d.fail(w, r, lang, err)
		return
	}
	page := accountPage{Name: acc.DisplayName, CSRF: d.Host.CSRFToken(s), Error: errText, Manage: d.CredentialPages}
	if page.Name == "" {
		page.Name = acc.ID
	}
	if notice != "" {
		if rp, ok := d.Manager.RelyingParties[notice]; ok {
			page.Notice = fmt.Sprintf(d.Host.Text(lang, "account.withdrawn"), rp.Name.Get(lang))
		}
	}
	now := d.Manager.Now()
	consents, err := st.Consents().ListByAccount(ctx, s.AccountID)
	if err != nil {
		d.fail(w, r, lang, err)
		return
	}
	seen := map[string]bool{}
	for i := len(consents) - 1; i >= 0; i-- { // newest first, one per service
		c := consents[i]
		if !c.WithdrawnAt.IsZero() || (!c.ExpiresAt.IsZero() && !c.ExpiresAt.After(now)) || seen[c.RPID] {
			continue
		}
		seen[c.RPID] = true
		row := consentRow{ID: c.ID, Receipt: d.Receipts != nil, RPID: c.RPID, Service: d.service(c.RPID, lang), Attributes: d.labels(lang, c.Attributes),
			Purpose: d.purposes(c, lang), Granted: d.when(c.GrantedAt)}
		var left []string
		for _, o := range c.Offered {
			if !slices.Contains(c.Attributes, o) {
				left = append(left, o)
			}
		}
		row.LeftOut = d.labels(lang, left)
		if !c.ExpiresAt.IsZero() {
			row.Expires = d.when(c.ExpiresAt)
		}
		page.Consents = append(page.Consents, row)
	}
	ds, err := st.Disclosures().ListByAccount(ctx, s.AccountID, 100)
	if err != nil {
		d.fail(w, r, lang, err)
		return
	}
	for _, x := range ds {
		page.Disclosures = append(page.Disclosures, disclosureRow{When: d.when(x.Time), Service: d.service(x.RPID, lang),
			Attributes: d.labels(lang, x.Attributes), Protocol: strings.ToUpper(x.Protocol)})
	}
	ids, err := st.Accounts().Identities(ctx, s.AccountID)
	if err != nil {
		d.fail(w, r, lang, err)
		return
	}
	for _, li := range ids {
		page.Identities = append(page.Identities, identityRow{Kind: li.Kind, Linked: d.when(li.LinkedAt), LastUsed: d.when(li.LastUsedAt)})
	}
	d.Host.Render(w, r, status, "account", lang, page)
}

// purposes shows the purposes in the reader's language from the current
// registration when the consent still matches it, else as recorded.
func (d *Dashboard) purposes(c store.Consent, lang string) string {
	rp, ok := d.Manager.RelyingParties[c.RPID]
	if !ok || c.PurposeVersion != PurposeVersion(rp) {
		return c.Purpose
	}
	var out []string
	for _, cl := range rp.Claims {
		if slices.Contains(c.Offered, cl.Name) {
			out = append(out, d.label(lang, cl.Name)+": "+cl.Purpose.Get(lang))
		}
	}
	return strings.Join(out, "; ")
}

func (d *Dashboard) service(rpID, lang string) string {
	if rp, ok := d.Manager.RelyingParties[rpID]; ok {
		return rp.Name.Get(lang)
	}
	return rpID
}

func (d *Dashboard) label(lang, name string) string {
	if s := d.Host.Text(lang, "claim."+name); s != "claim."+name && s != "" {
		return s
	}
	return name
}

func (d *Dashboard) labels(lang string, names []string) string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		out = append(out, d.label(lang, n))
	}
	return strings.Join(out, ", ")
}

func (d *Dashboard) when(t time.Time) string {
	if t.IsZero() {
		return "–"
	}
	tz := d.TimeZone
	if tz == nil {
		tz = time.UTC
	}
	return t.In(tz).Format("2006-01-02 15:04")
}

func (d *Dashboard) fail(w http.ResponseWriter, r *http.Request, lang string, err error) {
	d.Host.Audit(r.Context(), "system", "account.error", "", store.OutcomeFailure, err.Error(), nil)
	d.Host.Render(w, r, http.StatusInternalServerError, "error", lang, struct{ Message, RequestID string }{d.Host.Text(lang, "error.internal"), ""})
}

// handleWithdraw withdraws the consent for one service (CSRF-checked
// form), which revokes the service's tokens and sends back-channel logout.
func (d *Dashboard) handleWithdraw(w http.ResponseWriter, r *http.Request) {
	s, lang, ok := d.session(w, r)
	if !ok {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if r.ParseForm() != nil || !d.Host.CSRFValid(s, r.PostForm.Get("csrf")) {
		d.Host.Audit(r.Context(), s.AccountID, "consent.withdraw", r.PostForm.Get("rp"), store.OutcomeDenied, "bad csrf token", nil)
		d.Host.Render(w, r, http.StatusForbidden, "error", lang, struct{ Message, RequestID string }{d.Host.Text(lang, "error.csrf"), ""})
		return
	}
	rpID := r.PostForm.Get("rp")
	if _, known := d.Manager.RelyingParties[rpID]; !known {
		d.render(w, r, s, lang, http.StatusBadRequest, "", d.Host.Text(lang, "account.withdraw_failed"))
		return
	}
	err := d.Manager.Withdraw(r.Context(), s.AccountID, rpID)
	if errors.Is(err, ErrNoConsent) {
		d.render(w, r, s, lang, http.StatusConflict, "", d.Host.Text(lang, "account.withdraw_failed"))
		return
	}
	if err != nil {
		d.fail(w, r, lang, err)
		return
	}
	target := "/account?notice=" + rpID
	if q := r.URL.Query().Get("lang"); q != "" {
		target += "&lang=" + q
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// Export is the JSON download of the account's own data (GDPR Art. 15 and
// 20): the account, its linked login methods, every consent record
// (withdrawn ones included) and the disclosure log.
type Export struct {
	ExportedAt  time.Time              `json:"exported_at"`
	Account     exportAccount          `json:"account"`
	Identities  []exportIdentity       `json:"login_methods"`
	Consents    []exportConsent        `json:"consents"`
	Disclosures []exportDisclosure     `json:"disclosures"`
	Services    map[string]exportRPRef `json:"services"`
}

type exportAccount struct {
	ID          string    `json:"id"`
	DisplayName string    `json:"display_name"`
	CreatedAt   time.Time `json:"created_at"`
}

type exportIdentity struct {
	Provider   string    `json:"provider"`
	Kind       string    `json:"kind"`
	LinkedAt   time.Time `json:"linked_at"`
	LastUsedAt time.Time `json:"last_used_at"`
}

type exportConsent struct {
	ID             string     `json:"id"`
	Service        string     `json:"service"`
	Granted        []string   `json:"attributes_granted"`
	Offered        []string   `json:"attributes_offered"`
	Purpose        string     `json:"purpose"`
	PurposeVersion string     `json:"purpose_version"`
	GrantedAt      time.Time  `json:"granted_at"`
	ExpiresAt      *time.Time `json:"expires_at,omitempty"`
	WithdrawnAt    *time.Time `json:"withdrawn_at,omitempty"`
	Method         string     `json:"method"`
	Lang           string     `json:"language"`
}

type exportDisclosure struct {
	Time       time.Time `json:"time"`
	Service    string    `json:"service"`
	Attributes []string  `json:"attributes"`
	Protocol   string    `json:"protocol"`
	ConsentID  string    `json:"consent_id,omitempty"`
}

type exportRPRef struct {
	Name map[string]string `json:"name"`
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// Export gathers the account's data.
func (m *Manager) Export(ctx context.Context, accountID string) (*Export, error) {
	acc, err := m.Store.Accounts().Get(ctx, accountID)
	if err != nil {
		return nil, err
	}
	ex := &Export{ExportedAt: m.Now().UTC(), Services: map[string]exportRPRef{},
		Account: exportAccount{ID: acc.ID, DisplayName: acc.DisplayName, CreatedAt: acc.CreatedAt}}
	ids, err := m.Store.Accounts().Identities(ctx, accountID)
	if err != nil {
		return nil, err
	}
	for _, li := range ids {
		ex.Identities = append(ex.Identities, exportIdentity{Provider: li.ProviderID, Kind: li.Kind, LinkedAt: li.LinkedAt, LastUsedAt: li.LastUsedAt})
	}
	cs, err := m.Store.Consents().ListByAccount(ctx, accountID)
	if err != nil {
		return nil, err
	}
	for _, c := range cs {
		ex.Consents = append(ex.Consents, exportConsent{ID: c.ID, Service: c.RPID, Granted: c.Attributes, Offered: c.Offered,
			Purpose: c.Purpose, PurposeVersion: c.PurposeVersion, GrantedAt: c.GrantedAt, ExpiresAt: optTime(c.ExpiresAt),
			WithdrawnAt: optTime(c.WithdrawnAt), Method: c.Method, Lang: c.Lang})
		m.addService(ex, c.RPID)
	}
	ds, err := m.Store.Disclosures().ListByAccount(ctx, accountID, 1000)
	if err != nil {
		return nil, err
	}
	for _, x := range ds {
		ex.Disclosures = append(ex.Disclosures, exportDisclosure{Time: x.Time, Service: x.RPID, Attributes: x.Attributes, Protocol: x.Protocol, ConsentID: x.ConsentID})
		m.addService(ex, x.RPID)
	}
	return ex, nil
}

func (m *Manager) addService(ex *Export, rpID string) {
	if rp, ok := m.RelyingParties[rpID]; ok {
		ex.Services[rpID] = exportRPRef{Name: rp.Name}
	}
}

func (d *Dashboard) handleExport(w http.ResponseWriter, r *http.Request) {
	s, lang, ok := d.session(w, r)
	if !ok {
		return
	}
	ex, err := d.Manager.Export(r.Context(), s.AccountID)
	if err != nil {
		d.fail(w, r, lang, err)
		return
	}
	d.Host.Audit(r.Context(), s.AccountID, "account.export", s.AccountID, store.OutcomeSuccess, "", nil)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="trustbroker-data.json"`)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(ex)
}
