package oidc

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/ory/fosite/token/jwt"

	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/broker/ui"
	"github.com/trustbroker/trustbroker/broker/web"
)

// PathLogout is the end_session_endpoint (OpenID Connect RP-Initiated
// Logout 1.0).
const PathLogout = "/oauth2/logout"

// PathLogoutDone shows that the user is logged out (the end of an
// RP-initiated logout through the SAML SPs without a
// post_logout_redirect_uri).
const PathLogoutDone = "/oauth2/logout/done"

// backchannelEvent is the event member of a logout token (OpenID Connect
// Back-Channel Logout 1.0 §2.4).
const backchannelEvent = "http://schemas.openid.net/event/backchannel-logout"

type logoutPage struct {
	CSRF, Action, ClientName string
	// Form carries the validated parameters through the confirmation.
	Form map[string]string
}

// logoutRequest is a validated end-session request.
type logoutRequest struct {
	client      *Client
	redirect    string // post_logout_redirect_uri, registered exactly
	state       string
	hintSubject string
	hintSID     string
	hintValid   bool
}

// parseLogout validates an end-session request (RP-Initiated Logout §2, §3).
func (p *Provider) parseLogout(ctx context.Context, form url.Values) (*logoutRequest, error) {
	lr := &logoutRequest{state: form.Get("state")}
	clientID := form.Get("client_id")
	if hint := form.Get("id_token_hint"); hint != "" {
		tok, err := p.signer.Decode(ctx, hint)
		var ve *jwt.ValidationError
		if err != nil && !(errors.As(err, &ve) && ve.Has(jwt.ValidationErrorExpired)) {
			return nil, errors.New("the id_token_hint is not an ID token of this provider")
		}
		aud := audiences(tok.Claims["aud"])
		if clientID != "" && !slices.Contains(aud, clientID) {
			return nil, errors.New("client_id does not match the id_token_hint")
		}
		if clientID == "" && len(aud) == 1 {
			clientID = aud[0]
		}
		lr.hintSubject, _ = tok.Claims["sub"].(string)
		lr.hintSID, _ = tok.Claims["sid"].(string)
		lr.hintValid = true
	}
	if clientID != "" {
		c, ok := p.clients[clientID]
		if !ok {
			return nil, errors.New("unknown client_id")
		}
		lr.client = c
	}
	if u := form.Get("post_logout_redirect_uri"); u != "" {
		if lr.client == nil {
			return nil, errors.New("post_logout_redirect_uri needs id_token_hint or client_id")
		}
		if !slices.Contains(lr.client.RP.OIDC.PostLogoutRedirectURIs, u) {
			return nil, errors.New("post_logout_redirect_uri is not registered for this client")
		}
		lr.redirect = u
	}
	return lr, nil
}

func audiences(v any) []string {
	switch a := v.(type) {
	case string:
		return []string{a}
	case []any:
		out := make([]string, 0, len(a))
		for _, x := range a {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// handleLogout: with a valid id_token_hint for the current session the
// user is logged out at once; otherwise the broker asks first, so a
// third-party page cannot log users out (logout CSRF).
func (p *Provider) handleLogout(w http.ResponseWriter, r *http.Request) {
	web.NoStore(w)
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		p.logoutError(w, r, "malformed request")
		return
	}
	lr, err := p.parseLogout(r.Context(), r.Form)
	if err != nil {
		p.logoutError(w, r, err.Error())
		return
	}
	confirmed := r.Method == http.MethodPost && r.PostForm.Get("confirm") == "yes"
	if confirmed && !p.o.CSRF.Valid("logout|"+p.logoutBinding(r), r.PostForm.Get("csrf")) {
		p.logoutError(w, r, "the confirmation form has expired")
		return
	}
	if !confirmed && !p.hintMatchesSession(r, lr) {
		p.confirmLogout(w, r, lr)
		return
	}
	s, err := p.o.Broker.EndSession(w, r)
	if err != nil {
		p.o.Logger.ErrorContext(r.Context(), "logout", "err", err)
		p.logoutError(w, r, "internal error")
		return
	}
	next := ""
	if lr.redirect != "" {
		next = postLogoutURL(lr.redirect, lr.state)
	}
	lang := ui.Lang(r, r.Form.Get("ui_locales"))
	if s != nil {
		p.backchannelLogout(s)
		// The SAML SPs of the session need the browser: their single
		// logout comes first and ends at the rest of this chain.
		if p.o.SAMLLogout != nil && p.o.SAMLLogout(w, r, s, p.afterSAMLLogout(s, lr, lang)) {
			return
		}
		// Front-Channel Logout 1.0 §4: every client of the session with a
		// front-channel logout URI, the one asking included.
		if p.renderFrontchannel(w, r, lang, p.frontchannelTargets(s), next) {
			return
		}
	}
	if next != "" {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	p.o.UI.Render(w, r, http.StatusOK, "logout_done", lang, nil)
}

// postLogoutURL is the registered post_logout_redirect_uri redirect with
// state added to its query (RP-Initiated Logout §3).
func postLogoutURL(redirect, state string) string {
	u, _ := url.Parse(redirect)
	if state != "" {
		q := u.Query()
		q.Set("state", state)
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// afterSAMLLogout is where the SAML single logout of an RP-initiated
// logout of s ends: the front-channel logout page of s in lang (a sealed
// ticket), which continues to the post_logout_redirect_uri with state or
// to the logged-out page (PathLogoutDone); or that next step itself when
// no client of s registered a front-channel logout URI.
func (p *Provider) afterSAMLLogout(s *store.Session, lr *logoutRequest, lang string) string {
	done := PathLogoutDone + "?lang=" + url.QueryEscape(lang)
	tk := frontchannelTicket{Targets: p.frontchannelTargets(s), Return: done}
	next := done
	if lr.redirect != "" {
		next = postLogoutURL(lr.redirect, lr.state)
		tk.Return, tk.Client, tk.State = lr.redirect, lr.client.GetID(), lr.state
	}
	if len(tk.Targets) == 0 {
		return next
	}
	u, err := p.sealTicket(tk)
	if err != nil {
		p.o.Logger.Error("front-channel logout ticket", "err", err)
		return next
	}
	return u + "&lang=" + url.QueryEscape(lang)
}

// handleLogoutDone is the logged-out page as a URL of its own, where a
// logout that went through the SAML SPs ends when the relying party gave
// no post_logout_redirect_uri. It shows only static text and needs no
// session.
func (p *Provider) handleLogoutDone(w http.ResponseWriter, r *http.Request) {
	web.NoStore(w)
	p.o.UI.Render(w, r, http.StatusOK, "logout_done", ui.Lang(r), nil)
}

// hintMatchesSession: the id_token_hint names the browser's current session.
func (p *Provider) hintMatchesSession(r *http.Request, lr *logoutRequest) bool {
	if !lr.hintValid || lr.client == nil {
		return false
	}
	s, err := p.o.Broker.CurrentSession(r)
	return err == nil && sid(lr.client.GetID(), s.ID) == lr.hintSID
}

// logoutBinding ties the confirmation form to the browser (its session
// cookie, or nothing when it has none: then there is nothing to log out).
func (p *Provider) logoutBinding(r *http.Request) string {
	if s, err := p.o.Broker.CurrentSession(r); err == nil {
		return s.ID
	}
	return "no-session"
}

func (p *Provider) confirmLogout(w http.ResponseWriter, r *http.Request, lr *logoutRequest) {
	lang := ui.Lang(r, r.Form.Get("ui_locales"))
	page := logoutPage{CSRF: p.o.CSRF.Token("logout|" + p.logoutBinding(r)), Action: PathLogout, Form: map[string]string{}}
	if lr.client != nil {
		page.ClientName = lr.client.RP.Name.Get(lang)
		page.Form["client_id"] = lr.client.GetID()
	}
	if lr.redirect != "" {
		page.Form["post_logout_redirect_uri"] = lr.redirect
	}
	if lr.state != "" {
		page.Form["state"] = lr.state
	}
	if l := r.Form.Get("ui_locales"); l != "" {
		page.Form["ui_locales"] = l
	}
	p.o.UI.Render(w, r, http.StatusOK, "logout_confirm", lang, page)
}

func (p *Provider) logoutError(w http.ResponseWriter, r *http.Request, reason string) {
	lang := ui.Lang(r)
	p.o.UI.Render(w, r, http.StatusBadRequest, "error", lang, struct{ Message, RequestID string }{
		p.o.UI.Text(lang, "error.logout") + " (" + reason + ")", web.RequestID(r.Context())})
}

// BackchannelLogout tells the session's clients that it ended elsewhere
// (a SAML single logout): the same back-channel delivery as below.
func (p *Provider) BackchannelLogout(s *store.Session) { p.backchannelLogout(s) }

// backchannelLogout sends a logout token to every client of the session
// that registered a back-channel logout URI, in the background with
// retries; failures are logged and audited.
func (p *Provider) backchannelLogout(s *store.Session) {
	for _, id := range s.RelyingParties {
		c, ok := p.clients[id]
		if !ok || c.RP.OIDC.BackchannelLogoutURI == "" {
			continue
		}
		token, err := p.logoutToken(c, s)
		if err != nil {
			p.o.Logger.Error("back-channel logout: sign logout token", "client", id, "err", err)
			continue
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.deliverLogout(c, token)
		}()
	}
}

// logoutToken builds the logout token (Back-Channel Logout §2.4).
func (p *Provider) logoutToken(c *Client, s *store.Session) (string, error) {
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", err
	}
	now := p.o.Now().UTC()
	sg, err := p.o.Keys.Signer(c.RP.OIDC.IDTokenSignedResponseAlg)
	if err != nil {
		return "", err
	}
	claims := jwt.MapClaims{
		"iss": p.o.Issuer, "aud": c.GetID(), "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(),
		"jti": base64.RawURLEncoding.EncodeToString(jti), "sid": sid(c.GetID(), s.ID),
		"sub":    p.o.Broker.Subject(c.RP, s.AccountID),
		"events": map[string]any{backchannelEvent: map[string]any{}},
	}
	raw, _, err := p.signer.Generate(context.Background(), claims, &jwt.Headers{Extra: map[string]any{"kid": sg.KID, "typ": "logout+jwt"}})
	return raw, err
}

// logoutAttempts and logoutBackoff bound the delivery of one logout token.
var logoutBackoff = []time.Duration{0, time.Second, 5 * time.Second}

func (p *Provider) deliverLogout(c *Client, token string) {
	uri := c.RP.OIDC.BackchannelLogoutURI
	var lastErr error
	for _, wait := range logoutBackoff {
		time.Sleep(wait)
		req, _ := http.NewRequest(http.MethodPost, uri, bytes.NewBufferString(url.Values{"logout_token": {token}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := p.httpClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusNoContent {
				p.o.Logger.Info("back-channel logout delivered", "client", c.GetID())
				return
			}
			err = errors.New("status " + strings.TrimSpace(resp.Status))
		}
		lastErr = err
	}
	p.o.Logger.Warn("back-channel logout failed", "client", c.GetID(), "err", lastErr)
}

// Close waits for logout deliveries in flight.
func (p *Provider) Close() { p.wg.Wait() }
