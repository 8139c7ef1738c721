package saml

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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
// one the email the session proved, and the SessionIndex a hash of the
// session. The LogoutRequests the IdP sends carry the SP's first
// registered NameID format.

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
	idp.ServeSLO(w, r)
}

// participantView is the session as the SP rpID saw it.
func (p *IdP) participantView(s *store.Session, sp *serviceProvider, format string) *crewsaml.Session {
	v := &crewsaml.Session{ID: s.ID, Index: sessionIndex(s.ID), CreateTime: s.AuthTime}
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

// sessionIndex is the SessionIndex of every assertion of an SSO session.
func sessionIndex(sessionID string) string {
	idx := sha256.Sum256([]byte("saml-session-index\x00" + sessionID))
	return "_" + hex.EncodeToString(idx[:16])
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
	s, err := p.o.Broker.CurrentSession(r)
	if err != nil {
		return nil, nil
	}
	if !p.matches(s, match) {
		return nil, nil
	}
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
	return out, nil
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
	s, err := p.o.Broker.CurrentSession(r)
	if err != nil || !p.matches(s, req.MatchesSession) {
		// Nothing of this browser to end (already logged out, or
		// another user's NameID): not an error (saml-core §3.7.3.2).
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
