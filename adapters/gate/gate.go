// Package gate is forward authentication for services behind a reverse
// proxy: the proxy asks the gate about every request (nginx auth_request,
// Traefik ForwardAuth), and the gate answers from the broker session (or a
// bearer access token) and a fresh policy decision, so that leaving the
// permitted network or hours ends access without a new login.
//
// One core, a variant per proxy:
//
//	GET /gate/auth     nginx auth_request: 200 with identity headers; 401
//	                   with Location (the login) when there is no session or
//	                   a step-up is needed; 403 with X-Gate-Reason when the
//	                   policy denies. nginx passes on only 2xx, 401 and 403.
//	GET /gate/traefik  Traefik ForwardAuth: the same, but a redirect (302)
//	                   to the login instead of 401, and the deny page as the
//	                   403 body, since Traefik hands non-2xx answers to the
//	                   client.
//	GET /gate/login    starts a login for the service of ?rd= and returns
//	                   to rd afterwards (only to the service's hosts).
//	GET /gate/denied   the deny page for ?reason= (nginx error_page).
//
// The original request comes from X-Original-Method / X-Original-URI
// (nginx) or X-Forwarded-Method / X-Forwarded-Uri / X-Forwarded-Host
// (Traefik), and the client address from X-Forwarded-For or X-Real-IP;
// all of these are believed only from the configured proxy addresses, and
// any other peer is refused.
package gate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/trustbroker/trustbroker/broker"
	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/broker/loa"
	"github.com/trustbroker/trustbroker/broker/session"
	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/broker/ui"
	"github.com/trustbroker/trustbroker/broker/web"
	"github.com/trustbroker/trustbroker/consent"
	"github.com/trustbroker/trustbroker/policy"
	"github.com/trustbroker/trustbroker/policy/location"
	"github.com/trustbroker/trustbroker/providers"
)

// Protocol is the adapter name login transactions of the gate carry.
const Protocol = "gate"

// Token is what a valid bearer access token stands for.
type Token struct {
	AccountID  string
	ClientID   string
	LoA        loa.Level
	Kind       string
	AMR        []string
	Attributes map[string]any
}

// TokenVerifier checks bearer access tokens (the OpenID Provider's); an
// invalid or unknown token is an error.
type TokenVerifier interface {
	VerifyAccessToken(ctx context.Context, token string) (*Token, error)
}

// Broker is what the gate needs of the login flow.
type Broker interface {
	StartLogin(w http.ResponseWriter, r *http.Request, sr broker.StartRequest) error
	CurrentSession(r *http.Request) (*store.Session, error)
	RelyingParty(id string) (*config.RelyingParty, bool)
	Subject(rp *config.RelyingParty, accountID string) string
}

// Options wire a Gate. Tokens, Locator and Logger are optional.
type Options struct {
	Broker   Broker
	Policy   policy.DecisionPoint
	Consent  consent.Step
	Audit    store.Audit
	UI       *ui.UI
	Locator  *location.Locator
	Tokens   TokenVerifier
	Config   config.Gate
	Issuer   string
	TimeZone *time.Location
	Now      func() time.Time
	Logger   *slog.Logger
}

// Gate answers forward-auth requests.
type Gate struct {
	o       Options
	proxies []netip.Prefix
	byHost  map[string]*config.GateService
}

var _ broker.Adapter = (*Gate)(nil)

// New builds the gate.
func New(o Options) (*Gate, error) {
	if o.Broker == nil || o.Policy == nil || o.Consent == nil || o.Audit == nil || o.UI == nil || o.Now == nil {
		return nil, errors.New("gate: broker, policy, consent, audit, ui and clock are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.TimeZone == nil {
		o.TimeZone = time.UTC
	}
	g := &Gate{o: o, byHost: map[string]*config.GateService{}}
	for _, p := range o.Config.Proxies {
		pr, err := location.ParsePrefix(p)
		if err != nil {
			return nil, fmt.Errorf("gate: proxy %w", err)
		}
		g.proxies = append(g.proxies, pr)
	}
	for i := range o.Config.Services {
		s := &o.Config.Services[i]
		if _, ok := o.Broker.RelyingParty(s.ID); !ok {
			return nil, fmt.Errorf("gate: service %s has no relying party", s.ID)
		}
		for _, h := range s.Hosts {
			g.byHost[strings.ToLower(h)] = s
		}
	}
	return g, nil
}

// Protocol implements broker.Adapter.
func (g *Gate) Protocol() string { return Protocol }

// Routes adds the gate's endpoints.
func (g *Gate) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /gate/auth", func(w http.ResponseWriter, r *http.Request) { g.handleAuth(w, r, variantNginx) })
	mux.HandleFunc("GET /gate/traefik", func(w http.ResponseWriter, r *http.Request) { g.handleAuth(w, r, variantTraefik) })
	mux.HandleFunc("GET /gate/login", g.handleLogin)
	mux.HandleFunc("GET /gate/denied", g.handleDenied)
}

type variant int

const (
	variantNginx variant = iota
	variantTraefik
)

// original is the request the proxy asks about.
type original struct {
	method, host, path, url string
	clientIP                string
}

// fromProxy reports whether the peer is a configured proxy.
func (g *Gate) fromProxy(r *http.Request) bool {
	return g.isProxy(peerAddr(r))
}

func peerAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (g *Gate) isProxy(ip string) bool {
	a := location.ParseAddr(ip)
	if !a.IsValid() {
		return false
	}
	for _, p := range g.proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// readOriginal reads the original request from the proxy's headers.
func (g *Gate) readOriginal(r *http.Request) (original, error) {
	o := original{method: first(r.Header.Get("X-Original-Method"), r.Header.Get("X-Forwarded-Method"))}
	o.host = strings.ToLower(first(r.Header.Get("X-Forwarded-Host"), r.Header.Get("X-Original-Host"), r.Host))
	uri := first(r.Header.Get("X-Original-URI"), r.Header.Get("X-Forwarded-Uri"))
	if full := r.Header.Get("X-Original-URL"); uri == "" && full != "" {
		if u, err := url.Parse(full); err == nil {
			uri, o.host = u.RequestURI(), strings.ToLower(u.Host)
		}
	}
	if o.method == "" || uri == "" || o.host == "" {
		return o, errors.New("the proxy sent no original method, URI or host")
	}
	if !strings.HasPrefix(uri, "/") {
		return o, errors.New("the original URI is not a path")
	}
	u, err := url.ParseRequestURI(uri)
	if err != nil {
		return o, fmt.Errorf("the original URI: %w", err)
	}
	// The path the policy sees is decoded and cleaned, so that /a/../b and
	// /a/%2e%2e/b are /b, as the service will read them.
	o.path = path.Clean(u.Path)
	if strings.HasSuffix(u.Path, "/") && o.path != "/" {
		o.path += "/"
	}
	proto := first(r.Header.Get("X-Forwarded-Proto"), "http")
	if proto != "http" && proto != "https" {
		proto = "https"
	}
	o.url = proto + "://" + o.host + uri
	o.clientIP = g.clientIP(r)
	return o, nil
}

// clientIP is the rightmost X-Forwarded-For entry that is not a proxy,
// else X-Real-IP, else the peer.
func (g *Gate) clientIP(r *http.Request) string {
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		h := strings.TrimSpace(hops[i])
		if !location.ParseAddr(h).IsValid() {
			break
		}
		if !g.isProxy(h) {
			return h
		}
	}
	if ip := strings.TrimSpace(r.Header.Get("X-Real-IP")); location.ParseAddr(ip).IsValid() {
		return ip
	}
	return peerAddr(r)
}

func first(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// who is the authenticated caller of a proxied request.
type who struct {
	accountID  string
	loa        loa.Level
	kind       string
	amr        []string
	attributes map[string]any
	via        string // "session" or "token"
}

func (g *Gate) handleAuth(w http.ResponseWriter, r *http.Request, v variant) {
	web.NoStore(w)
	ctx := r.Context()
	if !g.fromProxy(r) {
		g.o.Logger.WarnContext(ctx, "gate: request from an address that is not a configured proxy", "peer", peerAddr(r))
		http.Error(w, "forbidden: not a configured proxy", http.StatusForbidden)
		return
	}
	orig, err := g.readOriginal(r)
	if err != nil {
		http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
		return
	}
	svc, ok := g.byHost[orig.host]
	if !ok {
		g.deny(w, r, v, policy.ReasonNoAccess)
		g.audit(ctx, "gate", orig.host, store.OutcomeDenied, "unknown host", nil)
		return
	}
	rp, _ := g.o.Broker.RelyingParty(svc.ID)
	caller, err := g.authenticate(r)
	if err != nil {
		g.o.Logger.ErrorContext(ctx, "gate: session lookup", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if caller == nil {
		g.login(w, r, v, orig, loa.None, nil)
		return
	}
	pc := policy.Context{
		ClientIP: orig.clientIP, Time: g.o.Now().In(g.o.TimeZone), LoA: caller.loa, CredentialKind: caller.kind,
		HardwareToken: slices.Contains(caller.amr, "hwk") || slices.Contains(caller.amr, "sc"),
	}
	g.o.Locator.Apply(&pc)
	sub := policy.Subject{AccountID: caller.accountID, Attributes: caller.attributes}
	dec, err := g.o.Policy.Decide(ctx, policy.Request{Subject: sub, Resource: svc.ID, Path: orig.path, Action: orig.method, Context: pc})
	if err != nil {
		g.o.Logger.ErrorContext(ctx, "gate: policy decision", "err", err)
		g.deny(w, r, v, policy.ReasonUnknown)
		return
	}
	if dec.Effect != policy.Allow || g.o.Config.Audit != "deny" {
		details := policy.AuditDetails(dec, pc)
		details["method"], details["path"], details["via"] = orig.method, orig.path, caller.via
		g.audit(ctx, caller.accountID, svc.ID, string(dec.Effect), dec.Rule+": "+dec.Reason, details)
	}
	switch dec.Effect {
	case policy.Allow:
		if err := g.identityHeaders(ctx, w, sub, caller, svc, rp); err != nil {
			g.o.Logger.ErrorContext(ctx, "gate: consent", "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	case policy.StepUp:
		if caller.via == "token" {
			// A token cannot be stepped up by a redirect.
			w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_user_authentication"`)
			g.deny(w, r, v, dec.Public)
			return
		}
		g.login(w, r, v, orig, dec.RequiredLoA, dec.RequiredKinds)
	default:
		g.deny(w, r, v, dec.Public)
	}
}

// authenticate finds the caller: a bearer token when one is sent (and a
// verifier is configured), else the broker session; nil when neither.
func (g *Gate) authenticate(r *http.Request) (*who, error) {
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && g.o.Tokens != nil {
		t, err := g.o.Tokens.VerifyAccessToken(r.Context(), strings.TrimSpace(tok))
		if err != nil {
			return nil, nil
		}
		return &who{accountID: t.AccountID, loa: t.LoA, kind: t.Kind, amr: t.AMR, attributes: t.Attributes, via: "token"}, nil
	}
	s, err := g.o.Broker.CurrentSession(r)
	if errors.Is(err, session.ErrNoSession) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	c := &who{accountID: s.AccountID, kind: s.CredentialKind, amr: s.AMR, via: "session"}
	c.loa, _ = loa.Parse(s.LoA)
	var id providers.Identity
	if len(s.Identity) > 0 && json.Unmarshal(s.Identity, &id) == nil {
		c.attributes = id.Attributes
	}
	return c, nil
}

// identityHeaders sets the configured identity headers: subject (as the
// relying party sees it), name, roles, level of assurance, and the
// consented attributes only.
func (g *Gate) identityHeaders(ctx context.Context, w http.ResponseWriter, sub policy.Subject, c *who, svc *config.GateService, rp *config.RelyingParty) error {
	h := w.Header()
	var req []consent.Requested
	for _, cl := range rp.Claims {
		_, has := c.attributes[cl.Name]
		req = append(req, consent.Requested{Name: cl.Name, Required: cl.Required, Available: has})
	}
	ev, err := g.o.Consent.Evaluate(ctx, c.accountID, rp.ID, req)
	if err != nil {
		return err
	}
	granted := func(name string) string {
		if !slices.Contains(ev.Granted, name) {
			return ""
		}
		return headerValue(c.attributes[name])
	}
	if svc.Headers.Subject != "" {
		h.Set(svc.Headers.Subject, g.o.Broker.Subject(rp, c.accountID))
	}
	if svc.Headers.Name != "" {
		if name := strings.TrimSpace(granted("given_name") + " " + granted("family_name")); name != "" {
			h.Set(svc.Headers.Name, name)
		}
	}
	if svc.Headers.Roles != "" {
		if rl, ok := g.o.Policy.(policy.RoleLister); ok {
			h.Set(svc.Headers.Roles, strings.Join(rl.Roles(sub), ","))
		}
	}
	if svc.Headers.LoA != "" {
		h.Set(svc.Headers.LoA, c.loa.String())
	}
	for attr, header := range svc.Attributes {
		if v := granted(attr); v != "" {
			h.Set(header, v)
		}
	}
	return nil
}

// headerValue renders an attribute for a header: strings as they are,
// anything else as JSON; control characters are dropped.
func headerValue(v any) string {
	var s string
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		s = x
	default:
		b, _ := json.Marshal(x)
		s = string(b)
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

// login answers a request without a (sufficient) session: the login URL,
// in Location with 401 for nginx, as a redirect for Traefik.
func (g *Gate) login(w http.ResponseWriter, r *http.Request, v variant, orig original, level loa.Level, kinds []string) {
	q := url.Values{"rd": {orig.url}}
	if level > loa.None {
		q.Set("loa", level.String())
	}
	if len(kinds) > 0 {
		q.Set("kinds", strings.Join(kinds, " "))
	}
	target := g.o.Issuer + "/gate/login?" + q.Encode()
	w.Header().Set("Location", target)
	if v == variantTraefik {
		w.WriteHeader(http.StatusFound)
		return
	}
	w.Header().Set("WWW-Authenticate", `Trustbroker realm="gate"`)
	w.WriteHeader(http.StatusUnauthorized)
}

// deny answers 403 with the safe reason: a header for nginx (whose
// error_page can show /gate/denied), the page itself for Traefik.
func (g *Gate) deny(w http.ResponseWriter, r *http.Request, v variant, reason string) {
	if reason == "" {
		reason = policy.ReasonNoAccess
	}
	w.Header().Set("X-Gate-Reason", reason)
	if v == variantTraefik {
		g.denyPage(w, r, reason)
		return
	}
	w.WriteHeader(http.StatusForbidden)
}

func (g *Gate) denyPage(w http.ResponseWriter, r *http.Request, reason string) {
	lang := ui.Lang(r)
	g.o.UI.Render(w, r, http.StatusForbidden, "error", lang, struct{ Message, RequestID string }{
		policy.PublicReason(reason, lang), web.RequestID(r.Context())})
}

// handleDenied shows the deny page for a reason code.
func (g *Gate) handleDenied(w http.ResponseWriter, r *http.Request) {
	web.NoStore(w)
	g.denyPage(w, r, r.URL.Query().Get("reason"))
}

// loginRequest is the gate's own part of a login transaction.
type loginRequest struct {
	ReturnTo string `json:"rd"`
}

// handleLogin starts a login for the service that rd belongs to.
func (g *Gate) handleLogin(w http.ResponseWriter, r *http.Request) {
	web.NoStore(w)
	q := r.URL.Query()
	rd, err := url.Parse(q.Get("rd"))
	var svc *config.GateService
	if err == nil && (rd.Scheme == "http" || rd.Scheme == "https") && rd.User == nil {
		svc = g.byHost[strings.ToLower(rd.Host)]
	}
	if svc == nil {
		// Only the hosts of a configured service: no open redirect.
		g.o.UI.Render(w, r, http.StatusBadRequest, "error", ui.Lang(r), struct{ Message, RequestID string }{
			g.o.UI.Text(ui.Lang(r), "error.tx_unknown"), web.RequestID(r.Context())})
		return
	}
	raw, _ := json.Marshal(loginRequest{ReturnTo: rd.String()})
	sr := broker.StartRequest{Protocol: Protocol, RPID: svc.ID, Request: raw, Lang: q.Get("lang")}
	// A step-up: the level and the credential kinds the policy asked for,
	// and a fresh login (the session did not satisfy the rule).
	if l, err := loa.Parse(q.Get("loa")); err == nil {
		sr.RequestedLoA = l
		sr.Prompt = []string{"login"}
	}
	if k := strings.Fields(q.Get("kinds")); len(k) > 0 {
		sr.Kinds = k
		sr.Prompt = []string{"login"}
	}
	if err := g.o.Broker.StartLogin(w, r, sr); err != nil {
		g.o.Logger.ErrorContext(r.Context(), "gate: start login", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
	}
}

// Resume implements broker.Adapter: back to the service after a login, or
// the error page with the safe reason.
func (g *Gate) Resume(w http.ResponseWriter, r *http.Request, tx *store.Transaction, res *broker.Result, ferr *broker.FlowError) {
	var lr loginRequest
	_ = json.Unmarshal(tx.Request, &lr)
	rd, err := url.Parse(lr.ReturnTo)
	if ferr != nil || res == nil || err != nil || g.byHost[strings.ToLower(rd.Host)] == nil {
		reason := policy.ReasonNoAccess
		if ferr != nil && ferr.Reason != "" {
			reason = ferr.Reason
		}
		var params struct {
			Lang string `json:"lang"`
		}
		_ = json.Unmarshal(tx.Params, &params)
		lang := ui.Lang(r, params.Lang)
		g.o.UI.Render(w, r, http.StatusForbidden, "error", lang, struct{ Message, RequestID string }{
			policy.PublicReason(reason, lang), web.RequestID(r.Context())})
		return
	}
	http.Redirect(w, r, rd.String(), http.StatusSeeOther)
}

func (g *Gate) audit(ctx context.Context, actor, target, outcome, reason string, details map[string]any) {
	ev := &store.AuditEvent{Time: g.o.Now(), Actor: actor, Action: "gate.decide", Target: target, Outcome: outcome,
		Reason: reason, RequestID: web.RequestID(ctx)}
	if details != nil {
		ev.Details, _ = json.Marshal(details)
	}
	if err := g.o.Audit.Append(ctx, ev); err != nil {
		g.o.Logger.ErrorContext(ctx, "gate: audit append failed", "err", err)
	}
}
