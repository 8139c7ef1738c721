package oidc

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/broker/ui"
	"github.com/trustbroker/trustbroker/broker/web"
)

// OpenID Connect Front-Channel Logout 1.0: when a session ends in the
// browser, the page the browser sees next renders the
// frontchannel_logout_uri of every client of the session in a hidden
// iframe (§4), with iss and sid for the clients that require them (§2),
// and then continues: the Refresh header once the frames have loaded (no
// script needed), a small same-origin script after frontchannelTimeout
// when a frame hangs, and a visible link in any case. The page's CSP
// allows framing exactly the origins of those URIs.

// PathFrontchannelLogout shows the front-channel logout page of a session
// that ended elsewhere in the broker (the dashboard's "log out
// everywhere", after the SAML service providers): its parameter t is a
// sealed frontchannelTicket.
const PathFrontchannelLogout = "/oauth2/logout/frontchannel"

const (
	// frontchannelRefresh is how long the page stays after its frames
	// have loaded (the Refresh header counts from the load event).
	frontchannelRefresh = 2
	// frontchannelTicketLifetime bounds a ticket's use (a SAML single
	// logout through several service providers comes first).
	frontchannelTicketLifetime = 15 * time.Minute
)

// frontchannelTarget is one client of an ended session and the sid it
// was given.
type frontchannelTarget struct {
	Client string `json:"c"`
	SID    string `json:"s"`
}

// frontchannelFrame is one iframe of the logout page.
type frontchannelFrame struct {
	URL, Name string
}

type frontchannelPage struct {
	Frames []frontchannelFrame
	// Continue is where the browser goes next ("" when the logout ends
	// on this page).
	Continue string
	Seconds  int
}

// FrontchannelLogoutURL is the URL the logout page frames for a client
// (Front-Channel Logout 1.0 §2): uri as registered, with iss and sid
// appended to its query when the client requires them; an existing query
// is kept as it is.
func FrontchannelLogoutURL(uri, iss, sid string, sessionRequired bool) (string, error) {
	u, err := url.Parse(uri)
	if err != nil || !u.IsAbs() || u.Host == "" || strings.Contains(uri, "#") {
		return "", errors.New("front-channel logout URI is not an absolute URL without fragment")
	}
	if !sessionRequired {
		return uri, nil
	}
	if iss == "" || sid == "" {
		return "", errors.New("front-channel logout needs iss and sid")
	}
	add := "iss=" + url.QueryEscape(iss) + "&sid=" + url.QueryEscape(sid)
	switch {
	case u.RawQuery == "" && !u.ForceQuery:
		return uri + "?" + add, nil
	case strings.HasSuffix(uri, "?") || strings.HasSuffix(uri, "&"):
		return uri + add, nil
	default:
		return uri + "&" + add, nil
	}
}

// origin is the CSP source expression of u's origin.
func origin(u string) string {
	pu, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return strings.ToLower(pu.Scheme) + "://" + strings.ToLower(pu.Host)
}

// frontchannelTargets are the clients of s that registered a
// front-channel logout URI, in the order the session recorded them.
func (p *Provider) frontchannelTargets(s *store.Session) []frontchannelTarget {
	var out []frontchannelTarget
	for _, id := range s.RelyingParties {
		c, ok := p.clients[id]
		if !ok || c.RP.OIDC.FrontchannelLogoutURI == "" || slices.ContainsFunc(out, func(t frontchannelTarget) bool { return t.Client == id }) {
			continue
		}
		out = append(out, frontchannelTarget{Client: id, SID: sid(id, s.ID)})
	}
	return out
}

// frontchannelFrames builds the iframes for targets (clients no longer
// configured are left out) and the CSP frame-src origins they need.
func (p *Provider) frontchannelFrames(targets []frontchannelTarget, lang string) ([]frontchannelFrame, []string) {
	var frames []frontchannelFrame
	var origins []string
	for _, t := range targets {
		c, ok := p.clients[t.Client]
		if !ok || c.RP.OIDC.FrontchannelLogoutURI == "" {
			continue
		}
		o := c.RP.OIDC
		u, err := FrontchannelLogoutURL(o.FrontchannelLogoutURI, p.o.Issuer, t.SID, o.FrontchannelLogoutSessionRequired)
		if err != nil {
			p.o.Logger.Error("front-channel logout", "client", t.Client, "err", err)
			continue
		}
		frames = append(frames, frontchannelFrame{URL: u, Name: c.RP.Name.Get(lang)})
		if or := origin(u); !slices.Contains(origins, or) {
			origins = append(origins, or)
		}
	}
	slices.Sort(origins)
	return frames, origins
}

// frontchannelCSP is the broker's CSP with frame-src limited to origins.
func frontchannelCSP(origins []string) string {
	return web.ContentSecurityPolicy + "; frame-src " + strings.Join(origins, " ")
}

// renderFrontchannel shows the front-channel logout page for targets and
// reports whether it did; with no frame to show it writes nothing.
// continueURL ("" for none) must be a registered or local URL.
func (p *Provider) renderFrontchannel(w http.ResponseWriter, r *http.Request, lang string, targets []frontchannelTarget, continueURL string) bool {
	frames, origins := p.frontchannelFrames(targets, lang)
	if len(frames) == 0 {
		return false
	}
	web.NoStore(w)
	w.Header().Set("Content-Security-Policy", frontchannelCSP(origins))
	if continueURL != "" {
		// Refresh (HTML §7.11.1 shared declarative refresh steps) counts
		// from the load event, which waits for the frames.
		w.Header().Set("Refresh", strconv.Itoa(frontchannelRefresh)+";url="+continueURL)
	}
	p.o.UI.Render(w, r, http.StatusOK, "logout_frontchannel", lang, frontchannelPage{
		Frames: frames, Continue: continueURL, Seconds: frontchannelRefresh,
	})
	return true
}

// frontchannelTicket carries the clients of an ended session to
// PathFrontchannelLogout.
type frontchannelTicket struct {
	Exp     int64                `json:"e"`
	Targets []frontchannelTarget `json:"t"`
	Return  string               `json:"r"`
	// Client is set when Return is a post_logout_redirect_uri of that
	// client (an RP-initiated logout through the SAML SPs): it must still
	// be registered, and the browser continues to it with State.
	Client string `json:"c,omitempty"`
	State  string `json:"s,omitempty"`
}

// next is where the front-channel logout page of tk continues.
func (tk *frontchannelTicket) next() string {
	if tk.Client != "" {
		return postLogoutURL(tk.Return, tk.State)
	}
	return tk.Return
}

func (p *Provider) ticketKey() []byte {
	m := hmac.New(sha256.New, p.o.HMACKey)
	m.Write([]byte("trustbroker frontchannel-logout ticket"))
	return m.Sum(nil)
}

// FrontchannelReturn is where an IdP-initiated logout of s (the
// dashboard's "log out everywhere") should end: the front-channel logout
// page for the clients of s that registered a front-channel logout URI,
// which then continues to returnURL, or returnURL itself when none did.
// returnURL must be a local path ("/...").
func (p *Provider) FrontchannelReturn(s *store.Session, returnURL string) string {
	targets := p.frontchannelTargets(s)
	if len(targets) == 0 || !localPath(returnURL) {
		return returnURL
	}
	u, err := p.sealTicket(frontchannelTicket{Targets: targets, Return: returnURL})
	if err != nil {
		return returnURL
	}
	return u
}

// sealTicket is the URL of the front-channel logout page for tk, which
// expires after frontchannelTicketLifetime.
func (p *Provider) sealTicket(tk frontchannelTicket) (string, error) {
	tk.Exp = p.o.Now().Add(frontchannelTicketLifetime).Unix()
	body, err := json.Marshal(tk)
	if err != nil {
		return "", err
	}
	payload := base64.RawURLEncoding.EncodeToString(body)
	m := hmac.New(sha256.New, p.ticketKey())
	m.Write([]byte(payload))
	return PathFrontchannelLogout + "?t=" + payload + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil)), nil
}

// openTicket checks a ticket's seal and lifetime.
func (p *Provider) openTicket(t string) (*frontchannelTicket, error) {
	payload, mac, ok := strings.Cut(t, ".")
	if !ok || len(t) > 8<<10 {
		return nil, errors.New("malformed ticket")
	}
	got, err := base64.RawURLEncoding.DecodeString(mac)
	if err != nil {
		return nil, errors.New("malformed ticket")
	}
	m := hmac.New(sha256.New, p.ticketKey())
	m.Write([]byte(payload))
	if !hmac.Equal(got, m.Sum(nil)) {
		return nil, errors.New("ticket seal does not verify")
	}
	body, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return nil, errors.New("malformed ticket")
	}
	var tk frontchannelTicket
	if err := json.Unmarshal(body, &tk); err != nil {
		return nil, errors.New("malformed ticket")
	}
	if !p.o.Now().Before(time.Unix(tk.Exp, 0)) {
		return nil, errors.New("ticket expired")
	}
	if tk.Client != "" {
		c, ok := p.clients[tk.Client]
		if !ok || !slices.Contains(c.RP.OIDC.PostLogoutRedirectURIs, tk.Return) {
			return nil, errors.New("ticket return URL is not registered for its client")
		}
	} else if !localPath(tk.Return) {
		return nil, errors.New("ticket return URL is not local")
	}
	return &tk, nil
}

// localPath: a path on this host ("/x", never "//host" or "/\host").
func localPath(s string) bool {
	return strings.HasPrefix(s, "/") && !strings.HasPrefix(s, "//") && !strings.HasPrefix(s, "/\\")
}

// handleFrontchannel shows the front-channel logout page a ticket names;
// a bad or expired ticket ends at the home page (the session is over in
// any case).
func (p *Provider) handleFrontchannel(w http.ResponseWriter, r *http.Request) {
	web.NoStore(w)
	tk, err := p.openTicket(r.URL.Query().Get("t"))
	if err != nil {
		p.o.Logger.WarnContext(r.Context(), "front-channel logout page", "err", err)
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	if !p.renderFrontchannel(w, r, ui.Lang(r), tk.Targets, tk.next()) {
		http.Redirect(w, r, tk.next(), http.StatusSeeOther)
	}
}
