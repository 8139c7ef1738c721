// Package demo is the demo relying party at /demo: a page with a login
// button that sends the browser through the broker and shows what came
// back (subject, acr, amr, the consented claims). It talks to the broker
// in-process through the adapter contract; once the OpenID Provider is
// in, the demo logs in through it like any relying party.
package demo

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/trustbroker/trustbroker/broker"
	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/broker/ui"
	"github.com/trustbroker/trustbroker/broker/web"
)

// Protocol is the adapter name in login transactions.
const Protocol = "demo"

// Adapter is the demo relying party.
type Adapter struct {
	Broker  *broker.Broker
	UI      *ui.UI
	CSRF    *web.CSRF
	Cookies web.Cookies
	// RPID is the registration the demo logs in as.
	RPID string
	Rand io.Reader
	Now  func() time.Time
}

var _ broker.Adapter = (*Adapter)(nil)

// Protocol implements broker.Adapter.
func (a *Adapter) Protocol() string { return Protocol }

// Routes adds /demo to mux.
func (a *Adapter) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /demo", a.home)
	mux.HandleFunc("POST /demo/login", a.login)
}

// browser returns the per-browser value the demo's CSRF token binds to,
// setting it on first visit.
func (a *Adapter) browser(w http.ResponseWriter, r *http.Request) (string, error) {
	if v := a.Cookies.Get(r, "tb_demo", "/"); v != "" {
		return v, nil
	}
	var b [24]byte
	if _, err := io.ReadFull(a.Rand, b[:]); err != nil {
		return "", err
	}
	v := fmt.Sprintf("%x", b)
	a.Cookies.Set(w, "tb_demo", "/", v, 0)
	return v, nil
}

func (a *Adapter) home(w http.ResponseWriter, r *http.Request) {
	web.NoStore(w)
	v, err := a.browser(w, r)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	a.UI.Render(w, r, http.StatusOK, "demo_home", ui.Lang(r), struct{ CSRF string }{a.CSRF.Token("demo|" + v)})
}

func (a *Adapter) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	v := a.Cookies.Get(r, "tb_demo", "/")
	if err := r.ParseForm(); err != nil || !a.CSRF.Valid("demo|"+v, r.PostForm.Get("csrf")) {
		http.Error(w, "invalid form token: reload the demo page", http.StatusForbidden)
		return
	}
	err := a.Broker.StartLogin(w, r, broker.StartRequest{Protocol: Protocol, RPID: a.RPID, Lang: ui.Lang(r)})
	if err != nil {
		http.Error(w, "cannot start the login", http.StatusInternalServerError)
	}
}

type claimRow struct{ Name, Value string }

type resultPage struct {
	Claims []claimRow
	Error  string
}

// Resume shows what the relying party received.
func (a *Adapter) Resume(w http.ResponseWriter, r *http.Request, tx *store.Transaction, res *broker.Result, ferr *broker.FlowError) {
	lang := ui.Lang(r)
	if ferr != nil {
		a.UI.Render(w, r, http.StatusOK, "demo_result", lang, resultPage{Error: ferr.Code + ": " + ferr.Description})
		return
	}
	rows := []claimRow{
		{"sub", res.Subject},
		{"acr", res.ACR},
		{"amr", strings.Join(res.AMR, " ")},
		{"auth_time", res.AuthTime.UTC().Format(time.RFC3339)},
		{"sso", fmt.Sprint(res.SSO)},
	}
	names := make([]string, 0, len(res.Claims))
	for n := range res.Claims {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		rows = append(rows, claimRow{n, render(res.Claims[n])})
	}
	if res.Identity.Evidence != nil {
		rows = append(rows, claimRow{"verified_claims.verification", render(res.Identity.Evidence)})
	}
	a.UI.Render(w, r, http.StatusOK, "demo_result", lang, resultPage{Claims: rows})
}

func render(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}
