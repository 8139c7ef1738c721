package consent_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/broker/store/sqlstore"
	"github.com/trustbroker/trustbroker/conformance/dbtest"
	"github.com/trustbroker/trustbroker/consent"
)

// deleteHost is the broker's side of the dashboard: the session is the
// one the cookie "sid" names in the store, tokens are "csrf-" + session.
type deleteHost struct {
	st     store.Store
	audits []string
}

const sidCookie = "sid"

func (h *deleteHost) Session(r *http.Request) (*store.Session, error) {
	c, err := r.Cookie(sidCookie)
	if err != nil {
		return nil, err
	}
	return h.st.Sessions().Get(r.Context(), c.Value)
}

func (h *deleteHost) Lang(r *http.Request) string {
	if l := r.URL.Query().Get("lang"); l == "en" {
		return l
	}
	return "de"
}

func (h *deleteHost) Text(lang, key string) string { return lang + ":" + key }

func (h *deleteHost) Render(w http.ResponseWriter, _ *http.Request, status int, page, lang string, _ any) {
	w.WriteHeader(status)
	fmt.Fprintf(w, "page=%s lang=%s", page, lang)
}

func (h *deleteHost) CSRFToken(s *store.Session) string { return "csrf-" + s.ID }

func (h *deleteHost) CSRFValid(s *store.Session, token string) bool { return token == "csrf-"+s.ID }

func (h *deleteHost) Audit(_ context.Context, _, action, _, outcome, _ string, _ any) {
	h.audits = append(h.audits, action+":"+outcome)
}

func (h *deleteHost) EndSession(w http.ResponseWriter, r *http.Request) error {
	http.SetCookie(w, &http.Cookie{Name: sidCookie, Path: "/", MaxAge: -1})
	c, err := r.Cookie(sidCookie)
	if err != nil {
		return nil
	}
	if err := h.st.Sessions().Delete(r.Context(), c.Value); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return nil
}

// oidcLikeRevoker takes the relying party off the account's sessions, as
// the OpenID Provider's RevokeGrants does; fail makes it fail instead.
type oidcLikeRevoker struct {
	st   store.Store
	fail error
}

func (r *oidcLikeRevoker) RevokeGrants(ctx context.Context, accountID string, rp *config.RelyingParty) error {
	if r.fail != nil {
		return r.fail
	}
	ss, err := r.st.Sessions().ListByAccount(ctx, accountID)
	if err != nil {
		return err
	}
	for _, s := range ss {
		if _, err := r.st.Sessions().Update(ctx, s.ID, func(cur *store.Session) error {
			cur.RelyingParties = slices.DeleteFunc(cur.RelyingParties, func(id string) bool { return id == rp.ID })
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// logoutCall is what the dashboard's SingleLogout saw when it ran.
type logoutCall struct {
	session     store.Session
	returnURL   string
	accountErr  error // Accounts().Get at that moment
	sessionsNow int   // the account's sessions in the store at that moment
	cookie      string
}

type deleteFixture struct {
	// acc and sid name the account and its session (fresh per fixture:
	// fixtures share a database).
	acc, sid string
	st       store.Store
	host     *deleteHost
	revoker  *oidcLikeRevoker
	d        *consent.Dashboard
	mux      *http.ServeMux
	calls    []logoutCall
}

// newDeleteFixture: an account with a consent for the OIDC client "amt"
// and one session that answered the SAML SP "sp" and "amt".
// The dashboard's SingleLogout records what it saw and, like an IdP
// starting a SAML logout, sends the browser to an SP (which may never
// answer).
func newDeleteFixture(t *testing.T, dsn string) *deleteFixture {
	t.Helper()
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Second)
	st, err := sqlstore.Open(ctx, dsn, sqlstore.Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	acc, sid := "acc-"+rand.Text(), "s-"+rand.Text()
	if err := st.Accounts().Create(ctx, &store.Account{ID: acc, DisplayName: "Erika"}); err != nil {
		t.Fatal(err)
	}
	if err := st.Sessions().Create(ctx, &store.Session{ID: sid, AccountID: acc, CreatedAt: now, ExpiresAt: now.Add(time.Hour),
		LastSeenAt: now, AuthTime: now, RelyingParties: []string{"sp", "amt"}}); err != nil {
		t.Fatal(err)
	}
	f := &deleteFixture{acc: acc, sid: sid, st: st, host: &deleteHost{st: st}, revoker: &oidcLikeRevoker{st: st}, mux: http.NewServeMux()}
	m := &consent.Manager{Store: st, RelyingParties: map[string]*config.RelyingParty{"amt": registration()},
		Now: func() time.Time { return now }, Rand: rand.Reader, Revokers: []consent.Revoker{f.revoker}}
	if _, err := m.Grant(ctx, consent.Grant{AccountID: acc, RPID: "amt", Offered: []string{"given_name"}, Granted: []string{"given_name"}, Lang: "de"}); err != nil {
		t.Fatal(err)
	}
	f.d = &consent.Dashboard{Manager: m, Host: f.host}
	f.d.SingleLogout = func(w http.ResponseWriter, r *http.Request, s *store.Session, returnURL string) {
		c := logoutCall{session: *s, returnURL: returnURL, cookie: w.Header().Get("Set-Cookie")}
		_, c.accountErr = st.Accounts().Get(r.Context(), s.AccountID)
		ss, err := st.Sessions().ListByAccount(r.Context(), s.AccountID)
		if err != nil {
			t.Error(err)
		}
		c.sessionsNow = len(ss)
		f.calls = append(f.calls, c)
		http.Redirect(w, r, "https://sp.example/slo?SAMLRequest=x", http.StatusFound)
	}
	f.d.Routes(f.mux)
	return f
}

func (f *deleteFixture) do(method, target string, form url.Values) *httptest.ResponseRecorder {
	var body *strings.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	} else {
		body = strings.NewReader("")
	}
	r := httptest.NewRequest(method, target, body)
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	r.AddCookie(&http.Cookie{Name: sidCookie, Value: f.sid})
	w := httptest.NewRecorder()
	f.mux.ServeHTTP(w, r)
	return w
}

func (f *deleteFixture) accountThere(t *testing.T) bool {
	t.Helper()
	_, err := f.st.Accounts().Get(t.Context(), f.acc)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// TestDeleteSingleLogout: the confirmed deletion erases the account and
// its sessions and clears the cookie before SingleLogout writes anything,
// and hands it the session as it was before the erasure (Erase takes the
// OIDC clients off it and then deletes it) with the goodbye page, in the
// chosen language, as where to end. The browser leaves for the SP: when
// the SP never answers, nothing comes back to life.
func TestDeleteSingleLogout(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		for _, tc := range []struct{ query, want string }{
			{"?lang=en", "/account/deleted?lang=en"},
			{"?lang=de", "/account/deleted?lang=de"},
			{"?lang=fr", "/account/deleted"},
			{"", "/account/deleted"},
		} {
			t.Run("lang"+tc.query, func(t *testing.T) {
				f := newDeleteFixture(t, dsn)
				w := f.do(http.MethodPost, "/account/delete"+tc.query, url.Values{"csrf": {"csrf-" + f.sid}, "confirm": {"yes"}})
				if len(f.calls) != 1 {
					t.Fatalf("SingleLogout ran %d times; response %d %s", len(f.calls), w.Code, w.Body)
				}
				c := f.calls[0]
				if !errors.Is(c.accountErr, store.ErrNotFound) || c.sessionsNow != 0 {
					t.Errorf("at the single logout the account is still there (%v) or has %d sessions", c.accountErr, c.sessionsNow)
				}
				if !strings.HasPrefix(c.cookie, sidCookie+"=;") || !strings.Contains(c.cookie, "Max-Age=0") {
					t.Errorf("session cookie not cleared before the single logout: %q", c.cookie)
				}
				if c.session.ID != f.sid || c.session.AccountID != f.acc || !slices.Equal(c.session.RelyingParties, []string{"sp", "amt"}) {
					t.Errorf("single logout of %+v, want the session with sp and amt as before the erasure", c.session)
				}
				if c.returnURL != tc.want {
					t.Errorf("return URL %q, want %q", c.returnURL, tc.want)
				}
				if w.Code != http.StatusFound || w.Header().Get("Location") != "https://sp.example/slo?SAMLRequest=x" {
					t.Errorf("response %d %v", w.Code, w.Header())
				}
				// The SP never answers; the browser comes back on its own.
				if p := f.do(http.MethodGet, "/account", nil); p.Code != http.StatusUnauthorized {
					t.Errorf("dashboard after the deletion: %d", p.Code)
				}
				if p := f.do(http.MethodPost, "/account/delete", url.Values{"csrf": {"csrf-" + f.sid}, "confirm": {"yes"}}); p.Code != http.StatusUnauthorized || len(f.calls) != 1 {
					t.Errorf("deleting again: %d, %d single logouts", p.Code, len(f.calls))
				}
				if f.accountThere(t) {
					t.Error("the account is back")
				}
				if ss, err := f.st.Sessions().ListByAccount(t.Context(), f.acc); err != nil || len(ss) != 0 {
					t.Errorf("sessions after the deletion: %v %v", ss, err)
				}
			})
		}

		t.Run("without SingleLogout", func(t *testing.T) {
			f := newDeleteFixture(t, dsn)
			f.d.SingleLogout = nil
			mux := http.NewServeMux()
			f.d.Routes(mux)
			f.mux = mux
			w := f.do(http.MethodPost, "/account/delete?lang=en", url.Values{"csrf": {"csrf-" + f.sid}, "confirm": {"yes"}})
			if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/account/deleted?lang=en" || f.accountThere(t) {
				t.Errorf("%d %v, account there: %v", w.Code, w.Header(), f.accountThere(t))
			}
		})
	})
}

// TestDeleteRefused: a bad CSRF token, a missing confirmation and a
// failed erasure delete nothing and start no single logout; without a
// session there is nothing to delete.
func TestDeleteRefused(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dsn string) {
		for _, tc := range []struct {
			name       string
			form       url.Values // csrf "VALID" stands for the session's token
			revokeFail error
			status     int
			page       string
		}{
			{"forged csrf", url.Values{"csrf": {"csrf-other"}, "confirm": {"yes"}}, nil, http.StatusForbidden, "page=error lang=en"},
			{"no csrf", url.Values{"confirm": {"yes"}}, nil, http.StatusForbidden, "page=error lang=en"},
			{"not confirmed", url.Values{"csrf": {"VALID"}}, nil, http.StatusBadRequest, "page=account_delete lang=en"},
			{"confirmed otherwise", url.Values{"csrf": {"VALID"}, "confirm": {"on"}}, nil, http.StatusBadRequest, "page=account_delete lang=en"},
			{"revocation fails", url.Values{"csrf": {"VALID"}, "confirm": {"yes"}}, errors.New("token store down"), http.StatusInternalServerError, "page=error lang=en"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				f := newDeleteFixture(t, dsn)
				f.revoker.fail = tc.revokeFail
				if tc.form.Get("csrf") == "VALID" {
					tc.form.Set("csrf", "csrf-"+f.sid)
				}
				w := f.do(http.MethodPost, "/account/delete?lang=en", tc.form)
				if w.Code != tc.status || w.Body.String() != tc.page {
					t.Errorf("%d %q, want %d %q", w.Code, w.Body, tc.status, tc.page)
				}
				if len(f.calls) != 0 || w.Header().Get("Location") != "" || w.Header().Get("Set-Cookie") != "" {
					t.Errorf("single logout %d times, headers %v", len(f.calls), w.Header())
				}
				if !f.accountThere(t) {
					t.Error("the account is gone")
				}
				if s, err := f.st.Sessions().Get(t.Context(), f.sid); err != nil || s.AccountID != f.acc {
					t.Errorf("session: %v %v", s, err)
				}
			})
		}
		t.Run("no session", func(t *testing.T) {
			f := newDeleteFixture(t, dsn)
			r := httptest.NewRequest(http.MethodPost, "/account/delete", strings.NewReader(url.Values{"csrf": {"csrf-" + f.sid}, "confirm": {"yes"}}.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			w := httptest.NewRecorder()
			f.mux.ServeHTTP(w, r)
			if w.Code != http.StatusUnauthorized || len(f.calls) != 0 || !f.accountThere(t) {
				t.Errorf("%d, %d single logouts", w.Code, len(f.calls))
			}
		})
	})
}
