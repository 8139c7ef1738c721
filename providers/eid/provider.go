// Package eid logs users in with the German eID (nPA, eAT, eID card for
// EU citizens) through a certified eID-Server: the broker is the eService
// of BSI TR-03130-1 and speaks the SOAP eID-Interface (useID, getResult,
// getServerInfo) over mutually authenticated TLS with WS-Security (package
// wsse). The eID client (AusweisApp) is activated per TR-03124-1: the
// broker serves the TC token at a tcTokenURL bound to the login, the
// activation page links to the local client, and the client returns the
// browser to the RefreshAddress, the broker's callback, where the result is
// polled with getResult.
//
// The simulator of an eID-Server and eID client for the demo and the tests
// is in eidsim.
package eid

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/trustbroker/trustbroker/broker/loa"
	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/broker/web"
	"github.com/trustbroker/trustbroker/providers"
	"github.com/trustbroker/trustbroker/providers/eid/wsse"
)

// Provider is a RedirectProvider with endpoints of its own (the
// activation page and the TC token).
type Provider struct {
	id     string
	s      *Settings
	client *Client
	st     store.Store
	now    func() time.Time
	issuer string
}

var (
	_ providers.RedirectProvider = (*Provider)(nil)
	_ providers.EndpointProvider = (*Provider)(nil)
)

// New builds a provider from validated settings. Logins need the broker's
// store (one-time use of TC tokens, sessions and answers); without one (a
// configuration check) they fail.
func New(id string, s *Settings, deps providers.Deps) (*Provider, error) {
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	signer, err := wsse.NewSigner(s.Signer, s.SignerCert, now)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{TLSClientConfig: s.TLS, MaxIdleConnsPerHost: 4, IdleConnTimeout: 60 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second, ResponseHeaderTimeout: s.Timeout}
	p := &Provider{
		id: id, s: s, st: deps.Store, now: now, issuer: strings.TrimRight(deps.Issuer, "/"),
		client: &Client{
			URL: s.ServerURL, HTTP: &http.Client{Transport: tr, Timeout: s.Timeout,
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
			Signer:   signer,
			Verifier: &wsse.Verifier{Certs: s.ServerCerts, Now: now, RequireTimestamp: !s.TimestampOptional},
			Now:      now,
		},
	}
	if deps.Store != nil {
		p.client.Replay = deps.Store.Replay()
	}
	return p, nil
}

// ID implements providers.Provider.
func (p *Provider) ID() string { return p.id }

// Kind implements providers.Provider.
func (p *Provider) Kind() string { return providers.KindEID }

// MaxLoA implements providers.Provider.
func (p *Provider) MaxLoA() loa.Level { return p.s.LoA }

// Client is the SOAP client (for getServerInfo checks and tests).
func (p *Provider) Client() *Client { return p.client }

// Close stops what the provider owns (the simulator of an
// "eid-simulator" provider).
func (p *Provider) Close() error {
	if p.s.Closer != nil {
		return p.s.Closer.Close()
	}
	return nil
}

// state is what the provider keeps in the login transaction between Begin
// and Complete.
type state struct {
	Session string `json:"session"`
	// PSK of TLS-2 and the eCardServerAddress, for the TC token: the key
	// sealed under the activation secret (psk.go).
	PSKID     string `json:"psk_id"`
	PSKSealed string `json:"psk_sealed"`
	// PSKKey is the key in clear, as logins begun before the sealing
	// kept it (read only; logins last minutes).
	PSKKey  string   `json:"psk_key,omitempty"`
	Server  string   `json:"server"`
	Secret  string   `json:"secret"` // SHA-256 (hex) of the activation secret
	Age     int      `json:"age,omitempty"`
	Place   bool     `json:"place,omitempty"`
	Request []string `json:"request"` // requested operations, for the page
	// Link is set when a signed-in user adds a card to the account
	// (account.go), not in a login.
	Link *linkState `json:"link,omitempty"`
}

// Begin calls useID and sends the browser to the activation page.
func (p *Provider) Begin(ctx context.Context, req providers.Request) (string, []byte, error) {
	if p.st == nil {
		return "", nil, errors.New("eid: no store: the provider was built for a configuration check")
	}
	ur, age, place := p.s.UseIDRequest(req.Attributes)
	if p.s.EServicePSK {
		ur.PSK = &PSK{ID: randomHex(16), Key: randomHex(32)}
	}
	resp, err := p.client.UseID(ctx, ur)
	if err != nil {
		return "", nil, unreachable(req.Lang, err)
	}
	if !resp.Result.OK() {
		return "", nil, MinorError(resp.Result.Minor, req.Lang, fmt.Errorf("eid: useID: %s %s %s", resp.Result.Major, resp.Result.Minor, resp.Result.Message))
	}
	if resp.Session == nil || !ValidSessionID(resp.Session.ID) {
		return "", nil, MinorError(MinorInternalError, req.Lang, errors.New("eid: useID answered without a valid session id"))
	}
	if err := ValidPSK(resp.PSK); err != nil {
		return "", nil, MinorError(MinorInvalidPSK, req.Lang, fmt.Errorf("eid: useID: %w", err))
	}
	if ur.PSK != nil && (resp.PSK.ID != ur.PSK.ID || !strings.EqualFold(resp.PSK.Key, ur.PSK.Key)) {
		// TR-03130-1 §3.2.1: a PSK other than the one sent ends the session.
		return "", nil, MinorError(MinorInvalidPSK, req.Lang, errors.New("eid: useID answered another PSK than the eService sent"))
	}
	server := resp.ECardServerAddress
	if server == "" {
		server = p.s.ECardServerAddress
	}
	if err := checkTokenURL(server); err != nil {
		return "", nil, MinorError(MinorInternalError, req.Lang, fmt.Errorf("eid: eCardServerAddress %q: %w", server, err))
	}
	secret := randomToken()
	sum := sha256.Sum256([]byte(secret))
	sealed, err := sealPSK(secret, resp.PSK.ID, resp.Session.ID, resp.PSK.Key)
	if err != nil {
		return "", nil, MinorError(MinorInternalError, req.Lang, err)
	}
	st, _ := json.Marshal(state{
		Session: resp.Session.ID, PSKID: resp.PSK.ID, PSKSealed: sealed, Server: server,
		Secret: hex.EncodeToString(sum[:]), Age: age, Place: place, Request: requestedLabels(ur),
	})
	return p.endpoint("activate", req.TransactionID, secret), st, nil
}

// endpoint is the absolute URL of one of the provider's endpoints for a
// login.
func (p *Provider) endpoint(kind, tx, secret string) string {
	return p.issuer + "/providers/" + url.PathEscape(p.id) + "/" + kind + "/" + url.PathEscape(tx) + "/" + url.PathEscape(secret)
}

// Complete reads the eID client's result at the RefreshAddress and polls
// getResult.
func (p *Provider) Complete(ctx context.Context, req providers.Request, raw []byte, cb *http.Request) (*providers.Identity, error) {
	var st state
	if err := json.Unmarshal(raw, &st); err != nil || st.Session == "" || st.Link != nil {
		return nil, MinorError(MinorInvalidSession, req.Lang, errors.New("eid: no eID session in the login"))
	}
	return p.collect(ctx, req.Lang, &st, cb.URL.Query())
}

// collect reads the eID client's result and polls getResult, once per
// eID session.
func (p *Provider) collect(ctx context.Context, lang string, st *state, q url.Values) (*providers.Identity, error) {
	req := providers.Request{Lang: lang}
	switch major := q.Get("ResultMajor"); major {
	case "ok", MajorOK:
	case "":
		return nil, publicError("eid_no_result", req.Lang,
			"Die Ausweis-App hat kein Ergebnis gemeldet. Bitte starten Sie den Vorgang erneut.",
			"The ID app reported no result. Please start again.", errors.New("eid: RefreshAddress without ResultMajor"))
	default:
		minor := q.Get("ResultMinor")
		return nil, MinorError(minor, req.Lang, fmt.Errorf("eid: eID client ended with %s %s", major, minor))
	}
	// One getResult sequence per eID session: a second visit of the
	// RefreshAddress would restart the request counter.
	sum := sha256.Sum256([]byte(st.Session))
	if err := p.st.Replay().Use(ctx, "eid.session", hex.EncodeToString(sum[:]), p.now().Add(time.Hour)); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, MinorError(MinorInvalidCounter, req.Lang, errors.New("eid: the result of this eID session was already collected"))
		}
		return nil, err
	}
	for counter := 1; counter <= p.s.MaxPolls; counter++ {
		res, err := p.client.GetResult(ctx, st.Session, counter)
		if errors.Is(err, ErrReplayed) {
			return nil, MinorError(MinorInvalidCounter, req.Lang, err)
		}
		if err != nil {
			return nil, unreachable(req.Lang, err)
		}
		if res.Result.OK() {
			return p.identity(res, st, req.Lang)
		}
		if res.Result.Minor != MinorNoResultYet {
			return nil, MinorError(res.Result.Minor, req.Lang, fmt.Errorf("eid: getResult: %s %s %s", res.Result.Major, res.Result.Minor, res.Result.Message))
		}
		wait := min(p.s.PollInterval*time.Duration(counter), 3*time.Second)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
	return nil, MinorError(MinorNoResultYet, req.Lang, fmt.Errorf("eid: no result after %d getResult calls", p.s.MaxPolls))
}

func unreachable(lang string, err error) *providers.Error {
	return publicError("eid_unreachable", lang,
		"Der Ausweis-Server ist nicht erreichbar oder hat nicht vertrauenswürdig geantwortet. Bitte versuchen Sie es später erneut.",
		"The ID card server cannot be reached or did not answer in a trustworthy way. Please try again later.", err)
}

// Endpoints serves the activation page and the TC token under
// /providers/{id}/.
func (p *Provider) Endpoints(host providers.EndpointHost) http.Handler {
	mux := http.NewServeMux()
	base := "/providers/" + p.id + "/"
	mux.HandleFunc("GET "+base+"activate/{tx}/{k}", func(w http.ResponseWriter, r *http.Request) { p.activate(w, r, host) })
	mux.HandleFunc("GET "+base+"tctoken/{tx}/{k}", func(w http.ResponseWriter, r *http.Request) { p.tcToken(w, r, host) })
	return mux
}

// pending finds the login of an endpoint request and checks its secret.
func (p *Provider) pending(r *http.Request, host providers.EndpointHost) (providers.Request, *state, error) {
	tx, k := r.PathValue("tx"), r.PathValue("k")
	req, raw, err := host.Pending(r.Context(), p.id, tx)
	if err != nil {
		return req, nil, err
	}
	var st state
	if err := json.Unmarshal(raw, &st); err != nil || st.Secret == "" {
		return req, nil, store.ErrNotFound
	}
	sum := sha256.Sum256([]byte(k))
	want, _ := hex.DecodeString(st.Secret)
	if subtle.ConstantTimeCompare(sum[:], want) != 1 {
		return req, nil, store.ErrNotFound
	}
	return req, &st, nil
}

type activatePage struct {
	ClientLink, MobileLink, StatusURL, OtherMethod string
	Requested                                      []string
	Simulator                                      bool
	// Account: a card is being added to the account (the way back leads
	// there, not to the method choice).
	Account bool
}

// activate renders the page that starts the eID client.
func (p *Provider) activate(w http.ResponseWriter, r *http.Request, host providers.EndpointHost) {
	web.NoStore(w)
	req, st, err := p.pending(r, host)
	lang := req.Lang
	if r.URL.Query().Has("lang") || lang == "" {
		lang = host.Lang(r)
	}
	if err != nil {
		host.Render(w, r, http.StatusNotFound, "error", lang, struct{ Message, RequestID string }{
			host.Text(lang, "error.tx_unknown"), web.RequestID(r.Context())})
		return
	}
	tcURL := p.endpoint("tctoken", r.PathValue("tx"), r.PathValue("k"))
	q := "?tcTokenURL=" + url.QueryEscape(tcURL)
	page := activatePage{
		ClientLink: p.s.ClientURL + q, StatusURL: p.s.ClientURL + "?Status=json",
		OtherMethod: strings.TrimSuffix(req.CallbackURL, "/callback"), Requested: st.Request, Simulator: p.s.Simulator,
	}
	if st.Link != nil {
		page.OtherMethod, page.Account = p.accountPath(), true
	}
	if p.s.MobileLink {
		page.MobileLink = "eid://127.0.0.1:24727/eID-Client" + q
	}
	// The page's script probes the local eID client (?Status): allow that
	// one origin for fetch.
	if u, err := url.Parse(p.s.ClientURL); err == nil {
		w.Header().Set("Content-Security-Policy", strings.Replace(web.ContentSecurityPolicy,
			"connect-src 'self'", "connect-src 'self' "+u.Scheme+"://"+u.Host, 1))
	}
	host.Render(w, r, http.StatusOK, "eid_activate", lang, page)
}

// tcToken hands the TC token to the eID client, once per login.
func (p *Provider) tcToken(w http.ResponseWriter, r *http.Request, host providers.EndpointHost) {
	web.NoStore(w)
	ctx, tx := r.Context(), r.PathValue("tx")
	req, st, err := p.pending(r, host)
	if err != nil {
		host.Audit(ctx, "eid-client", "eid.tctoken", tx, store.OutcomeDenied, "unknown login or secret", nil)
		http.Error(w, "unknown or expired login", http.StatusNotFound)
		return
	}
	sum := sha256.Sum256([]byte(st.Session))
	if err := p.st.Replay().Use(ctx, "eid.tctoken", hex.EncodeToString(sum[:]), p.now().Add(time.Hour)); err != nil {
		if errors.Is(err, store.ErrConflict) {
			host.Audit(ctx, "eid-client", "eid.tctoken", tx, store.OutcomeDenied, "TC token requested twice", nil)
			http.Error(w, "the TC token of this login was already fetched", http.StatusGone)
			return
		}
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	refresh := req.CallbackURL
	if st.Link != nil {
		refresh = p.linkedURL(tx)
	}
	key, err := st.PSKKey, error(nil)
	if st.PSKSealed != "" || key == "" {
		key, err = openPSK(r.PathValue("k"), st.PSKID, st.Session, st.PSKSealed)
	}
	if err != nil {
		host.Audit(ctx, "eid-client", "eid.tctoken", tx, store.OutcomeFailure, err.Error(), nil)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	tok := NewTCToken(st.Server, PSK{ID: st.PSKID, Key: key}, refresh, refresh)
	b, err := tok.Marshal()
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	host.Audit(ctx, "eid-client", "eid.tctoken", tx, store.OutcomeSuccess, "", nil)
	w.Header().Set("Content-Type", "text/xml;charset=utf-8")
	_, _ = w.Write(b)
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func randomToken() string {
	b := make([]byte, 32)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// Closer is what Close stops (the simulator of an "eid-simulator").
func (p *Provider) Closer() io.Closer { return p.s.Closer }
