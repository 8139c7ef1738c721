package saml

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"time"

	crewsaml "github.com/crewjam/saml"

	"github.com/trustbroker/trustbroker/broker/config"
	"github.com/trustbroker/trustbroker/broker/store"
	"github.com/trustbroker/trustbroker/broker/web"
	"github.com/trustbroker/trustbroker/providers"
)

// Single logout (saml-profiles-2.0-os §4.4) on crewjam's ServeSLO and
// StartLogout. The session participants are the SAML SPs in the SSO
// session's RelyingParties (the broker records every RP it answers); their
// NameID and SessionIndex are derived again from the session, so nothing
// beyond the session is stored: the persistent NameID is the pairwise
// subject, the transient one a hash of the session and the SP, the email
// one the email the session proved, and the SessionIndex the session's
// store key sealed with a key of the IdP (sessionindex.go). The
// LogoutRequests the IdP sends carry the SP's first registered NameID
// format.
//
// A LogoutRequest over HTTP-POST comes cross-site, so the browser sends
// no SameSite=Lax session cookie with it. The session is then the one its
// SessionIndex names, and it ends only when the request's issuer is one of
// the session's SPs and the request's NameID is the one that SP was
// issued (cookieless below). crewjam's Validate accepts no LogoutRequest
// without a valid signature of the issuing SP, so only a signed request
// ends a session this way.

// PathSLO is the SingleLogoutService (HTTP-Redirect and HTTP-POST).
const PathSLO = "/saml/slo"

// LogoutReplayNamespace is the store.Replay namespace of LogoutRequest IDs.
const LogoutReplayNamespace = "saml_logout_request"

// logoutRequestFormTemplate posts a LogoutRequest to an SP without inline
// script (the broker's CSP), like postFormTemplate.
var logoutRequestFormTemplate = template.Must(template.New("saml-logout-form").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Trustbroker</title>
<script src="/assets/form_post.js" defer></script></head>
<body><form method="post" action="{{.URL}}">
<input type="hidden" name="SAMLRequest" value="{{.SAMLRequest}}">
<noscript><button type="submit">Continue / Weiter</button></noscript>
</form></body></html>`))

// logoutCompleteTemplate ends an IdP-initiated logout without a return URL.
var logoutCompleteTemplate = template.Must(template.New("saml-logout-complete").Parse(`<!doctype html>
<html lang="de"><head><meta charset="utf-8"><title>Abgemeldet – Logged out</title></head>
<body><main><h1>Sie sind abgemeldet.</h1><p lang="en">You are logged out.</p>
{{if .Failed}}<p>Nicht bestätigt von / not confirmed by:</p><ul>{{range .Failed}}<li>{{.}}</li>{{end}}</ul>{{end}}
</main></body></html>`))

// replayCache keeps LogoutRequest IDs in the store, shared by replicas.
type replayCache struct{ st store.Store }

func (c replayCache) Consume(key string, exp time.Time) error {
	err := c.st.Replay().Use(context.Background(), LogoutReplayNamespace, key, exp)
	if errors.Is(err, store.ErrConflict) {
		return crewsaml.ErrAssertionReplayed
	}
	return err
}

func (p *IdP) handleSLO(w http.ResponseWriter, r *http.Request) {
	web.NoStore(w)
	idp, err := p.idp()
	if err != nil {
		p.onError(w, r, http.StatusInternalServerError, err)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxRequestBytes)
	idp.ServeSLO(w, p.withNamedSessions(idp, r))
}

// namedSessionsKey is the context key of the sessions a LogoutRequest's
// SessionIndexes name (namedSessions).
type namedSessionsKey struct{}

// namedSessions are the live sessions the SessionIndexes of a LogoutRequest
// name, and the request's issuer as it arrived. They are read before
// crewjam validates the request and serve only as candidates: a session
// ends only when the validated (signed) request matches it (cookieless).
type namedSessions struct {
	issuer   string
	sessions []*store.Session
}

// maxSessionIndexes bounds the SessionIndexes of a LogoutRequest looked up.
const maxSessionIndexes = 8

// withNamedSessions adds the sessions a LogoutRequest's SessionIndexes
// name to r's context.
func (p *IdP) withNamedSessions(idp *crewsaml.IdentityProvider, r *http.Request) *http.Request {
	if r.Method == http.MethodPost && r.ParseForm() != nil {
		return r
	}
	if r.Method == http.MethodGet && r.URL.Query().Get("SAMLRequest") == "" || r.Method == http.MethodPost && r.PostForm.Get("SAMLRequest") == "" {
		return r
	}
	issuer, ids := p.namedSessionIDs(idp, r)
	if len(ids) == 0 {
		return r
	}
	ns := &namedSessions{issuer: issuer}
	now := p.o.Now()
	for _, id := range ids {
		s, err := p.o.Store.Sessions().Get(r.Context(), id)
		if err != nil || !now.Before(s.ExpiresAt) {
			continue
		}
		ns.sessions = append(ns.sessions, s)
	}
	if len(ns.sessions) == 0 {
		return r
	}
	return r.WithContext(context.WithValue(r.Context(), namedSessionsKey{}, ns))
}

// namedSessionIDs are the issuer of the LogoutRequest in r, as it arrived
// (unverified), and the store keys its SessionIndexes name (at most
// maxSessionIndexes of them are read).
func (p *IdP) namedSessionIDs(idp *crewsaml.IdentityProvider, r *http.Request) (string, []string) {
	lr, err := crewsaml.NewIdpLogoutRequest(idp, r)
	if err != nil || noDTD(lr.RequestBuffer) != nil {
		return "", nil
	}
	var req crewsaml.LogoutRequest
	if xml.Unmarshal(lr.RequestBuffer, &req) != nil || req.Issuer == nil || req.Issuer.Value == "" {
		return "", nil
	}
	var ids []string
	for i, idx := range req.AllSessionIndexes() {
		if i == maxSessionIndexes {
			break
		}
		if id, ok := p.ix.sessionID(idx.Value); ok {
			ids = append(ids, id)
		}
	}
	return req.Issuer.Value, ids
}

// loggedOut is the session a validated LogoutRequest (match) names: the
// browser's when it matches (any participant's NameID), else, for a request
// that came without the cookie (a cross-site HTTP-POST), one its
// SessionIndex names, when issuer is one of that session's SPs and the
// request's NameID and SessionIndex are those issuer was given. fromCookie
// says which.
func (p *IdP) loggedOut(r *http.Request, issuer string, match func(*crewsaml.Session) bool) (s *store.Session, fromCookie bool) {
	if s, err := p.o.Broker.CurrentSession(r); err == nil && p.matches(s, match) {
		return s, true
	}
	ns, _ := r.Context().Value(namedSessionsKey{}).(*namedSessions)
	if ns == nil || issuer == "" || ns.issuer != issuer {
		return nil, false
	}
	for _, s := range ns.sessions {
		if p.matchesAt(s, issuer, match) {
			return s, false
		}
	}
	return nil, false
}

// matchesAt: issuer took part in the session and match accepts the session
// as issuer saw it (in any of its NameID formats).
func (p *IdP) matchesAt(s *store.Session, issuer string, match func(*crewsaml.Session) bool) bool {
	for _, sp := range p.spsOf(s) {
		if sp.entityID != issuer {
			continue
		}
		for _, f := range sp.formats {
			if v := p.participantView(s, sp, f); v.NameID != "" && match(v) {
				return true
			}
		}
	}
	return false
}

// participantView is the session as the SP rpID saw it.
func (p *IdP) participantView(s *store.Session, sp *serviceProvider, format string) *crewsaml.Session {
	v := &crewsaml.Session{ID: s.ID, Index: p.ix.index(s.ID), CreateTime: s.AuthTime}
	rp := p.rp(sp)
	switch format {
	case config.NameIDPersistent:
		v.NameID, v.NameIDFormat = p.o.Broker.Subject(rp, s.AccountID), string(crewsaml.PersistentNameIDFormat)
	case config.NameIDTransient:
		v.NameID, v.NameIDFormat = transientNameID(s.ID, sp.entityID), string(crewsaml.TransientNameIDFormat)
	case config.NameIDEmail:
		var id providers.Identity
		_ = json.Unmarshal(s.Identity, &id)
		email, _ := id.Attributes["email"].(string)
		v.NameID, v.NameIDFormat = email, string(crewsaml.EmailAddressNameIDFormat)
	}
	return v
}

// transientNameID is the transient NameID of an SP within one SSO session:
// unlinkable across SPs and sessions (a hash of the secret session key and
// the SP), stable within the session so that logout can name it.
func transientNameID(sessionID, entityID string) string {
	sum := sha256.Sum256([]byte("saml-transient\x00" + sessionID + "\x00" + entityID))
	return "_" + hex.EncodeToString(sum[:20])
}

// spsOf are the SAML SPs that took part in the session.
func (p *IdP) spsOf(s *store.Session) []*serviceProvider {
	var out []*serviceProvider
	for _, sp := range p.sps {
		for _, id := range s.RelyingParties {
			if id == sp.rpID {
				out = append(out, sp)
			}
		}
	}
	return out
}

// AddSessionParticipant implements crewjam's SessionParticipantTracker:
// the broker has recorded the SP in the session already.
func (p *IdP) AddSessionParticipant(*http.Request, *crewsaml.Session, crewsaml.SessionParticipant) error {
	return nil
}

// SessionParticipants implements crewjam's SessionParticipantTracker for
// the browser's session: when match accepts the session as any of its SAML
// participants saw it (in any of their NameID formats), every participant
// is returned, named as its first format gives.
func (p *IdP) SessionParticipants(r *http.Request, match func(*crewsaml.Session) bool) ([]crewsaml.SessionParticipant, error) {
	if ended, ok := r.Context().Value(endedSessionKey{}).(*store.Session); ok {
		// LogoutEnded: the session is no longer in the store.
		if !p.matches(ended, match) {
			return nil, nil
		}
		return p.participants(ended), nil
	}
	// crewjam asks only for a validated request, whose issuer is the one
	// the named sessions were read with (it checks the signed issuer is the
	// one it looked up).
	ns, _ := r.Context().Value(namedSessionsKey{}).(*namedSessions)
	issuer := ""
	if ns != nil {
		issuer = ns.issuer
	}
	s, _ := p.loggedOut(r, issuer, match)
	if s == nil {
		return nil, nil
	}
	return p.participants(s), nil
}

// participants are the SAML SPs of s as LogoutRequests name them: in each
// SP's first NameID format, with the session's SessionIndex.
func (p *IdP) participants(s *store.Session) []crewsaml.SessionParticipant {
	var out []crewsaml.SessionParticipant
	for _, sp := range p.spsOf(s) {
		v := p.participantView(s, sp, sp.formats[0])
		nid := crewsaml.NameID{Format: v.NameIDFormat, Value: v.NameID}
		if sp.formats[0] != config.NameIDEmail {
			// As in the assertion: SPs such as Lasso (mod_auth_mellon)
			// compare the whole NameID.
			md := endpoint(p.base(), PathMetadata)
			nid.NameQualifier = md.String()
			nid.SPNameQualifier = sp.entityID
		}
		out = append(out, crewsaml.SessionParticipant{ServiceProviderID: sp.entityID, NameID: nid, SessionIndex: v.Index})
	}
	return out
}

func (p *IdP) matches(s *store.Session, match func(*crewsaml.Session) bool) bool {
	for _, sp := range p.spsOf(s) {
		for _, f := range sp.formats {
			if v := p.participantView(s, sp, f); v.NameID != "" && match(v) {
				return true
			}
		}
	}
	return false
}

// InvalidateSession implements crewjam's SessionInvalidator: the browser's
// SSO session ends when the LogoutRequest names it, and the OIDC relying
// parties of the session hear of it (back-channel logout).
func (p *IdP) InvalidateSession(w http.ResponseWriter, r *http.Request, req *crewsaml.IdpLogoutRequest) error {
	issuer := req.ServiceProviderMetadata.EntityID
	s, fromCookie := p.loggedOut(r, issuer, req.MatchesSession)
	if s == nil {
		// Nothing to end (already logged out, or another user's NameID):
		// not an error (saml-core §3.7.3.2).
		return nil
	}
	if !fromCookie {
		// The signed request names the session without the browser's
		// cookie: it ends in the store.
		if err := p.o.Store.Sessions().Delete(r.Context(), s.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("end session: %w", err)
		}
		p.o.Broker.Audit(r, s.AccountID, "session.end", s.ID[:12], store.OutcomeSuccess, "saml logout without cookie",
			map[string]any{"relying_parties": s.RelyingParties})
		p.o.Broker.Audit(r, "sp:"+issuer, "saml.logout", s.ID[:12], store.OutcomeSuccess, "LogoutRequest by SessionIndex", nil)
		if p.o.OnLogout != nil {
			p.o.OnLogout(s)
		}
		return nil
	}
	ended, err := p.o.Broker.EndSession(w, r)
	if err != nil {
		return fmt.Errorf("end session: %w", err)
	}
	p.o.Broker.Audit(r, "sp:"+req.ServiceProviderMetadata.EntityID, "saml.logout", s.ID[:12], store.OutcomeSuccess, "LogoutRequest", nil)
	if ended != nil && p.o.OnLogout != nil {
		p.o.OnLogout(ended)
	}
	return nil
}

// Logout is the IdP-initiated single logout of the browser's session (the
// dashboard's "log out everywhere"): every SAML SP of the session is sent
// a LogoutRequest through the browser, the OIDC relying parties are told
// over the back channel, and the browser ends at returnURL. The caller has
// checked the user's intent (CSRF).
func (p *IdP) Logout(w http.ResponseWriter, r *http.Request, returnURL string) {
	web.NoStore(w)
	idp, err := p.idp()
	if err != nil {
		p.onError(w, r, http.StatusInternalServerError, err)
		return
	}
	s, err := p.o.Broker.CurrentSession(r)
	if err != nil {
		http.Redirect(w, r, returnURL, http.StatusSeeOther)
		return
	}
	// crewjam asks for the participants while it writes the first step,
	// so the session must still be there; it ends right after.
	rec := &sessionEnder{ResponseWriter: w, end: func() {
		ended, err := p.o.Broker.EndSession(w, r)
		if err != nil {
			p.o.Logger.ErrorContext(r.Context(), "saml logout: end session", "err", err)
			return
		}
		if ended != nil && p.o.OnLogout != nil {
			p.o.OnLogout(ended)
		}
	}}
	idp.StartLogout(rec, r, &crewsaml.Session{ID: s.ID}, returnURL)
	rec.ensure()
}

// endedSessionKey is the context key of the session LogoutEnded logs out.
type endedSessionKey struct{}

// LogoutEnded is the IdP-initiated single logout of a session that has
// already ended in the store (the dashboard's account deletion, which
// erases the account with its sessions before anything else is sent): s
// is the session as read before, and every SAML SP in it is sent a
// LogoutRequest through the browser, named as with Logout (the NameID and
// SessionIndex are derived from s alone). The browser ends at returnURL,
// also when no SP can be reached or the IdP cannot sign (the account is
// gone either way). Nothing is ended here and OnLogout is not called: the
// caller has ended the session and told the OIDC relying parties.
func (p *IdP) LogoutEnded(w http.ResponseWriter, r *http.Request, s *store.Session, returnURL string) {
	web.NoStore(w)
	idp, err := p.idp()
	if err != nil {
		p.o.Logger.ErrorContext(r.Context(), "saml logout of an ended session", "err", err)
		http.Redirect(w, r, returnURL, http.StatusSeeOther)
		return
	}
	r = r.WithContext(context.WithValue(r.Context(), endedSessionKey{}, s))
	idp.StartLogout(w, r, &crewsaml.Session{ID: s.ID}, returnURL)
}

// HasParticipants reports whether a SAML SP took part in s, that is
// whether LogoutEnded would send anyone a LogoutRequest.
func (p *IdP) HasParticipants(s *store.Session) bool { return len(p.spsOf(s)) > 0 }

// sessionEnder ends the session just before the first header is written.
type sessionEnder struct {
	http.ResponseWriter
	end  func()
	done bool
}

func (e *sessionEnder) ensure() {
	if !e.done {
		e.done = true
		e.end()
	}
}

func (e *sessionEnder) WriteHeader(code int) { e.ensure(); e.ResponseWriter.WriteHeader(code) }
func (e *sessionEnder) Write(b []byte) (int, error) {
	e.ensure()
	return e.ResponseWriter.Write(b)
}
